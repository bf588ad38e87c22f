"""`vidtrans live` and `run_live`: a synthetic clip file or a scripted device stands in for the camera, headless.

No assertion depends on how fast this machine is: tests count frames (captured = shown + dropped),
and a slow model is simulated by a camera that delivers frames only while the model runs. The speed
figures (fps, latency, share of frames shown) are measured by benchmarks/bench_live.py.
"""

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.media import decode_all, make_clip
from vidtrans.cli import app
from vidtrans.errors import UsageError, VidtransError
from vidtrans.live import LiveOptions, run_live

CHROMIUM = Path("/usr/bin/chromium")
STATS_KEYS = {"frames", "fps", "latency_ms_p50", "latency_ms_p95", "dropped", "device"}
# A bound on a hang, not a speed requirement.
HANG_S = 60


class FakeModel:
    """An RGB model that inverts frames."""

    name, device, precision, input_kind, card, native_size = "fake", torch.device("cpu"), "fp32", "rgb", None, (48, 64)

    def translate(self, frames):
        return 255 - frames


def cli(*args):
    """`vidtrans ARGS` in this process. An error the command raises is in `result.exception`
    (`vidtrans.cli.main` prints it as one line: exit 2 for a UsageError, 1 for others)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def test_headless_run_records_what_was_shown(tmp_path, rgb_model_dir):
    # A file camera plays in real time: 15 frames are half a second.
    clip = make_clip(tmp_path / "clip.mp4", frames=15, size=(64, 48), fps=30, audio=False)
    stats_file, record = tmp_path / "s.json", tmp_path / "r.mp4"
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", clip.path, "--no-window",
                 "--max-frames", 15, "--stats", stats_file, "--record", record)
    assert result.exit_code == 0, result.exception or result.stderr
    stats = json.loads(stats_file.read_text())
    assert STATS_KEYS <= set(stats)
    assert stats["frames"] + stats["dropped"] == stats["captured"] == 15
    assert stats["latency_ms_p95"] >= stats["latency_ms_p50"] > 0 and stats["device"] == "cpu"
    assert "Ctrl-C to stop" in result.stderr and f"{stats['frames']} frames" in result.stderr
    images, times = decode_all(record)
    assert len(images) == stats["frames"]
    assert images[0].shape == (48, 128, 3)  # side view: camera | output
    assert all(b > a for a, b in zip(times, times[1:]))


class FakeDevice:
    """What a cv2.VideoCapture of a 30 fps device answers besides its frames."""

    def isOpened(self):
        return True

    def set(self, *args):
        return False

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0


class Lockstep(FakeDevice):
    """A device camera (stands in for cv2.VideoCapture) and a model that take turns, so what is
    dropped does not depend on timing: the camera delivers its first frame, then exactly
    `per_call` frames while each `translate` call runs, then waits. Frame i is filled with i."""

    def __init__(self, total: int, per_call: int):
        self.total, self.per_call = total, per_call
        self.cond = threading.Condition()
        self.credits, self.delivered, self.waiting, self.done = 1, 0, False, False

    # --- the camera -------------------------------------------------------------------------------
    def capture(self, *args):
        return self

    def read(self):
        with self.cond:
            # The capture thread reads again only after it has handed on the previous frame.
            self.waiting = True
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.credits > 0 or self.done or self.delivered == self.total)
            self.waiting = False
            if self.done or self.delivered == self.total:
                self.done = True
                self.cond.notify_all()
                return False, None
            self.credits -= 1
            self.delivered += 1
            return True, np.full((48, 64, 3), self.delivered - 1, np.uint8)

    def release(self):
        with self.cond:
            self.done = True
            self.cond.notify_all()

    # --- the model --------------------------------------------------------------------------------
    name, device, precision, input_kind, card, native_size = "lockstep", torch.device("cpu"), "fp32", "rgb", None, (48, 64)

    def translate(self, frames):
        if self.delivered:  # not the warm-up call, made before the capture starts
            with self.cond:
                self.credits += self.per_call
                self.cond.notify_all()
                # This turn is over when the camera has handed on its frames and waits in read().
                assert self.cond.wait_for(lambda: (self.credits == 0 and self.waiting) or self.done, timeout=HANG_S)
        return 255 - frames


def test_slow_model_drops_frames_and_always_gets_the_newest(tmp_path, monkeypatch):
    """Three frames arrive while the model works on one: two are dropped, never queued."""
    lockstep = Lockstep(total=90, per_call=3)
    monkeypatch.setattr(cv2, "VideoCapture", lockstep.capture)
    shown: list[int] = []
    seen: list = []  # the session's stats, finished before the camera's end is raised

    def on_frame(frame, stats):
        shown.append(int(frame.input[0, 0, 0]))
        seen[:] = [stats]

    # After its 90 frames the device stops delivering: the session has failed, what it showed is kept.
    with pytest.raises(VidtransError, match="stopped delivering frames"):
        run_live(lockstep, 0, window=False, view="output", on_frame=on_frame)
    [stats] = seen
    assert stats.dropped > 0 and stats.frames + stats.dropped == stats.captured == 90
    # Latest frame wins: each frame processed is the newest one, so latency cannot grow.
    assert shown == list(range(0, 90, 3)) + [89]
    assert stats.frames == len(shown) and len(stats.latencies_ms) == stats.frames


def test_loop_plays_the_file_again_until_stopped(tmp_path):
    """--loop keeps an 8-frame file going; `stop` ends the run normally, recording and stats written."""
    clip = make_clip(tmp_path / "clip.mp4", frames=8, size=(64, 48), fps=30, audio=False)
    stats_file, record, stop = tmp_path / "s.json", tmp_path / "r.mp4", threading.Event()

    def on_frame(frame, stats):
        if stats.frames > 8:
            stop.set()

    stats = run_live(FakeModel(), clip.path, window=False, loop=True, stats=stats_file, record=record, stop=stop,
                     on_frame=on_frame)
    assert stats.ended == "stopped" and stats.frames == 9
    saved = json.loads(stats_file.read_text())
    assert STATS_KEYS <= set(saved) and saved["frames"] == 9
    assert len(decode_all(record)[0]) == stats.frames


@pytest.mark.parametrize("camera", ["7", "missing.mp4"])
def test_unopenable_camera_is_one_line_error(tmp_path, rgb_model_dir, camera):
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", tmp_path / camera if "." in camera
                 else camera, "--no-window", "--max-frames", 5)
    assert isinstance(result.exception, VidtransError) and not isinstance(result.exception, UsageError)
    lines = str(result.exception).strip().splitlines()
    assert len(lines) == 1, lines
    assert ("camera 7" if camera == "7" else camera) in lines[0]


class VanishingCamera(FakeDevice):
    """A device whose reads start failing (unplugged) after 12 frames, one every 1/30 s."""

    def __init__(self, index, *args):
        self.left = 12

    def read(self):
        self.left -= 1
        time.sleep(1 / 30)
        if self.left < 0:
            return False, None
        return True, np.full((48, 64, 3), 20 * self.left, np.uint8)

    def release(self):
        pass


def test_camera_that_disappears_stops_cleanly(tmp_path, monkeypatch):
    """The run ends with the camera's error (a camera does not end by itself: unplugged), and the
    recording is complete, stamped with the capture times of what was shown."""
    monkeypatch.setattr(cv2, "VideoCapture", VanishingCamera)
    record = tmp_path / "r.mp4"
    captured_at: list[float] = []
    with pytest.raises(VidtransError, match=r"^camera 0 stopped delivering frames; check that it is plugged in"):
        run_live(FakeModel(), 0, window=False, view="output", record=record,
                 on_frame=lambda frame, stats: captured_at.append(frame.captured_at))
    images, times = decode_all(record)
    assert 0 < len(images) == len(captured_at) <= 12
    # Capture times, not frame numbers: milliseconds since the first capture.
    assert times == pytest.approx([round((t - captured_at[0]) * 1000) / 1000 for t in captured_at], abs=5e-4)


def test_options_are_checked():
    # The library names parameters...
    with pytest.raises(VidtransError, match="view"):
        run_live(FakeModel(), "x.mp4", window=False, view="sideways")
    with pytest.raises(VidtransError, match="pyvirtualcam"):
        with pytest.MonkeyPatch.context() as m:
            m.setitem(sys.modules, "pyvirtualcam", None)  # as if not installed
            run_live(FakeModel(), "x.mp4", window=False, virtual_cam=True)
    assert LiveOptions(serve="8000").serve_address == ("127.0.0.1", 8000)
    assert LiveOptions(serve="0.0.0.0:9000").serve_address == ("0.0.0.0", 9000)
    assert LiveOptions(size="640x480").capture_size == (640, 480)
    for bad in (dict(serve="localhost"), dict(size="640"), dict(max_frames=0), dict(smoothing_strength=1.0)):
        with pytest.raises(VidtransError, match=next(iter(bad))):
            LiveOptions(**bad)
    # ...the command line names its flags, as usage errors (exit 2), before a model is loaded.
    result = cli("live", "--model", "no-such-model", "--serve", "localhost")
    assert isinstance(result.exception, UsageError) and str(result.exception).startswith("--serve 'localhost'")
    result = cli("live", "--model", "no-such-model", "--view", "sideways")
    assert result.exit_code == 2 and "side" in result.output


def _serve_in_thread(clip_path, stop: threading.Event) -> tuple[threading.Thread, str]:
    """run_live serving on a free port (port 0) in a thread; returns it and the page's URL."""
    started: list[str] = []
    ready = threading.Event()

    def on_start(info):
        started.append(info["url"])
        ready.set()

    live = threading.Thread(target=run_live, args=(FakeModel(), clip_path),
                            kwargs=dict(window=False, loop=True, serve="127.0.0.1:0", stop=stop, on_start=on_start))
    live.start()
    assert ready.wait(HANG_S), "run_live did not start"
    return live, started[0]


