"""QA pass 10a, reading and writing: --start in MPEG-TS, a backwards timestamp in MP4, clips whose
timestamps start late, spans without frames, mov_text subtitles into Matroska, audio across --start."""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import decode_all, make_clip, moving_square
from tests.test_run import FakeModel
from tests.test_video_robust import assert_same_pictures
from vidtrans.errors import UsageError
from vidtrans.pipeline import translate_video
from vidtrans.video import writer
from vidtrans.video.reader import VideoReader

IDENTITY = FakeModel(lambda frames: frames)
RATE = 16000  # of the test audio, AAC: 1024 samples (64 ms) a packet


def encoded_clip(path: Path, pts: list[int], time_base: Fraction = Fraction(1, 1000), dts: list[int] | None = None,
                 fmt: str | None = None, x264: dict[str, str] | None = None, audio_from: float | None = None,
                 muxer_options: dict[str, str] | None = None) -> list[np.ndarray]:
    """A clip of `moving_square` frames (frame i: source picture i) encoded by libx264 (no B-frames
    unless `x264` asks), its packets stored, in decoding order, with exactly `pts` (and `dts`;
    by default each packet's the smallest pts from it on, as decoding times may not go backwards)
    in `time_base`; with `audio_from` (seconds), a 440 Hz sine from then to the video's end.
    Returns the source pictures."""
    images = [moving_square(i, 64, 48) for i in range(len(pts))]
    with av.open(str(path), "w", format=fmt, options=muxer_options or {}) as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "10", **(x264 or {})})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.time_base = Fraction(1, 25)
        video.time_base = time_base
        audio = sine_stream(out) if audio_from is not None else None  # every stream before the first packet
        packets = []
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            packets += video.encode(frame)
        packets += video.encode(None)
        assert len(packets) == len(pts)
        for packet, p, d in zip(packets, pts, dts or [min(pts[i:]) for i in range(len(pts))]):
            packet.time_base, packet.pts, packet.dts = time_base, p, d
            out.mux(packet)
        if audio is not None:
            write_sine(out, audio, audio_from, float(max(pts) * time_base) + 0.04 - audio_from)
    return images


def sine_stream(out: av.container.OutputContainer) -> av.audio.stream.AudioStream:
    stream = out.add_stream("aac", rate=RATE)
    stream.layout = "mono"
    return stream


def write_sine(out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, start: float,
               seconds: float) -> None:
    """A 440 Hz sine from `start` seconds, `seconds` long: its sample n is `sine(n)`."""
    first = round(start * RATE)
    for n in range(0, round(seconds * RATE), 1024):
        samples = sine(np.arange(n, min(n + 1024, round(seconds * RATE))))
        frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, first + n, Fraction(1, RATE)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def sine(n: np.ndarray) -> np.ndarray:
    return (0.3 * np.sin(2 * math.pi * 440 * n / RATE)).astype(np.float32)


