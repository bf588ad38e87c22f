"""Probe and decode video files into upright uint8 RGB frames with their original timestamps.

Timestamps are kept exactly as the container has them (`Frame.pts` in `Frame.time_base`), so a
writer that reuses them reproduces variable-frame-rate timing. Lost frames (see `VideoReader`)
are replaced, not skipped, so the frame sequence keeps the container's timing.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vidtrans.errors import VidtransError

log = logging.getLogger(__name__)

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds out about a file's first video stream.

    width, height: display size, i.e. after rotation (a portrait phone clip reports height > width).
    fps: average frame rate. frame_count: best estimate, 0 if unknown. duration: seconds.
    rotation: clockwise degrees (0/90/180/270) applied to the stored picture to show it upright.
    codec, pix_fmt: of the video stream as stored (e.g. "h264", "yuv420p").
    """

    width: int
    height: int
    fps: float
    time_base: Fraction
    frame_count: int
    duration: float
    rotation: int
    has_audio: bool
    codec: str
    pix_fmt: str


@dataclass
class Frame:
    """One decoded picture: `image` is uint8 RGB (H, W, 3), upright, contiguous."""

    image: np.ndarray
    pts: int
    time_base: Fraction
    index: int

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


def _open(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a file for reading and pick its video stream, turning every failure into one line."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VidtransError(f"{name}: file not found (check the path)")
    if os.path.isdir(name):
        raise VidtransError(f"{name}: is a folder, not a video file (pass a video file)")
    try:
        container = av.open(name, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VidtransError(f"{name}: not a readable video file ({_reason(e)}); pass a video such as .mp4/.mov/.mkv") from e
    if not container.streams.video:
        container.close()
        raise VidtransError(f"{name}: no video stream (pass a video file, not audio or subtitles only)")
    return container, container.streams.video[0]


def _reason(e: av.FFmpegError) -> str:
    return (getattr(e, "strerror", None) or str(e)).splitlines()[0]


def _display_rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Clockwise degrees to show the picture upright, from display-matrix side data or the old `rotate` tag."""
    ccw = frame.rotation  # counter-clockwise, from the display matrix FFmpeg attaches to frames
    if ccw:
        return int(round(-ccw / 90.0)) * 90 % 360
    try:
        return int(round(float(stream.metadata.get("rotate", "0")) / 90.0)) * 90 % 360
    except ValueError:
        return 0


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe a video file; raises VidtransError if it has no decodable video."""
    container, stream = _open(path)
    try:
        first = _first_frame(container, stream, path)
        rotation = _display_rotation(first, stream)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        tb = stream.time_base or Fraction(1, 90000)
        fps = _fps(stream)
        if stream.duration:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frame_count = stream.frames or (int(round(duration * fps)) if duration and fps else 0)
        return VideoInfo(width=width, height=height, fps=fps, time_base=tb, frame_count=frame_count,
                         duration=duration, rotation=rotation, has_audio=bool(container.streams.audio),
                         codec=stream.codec_context.name, pix_fmt=first.format.name)
    finally:
        container.close()


def _first_frame(container, stream, path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as e:
        raise VidtransError(f"{os.fspath(path)}: video cannot be decoded ({_reason(e)}); "
                            "the file is damaged or truncated, re-export or re-download it") from e
    raise VidtransError(f"{os.fspath(path)}: no video frames could be decoded; "
                        "the file is damaged or truncated, re-export or re-download it")


class VideoReader:
    """Iterate over a video's frames as upright uint8 RGB `Frame`s with their original pts.

    start/end (seconds, optional) trim to frames with start <= time < end.

    Damaged data: decoding carries on past packets the decoder rejects. Every packet the
    container delivers (pts known, not marked discard) is meant to yield one frame; when the
    decoder produces no picture for it, the last good picture is repeated at that packet's pts,
    so the frame count and timing stay those of the container and audio stays in sync.
    `corrupt_frames` counts those repeats plus pictures the decoder flagged as corrupt (which
    are passed on as decoded, with its error concealment). A frame whose pts is missing gets
    previous pts + frame duration; pts are made strictly increasing, as encoders require.
    Frames are produced lazily, one at a time (decoder threads hold a few more internally).

    max_side: deliver pictures scaled down (aspect kept) so their longer side is at most this
    many pixels, for consumers that only analyse the picture (pose detection). Scaling in the
    YUV to RGB conversion costs less than converting the full picture (2.0 against 4.1 ms at 720p).
    `info` still describes the video's own size.
    """

    def __init__(self, path: str | os.PathLike, start: float | None = None, end: float | None = None,
                 max_side: int | None = None):
        self.path = Path(path)
        self.max_side = max_side
        self.info = probe(path)
        if start is not None and end is not None and end <= start:
            raise VidtransError(f"end ({end}s) must be after start ({start}s)")
        if start is not None and self.info.duration and start >= self.info.duration:
            raise VidtransError(f"{self.path}: start {start}s is past the end of the video "
                                f"({self.info.duration:.2f}s); pass a smaller --start")
        self.start, self.end = start, end
        self.corrupt_frames = 0
        self._container, self._stream = _open(path)
        self._stream.thread_type = "AUTO"
        self._started = False

    @property
    def frame_count(self) -> int:
        """Estimated number of frames this reader yields (trim applied), 0 if unknown."""
        total, fps = self.info.frame_count, self.info.fps
        if not fps or not total:
            return total
        lo = max(0.0, self.start or 0.0)
        hi = min(self.info.duration or math.inf, self.end if self.end is not None else math.inf)
        return min(total, max(0, int(round((hi - lo) * fps)))) if hi != math.inf else total

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError("VideoReader can be iterated only once")
        self._started = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        stream, tb = self._stream, self.info.time_base
        rotate = _ROTATE.get(self.info.rotation)
        # Frames at exactly `start` are in and at exactly `end` out; the epsilon absorbs float error.
        start_pts = None if self.start is None else math.ceil(self.start / tb - 1e-6)
        end_pts = None if self.end is None else math.ceil(self.end / tb - 1e-6)
        if self.start is not None and self.start > 0:
            self._container.seek(int(self.start / tb), stream=stream, backward=True)
        step = max(1, round(1 / (self.info.fps * tb))) if self.info.fps else 1

        pending: list[int] = []   # pts of packets sent to the decoder whose picture has not come out
        last: Frame | None = None
        owed: list[int] = []      # lost pts before the first good picture: filled once we have one
        index = 0

        def in_range(p: int) -> bool:
            return (start_pts is None or p >= start_pts) and (end_pts is None or p < end_pts)

        def repeat(p: int) -> Frame:
            nonlocal index
            self.corrupt_frames += 1
            frame = Frame(last.image.copy(), p, tb, index)
            index += 1
            return frame

        for decoded in self._decoded(pending, in_range):
            pts = decoded.pts
            if pts is None:
                pts = (last.pts + (decoded.duration or step)) if last else (start_pts or 0)
            if last is not None and pts <= last.pts:
                pts = last.pts + 1
            if start_pts is not None and pts < start_pts:
                continue
            # Pictures come out in pts order, so packets with a smaller pts will never show up.
            while pending and pending[0] < pts:
                lost = heapq.heappop(pending)
                if last is None:
                    owed.append(lost)
                else:
                    yield repeat(lost)
            if pending and pending[0] == pts:
                heapq.heappop(pending)
            if end_pts is not None and pts >= end_pts:
                break
            if decoded.is_corrupt:
                self.corrupt_frames += 1
            image = self._rgb(decoded)  # rows may keep the decoder's line padding
            image = cv2.rotate(image, rotate) if rotate is not None else np.ascontiguousarray(image)
            if last is None and owed:
                last = Frame(image, owed[0], tb, index)
                for p in owed:
                    yield repeat(p)
                owed.clear()
            last = Frame(image, pts, tb, index)
            index += 1
            yield last
        if last is not None:
            while pending:
                yield repeat(heapq.heappop(pending))

    def _rgb(self, decoded: av.VideoFrame) -> np.ndarray:
        scale = self.max_side / max(decoded.width, decoded.height) if self.max_side else 1.0
        if scale >= 1.0:
            return decoded.to_ndarray(format="rgb24")
        return decoded.to_ndarray(format="rgb24", width=max(1, round(decoded.width * scale)),
                                  height=max(1, round(decoded.height * scale)), interpolation="AREA")

    def _decoded(self, pending: list[int], in_range) -> Iterator[av.VideoFrame]:
        """Demux and decode ourselves, so a bad packet costs one frame, not the rest of the video."""
        stream = self._stream
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is not None and not packet.is_discard and in_range(packet.pts):
                    heapq.heappush(pending, packet.pts)
                yield from self._decode(packet)
        except av.FFmpegError as e:
            # A damaged container index or truncated tail: keep what we have, like players do.
            log.warning("%s: stopped reading at a damaged part (%s)", self.path, _reason(e))
        yield from self._decode(None)

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            return self._stream.decode(packet)
        except av.FFmpegError:
            return []

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
