"""A live frame source: a camera, or a video file or URL standing in for one, read in its own thread.

Latest frame wins: the capture thread keeps a one-slot buffer, and a frame that has not been taken
by the time the next one arrives is dropped (and counted). A slow consumer therefore always gets
the newest frame and latency stays bounded, instead of a queue growing behind it.

Files and URLs are paced to their own frame rate (the thread sleeps until each frame is due), so
they behave like a camera; `loop` plays a file again from the start when it ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidtrans.errors import VidtransError

# Beyond this lag a paced file stops trying to catch up (a burst of frames would only be dropped).
_MAX_LAG_S = 0.5
_FPS_WINDOW = 30


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
    """OpenCV logs warnings and errors of its own for a camera it cannot open; vidtrans reports one line."""
    before = set_opencv_log_level(1)  # fatal only
    try:
        yield
    finally:
        if before is not None:
            set_opencv_log_level(before)


class Camera:
    """Frames from `source`: a device index (0, "0"), a video file path, or a URL (rtsp://, http://...).

    `size` (width, height) asks a device for that resolution and resizes every frame to it.
    Use as a context manager, or call `start()` and `close()`. `get(timeout)` returns the newest
    frame not yet taken, or None (nothing new within `timeout`; check `ended`).
    """

    def __init__(self, source: int | str | os.PathLike, size: tuple[int, int] | None = None, loop: bool = False):
        self.source = source
        self.kind, self._target = _classify(source)
        self.size = size
        self.loop = loop
        self.captured = 0
        self.dropped = 0
        self.ended = False
        self.end_reason = ""
        self.nominal_fps = 0.0
        self._times: deque[float] = deque(maxlen=_FPS_WINDOW)
        self._slot: CapturedFrame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap: cv2.VideoCapture | None = None
        self._frame_size: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"camera {self._target}" if self.kind == "device" else str(self._target)

    @property
    def fps(self) -> float:
        """Frame rate measured over the last frames captured (0 until there are two)."""
        with self._cond:
            times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def start(self) -> "Camera":
        self._cap = self._open()
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
            self._thread.join(timeout=5)
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "Camera":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # --- capture thread --------------------------------------------------------------------------

    def _open(self) -> cv2.VideoCapture:
        if self.kind == "file" and not Path(self._target).is_file():
            raise VidtransError(f"{self._target}: no such video file; give --camera a device index, a file or a URL")
        try:
            with _quiet_opencv():
                cap = self._capture()
        except cv2.error as e:
            raise VidtransError(f"{self.name}: cannot open it ({str(e).strip().splitlines()[-1]})") from e
        if cap is None:
            hint = ("check that it is connected and not used by another program, or pick another index"
                    if self.kind == "device" else "check that it is a readable video")
            raise VidtransError(f"{self.name}: cannot open it; {hint}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = fps if 0 < fps < 1000 else 30.0
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
        if self.kind != "file":
            # Keep at most one frame queued in the driver/demuxer: older frames only add latency.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self.kind == "device":
            # Most USB cameras deliver full frame rates only as MJPG; set() is a no-op where unsupported.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
            if self.size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        return cap

    def _run(self) -> None:
        paced = self.kind != "device"
        interval = 1.0 / self.nominal_fps
        anchor, played = time.perf_counter(), 0
        while not self._stop.is_set():
            ok, bgr = self._cap.read()
            if not ok:
                if self.kind == "file" and self.loop and played > 0:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    anchor, played = time.perf_counter() + interval, 0
                    continue
                self._finish("end of file" if self.kind == "file" else f"{self.name} stopped delivering frames")
                return
            if paced:
                due = anchor + played * interval
                wait = due - time.perf_counter()
                if wait > 0:
                    if self._stop.wait(wait):
                        return
                elif wait < -_MAX_LAG_S:
                    anchor, played = time.perf_counter(), 0
            played += 1
            self._put(self._to_rgb(bgr))

    def _to_rgb(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        height, width = bgr.shape[:2]
        if self._frame_size is None:
            self._frame_size = self.size or (width, height)
        # A stream may change resolution mid-way; consumers rely on one frame size.
        if (width, height) != self._frame_size:
            bgr = cv2.resize(bgr, self._frame_size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _put(self, image: np.ndarray) -> None:
        now = time.perf_counter()
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = CapturedFrame(image, now, self.captured)
            self.captured += 1
            self._times.append(now)
            self._cond.notify_all()

    def _finish(self, reason: str) -> None:
        with self._cond:
            self.ended = True
            self.end_reason = reason
            self._cond.notify_all()


def _classify(source: int | str | os.PathLike) -> tuple[str, int | str]:
    """("device", index), ("url", url) or ("file", path)."""
    if isinstance(source, int):
        return "device", source
    text = str(source)
    if text.isdigit():
        return "device", int(text)
    if "://" in text:
        return "url", text
    return "file", text
