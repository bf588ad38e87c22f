"""QA round 26 on live mode: the HUD's dropped frames counted as the summary counts them (paused, a
model slower than the camera), figures not measured yet told as n/a (a first frame's HUD, a one-frame
session), an MJPEG view wider than JPEG holds, a stop signal as the loop ends, and a user's session:
a looping file camera recorded, served and described at once."""

from __future__ import annotations

import json
import logging
import re
import urllib.request

import cv2
import numpy as np
import pytest

from tests.media import decode_all, make_clip
from tests.test_live import FakeModel, Lockstep
from vidtrans.live import MjpegServer, Shown, loop, run_live


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "cam.mp4", frames=10, size=(64, 48), fps=50, audio=False)


class _Watching:
    """A window's stand-in that keeps every HUD it is given; presses space at the first picture when `pause`."""

    def __init__(self, pause: bool = False):
        self.pause, self.huds, self.new = pause, [], 0

    def show(self, shown):
        self.huds.append(shown.hud)
        self.new += not shown.repeat
        return "pause" if self.pause and self.new == 1 and not shown.repeat else None

    def close(self, completed):
        pass


def _hud_dropped(hud) -> int:
    return int(re.search(r"dropped (\d+)", hud[0]).group(1))


def test_the_hud_counts_frames_taken_while_paused_as_dropped_as_the_summary_does(clip, monkeypatch):
    """Paused at the first frame, a 10-frame file camera plays on: the summary said 9 dropped, the
    HUD (the camera's count of frames replaced by newer ones) 0."""
    sink = _Watching(pause=True)
    monkeypatch.setattr(loop, "open_sinks", lambda options, stack: [sink])
    stats = run_live(FakeModel(), clip.path, window=False)
    assert stats.ended == "end of file" and (stats.frames, stats.dropped) == (1, 9)
    assert _hud_dropped(sink.huds[-1]) == stats.dropped


def test_the_hud_and_on_frame_count_dropped_frames_as_the_summary_does(monkeypatch):
    """A model slower than the camera (three frames arrive while it translates one): at each frame
    shown, the HUD and the stats handed to on_frame say how many frames were captured and not shown."""
    lockstep = Lockstep(total=10, per_call=3)  # its last frame is the fourth shown: the camera ends with the session
    monkeypatch.setattr(cv2, "VideoCapture", lockstep.capture)
    sink = _Watching()
    monkeypatch.setattr(loop, "open_sinks", lambda options, stack: [sink])
    seen = []

    def on_frame(frame, stats):
        seen.append((int(frame.input[0, 0, 0]), stats.frames, stats.dropped))

    stats = run_live(lockstep, 0, window=False, view="output", max_frames=4, on_frame=on_frame)
    # Frames 0, 3, 6, 9 shown: each one's index less the frames shown before it were dropped.
    assert seen == [(0, 1, 0), (3, 2, 2), (6, 3, 4), (9, 4, 6)]
    assert [_hud_dropped(hud) for hud in sink.huds] == [0, 2, 4, 6]
    assert stats.dropped == stats.captured - stats.frames