def decoded_audio(path: Path) -> tuple[float, np.ndarray]:
    """The time of the first decoded audio sample and all the samples."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    return float(frames[0].pts * frames[0].time_base), np.concatenate([f.to_ndarray()[0] for f in frames])


def first_video_time(path: Path) -> float:
    return decode_all(path)[1][0]


# --- 1. --start in MPEG-TS -------------------------------------------------------------------------

@pytest.mark.parametrize("gop", [25, 50, None], ids=["keyframe-every-second", "every-two-seconds", "one-keyframe"])
def test_start_in_mpeg_ts_gives_the_frames_of_the_span(tmp_path, gop):
    # FFmpeg seeks in MPEG-TS by searching timestamps: it lands on any packet, not on a keyframe.
    path = tmp_path / "in.ts"
    images = encoded_clip(path, [i * 3600 for i in range(60)], Fraction(1, 90000), fmt="mpegts",
                          x264={"g": str(gop)} if gop else None, audio_from=0.0)
    with VideoReader(path) as whole:
        everything = list(whole)
    with VideoReader(path, start=0.3, end=1.5) as reader:
        frames = list(reader)
        span = reader.span()
    first = next(i for i, frame in enumerate(everything) if frame.time >= 0.3)
    wanted = [frame for frame in everything if 0.3 <= frame.time < 1.5]
    assert len(frames) == len(wanted) == 30 and reader.corrupt_frames == 0
    assert [(f.pts, f.time) for f in frames] == [(f.pts, f.time) for f in wanted]
    assert (span.first, span.stop) == (first, first + 30)
    assert_same_pictures([f.image for f in frames], images[first:first + 30])


def test_run_from_a_start_in_mpeg_ts_has_no_repeated_frames(tmp_path):
    src = tmp_path / "in.ts"
    images = encoded_clip(src, [i * 3600 for i in range(60)], Fraction(1, 90000), fmt="mpegts", x264={"g": "25"},
                          audio_from=0.0)
    summary = translate_video(src, tmp_path / "out.mp4", IDENTITY, start=0.3, end=1.5)
    got, _ = decode_all(tmp_path / "out.mp4")
    assert summary.frames == len(got) == 30 and summary.corrupt_frames == 0
    with VideoReader(src) as reader:
        first = next(i for i, frame in enumerate(reader) if frame.time >= 0.3)
    assert_same_pictures(got, images[first:first + 30])


# --- 2. a backwards timestamp in MP4 -------------------------------------------------------------------

@pytest.mark.parametrize("pts,dts,time_base,options", [
    # One frame stamped four frames late, in an MP4 whose video timescale is the frame rate.
    ([0, 1, 2, 7, 3, 4, 5, 6, 8, 9, 10, 11], list(range(-1, 11)), Fraction(1, 25), {"video_track_timescale": "25"}),
    # Two adjacent timestamps swapped, millisecond timescale.
    ([0, 40, 120, 80, 160, 200, 240, 280], [0, 40, 79, 80, 160, 200, 240, 280], Fraction(1, 1000), {}),
], ids=["25-hz-timescale", "swapped"])
def test_a_backwards_timestamp_in_mp4_keeps_one_frame_per_packet(tmp_path, pts, dts, time_base, options):
    # The MP4 demuxer guesses a reorder delay from such timestamps (has_b_frames), though the
    # stream has no B-frames and its pictures come out in decoding order.
    images = encoded_clip(tmp_path / "in.mp4", pts, time_base, dts=dts, muxer_options=options)
    encoded_clip(tmp_path / "in.mkv", pts, time_base)
    for name in ("in.mp4", "in.mkv"):
        with VideoReader(tmp_path / name) as reader:
            frames = list(reader)
            total = reader.span().total
            tb = reader.info.time_base
        assert len(frames) == total == len(pts) and reader.corrupt_frames == 0, name
        assert_same_pictures([f.image for f in frames], images)  # each picture at its own place
        expected = []  # the file's pts, each one that does not increase one tick after the previous
        for p in pts:
            p = round(p * time_base / tb)
            expected.append(p if not expected or p > expected[-1] else expected[-1] + 1)
        assert [f.pts for f in frames] == expected, name


def test_lost_b_frames_are_repeats_at_their_own_times(tmp_path):
    # Real B-frames (the decoder puts pictures out in presentation order) with two packets the
    # decoder rejects: each is the previous picture at its own time, every other picture in place.
    src = tmp_path / "in.mkv"
    make_clip(src, frames=24, audio=False, options={"bf": "2", "b-pyramid": "none", "g": "12"})
    with av.open(str(src)) as container:
        packets = [(p.pts, p.dts, p.is_keyframe, bytes(p)) for p in container.demux(video=0) if p.size]
    # A B-frame is shown before a frame decoded earlier; break the two of one group.
    b_frames = [p for i, (p, *_) in enumerate(packets) if i and p < max(q for q, *_ in packets[:i])]
    assert len(b_frames) >= 4, "the encoder made too few B-frames"
    broken = b_frames[2:4]
    damaged = tmp_path / "damaged.mkv"
    with av.open(str(src)) as source, av.open(str(damaged), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for p, d, key, data in packets:
            packet = av.Packet(b"\x00\x00\x00\x08" + bytes(8) if p in broken else data)
            packet.pts, packet.dts, packet.time_base, packet.stream = p, d, source.streams.video[0].time_base, stream
            packet.is_keyframe = key
            out.mux(packet)
    with VideoReader(damaged) as reader:
        frames = list(reader)
    images = [moving_square(i, 64, 48) for i in range(24)]
    times = sorted(p for p, *_ in packets)
    assert [f.pts for f in frames] == times and reader.corrupt_frames >= 2
    lost = [times.index(p) for p in broken]
    kept = [i for i in range(24) if i not in lost]
    assert_same_pictures([frames[i].image for i in kept], [images[i] for i in kept])
    for i in lost:
        assert np.array_equal(frames[i].image, frames[i - 1].image)


# --- 3. clips whose timestamps start late --------------------------------------------------------------

@pytest.fixture
def broadcast(tmp_path):
    """MPEG-TS whose video and audio timestamps start 10000 s in, as a DVB recording's do."""
    path = tmp_path / "tv.ts"
    encoded_clip(path, [10000 * 90000 + i * 3600 for i in range(50)], Fraction(1, 90000), fmt="mpegts",
                 x264={"g": "25"}, audio_from=10000.0)
    return path


