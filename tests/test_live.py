"""`vidtrans live` and `run_live`: a synthetic clip file stands in for the camera, headless."""

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.media import decode_all, make_clip
from vidtrans.errors import VidtransError
from vidtrans.live import parse_serve, run_live

CHROMIUM = Path("/usr/bin/chromium")
STATS_KEYS = {"frames", "fps", "latency_ms_p50", "latency_ms_p95", "dropped", "device"}



class FakeModel:
    """An RGB model that inverts frames, optionally taking `delay` seconds per frame."""

    name, device, precision, input_kind, card, native_size = "fake", torch.device("cpu"), "fp32", "rgb", None, (48, 64)

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def translate(self, frames):
        time.sleep(self.delay)
        return 255 - frames


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vidtrans", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_headless_run_records_what_was_shown(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "clip.mp4", frames=60, size=(64, 48), fps=30, audio=False)
    stats_file, record = tmp_path / "s.json", tmp_path / "r.mp4"
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", clip.path, "--no-window",
                 "--max-frames", 60, "--stats", stats_file, "--record", record)
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_file.read_text())
    assert STATS_KEYS <= set(stats)
    assert stats["frames"] >= 54, stats  # >= 90 % of the camera's frames with a fast model
    assert stats["frames"] + stats["dropped"] == stats["captured"] == 60
    assert stats["latency_ms_p95"] >= stats["latency_ms_p50"] > 0 and stats["device"] == "cpu"
    assert f"{stats['frames']} frames" in result.stderr
    images, times = decode_all(record)
    assert len(images) == stats["frames"]
    assert images[0].shape == (48, 128, 3)  # side view: camera | output
    assert all(b > a for a, b in zip(times, times[1:]))
    assert times[-1] == pytest.approx(59 / 30, abs=0.15)  # capture times: real time, not frame count


def test_slow_model_drops_frames_and_latency_stays_bounded(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=90, size=(64, 48), fps=30, audio=False)
    stats = run_live(FakeModel(delay=0.1), clip.path, window=False, view="output")
    assert stats.dropped > 0 and stats.frames + stats.dropped == 90
    assert stats.frames >= 20
    first, last = np.mean(stats.latencies_ms[:10]), np.mean(stats.latencies_ms[-10:])
    assert last <= first + 60, stats.latencies_ms  # a queue would grow by ~70 ms per frame here
    assert stats.latency(95) < 400
    assert 7 <= stats.fps <= 11


def test_ctrl_c_exits_0_and_writes_stats(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "clip.mp4", frames=30, size=(64, 48), fps=30, audio=False)
    stats_file, record = tmp_path / "s.json", tmp_path / "r.mp4"
    process = subprocess.Popen([sys.executable, "-m", "vidtrans", "live", "--model", str(rgb_model_dir), "--device",
                                "cpu", "--camera", str(clip.path), "--loop", "--no-window", "--stats", str(stats_file),
                                "--record", str(record)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = process.stderr.readline()
        assert "Ctrl-C" in started, started
        time.sleep(1.5)  # past the end of the clip: --loop keeps it going
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    stats = json.loads(stats_file.read_text())
    assert stats["frames"] > 30 and STATS_KEYS <= set(stats)
    assert len(decode_all(record)[0]) == stats["frames"]


@pytest.mark.parametrize("camera", ["7", "missing.mp4"])
def test_unopenable_camera_is_one_line_error(tmp_path, rgb_model_dir, camera):
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", tmp_path / camera if "." in camera
                 else camera, "--no-window", "--max-frames", 5)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidtrans: error:"), lines
    assert ("camera 7" if camera == "7" else camera) in lines[0]


def test_camera_that_disappears_stops_cleanly(tmp_path, monkeypatch):
    """A device whose reads start failing (unplugged): the run ends and the recording is complete."""
    import cv2

    class VanishingCamera:
        def __init__(self, index, *args):
            self.left = 12

        def isOpened(self):
            return True

        def set(self, *args):
            return False

        def get(self, prop):
            return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

        def read(self):
            self.left -= 1
            time.sleep(1 / 30)
            if self.left < 0:
                return False, None
            return True, np.full((48, 64, 3), 20 * self.left, np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", VanishingCamera)
    record = tmp_path / "r.mp4"
    stats = run_live(FakeModel(), 0, window=False, view="output", record=record)
    assert "camera 0 stopped delivering frames" in stats.ended
    assert stats.frames + stats.dropped == 12
    assert len(decode_all(record)[0]) == stats.frames


def test_options_are_checked():
    with pytest.raises(VidtransError, match="--view"):
        run_live(FakeModel(), "x.mp4", window=False, view="sideways")
    with pytest.raises(VidtransError, match="pyvirtualcam"):
        with pytest.MonkeyPatch.context() as m:
            m.setitem(sys.modules, "pyvirtualcam", None)  # as if not installed
            run_live(FakeModel(), "x.mp4", window=False, virtual_cam=True)
    assert parse_serve("8000") == ("127.0.0.1", 8000)
    assert parse_serve("0.0.0.0:9000") == ("0.0.0.0", 9000)
    with pytest.raises(VidtransError, match="--serve"):
        parse_serve("localhost")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)")
def test_served_page_shows_a_moving_stream_in_chromium(tmp_path):
    """A real headless browser loads the page; its script counts distinct pictures into the title."""
    clip = make_clip(tmp_path / "clip.mp4", frames=30, size=(64, 48), fps=30, audio=False)
    port, stop = _free_port(), threading.Event()
    live = threading.Thread(target=run_live, args=(FakeModel(), clip.path),
                            kwargs=dict(window=False, loop=True, serve=f"127.0.0.1:{port}", stop=stop))
    live.start()
    profile = tmp_path / "chromium"
    browser = subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--no-proxy-server", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", f"http://127.0.0.1:{port}/"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The DevTools HTTP endpoint lists each page with its current title: no websocket needed.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    titles: list[str] = []
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not any(_distinct(t) >= 3 for t in titles):
            time.sleep(0.5)
            active = profile / "DevToolsActivePort"
            if not active.exists():
                continue
            try:
                with opener.open(f"http://127.0.0.1:{active.read_text().split()[0]}/json/list", timeout=5) as r:
                    titles = [t["title"] for t in json.load(r) if t["type"] == "page"]
            except (OSError, ValueError):
                continue
    finally:
        browser.terminate()
        browser.wait(timeout=30)
        stop.set()
        live.join(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
    assert any(_distinct(t) >= 3 for t in titles), titles


def _distinct(title: str) -> int:
    prefix = "vidtrans live: "
    return int(title[len(prefix):].split()[0]) if title.startswith(prefix) else 0
