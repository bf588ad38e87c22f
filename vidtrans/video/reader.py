"""Probe and decode video files into upright uint8 RGB frames with their original timestamps.

Timestamps are kept exactly as the container has them (`Frame.pts` in `Frame.time_base`), so a
writer that reuses them reproduces variable-frame-rate timing. Lost frames (see `VideoReader`)
are replaced, not skipped, so the frame sequence keeps the container's timing.

Times in seconds (`start`/`end`, `Frame.time`, `VideoInfo.start_time`) count from the clip's start
(`clip_start`), as FFmpeg counts `-ss`: a broadcast recording whose timestamps begin 10000 s in
starts at 0 s like any other clip.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
import os
import re
import shlex
import stat
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.sidedata.sidedata
import cv2
import numpy as np

from vidtrans.atomic import special_file_kind
from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.options import check_span, shown_path, spell
from vidtrans.video.hdr import HDR_TRANSFERS, to_sdr

log = logging.getLogger(__name__)

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds out about a file's first video stream.

    width, height: display size, i.e. in square pixels and after rotation (a portrait phone clip
    reports height > width; a DV clip of 720x480 pixels of aspect ratio 8:9 reports 640x480).
    fps: average frame rate. frame_count: best estimate, 0 if unknown (1 for a cover picture).
    frame_rate: the rate whose frames the timestamps sit on (FFmpeg's guess: 25 for a 25 fps clip
    with pauses, whose average is lower), what an output of one frame rate (AVI) counts time in.
    duration: seconds of video, from `start_time` (the time of the stream's first frame, seconds
    from the clip's start: 0 unless another stream starts before the video).
    rotation: clockwise degrees (0/90/180/270) applied to the stored picture to show it upright;
    mirrored: then flipped left to right (a display matrix that mirrors: some phones' front cameras).
    codec, pix_fmt: of the video stream as stored (e.g. "h264", "yuv420p").
    clip_start: where the clip starts in the file's own timestamps, seconds (see `clip_start`).
    stored_size: (width, height) of the picture as stored, before rotation, where its pixels are not
    square (the DV clip's 720x480); None for square pixels.
    """

    width: int
    height: int
    fps: float
    frame_rate: float
    time_base: Fraction
    frame_count: int
    duration: float
    rotation: int
    has_audio: bool
    codec: str
    pix_fmt: str
    start_time: float = 0.0
    clip_start: Fraction = Fraction(0)
    mirrored: bool = False
    stored_size: tuple[int, int] | None = None

    @property
    def size_text(self) -> str:
        """The size as messages name it: "640x480", and for pixels that are not square what other
        tools call the clip too, "640x480 (720x480 stored, non-square pixels)"."""
        shown = f"{self.width}x{self.height}"
        if self.stored_size is None:
            return shown
        return f"{shown} ({self.stored_size[0]}x{self.stored_size[1]} stored, non-square pixels)"


@dataclass(frozen=True)
class FrameSpan:
    """Where a reader's frames sit in the whole clip, counting its frames from 0: `first` is the
    number of the first frame it yields, `stop` one past its last, `total` the clip's frame count."""

    first: int
    stop: int
    total: int


@dataclass
class Frame:
    """One decoded picture: `image` is uint8 RGB (H, W, 3), upright, contiguous; `pts` in
    `time_base` as the file has it, and `time` in seconds from the clip's start (`clip_start`)."""

    image: np.ndarray
    pts: int
    time_base: Fraction
    index: int
    clip_start: Fraction = Fraction(0)

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base - self.clip_start)


def clip_start(container: av.container.InputContainer) -> Fraction:
    """Where a clip starts in its file's own timestamps, in seconds: the container's start time
    (its earliest stream's) when that is after 0, as in broadcast recordings (timestamps from the
    transmitter's clock), cut streams and camera timecode. Times given in seconds count from there
    and outputs start there, as FFmpeg's do by default. A clip starting before 0 (an edited file)
    counts from 0; its output starts at its first frame (see `VideoWriter`). MPEG-TS/PS are the
    exception: a start before 0 there is a recording crossing the 33-bit clock's wrap (FFmpeg
    puts the frames before the wrap below 0), so such a clip counts from its start, as `-ss` does.
    There, too, a stream's damaged first timestamp counts where the clock puts its packet (see
    `ContinuousTimestamps`), not where it says."""
    return _clip_start(container, _first_shifts(container))


def _clip_start(container: av.container.InputContainer, shifts: dict[int, Fraction]) -> Fraction:
    """`clip_start` for a container whose streams' first packets the clock moves by `shifts`
    (seconds, by stream index)."""
    start = None if container.start_time is None else Fraction(container.start_time, av.time_base)
    starts = [s.start_time * s.time_base + shifts.get(s.index, 0)
              for s in container.streams if s.start_time is not None and s.time_base]
    if any(shifts.values()):
        start = min(starts, default=start)
    elif start is not None:
        # FFmpeg gives it in whole microseconds: the streams' start it rounds, exactly (one 5 ticks of a
        # 90 kHz clock in, 55.6 us, put the first frame 0.4 us before a clip starting at 56 us).
        start = min((t for t in starts if abs(t - start) < Fraction(1, av.time_base)), default=start)
    if start is None or (start <= 0 and not has_timestamp_jumps(container)):
        return Fraction(0)
    return start


