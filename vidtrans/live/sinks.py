"""Where live pictures go: every output is a `Sink`, and the loop hands each picture to a list of them.

A new output is one class with `show` and `close`, and one line in `open_sinks`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import logging
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from vidtrans.atomic import OutputClaim
from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.options import EncodeOptions, LiveOptions, plain, shown_path, spell
from vidtrans.video import VideoWriter, check_output_settings
from vidtrans.video.writer import check_output

log = logging.getLogger(__name__)

WINDOW_TITLE = "vidtrans live"
_JPEG_QUALITY = 80
# The longest side OpenCV's JPEG encoder takes (libjpeg's limit): a wider view is served scaled down to it.
_JPEG_MAX_SIDE = 65500
# A viewer whose connection takes nothing (or, before its request, sends nothing) for this long is
# dropped: its thread and socket would otherwise stay blocked after the session, as long as its program runs.
_VIEWER_TIMEOUT_S = 30.0
# ultrafast: recording shares the CPU with the model and must not cost frames.
_RECORD_ENCODE = EncodeOptions(preset="ultrafast", crf=20)
_RECORD_TIME_BASE = Fraction(1, 1000)  # capture times in milliseconds
# The containers a recording goes to: they hold H.264 with the capture times as timestamps.
# Others either cannot hold H.264 (.webm) or keep no timestamps of their own (.avi: its frames
# come at one fixed rate, and millisecond capture times make a broken file of 1000 fps).
_RECORD_SUFFIXES = (".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class Shown:
    """A picture for the sinks."""

    image: np.ndarray  # the view, without the HUD
    captured_at: float  # time.perf_counter() when the camera captured it
    fps: float  # the camera's nominal frame rate
    hud: tuple[str, ...] = ()  # status lines, for sinks that overlay them
    # The same picture again (paused, or waiting for the camera): a window redraws it to read its
    # keys; sinks that stream or record skip it.
    repeat: bool = False

    def again(self, hud: tuple[str, ...]) -> Shown:
        return dataclasses.replace(self, hud=hud, repeat=True)


class Sink(Protocol):
    def show(self, shown: Shown) -> str | None:
        """Take a picture; return the user's action (quit, pause, view, snapshot) or None."""

    def close(self, completed: bool) -> None:
        """The run is over; `completed` when it ended normally (a file is kept only then)."""


