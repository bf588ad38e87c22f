"""Probe and decode video files into upright uint8 RGB frames with their original timestamps.

Timestamps are kept exactly as the container has them (`Frame.pts` in `Frame.time_base`), so a
writer that reuses them reproduces variable-frame-rate timing. Lost frames (see `VideoReader`)
are replaced, not skipped, so the frame sequence keeps the container's timing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from vidtrans.errors import VidtransError, first_line
from vidtrans.options import check_span, spell

log = logging.getLogger(__name__)

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds out about a file's first video stream.

    width, height: display size, i.e. after rotation (a portrait phone clip reports height > width).
    fps: average frame rate. frame_count: best estimate, 0 if unknown (1 for a cover picture).
    duration: seconds of video, from `start_time` (the time of the stream's first frame, seconds).
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
    start_time: float = 0.0


@dataclass(frozen=True)
class FrameSpan:
    """Where a reader's frames sit in the whole clip, counting its frames from 0: `first` is the
    number of the first frame it yields, `stop` one past its last, `total` the clip's frame count."""

    first: int
    stop: int
    total: int


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


def local_file(path: str | os.PathLike) -> str:
    """`path` as FFmpeg must be given a local file: FFmpeg takes the part of a name before a colon
    as a protocol ("12:30 clip.mp4" fails, "pipe:1.mp4" is standard output, "file:z.mp4" opens
    z.mp4), and the `file:` prefix makes it open the name as it stands."""
    return "file:" + os.fspath(path)