def _first_shifts(container: av.container.InputContainer) -> dict[int, Fraction]:
    """How far, in seconds, the clock of a TS/PS file moves each stream's first timestamp, by
    stream index: 0 unless that is a damaged one (see `ContinuousTimestamps`); none for other
    formats. The file is read by a demuxer of its own, up to the first packets of the streams
    that have a start time (its first seconds), the caller's staying where it is."""
    if not container.streams.video or not has_timestamp_jumps(container):
        return {}
    told: dict[int, int] = {}  # each stream's first timestamp, as the file has it
    shifts: dict[int, Fraction] = {}

    def noted(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
        for packet in packets:
            if _clock(packet) is not None and packet.size:
                told.setdefault(packet.stream.index, _clock(packet))
            yield packet
    try:
        with av.open(container.name, metadata_errors="ignore", options=AS_NAMED) as again:
            video = main_video_stream(again)
            started = [s for s in again.streams if s.start_time is not None and s is not video]
            for packet in ContinuousTimestamps(video)(noted(demux(again, video, *started))):
                index = packet.stream.index
                if index not in shifts and _clock(packet) is not None and packet.size:
                    shifts[index] = (_clock(packet) - told[index]) * packet.time_base
                    if len(shifts) > len(started):
                        break
    except (av.FFmpegError, OSError):
        pass  # the reader meets the same damage and says so
    return shifts


def has_timestamp_jumps(container: av.container.InputContainer) -> bool:
    """Whether the container's format allows its clock to jump (MPEG-TS/PS, FFmpeg's AVFMT_TS_DISCONT):
    joined recordings restart it, and one damaged packet header can carry any time."""
    return bool(container.format.flags & av.format.Flags.ts_discont.value)


# FFmpeg's dts_delta_threshold: a TS/PS clock moving further than this from one packet to the next jumped.
JUMP_SECONDS = 10
# And one going back by more than this (FFmpeg's AV_TIME_BASE/10 for TS_DISCONT formats) started anew.
BACK_SECONDS = Fraction(1, 10)
# How long other streams' packets wait for the video's packets that the file puts after them.
HOLD_SECONDS = 2
# A stream's first run this many packets long or shorter can carry a damaged timestamp: FFmpeg
# guesses a dts from the packet before's pts where frames may be reordered (MPEG-2 without DTS in
# the file), so one damaged timestamp can reach two packets' clocks.
LEADING_PACKETS = 2


class ContinuousTimestamps:
    """Make a TS/PS file's clock run on across jumps, as FFmpeg's CLI does (dts_delta_threshold,
    one offset per input file).

    Jumps are decided on one stream, `reference` (the video), in file order: a packet whose dts
    is more than `JUMP_SECONDS` after the previous one's + its duration, or more than
    `BACK_SECONDS` before it, either carries one damaged timestamp (the next packet returns to the
    old run: it alone is stamped previous + one duration) or starts a new clock (joined segments:
    from there on the file is shifted to go on at previous + one duration). A stream's first
    packets have no run of their own to be checked against (a recording that starts mid-stream
    may begin with a damaged one in every stream), so up to `LEADING_PACKETS` of them are checked
    against what follows. The video's run is trusted once it has lasted more than that: when the
    clock leaves it sooner and the next packet goes on from the jump, the run carried the damaged
    timestamp and is placed just before the jump. Another stream's first packets are checked
    against the video's clock where the file puts them: when they are further from it than
    `HOLD_SECONDS` and their stream's next packet is not, they carried the damaged timestamp and
    are placed just before that packet (a stream starting before or after the video keeps its
    start: all its first packets are as far from the video).
    A reference packet without a timestamp (MPEG-PS stamps one every half second or so) moves
    the clock on by its duration, as the reader stamps its frame, so a new clock goes on after the
    last frame, stamped or not. Every stream gets the same shift, so audio and subtitles stay with
    the video and their own gaps stay gaps. Muxers put audio up to about a second ahead of its
    video in the file, so the other streams' packets wait for `HOLD_SECONDS` of video after them:
    when the video starts a new clock meanwhile, each takes the shift (old or new) with which it
    goes on best from its stream's previous packet. One whose own stream jumps is re-stamped alone
    when its stream's next packet is back on the old run (a damaged timestamp).
    A pts further than `JUMP_SECONDS` from its own dts is damaged and gets its stream's last pts -
    dts. A reference packet that states no duration lasts a frame at its average rate.
    `restarted` tells whether a new clock was found: timestamps after it no longer match the
    file's, so seeking by them is not possible."""

    def __init__(self, reference: av.video.stream.VideoStream):
        self.reference = reference.index
        self.step = frame_ticks(_fps(reference), reference.time_base)
        self.restarted = False
        self._time_base = reference.time_base
        self._hold = round(HOLD_SECONDS / self._time_base)
        self._offset = 0  # in the reference's ticks, added to the file's timestamps
        self._runs: dict[int, _Run] = {}  # per stream, where its clock is
        self._scales: dict[int, _Scale] = {}  # per stream, the limits above in its ticks
        # Packets waiting: (packet, whether stamped, the reference's clock when it came).
        self._held: list[tuple[av.Packet, bool, int | None]] = []
        self._jump: av.Packet | None = None  # the held reference packet that jumped
        # The reference's packets of the file's first run, held while it may still prove damaged.
        self._leading: list[av.Packet] | None = []
        self._first: av.Packet | None = None  # the reference's first timed packet, where the video starts
        # Per other stream whose first packets carried a damaged timestamp: the move (in its ticks)
        # that places them before its next packet, and how many of them are still to come.
        self._leads: dict[int, tuple[int, int]] = {}

    def __call__(self, packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
        for packet in packets:
            timed = _clock(packet) is not None and packet.size
            reference = packet.stream.index == self.reference
            if reference and not timed and packet.size and self._jump is None:
                self._count(packet)
            if not reference or not timed:
                if self._held or timed:
                    video = self._runs.get(self.reference)
                    self._held.append((packet, False, None if video is None else video.previous))
                else:
                    yield packet
                continue
            if self._jump is not None:
                yield from self._release(len(self._held), following=packet)
            if self._jumps(packet, self._offset):
                self._jump = packet  # which kind of jump: the next packet tells
                self._held.append((packet, False, None))
                continue
            self._stamp(packet, self._offset)
            if self._first is None:
                self._first = packet
            if self._leading is not None:
                self._leading.append(packet)
                if len(self._leading) <= LEADING_PACKETS:
                    self._held.append((packet, True, None))
                    continue
                self._leading = None
            if self._held:
                now = self._runs[self.reference].previous
                ready = next((i for i, (_, _, came) in enumerate(self._held)
                              if came is not None and now - came < self._hold), len(self._held))
                yield from self._release(ready)
            if self._held:
                self._held.append((packet, True, None))
            else:
                yield packet
        yield from self._release(len(self._held))

    def _scale(self, packet: av.Packet) -> _Scale:
        """The limits of `packet`'s stream in its ticks, worked out once: Fractions cost."""
        index = packet.stream.index
        scale = self._scales.get(index)
        if scale is None:
            time_base = packet.time_base
            scale = self._scales[index] = _Scale(math.floor(JUMP_SECONDS / time_base),
                                                 math.ceil(-BACK_SECONDS / time_base), self._time_base / time_base)
        return scale

    def _shift(self, packet: av.Packet, offset: int) -> int:
        """`offset` reference ticks in `packet`'s time base."""
        if not offset or packet.stream.index == self.reference:
            return offset
        return round(offset * self._scale(packet).per_reference_tick)

    def _jumps(self, packet: av.Packet, offset: int, run: _Run | None = None) -> bool:
        """Whether `packet`, shifted by `offset`, jumps from `run` (by default its stream's)."""
        if run is None:
            run = self._runs.get(packet.stream.index)
            if run is None:
                return False
        scale = self._scale(packet)
        step = _clock(packet) + self._shift(packet, offset) - run.expected
        return step > scale.forward or step < scale.back

    def _count(self, packet: av.Packet) -> None:
        """Move the reference's clock on by the frame of `packet`, which has no timestamp."""
        run = self._runs.get(self.reference)
        if run is not None:
            run.previous, run.duration = run.expected, packet.duration or self.step

    def _release(self, count: int, following: av.Packet | None = None) -> Iterator[av.Packet]:
        """The first `count` held packets, stamped once the reference's held jump (if any) is known
        from the reference packet `following` it (None: none came): one damaged timestamp
        (`following` is back on the old run), a damaged first run (the old run is the file's
        first, still short, and `following` goes on from the jump) or a new clock."""
        held, jumped, leading = self._held, self._jump, self._leading
        self._held, self._jump = held[count:], None
        before = self._offset
        if jumped is not None:
            self._leading = None
            if following is None or self._jumps(following, before):
                went_on = _Run(_clock(jumped) + before, jumped.duration or self.step)
                if leading and following is not None and not self._jumps(following, before, went_on):
                    moved = self._place_before(leading, jumped)
                    # The other streams' packets came while the video's clock was the damaged one.
                    held = [(packet, stamped, None if came is None else came + moved)
                            for packet, stamped, came in held]
                else:
                    shift = self._runs[self.reference].expected - (_clock(jumped) + before)
                    self._offset += shift
                    self.restarted = True
                    log.info("the clock jumps by %.1f s; its times go on from before the jump",
                             float(-shift * self._time_base))
        for position, (packet, stamped, came) in enumerate(held[:count]):
            if stamped or _clock(packet) is None or not packet.size:
                yield packet
                continue
            offset = self._offset
            other = packet.stream.index != self.reference
            if offset != before and other and self._nearer_old_clock(packet, came, before):
                offset = before
            if other and (packet.stream.index not in self._runs or packet.stream.index in self._leads):
                yield self._lead(packet, came, held[position + 1:], offset)
            elif self._jumps(packet, offset) and (packet is jumped
                                                  or self._returns(held[position + 1:], packet, offset)):
                # One damaged timestamp: placed after its stream's previous packet.
                run = self._runs[packet.stream.index]
                yield self._stamp(packet, run.expected - _clock(packet), own_ticks=True)
            else:
                yield self._stamp(packet, offset)

    def _place_before(self, leading: list[av.Packet], following: av.Packet) -> int:
        """Re-stamp the held reference packets of the file's first run, whose timestamps were the
        damaged ones, to go just before `following` (not stamped yet), as the run went on (with
        the frames counted after its last packet) up to the jump; how far they moved, in ticks."""
        moved = _clock(following) + self._offset - self._runs.pop(self.reference).expected
        for packet in leading:
            self._stamp(packet, moved, own_ticks=True)
        log.info("the video's first timestamps are %.1f s off; they are placed before the next ones",
                 float(-moved * self._time_base))
        return moved

    def _lead(self, packet: av.Packet, came: int | None, later: list[tuple[av.Packet, bool, int | None]],
              offset: int) -> av.Packet:
        """`packet`, one of the first packets of a stream other than the reference, stamped: shifted
        by `offset`, or placed before the first of its stream's next ones (among `later`) that is on
        the video's clock when up to `LEADING_PACKETS` of them, from its stream's first on, are not."""
        index = packet.stream.index
        if index not in self._leads:
            timed = [(p, c) for p, _, c in later if p.stream.index == index and _clock(p) is not None and p.size]
            run = [(packet, came), *timed[:LEADING_PACKETS]]
            count = next((n for n, (p, c) in enumerate(run) if self._on_video_clock(p, c, offset)), 0)
            if count == 0:
                return self._stamp(packet, offset)
            last, following = run[count - 1][0], run[count][0]
            moved = _clock(following) - _clock(last) - (last.duration or 1)
            self._leads[index] = (self._shift(packet, offset) + moved, count)
            log.info("the first timestamp of stream %d is %.1f s off; it is placed before the next one",
                     index, float(-moved * packet.time_base))
        moved, left = self._leads.pop(index)
        if left > 1:
            self._leads[index] = (moved, left - 1)
        return self._stamp(packet, moved, own_ticks=True)

    def _on_video_clock(self, packet: av.Packet, came: int | None, offset: int) -> bool:
        """Whether `packet`, shifted by `offset`, is within `HOLD_SECONDS` of the video's clock when it
        came (`came`; None: before the video's first packet, or none came), as muxers put it."""
        if came is None:
            if self._first is None:
                return True  # nothing to tell it by
            came = _clock(self._first)
        apart = (_clock(packet) + self._shift(packet, offset)) * packet.time_base - came * self._time_base
        return abs(apart) <= HOLD_SECONDS

    def _nearer_old_clock(self, packet: av.Packet, came: int | None, before: int) -> bool:
        """Whether `packet`, held when the video started a new clock, goes on from its stream's
        last packet better with the file's old shift `before` than with the new one (segment A's
        last audio and segment B's first lie on either side of the join, in any order); for a
        stream's first packet, whether it is nearer the video's time when it came (`came`)."""
        run = self._runs.get(packet.stream.index)
        if run is None and came is None:
            return True
        times = [_clock(packet) + self._shift(packet, offset) for offset in (before, self._offset)]
        target = run.expected if run is not None else round(came * self._time_base / packet.time_base)
        return abs(times[0] - target) < abs(times[1] - target)

    def _returns(self, later: list[tuple[av.Packet, bool, int | None]], packet: av.Packet, offset: int) -> bool:
        """Whether the next packet of `packet`'s stream among `later` is back on its stream's run."""
        index = packet.stream.index
        following = next((p for p, _, _ in later if p.stream.index == index and _clock(p) is not None and p.size), None)
        return following is not None and not self._jumps(following, offset)

    def _stamp(self, packet: av.Packet, offset: int, own_ticks: bool = False) -> av.Packet:
        """`packet` shifted by `offset` reference ticks (`own_ticks`: in its stream's time base)."""
        if not own_ticks:
            offset = self._shift(packet, offset)
        if offset:
            packet.dts = None if packet.dts is None else packet.dts + offset
            packet.pts = None if packet.pts is None else packet.pts + offset
        if _clock(packet) is None or not packet.size:
            return packet
        run = self._runs.setdefault(packet.stream.index, _Run())
        if packet.pts is not None and packet.dts is not None:
            if abs(packet.pts - packet.dts) > self._scale(packet).forward:
                packet.pts = packet.dts + run.reorder
            else:
                run.reorder = packet.pts - packet.dts
        run.previous = _clock(packet)
        run.duration = packet.duration or (self.step if packet.stream.index == self.reference else 1)
        return packet


def _clock(packet: av.Packet) -> int | None:
    return packet.dts if packet.dts is not None else packet.pts


@dataclass
class _Run:
    """One stream's last packet, as `ContinuousTimestamps` follows it."""

    previous: int = 0  # its (corrected) dts: the last stamped one's, moved on by frames without a timestamp
    duration: int = 1  # and its duration
    reorder: int = 0  # the last sound pts - dts

    @property
    def expected(self) -> int:
        return self.previous + self.duration


@dataclass(frozen=True)
class _Scale:
    """`JUMP_SECONDS` and -`BACK_SECONDS` in one stream's ticks (a step past either is a jump), and
    its ticks per tick of the reference."""

    forward: int
    back: int
    per_reference_tick: Fraction


def frame_ticks(fps: float, time_base: Fraction) -> int:
    """A frame's duration in ticks of `time_base` at `fps` (1 when the rate is unknown)."""
    return max(1, round(1 / (fps * time_base))) if fps else 1


def first_pts_at(seconds: Fraction, time_base: Fraction) -> int:
    """The smallest pts in `time_base` at or after `seconds`, give or take what a millisecond clock
    rounded away. Matroska, WebM, FLV and ASF count whole milliseconds, so 30 fps frame 7 (at
    0.2333 s) is stored at 233 ms, and a span from 7/30 s must start with it; such times keep
    their rounding when remuxed to a finer clock (an MP4 of 1/16000 s). A clock coarser than a
    millisecond is the frame rate's own (AVI, QuickTime's 1/600 s), on which frames sit exactly:
    there the margin only absorbs float error in times that were computed."""
    if time_base <= _MILLISECOND:
        return math.ceil((seconds - _MILLISECOND / 2) / time_base)
    return math.ceil(seconds / time_base - Fraction(1, 10**6))


_MILLISECOND = Fraction(1, 1000)


def seek_pts(seconds: Fraction, time_base: Fraction) -> int:
    """The pts in `time_base` to seek back from (to the key frame at or before it) to decode from
    `seconds` on: without `first_pts_at`'s millisecond margin, which would pass over a key frame at
    `seconds` itself and decode a whole group of pictures more; a frame stored a rounded fraction
    of a millisecond early is still at or before it."""
    return math.ceil(seconds / time_base - Fraction(1, 10**6))


def local_file(path: str | os.PathLike) -> str:
    """`path` as FFmpeg must be given a local file: FFmpeg takes the part of a name before a colon
    as a protocol ("12:30 clip.mp4" fails, "pipe:1.mp4" is standard output, "file:z.mp4" opens
    z.mp4), and the `file:` prefix makes it open the name as it stands."""
    return "file:" + os.fspath(path)


def demux(container: av.container.InputContainer, *streams: av.stream.Stream) -> Iterator[av.Packet]:
    """`container.demux(*streams)`, without the IndexError PyAV's ends in where FFmpeg added a stream while
    reading: MPEG-TS/PS announce their streams in tables that may change midway (joined recordings, a
    broadcast adding a language), and PyAV looks such a stream up in the list it began with as it hands
    out each stream's last, empty packet, after every packet read (those of the streams asked for first)."""
    try:
        yield from container.demux(*streams)
    except IndexError:
        log.debug("%s: a stream appeared while reading; its packets are not read", container.name)


# What video files are named: the containers `batch` translates by default, and those cameras, discs
# and tools write besides. A file of such a name that FFmpeg cannot open is a damaged video, not a
# file of another kind.
COMMON_VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                         ".wmv", ".flv", ".3gp", ".ogv")
OTHER_VIDEO_SUFFIXES = (".mxf", ".vob", ".dv", ".m2t", ".mod", ".tod", ".3g2", ".asf", ".f4v", ".divx", ".xvid", ".qt",
                        ".y4m", ".wtv", ".mk3d", ".rm", ".rmvb", ".ivf", ".nut", ".mjpeg", ".mjpg", ".h264", ".264",
                        ".hevc", ".h265", ".265")

# Demuxer options that make FFmpeg read the file named: its image2 demuxer takes a name holding %d for
# an image sequence's pattern (frame_%04d.png read frame_0001.png, frame_0002.png, ..., not that file).
AS_NAMED = {"pattern_type": "none"}
# A URL as FFmpeg takes one (http, https, rtsp, rtmp, ftp, ...): a scheme, then "://".
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# A printf pattern such as frame_%04d.png, which FFmpeg's image2 demuxer reads as an image sequence.
_SEQUENCE = re.compile(r"%0?\d*d")
# What FFmpeg reads such patterns of: pictures (a missing clip_%03d.mp4 is a missing file).
_PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".dpx", ".exr", ".gif", ".ppm", ".pgm",
                     ".tga", ".j2k", ".jp2"}
