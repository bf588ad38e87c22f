"""Encode consecutive parts of one video at once, each by its own encoder, and join them losslessly.

One libx264 instance is the limit of a many-core host whose model runs on a GPU (H100/H200/A100
have no NVENC): its frame threads stop scaling at a few per picture of 256-512 pixels, and the
frames' colour conversion runs before it on one thread. `SegmentedEncoder` gives every segment
(`length` frames, the last one shorter) an encoder of its own, opened with the output stream's
settings, on a thread of its own (PyAV lets go of the GIL while encoding), with `parallel` segments
in flight. Each segment starts with a key frame that refers to nothing before it, so the packets of
consecutive segments form one valid stream without re-encoding; only the decode times of a
segment's first packets, which its encoder places before the segment (the B-frame delay), are
moved onto the previous segment's last presentation times, so decode times keep increasing (the
times a single encoder gives them, where the frame rate is constant).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator

import av
import numpy as np

from vidtrans.runner import usable_cores

# The encoders whose segments share one header (SPS/PPS) and start on IDR pictures, so that their
# packets join into one stream: x264, YUV and RGB. (x265 writes its settings, threads included, into
# its header, so its segments' headers differ.)
SEGMENTABLE = frozenset({"libx264", "libx264rgb"})
# A segment's length: long enough that a key frame per segment costs little and the encoder's
# lookahead (40 frames at x264's medium preset) sees most of it; short enough that `parallel`
# segments are in flight in a clip of a few seconds.
SEGMENT_SECONDS = 2.0
MIN_SEGMENT_FRAMES = 32
# Frames waiting for a segment's encoder: enough to cover a moment's stall, few enough to keep memory flat.
_QUEUED_FRAMES = 8
# The settings of the output stream's encoder that its segments' encoders copy.
_COPIED = ("width", "height", "pix_fmt", "time_base", "framerate", "flags", "flags2", "sample_aspect_ratio",
           "colorspace", "color_primaries", "color_trc", "color_range")


def segments_for(codec: str, requested: int, cores: int | None = None) -> int:
    """How many segments to encode at once: `requested` where the codec's segments can be joined,
    0 asking for one per 4 cores (1 below 8 cores, where one encoder's own threads keep up with the
    rest of the pipeline)."""
    if codec not in SEGMENTABLE:
        return 1
    if requested:
        return requested
    cores = cores or usable_cores()
    return max(1, cores // 4) if cores >= 8 else 1


def segment_length(fps: float) -> int:
    """Frames per segment at `fps` frames per second."""
    return max(MIN_SEGMENT_FRAMES, round(SEGMENT_SECONDS * fps) if fps and fps > 0 else 0)


class _Segment:
    """Consecutive frames encoded on a thread of its own by an encoder of its own."""

    def __init__(self, encoder: av.CodecContext, to_frame: Callable[[np.ndarray], av.VideoFrame]):
        self.pts: list[int] = []  # the frames' pts, in order (increasing)
        self.time = 0.0  # seconds of the last frame
        self.packets: list[av.Packet] = []
        self.error: BaseException | None = None
        self._cancelled = False
        self._frames: queue.Queue = queue.Queue(_QUEUED_FRAMES)
        self._thread = threading.Thread(target=self._encode, args=(encoder, to_frame), daemon=True,
                                        name="vidtrans-encoder")
        self._thread.start()

    def put(self, image: np.ndarray, pts: int, time: float) -> None:
        self.pts.append(pts)
        self.time = time
        self._frames.put((image, pts))

    def finish(self) -> None:
        self._frames.put(None)

    def cancel(self) -> None:
        """Stop without encoding what is queued, waiting only for a frame being encoded: an encoder
        still running at the interpreter's exit would crash it (SIGABRT)."""
        self._cancelled = True
        while True:
            try:
                self._frames.put_nowait(None)
                break
            except queue.Full:  # the thread takes frames until it sees the flag: make room
                try:
                    self._frames.get_nowait()
                except queue.Empty:
                    pass
        self._thread.join()

    def result(self) -> list[av.Packet]:
        """The segment's packets once its encoder has finished; raises what stopped it."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.packets

    def _encode(self, encoder: av.CodecContext, to_frame: Callable[[np.ndarray], av.VideoFrame]) -> None:
        ended = False  # the writer's last item (None) taken
        try:
            while (item := self._frames.get()) is not None:
                if self._cancelled:
                    continue  # drained, so a writer putting frames never waits on a stopped encoder
                image, pts = item
                frame = to_frame(image)
                frame.pts, frame.time_base = pts, encoder.time_base
                self.packets += encoder.encode(frame)
            ended = True
            if not self._cancelled:
                self.packets += encoder.encode(None)
        except BaseException as e:  # handed to the writer's thread by result()
            self.error = e
            while not ended:  # drained, so a writer putting frames never waits on a failed encoder
                ended = self._frames.get() is None


class SegmentedEncoder:
    """Frames in (`encode`), packets out in the stream's order, `parallel` segments encoded at once.

    `template` is the output stream's opened encoder (its header is the file's), `options` the
    options it was opened with, `to_frame` turns an image into the frame to encode (run on the
    segment's thread, so colour conversion is parallel too). Packets come out with
    `time_base` = the encoder's, as lists, each with the time of its segment's last frame (the
    writer interleaves audio up to there)."""

    def __init__(self, template: av.CodecContext, options: dict[str, str],
                 to_frame: Callable[[np.ndarray], av.VideoFrame], parallel: int, length: int, threads: int = 0):
        self._template, self._options, self._to_frame = template, dict(options), to_frame
        self._parallel, self._length = parallel, length
        cores = usable_cores()
        self._threads = threads or max(1, cores // parallel)
        self._in_flight: deque[_Segment] = deque()
        self._tail: list[int] = []  # the pts of the segment joined last

    @staticmethod
    def joins(template: av.CodecContext, options: dict[str, str]) -> bool:
        """Whether segments of `template`'s settings share its header, so their packets join."""
        try:
            encoder = _copy_encoder(template, options, threads=1)
        except av.FFmpegError:
            return False
        return bytes(encoder.extradata or b"") == bytes(template.extradata or b"")

    def encode(self, image: np.ndarray, pts: int, time: float) -> Iterator[tuple[list[av.Packet], float]]:
        """Queue one frame (copied: the caller may reuse its buffer); yields segments finished by now."""
        current = self._in_flight[-1] if self._in_flight else None
        if current is None or len(current.pts) >= self._length:
            if current is not None:
                current.finish()
            while len(self._in_flight) >= self._parallel:
                yield self._join_oldest()
            current = _Segment(_copy_encoder(self._template, self._options, self._threads), self._to_frame)
            self._in_flight.append(current)
        current.put(np.array(image), pts, time)

    def flush(self) -> Iterator[tuple[list[av.Packet], float]]:
        """Finish every segment; yields their packets in order."""
        if self._in_flight:
            self._in_flight[-1].finish()
        while self._in_flight:
            yield self._join_oldest()

    def cancel(self) -> None:
        while self._in_flight:
            self._in_flight.popleft().cancel()

    def _join_oldest(self) -> tuple[list[av.Packet], float]:
        segment = self._in_flight.popleft()
        packets = segment.result()
        if self._tail:
            # The encoder placed the decode times of the segment's first packets (as many as its
            # B-frame delay) before the segment; the previous segment's last presentation times are
            # the ones no packet decodes at yet, and lie between its last decode time and this segment.
            first = segment.pts[0]
            lead = [p for p in packets if p.dts is not None and p.dts < first]
            for packet, dts in zip(lead, self._tail[-len(lead):] if lead else []):
                packet.dts = dts
        self._tail = segment.pts[-MIN_SEGMENT_FRAMES:]
        return packets, segment.time


def _copy_encoder(template: av.CodecContext, options: dict[str, str], threads: int) -> av.CodecContext:
    """A new encoder opened with `template`'s settings."""
    encoder = av.CodecContext.create(template.name, "w")
    for name in _COPIED:
        value = getattr(template, name)
        if value is not None:
            setattr(encoder, name, value)
    if not template.has_b_frames:
        # Opening sets an unset max_b_frames to 0, so the template's says nothing; its reorder delay does.
        encoder.max_b_frames = 0
    encoder.options = dict(options)
    encoder.thread_type, encoder.thread_count = "FRAME", threads
    with av.logging.Capture():
        encoder.open()
    return encoder

