"""QA round 25 on live mode: the stats' figures (every frame captured is shown or dropped, also at a
session's end, on a signal and while paused; fps over camera time), a file: URL as the camera (the
session's input, played as a file), --loop with a stream URL, a damaged camera file's corrupt frames
told as `run` tells them, a view too large for H.264 recorded smaller, and a stream without
timestamps handed on as it comes."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse

import av
import cv2
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import corrupt_middle, decode_all, make_clip
from tests.test_live import FakeDevice, FakeModel, Lockstep
from vidtrans.errors import UsageError
from vidtrans.live import Camera, LiveStats, loop, run_live
from vidtrans.video.reader import VideoReader


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "my cam.mp4", frames=10, size=(64, 48), fps=50, audio=False)


def test_a_frame_waiting_when_the_session_ends_counts_as_dropped(tmp_path, monkeypatch):
    """--max-frames (also q, a stop, Ctrl-C) ended the session with a newer frame waiting in the
    camera's slot: captured counted it, but neither frames nor dropped did (a model slower than a
    30 fps file camera, --max-frames 5: 16 captured, 5 shown, 10 dropped)."""
    lockstep = Lockstep(total=90, per_call=3)  # three frames arrive while the model works on one
    monkeypatch.setattr(cv2, "VideoCapture", lockstep.capture)
    stats_file = tmp_path / "stats.json"
    stats = run_live(lockstep, 0, window=False, view="output", max_frames=2, stats=stats_file)
    saved = json.loads(stats_file.read_text())
    assert saved["frames"] == 2 and saved["captured"] == 7  # frame 0, frames 1-3 and 4-6 while each was translated
    assert saved["frames"] + saved["dropped"] == saved["captured"], saved
    assert (stats.frames, stats.dropped, stats.captured) == (2, 5, 7)


class _StoppedInItsThirdFrame(FakeModel):
    """Ctrl-C while the model translates the session's third frame (its first call is the warm-up)."""

    calls = 0

    def translate(self, frames):
        self.calls += 1
        if self.calls == 4:
            raise KeyboardInterrupt
        return super().translate(frames)


def test_a_frame_being_processed_when_a_signal_ends_the_session_counts_as_dropped(clip):
    """Ctrl-C lands while a frame is processed (where a session spends its time): that frame was
    captured and taken, then neither shown nor counted as dropped."""
    stats = run_live(_StoppedInItsThirdFrame(), clip.path, window=False)
    assert stats.ended == "interrupted (Ctrl-C)" and stats.frames == 2
    assert stats.frames + stats.dropped == stats.captured >= 3


class _Pausing:
    """A window's stand-in that presses space at the first picture and never again."""

    def __init__(self):
        self.new = 0

    def show(self, shown):
        self.new += not shown.repeat
        return "pause" if self.new == 1 and not shown.repeat else None

    def close(self, completed):
        pass


def test_frames_a_paused_session_takes_count_as_dropped(clip, monkeypatch):
    """Paused, live keeps taking the camera's frames (so that it does not stall) without showing
    them: they were neither shown nor dropped, and the stats' frames and dropped no longer added
    up to what was captured."""
    sink = _Pausing()
    monkeypatch.setattr(loop, "open_sinks", lambda options, stack: [sink])
    stats = run_live(FakeModel(), clip.path, window=False)
    assert stats.ended == "end of file" and stats.frames == sink.new == 1
    assert stats.captured == 10 and stats.dropped == 9


def file_url(path) -> str:
    return "file://" + urllib.parse.quote(str(path))


def test_a_file_url_camera_is_its_file_which_record_may_not_replace(cli, tmp_path, rgb_model_dir):
    """A file: URL went to OpenCV as a stream, so `--record` naming the same file with --overwrite
    replaced the camera's file with the recording of it."""
    camera = make_clip(tmp_path / "cam.mp4", frames=10, size=(64, 48), fps=50, audio=False).path
    before = camera.read_bytes()
    line = one_line(cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", file_url(camera),
                        "--no-window", "--record", camera, "--overwrite"), 2)
    assert "output would overwrite the input" in line, line
    assert camera.read_bytes() == before


def test_a_file_url_camera_plays_as_a_file(tmp_path, clip):
    """Decoded as `run` decodes its file, and --loop plays it again (a stream's end ended it after one pass)."""
    record = tmp_path / "rec.mp4"
    stats = run_live(FakeModel(), file_url(clip.path), window=False, loop=True, max_frames=15, view="output",
                     record=record)
    assert stats.frames == 15 and len(decode_all(record)[0]) == 15


@pytest.mark.parametrize("url", ["file://otherhost/clip.mp4", "file://"])
def test_a_file_url_that_names_no_file_here_is_a_usage_error(url):
    with pytest.raises(UsageError, match=r"^camera 'file://[^']*': a file URL names a file of this machine"):
        run_live(FakeModel(), url, window=False)


def test_loop_with_a_stream_url_is_refused_before_the_model_loads(cli, tmp_path):
    """--loop does nothing to a stream (only a file camera plays again): refused as for a device,
    naming the stream without its password, not tried (exit 1, a stream that did not answer)."""
    line = one_line(cli("live", "--model", tmp_path / "no-model", "--camera", "rtsp://me:secret@127.0.0.1:9/cam",
                        "--loop", "--no-window"), 2)
    assert line == ("vidtrans: error: --loop plays a video file camera again from its start, and --camera "
                    "rtsp://me:***@127.0.0.1:9/cam is a stream, which live cannot play again; drop --loop"), line