_SLASHES = tuple(filter(None, (os.sep, os.altsep)))


def check_input_name(text: str) -> None:
    """Refuse an input named so that a `Path` made of it would hide what is wrong, as `_open`
    refuses it: a URL (a Path makes https://host/a.mp4 the local https:/host/a.mp4) or an existing
    file's name with a trailing slash (a Path drops it, and would read the file)."""
    if _URL.match(text) or (text.endswith(_SLASHES) and os.path.isfile(text.rstrip("".join(_SLASHES)))):
        raise VidtransError(f"{shown_path(text)}: {_why_missing(text)}")


def _why_missing(name: str, unknown: str = "file not found (check the path)") -> str:
    """What a user must be told of an input `name` that is no file there, for the message after it
    (`unknown` where nothing more is known)."""
    if _URL.match(name):
        if name[:5].lower() == "file:":
            return "is a file: URL; pass the file's path instead (without file://)"
        # FFmpeg could read some, but vidtrans reads its input more than once (a look at it, the
        # frames, the audio to copy), which a stream does not allow.
        return "is a URL, and vidtrans works on local files only; give a local path (download an input first)"
    bare = name.rstrip("".join(_SLASHES))
    if bare != name and os.path.isfile(bare):
        return f"is a file, not a folder; drop the trailing slash ({shown_path(bare)})"
    if os.path.islink(name):
        return f"is a symbolic link to {shown_path(os.readlink(name))}, which does not exist (moved or deleted?)"
    parent = os.path.dirname(os.path.normpath(name))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        return f"{shown_path(parent)} is a file, not a folder (check the path)"
    if _SEQUENCE.search(os.path.basename(name)) and os.path.splitext(name)[1].lower() in _PICTURE_SUFFIXES:
        return ("is an image sequence's pattern, which vidtrans does not read; make a video of the images first "
                f"(e.g. ffmpeg -framerate 25 -i {shlex.quote(name)} -pix_fmt yuv420p clip.mp4) and pass it")
    return unknown