def test_served_stream_delivers_new_pictures(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=90, size=(64, 48), fps=30, audio=False)
    stop = threading.Event()
    live, url = _serve_in_thread(clip.path, stop)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HANG_S) as page:
            assert b'src="/stream.mjpg"' in page.read()
        jpegs: list[bytes] = []
        with opener.open(url + "stream.mjpg", timeout=HANG_S) as stream:
            assert stream.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            while len(jpegs) < 3:
                assert stream.readline() == b"--frame\r\n"
                assert stream.readline() == b"Content-Type: image/jpeg\r\n"
                length = int(stream.readline().split(b":")[1])
                stream.readline()
                jpegs.append(stream.read(length))
                stream.readline()
    finally:
        stop.set()
        live.join(timeout=HANG_S)
    assert not live.is_alive()
    # A part is sent for each new picture only; the clip's square moves, so they differ.
    assert len(set(jpegs)) >= 2
    assert all(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR).shape == (48, 128, 3) for j in jpegs)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)")
def test_served_page_shows_a_moving_stream_in_chromium(tmp_path):
    """A real headless browser loads the page; its script counts distinct pictures into the title."""
    clip = make_clip(tmp_path / "clip.mp4", frames=30, size=(64, 48), fps=30, audio=False)
    stop = threading.Event()
    live, url = _serve_in_thread(clip.path, stop)
    profile = tmp_path / "chromium"
    browser = subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--no-proxy-server", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The DevTools HTTP endpoint lists each page with its current title: no websocket needed.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    titles: list[str] = []
    try:
        deadline = time.monotonic() + HANG_S
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


def test_a_device_gone_silent_fails_the_session_and_keeps_the_recording(tmp_path, monkeypatch):
    """A camera whose driver hangs (no frame, no error) ended the session as if it had finished: exit 0."""
    import vidtrans.live.loop as live_loop
    import vidtrans.video.camera as camera_module

    unblock = threading.Event()

    class SilentDevice(FakeDevice):
        def __init__(self, *args):
            self.delivered = 0

        def read(self):
            if self.delivered == 3:
                unblock.wait(10)
                return False, None
            self.delivered += 1
            time.sleep(1 / 30)
            return True, np.full((48, 64, 3), self.delivered, np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", SilentDevice)
    monkeypatch.setattr(live_loop, "STALL_S", 0.3)
    monkeypatch.setattr(camera_module, "_CLOSE_WAIT_S", 0.1)
    record = tmp_path / "r.mp4"
    try:
        with pytest.raises(VidtransError, match=r"^camera 0 delivered no frame for 0.3 s; check its connection$"):
            run_live(FakeModel(), 0, window=False, view="output", record=record)
    finally:
        unblock.set()
    images, _ = decode_all(record)
    assert 1 <= len(images) <= 3
