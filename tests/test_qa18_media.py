"""Unusual media from the eighteenth QA round: GIF output, animated WebP input, and refusals whose
advice is right for the output asked for."""

import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import decode_all, make_clip


def test_a_gif_is_written_with_the_gif_codec_and_the_default_codec_says_how(rgb_model_dir, cli, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=12, size=(64, 48), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "a.gif", "--model", rgb_model_dir), 2)
    assert line.endswith("cannot hold libx264 video; use --codec gif with --pix-fmt rgb8, or another extension "
                         "such as .mkv")
    result = cli("run", clip.path, "-o", tmp_path / "b.gif", "--model", rgb_model_dir, "--codec", "gif",
                 "--pix-fmt", "rgb8")
    assert result.returncode == 0, result.stderr
    images, times = decode_all(tmp_path / "b.gif")
    assert len(images) == 12 and times == pytest.approx([i * 0.04 for i in range(12)], abs=1e-6)


def test_advice_never_names_the_extension_given(rgb_model_dir, cli, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "x.mkv", "--model", rgb_model_dir, "--codec", "png",
                        "--pix-fmt", "rgb24"), 2)
    assert "a .mkv file cannot hold png video" in line and line.endswith("another extension such as .mov")


def test_a_refused_pixel_format_names_those_the_codec_takes(rgb_model_dir, cli, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "x.mov", "--model", rgb_model_dir, "--codec", "png",
                        "--pix-fmt", "yuv420p"), 2)
    # Not pal8, which png encodes but FFmpeg's scaler cannot make (QA round 33).
    assert line.endswith("cannot be encoded by png; pass one of rgb24, rgba, rgb48be, rgba64be, gray, ya8, "
                         "gray16be, ya16be, monob")
    assert not (tmp_path / "x.mov").exists()


@pytest.mark.parametrize("pix_fmt", [None, "yuv444p", "yuvj420p"])
def test_mjpeg_takes_the_default_pixel_format_at_full_range(rgb_model_dir, cli, tmp_path, pix_fmt):
    # FFmpeg's JPEG encoder opens only on full-range YUV; the plain formats must not be refused.
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(64, 48), audio=False)
    reference = tmp_path / "ref.mkv"
    assert cli("run", clip.path, "-o", reference, "--model", rgb_model_dir, "--codec", "libx264rgb",
               "--pix-fmt", "rgb24").returncode == 0
    extra = ["--pix-fmt", pix_fmt] if pix_fmt else []
    result = cli("run", clip.path, "-o", tmp_path / "out.avi", "--model", rgb_model_dir, "--codec", "mjpeg",
                 "--crf", "2", *extra)
    assert result.returncode == 0, result.stderr
    images, times = decode_all(tmp_path / "out.avi")
    truth, truth_times = decode_all(reference)
    assert len(images) == 6 and times == pytest.approx(truth_times, abs=1e-6)
    # Full range written and tagged so: a range mix-up moves every level by up to 16-20 grey levels.
    assert np.abs(np.mean(np.stack(images), axis=(0, 1, 2)) - np.mean(np.stack(truth), axis=(0, 1, 2))).max() < 3


def test_an_animated_webp_is_called_what_it_is(rgb_model_dir, cli, tmp_path):
    image = pytest.importorskip("PIL.Image")
    frames = [image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)) for i in range(4)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=40)
    line = one_line(cli("run", tmp_path / "anim.webp", "-o", tmp_path / "out.mp4", "--model", rgb_model_dir), 1)
    assert line.endswith("anim.webp: an animated WebP, which FFmpeg cannot decode; convert it to a GIF or a video "
                         "(.mp4) first")
    assert not (tmp_path / "out.mp4").exists()