def _open(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a file for reading and pick its video stream, turning every failure into one line."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VidtransError(f"{shown_path(name)}: {_why_missing(name)}")
    if os.path.isdir(name):
        raise VidtransError(f"{name}: is a folder, not a video file (pass a video file)")
    if not stat.S_ISREG(mode := os.stat(name).st_mode):
        # A pipe gives its data once, and a clip is read more than once (a look at it, the frames,
        # the audio to copy): later reads would wait for data that never comes.
        raise VidtransError(f"{name}: is {special_file_kind(mode)}, not a video file, and vidtrans reads its input "
                            "more than once; save the video to a file and pass that")
    if os.stat(name).st_size == 0:  # most often a copy or download that has not begun writing
        raise VidtransError(f"{name}: is empty (0 bytes), not a video; pass the video once it is copied whole")
    try:
        container = av.open(local_file(name), metadata_errors="ignore", options=AS_NAMED)
    except av.FFmpegError as e:
        if _mp4_without_index(name):
            raise _index_lost(name) from e
        suffix = os.path.splitext(name)[1].lower()
        fix = (f"the {suffix} file is damaged or cut short, or not what its name says; re-export or re-download it"
               if suffix in COMMON_VIDEO_SUFFIXES + OTHER_VIDEO_SUFFIXES else "pass a video such as .mp4/.mov/.mkv")
        raise VidtransError(f"{name}: not a readable video file ({first_line(e)}); {fix}") from e
    if not container.streams.video:
        container.close()
        if _mp4_without_index(name):  # FFmpeg read a cut index's streams as far as it goes: no video's
            raise _index_lost(name)
        raise VidtransError(f"{name}: no video stream (pass a video file, not audio or subtitles only)")
    stream = main_video_stream(container)
    if stream is None:
        container.close()
        raise VidtransError(f"{name}: its video is in a format this FFmpeg has no decoder for (a damaged header, "
                            "or a codec it lacks); convert it with a full ffmpeg to H.264, or pass another file")
    return container, stream


def _index_lost(name: str) -> VidtransError:
    """The error for an MP4/MOV whose index is missing or cut short (`_mp4_without_index`)."""
    return VidtransError(f"{name}: not a readable video file (an MP4/MOV without its index, the 'moov' box, which "
                         "is written last, or with it cut short: the recording or copy stopped before it finished); "
                         "copy it again from its source, or recover it with a repair tool such as untrunc")


def _mp4_without_index(path: str) -> bool:
    """Whether `path` is an MP4/MOV (its first box is `ftyp`) whose top-level boxes, as far as the
    file goes, hold no `moov`, or one whose stated size runs past the end of the file: the index a
    camera or muxer writes after the media data, missing or cut short when recording or copying
    stopped early. Not a HEIF picture (AVIF, HEIC), which has `meta` where a video has `moov`."""
    try:
        with open(path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            position, first = 0, True
            while position + 8 <= end:
                f.seek(position)
                header = f.read(16)
                size, kind = struct.unpack(">I4s", header[:8])
                if (first and kind != b"ftyp") or kind == b"meta":
                    return False
                first = False
                if size == 1 and len(header) == 16:
                    size = struct.unpack(">Q", header[8:])[0]
                elif size == 0:  # the last box, to the end of the file
                    return kind != b"moov"
                if size < 8:
                    return False  # not boxes after all
                if kind == b"moov":
                    return position + size > end
                position += size
            return not first
    except OSError:
        return False


def _matroska_cut_short(path: str | os.PathLike) -> bool:
    """Whether `path` is a Matroska/WebM file whose Segment (everything after the EBML header) has
    a stated size that runs past the end of the file: a copy or download cut short. A recording
    still being written, or stopped by a crash, states no size (all ones: unknown) and says nothing."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
            end = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if head[:4] != b"\x1a\x45\xdf\xa3":
        return False
    header, position = _ebml_size(head, 4)
    if header is None or head[position + header:position + header + 4] != b"\x18\x53\x80\x67":
        return False
    segment, position = _ebml_size(head, position + header + 4)
    return segment is not None and position + segment > end


def _ebml_size(data: bytes, position: int) -> tuple[int | None, int]:
    """The EBML variable-length size at `position` (None: unknown, or not one) and where its data starts."""
    if position >= len(data) or not data[position]:
        return None, position
    length = 9 - data[position].bit_length()
    if position + length > len(data):
        return None, position
    value = int.from_bytes(data[position:position + length], "big") & ((1 << (7 * length)) - 1)
    return (None if value == (1 << (7 * length)) - 1 else value), position + length


def main_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The video stream a clip is, as ffmpeg picks it: the largest picture (the first of those)
    that is not a cover (MP4, MKV and MP3 files show cover art as a video stream of one picture,
    which may come first, as may a small preview track), of those FFmpeg can decode (None when it
    can decode none: a stream whose codec it lacks, or whose header is damaged, has no size)."""
    videos = [s for s in container.streams.video if s.codec_context is not None]
    if not videos:
        return None
    moving = [s for s in videos if not s.disposition & av.stream.Disposition.attached_pic] or videos
    return max(moving, key=lambda s: s.codec_context.width * s.codec_context.height)


def _square_pixels(width: int, height: int, stream: av.video.stream.VideoStream) -> tuple[int, int]:
    """The size a stored picture is shown at: its width scaled by the pixels' aspect ratio, which
    DV, DVD and broadcast SD video store (720x480 at 8:9 is shown 640x480), as players show it and
    as an output of square pixels (which every model expects) keeps it."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    # Stored aspect ratios run from 8:11 to 2:1 (anamorphic); one far outside is a damaged header,
    # which would make frames thousands of pixels wide.
    if sar is None or not 1 / MAX_PIXEL_ASPECT <= sar <= MAX_PIXEL_ASPECT or sar == 1:
        return width, height
    return max(1, round(width * sar)), height


# Image codecs whose "interlaced" pictures (FFmpeg flags them so) are stored with their rows reordered
# (PNG's Adam7, GIF's) to show coarse first while loading: one moment, not two fields.
_ROWS_REORDERED = frozenset({"png", "apng", "gif"})


def _progressive(pictures: Iterator[av.VideoFrame], fields: bool) -> Iterator[tuple[av.VideoFrame, av.VideoFrame]]:
    """Each decoded picture, with the picture to show for it: an interlaced one deinterlaced (FFmpeg's
    bwdif, one picture per frame, as players show it), a progressive one as it is. The two fields of an
    interlaced picture (camcorders, DV, broadcast 1080i) were taken half a frame apart: anything moving
    was combed, for the model and in the output, which is progressive and which no player deinterlaces.
    `fields`: whether the codec's interlaced pictures are fields (not `_ROWS_REORDERED`)."""
    if not fields:
        yield from ((picture, picture) for picture in pictures)
        return
    graph: _Deinterlacer | None = None
    for picture in pictures:
        if graph is not None and not graph.takes(picture):
            yield from graph.drain()  # the stream's size or format changed midway
            graph = None
        if graph is None and picture.interlaced_frame:
            try:
                graph = _Deinterlacer(picture)
            except (av.FFmpegError, ValueError) as e:  # a format bwdif does not take: shown as decoded
                log.debug("cannot deinterlace %s pictures (%s)", picture.format.name, first_line(e))
        if graph is None:
            yield picture, picture
            continue
        yield from graph.push(picture)
    if graph is not None:
        yield from graph.drain()


class _Deinterlacer:
    """bwdif for pictures of one size and format: it passes progressive ones through, and gives each
    picture out one picture later (it looks at the next), so the decoded pictures wait here for theirs."""

    def __init__(self, first: av.VideoFrame):
        self._size = first.width, first.height, first.format.name
        self._graph = av.filter.Graph()
        source = self._graph.add_buffer(width=first.width, height=first.height, format=first.format,
                                        time_base=first.time_base or Fraction(1, 1000))
        bwdif = self._graph.add("bwdif", "mode=send_frame:parity=auto:deint=interlaced")
        self._sink = self._graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(self._sink)
        self._graph.configure()
        self._source = source
        self._waiting: deque[av.VideoFrame] = deque()

    def takes(self, picture: av.VideoFrame) -> bool:
        return (picture.width, picture.height, picture.format.name) == self._size

    def push(self, picture: av.VideoFrame) -> Iterator[tuple[av.VideoFrame, av.VideoFrame]]:
        self._waiting.append(picture)
        self._source.push(picture)
        return self._pulled()

    def drain(self) -> Iterator[tuple[av.VideoFrame, av.VideoFrame]]:
        self._source.push(None)
        yield from self._pulled()
        while self._waiting:  # not given back (none are, by bwdif): shown as decoded
            picture = self._waiting.popleft()
            yield picture, picture

    def _pulled(self) -> Iterator[tuple[av.VideoFrame, av.VideoFrame]]:
        while self._waiting:
            try:
                shown = self._sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            yield self._waiting.popleft(), shown


def _tolerate_new_side_data() -> None:
    """Let PyAV list a frame's side data of kinds newer than its own list of them.

    PyAV names each kind through its `Type` enum, which stops at FFmpeg 7's kinds, and listing a
    frame's side data raises ValueError at the first it cannot name. FFmpeg 8 attaches newer ones
    to ordinary inputs: EXIF (31) to every JPEG or PNG that carries it (every phone photo, with its
    orientation also given as a display matrix), VIEW_ID (29) to MV-HEVC (spatial video) frames.
    Unknown kinds become members named UNKNOWN_<n> (one per value), so the listing, and the display
    matrix in it, reads; known kinds are untouched."""
    kinds = av.sidedata.sidedata.Type
    if "_missing_" in vars(kinds):
        return
    made: dict[int, av.sidedata.sidedata.Type] = {}

    def missing(cls, value):
        if not isinstance(value, int) or value < 0:
            return None
        if value not in made:
            member = object.__new__(cls)
            member._name_, member._value_ = f"UNKNOWN_{value}", value
            made.setdefault(value, member)
        return made[value]
    kinds._missing_ = classmethod(missing)


_tolerate_new_side_data()


def _display_orientation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> tuple[int, bool]:
    """Clockwise degrees to show the picture upright, and whether to mirror it then, from
    display-matrix side data (in a photo, its EXIF orientation as FFmpeg gives it) or the old
    `rotate` tag."""
    matrix = frame.side_data.get("DISPLAYMATRIX")
    if matrix is not None:
        return _matrix_orientation(bytes(matrix))
    try:
        degrees = float(stream.metadata.get("rotate", "0"))
    except ValueError:
        return 0, False
    return _quarter_turns(degrees), False


def _matrix_orientation(matrix: bytes) -> tuple[int, bool]:
    """An FFmpeg display matrix (nine native int32, a b u / c d v / x y w; a stored point (x, y) is
    shown at (a x + c y, b x + d y)) as a clockwise turn, by a multiple of 90 degrees, then a
    left-right mirror or not; (0, False) for any other matrix: a degenerate one, e.g. all zeros
    from a broken muxer, says nothing about how to show the picture."""
    a, b, _, c, d = (v / 65536 for v in struct.unpack("=5i", matrix[:20]))
    determinant = a * d - b * c
    if abs(abs(determinant) - 1) > 0.01:
        return 0, False
    # A mirroring matrix is a turn followed by x -> -x: undo the mirror to read the turn.
    mirrored = determinant < 0
    if mirrored:
        a, c = -a, -c
    return _quarter_turns(math.degrees(math.atan2(b, a))), mirrored


def _quarter_turns(clockwise: float) -> int:
    """`clockwise` as 0/90/180/270, or 0 when it is not within a degree of a multiple of 90."""
    turns = round(clockwise / 90) if math.isfinite(clockwise) else 0
    return turns * 90 % 360 if abs(clockwise - turns * 90) <= 1 else 0


# Whether a TS/PS file's clock starts anew, per file (`_file_key`), found by passes over all its
# packets in this process: a later reader of one whose clock does not can seek in it.
_CLOCK_RESTARTS: dict[tuple[int, int, int, int], bool] = {}


def _file_key(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """What tells a file apart from others and from itself changed: device, inode, size and
    modification time (None when it cannot be read)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


_BT709_PRIMARIES = 1  # FFmpeg's AVCOL_PRI_BT709
_UNSPECIFIED_MATRIX = 2  # FFmpeg's AVCOL_SPC_UNSPECIFIED


def _untagged_matrix(decoded: av.VideoFrame) -> str | None:
    """The YUV matrix players assume for a picture whose stream does not say (mpv, VLC, browsers,
    SDL: BT.709 for an HD picture, wider than 1279 or taller than 576 as stored, BT.601 below), so
    colours come out as they showed the input; FFmpeg's converter would take BT.601 at every size.
    None where the stream says (its tag is used) or the picture is SD (BT.601, FFmpeg's default)."""
    if int(decoded.colorspace or 0) != _UNSPECIFIED_MATRIX or decoded.format.is_rgb:
        return None
    return "itu709" if decoded.width >= 1280 or decoded.height > 576 else None


MAX_PIXEL_ASPECT = 4
# A whole clip read that ends before this share of the video's stated frames and duration is cut short.
CUT_SHORT = 0.9
_WARNED_CUT_SHORT: set = set()  # the files (`_file_key`) this process warned about
# No video runs faster: a higher rate is a demuxer's time base given as one (DV says 60000 fps).
MAX_FPS = 1000
# How far an average frame rate may exceed the one the timestamps show (a variable rate's average
# is at most a little above it) before it is taken for a header's mistake (see `_fps`).
RATE_MISMATCH = 2


def _fps(stream: av.video.stream.VideoStream) -> float:
    """The average frame rate, else the one FFmpeg guesses from the timestamps, else the codec's
    (0 when none is usable). An average more than `RATE_MISMATCH` times the guess is a header's,
    not the frames': a Matroska file whose muxer was told no rate (a remux) says one frame per
    tick of its 1 ms clock, 1000 fps, for frames 40 ms apart."""
    average, guessed = _first_rate(stream.average_rate), _first_rate(stream.guessed_rate, stream.base_rate)
    return guessed if average > RATE_MISMATCH * guessed > 0 else average or guessed


def _frame_rate(stream: av.video.stream.VideoStream) -> float:
    """The rate of the frames' grid FFmpeg guesses from the timestamps (at least the average: a
    slower grid would fall behind the frames), else the average (0 when none is usable)."""
    return max(_first_rate(stream.guessed_rate, stream.base_rate), _fps(stream))


def _first_rate(*rates: Fraction | None) -> float:
    return next((float(rate) for rate in rates if rate and 0 < rate <= MAX_FPS), 0.0)


# Bytes hashed to tell files apart: enough to differ between any two encodes, cheap for a long file.
HEAD_BYTES = 1 << 20


def not_a_video_file(path: str | os.PathLike) -> str | None:
    """Why `path` is no file to read a video from, as messages say it ("no such video file"), or
    None where it is a regular file."""
    text, path = os.fspath(path), Path(path)
    try:
        return (None if path.is_file() else "is a folder, not a video file" if path.is_dir() else
                "is not a regular file" if path.exists() else _why_missing(text, "no such video file"))
    except OSError as e:  # a name longer than the file system takes, a parent folder not to be searched
        return f"cannot be read ({first_line(e)})"


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
        first, earliest = _first_frame(container, stream, path)
        rotation, mirrored = _display_orientation(first, stream)
        width, height = _square_pixels(first.width, first.height, stream)
        stored = None if width == first.width else (first.width, first.height)
        if rotation in (90, 270):
            width, height = height, width
        tb = stream.time_base or Fraction(1, 90000)
        fps = _fps(stream)
        shifts = _first_shifts(container)
        shift = shifts.get(stream.index, Fraction(0))
        clip = _clip_start(container, shifts)
        video_start = _video_start(container, stream, earliest, tb)
        start_time = float(video_start * tb + shift - clip) if video_start is not None else 0.0
        if shift:
            duration = 0.0  # FFmpeg's counts from the damaged first timestamp: unknown
        elif stream.duration:
            # A duration FFmpeg filled in with the start (the file's) runs from there.
            late = (video_start - stream.start_time) * tb if video_start != stream.start_time else 0
            duration = max(0.0, float(stream.duration * tb - late))
        elif duration := _stated_end(container, stream):
            # Matroska's duration is where the last frame ends, counted from 0, not from the first:
            # the video's own first (its audio may start long before it), else the file's.
            begins = video_start * tb if video_start is not None else \
                Fraction(container.start_time or 0, av.time_base)
            if 0 < begins < duration:
                duration -= float(begins)
        else:
            duration = 0.0
        return VideoInfo(width=width, height=height, fps=fps, frame_rate=_frame_rate(stream), time_base=tb,
                         frame_count=_frame_count(stream, duration, fps, os.path.getsize(path)),
                         duration=duration, rotation=rotation, has_audio=bool(container.streams.audio),
                         codec=stream.codec_context.name, pix_fmt=first.format.name, start_time=start_time,
                         clip_start=clip, mirrored=mirrored, stored_size=stored)
    finally:
        container.close()


def _stated_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """Where the video ends by the file's header, seconds from 0 (0: unknown), for a stream that
    states no duration of its own (Matroska): its DURATION tag, which FFmpeg's and mkvmerge's muxers
    write for each stream (mkvmerge's with a language: DURATION-eng), where it is within the file's;
    else the file's, its longest stream's, which overstates a video that audio or a second video
    stream outlasts (10 frames taken for 102)."""
    # A damaged header's Duration can be negative (FFmpeg passes it on): unknown.
    whole = max(0.0, container.duration / av.time_base) if container.duration else 0.0
    tagged = _duration_tag(stream)
    return tagged if tagged and (not whole or tagged <= whole) else whole


def _duration_tag(stream: av.video.stream.VideoStream) -> float | None:
    """A Matroska stream's own DURATION tag in seconds (mkvmerge's with a language: DURATION-eng), which the
    muxer writes as it finishes the file; None where it has none (a recording stopped by a crash)."""
    return next((_tag_seconds(value) for key, value in stream.metadata.items()
                 if key.upper() == "DURATION" or key.upper().startswith("DURATION-")), None)


def _tag_seconds(text: str) -> float | None:
    """A Matroska duration tag, HH:MM:SS.nnnnnnnnn, in seconds (None when it is not one)."""
    match = re.fullmatch(r"\s*(\d+):([0-5]?\d):(\d+(?:\.\d*)?)\s*", text)
    return None if match is None else int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


def _frame_count(stream: av.video.stream.VideoStream, duration: float, fps: float, file_size: int) -> int:
    """The stream's frame count if the container states it, else duration x average rate, which
    some files get wildly wrong (a cover picture's 90000 fps; Matroska's duration counted from 0
    when the first frame is hours in), so it is capped by what the file could hold."""
    if stream.disposition & av.stream.Disposition.attached_pic:
        return 1  # a cover picture (MP3, M4A): one frame, whatever rate the stream claims
    if stream.frames:
        return stream.frames
    if not duration and stream.container.format.name.endswith("_pipe"):
        return 1  # a still picture (PNG, JPEG, ...): FFmpeg's image demuxers state no count or duration
    if not duration or not fps:
        return 0
    # No coded frame, container overhead included, is smaller than ~8 bytes (a still H.264
    # frame in a tiny clip takes ~19).
    return min(int(round(duration * fps)), file_size // 8)


def _first_frame(container, stream, path) -> tuple[av.VideoFrame, int | None]:
    """The first picture, past packets the decoder rejects (as `VideoReader` decodes past them): one
    damaged packet before it leaves the rest of the video readable; and the earliest pts of the
    packets sent up to it (None when one of them had none, or none had one)."""
    error: av.FFmpegError | None = None
    coded = False  # whether the stream had a packet with data
    stamps: list[int | None] = []
    try:
        for packet in demux(container, stream):  # its last packet, empty, drains the decoder
            coded = coded or bool(packet.size)
            if packet.size and not packet.is_discard:
                stamps.append(packet.pts)
            try:
                pictures = stream.decode(packet)
            except av.FFmpegError as e:
                error = error or e
                continue
            if pictures:
                return pictures[0], (min(stamps) if stamps and None not in stamps else None)
    except av.FFmpegError as e:  # the container itself is damaged there
        error = error or e
    if _mp4_without_index(os.fspath(path)):  # the frames' part of the index is cut off
        raise _index_lost(os.fspath(path)) from error
    if error is not None and is_animated_webp(path):
        raise VidtransError(f"{os.fspath(path)}: an animated WebP, which FFmpeg cannot decode; convert it to "
                            "a GIF or a video (.mp4) first") from error
    if error is not None:
        raise VidtransError(f"{os.fspath(path)}: video cannot be decoded ({first_line(error)}); "
                            "the file is damaged or truncated, re-export or re-download it") from error
    if not coded:
        raise VidtransError(f"{os.fspath(path)}: its video stream holds no frames (a track left empty, or a "
                            "recording stopped before its first picture); pass a file with video")
    raise VidtransError(f"{os.fspath(path)}: no video frames could be decoded; "
                        "the file is damaged or truncated, re-export or re-download it")


def _video_start(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 earliest: int | None, tb: Fraction) -> int | None:
    """Where the video starts, in `tb`, its time base: FFmpeg's start time, unless FFmpeg read no
    video packet while probing the file (it reads about 5 s: a Matroska file whose audio runs that
    long before the video) and gave the video the file's start instead, where its packets
    (`earliest`, from `_first_frame`) start more than `LATE_START_SECONDS` later. TS/PS clocks,
    and AVI/ASF stamps, are left to FFmpeg."""
    start = stream.start_time
    if (earliest is None or start is None or container.start_time is None
            or (earliest - start) * tb <= LATE_START_SECONDS
            or has_timestamp_jumps(container) or stamped_in_storing_order(container.format.name)):
        return start
    filled = abs(start * tb - Fraction(container.start_time, av.time_base)) <= tb
    return earliest if filled else start


# More than a few frames (an open group of pictures' leading frames, which a decoder drops at the
# start of a stream, come before the first picture): FFmpeg probes seconds of a file.
LATE_START_SECONDS = 1


def is_animated_webp(path: str | os.PathLike) -> bool:
    """Whether `path` is a WebP whose extended header (VP8X) says it is animated, which neither
    FFmpeg's decoder nor OpenCV reads as more than a picture. The flag, not an ANIM chunk near the
    start: an ICC profile or EXIF chunk can come first, kilobytes long."""
    try:
        with open(path, "rb") as f:
            head = f.read(21)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and len(head) == 21 and bool(head[20] & 0x02)


def corrupt_frames_note(corrupt: int) -> str:
    """How a command's summary tells of `corrupt` frames that could not be decoded (`VideoReader.corrupt_frames`)."""
    return f"{corrupt} corrupt frame(s) replaced by the previous good frame"


class VideoReader:
    """Iterate over a video's frames as upright uint8 RGB `Frame`s with their original pts.

    start/end (seconds from the clip's start, optional) trim to frames with start <= time < end;
    they must be numbers from 0 to `options.MAX_SECONDS`, end after start, and the span must hold
    a frame of the video (UsageError otherwise; for an empty span, naming where the video's frames
    are). Reading from `start` begins at the keyframe before it (see `_pictures`).

    Damaged data: decoding carries on past packets the decoder rejects. Every packet the
    container delivers (pts known, not marked discard) is meant to yield one frame; when the
    decoder produces no picture for it, the last good picture is repeated at that packet's pts,
    so the frame count and timing stay those of the container and audio stays in sync.
    `corrupt_frames` counts those repeats plus pictures the decoder flagged as corrupt (which
    are passed on as decoded, with its error concealment). A frame whose pts is missing gets
    previous pts + frame duration (frames before the first timestamp: counted back from it);
    pts are made strictly increasing, as encoders require: a duplicate or backwards pts
    (screen recordings, edited files) becomes the previous frame's + 1 tick, and every frame
    is kept, in the order the decoder puts them out.
    Frames are produced lazily, one at a time (decoder threads hold a few more internally).
    Interlaced pictures are deinterlaced, one picture per frame (`_progressive`).

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
        self.start, self.end = start, end
        # Spelled now: the frames may be read on another thread, where messages spell Python names.
        self._span_fix = f"choose another {spell('start')}/{spell('end')}"
        if start is not None and self.info.duration and start >= self.info.start_time + self.info.duration:
            # Past the end by the container's figures; its packets say for sure.
            error = self._empty_span_error()
            if error is not None:
                raise error
        self.corrupt_frames = 0
        self._read_to = 0  # where in the file the last video packet decoded ends, in bytes
        self._open()
        self._started = False

    def _open(self) -> None:
        self._container, self._stream = _open(self.path)
        self._stream.thread_type = "AUTO"
        self._moved = False  # the demuxer is at the beginning

    @property
    def frame_count(self) -> int:
        """Estimated number of frames this reader yields (trim applied), 0 if unknown."""
        info = self.info
        if not info.fps or not info.frame_count:
            return info.frame_count
        # The video's frames sit at start_time + k / fps until start_time + duration; the trim keeps
        # those at or after `start` and before `end`, so each end counts the frames before it (rounding
        # the span's length instead took 12.5 frames for 12, one fewer than are read).
        lo = max(info.start_time, self.start or 0.0)
        hi = min(info.start_time + info.duration if info.duration else math.inf,
                 self.end if self.end is not None else math.inf)
        if hi == math.inf:
            return info.frame_count

        def frames_before(t: float) -> int:
            return max(0, math.ceil((t - info.start_time) * info.fps - 1e-6))  # 1e-6: float error, not a frame
        return min(info.frame_count, max(0, frames_before(hi) - frames_before(lo)))

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError("VideoReader can be iterated only once")
        self._started = True
        return self._frames()

    def _trim_pts(self) -> tuple[int | None, int | None]:
        """`start` and `end` in pts: frames at exactly `start` are in and at exactly `end` out."""
        info = self.info
        return tuple(None if t is None else first_pts_at(info.clip_start + Fraction(t), info.time_base)
                     for t in (self.start, self.end))

    def _step(self) -> int:
        """A frame's duration in pts, from the average frame rate."""
        return frame_ticks(self.info.fps, self.info.time_base)

    def span(self) -> FrameSpan:
        """Where this reader's frames (start/end applied) sit in the whole clip: the frames are
        counted from the container's packets (one per frame the reader yields), demuxed but not
        decoded, so this costs one pass over the file's data and no decoding."""
        start_pts, end_pts = self._trim_pts()
        first = stop = total = 0
        for pts in self._packet_pts():
            total += 1
            first += start_pts is not None and pts < start_pts
            stop += end_pts is None or pts < end_pts
        return FrameSpan(first, stop, total)

    def frame_time(self, index: int) -> float | None:
        """The time of the clip's frame `index` (counting from 0 over the whole clip, start/end
        ignored, as `span` counts), in seconds from the clip's start, from the container's packets
        (no decoding); None when the clip has no such frame."""
        times = sorted(self._packet_pts())  # packets come in decoding order, frames in pts order
        if not 0 <= index < len(times):
            return None
        return float(times[index] * self.info.time_base - self.info.clip_start)

    def _packet_pts(self) -> Iterator[int]:
        """The pts of every frame of the clip as `_frames` stamps them, one per packet, from a
        pass over the packets (no decoding)."""
        step, previous = self._step(), None
        identity = _file_key(self.path)
        container, stream = _open(self.path)
        clock = ContinuousTimestamps(stream)
        try:
            for packet in self._video_packets(container, stream, clock):
                if packet.size == 0 or packet.is_discard:
                    continue
                # As `_frames` stamps a picture without pts: the previous one's plus a frame.
                pts = packet.pts if packet.pts is not None else (previous + step if previous is not None else 0)
                previous = pts
                yield pts
            if identity is not None and has_timestamp_jumps(container):
                _CLOCK_RESTARTS[identity] = clock.restarted
        except av.FFmpegError:
            pass  # a damaged part ends the frames here, as it ends the reader's
        finally:
            container.close()

    def _video_packets(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                       clock: ContinuousTimestamps) -> Iterator[av.Packet]:
        """The video's packets with the timestamps every pass over them stamps (decoding, counting):
        a TS/PS clock's jumps smoothed, packets before the first timestamp given one."""
        packets = demux(container, stream)
        if stamped_in_storing_order(container.format.name):
            packets = _stamped_by_dts(packets)
        if has_timestamp_jumps(container):
            packets = clock(packets)
        return _leading_pts(packets, self._step())

    def _empty_span_error(self) -> UsageError | None:
        """The error for a start/end span that holds no frame of the video, naming where its frames
        are (and the gap the span falls in); None when the span holds a frame or the clip none."""
        start_pts, end_pts = self._trim_pts()
        before: list[int] = []  # the frames' pts before the span
        after: list[int] = []  # and after it
        for pts in self._packet_pts():
            if start_pts is not None and pts < start_pts:
                before.append(pts)
            elif end_pts is not None and pts >= end_pts:
                after.append(pts)
            else:
                return None
        if not before and not after:
            return None

        def seconds(pts: int) -> str:
            return f"{float(pts * self.info.time_base - self.info.clip_start):.2f}"
        if self.start is not None and self.end is not None:
            span = f"between {self.start:g}s and {self.end:g}s"
        else:
            span = f"from {self.start:g}s on" if self.start is not None else f"before {self.end:g}s"
        first, last = min(before + after), max(before + after)
        frames = f"frames from {seconds(first)} to {seconds(last)} s" if last != first else \
            f"one frame, at {seconds(first)} s"
        gap = f", none from {seconds(max(before))} to {seconds(min(after))} s" if before and after else ""
        return UsageError(f"{self.path}: no video frames {span} (the video has {frames}{gap}); {self._span_fix}")

    def _go_to(self, seconds: float | None) -> bool:
        """Put the demuxer at the keyframe before `seconds` (from the clip's start; None: at the
        beginning), or at the beginning when that is not after the video's first frame or FFmpeg
        cannot seek there (it refuses in a Matroska file whose audio starts long before its
        video); whether it seeked. A TS/PS file is read from the beginning (`_decoded` decodes only
        from the keyframes before `seconds`) unless a pass over all its packets found that its
        clock never starts anew: past a restart (joined recordings) its times are not the file's,
        and seeking uses those. Finding that out costs reading the whole file, more than reading
        up to `seconds`, so it is not done for a seek; `span` and `frame_time` do it."""
        if (seconds is not None and seconds > self.info.start_time and has_timestamp_jumps(self._container)
                and _CLOCK_RESTARTS.get(_file_key(self.path)) is not False):
            seconds = None
        if seconds is not None and seconds > self.info.start_time:
            try:
                self._container.seek(seek_pts(self.info.clip_start + Fraction(seconds), self.info.time_base),
                                     stream=self._stream, backward=True)
                self._moved = True
                return True
            except av.FFmpegError as e:
                log.debug("%s: cannot seek to %ss (%s); decoding from the beginning", self.path, seconds, first_line(e))
                self._moved = True  # a failed seek leaves the demuxer at the end
        if self._moved:
            self._container.close()
            self._open()
        return False

    def _pictures(self, pending: _Pending, start_pts: int | None, end_pts: int | None) -> Iterator[av.VideoFrame]:
        """The decoded pictures, from the keyframe before `start` on.

        A seek lands on a keyframe where the container has an index (MP4, MKV), but on any packet
        where FFmpeg searches its timestamps instead (MPEG-TS), and a decoder puts out nothing
        from there to the next keyframe. So when the first picture after a seek is later than
        `start` (the frames before it were skipped), or none comes, the reader seeks again,
        earlier, twice as far back each time, down to decoding from the beginning.
        """
        def in_range(pts: int) -> bool:
            return (start_pts is None or pts >= start_pts) and (end_pts is None or pts < end_pts)

        target, back = self.start, 1.0
        while True:
            seeked = self._go_to(target)
            pending.clear()
            pictures = self._decoded(pending, in_range, start_pts)
            first = next(pictures, None)
            if seeked and (first is None or (first.pts is not None and first.pts > start_pts)):
                pictures.close()
                log.debug("%s: the seek to %ss skipped frames; seeking %ss before %ss", self.path, target, back,
                          self.start)
                target, back = self.start - back, back * 2
                continue
            if first is not None:
                yield first
            yield from pictures
            return

    def _frames(self) -> Iterator[Frame]:
        tb, clip = self.info.time_base, self.info.clip_start
        rotate = _ROTATE.get(self.info.rotation)
        start_pts, end_pts = self._trim_pts()
        step = self._step()

        pending = _Pending()  # packets sent to the decoder whose picture has not come out
        last: Frame | None = None
        decoded_pts: int | None = None  # of the last picture out of the decoder
        owed: list[int] = []  # lost pts before the first good picture: filled once we have one

        def emit(image: np.ndarray, p: int, repeated: bool) -> Frame:
            nonlocal last
            if repeated:
                self.corrupt_frames += 1
                image = image.copy()
            # Encoders need increasing pts: a duplicate or backwards one goes one tick after the last.
            if last is not None and p <= last.pts:
                p = last.pts + 1
            last = Frame(image, p, tb, 0 if last is None else last.index + 1, clip)
            return last

        def place(p: int, image: np.ndarray | None) -> Iterator[Frame]:
            """The frame of a picture at `p`, or the repeat for a lost packet at `p` (image None)."""
            if image is None:
                if last is None:
                    owed.append(p)
                else:
                    yield emit(last.image, p, repeated=True)
                return
            # A late picture (see `_Pending.late`) whose time is owed takes that time from its repeat.
            for q in owed:
                if q < p:
                    yield emit(image, q, repeated=True)
            yield emit(image, p, repeated=False)
            for q in owed:
                if q > p:
                    yield emit(image, q, repeated=True)
            owed.clear()

        fields = self._stream.codec_context.name not in _ROWS_REORDERED
        for decoded, shown in _progressive(self._pictures(pending, start_pts, end_pts), fields):
            pts = decoded.pts
            late = pts is not None and pending.late(pts)
            if late and pts not in owed:
                continue  # its time has its frame out already: another would be one too many
            if pts is None:  # counted on from the picture before, kept or not (MPEG-PS stamps a few)
                # The first: where decoding began, the seek's target, or the file's start as `_packet_pts`
                # counts it (a raw .h264 stream, stamped nowhere, cannot seek: its first frame is at 0).
                first = start_pts if self._moved and start_pts is not None else 0
                pts = (decoded_pts + (decoded.duration or step)) if decoded_pts is not None else first
            decoded_pts = pts
            if start_pts is not None and pts < start_pts:
                continue
            if end_pts is not None and pts >= end_pts:
                break
            if decoded.is_corrupt:
                self.corrupt_frames += 1
            image = self._rgb(shown)  # rows may keep the decoder's line padding
            image = cv2.rotate(image, rotate) if rotate is not None else np.ascontiguousarray(image)
            if self.info.mirrored:
                image = cv2.flip(image, 1)
            # A late picture is no news of the packets pending: it cannot tell which are lost.
            for p, picture in [(pts, image)] if late else pending.came_out(pts, image):
                yield from place(p, picture)
        for p, picture in pending.drain():
            yield from place(p, picture)
        if last is not None and self.start is None and self.end is None:
            self._warn_if_cut_short(last)
        if last is None and not pending.sent_any and (self.start is not None or self.end is not None):
            error = self._empty_span_error()
            if error is not None:
                raise error

    def _warn_if_cut_short(self, last: Frame) -> None:
        """Warn, once per file, about one whose header states more frames than it gave and a video
        lasting well beyond its last frame: cut short (a copy or a recording interrupted) or
        damaged from there, which decoding cannot tell. Both, since a last frame held for seconds
        (a screen recording) ends early by the clock, and an edit list hides frames it counts.
        Matroska (.mkv, .webm) states no frame count: there a Segment whose stated size runs past
        the end of the file is the cut, the duration in its header what it should have lasted; and
        a finished file's video, its own DURATION tag stating the length, ending well before it and
        well before the file's end (a damaged block ends the demuxer's reading where no cluster
        follows to resume at; a last frame held for seconds ends at the file's end)."""
        stream, fps = self._stream, self.info.fps
        if not fps:
            return
        played = last.time - self.info.start_time + 1 / fps
        if stream.frames and stream.duration:
            stated = float(stream.duration * stream.time_base)
            short = last.index + 1 < CUT_SHORT * stream.frames and played < CUT_SHORT * stated and stated - played > 1.0
        else:
            stated = self.info.duration
            short = stated - played > 1 / fps and (_matroska_cut_short(self.path) or (
                _duration_tag(stream) is not None and played < CUT_SHORT * stated and stated - played > 1.0
                and self._read_to < CUT_SHORT * os.path.getsize(self.path)))
        if short and (key := _file_key(self.path)) not in _WARNED_CUT_SHORT:
            _WARNED_CUT_SHORT.add(key)
            log.warning("%s: its video ends after %.1f s of the %.1f s its header states (the file is cut short, "
                        "or damaged from there); the output ends there too", self.path, played, stated)

    def _rgb(self, decoded: av.VideoFrame) -> np.ndarray:
        # Every picture at the size `info` gives (before turning upright): a stream whose size changes
        # midway (joined captures, a broadcast switching programmes) is scaled to its first size, as
        # ffmpeg scales it, so that frames of one clip stack and encode.
        width, height = self.info.width, self.info.height
        if self.info.rotation in (90, 270):
            width, height = height, width
        scale = self.max_side / max(width, height) if self.max_side else 1.0
        if scale < 1.0:
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
        transfer = int(decoded.color_trc or 0)
        hdr = transfer in HDR_TRANSFERS
        # HDR is converted from 16 bits, where its 10 keep their steps apart.
        form = "rgb48le" if hdr else "rgb24"
        matrix = _untagged_matrix(decoded)
        if (width, height) == (decoded.width, decoded.height):
            rgb = decoded.to_ndarray(format=form, src_colorspace=matrix)
        else:
            shrinking = width * height < decoded.width * decoded.height
            rgb = decoded.to_ndarray(format=form, width=width, height=height, src_colorspace=matrix,
                                     interpolation="AREA" if shrinking else "BILINEAR")
        return to_sdr(rgb, transfer, bt2020=int(decoded.color_primaries or 0) != _BT709_PRIMARIES) if hdr else rgb

    def _decoded(self, pending: _Pending, in_range: Callable[[int], bool],
                 start_pts: int | None) -> Iterator[av.VideoFrame]:
        """Demux and decode ourselves, so a bad packet costs one frame, not the rest of the video;
        from the keyframes before `start_pts` on (see `_from_keyframes_before`)."""
        stream = self._stream
        # AVI and ASF stamp packets in the order they are stored, which with B-frames is not the
        # order their pictures are shown in (each picture would get another's time, and `pending`
        # would take the shuffle for lost packets). The decoder puts pictures out in showing
        # order, so each takes the earliest stamp not yet used, as ffmpeg does.
        stamps: list[int] | None = [] if self._stamped_in_storing_order() else None
        try:
            packets = self._video_packets(self._container, stream, ContinuousTimestamps(stream))
            for packet in _from_keyframes_before(packets, start_pts):
                if packet.size == 0:
                    continue
                if packet.pos is not None:
                    self._read_to = max(self._read_to, packet.pos + packet.size)
                if packet.pts is not None and not packet.is_discard:
                    if in_range(packet.pts):
                        pending.add(packet.pts)
                    if stamps is not None:
                        heapq.heappush(stamps, packet.pts)
                yield from self._decode(packet, stamps)
        except av.FFmpegError as e:
            # A damaged container index or truncated tail: keep what we have, like players do.
            log.warning("%s: stopped reading at a damaged part (%s)", self.path, first_line(e))
        yield from self._decode(None, stamps)

    def _stamped_in_storing_order(self) -> bool:
        return stamped_in_storing_order(self._container.format.name) and bool(self._stream.codec_context.has_b_frames)

    def _decode(self, packet: av.Packet | None, stamps: list[int] | None) -> list[av.VideoFrame]:
        try:
            pictures = self._stream.decode(packet)
        except av.FFmpegError:
            return []
        if stamps is not None:
            for picture in pictures:
                picture.pts = heapq.heappop(stamps) if stamps else None
        return pictures

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Pending:
    """Packets sent to the decoder whose picture has not come out yet, and the order their frames go in.

    A decoder that reorders (B-frames) puts pictures out in presentation order, one that does not
    in sending order, and which one a stream has cannot be told beforehand: the MP4 demuxer sets a
    reorder delay from the file's timestamps, so a backwards timestamp makes a stream without
    B-frames look like one. So a packet counts as lost only when both orders agree: once a picture
    came out for a packet sent after it with a later pts (or the decoder is drained). A picture
    that comes out while a packet sent after it with an earlier pts is pending (a B-frame, or the
    frame after a backwards timestamp) waits for the next picture: the repeat of a lost packet goes
    before it, a picture still to come after it.
    A damaged stream's decoder can put a picture out late, after pictures with later times (its
    packet counted as lost: that time has its repeat already), or twice: such a picture matches no
    pending packet and its time is not after the last placed, so it is `late`, not one more frame.
    """

    def __init__(self):
        self._sent: list[int] = []  # pts, in sending order
        self._held: tuple[int, np.ndarray] | None = None
        self._latest: int | None = None  # the latest pts placed or held, a picture's or a lost packet's
        self.sent_any = False  # whether any packet (of the span) went to the decoder

    def clear(self) -> None:
        self.__init__()

    def add(self, pts: int) -> None:
        self._sent.append(pts)
        self.sent_any = True

    def came_out(self, pts: int, picture: np.ndarray) -> list[tuple[int, np.ndarray | None]]:
        """The frames that can go out now that the picture at `pts` came out, in order: (pts,
        picture), or (pts, None) for a packet that will never give one. A picture matching no
        packet (its pts unknown to the container) counts as the last packet sent."""
        sent = self._sent
        here = sent.index(pts) if pts in sent else len(sent)
        earlier, later = sent[:here], sent[here + 1:]
        lost = [p for p in earlier if p < pts]
        self._sent = [p for p in earlier if p >= pts] + later
        self._latest = pts if self._latest is None else max(self._latest, pts)  # the lost ones are before it
        placed = self._release(lost)
        if any(p < pts for p in later):
            self._held = (pts, picture)
        else:
            placed.append((pts, picture))
        return placed

    def late(self, pts: int) -> bool:
        """Whether a picture at `pts` came out late: no pending packet has its pts, and a frame at
        or after its time was placed (or held) already."""
        return self._latest is not None and pts <= self._latest and pts not in self._sent

    def drain(self) -> list[tuple[int, np.ndarray | None]]:
        """What is left once the decoder is drained: every pending packet is lost."""
        lost, self._sent = self._sent, []
        return self._release(lost)

    def _release(self, lost: list[int]) -> list[tuple[int, np.ndarray | None]]:
        """The held picture, if any, with the lost packets' repeats in pts order around it."""
        held, self._held = self._held, None
        repeats = [(p, None) for p in sorted(lost)]
        if held is None:
            return repeats
        return [r for r in repeats if r[0] < held[0]] + [held] + [r for r in repeats if r[0] >= held[0]]


# How much coded video `_from_keyframes_before` keeps while it looks for a span's first packet:
# two groups of pictures of a 4K broadcast. Past this (keyframes far apart), it decodes what comes.
HELD_BYTES = 128 << 20


def _from_keyframes_before(packets: Iterator[av.Packet], start: int | None) -> Iterator[av.Packet]:
    """The packets a decoder needs for the pictures from pts `start` on: of those before the first
    packet at or after `start`, only the ones from the keyframe before the last keyframe on (a
    B-frame at the head of a group of pictures may refer to the group before), so a span late in
    a file read from its beginning costs demuxing up to it, not decoding. Only keyframes with a
    timestamp count (MPEG-PS stamps a few packets): the pictures after one are timed from it."""
    packets = iter(packets)
    held: list[av.Packet] = []
    if start is not None:
        keyframe = None  # where the last timed keyframe is in `held`
        size = 0
        for packet in packets:
            if packet.is_keyframe and packet.pts is not None:
                if keyframe is not None:
                    size -= sum(earlier.size for earlier in held[:keyframe])
                    del held[:keyframe]
                keyframe = len(held)
            if keyframe is None:
                yield packet  # none to start from yet: decoded as it comes
            else:
                held.append(packet)
                size += packet.size
            if packet.pts is not None and packet.pts >= start or size > HELD_BYTES:
                break
    yield from held
    yield from packets


def stamped_in_storing_order(format_name: str) -> bool:
    """Whether a container (FFmpeg's format name) stamps its packets in the order they are stored,
    not shown: AVI stores no times, only that order; ASF (.wmv, .asf) stores each packet's send
    time. With B-frames, stored out of showing order, these stamps are not the pictures' own."""
    return bool({"avi", "asf"} & set(format_name.split(",")))


def _stamped_by_dts(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """AVI's and ASF's packets stamped with their place in the file, the only time they keep (FFmpeg
    guesses each pts as the next packet's time, which puts every picture a frame late)."""
    for packet in packets:
        if packet.dts is not None:
            packet.pts = packet.dts
        yield packet


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
