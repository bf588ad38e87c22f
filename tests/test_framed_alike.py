"""A clip framed as the target's video was is left where it is (`normalize.framed_alike`).

Normalization measures the dancer's size on the clip itself, and that measure differs from dance
to dance of one body by up to a couple of per cent: scaling the target's own new footage by that
error moved the head by a pixel or two (face SSIM 0.71 against 0.79 unnormalized over eight held-out
dances). A dancer shown where the target stood, at the target's size there within 2 %, keeps their
poses; a dancer of another size, or standing elsewhere, is normalized as before.
"""

import numpy as np
import pytest

from tests.media import make_clip, random_generator
from vidtrans.pose import write_keypoints_npz
from vidtrans.pose.normalize import PoseNormalizer, PoseStats, estimate_pose_stats, fit_to_frame, framed_alike
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints

MODEL, VIDEO = 256, 512


@pytest.fixture(scope="module")
def target() -> PoseStats:
    """The synthetic target's statistics, measured on twelve of its dances at the model's size,
    without where it usually stands sideways (trained on whole frames, as the shipped model is)."""
    track = np.concatenate([dance_keypoints(seed, 300, MODEL, MODEL, TARGET_LOOK) for seed in range(12)])
    return PoseStats(**{**estimate_pose_stats(track, MODEL, MODEL).to_dict(), "centre_x": None})


def resized(track: np.ndarray, factor: float, down: float = 0.0) -> np.ndarray:
    """`track` (in VIDEO pixels) scaled by `factor` about each frame's lower ankle, moved `down` frame heights."""
    out = track.copy()
    ankle = track[:, [10, 13], 1].max(axis=1, keepdims=True)
    shown = out[..., 2] > 0
    out[..., 1] = np.where(shown, ankle + (out[..., 1] - ankle) * factor + down * VIDEO, 0)
    out[..., 0] = np.where(shown, VIDEO / 2 + (out[..., 0] - VIDEO / 2) * factor, 0)
    return out


def normalized_and_fitted(track: np.ndarray, target: PoseStats) -> tuple[np.ndarray, np.ndarray, bool]:
    normalizer = PoseNormalizer(estimate_pose_stats(track, VIDEO, VIDEO, like=target), target)
    return normalizer(track), fit_to_frame((VIDEO, VIDEO), (MODEL, MODEL))(track), normalizer.alike


def body_heights(track: np.ndarray) -> np.ndarray:
    return track[:, [10, 13], 1].max(axis=1) - track[:, 1, 1]


@pytest.mark.parametrize("seed", [20000000, 20000003])
def test_the_targets_own_new_dance_keeps_its_poses(target, seed):
    """A held-out dance of the target, filmed as its training footage was (a larger video): mapped
    into the model's frame exactly as fitting the frame maps it, to the pixel."""
    normalized, fitted, alike = normalized_and_fitted(dance_keypoints(seed, 300, VIDEO, VIDEO, TARGET_LOOK), target)
    assert alike
    np.testing.assert_allclose(normalized, fitted, atol=1e-3)


@pytest.mark.parametrize("factor", [1.015, 0.985])
def test_a_size_within_what_the_measure_can_tell_is_kept(target, factor):
    normalized, fitted, alike = normalized_and_fitted(resized(dance_keypoints(5, 300, VIDEO, VIDEO), factor), target)
    assert alike
    np.testing.assert_allclose(normalized, fitted, atol=1e-3)


@pytest.mark.parametrize("factor", [1.06, 0.9, 0.5])
def test_a_dancer_of_another_size_is_brought_to_the_targets(target, factor):
    track = dance_keypoints(5, 300, VIDEO, VIDEO, TARGET_LOOK)
    normalized, fitted, alike = normalized_and_fitted(resized(track, factor), target)
    assert not alike
    # Back to the target's size: the ratio of heights the resize gave is undone, to a per cent.
    ratio = np.median(body_heights(normalized) / body_heights(fitted))
    assert ratio == pytest.approx(1 / factor, rel=0.01)