def test_a_broadcast_recording_counts_from_its_start(broadcast):
    with VideoReader(broadcast) as reader:
        frames = list(reader)
    times = [f.time for f in frames]
    assert len(frames) == 50 and 0 <= times[0] < 0.1
    assert np.diff(times) == pytest.approx([0.04] * 49)
    with VideoReader(broadcast, start=1.0) as reader:
        assert [f.time for f in reader] == [t for t in times if t >= 1.0 - 1e-9]
        assert reader.span().first == sum(t < 1.0 for t in times)
    # A frame's time, given back as a start (eval reads its held-out tail so), starts there.
    with VideoReader(broadcast, start=times[30]) as reader:
        assert [f.time for f in reader] == times[30:]


def test_a_broadcast_recording_becomes_a_clip_from_zero(tmp_path, broadcast):
    out = tmp_path / "out.mp4"
    translate_video(broadcast, out, IDENTITY)
    with VideoReader(broadcast) as reader:
        times = [f.time for f in reader]
    got, out_times = decode_all(out)
    assert out_times == pytest.approx(times, abs=1e-4)
    with av.open(str(out)) as container:
        assert container.duration / av.time_base < 2.5  # not 10002 s of mostly nothing
    audio_start, _ = decoded_audio(out)
    assert abs(audio_start) < 0.01

    trimmed = tmp_path / "trimmed.mp4"
    summary = translate_video(broadcast, trimmed, IDENTITY, start=1.0)
    assert summary.frames == sum(t >= 1.0 for t in times)
    assert first_video_time(trimmed) == pytest.approx(min(t for t in times if t >= 1.0) - 1.0, abs=1e-4)


# --- 4. a span without frames ---------------------------------------------------------------------------

def test_a_span_between_frames_is_a_usage_error_naming_where_they_are(tmp_path):
    path = tmp_path / "gap.mkv"
    encoded_clip(path, [40 * i for i in range(10)] + [10000 + 40 * i for i in range(10)], audio_from=0.0)
    with pytest.raises(UsageError) as error, VideoReader(path, start=3, end=8) as reader:
        list(reader)
    assert str(error.value) == (f"{path}: no video frames between 3s and 8s (the video has frames from 0.00 to "
                                "10.36 s, none from 0.36 to 10.00 s); choose another start/end")


def test_a_span_before_the_video_is_a_usage_error_on_the_command_line(tmp_path, cli, rgb_model_dir):
    path = tmp_path / "late.mkv"
    encoded_clip(path, [5000 + 40 * i for i in range(12)], audio_from=0.0)  # audio from 0 s, video from 5 s
    result = cli("run", path, "--model", rgb_model_dir, "-o", tmp_path / "o.mkv", "--start", "0", "--end", "1")
    assert one_line(result, 2).endswith("no video frames between 0s and 1s (the video has frames from 5.00 to "
                                        "5.44 s); choose another --start/--end")
    assert not (tmp_path / "o.mkv").exists()


# --- 5. mov_text subtitles into Matroska -----------------------------------------------------------------

CUES = [(100, 400, "hello"), (600, 1500, "a cue across the middle"), (1700, 1900, "last")]
ASS_HEADER = ("[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\nFormat: Name, "
              "Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, "
              "StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, "
              "MarginV, Encoding\nStyle: Default,Arial,18,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,"
              "10,10,0\n\n")


