"""QA round 33: what landed on 2026-12-04 afternoon, tried as a hostile user would.

framed_alike judged a clip by its middle ankle line and its mean size alone: two dancers cut
together, one smaller and higher, one larger and lower than the target, averaged to the target's
line and size, and were left where the target never stood, the summary saying the clip already
showed the target's size and place.
"""

import numpy as np
import pytest

from tests.test_framed_alike import MODEL, VIDEO, resized
from vidtrans.pose.normalize import PoseNormalizer, PoseStats, estimate_pose_stats, framed_alike
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints


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
