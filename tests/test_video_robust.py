"""Video I/O on awkward but valid input, and bad settings: colours of fine detail, duplicate,
backwards and negative timestamps, encoder settings and output names, reader limits and metadata."""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import decode_all, make_clip, moving_square, quadrants
from vidtrans.atomic import check_destination
from vidtrans.errors import VidtransError
from vidtrans.options import EncodeOptions
from vidtrans.video import SourceMedia, VideoReader, VideoWriter, probe
from vidtrans.video.writer import encoder_options


def transcode(src: Path, dst: Path, **encode) -> list[int]:
    """VideoReader -> VideoWriter, as the pipeline does; returns the pts the reader gave."""
    given = []
    with VideoReader(src) as reader:
        info = reader.info
        with VideoWriter(dst, info.width, info.height, time_base=info.time_base, fps=info.fps,
                         encode=EncodeOptions(**encode), source=SourceMedia(src)) as writer:
            for frame in reader:
                given.append(frame.pts)
                writer.write(frame.image, frame.pts)
    return given


def mux_with_pts(path: Path, pts: list[int], time_base=Fraction(1, 1000), codec="libx264",
                 container_options: dict[str, str] | None = None) -> list[np.ndarray]:
    """A Matroska clip whose packets, in decode order, carry exactly `pts` (which may repeat, go
    backwards or be negative): frames are encoded in order, then stored with those timestamps."""
    images = [moving_square(i, 64, 48) for i in range(len(pts))]
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=25, options={"preset": "ultrafast", "crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = time_base
        packets = []
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, time_base
            packets += stream.encode(frame)
        packets += stream.encode(None)
        assert len(packets) == len(pts)  # ultrafast: no B-frames, one packet per frame in order
        for i, (packet, p) in enumerate(zip(packets, pts)):
            packet.pts, packet.dts = p, min(pts[i:])  # decode times may not go backwards
            out.mux(packet)
    return images


def assert_same_pictures(got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert np.abs(a.astype(int) - b).mean() < 6, f"frame {i} is not source frame {i}"


# --- 1. colours of fine detail -------------------------------------------------------------------

STRIPES = ((180, 60, 60), (60, 60, 180))       # 1-px red/blue columns: purple from afar
CHECKER = ((60, 180, 60), (180, 60, 180))      # 1-px green/magenta checkerboard: grey


def fine_detail(index: int, width: int, height: int) -> np.ndarray:
    """Top third 1-px colour stripes, middle third a 1-px colour checkerboard, bottom third random
    coloured noise: detail finer than 4:2:0 chroma, where sampling one pixel of four aliases."""
    img = np.empty((height, width, 3), np.uint8)
    third = height // 3
    img[:third] = STRIPES[0]
    img[:third, 1::2] = STRIPES[1]
    yy, xx = np.mgrid[third:2 * third, 0:width]
    img[third:2 * third] = np.where(((yy + xx) % 2 == 0)[..., None], CHECKER[0], CHECKER[1])
    img[2 * third:] = np.random.default_rng(index).integers(30, 226, (height - 2 * third, width, 3))
    return img


def ffmpeg_encoded(path: Path, images: list[np.ndarray], pix_fmt: str) -> list[np.ndarray]:
    """The reference: the same frames given to libx264 as RGB, converted by FFmpeg's libswscale."""
    height, width = images[0].shape[:2]
    full = pix_fmt.startswith("yuvj")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "18", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, pix_fmt
        stream.codec_context.colorspace, stream.codec_context.color_range = 6, 2 if full else 1
        for i, image in enumerate(images):
            padded = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(padded, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace="itu601", dst_color_range=2 if full else 1)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return [image[:height, :width] for image in decode_all(path)[0]]


def psnr(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    mse = np.mean([(a.astype(float) - b) ** 2 for a, b in zip(got, expected)])
    return 10 * math.log10(255 ** 2 / mse)


@pytest.mark.parametrize("size,pix_fmt", [
    ((96, 72), "yuv420p"),
    ((97, 69), "yuv420p"),   # odd: padded to 98x70, whose chroma planes are not whole rows of 98
    ((96, 72), "yuvj420p"),
    ((96, 72), "yuv444p"),
])
def test_fine_colour_detail_keeps_its_colour(tmp_path, size, pix_fmt):
    width, height = size
    images = [fine_detail(i, width, height) for i in range(3)]
    with VideoWriter(tmp_path / "out.mp4", width, height, time_base=Fraction(1, 25), fps=25,
                     encode=EncodeOptions(pix_fmt=pix_fmt)) as w:
        for i, image in enumerate(images):
            w.write(image, i)
    ours = [image[:height, :width] for image in decode_all(tmp_path / "out.mp4")[0]]
    reference = ffmpeg_encoded(tmp_path / "ffmpeg.mp4", images, pix_fmt)
    assert len(ours) == len(images)
    assert psnr(ours, images) >= psnr(reference, images) - 1.0
    third = height // 3
    for rows in (slice(0, third), slice(third, 2 * third)):  # red/blue stripes come out purple, not red
        got = np.mean([image[rows].reshape(-1, 3).mean(0) for image in ours], axis=0)
        source = images[0][rows].reshape(-1, 3).mean(0)
        assert np.abs(got - source).max() <= 3, (rows, got, source)


# --- 2. duplicate and backwards timestamps -------------------------------------------------------

@pytest.mark.parametrize("pts,expected", [
    ([0, 40, 40, 80, 120, 160], [0, 40, 41, 80, 120, 160]),      # duplicate (screen recorders)
    ([0, 80, 40, 120, 160, 200], [0, 80, 81, 120, 160, 200]),    # one step back (edited files)
    ([0, 40, 80, 60, 100, 140], [0, 40, 80, 81, 100, 140]),
], ids=["duplicate", "backwards", "backwards-later"])
def test_non_increasing_pts_keep_every_frame(tmp_path, pts, expected):
    images = mux_with_pts(tmp_path / "in.mkv", pts)
    given = transcode(tmp_path / "in.mkv", tmp_path / "out.mp4")
    assert given == expected  # one frame per input frame, in order, each late pts just after the last
    got, times = decode_all(tmp_path / "out.mp4")
    assert_same_pictures(got, images)
    assert times == pytest.approx([p / 1000 for p in expected])


def test_writer_moves_a_non_increasing_pts_just_after_the_last(tmp_path):
    with VideoWriter(tmp_path / "out.mkv", 64, 48, time_base=Fraction(1, 1000), fps=25) as writer:
        for i, pts in enumerate([0, 40, 40, 20, 100]):
            writer.write(moving_square(i, 64, 48), pts)
    got, times = decode_all(tmp_path / "out.mkv")
    assert_same_pictures(got, [moving_square(i, 64, 48) for i in range(5)])
    assert times == pytest.approx([0, 0.04, 0.041, 0.042, 0.1])


# --- 3. negative timestamps ----------------------------------------------------------------------

def test_frames_before_time_zero_are_all_shown(tmp_path):
    # An edited Matroska file with three frames before 0 (FFmpeg reads them without a pts).
    pts = [(i - 3) * 40 for i in range(12)]
    images = mux_with_pts(tmp_path / "in.mkv", pts, container_options={"avoid_negative_ts": "disabled"})
    transcode(tmp_path / "in.mkv", tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert not any(p.is_discard for p in c.demux(video=0) if p.size)
    got, times = decode_all(tmp_path / "out.mp4")
    assert_same_pictures(got, images)  # all 12, in order, none hidden by an edit list
    assert times == pytest.approx([i * 0.04 for i in range(12)])


def test_negative_pts_shift_video_and_audio_together(tmp_path):
    source = make_clip(tmp_path / "in.mp4", frames=12, audio=True)
    with VideoWriter(tmp_path / "out.mp4", 64, 48, time_base=Fraction(1, 25), fps=25,
                     source=SourceMedia(source.path)) as w:
        for i in range(12):
            w.write(moving_square(i, 64, 48), i - 3)  # the first three frames before 0
    got, times = decode_all(tmp_path / "out.mp4")
    assert len(got) == 12 and times == pytest.approx([i * 0.04 for i in range(12)])

    def first_audio_time(path: Path) -> float:
        with av.open(str(path)) as c:
            packet = next(p for p in c.demux(audio=0) if p.size)
            return float(packet.pts * packet.time_base)
    # Audio keeps its place next to the frame that was at 0, now 3 frames into the output.
    assert first_audio_time(tmp_path / "out.mp4") == pytest.approx(first_audio_time(source.path) + 0.12, abs=1e-3)


# --- 4. encoder settings -------------------------------------------------------------------------

@pytest.mark.parametrize("settings,names", [
    (dict(codec="aac"), "codec"),
    (dict(codec="nosuchcodec"), "codec"),
    (dict(pix_fmt="nosuchformat"), "pix_fmt"),
    (dict(pix_fmt="rgb48le"), "pix_fmt"),            # a real format x264 cannot encode
    (dict(crf=999), "crf"),
    (dict(crf=-1), "crf"),
    (dict(codec="libvpx-vp9", crf=64), "crf"),       # VP9 takes 0-63
    (dict(preset="fastest"), "preset"),
])
def test_bad_encoder_settings_fail_at_once_and_leave_nothing(tmp_path, settings, names):
    with pytest.raises(VidtransError) as err:
        VideoWriter(tmp_path / "out.mp4", 64, 48, time_base=Fraction(1, 25), fps=25, encode=EncodeOptions(**settings))
    message = str(err.value)
    assert "\n" not in message and names in message
    value = str(next(iter(settings.values())))
    assert value in message
    assert list(tmp_path.iterdir()) == []  # no output, temporary or lock file


def test_crf_range_limits_are_accepted(tmp_path):
    for codec, crf in [("libx264", 0), ("libx264", 51), ("libvpx-vp9", 63)]:
        with VideoWriter(tmp_path / f"{codec}-{crf}.mkv", 64, 48, time_base=Fraction(1, 25), fps=25,
                         encode=EncodeOptions(codec=codec, crf=crf)) as writer:
            writer.write(moving_square(0, 64, 48), 0)
        assert len(decode_all(tmp_path / f"{codec}-{crf}.mkv")[0]) == 1


@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc", "av1_nvenc"])
def test_nvenc_gets_constant_quality_options(codec):
    options = encoder_options(codec, 18, "medium")
    assert options == {"rc": "vbr", "cq": "18", "b": "0", "preset": "p4"}
    assert encoder_options(codec, 0, "veryslow")["cq"] == "1"  # cq 0 would mean "encoder's default"
    assert encoder_options(codec, 23, "p2")["preset"] == "p2"
    with pytest.raises(VidtransError, match="crf"):
        encoder_options(codec, 52, "medium")
    if codec in av.codecs_available:  # every option is one this FFmpeg's NVENC encoder knows
        known = {o.name for o in av.CodecContext.create(codec, "w").supported_options.private}
        assert set(options) - {"b"} <= known


# --- 5. output names -----------------------------------------------------------------------------

def test_too_long_output_name_is_one_line(tmp_path):
    dst = tmp_path / ("a" * 300 + ".mp4")
    for attempt in (lambda: check_destination(dst, None, False),
                    lambda: VideoWriter(dst, 64, 48, time_base=Fraction(1, 25), fps=25)):
        with pytest.raises(VidtransError, match="file name too long; choose a shorter output name"):
            attempt()
    assert list(tmp_path.iterdir()) == []


# --- 6. reader limits and metadata ---------------------------------------------------------------

@pytest.mark.parametrize("start,end,named", [
    (math.nan, None, "start"), (math.inf, None, "start"), (-1.0, None, "start"),
    (None, math.nan, "end"), (None, 0.0, "end"), (0.4, 0.4, "end"), (0.5, 0.2, "end"),
])
def test_bad_start_end_is_one_line_error(tmp_path, start, end, named):
    clip = make_clip(tmp_path / "in.mp4", frames=20, audio=False)
    with pytest.raises(VidtransError, match=named) as err:
        list(VideoReader(clip.path, start=start, end=end))
    assert "\n" not in str(err.value)


def test_degenerate_display_matrix_is_not_a_rotation(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), frame_fn=quadrants, audio=False)
    data = bytearray(clip.path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.index(identity, data.index(b"tkhd"))  # the video track's display matrix
    data[at:at + 36] = struct.pack(">9i", 0, 0, 0, 0, 0, 0, 0, 0, 0x40000000)
    clip.path.write_bytes(bytes(data))
    info = probe(clip.path)
    assert info.rotation == 0 and (info.width, info.height) == (64, 48)
    with VideoReader(clip.path) as reader:
        image = next(iter(reader)).image
    assert np.abs(image.astype(int) - clip.images[0]).mean() < 6


def test_frame_count_of_a_late_starting_mkv(tmp_path):
    # 12 frames whose timestamps start an hour in: the count must not be an hour's worth. Times
    # count from the clip's start, an hour in.
    clip = make_clip(tmp_path / "late.mkv", frames=12, pts=[3_600_000 + 40 * i for i in range(12)],
                     time_base=Fraction(1, 1000), audio=False)
    info = probe(clip.path)
    assert info.frame_count == 12 and info.start_time == 0 and info.clip_start == 3600
    assert VideoReader(clip.path).frame_count == 12
    assert VideoReader(clip.path, start=0.2).frame_count == 7
    with VideoReader(clip.path, start=0.2) as reader:
        assert len(list(reader)) == 7


def test_frame_count_of_audio_with_cover_art(tmp_path):
    # An MP3 whose only picture is its cover (attached picture stream, which claims 90000 fps).
    path = tmp_path / "song.mp3"
    with av.open(str(path), "w") as out:
        audio = out.add_stream("libmp3lame", rate=16000)
        audio.layout = "mono"
        cover = out.add_stream("mjpeg", rate=1)
        cover.width = cover.height = 16
        cover.pix_fmt = "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 200, np.uint8), format="rgb24")
        picture = picture.reformat(format="yuvj420p")
        picture.pts = 0
        for packet in cover.encode(picture) + cover.encode(None):
            out.mux(packet)
        for start in range(0, 3 * 16000, 1152):
            samples = np.zeros((1, min(1152, 3 * 16000 - start)), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    assert probe(path).frame_count == 1
    with VideoReader(path) as reader:
        assert reader.frame_count == 1
        assert len(list(reader)) == 1
