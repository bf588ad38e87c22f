"""A live frame source: a camera, or a video file or URL standing in for one, read in its own thread.

Latest frame wins: the capture thread keeps a one-slot buffer, and a frame that has not been taken
by the time the next one arrives is dropped (and counted). A slow consumer therefore always gets
the newest frame and latency stays bounded, instead of a queue growing behind it.

Files, and streams whose frames carry timestamps, are paced by those times (the thread sleeps until
each frame is due), so they behave like a camera; devices, and streams without timestamps (MJPEG
over HTTP), deliver at their own rate and are handed on as they come. `loop` plays a file again
from the start when it ends. Files are decoded as `vidtrans run` decodes them (`VideoReader`:
upright, rotation metadata applied); devices and URLs through OpenCV. A failure in the capture thread ends the capture, and `error` says why; so does a
file that changed while it played (cut short or rewritten: its end is not the clip's).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.options import check_path_text, is_digits, shown, shown_path, without_password
from vidtrans.video.reader import VideoReader, file_identity, not_a_video_file

T = TypeVar("T")

# Beyond this lag a paced file stops trying to catch up (a burst of frames would only be dropped).
_MAX_LAG_S = 0.5
# The longest a file camera shows one picture (see `Camera._run`): well below the silence after which
# live takes a camera for gone (`live.loop.STALL_S`).
_MAX_HOLD_S = 2.0
_FPS_WINDOW = 30
# How long `Camera.close` waits for the capture thread: a read that does not return by then (a
# driver or stream that hangs) is left to its thread, which releases the source once it returns.
_CLOSE_WAIT_S = 5.0


@dataclass
class CapturedFrame:
    image: np.ndarray  # uint8 RGB (H, W, 3)
    time: float  # time.perf_counter() when the frame was captured
    index: int  # capture order, counting dropped frames


def set_opencv_log_level(level: int) -> int | None:
    """Set OpenCV's own log level (0 silent, 1 fatal only, ...); returns the previous one, or None
    where this OpenCV has no such setting. OpenCV 5 moved the functions to cv2.utils.logging."""
    for owner in (cv2, getattr(getattr(cv2, "utils", None), "logging", None)):
        if hasattr(owner, "setLogLevel") and hasattr(owner, "getLogLevel"):
            before = owner.getLogLevel()
            owner.setLogLevel(level)
            return before
    return None


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs warnings and errors of its own for a camera it cannot open, and the FFmpeg inside
    it (its own copy, not PyAV's) prints its errors ("Connection refused") straight to stderr;
    vidtrans reports one line."""
    before = set_opencv_log_level(1)  # fatal only
    # OpenCV reads this when it first opens something through FFmpeg, and keeps the level for the
    # process; a level the user set stays.
    quieted = "OPENCV_FFMPEG_LOGLEVEL" not in os.environ
    if quieted:
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET
    try:
        yield
    finally:
        if quieted:
            del os.environ["OPENCV_FFMPEG_LOGLEVEL"]  # not passed on to child processes
        if before is not None:
            set_opencv_log_level(before)


def _identity(path: str | os.PathLike) -> dict[str, Any] | None:
    """`file_identity` of `path` and which file it is (device and inode), or None where there is
    no file to read there (now)."""
    try:
        info = os.stat(path)
        return {**file_identity(path), "inode": (info.st_dev, info.st_ino)}
    except OSError:
        return None


def _usable_fps(fps: float) -> float:
    """A source's stated frame rate, or 30 when it states none (or nonsense)."""
    return fps if 0 < fps < 1000 else 30.0


