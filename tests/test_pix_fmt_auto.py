"""--pix-fmt auto, the default: yuv420p where the codec takes it, else a format of the codec's own.
`run --codec prores_ks` failed with "--pix-fmt 'yuv420p' cannot be encoded by prores_ks" although no
--pix-fmt was given; a pixel format the user does give is still refused where the codec cannot encode it."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import decode_all, make_clip
from vidtrans.batch import translate_folder
from vidtrans.options import EncodeOptions
from vidtrans.video import VideoWriter, check_output_settings

FRAMES = 6


def stored(path) -> tuple[str, str, int]:
    """The output's video codec, the pixel format it stores and the number of frames it decodes to."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
    return codec, pix_fmt, len(decode_all(path)[0])


@pytest.mark.parametrize("codec, name, expected", [
    ("prores_ks", "out.mov", ("prores", "yuv422p10le")),  # 4:2:2 10-bit, not yuva444p10le's invented alpha
    ("png", "out.mov", ("png", "rgb24")),                  # not rgba
    ("libx264", "out.mp4", ("h264", "yuv420p")),           # as before auto
])
def test_the_default_pixel_format_is_one_the_codec_takes(cli, tmp_path, rgb_model_dir, codec, name, expected):
    clip = make_clip(tmp_path / "in.mp4", frames=FRAMES, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / name, "--model", rgb_model_dir, "--codec", codec,
                 "--preset", "ultrafast")
    assert result.returncode == 0 and result.exception is None, result.stderr
    decoder, pix_fmt, frames = stored(tmp_path / name)
    assert (decoder, pix_fmt) == expected and frames == FRAMES
    assert pix_fmt in [f.name for f in av.Codec(codec, "w").video_formats]


def test_auto_given_explicitly_is_the_default(cli, tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mov", "--model", rgb_model_dir, "--codec", "prores_ks",
                 "--pix-fmt", "auto")
    assert result.returncode == 0, result.stderr
    assert stored(tmp_path / "out.mov")[1:] == ("yuv422p10le", 2)


def test_a_pixel_format_given_that_the_codec_cannot_encode_is_still_refused(cli, tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "out.mov", "--model", rgb_model_dir, "--codec",
                        "prores_ks", "--pix-fmt", "yuv420p"), 2)
    assert line.endswith("--pix-fmt 'yuv420p' cannot be encoded by prores_ks; pass one of yuv422p10le, "
                         "yuv444p10le, yuva444p10le")
    assert "Traceback" not in line and not (tmp_path / "out.mov").exists()


def test_a_container_that_cannot_hold_the_codec_still_says_which_can(cli, tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--codec",
                        "prores_ks"), 2)
    assert "a .mp4 file cannot hold prores_ks video" in line and "another extension such as" in line
    assert "pix" not in line


def test_python_callers_get_the_format_chosen(tmp_path):
    assert check_output_settings(tmp_path / "o.mov", EncodeOptions(codec="prores_ks"))[2] == "yuv422p10le"
    assert check_output_settings(tmp_path / "o.mp4", EncodeOptions())[2] == "yuv420p"
    assert check_output_settings(tmp_path / "o.gif", EncodeOptions(codec="gif"))[2] == "rgb8"  # not pal8 or gray


def test_batch_encodes_every_clip_in_the_format_chosen(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=FRAMES, size=(64, 48), audio=False)
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, codec="prores_ks", ext="mov", batch_size=4)
    assert [clip.status for clip in report.clips] == ["done"], report.failed
    assert stored(tmp_path / "out" / "a.mov") == ("prores", "yuv422p10le", FRAMES)


def test_segments_encoded_at_once_take_the_format_chosen(tmp_path, monkeypatch):
    """libx264rgb takes no yuv420p: its segments' encoders copy the format chosen, and crf 0 keeps every pixel."""
    import vidtrans.video.segments as segments

    monkeypatch.setattr(segments, "SEGMENT_SECONDS", 0)
    monkeypatch.setattr(segments, "MIN_SEGMENT_FRAMES", 4)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (24, 32, 3), np.uint8) for _ in range(10)]
    with VideoWriter(tmp_path / "rgb.mkv", 32, 24, Fraction(1, 25), 25,
                     EncodeOptions(codec="libx264rgb", crf=0, preset="ultrafast", segments=2)) as writer:
        for index, image in enumerate(frames):
            writer.write(image, index)
    with av.open(str(tmp_path / "rgb.mkv")) as container:
        keys = [index for index, packet in enumerate(container.demux(video=0)) if packet.is_keyframe]
    assert keys == [0, 4, 8]  # each segment's own encoder starts on a key frame
    got, _ = decode_all(tmp_path / "rgb.mkv")
    assert len(got) == len(frames)
    for image, truth in zip(got, frames):
        np.testing.assert_array_equal(image, truth)


@pytest.mark.parametrize("crf, profile", [(18, "DNXHR HQ"), (40, "DNXHR LB")])
def test_dnxhd_writes_dnxhr_profiles_for_the_crf(cli, tmp_path, rgb_model_dir, crf, profile):
    """dnxhd failed at every usual size ("refused its settings (Invalid argument)"): DNxHD proper takes
    a few broadcast sizes and bitrates only. Its DNxHR profiles take any size from 256x120."""
    clip = make_clip(tmp_path / "in.mp4", frames=FRAMES, size=(272, 128), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mov", "--model", rgb_model_dir, "--codec", "dnxhd",
                 "--crf", str(crf))
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "out.mov")) as container:
        assert container.streams.video[0].codec_context.profile == profile
    assert stored(tmp_path / "out.mov") == ("dnxhd", "yuv422p", FRAMES)


@pytest.mark.parametrize("pix_fmt, profile", [("yuv422p10le", "DNXHR HQX"), ("yuv444p10le", "DNXHR 444"),
                                             ("gbrp10le", "DNXHR 444")])
def test_dnxhd_takes_each_pixel_format_it_lists(cli, tmp_path, rgb_model_dir, pix_fmt, profile):
    """Its 10-bit and 4:4:4 formats were refused ('refused its settings ... its formats: yuv422p,
    yuv422p10le, ...', naming the format refused): the 8-bit profiles take yuv422p alone."""
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(272, 128), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mov", "--model", rgb_model_dir, "--codec", "dnxhd",
                 "--pix-fmt", pix_fmt)
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "out.mov")) as container:
        assert container.streams.video[0].codec_context.profile == profile
    assert stored(tmp_path / "out.mov") == ("dnxhd", pix_fmt, 2)


def test_dnxhd_refuses_frames_smaller_than_it_takes_in_one_line(cli, tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "out.mov", "--model", rgb_model_dir, "--codec", "dnxhd"),
                    1)
    assert line.endswith("dnxhd cannot encode frames of 64x48 (Invalid argument): they are too small for it; "
                         "choose another --codec such as libx264"), line
    assert not list(tmp_path.glob("out*"))
