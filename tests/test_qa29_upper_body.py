"""QA round 29: the upper-body fit (pose statistics version 4) as a hostile user meets it."""

import numpy as np
import pytest

from tests.test_upper_body import SHOULDERS, close_shot, target_stats
from vidtrans.errors import VidtransError
from vidtrans.live.process import LivePoseMapper
from vidtrans.pose import PoseStats, estimate_pose_stats, normalizer_for
from vidtrans.pose.normalize import UpperBody, UpperBodyNormalizer, measure_upper_body
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints


def shoulders_together(track: np.ndarray) -> np.ndarray:
    """`track` with the left shoulder drawn on the right one (a detector's glitch, or a file's)."""
    track = track.copy()
    track[:, SHOULDERS[1], :2] = track[:, SHOULDERS[0], :2]
    return track


def test_shoulders_on_one_point_are_not_an_upper_body_to_divide_by():
    # Before: shoulder_width 0, and the normalizer divided by it (ZeroDivisionError from `vidtrans run`).
    shot = shoulders_together(close_shot())
    with pytest.raises(VidtransError, match="shoulders apart"):
        measure_upper_body(shot, 144, 176)
    with pytest.raises(VidtransError, match="shoulders apart"):
        normalizer_for(shot, 144, 176, target_stats())


def test_frames_with_shoulders_on_one_point_are_left_out_of_the_measure():
    shot = close_shot(60)
    glitched = shot.copy()
    glitched[:54] = shoulders_together(shot[:54])  # 54 of 60 frames: the 90th percentile was 0
    assert measure_upper_body(glitched, 144, 176) == measure_upper_body(shot[54:], 144, 176)


def test_a_whole_body_with_shoulders_on_one_point_is_still_normalized_as_a_whole():
    # Before: the version 4 measure refused the source's shoulder_width 0, so a clip whose whole
    # body shows lost its whole-body normalization.
    dance = shoulders_together(dance_keypoints(5, 60, 256, 256, TARGET_LOOK))
    stats = estimate_pose_stats(dance, 256, 256)
    assert stats.whole_body and stats.upper_body is None
    _, no_whole_body = normalizer_for(dance, 256, 256, target_stats())
    assert no_whole_body is None


def test_live_keeps_the_frame_fit_for_shoulders_on_one_point():
    mapper = LivePoseMapper((144, 176), (256, 256), target_stats().to_dict())
    shot = shoulders_together(close_shot())
    for i, pose in enumerate(shot):
        out = mapper(pose, i / 30)
        assert np.isfinite(out).all()
    assert mapper.transform is mapper.fit


@pytest.mark.parametrize("change, given", [({"centre_x": 0.1}, "version 4, centre_x=0.1"),
                                           ({"version": 3}, "version 3, centre_x=None")])
def test_statistics_without_a_whole_body_say_what_they_lack_not_that_far_is_missing(change, given):
    # Before: "far must be a finite number ..., got None", asking for an ankle line the card never had.
    upper = {**target_stats().to_dict(), "far": None, "near": None, "height_far": None, "height_near": None,
             "centre_x": None}
    assert not PoseStats.from_dict(upper).whole_body
    data = {**upper, **change}
    if data["version"] == 3:
        data = {name: value for name, value in data.items()
                if name not in ("shoulder_width", "neck_x", "neck_y", "head_length")}
    with pytest.raises(VidtransError, match=rf"^pose stats without a whole body .* got {given}; fix the model card"):
        PoseStats.from_dict(data)


@pytest.mark.parametrize("source, problem", [
    (UpperBody(0.0, 0.0, 0.5), "shoulder_width must be a finite number above 0"),
    (UpperBody(float("nan"), 0.0, 0.5), "shoulder_width must be a finite number above 0"),
    (UpperBody(0.2, "x", 0.5), "neck_x must be a finite number"),
    ((0.2, 0.0, 0.5), "source must be an UpperBody"),
])
def test_an_upper_body_normalizer_refuses_a_source_it_cannot_map_by(source, problem):
    # Before: accepted, then a ZeroDivisionError, NaN poses, a NumPy type error or an AttributeError
    # when poses were mapped.
    with pytest.raises(VidtransError, match=problem):
        UpperBodyNormalizer(source, (144, 176), target_stats())