def test_a_dancer_of_the_targets_size_standing_elsewhere_is_moved_onto_its_floor(target):
    """The target's size, but lower in the frame than the target ever stood: the size alone does
    not say the clip is framed alike, so the ankle lines go to the target's."""
    track = resized(dance_keypoints(5, 300, VIDEO, VIDEO, TARGET_LOOK), 1.0, down=0.08)
    normalized, _, alike = normalized_and_fitted(track, target)
    assert not alike
    ankle = np.median(normalized[:, [10, 13], 1].max(axis=1) + 0.5) / MODEL
    assert target.far <= ankle <= target.near


def test_statistics_of_another_kind_are_compared_as_measured(target):
    """framed_alike compares sizes at the clip's middle ankle line with the target's line there."""
    middle = (target.far + target.near) / 2
    size = (target.height_far + target.height_near) / 2
    clip = PoseStats(**{**target.to_dict(), "far": middle - 0.005, "near": middle + 0.005,
                        "height_far": size * 1.019, "height_near": size * 1.019})
    assert framed_alike(clip, target)
    assert not framed_alike(PoseStats(**{**clip.to_dict(), "height_far": size * 1.03, "height_near": size * 1.03}),
                            target)
    assert not framed_alike(PoseStats(**{**clip.to_dict(), "far": target.near + 0.01, "near": target.near + 0.02}),
                            target)


def test_run_says_the_clip_was_left_as_framed(tmp_path, target):
    """`run` with a keypoint file of the target's own dance: the summary says the poses were kept."""
    import vidtrans
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint

    save_checkpoint(tmp_path / "model", random_generator("unet_256", 3, 3, 8, "instance", seed=0),
                    ModelCard(architecture="unet_256", ngf=8, norm="instance", native_size=(MODEL, MODEL),
                              input_kind="pose", target_pose_stats=target.to_dict()))
    model = vidtrans.load_model(tmp_path / "model", device="cpu", precision="fp32")
    clip = make_clip(tmp_path / "own.mp4", frames=40, size=(VIDEO, VIDEO), audio=False)
    write_keypoints_npz(tmp_path / "own.npz", dance_keypoints(20000000, 40, VIDEO, VIDEO, TARGET_LOOK), VIDEO, VIDEO,
                        smoothed=True)
    summary = vidtrans.translate_video(clip.path, tmp_path / "out.mp4", model,
                                       keypoints=tmp_path / "own.npz", smoothing="none")
    assert summary.pose == ("keypoints from own.npz, normalized to the target's body, which the clip already shows "
                            "at its size and on its floor (on only 1.6 s of video showing the whole body, which can "
                            "misjudge the dancer's size by a few per cent)")
    # Another dancer, larger: normalized, and told without it.
    write_keypoints_npz(tmp_path / "big.npz", resized(dance_keypoints(20000000, 40, VIDEO, VIDEO, TARGET_LOOK), 1.2),
                        VIDEO, VIDEO, smoothed=True)
    summary = vidtrans.translate_video(clip.path, tmp_path / "big.mp4", model, keypoints=tmp_path / "big.npz",
                                       smoothing="none")
    assert summary.pose.startswith("keypoints from big.npz, normalized to the target's body (on only"), summary.pose


def test_live_keeps_the_targets_own_camera_as_framed(target):
    """live measures the body over its warm-up; the target dancing as it was filmed keeps its poses,
    and the session's mapping says so."""
    from vidtrans.live.process import LivePoseMapper

    mapper = LivePoseMapper((VIDEO, VIDEO), (MODEL, MODEL), target.to_dict())
    track = dance_keypoints(20000000, 90, VIDEO, VIDEO, TARGET_LOOK)
    mapped = [mapper(pose, i / 30) for i, pose in enumerate(track)]  # 3 s at 30 fps: past the 2 s warm-up
    assert isinstance(mapper.transform, PoseNormalizer) and mapper.transform.alike
    assert mapper.how.endswith(" s, then normalized to the target's body, which the clip already shows at its size "
                               "and on its floor"), mapper.how
    np.testing.assert_allclose(mapped[-1], fit_to_frame((VIDEO, VIDEO), (MODEL, MODEL))(track[-1]), atol=1e-3)
