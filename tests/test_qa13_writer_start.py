"""The writer's audio and subtitles with --start far into the file: read from a little before the
start (the source sought there), not from the file's beginning, and no further than --end, with the
same packets kept as when the whole file is read; read from the beginning where seeking cannot be
trusted."""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import decode_all, moving_square
from tests.test_qa10_video import ASS_HEADER
from tests.test_video_io import transcode
from vidtrans.video import writer

FPS = 10  # a keyframe every second (FPS frames), as cameras and encoders put them every 1-10 s
RATES = {"aac": 16000, "libopus": 48000, "pcm_s16le": 16000}
# Cues: one every 4 s from 2.5 s, shown 3 s: [2.5, 5.5), [6.5, 9.5), [10.5, 13.5) ...
CUE_EVERY, CUE_FIRST, CUE_SHOWN = 4, 2.5, 3
# A span whose start is inside an audio packet and under the cue shown from 6.5 s, which began before
# start - SEEK_MARGIN; its end under the cue from 10.5 s.
START, END = 9.03, 11.0


def interleaved_clip(path: Path, seconds: float, audio_codec: str = "aac", subtitles: bool = False,
                     audio_from: float = 0.0, video_from: float = 0.0) -> Path:
    """`seconds` of FPS fps `moving_square` frames (64x48) from `video_from`, with a 440 Hz sine in
    `audio_codec` from `audio_from` and with `subtitles` the cues "cueN" (N the second they appear at,
    see CUE_FIRST) as mov_text in MP4/MOV, SubRip in Matroska; every packet handed to the muxer in
    the order of its time, so that audio lies beside the video it plays with, as muxers store it."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "g": str(FPS)})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, FPS)
        cues = None
        if subtitles:
            cues = out.add_stream("subrip" if path.suffix == ".mkv" else "mov_text")
            cues.codec_context.subtitle_header = ASS_HEADER.encode()
        audio = out.add_stream(audio_codec, rate=RATES[audio_codec])
        audio.layout = "mono"
        rate, chunk = audio.codec_context.sample_rate, audio.codec_context.frame_size or 1024
        sample, cue_times = round(audio_from * rate), np.arange(CUE_FIRST, seconds, CUE_EVERY)
        first_frame = round(video_from * FPS)
        for i in range(first_frame, round(seconds * FPS)):
            frame = av.VideoFrame.from_ndarray(moving_square(i, 64, 48), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            while sample < (i + 1) / FPS * rate:
                wave = (0.3 * np.sin(2 * math.pi * 440 * np.arange(sample, sample + chunk) / rate)).astype(np.float32)
                piece = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
                piece.sample_rate, piece.pts, piece.time_base = rate, sample, Fraction(1, rate)
                out.mux(audio.encode(piece))
                sample += chunk
            for begin in cue_times[(cue_times >= i / FPS) & (cue_times < (i + 1) / FPS)] if cues else ():
                text = f"cue{begin:g}".encode()
                cue = av.Packet(text if path.suffix == ".mkv" else struct.pack(">H", len(text)) + text)
                cue.pts = cue.dts = round(begin * 1000)
                cue.duration, cue.time_base, cue.stream = CUE_SHOWN * 1000, Fraction(1, 1000), cues
                out.mux(cue)
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def kept_packets(path: Path) -> list[tuple]:
    """Every audio and subtitle packet of `path`: stream type, pts, dts, duration, time base and data."""
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type in ("audio", "subtitle")]
        return [(p.stream.type, p.pts, p.dts, p.duration, p.time_base, bytes(p)) for p in container.demux(*streams)
                if p.size]


def assert_plays_from_start(path: Path, start: float) -> None:
    """The output's first audio packet is the one playing at the source's `start` (kept whole). The
    output's first frame is the source's first at or after `start`: `start` is that much before it,
    less the audio's codec delay that Matroska stores and players drop (copied from as much before `start`)."""
    first_frame = decode_all(path)[1][0]
    _, pts, _, duration, time_base, _ = next(p for p in kept_packets(path) if p[0] == "audio")
    with av.open(str(path)) as container:
        audio = container.streams.audio[0].codec_context
        delay = audio.delay / audio.sample_rate
    start_in_output = first_frame - (math.ceil(round(start * FPS, 6)) / FPS - start) - delay
    assert pts * time_base <= start_in_output + 1e-3 < (pts + duration) * time_base


