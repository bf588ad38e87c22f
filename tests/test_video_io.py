"""Video I/O: probe, VideoReader, VideoWriter on tiny synthetic clips (see tests/media.py)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.media import audio_durations, corrupt_middle, decode_all, make_clip, quadrants, solid
from vidtrans.errors import VidtransError
from vidtrans.options import EncodeOptions
from vidtrans.video import Frame, SourceMedia, VideoInfo, VideoReader, VideoWriter, probe

QUADRANT_COLOURS = {"tl": (220, 30, 30), "tr": (30, 200, 30), "bl": (30, 30, 220), "br": (235, 235, 235)}


def corner_colours(img: np.ndarray) -> dict[str, np.ndarray]:
    """Mean colour of a small patch in the middle of each quadrant (away from chroma-blurred edges)."""
    h, w = img.shape[:2]
    ys, xs = (h // 4, 3 * h // 4), (w // 4, 3 * w // 4)
    patch = lambda y, x: img[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).mean(0)  # noqa: E731
    return {"tl": patch(ys[0], xs[0]), "tr": patch(ys[0], xs[1]), "bl": patch(ys[1], xs[0]), "br": patch(ys[1], xs[1])}


def assert_quadrants(img: np.ndarray, tol: float = 8) -> None:
    for name, got in corner_colours(img).items():
        assert np.abs(got - QUADRANT_COLOURS[name]).max() <= tol, (name, got, QUADRANT_COLOURS[name])


def transcode(src: Path, dst: Path, start=None, end=None, audio=True, overwrite=False, **encode) -> VideoReader:
    with VideoReader(src, start=start, end=end) as reader:
        info = reader.info
        with VideoWriter(dst, info.width, info.height, time_base=info.time_base, fps=info.fps,
                         encode=EncodeOptions(**encode), source=SourceMedia(src if audio else None, start, end),
                         overwrite=overwrite) as writer:
            for frame in reader:
                writer.write(frame.image, frame.pts)
    return reader


# --- probe and reading -----------------------------------------------------------------------------

def test_probe_describes_clip(tmp_path):
    make_clip(tmp_path / "in.mp4", frames=20, size=(64, 48), fps=25)
    info = probe(tmp_path / "in.mp4")
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(25)
    assert info.frame_count == 20
    assert info.duration == pytest.approx(0.8, abs=0.05)
    assert info.has_audio and info.codec == "h264" and info.pix_fmt == "yuv420p" and info.rotation == 0
    assert isinstance(info.time_base, Fraction)
    assert not probe(make_clip(tmp_path / "silent.mp4", audio=False).path).has_audio


def test_reader_yields_rgb_frames_with_original_pts(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=12, audio=False)
    with VideoReader(clip.path) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(12))
    assert [f.time for f in frames] == pytest.approx(clip.times)
    for f, original in zip(frames, clip.images):
        assert isinstance(f, Frame) and f.time_base == reader.info.time_base
        assert f.image.dtype == np.uint8 and f.image.shape == (48, 64, 3) and f.image.flags.c_contiguous
        assert np.abs(f.image.astype(int) - original).mean() < 4
    assert reader.corrupt_frames == 0


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    clip = make_clip(tmp_path / "phone.mp4", frames=3, size=(64, 48), rotation=rotation, frame_fn=quadrants, audio=False)
    info = probe(clip.path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((48, 64) if rotation in (90, 270) else (64, 48))
    expected = np.rot90(clip.images[0], k=-rotation // 90)  # clockwise
    with VideoReader(clip.path) as reader:
        image = next(iter(reader)).image
    assert image.shape == expected.shape and image.flags.c_contiguous
    assert np.abs(image.astype(int) - expected).mean() < 6


@pytest.mark.parametrize("rotation", [0, 90])
def test_max_side_scales_pictures_upright_and_keeps_info(tmp_path, rotation):
    clip = make_clip(tmp_path / "phone.mp4", frames=3, size=(128, 96), rotation=rotation, frame_fn=quadrants,
                     audio=False)
    with VideoReader(clip.path, max_side=64) as reader:
        frames = list(reader)
    with VideoReader(clip.path) as unscaled:
        full = list(unscaled)
    assert (reader.info.height, reader.info.width) == full[0].image.shape[:2]  # the video's own size
    assert [f.pts for f in frames] == [f.pts for f in full] and len(full) == 3
    image = frames[0].image
    assert image.shape == ((48, 64, 3) if rotation == 0 else (64, 48, 3)) and image.flags.c_contiguous
    for name, colour in corner_colours(full[0].image).items():  # same picture, same way up
        assert np.abs(corner_colours(image)[name] - colour).max() <= 8, name
    with VideoReader(clip.path, max_side=500) as reader:  # never scaled up
        assert next(iter(reader)).image.shape == full[0].image.shape


@pytest.mark.parametrize("codec,pix_fmt,size", [
    ("libx264", "yuv420p", (64, 48)),
    ("libx264", "yuv420p10le", (64, 48)),
    ("libx264", "yuvj420p", (64, 48)),     # full range
    ("libx264", "yuv444p", (63, 47)),
    ("mpeg4", "yuv420p", (63, 47)),         # odd size, 4:2:0
])
def test_decoded_colours_are_right(tmp_path, codec, pix_fmt, size):
    clip = make_clip(tmp_path / "c.mp4", frames=2, size=size, codec=codec, pix_fmt=pix_fmt, frame_fn=quadrants, audio=False)
    with VideoReader(clip.path) as reader:
        image = next(iter(reader)).image
    assert image.shape == (size[1], size[0], 3) and image.flags.c_contiguous
    assert_quadrants(image)


def test_missing_pts_are_derived_from_frame_rate(tmp_path):
    # A raw H.264 stream has no timestamps at all.
    make_clip(tmp_path / "raw.h264", frames=6, fps=25, audio=False)
    with VideoReader(tmp_path / "raw.h264") as reader:
        times = [f.time for f in reader]
    assert times == pytest.approx([0.0, 0.04, 0.08, 0.12, 0.16, 0.2])


def test_reader_trims_to_start_end(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=20, fps=25, audio=False)
    with VideoReader(clip.path, start=0.2, end=0.6) as reader:
        times = [f.time for f in reader]
    assert times == pytest.approx([t for t in clip.times if 0.2 <= t < 0.6])


def test_reader_is_lazy(tmp_path):
    make_clip(tmp_path / "in.mp4", frames=20, audio=False)
    with VideoReader(tmp_path / "in.mp4") as reader:
        it = iter(reader)
        assert next(it).index == 0
        assert iter(it) is it


def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    real = make_clip(tmp_path / "real.mp4", frames=30, size=(96, 64)).path
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(real.read_bytes()[:2048])
    audio_only = make_clip(tmp_path / "song.m4a", video=False).path
    return {"missing": tmp_path / "nope.mp4", "text": text, "truncated": truncated, "audio_only": audio_only}


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "audio_only"])
def test_bad_input_is_one_line_vidtrans_error(tmp_path, kind):
    path = bad_inputs(tmp_path)[kind]
    for open_it in (probe, lambda p: list(VideoReader(p))):
        with pytest.raises(VidtransError) as err:
            open_it(path)
        message = str(err.value)
        assert "\n" not in message and path.name in message
    if kind == "audio_only":
        assert "no video stream" in message


def test_corrupt_middle_keeps_frame_count_and_timing(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=30, size=(96, 64), audio=False)
    corrupt_middle(clip.path, (0.4, 0.6))
    with VideoReader(clip.path) as reader:
        frames = list(reader)
    assert reader.corrupt_frames > 0
    assert len(frames) == 30
    assert [f.time for f in frames] == pytest.approx(clip.times)
    assert np.abs(frames[0].image.astype(int) - clip.images[0]).mean() < 4  # good frames are untouched


# --- writing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("vfr", [False, True], ids=["cfr", "vfr"])
def test_roundtrip_keeps_every_timestamp(tmp_path, vfr):
    clip = make_clip(tmp_path / "in.mp4", frames=20, vfr=vfr)
    transcode(clip.path, tmp_path / "out.mp4")
    images, times = decode_all(tmp_path / "out.mp4")
    assert len(times) == len(clip.pts)
    assert times == pytest.approx(clip.times, abs=1e-9)
    with av.open(str(clip.path)) as a, av.open(str(tmp_path / "out.mp4")) as b:
        assert b.streams.video[0].time_base == a.streams.video[0].time_base
        assert b.streams.video[0].codec_context.name == "h264"
    assert np.abs(images[5].astype(int) - clip.images[5]).mean() < 5


@pytest.mark.parametrize("codec,pix_fmt", [("libx264", "yuv420p"), ("libx264", "yuv444p"), ("mpeg4", "yuv420p")])
def test_writer_colours_round_trip(tmp_path, codec, pix_fmt):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), frame_fn=quadrants, audio=False)
    transcode(clip.path, tmp_path / "out.mp4", codec=codec, pix_fmt=pix_fmt)
    with av.open(str(tmp_path / "out.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == {"libx264": "h264"}.get(codec, codec)
        frame = next(c.decode(stream))
        assert frame.format.name == pix_fmt
        assert frame.colorspace in (5, 6)          # tagged BT.601 (bt470bg/smpte170m), as converted
        assert frame.color_range == 1              # limited ("tv") range
        assert_quadrants(frame.to_ndarray(format="rgb24"))


def test_writer_solid_colour_accuracy(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (250, 200, 20)]
    dst = tmp_path / "out.mp4"
    with VideoWriter(dst, 32, 32, time_base=Fraction(1, 25), fps=25) as writer:
        for i, colour in enumerate(colours):
            writer.write(solid(colour)(i, 32, 32), i)
    images, _ = decode_all(dst)
    for image, colour in zip(images, colours):
        assert np.abs(image.reshape(-1, 3).mean(0) - colour).max() <= 5, (image[0, 0], colour)


@pytest.mark.parametrize("codec,pix_fmt,out_size", [
    ("libx264", "yuv420p", (64, 48)),   # H.264 4:2:0 cannot store odd sizes: padded by one pixel
    ("libx264", "yuv444p", (63, 47)),
    ("mpeg4", "yuv420p", (63, 47)),
])
def test_odd_sizes(tmp_path, codec, pix_fmt, out_size):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(63, 47), codec="mpeg4", frame_fn=quadrants, audio=False)
    transcode(clip.path, tmp_path / "out.mp4", codec=codec, pix_fmt=pix_fmt)
    images, _ = decode_all(tmp_path / "out.mp4")
    image = images[0]
    assert image.shape == (out_size[1], out_size[0], 3)
    assert_quadrants(image[:47, :63])
    if out_size != (63, 47):  # the padding repeats the edge, so no dark border appears
        assert np.abs(image[:, -1].astype(int) - image[:, -2]).mean() < 4
        assert np.abs(image[-1].astype(int) - image[-2]).mean() < 4


def test_audio_is_copied_not_reencoded(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=20)
    transcode(clip.path, tmp_path / "out.mp4")

    def payloads(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    assert payloads(tmp_path / "out.mp4") == payloads(clip.path)
    assert audio_durations(tmp_path / "out.mp4") == pytest.approx(audio_durations(clip.path), abs=0.1)


def test_all_audio_tracks_are_kept(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=20, audio_streams=2)
    transcode(clip.path, tmp_path / "out.mp4")
    assert len(audio_durations(tmp_path / "out.mp4")) == 2
    assert audio_durations(tmp_path / "out.mp4") == pytest.approx(audio_durations(clip.path), abs=0.1)


def test_no_audio_in_gives_no_audio_out(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=10, audio=False)
    transcode(clip.path, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1


@pytest.mark.parametrize("dst_name,expected_codec", [("out.mp4", "aac"), ("out.mkv", "pcm_s16le")])
def test_pcm_audio_reencoded_only_where_needed(tmp_path, dst_name, expected_codec):
    clip = make_clip(tmp_path / "in.mkv", frames=20, audio_codec="pcm_s16le")
    transcode(clip.path, tmp_path / dst_name)
    with av.open(str(tmp_path / dst_name)) as c:
        assert c.streams.audio[0].codec_context.name == expected_codec
    assert audio_durations(tmp_path / dst_name)[0] == pytest.approx(audio_durations(clip.path)[0], abs=0.1)


def test_trim_shifts_video_and_audio_to_zero(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=25, fps=25)
    transcode(clip.path, tmp_path / "out.mp4", start=0.2, end=0.6)
    _, times = decode_all(tmp_path / "out.mp4")
    assert times == pytest.approx([t - 0.2 for t in clip.times if 0.2 <= t < 0.6], abs=1e-6)
    assert audio_durations(tmp_path / "out.mp4")[0] == pytest.approx(0.4, abs=0.1)
    with av.open(str(tmp_path / "out.mp4")) as c:
        first_audio = next(p for p in c.demux(c.streams.audio[0]) if p.pts is not None)
        assert abs(float(first_audio.pts * first_audio.time_base)) < 0.1


def test_audio_is_read_lazily_as_video_is_written(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=25, fps=25)
    with VideoReader(clip.path) as reader, VideoWriter(
            tmp_path / "out.mp4", 64, 48, time_base=reader.info.time_base, fps=25, source=SourceMedia(clip.path)) as writer:
        for frame in reader:
            writer.write(frame.image, frame.pts)
            assert writer.audio_time <= frame.time + 0.1  # never reads far ahead of the video
            if frame.index == 12:
                assert writer.audio_time >= frame.time - 0.2  # and keeps up with it


def test_output_appears_only_on_close(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=5, audio=False)
    dst = tmp_path / "out.mp4"
    writer = VideoWriter(dst, 64, 48, time_base=Fraction(1, 25), fps=25)
    writer.write(clip.images[0], 0)
    partial = sorted(p.name for p in tmp_path.iterdir() if p.name != "in.mp4")
    # the partial file, and the lock that keeps a second writer off the same output
    assert not dst.exists() and len(partial) == 2 and partial[0] == ".out.mp4.vidtrans-lock"
    assert partial[1].startswith(".out.partial-") and partial[1].endswith(".mp4")
    writer.close()
    assert dst.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_existing_output_needs_overwrite(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=5, audio=False)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"old")
    with pytest.raises(VidtransError, match="already exists"):
        VideoWriter(dst, 64, 48, time_base=Fraction(1, 25), fps=25)
    assert dst.read_bytes() == b"old"
    transcode(clip.path, dst, overwrite=True)
    assert len(decode_all(dst)[0]) == 5


def test_output_equal_to_input_is_refused(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=5)
    (tmp_path / "sub").mkdir()
    same = tmp_path / "sub" / ".." / "in.mp4"
    with pytest.raises(VidtransError, match="input"):
        VideoWriter(same, 64, 48, time_base=Fraction(1, 25), fps=25, source=SourceMedia(clip.path), overwrite=True)
    if hasattr(os, "link"):
        os.link(clip.path, tmp_path / "hardlink.mp4")
        with pytest.raises(VidtransError, match="input"):
            VideoWriter(tmp_path / "hardlink.mp4", 64, 48, time_base=Fraction(1, 25), fps=25,
                        source=SourceMedia(clip.path), overwrite=True)


def test_unwritable_output_folder(tmp_path):
    for dst in (tmp_path / "missing" / "out.mp4", tmp_path / "file.txt" / "out.mp4"):
        (tmp_path / "file.txt").write_text("x")
        with pytest.raises(VidtransError) as err:
            VideoWriter(dst, 64, 48, time_base=Fraction(1, 25), fps=25)
        assert "\n" not in str(err.value)
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(VidtransError, match="writable"):
            VideoWriter(locked / "out.mp4", 64, 48, time_base=Fraction(1, 25), fps=25)


def test_abort_and_exceptions_leave_nothing(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=5)
    dst = tmp_path / "out.mp4"
    writer = VideoWriter(dst, 64, 48, time_base=Fraction(1, 25), fps=25, source=SourceMedia(clip.path))
    writer.write(clip.images[0], 0)
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]

    dst.write_bytes(b"keep me")
    with pytest.raises(RuntimeError):
        with VideoWriter(dst, 64, 48, time_base=Fraction(1, 25), fps=25, source=SourceMedia(clip.path), overwrite=True) as w:
            w.write(clip.images[0], 0)
            raise RuntimeError("stage failed")
    assert dst.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_closing_without_frames_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(VidtransError, match="no video frames"):
        VideoWriter(tmp_path / "out.mp4", 64, 48, time_base=Fraction(1, 25), fps=25).close()
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_frames(tmp_path):
    writer = VideoWriter(tmp_path / "out.mp4", 64, 48, time_base=Fraction(1, 25), fps=25)
    try:
        with pytest.raises(ValueError):
            writer.write(np.zeros((48, 64, 3), np.float32), 0)
        with pytest.raises(ValueError):
            writer.write(np.zeros((64, 48, 3), np.uint8), 0)
        # (A repeated pts is not wrong: see test_video_robust.py.)
    finally:
        writer.abort()
