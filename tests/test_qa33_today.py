"""QA round 33: what landed on 2026-12-04 afternoon, tried as a hostile user would.

framed_alike judged a clip by its middle ankle line and its mean size alone: two dancers cut
together, one smaller and higher, one larger and lower than the target, averaged to the target's
line and size, and were left where the target never stood, the summary saying the clip already
showed the target's size and place.

Pixel formats: a format FFmpeg's scaler cannot make (pal8, the only one of msrle and smc, which
--pix-fmt auto picked for them; or given for png or gif) passed the settings check and failed at the
first frame, after the model's work, with "encoding failed (Operation not supported)". MPEG program
streams (.mpg, .vob) took any codec, and VP9, AV1, FFV1, ProRes, MJPEG or PNG made a file whose video
nothing decodes.
"""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip
from tests.test_framed_alike import MODEL, VIDEO, resized
from vidtrans.errors import ContainerError
from vidtrans.options import EncodeOptions
from vidtrans.pose.normalize import PoseNormalizer, PoseStats, estimate_pose_stats, framed_alike
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints
from vidtrans.video.writer import VideoWriter, check_output_settings


@pytest.fixture(scope="module")
def target() -> PoseStats:
    """The synthetic target's statistics (as tests/test_framed_alike.py measures them, on fewer dances)."""
    track = np.concatenate([dance_keypoints(seed, 300, MODEL, MODEL, TARGET_LOOK) for seed in range(4)])
    return PoseStats(**{**estimate_pose_stats(track, MODEL, MODEL).to_dict(), "centre_x": None})


def test_two_dancers_cut_together_averaging_to_the_target_are_normalized(target):
    dance = dance_keypoints(20000000, 60, VIDEO, VIDEO, TARGET_LOOK)
    cut = np.concatenate([resized(dance, 0.8, down=-0.05), resized(dance, 1.2, down=0.05)])
    stats = estimate_pose_stats(cut, VIDEO, VIDEO, like=target)
    middle = (stats.far + stats.near) / 2
    assert target.far <= middle <= target.near  # what the middle-line check saw: the target's place
    assert not framed_alike(stats, target)
    normalized = PoseNormalizer(stats, target)(cut)
    ankles = (normalized[:, [10, 13], 1].max(axis=1) + 0.5) / MODEL
    assert target.far - 0.01 <= ankles.min() and ankles.max() <= target.near + 0.01


def test_a_clip_reaching_past_the_targets_floor_or_growing_otherwise_is_not_framed_alike(target):
    size = (target.height_far + target.height_near) / 2
    middle = (target.far + target.near) / 2
    walking = PoseStats(frame_width=VIDEO, frame_height=VIDEO, far=middle - 0.2, near=middle + 0.2,
                        height_far=size * 0.7, height_near=size * 1.3)
    assert not framed_alike(walking, target)
    deep = PoseStats(frame_width=MODEL, frame_height=MODEL, far=0.5, near=0.9, height_far=0.3, height_near=0.7)
    flat = PoseStats(frame_width=MODEL, frame_height=MODEL, far=0.5, near=0.9, height_far=0.5, height_near=0.5)
    assert framed_alike(deep, deep) and not framed_alike(flat, deep)


@pytest.mark.parametrize("seed", [20000000, 20000003, 20000005])
def test_the_targets_own_dances_stay_framed_alike(target, seed):
    assert framed_alike(estimate_pose_stats(dance_keypoints(seed, 300, VIDEO, VIDEO, TARGET_LOOK), VIDEO, VIDEO,
                                            like=target), target)


@pytest.mark.parametrize(("codec", "pix_fmt", "suffix", "refusal"), [
    ("msrle", "auto", ".avi", "--codec 'msrle' encodes only pal8, which FFmpeg's scaler cannot make from RGB frames"),
    ("png", "pal8", ".mov", "--pix-fmt 'pal8' cannot be made from RGB frames by FFmpeg's scaler; pass one of rgb24,"),
    ("gif", "pal8", ".gif", "--pix-fmt 'pal8' cannot be made from RGB frames by FFmpeg's scaler; pass one of rgb8,"),
])
def test_a_format_the_scaler_cannot_make_is_refused_before_any_work(rgb_model_dir, cli, tmp_path, codec, pix_fmt,
                                                                     suffix, refusal):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    out = tmp_path / f"out{suffix}"
    result = cli("run", clip.path, "-o", out, "--model", rgb_model_dir, "--codec", codec, "--pix-fmt", pix_fmt)
    assert refusal in one_line(result, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_auto_never_picks_a_format_the_scaler_cannot_make(tmp_path):
    assert check_output_settings(tmp_path / "o.avi", EncodeOptions(codec="zmbv"))[2] == "bgr0"  # not its pal8


@pytest.mark.parametrize("codec", ["libvpx-vp9", "ffv1", "mjpeg", "prores_ks", "png"])
@pytest.mark.parametrize("suffix", [".mpg", ".vob"])
def test_a_program_stream_refuses_video_its_reader_cannot_tell(tmp_path, codec, suffix):
    with pytest.raises(ContainerError, match=rf"a \{suffix} file cannot hold {codec} video; use the codec libx264 or "
                                             r"libx265, or another extension such as \.m"):
        check_output_settings(tmp_path / f"o{suffix}", EncodeOptions(codec=codec))


@pytest.mark.parametrize("codec", ["libx264", "libx265", "mpeg4", "mpeg2video"])
def test_a_program_stream_still_takes_the_mpeg_family(tmp_path, codec):
    out = tmp_path / "o.mpg"
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(6)]
    with VideoWriter(out, 64, 48, Fraction(1, 25), 25, EncodeOptions(codec=codec)) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, i)
    with av.open(str(out)) as container:
        images = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(images) == 6
    assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(images, frames)) < 3


def test_raw_video_gets_a_format_its_container_reads_back(tmp_path):
    """rawvideo takes any format, but .mov read its auto yuv420p back as nothing: auto takes one that reads back."""
    out = tmp_path / "o.mov"
    frames = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(3)]
    with VideoWriter(out, 64, 48, Fraction(1, 25), 25, EncodeOptions(codec="rawvideo")) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, i)
    with av.open(str(out)) as container:
        images = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(images) == 3 and all(np.array_equal(a, b) for a, b in zip(images, frames))


@pytest.mark.parametrize(("suffix", "pix_fmt", "fix"), [
    (".avi", "rgb24", "pass --pix-fmt yuv420p or bgr24, or use another extension such as .mov"),  # red, blue swapped
    (".mov", "yuv444p", "pass --pix-fmt bgr24 or rgb24, or use another extension such as .nut"),  # read back as RGB
])
def test_raw_video_a_container_would_read_back_otherwise_is_refused(rgb_model_dir, cli, tmp_path, suffix, pix_fmt,
                                                                     fix):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / f"out{suffix}", "--model", rgb_model_dir, "--codec", "rawvideo",
                 "--pix-fmt", pix_fmt)
    assert one_line(result, 2).endswith(f"a {suffix} file cannot hold raw {pix_fmt} pictures (they would read back "
                                        f"as others); {fix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