def cues_by_first_frame(path: Path) -> list[tuple[float, float, str]]:
    """The subtitle cues (start from the first frame, duration, cueN) of `path`, without MP4's empty ones."""
    first_frame = decode_all(path)[1][0]
    found = []
    for kind, pts, _, duration, time_base, data in kept_packets(path):
        text = data.decode(errors="replace")
        if kind == "subtitle" and "cue" in text:
            found.append((round(float(pts * time_base) - first_frame, 3), round(float(duration * time_base), 3),
                          text[text.index("cue"):].strip()))
    return found


def reading_the_whole_file(monkeypatch) -> None:
    """Make the writer read its source's audio and subtitles from the file's beginning to its end, as it
    did before it sought them and stopped after `end`."""
    monkeypatch.setattr(writer, "SEEK_MARGIN", 1e9)
    monkeypatch.setattr(writer, "_until_past", lambda packets, wanted, end: packets)


class DemuxCounter:
    """The `av` module as the writer sees it, recording the time of each packet its sources demux;
    with `refuse_seeks`, every seek in them fails as FFmpeg's do where a file cannot be sought."""

    def __init__(self, refuse_seeks: bool = False):
        self.times: list[float] = []
        self.refuse_seeks = refuse_seeks

    def __getattr__(self, name):
        return getattr(av, name)

    def open(self, *args, **kwargs):
        container = av.open(*args, **kwargs)
        return container if isinstance(container, av.container.OutputContainer) else _CountedInput(container, self)


class _CountedInput:
    def __init__(self, container: av.container.InputContainer, counter: DemuxCounter):
        self._container, self._counter = container, counter

    def __getattr__(self, name):
        return getattr(self._container, name)

    def seek(self, *args, **kwargs):
        if self._counter.refuse_seeks:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return self._container.seek(*args, **kwargs)

    def demux(self, *args, **kwargs):
        for packet in self._container.demux(*args, **kwargs):
            if packet.pts is not None:
                self._counter.times.append(float(packet.pts * packet.time_base))
            yield packet


# --- (1) the same packets as when the whole file is read ---------------------------------------------------

@pytest.mark.parametrize("source,codec,subtitles,output", [
    (".mp4", "aac", True, ".mp4"),  # mov_text copied
    (".mp4", "aac", True, ".mkv"),  # mov_text converted to ASS
    (".mp4", "libopus", False, ".mp4"),
    (".mkv", "aac", False, ".mkv"),
    (".mkv", "libopus", False, ".mkv"),
    (".mkv", "aac", True, ".mkv"),  # Matroska's cues: read from the beginning
    (".mov", "pcm_s16le", False, ".mp4"),  # re-encoded to AAC
])
def test_a_late_start_keeps_the_packets_the_whole_file_gives(tmp_path, monkeypatch, source, codec, subtitles,
                                                             output):
    src = interleaved_clip(tmp_path / f"in{source}", 12, codec, subtitles)
    sought, whole = tmp_path / f"sought{output}", tmp_path / f"whole{output}"
    transcode(src, sought, start=START, end=END)
    reading_the_whole_file(monkeypatch)
    transcode(src, whole, start=START, end=END)
    packets = kept_packets(sought)
    assert packets == kept_packets(whole)
    assert 1.9 < sum(float(p[3] * p[4]) for p in packets if p[0] == "audio") < 2.2  # END - START and a packet
    if codec != "pcm_s16le":  # re-encoded, it starts with the AAC encoder's priming
        assert_plays_from_start(sought, START)
    if subtitles:
        # The cue shown from 6.5 s (before the point sought, 7.03 s) from the start; the one from 10.5 s to the end.
        assert cues_by_first_frame(sought) == [(-0.07, 0.47, "cue6.5"), (1.4, 0.5, "cue10.5")]