def _first_picture(url: str) -> np.ndarray:
    """The first JPEG of an MJPEG stream, decoded (RGB)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # this machine, whatever the proxy
    with opener.open(url + "stream.mjpg", timeout=10) as stream:
        headers = b""
        while not headers.endswith(b"\r\n\r\n"):
            headers += stream.read(1)
        length = int(re.search(rb"Content-Length: (\d+)", headers).group(1))
        jpeg = stream.read(length)
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_a_view_wider_than_jpeg_holds_is_served_smaller_not_dropped(caplog, capfd):
    """A side view 70000 pixels wide (a panorama camera): JPEG holds at most 65500 pixels a side, so
    OpenCV refused every picture with two ERROR lines on the terminal, and the page showed nothing."""
    server = MjpegServer("127.0.0.1", 0)
    try:
        image = np.zeros((16, 70000, 3), np.uint8)
        image[:, 35000:] = 200
        with caplog.at_level(logging.WARNING, logger="vidtrans"):
            for _ in range(2):
                server.show(Shown(image, captured_at=0.0, fps=30.0))
        picture = _first_picture(server.url)
    finally:
        server.close(completed=True)
    assert picture.shape == (14, 65500, 3)
    assert picture[:, :32000].max() < 20 and picture[:, 33500:].min() > 180  # the view, scaled
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning == (f"serve 127.0.0.1:{server.port}: the view, 70000x16, is larger than JPEG holds (65500 pixels "
                       "a side); served at 65500x14")
    assert "ERROR" not in capfd.readouterr().err


def test_the_hud_of_the_first_frames_measures_nothing_rather_than_nan_or_zero(clip, monkeypatch):
    """The first picture's HUD comes before any latency was measured: the window showed "nan ms";
    and before two frames were shown no rate is measured, which "0.0 fps" presented as a stall."""
    sink = _Watching()
    monkeypatch.setattr(loop, "open_sinks", lambda options, stack: [sink])
    run_live(FakeModel(), clip.path, window=False, max_frames=3)
    assert sink.huds[0][0] == "fps n/a  latency n/a  dropped 0"
    assert re.fullmatch(r"fps n/a  \d+ ms  dropped 0", sink.huds[1][0]), sink.huds[1]
    assert re.fullmatch(r"\d+\.\d fps  \d+ ms  dropped 0", sink.huds[2][0]), sink.huds[2]


def test_a_session_of_one_frame_measures_no_frame_rate(cli, tmp_path, rgb_model_dir):
    """A one-frame session (--max-frames 1, a one-picture file) said "1 frame at 0.0 fps" and wrote
    fps and camera_fps 0.0, as for a camera that delivers nothing: one frame has no rate (as latency
    without a frame is null, not 0 ms)."""
    camera = make_clip(tmp_path / "cam.mp4", frames=1, size=(64, 48), fps=30, audio=False).path
    stats_file = tmp_path / "stats.json"
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--no-window",
                 "--stats", stats_file)
    assert result.returncode == 0, result.stderr
    saved = json.loads(stats_file.read_text())
    assert saved["frames"] == 1 and saved["fps"] is None and saved["camera_fps"] is None, saved
    assert re.search(r"^1 frame, fps n/a \(one frame\), latency p50 \d+ ms", result.stderr, re.M), result.stderr


def test_a_signal_right_after_the_loop_ended_still_counts_what_was_captured(clip, monkeypatch, tmp_path):
    """A stop signal landing as the loop returns (a session at its --max-frames, or q) skipped the
    count of what the camera captured: the stats said 0 captured for the frames they said were
    shown, and dropped as the HUD last counted it."""
    ended_loop = loop._loop

    def loop_then_signal(*args):
        ended_loop(*args)
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(loop, "_loop", loop_then_signal)
    stats_file = tmp_path / "stats.json"
    run_live(FakeModel(), clip.path, window=False, max_frames=3, stats=stats_file)
    saved = json.loads(stats_file.read_text())
    assert saved["ended"] == "interrupted (SIGTERM)" and saved["frames"] == 3
    assert saved["captured"] >= 3 and saved["frames"] + saved["dropped"] == saved["captured"], saved


def test_a_looping_file_camera_recorded_served_and_described_at_once(cli, tmp_path, rgb_model_dir):
    """--camera FILE --loop --no-window --record --stats --serve: three passes of a 10-frame file,
    the recording holds what the stats say was shown, at increasing capture times."""
    camera = make_clip(tmp_path / "cam.mp4", frames=10, size=(64, 48), fps=50, audio=True).path
    record, stats_file = tmp_path / "rec.mkv", tmp_path / "stats.json"
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--loop", "--no-window",
                 "--record", record, "--stats", stats_file, "--serve", "127.0.0.1:0", "--max-frames", 25)
    assert result.returncode == 0, result.stderr
    assert re.search(r"watch at http://127\.0\.0\.1:\d+/", result.stderr), result.stderr
    saved = json.loads(stats_file.read_text())
    assert saved["frames"] == 25 and saved["frames"] + saved["dropped"] == saved["captured"], saved
    assert saved["ended"] == "25 frames shown (--max-frames)" and saved["seconds"] > 0
    images, times = decode_all(record)
    assert len(images) == 25 and all(b > a for a, b in zip(times, times[1:]))
    assert images[0].shape == (48, 128, 3)  # side view: camera | output