class Camera:
    """Frames from `source`: a device index (0, "0"), a video file path, or a URL (rtsp://, http://...;
    a file: URL is the file it names).

    `size` (width, height) asks a device for that resolution and resizes every frame to it.
    Use as a context manager, or call `start()` and `close()`. `get(timeout)` returns the newest
    frame not yet taken, or None (nothing new within `timeout`; check `ended`, and `error`, a
    VidtransError, when the capture failed).
    """

    def __init__(self, source: int | str | os.PathLike, size: tuple[int, int] | None = None, loop: bool = False):
        self.source = source
        self.kind, self._target = _classify(source)
        self.size = size
        self.loop = loop
        self.captured = 0
        self.dropped = 0
        self.corrupt_frames = 0  # a file camera's damaged frames, over every pass (see `VideoReader`)
        self.ended = False
        self.end_reason = ""
        self.error: VidtransError | None = None
        self.nominal_fps = 0.0
        self._times: deque[float] = deque(maxlen=_FPS_WINDOW)
        self._slot: CapturedFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap: cv2.VideoCapture | None = None
        self._reader: VideoReader | None = None  # a file source, as opened
        self._identity: dict[str, Any] | None = None  # a file source, as its pass began
        self._pictures: Iterator[tuple[np.ndarray, float | None]] | None = None
        self._frame_size: tuple[int, int] | None = None
        self._ran = False  # the capture thread is done with the source
        self._left_to_thread = False  # close() left the source to a capture thread stuck in a read

    @property
    def name(self) -> str:
        """The source as messages and the session's description show it (a URL without its password)."""
        if self.kind == "device":
            return f"camera {self._target}"
        return without_password(self._target) if self.kind == "url" else str(self._target)

    @property
    def file(self) -> str | None:
        """The file a file camera plays (the path a file: URL names), None for a device or stream: the
        session's input, which none of its outputs may replace."""
        return self._target if self.kind == "file" else None

    @property
    def fps(self) -> float:
        """Frame rate measured over the last frames captured (0 until there are two)."""
        with self._cond:
            times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def open(self) -> "Camera":
        """Open the source now, failing here (VidtransError) when it cannot be read, without
        capturing yet: a missing camera is told before a model loads."""
        if self._pictures is None:
            self._pictures = self._open()
        return self

    def start(self) -> "Camera":
        self.open()
        self._thread = threading.Thread(target=self._run, name="vidtrans-capture", daemon=True)
        self._thread.start()
        return self

    def get(self, timeout: float) -> CapturedFrame | None:
        with self._cond:
            if self._slot is None and not self.ended:
                self._cond.wait(timeout)
            frame, self._slot = self._slot, None
            return frame

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_CLOSE_WAIT_S)
            with self._cond:
                # Releasing an OpenCV capture (or closing a reader) while another thread reads from
                # it frees what that read uses: a crash when the read returns.
                self._left_to_thread = not self._ran
            self._thread = None
            if self._left_to_thread:
                self._cap = self._reader = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._reader is not None:  # a file opened but never played closes here, not in _file_pictures
            self._reader.close()
            self._reader = None

    def __enter__(self) -> "Camera":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- capture thread --------------------------------------------------------------------------

    def _open(self) -> Iterator[tuple[np.ndarray, float | None]]:
        """Opens the source, failing here (in the caller's thread) when it cannot be read; returns
        its pictures, uint8 RGB, with the times a file shows them at (see `_run`)."""
        if self.kind == "file":
            self._reader = self._open_file()
            return self._file_pictures(self._reader)
        self._cap = self._open_capture()
        return self._capture_pictures(self._cap)

    def _open_file(self) -> VideoReader:
        problem = not_a_video_file(self._target)
        if problem is not None:
            raise VidtransError(f"{shown_path(self._target)}: {problem}; give --camera a video file, a device index "
                                "or a URL")
        reader = self._pass()
        self.nominal_fps = _usable_fps(reader.info.fps)
        return reader

    def _pass(self) -> VideoReader:
        """The file opened for a pass, and what it is now (`_check_unchanged` compares)."""
        self._identity = _identity(self._target)
        return VideoReader(self._target)  # FFmpeg logs as configured, e.g. silenced by the CLI

    def _check_unchanged(self) -> None:
        """A pass through a file that changed since the pass opened it ended early, not at the clip's
        end: another program cut it short or rewrote it (or is still writing it). A file that is gone,
        or another file put in its place (a new version saved and renamed over it), was read whole (an
        open file stays readable); a loop's next pass plays the new one, or tells it is missing."""
        now = _identity(self._target)
        if now is not None and self._identity is not None and now["inode"] == self._identity["inode"] \
                and now != self._identity:
            raise VidtransError(f"{shown_path(self._target)}: changed while live played it (another program cut it short, "
                                "rewrote it or is still writing it), so its video ended early; play it again once "
                                "it is complete")

    def _file_pictures(self, reader: VideoReader) -> Iterator[tuple[np.ndarray, float | None]]:
        """The file's frames, upright, each with the time it is shown at (seconds, counted on across
        passes); from the start again when it ends and `loop` is on (unless a pass gave no frame:
        then it ends). A pass lasts from its first frame's time to its last's plus one frame at the
        nominal rate (a file whose video starts after its audio starts each pass at once)."""
        offset, corrupt = 0.0, 0
        while True:
            first = last = None
            with reader:
                for frame in reader:
                    self.corrupt_frames = corrupt + reader.corrupt_frames
                    first = frame.time if first is None else first
                    last = frame.time
                    yield frame.image, offset + last - first
            corrupt = self.corrupt_frames = corrupt + reader.corrupt_frames
            self._check_unchanged()
            if not (self.loop and first is not None):
                return
            offset += last - first + 1.0 / self.nominal_fps
            reader = self._pass()

    def _open_capture(self) -> cv2.VideoCapture:
        try:
            with _quiet_opencv():
                # A device opens on this thread: macOS's AVFoundation wants cameras opened on the
                # main thread, and a device answers at once, where a stream may keep us waiting.
                cap = _interruptibly(self._capture) if self.kind == "url" else self._capture()
        except cv2.error as e:
            raise VidtransError(f"{self.name}: cannot open it ({str(e).strip().splitlines()[-1]})") from e
        if cap is None:
            hint = ("check that it is connected and not used by another program, or pick another index"
                    if self.kind == "device" else "check that it is a reachable video stream")
            raise VidtransError(f"{self.name}: cannot open it; {hint}")
        self.nominal_fps = _usable_fps(cap.get(cv2.CAP_PROP_FPS))
        return cap

    def _capture(self) -> cv2.VideoCapture | None:
        """The opened capture with a low-latency setup, or None when it cannot be opened."""
        if self.kind == "device":
            cap = cv2.VideoCapture(int(self._target))
        else:
            cap = cv2.VideoCapture(str(self._target), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            return None
        # Keep at most one frame queued in the driver/demuxer: older frames only add latency.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.kind == "device":
            # Most USB cameras deliver full frame rates only as MJPG; set() is a no-op where unsupported.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
            if self.size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        return cap

    def _capture_pictures(self, cap: cv2.VideoCapture) -> Iterator[tuple[np.ndarray, float | None]]:
        """Pictures as OpenCV delivers them: a stream's with its timestamp where it has one, a device's without."""
        timed = self.kind == "url"
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            picture = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB if bgr.ndim == 2 else cv2.COLOR_BGR2RGB)
            yield picture, _stream_time(cap) if timed else None

    def _run(self) -> None:
        """Hands pictures over: one with a time (a file's frame, a timestamped stream's) at that time,
        so a file plays in real time, its variable frame rate kept (a pause in a phone clip stays a
        pause); one without (a device's, an MJPEG stream's) as it comes. Such a source delivers at its
        own rate: held to one of ours (the nominal rate OpenCV states, a guess for MJPEG), pictures
        of a faster stream piled up in its connection, and the view fell ever further behind."""
        cap = self._cap  # close() may leave it to this thread (a file's reader closes with `_pictures`)
        anchor = origin = last_put = None
        try:
            for image, shown_at in self._pictures:
                if self._stop.is_set():
                    return
                if shown_at is not None:
                    if origin is None:
                        # From the first picture on, not from before it was decoded: a first picture
                        # ready late moved every later one closer to it (the camera faster than it is).
                        anchor, origin = time.perf_counter(), shown_at
                    due = anchor + shown_at - origin
                    if last_put is not None and due - last_put > _MAX_HOLD_S:
                        # A picture held for long (a screen recording's pause) is cut short: a camera
                        # silent for seconds is taken for one that is gone.
                        anchor, origin = last_put + _MAX_HOLD_S, shown_at
                        due = anchor
                    wait = due - time.perf_counter()
                    if wait > 0:
                        if self._stop.wait(wait):
                            return
                    elif wait < -_MAX_LAG_S:  # fallen behind (a slow disk or stream): go on from now
                        anchor, origin = time.perf_counter(), shown_at
                self._put(self._sized(image))
                last_put = time.perf_counter()
        # Whatever fails here (a file that turns out damaged, a picture too large to resize) would
        # otherwise end this thread with a traceback and leave the consumer waiting for frames.
        except Exception as e:
            hint = "; capture at a smaller size" if self.size is not None else ""
            error = e if isinstance(e, VidtransError) else VidtransError(
                f"{self.name}: capture failed ({first_line(e)}){hint}")
            self._finish(str(error), error)
            return
        finally:
            self._pictures.close()
            with self._cond:
                self._ran = True
                left = self._left_to_thread
            if left and cap is not None:  # close() gave up waiting for this read
                cap.release()
        if self._stop.is_set():  # closed: a read cut short by the close is no failure
            return
        if self.kind == "device":  # a camera does not end by itself: unplugged, or taken by another program
            self.fail(f"{self.name} stopped delivering frames; check that it is plugged in and that no other "
                      "program took it")
        else:
            self._finish("end of file" if self.kind == "file" else f"{self.name} stopped delivering frames")

    def fail(self, reason: str) -> None:
        """End the capture as failed, with `reason` as its error: the camera stopped delivering
        frames, or (as its consumer judges) went silent."""
        self._finish(reason, VidtransError(reason))

    def _sized(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if self._frame_size is None:
            self._frame_size = self.size or (width, height)
        # A stream may change resolution mid-way; consumers rely on one frame size.
        if (width, height) != self._frame_size:
            image = cv2.resize(image, self._frame_size, interpolation=cv2.INTER_AREA)
        return image

    def _put(self, image: np.ndarray) -> None:
        now = time.perf_counter()
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = CapturedFrame(image, now, self.captured)
            self.captured += 1
            self._times.append(now)
            self._cond.notify_all()

    def _finish(self, reason: str, error: VidtransError | None = None) -> None:
        with self._cond:
            if self.ended:  # the first reason stands (a consumer's `fail`, then the thread's own end)
                return
            self.ended = True
            self.end_reason = reason
            self.error = error
            self._cond.notify_all()


def _stream_time(cap: cv2.VideoCapture) -> float | None:
    """The timestamp of the picture `cap` read last, in seconds; None for a stream without timestamps,
    for which OpenCV's figure is nonsense (-3.7e20 for MJPEG over HTTP)."""
    ms = cap.get(cv2.CAP_PROP_POS_MSEC)
    return ms / 1000.0 if math.isfinite(ms) and ms >= 0 else None


def _interruptibly(call: Callable[[], T]) -> T:
    """`call()` in a thread of its own, waited for in short steps: OpenCV opening a stream that
    does not answer waits up to 30 s in FFmpeg, and the main thread handles signals (Ctrl-C) only
    between Python steps. An interrupted call is left to finish in the background."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as e:  # handed to the caller
            outcome.append((False, e))

    thread = threading.Thread(target=run, name="vidtrans-camera-open", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


# OpenCV takes a device index as a C int: a larger one names no camera (and OpenCV's refusal of it
# reads as a wrong call: "missing required argument 'apiPreference'").
_MAX_DEVICE_INDEX = 2**31 - 1


def _classify(source: int | str | os.PathLike) -> tuple[str, int | str]:
    """("device", index), ("url", url) or ("file", path)."""
    # From Python only (the command line gives text): True would be device 1, None a file named "None".
    if isinstance(source, bool) or not isinstance(source, (int, np.integer, str, os.PathLike)):
        raise UsageError(f"camera {shown(source)}: give a device index (0 is the first camera), a video file path "
                         "or a URL")
    if isinstance(source, (int, np.integer)) and source >= 0:
        return "device", _device_index(int(source))
    text = os.fspath(source) if isinstance(source, (str, os.PathLike)) else str(source)
    if is_digits(text):
        return "device", _device_index(int(text))
    # Not files: "" would be the current folder, "-1" a device index that cannot be.
    if not text.strip() or (text.startswith("-") and is_digits(text[1:]) and not Path(text).exists()):
        raise UsageError(f"camera {text!r}: give --camera a device index (0 is the first camera), a video file or "
                         "a URL")
    check_path_text(text, "camera")  # a NUL fits no file name or URL
    if "://" in text:
        path = _file_url_path(text)
        return ("url", text) if path is None else ("file", path)
    return "file", text


def _file_url_path(url: str) -> str | None:
    """The path of a file: URL (file:///home/me/a%20b.mp4 -> /home/me/a b.mp4), None for other URLs.
    Such a camera is a local file: played as `run` decodes it, and the session's input, which
    --record and --stats may not replace (opened as a stream, through OpenCV, it could be replaced)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    path = urllib.request.url2pathname(parts.path)
    if parts.netloc.lower() not in ("", "localhost") or not path:
        raise UsageError(f"camera {shown(url)}: a file URL names a file of this machine, as in "
                         "file:///home/me/clip.mp4; give --camera that file's path, a device index or a URL")
    return path


def _device_index(index: int) -> int:
    if index > _MAX_DEVICE_INDEX:
        raise UsageError(f"camera {index}: no device has so large an index; give --camera a device index (0 is the "
                         "first camera), a video file or a URL")
    return index