def _open(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a file for reading and pick its video stream, turning every failure into one line."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VidtransError(f"{name}: file not found (check the path)")
    if os.path.isdir(name):
        raise VidtransError(f"{name}: is a folder, not a video file (pass a video file)")
    try:
        container = av.open(local_file(name), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VidtransError(f"{name}: not a readable video file ({first_line(e)}); pass a video such as .mp4/.mov/.mkv") from e
    if not container.streams.video:
        container.close()
        raise VidtransError(f"{name}: no video stream (pass a video file, not audio or subtitles only)")
    return container, container.streams.video[0]


def _display_rotation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> int:
    """Clockwise degrees to show the picture upright, from display-matrix side data or the old `rotate` tag."""
    matrix = frame.side_data.get("DISPLAYMATRIX")
    if matrix is not None:
        return _matrix_rotation(bytes(matrix))
    try:
        degrees = float(stream.metadata.get("rotate", "0"))
    except ValueError:
        return 0
    return _quarter_turns(degrees)


def _matrix_rotation(matrix: bytes) -> int:
    """Clockwise degrees of an FFmpeg display matrix (nine native int32, a b u / c d v / x y w), 0
    unless it is a rotation (possibly mirrored) by a multiple of 90 degrees: a degenerate matrix,
    e.g. all zeros from a broken muxer, says nothing about how to turn the picture."""
    a, b, _, c, d = (v / 65536 for v in struct.unpack("=5i", matrix[:20]))
    if abs(abs(a * d - b * c) - 1) > 0.01:
        return 0
    return _quarter_turns(math.degrees(math.atan2(b, a)))  # FFmpeg's counter-clockwise angle is minus this


def _quarter_turns(clockwise: float) -> int:
    """`clockwise` as 0/90/180/270, or 0 when it is not within a degree of a multiple of 90."""
    turns = round(clockwise / 90) if math.isfinite(clockwise) else 0
    return turns * 90 % 360 if abs(clockwise - turns * 90) <= 1 else 0


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


# Bytes hashed to tell files apart: enough to differ between any two encodes, cheap for a long file.
HEAD_BYTES = 1 << 20


def file_identity(path: str | os.PathLike) -> dict[str, int | str]:
    """What tells one video file from another of the same name, cheaply: its size and a hash of its
    first MiB (a copy elsewhere has the same; a re-encode or another clip does not)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()
    return {"size": size, "head_sha256": head}


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
        start_time = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        if stream.duration:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / av.time_base
            if container.start_time and 0 < container.start_time < container.duration:
                # Matroska's duration is where the last frame ends, counted from 0, not from the first.
                duration -= container.start_time / av.time_base
        else:
            duration = 0.0
        return VideoInfo(width=width, height=height, fps=fps, time_base=tb,
                         frame_count=_frame_count(stream, duration, fps, os.path.getsize(path)),
                         duration=duration, rotation=rotation, has_audio=bool(container.streams.audio),
                         codec=stream.codec_context.name, pix_fmt=first.format.name, start_time=start_time)
    finally:
        container.close()


def _frame_count(stream: av.video.stream.VideoStream, duration: float, fps: float, file_size: int) -> int:
    """The stream's frame count if the container states it, else duration x average rate, which
    some files get wildly wrong (a cover picture's 90000 fps; Matroska's duration counted from 0
    when the first frame is hours in), so it is capped by what the file could hold."""
    if stream.disposition & av.stream.Disposition.attached_pic:
        return 1  # a cover picture (MP3, M4A): one frame, whatever rate the stream claims
    if stream.frames:
        return stream.frames
    if not duration or not fps:
        return 0
    # No coded frame, container overhead included, is smaller than ~8 bytes (a still H.264
    # frame in a tiny clip takes ~19).
    return min(int(round(duration * fps)), file_size // 8)


def _first_frame(container, stream, path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as e:
        raise VidtransError(f"{os.fspath(path)}: video cannot be decoded ({first_line(e)}); "
                            "the file is damaged or truncated, re-export or re-download it") from e
    raise VidtransError(f"{os.fspath(path)}: no video frames could be decoded; "
                        "the file is damaged or truncated, re-export or re-download it")


class VideoReader:
    """Iterate over a video's frames as upright uint8 RGB `Frame`s with their original pts.

    start/end (seconds, optional) trim to frames with start <= time < end; they must be numbers
    from 0 to `options.MAX_SECONDS`, and end after start (UsageError otherwise).

    Damaged data: decoding carries on past packets the decoder rejects. Every packet the
    container delivers (pts known, not marked discard) is meant to yield one frame; when the
    decoder produces no picture for it, the last good picture is repeated at that packet's pts,
    so the frame count and timing stay those of the container and audio stays in sync.
    `corrupt_frames` counts those repeats plus pictures the decoder flagged as corrupt (which
    are passed on as decoded, with its error concealment). A frame whose pts is missing gets
    previous pts + frame duration (frames before the first timestamp: counted back from it);
    pts are made strictly increasing, as encoders require: a duplicate or backwards pts
    (screen recordings, edited files) becomes the previous frame's + 1 tick, and every frame
    is kept.
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
        check_span(start, end)
        self.info = probe(path)
        video_end = self.info.start_time + self.info.duration
        if start is not None and self.info.duration and start >= video_end:
            raise VidtransError(f"{self.path}: start {start}s is past the end of the video "
                                f"({video_end:.2f}s); pass a smaller {spell('start')}")
        self.start, self.end = start, end
        self.corrupt_frames = 0
        self._open()
        self._started = False

    def _open(self) -> None:
        self._container, self._stream = _open(self.path)
        self._stream.thread_type = "AUTO"

    @property
    def frame_count(self) -> int:
        """Estimated number of frames this reader yields (trim applied), 0 if unknown."""
        info = self.info
        if not info.fps or not info.frame_count:
            return info.frame_count
        # Trim times are stream times: the video runs from start_time to start_time + duration.
        lo = max(info.start_time, self.start or 0.0)
        hi = min(info.start_time + info.duration if info.duration else math.inf,
                 self.end if self.end is not None else math.inf)
        return min(info.frame_count, max(0, int(round((hi - lo) * info.fps)))) if hi != math.inf else info.frame_count

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError("VideoReader can be iterated only once")
        self._started = True
        return self._frames()

    def _trim_pts(self) -> tuple[int | None, int | None]:
        """`start` and `end` in pts: frames at exactly `start` are in and at exactly `end` out; the
        epsilon absorbs float error."""
        tb = self.info.time_base
        return tuple(None if t is None else math.ceil(t / tb - 1e-6) for t in (self.start, self.end))

    def _step(self) -> int:
        """A frame's duration in pts, from the average frame rate."""
        return max(1, round(1 / (self.info.fps * self.info.time_base))) if self.info.fps else 1

    def span(self) -> FrameSpan:
        """Where this reader's frames (start/end applied) sit in the whole clip: the frames are
        counted from the container's packets (one per frame the reader yields), demuxed but not
        decoded, so this costs one pass over the file's data and no decoding."""
        start_pts, end_pts = self._trim_pts()
        step, previous = self._step(), None
        first = stop = total = 0
        container, stream = _open(self.path)
        try:
            for packet in _leading_pts(container.demux(stream), step):
                if packet.size == 0 or packet.is_discard:
                    continue
                # As `_frames` stamps a picture without pts: the previous one's plus a frame.
                pts = packet.pts if packet.pts is not None else (previous + step if previous is not None else 0)
                previous = pts
                total += 1
                first += start_pts is not None and pts < start_pts
                stop += end_pts is None or pts < end_pts
        except av.FFmpegError:
            pass  # a damaged part ends the frames here, as it ends the reader's
        finally:
            container.close()
        return FrameSpan(first, stop, total)

    def _seek_to_start(self) -> None:
        """Jump to the keyframe before `start`, so the frames before it need not be decoded. Some
        files cannot seek there (FFmpeg refuses in a Matroska file whose audio starts long before
        its video), and a failed seek leaves the demuxer at the end: such a file is opened again
        and decoded from its beginning, where the frames before `start` are skipped all the same."""
        try:
            self._container.seek(int(self.start / self.info.time_base), stream=self._stream, backward=True)
        except av.FFmpegError as e:
            log.debug("%s: cannot seek to %ss (%s); decoding from the beginning", self.path, self.start, first_line(e))
            self._container.close()
            self._open()

    def _frames(self) -> Iterator[Frame]:
        if self.start is not None and self.start > 0:
            self._seek_to_start()
        stream, tb = self._stream, self.info.time_base
        rotate = _ROTATE.get(self.info.rotation)
        start_pts, end_pts = self._trim_pts()
        step = self._step()

        pending = _Pending()  # packets sent to the decoder whose picture has not come out
        last: Frame | None = None
        owed: list[int] = []  # lost pts before the first good picture: filled once we have one

        def in_range(p: int) -> bool:
            return (start_pts is None or p >= start_pts) and (end_pts is None or p < end_pts)

        def emit(image: np.ndarray, p: int, repeated: bool) -> Frame:
            nonlocal last
            if repeated:
                self.corrupt_frames += 1
                image = image.copy()
            # Encoders need increasing pts: a duplicate or backwards one goes one tick after the last.
            if last is not None and p <= last.pts:
                p = last.pts + 1
            last = Frame(image, p, tb, 0 if last is None else last.index + 1)
            return last

        for decoded in self._decoded(pending, in_range, step):
            pts = decoded.pts
            if pts is None:
                pts = (last.pts + (decoded.duration or step)) if last else (start_pts or 0)
            elif start_pts is not None and pts < start_pts:
                continue
            reorders = stream.codec_context.has_b_frames > 0
            for lost in pending.settle(pts, reorders):
                if last is None:
                    owed.append(lost)
                else:
                    yield emit(last.image, lost, repeated=True)
            if end_pts is not None and pts >= end_pts:
                break
            if decoded.is_corrupt:
                self.corrupt_frames += 1
            image = self._rgb(decoded)  # rows may keep the decoder's line padding
            image = cv2.rotate(image, rotate) if rotate is not None else np.ascontiguousarray(image)
            for p in owed:
                yield emit(image, p, repeated=True)
            owed.clear()
            yield emit(image, pts, repeated=False)
        if last is not None:
            for lost in pending.settle(None, reorders=True):
                yield emit(last.image, lost, repeated=True)

    def _rgb(self, decoded: av.VideoFrame) -> np.ndarray:
        scale = self.max_side / max(decoded.width, decoded.height) if self.max_side else 1.0
        if scale >= 1.0:
            return decoded.to_ndarray(format="rgb24")
        return decoded.to_ndarray(format="rgb24", width=max(1, round(decoded.width * scale)),
                                  height=max(1, round(decoded.height * scale)), interpolation="AREA")

    def _decoded(self, pending: _Pending, in_range, step: int) -> Iterator[av.VideoFrame]:
        """Demux and decode ourselves, so a bad packet costs one frame, not the rest of the video."""
        stream = self._stream
        try:
            for packet in _leading_pts(self._container.demux(stream), step):
                if packet.size == 0:
                    continue
                if packet.pts is not None and not packet.is_discard and in_range(packet.pts):
                    pending.add(packet.pts)
                yield from self._decode(packet)
        except av.FFmpegError as e:
            # A damaged container index or truncated tail: keep what we have, like players do.
            log.warning("%s: stopped reading at a damaged part (%s)", self.path, first_line(e))
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


class _Pending:
    """The pts of packets sent to the decoder whose picture has not come out yet, in sending order."""

    def __init__(self):
        self._sent: list[int] = []

    def add(self, pts: int) -> None:
        self._sent.append(pts)

    def settle(self, pts: int | None, reorders: bool) -> list[int]:
        """Take out the packet whose picture came out at `pts` (None: the decoder is drained) and
        return, in order, the pts of packets that will now never give a picture.

        A decoder that reorders (B-frames) puts pictures out in pts order, so any packet with a
        smaller pts is lost. One that does not puts them out in sending order, so only packets
        sent before this one are; later ones may carry a smaller pts when the file's timestamps
        go backwards (edited files), and their pictures are still to come.
        """
        sent = self._sent
        here = sent.index(pts) if pts in sent else None
        if here is not None:
            del sent[here]
        if pts is None:
            lost = list(sent)
        elif reorders or here is None:
            lost = [p for p in sent if p < pts]
        else:
            lost = [p for p in sent[:here] if p < pts]
        for p in lost:
            sent.remove(p)
        return sorted(lost)


def _leading_pts(packets: Iterator[av.Packet], step: int, limit: int = 64) -> Iterator[av.Packet]:
    """Give timestamps to the packets before the first one that has a timestamp, counted back from
    it by their durations, so their frames stay before it.

    Matroska cannot store times before 0, so FFmpeg reads frames a file puts there (edited files)
    without a pts; counting on from 0 would pile them onto the frames that follow. Packets are
    held back for this only until the first timestamp, and at most `limit` of them (a raw stream
    has no timestamps at all: those get them from the frame rate as decoded).
    """
    held: list[av.Packet] | None = []
    for packet in packets:
        if held is not None:
            if packet.pts is None and packet.size and len(held) < limit:
                held.append(packet)
                continue
            if packet.pts is not None:
                t = packet.pts
                for earlier in reversed(held):
                    t -= earlier.duration or step
                    earlier.pts = t
            yield from held
            held = None
        yield packet
    yield from held or ()
