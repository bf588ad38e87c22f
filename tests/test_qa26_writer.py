"""QA round 26, the writer: codecs, containers and encoders as a user meets them."""

import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import audio_durations, decode_all, make_clip
from vidtrans.errors import UsageError
from vidtrans.options import EncodeOptions, shown
from vidtrans.video import VideoWriter, check_output_settings
from vidtrans.video.writer import SourceMedia


def _without_svt_log() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SVT_LOG", "SVT_LOG_FILE")}


_SVT_FROM_PYTHON = """
from fractions import Fraction
import numpy as np
from vidtrans.options import EncodeOptions
from vidtrans.video import VideoWriter
with VideoWriter({out!r}, 64, 48, Fraction(1, 25), 25, EncodeOptions(codec="libsvtav1")) as writer:
    for i in range(3):
        writer.write(np.full((48, 64, 3), 60 * i, np.uint8), i)
"""


def test_svt_av1_from_python_prints_nothing_of_its_own(tmp_path):
    """libsvtav1 from the Python API printed some 20 "Svt[info]" lines per encoder opened (its banner and
    settings): only the CLI set SVT_LOG=0. The writer keeps the encoder quiet itself, a user's SVT_LOG kept."""
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("libsvtav1 is not in this FFmpeg build")
    out = tmp_path / "out.mkv"
    # SVT-AV1 reads SVT_LOG once per process, as its first encoder opens: a fresh interpreter.
    done = subprocess.run([sys.executable, "-c", _SVT_FROM_PYTHON.format(out=str(out))], env=_without_svt_log(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Svt[" not in done.stderr, done.stderr
    with av.open(str(out)) as back:
        assert back.streams.video[0].codec_context.name in ("libdav1d", "av1", "libaom-av1")
        assert sum(1 for _ in back.decode(video=0)) == 3
    # A user asking for SVT's log still gets it.
    asked = subprocess.run([sys.executable, "-c", _SVT_FROM_PYTHON.format(out=str(tmp_path / "log.mkv"))],
                           env={**_without_svt_log(), "SVT_LOG": "3"}, capture_output=True, text=True, timeout=120)
    assert asked.returncode == 0 and "Svt[info]" in asked.stderr


def _write_frames(path, images, encode, source=None):
    height, width = images[0].shape[:2]
    with VideoWriter(path, width, height, Fraction(1, 25), 25, encode, source or SourceMedia()) as writer:
        for i, image in enumerate(images):
            writer.write(image, i)


def _stripes(width: int, height: int, frames: int = 3) -> list:
    rng = np.random.default_rng(0)
    return [np.repeat(np.repeat(rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), np.uint8), 8, 0), 8, 1)
            [:height, :width].copy() for _ in range(frames)]


@pytest.mark.parametrize("codec,pix_fmt,ext", [("libx264", "yuv422p", ".mkv"), ("libx265", "yuv422p", ".mkv"),
                                               ("prores", "yuv422p10le", ".mov")])
def test_an_odd_height_in_4_2_2_is_kept(tmp_path, codec, pix_fmt, ext):
    """4:2:2 halves the chroma's width only: an odd height needs no extra row. Frames of 65x49 came out
    66x50, one replicated row too many, wherever the encoder refused the odd width (x264, x265, ProRes)."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    images = _stripes(65, 49)
    out = tmp_path / f"out{ext}"
    _write_frames(out, images, EncodeOptions(codec=codec, pix_fmt=pix_fmt, crf=0))
    back, _ = decode_all(out)
    assert len(back) == 3
    assert back[0].shape == (49, 66, 3)  # the odd width padded, as the encoder needs; the height as it was
    if codec != "libx264":  # FFmpeg's own conversion of H.264 4:2:2 at odd heights to RGB is off (not the file's)
        assert abs(back[1][:, :65].astype(int) - images[1]).mean() < 3


def test_x265_says_nothing_on_a_run_that_succeeds_at_an_odd_size(tmp_path, rgb_model_dir):
    """A run with --codec libx265 on a 65x49 clip printed four "x265 [error]: Picture width must be an
    integer multiple of the specified chroma subsampling" lines (the writer's trial openings, which find
    the padding, as check_output and again as the writer opens) above its success line."""
    if "libx265" not in av.codecs_available:
        pytest.skip("libx265 is not in this FFmpeg build")
    make_clip(tmp_path / "odd.mkv", frames=4, size=(65, 49), pix_fmt="yuv444p", audio=False)
    result = subprocess.run([sys.executable, "-m", "vidtrans", "run", str(tmp_path / "odd.mkv"), "--model",
                             str(rgb_model_dir), "-o", str(tmp_path / "out.mp4"), "--codec", "libx265"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "x265 [" not in result.stderr, result.stderr
    with av.open(str(tmp_path / "out.mp4")) as back:
        assert (back.streams.video[0].width, back.streams.video[0].height) == (66, 50)


def test_an_ogg_video_keeps_the_audio(tmp_path):
    """.ogv (VP8 in Ogg) left every audio track out ("cannot go into a .ogv file"): FFmpeg lists only
    FLAC and Theora as what Ogg holds, though its muxer takes Opus and Vorbis too, so AAC was not
    re-encoded to Opus as for .webm."""
    if "libopus" not in av.codecs_available:
        pytest.skip("libopus is not in this FFmpeg build")
    clip = make_clip(tmp_path / "in.mp4", frames=25, size=(64, 48))
    out = tmp_path / "out.ogv"
    _write_frames(out, clip.images, EncodeOptions(codec="libvpx"), SourceMedia(clip.path))
    with av.open(str(out)) as back:
        assert [s.codec_context.name for s in back.streams.audio] == ["opus"]
        assert sum(1 for _ in back.decode(video=0)) == 25
    assert audio_durations(out)[0] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("crf", [0, 3])
def test_vp8_takes_the_whole_crf_range_the_readme_gives(tmp_path, crf):
    """The README gives --crf 0-63 for VP8; libvpx refused crf 0-3 ("libvpx refused its settings (Invalid
    argument)"): its lowest quantizer is 4 unless told otherwise, and a crf below it is an error."""
    if "libvpx" not in av.codecs_available:
        pytest.skip("libvpx is not in this FFmpeg build")
    images = _stripes(64, 48)
    _write_frames(tmp_path / "out.webm", images, EncodeOptions(codec="libvpx", crf=crf))
    back, _ = decode_all(tmp_path / "out.webm")
    assert len(back) == 3 and abs(back[2].astype(int) - images[2]).mean() < 8


