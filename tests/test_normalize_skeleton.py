"""Pose statistics version 3: a body is sized by its skeleton's length (head + torso + longer leg),
which does not change when the dancer crouches, so a clip that crouches a lot is scaled like one
that stands; cards with version 1 and 2 statistics keep sizing bodies by their height."""

import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.pose.keypoints import KEYPOINT_INDEX
from vidtrans.pose.normalize import STATS_VERSION, PoseNormalizer, PoseStats, estimate_pose_stats

HEAD, TORSO, THIGH, SHIN = 0.08, 0.25, 0.22, 0.22  # of the frame height


def person(ankle_x: float, ankle_y: float, knee_bend: float, size: float = 1.0) -> np.ndarray:
    """One pose in units of frame height: both ankles on the line `ankle_y`, knees bent forward by
    `knee_bend` radians (thigh and shin each that far from the vertical), torso and head upright."""
    thigh, shin = THIGH * size, SHIN * size
    points = {}
    for side, dx in (("r", -0.03 * size), ("l", 0.03 * size)):
        ankle = np.array([ankle_x + dx, ankle_y])
        knee = ankle + shin * np.array([np.sin(knee_bend), -np.cos(knee_bend)])
        hip = knee + thigh * np.array([-np.sin(knee_bend), -np.cos(knee_bend)])
        points |= {f"{side}_ankle": ankle, f"{side}_knee": knee, f"{side}_hip": hip}
    neck = (points["r_hip"] + points["l_hip"]) / 2 - [0, TORSO * size]
    points |= {"neck": neck, "nose": neck - [0, HEAD * size]}
    pose = np.zeros((18, 3), np.float32)
    for name, xy in points.items():
        pose[KEYPOINT_INDEX[name]] = (*xy, 1.0)
    return pose


def clip(frame: int, crouching: float, frames: int = 60, seed: int = 0, size: float = 1.0) -> np.ndarray:
    """A dancer walking towards the camera in a `frame`-pixel-high square video (ankle line 0.75 ->
    0.85, growing 10 % on the way), crouching (knees at 60 degrees) in a share `crouching` of the frames."""
    rng = np.random.default_rng(seed)
    track = []
    for t in np.linspace(0.0, 1.0, frames):
        bend = np.radians(60) if rng.random() < crouching else np.radians(5)
        track.append(person(0.5, 0.75 + 0.1 * t, bend, size * (1.0 + 0.1 * t)))
    track = np.stack(track)
    track[..., :2] = track[..., :2] * frame - 0.5
    return track


def older(stats: dict) -> dict:
    """Version 4 statistics as a dict without the upper body, which versions 1-3 lack."""
    return {key: value for key, value in stats.items()
            if key not in ("shoulder_width", "neck_x", "neck_y", "head_length")}


def nose_to_ankle(track: np.ndarray) -> np.ndarray:
    return track[:, KEYPOINT_INDEX["r_ankle"], 1] - track[:, KEYPOINT_INDEX["nose"], 1]


def test_a_crouching_dancer_is_sized_like_a_standing_one():
    target = estimate_pose_stats(clip(256, crouching=0.0), 256, 256)
    assert target.version == STATS_VERSION == 4
    # The same body, in a 512 px video, crouching in nearly every frame: it maps onto the target at its size.
    source = clip(512, crouching=0.95, seed=1)
    stats = estimate_pose_stats(source, 512, 512, like=target)
    assert stats.version == 4
    assert stats.height_near == pytest.approx(target.height_near, rel=0.01)
    mapped = PoseNormalizer(stats, target)(source)
    np.testing.assert_allclose(nose_to_ankle(mapped), nose_to_ankle(source) / 2, rtol=0.01)

    # Sized by their height in the picture (version 2), the crouches make the dancer look short,
    # and the standing frames come out too tall.
    height_target = PoseStats(**{**older(target.to_dict()), "version": 2})
    by_height = estimate_pose_stats(clip(256, crouching=0.0), 256, 256, like=height_target)
    by_height_source = estimate_pose_stats(source, 512, 512, like=by_height)
    assert by_height_source.version == 2
    grown = nose_to_ankle(PoseNormalizer(by_height_source, by_height)(source)) / (nose_to_ankle(source) / 2)
    assert np.median(grown) > 1.05


def test_a_bigger_dancer_is_scaled_down_to_the_target():
    target = estimate_pose_stats(clip(256, crouching=0.3), 256, 256)
    big = clip(256, crouching=0.3, seed=2, size=1.2)
    mapped = PoseNormalizer(estimate_pose_stats(big, 256, 256, like=target), target)(big)
    np.testing.assert_allclose(np.median(nose_to_ankle(mapped) / nose_to_ankle(big)), 1 / 1.2, rtol=0.02)


def test_old_statistics_measure_the_source_by_height_and_mixing_measures_is_refused():
    track = clip(256, crouching=0.5)
    version_1 = PoseStats.from_dict({k: v for k, v in older(estimate_pose_stats(track, 256, 256).to_dict()).items()
                                     if k != "centre_x"} | {"version": 1})
    source = estimate_pose_stats(track, 256, 256, like=version_1)
    assert source.version == 2
    assert source.height_near == pytest.approx(np.percentile(nose_to_ankle(track[-15:]), 90) / 256, rel=0.02)
    PoseNormalizer(source, version_1)(track)
    with pytest.raises(VidtransError, match=r"version 4.*version 1.*like=target"):
        PoseNormalizer(estimate_pose_stats(track, 256, 256), version_1)


def test_hidden_parts_are_measured_from_what_shows():
    """A skirt hides the knees, a side view a hip, a dancer's back the nose: the body is measured
    from the parts shown (hip to ankle straight, the hip shown, human head proportions)."""
    whole = estimate_pose_stats(clip(256, crouching=0.0), 256, 256)
    hidden = {"knees": ["r_knee", "l_knee"], "a hip": ["l_hip"], "the nose": ["nose"]}
    for what, names in hidden.items():
        track = clip(256, crouching=0.0)
        track[:, [KEYPOINT_INDEX[name] for name in names]] = 0.0
        stats = estimate_pose_stats(track, 256, 256, like=whole.to_dict())  # a card's dict does as well
        assert stats.height_near == pytest.approx(whole.height_near, rel=0.02), what
        PoseNormalizer(stats, whole)(track)


def test_a_body_without_hips_cannot_be_measured():
    track = clip(256, crouching=0.0)
    track[:, [KEYPOINT_INDEX["r_hip"], KEYPOINT_INDEX["l_hip"]]] = 0.0
    with pytest.raises(VidtransError, match=r"neck and a hip with its ankle.*normali[sz]"):
        estimate_pose_stats(track, 256, 256)