# --- (2) far fewer packets read outside the span ------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_late_start_does_not_read_the_audio_before_it(tmp_path, monkeypatch, suffix):
    src = interleaved_clip(tmp_path / f"in{suffix}", 30, subtitles=suffix == ".mp4")
    counter = DemuxCounter()
    monkeypatch.setattr(writer, "av", counter)
    transcode(src, tmp_path / f"out{suffix}", start=25, end=26)
    before = sum(t < 25 for t in counter.times)
    packets_a_second = RATES["aac"] / 1024
    # From the keyframe at or before 25 - SEEK_MARGIN (one second apart) on: at most 3 s of packets
    # and a cue, where reading from the beginning takes 25 s of them.
    assert 0 < before <= 3 * packets_a_second + 2
    assert_plays_from_start(tmp_path / f"out{suffix}", 25)
    if suffix == ".mp4":  # the cue shown from 22.5 s, before the point sought, from the start
        assert cues_by_first_frame(tmp_path / "out.mp4") == [(0.0, 0.5, "cue22.5")]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_an_early_end_does_not_read_the_audio_after_it(tmp_path, monkeypatch, suffix):
    src = interleaved_clip(tmp_path / f"in{suffix}", 30, subtitles=suffix == ".mp4")
    counter = DemuxCounter()
    with monkeypatch.context() as patch:
        patch.setattr(writer, "av", counter)
        transcode(src, tmp_path / f"out{suffix}", end=5)
    after = sum(t >= 5 for t in counter.times)
    # One packet of each stream from 5 s on: the next cue comes at 6.5 s, the audio before it with it.
    assert 0 < after <= CUE_EVERY * RATES["aac"] / 1024 + 2
    reading_the_whole_file(monkeypatch)
    transcode(src, tmp_path / f"whole{suffix}", end=5)
    assert kept_packets(tmp_path / f"out{suffix}") == kept_packets(tmp_path / f"whole{suffix}")


# --- (3) where seeking cannot be trusted: from the beginning -------------------------------------------------

@pytest.mark.parametrize("audio_from,refuse_seeks", [
    (0.0, True),  # as in a file FFmpeg cannot seek in
    (9.5, False),  # the first audio after the point sought plays in the span: was any before it left out?
], ids=["seek-refused", "first-audio-sought-plays-in-the-span"])
def test_where_seeking_cannot_be_trusted_the_audio_is_read_from_the_beginning(tmp_path, monkeypatch, audio_from,
                                                                            refuse_seeks):
    src = interleaved_clip(tmp_path / "in.mkv", 12, audio_from=audio_from)
    counter = DemuxCounter(refuse_seeks)
    with monkeypatch.context() as patch:
        patch.setattr(writer, "av", counter)
        transcode(src, tmp_path / "out.mkv", start=START, end=END)
    with av.open(str(src)) as container:
        first_audio = next(float(p.pts * p.time_base) for p in container.demux(audio=0))
    assert min(counter.times) == first_audio  # read from the beginning
    reading_the_whole_file(monkeypatch)
    transcode(src, tmp_path / "whole.mkv", start=START, end=END)
    assert kept_packets(tmp_path / "out.mkv") == kept_packets(tmp_path / "whole.mkv")
    if audio_from < START:
        assert_plays_from_start(tmp_path / "out.mkv", START)


def test_audio_long_before_the_video_in_matroska(tmp_path, monkeypatch):
    # Video from 10 s, audio from 0 s: FFmpeg lands on the first keyframe for any time before it.
    src = interleaved_clip(tmp_path / "in.mkv", 14, video_from=10.0)
    transcode(src, tmp_path / "out.mkv", start=11.03, end=13)
    reading_the_whole_file(monkeypatch)
    transcode(src, tmp_path / "whole.mkv", start=11.03, end=13)
    assert kept_packets(tmp_path / "out.mkv") == kept_packets(tmp_path / "whole.mkv")
    assert_plays_from_start(tmp_path / "out.mkv", 11.03)