def clip_with_mov_text(path: Path) -> Path:
    """A 2 s MP4 (25 fps, audio) with French mov_text subtitles: the cues of CUES (ms)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        subtitles = out.add_stream("mov_text")
        subtitles.codec_context.subtitle_header = ASS_HEADER.encode()
        subtitles.metadata["language"] = "fra"
        audio = sine_stream(out)
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(moving_square(i, 64, 48), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        write_sine(out, audio, 0.0, 2.0)
        for begin, end, text in CUES:
            data = text.encode()
            packet = av.Packet(struct.pack(">H", len(data)) + data)  # a tx3g sample: length, then the text
            packet.pts = packet.dts = begin
            packet.duration, packet.time_base, packet.stream = end - begin, Fraction(1, 1000), subtitles
            out.mux(packet)
    return path


def ass_cues(path: Path) -> tuple[str, str, list[tuple[float, float, str]]]:
    """The subtitle codec, language and cues (start relative to the first video frame, duration, text)."""
    video_start = first_video_time(path)
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        cues = [(round(float(p.pts * p.time_base) - video_start, 3), round(float(p.duration * p.time_base), 3),
                 bytes(p).decode().split(",", 8)[8]) for p in container.demux(stream) if p.size]
        return stream.codec_context.name, stream.metadata.get("language"), cues


@pytest.mark.parametrize("start,expected", [
    (None, [(0.1, 0.3, "hello"), (0.6, 0.9, "a cue across the middle"), (1.7, 0.2, "last")]),
    (1.0, [(0.0, 0.5, "a cue across the middle"), (0.7, 0.2, "last")]),
])
def test_mov_text_subtitles_become_ass_in_matroska(tmp_path, start, expected):
    src = clip_with_mov_text(tmp_path / "in.mp4")
    out = tmp_path / "out.mkv"
    translate_video(src, out, IDENTITY, start=start)
    codec, language, cues = ass_cues(out)
    assert codec in ("ass", "ssa") and language == "fra"
    assert cues == expected


def test_mov_text_into_webm_becomes_webvtt(tmp_path, caplog):
    from tests.test_subtitles import decoded_cues

    src = clip_with_mov_text(tmp_path / "in.mp4")
    out = tmp_path / "out.webm"
    translate_video(src, out, IDENTITY, codec="libvpx-vp9", crf=40, preset="ultrafast")
    assert not [r.getMessage() for r in caplog.records if "subtitle" in r.getMessage()]
    assert decoded_cues(out) == ("webvtt", [(start / 1000, (end - start) / 1000, text.encode())
                                            for start, end, text in CUES])


# --- 6. audio across --start ------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_audio_playing_at_the_start_is_kept(tmp_path, suffix):
    # AAC packets of 64 ms, from -64 ms (the encoder's priming): 0.27 s falls inside the one from
    # 0.256 s. It is kept, so the output has sound from its first frame on, in sync with the video
    # (MP4 hides its head with an edit list; Matroska starts every stream that much later).
    clip = make_clip(tmp_path / "in.mp4", frames=25, audio=True)  # its sine starts at 0 s
    out = tmp_path / f"out{suffix}"
    translate_video(clip.path, out, IDENTITY, start=0.27)
    video_start = first_video_time(out)
    audio_start, samples = decoded_audio(out)
    assert audio_start <= min(video_start, 0.001)
    # Output time t is source time t + shift, for audio as for the first frame kept (at 0.28 s).
    shift = 0.28 - video_start
    settled = 1024  # the first packet decodes without its predecessor: AAC fades it in
    source_sample = round((audio_start + shift) * RATE) + settled
    np.testing.assert_allclose(samples[settled:settled + 800], sine(np.arange(800) + source_sample), atol=0.02)


def test_subtitles_matroska_cannot_take_point_at_the_input_kind(tmp_path, caplog, monkeypatch):
    # Where the conversion is not possible (a PyAV too old to encode subtitles), the advice is a
    # container that holds mov_text, not the Matroska file just refused.
    monkeypatch.setattr(writer._Muxer, "_text_stream_for", lambda self, stream, holdable: None)
    src = clip_with_mov_text(tmp_path / "in.mp4")
    translate_video(src, tmp_path / "out.mkv", IDENTITY)
    warnings = [r.getMessage() for r in caplog.records if "subtitle" in r.getMessage()]
    assert warnings == [f"{src}: its mov_text subtitle track cannot go into a .mkv file and is left out; a file like "
                        "in.mp4 keeps it"]


def test_tracks_left_out_are_told_once_per_codec_by_its_name(tmp_path, caplog):
    one = clip_with_mov_text(tmp_path / "one.mp4")
    src = tmp_path / "two.mp4"
    with av.open(str(one)) as inp, av.open(str(src), "w") as out:
        copies = {s.index: [out.add_stream_from_template(s)] for s in inp.streams}
        second = out.add_stream_from_template(inp.streams.subtitles[0])  # a second subtitle track
        copies[inp.streams.subtitles[0].index].append(second)
        for packet in inp.demux():
            if packet.dts is None:
                continue
            for stream in copies[packet.stream.index]:
                packet.stream = stream
                out.mux(packet)
    translate_video(src, tmp_path / "out.avi", IDENTITY)
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert warnings == [f"{src}: its 2 mov_text subtitle tracks cannot go into a .avi file and are left out; "
                        "a Matroska (.mkv) file keeps them"]
