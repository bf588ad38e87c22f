"""QA pass 20 on live mode: its MJPEG server and the camera."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from vidtrans.live.sinks import MjpegServer, Shown


@pytest.mark.parametrize("path", ["/", "/stream.mjpg", "/nothing"])
def test_a_viewer_gone_before_its_reply_leaves_no_traceback(path, capsys):
    """A browser tab closed (or a connection reset) right after asking: the request ends quietly,
    not with socketserver's "Exception occurred during processing of request" and a traceback."""
    server = MjpegServer("127.0.0.1", 0)
    failed: list = []
    server.httpd.handle_error = lambda request, address: failed.append(address)
    try:
        server.show(Shown(np.zeros((16, 16, 3), np.uint8), 0.0, 25.0))
        # The request is there to read, but whoever sent it has gone: every reply fails (EPIPE).
        ours, viewer = socket.socketpair()
        viewer.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        viewer.close()
        server.httpd.process_request_thread(ours, ("viewer", 0))  # as the server's thread runs it
    finally:
        server.close(completed=True)
    assert failed == []
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("index", ["99999999999999999999", "2147483648", 2**40])
def test_a_device_index_no_camera_can_have_is_a_usage_error_in_plain_words(index):
    """OpenCV takes an index as a C int; past that it refused with "VideoCapture() missing required
    argument 'apiPreference' (pos 2)", and the CLI exited 1 as for an unplugged camera."""
    from vidtrans.errors import UsageError
    from vidtrans.video.camera import Camera

    with pytest.raises(UsageError, match=rf"camera {index}: no device has so large an index; give --camera"):
        Camera(index).open()


def test_a_viewer_that_takes_nothing_is_dropped_not_kept_blocked(monkeypatch):
    """A viewer that stops reading (a frozen browser, a dead network path with no reset) blocked
    its server thread in a write forever, with its socket, also after the session closed."""
    import threading

    from vidtrans.live import sinks

    monkeypatch.setattr(sinks, "_VIEWER_TIMEOUT_S", 0.2, raising=False)
    server = MjpegServer("127.0.0.1", 0)
    ours, viewer = socket.socketpair()
    rng = np.random.default_rng(0)
    try:
        viewer.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
        handler = threading.Thread(target=server.httpd.process_request_thread, args=(ours, ("viewer", 0)), daemon=True)
        handler.start()
        noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)  # large JPEGs fill the socket's buffer
        for i in range(150):
            server.show(Shown(np.roll(noise, i, axis=1), float(i), 25.0))
            handler.join(0.02)
            if not handler.is_alive():
                break
        assert not handler.is_alive(), "the stalled viewer's thread is still writing"
    finally:
        viewer.close()  # lets a blocked write fail, so the thread ends either way
        server.close(completed=True)


class _Inverting:
    """An RGB model that inverts frames, at once."""

    import torch

    name, device, precision, input_kind, card, native_size = "fake", torch.device("cpu"), "fp32", "rgb", None, (48, 64)

    def translate(self, frames):
        return 255 - frames


def test_a_signal_while_the_camera_closes_keeps_the_recording_and_stats(tmp_path):
    """A camera that fell silent ends the session, then its stuck capture thread is waited for (up
    to 5 s); a Ctrl-C then, after frames were shown, threw the recording away and exited 130,
    where a signal after the first frame ends a session with its recording and stats (exit 0)."""
    import json

    import av

    from tests.media import make_clip
    from vidtrans.live import run_live
    from vidtrans.video.camera import Camera

    class SignalWhileClosing(Camera):
        def close(self):
            super().close()
            if self.captured and not getattr(self, "signalled", False):
                self.signalled = True
                raise KeyboardInterrupt("SIGTERM")  # as the CLI's handler raises it

    clip = make_clip(tmp_path / "cam.mp4", frames=8, size=(64, 48), fps=50, audio=False)
    record, stats_file = tmp_path / "r.mp4", tmp_path / "s.json"
    try:
        stats = run_live(_Inverting(), SignalWhileClosing(clip.path), window=False, max_frames=4, record=record,
                         stats=stats_file)
    except KeyboardInterrupt:
        pytest.fail("the signal ended the session as if it had shown nothing")
    assert stats.frames == 4
    with av.open(str(record)) as recording:
        assert sum(1 for _ in recording.decode(video=0)) == 4
    assert json.loads(stats_file.read_text())["frames"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file, no lock


def test_a_capture_stuck_in_a_read_is_not_released_under_it(monkeypatch):
    """close() gave up on a capture thread stuck in its driver after 5 s and then released the
    OpenCV capture that thread was still reading from (not thread-safe: freed memory in use when
    the read returns, a crash after the session). The thread now releases it when the read returns."""
    import threading

    import cv2

    from vidtrans.video import camera as camera_module

    monkeypatch.setattr(camera_module, "_CLOSE_WAIT_S", 0.1, raising=False)
    reading, unblock = threading.Event(), threading.Event()
    released_during_read: list[bool] = []

    from tests.test_live import FakeDevice

    class HangingDevice(FakeDevice):
        def __init__(self, *args):
            self.frames = 0

        def read(self):
            self.frames += 1
            if self.frames == 1:
                return True, np.zeros((48, 64, 3), np.uint8)
            reading.set()
            unblock.wait(10)  # the driver hangs until it is unplugged
            return False, None

        def release(self):
            released_during_read.append(reading.is_set() and not unblock.is_set())

    monkeypatch.setattr(cv2, "VideoCapture", HangingDevice)
    camera = camera_module.Camera(0).start()
    thread = camera._thread
    assert camera.get(timeout=5) is not None
    assert reading.wait(5)
    try:
        camera.close()  # gives up waiting for the thread
        assert released_during_read == []
    finally:
        unblock.set()
        thread.join(5)
    assert released_during_read == [False]  # released once, by the thread, after its read returned