def test_a_writer_refuses_a_name_ending_in_a_slash(tmp_path):
    """VideoWriter("out.mp4/") wrote a file out.mp4: it checked the name as a Path, which drops the slash
    that names a folder (the CLI and translate_video refuse it; the writer, which live's --record and
    Python callers use, did not)."""
    with pytest.raises(UsageError, match="ends with a slash"):
        VideoWriter(f"{tmp_path / 'out.mp4'}/", 64, 48, Fraction(1, 25), 25)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("codec,ext", [("libsvtav1", ".mkv"), ("libvpx-vp9", ".webm"), ("mpeg4", ".mp4")])
def test_a_preset_no_encoder_knows_is_refused_for_every_codec(codec, ext):
    """--preset warp passed with libsvtav1, libvpx-vp9 and the fixed-quantiser codecs: only the x264 family
    and NVENC looked at the name (the README: a preset a codec does not take is refused, exit 2)."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    with pytest.raises(UsageError, match=r"^preset 'warp' is not one .* knows; pass one of ultrafast, .*veryslow"):
        check_output_settings(f"out{ext}", EncodeOptions(codec=codec, preset="warp"))


@pytest.mark.parametrize("codec,ext", [("libsvtav1", ".mkv"), ("libvpx-vp9", ".webm")])
def test_svt_av1_and_vp9_follow_the_preset(tmp_path, codec, ext):
    """--preset did nothing for SVT-AV1 and VP9, which have speed settings of their own (SVT-AV1's preset,
    VP9's cpu-used): ultrafast and veryslow made the very file medium makes. medium stays the encoder's
    default, so what it made before is unchanged."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (64, 96, 3), np.uint8)
    images = [np.roll(base, 2 * i, axis=1) for i in range(6)]
    made = {}
    for preset in ("ultrafast", "medium", "veryslow", None):
        out = tmp_path / f"{preset}{ext}"
        encode = EncodeOptions(codec=codec, crf=30, **({"preset": preset} if preset else {}))
        _write_frames(out, images, encode)
        with av.open(str(out)) as back:
            made[preset] = [bytes(p) for p in back.demux(video=0) if p.size]
    assert made["medium"] == made[None]
    assert made["ultrafast"] != made["medium"] != made["veryslow"]


@pytest.mark.parametrize("typed,meant", [("libx246", "libx264"), ("LIBX265", "libx265"), ("libsvt-av1", "libsvtav1"),
                                         ("libvpx_vp9", "libvpx-vp9")])
def test_a_misspelt_codec_is_named_with_the_one_meant(tmp_path, typed, meant):
    """--codec libx246 (or LIBX265, libsvt-av1: FFmpeg's names are case- and dash-sensitive) was told only
    "unknown to this FFmpeg build", with a list of usual encoders: as with a misspelt option, the one
    meant is named."""
    if meant not in av.codecs_available:
        pytest.skip(f"{meant} is not in this FFmpeg build")
    expected = rf"^codec {typed!r} is unknown to this FFmpeg build; did you mean (\S+ or )?{meant}\b"
    with pytest.raises(UsageError, match=expected):
        check_output_settings(tmp_path / "out.mkv", EncodeOptions(codec=typed))


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 1e12, -25.0])
@pytest.mark.parametrize("segments", [1, 2])
def test_a_frame_rate_that_is_none_leaves_the_timestamps_to_time_the_frames(tmp_path, fps, segments):
    """The writer's fps is a hint beside the frames' timestamps, but NaN failed as "cannot set up the output
    (cannot convert NaN to integer ratio); check the file extension", and infinity or 1e12 escaped as a bare
    OverflowError (a traceback): they are taken as an unknown rate, as 0 is."""
    images = _stripes(64, 48, frames=4)
    with VideoWriter(tmp_path / "out.mp4", 64, 48, Fraction(1, 25), fps, EncodeOptions(segments=segments)) as writer:
        for i, image in enumerate(images):
            writer.write(image, 2 * i)
    back, times = decode_all(tmp_path / "out.mp4")
    assert len(back) == 4 and times == pytest.approx([0, 0.08, 0.16, 0.24])