def open_sinks(options: LiveOptions, stack: contextlib.ExitStack) -> list[Sink]:
    """The sinks `options` ask for, in the order they see each picture; `stack` closes them.
    What they would refuse was checked before (`vidtrans.live.loop.check_live`)."""
    wanted = [(options.record is not None, lambda: Recorder(Path(options.record), options.overwrite)),
              (options.virtual_cam, VirtualCamera),
              (options.window, PreviewWindow),
              (options.serve is not None, lambda: MjpegServer(*options.serve_address))]
    sinks: list[Sink] = []
    for want, make in wanted:
        if want:
            sink = make()
            stack.push(lambda exc_type, *_, sink=sink: sink.close(completed=exc_type is None))
            sinks.append(sink)
    return sinks


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to fit width x height, centred on black (aspect ratio kept)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    x, y = (width - new_w) // 2, (height - new_h) // 2
    out[y:y + new_h, x:x + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return out


def draw_hud(image: np.ndarray, lines: Iterable[str]) -> np.ndarray:
    out = image.copy()
    scale = max(0.4, image.shape[0] / 720)
    for i, text in enumerate(lines):
        origin = (8, round((i + 1) * 22 * scale + 4))
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _without_window() -> str:
    """How to run live without its preview window, as the caller spells options (flags on the
    command line, field names in Python)."""
    return (f"run with {spell('window=False')} and watch through {spell('serve')}, {spell('record')} or "
            f"{spell('virtual_cam')}")


# How long a display may take to let a window open before it counts as unusable.
_DISPLAY_ANSWER_S = 30


def check_display() -> None:
    """UsageError (the CLI exits 2) where the preview window, asked for (it is the default), cannot
    open: the options make no sense here. On Linux OpenCV's windows are Qt's, and Qt aborts the
    whole process rather than raising when it cannot reach the display (DISPLAY unset, or naming
    a display that is gone, as over a closed SSH forwarding), so a child process opens one first."""
    if not sys.platform.startswith("linux"):
        return
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not display:
        raise UsageError(f"no display for the preview window (DISPLAY is not set); {_without_window()}")
    if (problem := _display_problem(display)) is not None:
        raise UsageError(f"cannot open the preview window on display {display} ({problem}); {_without_window()}")


@functools.cache
def _display_problem(display: str) -> str | None:
    """Why Qt cannot open a window on `display` (what it said), or None when it can (or when
    OpenCV raises an error of its own there, as one without window support does)."""
    try:
        probe = subprocess.run([sys.executable, "-c", _OPEN_A_WINDOW], capture_output=True, text=True,
                               timeout=_DISPLAY_ANSWER_S)
    except subprocess.TimeoutExpired:
        return f"it did not answer within {_DISPLAY_ANSWER_S} s"
    if probe.returncode >= 0:
        return None
    said = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
    return said[0] if said else f"Qt ended with signal {-probe.returncode}"


_OPEN_A_WINDOW = "import cv2; cv2.namedWindow('vidtrans'); cv2.destroyAllWindows()"


class PreviewWindow:
    """An OpenCV window with the HUD; `show` returns the action of the key pressed."""

    _KEYS = {ord("q"): "quit", 27: "quit", ord(" "): "pause", ord("v"): "view", ord("s"): "snapshot"}

    def __init__(self) -> None:
        try:
            cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        except cv2.error as e:
            raise UsageError(f"this OpenCV has no window support (opencv-python-headless?); {_without_window()}, "
                             "or install opencv-python") from e
        self.opened = False

    def show(self, shown: Shown) -> str | None:
        image = draw_hud(shown.image, shown.hud)
        cv2.imshow(WINDOW_TITLE, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not self.opened:
            cv2.resizeWindow(WINDOW_TITLE, image.shape[1], image.shape[0])
            self.opened = True
        key = cv2.waitKey(1) & 0xFF
        if cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1:
            return "quit"  # closed with the mouse
        return self._KEYS.get(key)

    def close(self, completed: bool) -> None:
        cv2.destroyWindow(WINDOW_TITLE)
        cv2.waitKey(1)


class Recorder:
    """The view as a video, at the size of the first picture (later ones are letterboxed into it),
    with pts = milliseconds from the first capture (time base 1/1000), strictly increasing: pauses
    and dropped frames show as longer frame durations rather than speeding the video up."""

    def __init__(self, path: Path, overwrite: bool):
        self.path, self.overwrite = path, overwrite
        # Claimed for the whole session, from before the model's warm-up, not from its first frame: a
        # second session recording into the same file is refused before it shows anything.
        self._claim = OutputClaim(path, shared=True)
        self.writer: VideoWriter | None = None
        self.origin = 0.0
        self.last_pts = -1

    def show(self, shown: Shown) -> None:
        if shown.repeat:
            return
        if self.writer is None:
            height, width = shown.image.shape[:2]
            width, height = _recordable_size(self.path, width, height, shown.fps)
            self.writer = VideoWriter(self.path, width, height, time_base=_RECORD_TIME_BASE, fps=shown.fps,
                                      encode=_RECORD_ENCODE, overwrite=self.overwrite)
            self.origin = shown.captured_at
        image = letterbox(shown.image, self.writer.width, self.writer.height)
        pts = max(round((shown.captured_at - self.origin) * 1000), self.last_pts + 1)
        self.writer.write(image, pts)
        self.last_pts = pts

    def close(self, completed: bool) -> None:
        """Move the recording into place when the run completed and it has frames; else delete it,
        and also when finishing it fails or is interrupted (Ctrl-C, SIGTERM): no partial file is left."""
        try:
            if self.writer is None:
                return
            if not (completed and self.writer.frames_written):
                self.writer.abort()
                return
            try:
                self.writer.close()
            except BaseException:
                self.writer.abort()
                raise
        finally:
            self._claim.release()


def _recordable_size(path: Path, width: int, height: int, fps: float) -> tuple[int, int]:
    """(width, height) to record pictures of `width` x `height` at: theirs, or where the encoder takes
    no frame that large (a camera 9000 pixels wide makes a side view of 18000), the largest of half,
    a quarter... of it that it takes, told in one warning. The view's size follows from the camera
    and the model and is known at the first picture, once the session runs: the recording is scaled,
    as later pictures of another size are, rather than the session ending there."""
    scale = 1
    while True:
        size = (max(2, width // scale), max(2, height // scale))
        try:
            check_output(path, *size, _RECORD_TIME_BASE, fps, _RECORD_ENCODE)
        except VidtransError:
            if size == (2, 2):
                raise
            scale *= 2
            continue
        if scale > 1:
            log.warning("%s %s: the view, %dx%d, is larger than %s records; recorded at %dx%d", spell("record"),
                        shown_path(path), width, height, _RECORD_ENCODE.codec, *size)
        return size


def check_recording_name(path: Path) -> None:
    """UsageError unless `path` names a file the recording can go to: one of _RECORD_SUFFIXES, that
    this FFmpeg can write H.264 into (`check_output_settings`). The fix offered is the extension:
    live has no --codec (it records H.264, the one it can encode as fast as the camera delivers)."""
    if path.suffix.lower() not in _RECORD_SUFFIXES:
        kind = f"a {path.suffix} file" if path.suffix else "a file without an extension"
        raise UsageError(f"{spell('record')} {path}: live records H.264 with the capture times only into "
                         f"{', '.join(_RECORD_SUFFIXES[:-1])} or {_RECORD_SUFFIXES[-1]} files, not {kind}; "
                         f"record to {path.with_suffix(_RECORD_SUFFIXES[0])} instead")
    check_output_settings(path, _RECORD_ENCODE)  # the encoder itself may be missing


def virtual_camera_module():
    """pyvirtualcam, or VidtransError saying how to install it."""
    try:
        import pyvirtualcam
    except ImportError as e:
        raise VidtransError(f"{spell('virtual_cam')} needs pyvirtualcam: pip install 'vidtrans[live]'") from e
    return pyvirtualcam


class VirtualCamera:
    """The view as a virtual webcam (pyvirtualcam: v4l2loopback, OBS, Unity Capture), at the first picture's size."""

    def __init__(self) -> None:
        self.module = virtual_camera_module()
        self.camera = None

    def show(self, shown: Shown) -> None:
        if shown.repeat:
            return
        if self.camera is None:
            height, width = shown.image.shape[:2]
            try:
                self.camera = self.module.Camera(width=width, height=height, fps=max(1.0, shown.fps),
                                                 fmt=self.module.PixelFormat.RGB)
            except Exception as e:  # pyvirtualcam raises RuntimeError or backend-specific errors
                raise VidtransError(f"{spell('virtual_cam')}: no virtual camera available ({first_line(e)}); on "
                                    "Linux load v4l2loopback (modprobe v4l2loopback), elsewhere install OBS") from e
        self.camera.send(np.ascontiguousarray(letterbox(shown.image, self.camera.width, self.camera.height)))

    def close(self, completed: bool) -> None:
        if self.camera is not None:
            self.camera.close()


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>vidtrans live</title>
<style>body{margin:0;background:#111;color:#ccc;font:14px sans-serif;text-align:center}
img{max-width:100vw;max-height:92vh}</style></head>
<body><img id="view" src="/stream.mjpg" alt="live view"><div id="status">connecting</div>
<canvas id="probe" width="32" height="24" hidden></canvas>
<script>
// Counts the distinct pictures received, so a stalled stream shows in the page and its title.
const img = document.getElementById("view"), probe = document.getElementById("probe").getContext("2d");
let last = null, distinct = 0;
setInterval(() => {
  if (!img.naturalWidth) return;
  probe.drawImage(img, 0, 0, 32, 24);
  const px = probe.getImageData(0, 0, 32, 24).data;
  let h = 0;
  for (let i = 0; i < px.length; i++) h = (h * 31 + px[i]) | 0;
  if (h !== last) { last = h; distinct++; }
  document.getElementById("status").textContent = distinct + " frames received";
  document.title = "vidtrans live: " + distinct + " frames";
}, 100);
</script></body></html>
"""


def listening(host: str, port: int, handler: type[BaseHTTPRequestHandler] = BaseHTTPRequestHandler
              ) -> ThreadingHTTPServer:
    """An HTTP server listening at host:port, or the reason it cannot in one line: UsageError for a
    host that is not this machine's, VidtransError for a port that is taken (it may be free later)."""
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        named = plain(host)
        where = f"{spell('serve')} {named}:{port}: cannot listen"
        if isinstance(e, socket.gaierror) or e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise UsageError(f"{where} on host {named} ({e.strerror}): not an IPv4 address or name of this "
                             "machine; give one that is, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (all "
                             "its networks)") from None
        raise VidtransError(f"{where} there ({e.strerror}); choose another port") from e


class MjpegServer:
    """Serves a page at / and the view as an MJPEG stream at /stream.mjpg, from a thread.
    Port 0 takes a free port; `url` says which."""

    def __init__(self, host: str, port: int):
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        self._told_smaller = False  # the warning that the view is served scaled down, given once
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = _VIEWER_TIMEOUT_S  # on each blocking read or write of the connection

            def handle(self) -> None:
                # A viewer may go away at any point (a closed tab, a reset connection), also before
                # its reply's headers: that ends its request, never with socketserver's traceback
                # on the terminal, which belongs to the live statistics.
                try:
                    super().handle()
                except OSError:
                    pass

            def do_GET(self) -> None:
                # Without its query string: a page embedding the stream adds one (?t=...) to keep
                # browsers from caching it.
                path = urllib.parse.urlsplit(self.path).path
                if path in ("/", "/index.html"):
                    body = _PAGE.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif path == "/stream.mjpg":
                    server._stream(self)
                else:
                    self.send_error(404)

            def log_message(self, *args) -> None:
                pass  # the terminal belongs to the live statistics

        self.httpd = listening(host, port, Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # Listening on every network (0.0.0.0, also spelled 0) is no address a browser can open: this
        # machine opens 127.0.0.1, others its name; and anyone who can reach it can watch.
        everywhere = self.httpd.server_address[0] == "0.0.0.0"
        self.host = "127.0.0.1" if everywhere else host
        if everywhere:
            log.warning("%s %s:%d listens on all this machine's networks: anyone who can reach it can watch, at "
                        "http://%s:%d/ (here %s)", spell("serve"), host, self.port, socket.gethostname(), self.port,
                        self.url)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="vidtrans-serve", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def show(self, shown: Shown) -> None:
        if shown.repeat:
            return
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(self._servable(shown.image), cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if ok:
            with self._cond:
                self._jpeg, self._seq = jpeg.tobytes(), self._seq + 1
                self._cond.notify_all()

    def _servable(self, image: np.ndarray) -> np.ndarray:
        """`image`, or where JPEG cannot hold it (a side view of a camera tens of thousands of pixels
        wide: the encoder refuses it, and viewers would get nothing) scaled down to fit, told once."""
        height, width = image.shape[:2]
        if max(width, height) <= _JPEG_MAX_SIDE:
            return image
        scale = _JPEG_MAX_SIDE / max(width, height)
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        if not self._told_smaller:
            log.warning("%s %s:%d: the view, %dx%d, is larger than JPEG holds (%d pixels a side); served at %dx%d",
                        spell("serve"), self.host, self.port, width, height, _JPEG_MAX_SIDE, *size)
            self._told_smaller = True
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        handler.send_header("Cache-Control", "no-cache, no-store")
        handler.end_headers()
        seen = 0
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._seq != seen, timeout=1.0)
                    if self._closed:
                        return
                    if self._seq == seen:
                        continue
                    jpeg, seen = self._jpeg, self._seq
                handler.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                    + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                handler.wfile.flush()
        except OSError:
            pass  # the viewer went away (broken pipe, reset, aborted or timed-out connection)

    def close(self, completed: bool) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()