def test_a_damaged_camera_file_is_told_as_run_tells_it(cli, tmp_path, rgb_model_dir):
    """`run` says how many frames of a damaged clip were corrupt; live played the same file without a word."""
    camera = make_clip(tmp_path / "cam.mp4", frames=40, size=(64, 48), fps=50, audio=False).path
    corrupt_middle(camera)
    with VideoReader(camera) as reader:
        frames = sum(1 for _ in reader)
    assert reader.corrupt_frames > 0 and frames == 40
    stats_file = tmp_path / "stats.json"
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--no-window",
                 "--stats", stats_file)
    assert result.returncode == 0, result.stderr
    saved = json.loads(stats_file.read_text())
    assert saved["captured"] == 40 and saved["corrupt_frames"] == reader.corrupt_frames
    assert f", {reader.corrupt_frames} corrupt frames in the camera's file (cpu); end of file" in result.stderr


def test_a_view_too_large_for_h264_is_recorded_smaller_not_refused_at_the_first_frame(tmp_path, caplog):
    """A camera 9000 pixels wide shows a side view of 18000: the session ended at its first frame, once
    the model was loaded, in the writer's words for `run` ("make them smaller (a smaller input, without
    side_by_side) or choose another codec": options live does not have), and nothing was recorded."""
    camera = tmp_path / "wide.mkv"
    with av.open(str(camera), "w") as out:
        stream = out.add_stream("ffv1", rate=50)
        stream.width, stream.height, stream.pix_fmt = 9000, 16, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((16, 9000, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    record = tmp_path / "rec.mp4"
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        stats = run_live(FakeModel(), camera, window=False, record=record)
    images, _ = decode_all(record)
    assert len(images) == stats.frames > 0 and images[0].shape[1] <= 16384
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning == f"record {record}: the view, 18000x16, is larger than libx264 records; recorded at " \
                      f"{images[0].shape[1]}x{images[0].shape[0]}"


def test_fps_is_of_the_camera_time_the_frames_shown_span_not_of_their_latencies():
    """Two frames of a 50 fps camera, the first shown 19 ms late (a recording's encoder opening at the
    first frame), the second at once: the stats said 1000 fps. Frames shown per second cannot be
    more than the camera delivered."""
    stats = LiveStats()
    stats.add(captured_at=10.000, shown_at=10.020)
    stats.add(captured_at=10.020, shown_at=10.021)
    assert stats.fps == pytest.approx(50.0) and stats.to_dict()["fps"] == 50.0


class _UntimedStream(FakeDevice):
    """What OpenCV makes of an MJPEG stream over HTTP (an IP camera, another live session's --serve):
    pictures as the connection delivers them (here at once), no timestamps (CAP_PROP_POS_MSEC is
    garbage), and a frame rate it guesses (25)."""

    def __init__(self, url, api):
        self.left = 6

    def read(self):
        self.left -= 1
        return self.left >= 0, np.zeros((48, 64, 3), np.uint8)

    def get(self, prop):
        return -3.7e20 if prop == cv2.CAP_PROP_POS_MSEC else 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        pass


class _Waits(threading.Event):
    """A camera's stop event that keeps how long the capture thread waited to hand a picture on, without waiting."""

    def __init__(self):
        super().__init__()
        self.asked: list[float] = []

    def wait(self, timeout=None):
        self.asked.append(timeout)
        return self.is_set()


def test_a_stream_without_timestamps_is_handed_on_as_it_comes_not_held_to_a_guessed_rate(monkeypatch):
    """An MJPEG stream of 60 fps (live --serve of a 60 fps file) was read at the 25 fps OpenCV guesses for
    it: each picture held back for its turn while the connection filled behind it, the view falling
    further behind the camera, unseen in the latency measured from the picture's hand-over."""
    monkeypatch.setattr(cv2, "VideoCapture", _UntimedStream)
    camera = Camera("http://127.0.0.1:9/stream.mjpg")
    camera._stop = waits = _Waits()
    stats = run_live(FakeModel(), camera, window=False, view="output")
    assert stats.ended == "http://127.0.0.1:9/stream.mjpg stopped delivering frames" and stats.captured == 6
    assert waits.asked == []


def test_a_file_camera_whose_first_picture_comes_late_still_plays_at_its_own_rate(tmp_path, monkeypatch):
    """The schedule began before the first picture was decoded: one ready late (a slow disk, a large
    first keyframe) brought every later one forward, and the camera delivered faster than its file's
    rate (measured, and in the stats' fps). Its pictures are handed on at least their own times apart."""
    from vidtrans.video import camera as camera_module

    class SlowStart(camera_module.VideoReader):
        def __iter__(self):
            time.sleep(0.3)
            yield from super().__iter__()

    monkeypatch.setattr(camera_module, "VideoReader", SlowStart)
    clip = make_clip(tmp_path / "cam.mp4", frames=4, size=(64, 48), fps=10, audio=False)
    with Camera(clip.path) as camera:
        while not camera.ended:
            camera.get(timeout=0.05)
    assert camera.captured == 4 and 0 < camera.fps <= 10.0