@pytest.mark.parametrize("setting,value", [("codec", "x" * 300), ("preset", "fast" * 75), ("pix_fmt", "y" * 300),
                                           ("crf", 10 ** 200)])
def test_a_long_setting_is_echoed_cut(setting, value):
    """--preset, --codec, --pix-fmt and --crf values were echoed whole in their errors (a 300-character
    preset made a 400-character line): cut at 60 characters with "...", as every other message does."""
    with pytest.raises(UsageError) as refused:
        check_output_settings("out.mp4", EncodeOptions(**{setting: value}))
    message = str(refused.value)
    assert message.startswith(f"{setting} {shown(value)} ") and "..." in message
    assert str(value) not in message


@pytest.mark.parametrize("codec,pix_fmt,ext", [("mpeg4", "yuv420p", ".mp4"), ("mjpeg", "yuvj420p", ".avi"),
                                               ("mpeg2video", "yuv420p", ".mpg")])
def test_crf_sets_the_quality_of_fixed_quantiser_codecs(tmp_path, codec, pix_fmt, ext):
    """--crf did nothing for mpeg4, MJPEG or MPEG-2: their fixed quantiser (+qscale, global_quality) is read
    from each frame's quality, which only the ffmpeg tool sets, so every crf made the same file at the
    best quantiser. Now crf 51 makes a smaller file than crf 0, and the default is not the largest."""
    rng = np.random.default_rng(2)
    images = [np.clip(rng.normal(128, 50, (48, 64, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    sizes = {}
    for crf in (0, 18, 51):
        out = tmp_path / f"crf{crf}{ext}"
        _write_frames(out, images, EncodeOptions(codec=codec, pix_fmt=pix_fmt, crf=crf))
        with av.open(str(out)) as back:
            sizes[crf] = sum(p.size for p in back.demux(video=0))
    assert sizes[0] > sizes[18] > sizes[51]
