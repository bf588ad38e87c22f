"""What would fail a live session is told before its model loads, in one line: a display that is
set but gone (Qt would abort the whole process), outputs that cannot be written (the stats were
written only at the end, and lost), a missing camera; and a stream that does not answer does not
hold off Ctrl-C for FFmpeg's 30 s."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip
from tests.test_signals import HANG_S, start, stop, wait_for
from vidtrans.live import run_live
from tests.test_live import FakeModel

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's display on Linux")


@pytest.fixture
def camera(tmp_path):
    return make_clip(tmp_path / "camera.mp4", frames=4, audio=False).path


@pytest.fixture
def no_model_load(monkeypatch):
    """Fails a test that gets as far as loading the model."""
    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the problem was told")
    monkeypatch.setattr(vidtrans, "load_model", load)


def an_absent_display() -> str:
    number = next(n for n in range(971, 999) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    return f":{number}"


@linux_only
def test_a_display_that_is_gone_is_a_usage_error_not_an_abort(cli, camera, no_model_load, monkeypatch):
    display = an_absent_display()
    monkeypatch.setenv("DISPLAY", display)
    line = one_line(cli("live", "--camera", camera), 2)
    assert f"cannot open the preview window on display {display} (" in line
    assert "run with --no-window and watch through --serve, --record or --virtual-cam" in line


@linux_only
def test_stats_in_a_folder_nothing_can_be_written_to_are_refused_before_the_model_loads(cli, camera, no_model_load):
    stats = Path("/proc/vidtrans-stats.json")  # no one, root included, makes files in /proc
    line = one_line(cli("live", "--camera", camera, "--no-window", "--stats", stats), 2)
    assert f"{stats}: cannot write to /proc (" in line and "choose a writable output folder" in line


def test_a_missing_camera_is_told_before_the_model_loads(cli, tmp_path, no_model_load):
    line = one_line(cli("live", "--camera", tmp_path / "missing.mp4", "--no-window"), 1)
    assert "missing.mp4: no such video file" in line


def test_a_recording_that_cannot_be_made_is_told_before_the_camera_opens(camera, tmp_path):
    opened = []
    with pytest.raises(vidtrans.errors.UsageError, match="live records H.264"):
        run_live(FakeModel(), camera, window=False, record=tmp_path / "out.avi",
                 on_start=lambda info: opened.append(info))
    assert not opened and not (tmp_path / "out.avi").exists()


@pytest.fixture
def silent_stream():
    """An HTTP address that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []
    done = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not done.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/stream", accepted
    done.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_ctrl_c_stops_live_while_a_stream_does_not_answer(silent_stream, rgb_model_dir):
    url, accepted = silent_stream
    process = start("live", "--camera", url, "--no-window", "--model", rgb_model_dir, "--device", "cpu")
    wait_for(process, lambda: accepted, "the connection to the stream")
    time.sleep(0.5)  # well inside FFmpeg's wait for an answer
    asked = time.monotonic()
    stderr = stop(process, signal.SIGINT)
    assert time.monotonic() - asked < HANG_S / 2
    assert process.returncode == 130 and stderr.strip().splitlines()[-1] == "vidtrans: interrupted"


def test_an_error_after_a_stop_was_handled_is_told(tmp_path, cli, monkeypatch, rgb_model_dir):
    """live ends its session on a stop signal, then finishes: a failure then (the stats' folder gone)
    is an error of its own, not the stop."""
    import vidtrans.cli

    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)

    def session_then_failure(*args, **kwargs):
        try:
            vidtrans.cli._stop(signal.SIGTERM, None)
        except KeyboardInterrupt:
            pass  # the session ends normally
        raise vidtrans.errors.VidtransError(f"{tmp_path}/gone/s.json: cannot write the stats (No such file or "
                                            "directory); check free disk space and that the folder is writable")

    monkeypatch.setattr(vidtrans, "load_model", session_then_failure)
    line = one_line(cli("run", clip.path, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4"), 1)
    assert "s.json: cannot write the stats" in line


@linux_only
def test_a_camera_opened_and_closed_unplayed_leaves_its_file_closed(camera):
    from vidtrans.live import Camera

    def open_files():
        fds = Path("/proc/self/fd")
        return [fd for fd in fds.iterdir() if fd.resolve() == Path(camera).resolve()]

    for _ in range(3):
        source = Camera(camera).open()
        source.close()
    assert open_files() == []
