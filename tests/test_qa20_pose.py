"""QA round 20, pose: the keypoint filters at scene cuts, drawing points far off the frame, pose
styles whose sizes no frame can hold."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.pose import OneEuroFilter, PoseStyle, render_pose, smooth_track
from vidtrans.pose.keypoints import NUM_WHOLE_BODY, RIGHT_HAND
from vidtrans.pose.smoothing import jumps
from vidtrans.pose.stages import SmoothKeypointsStage
from vidtrans.train.synth import SOURCE_LOOK, TARGET_LOOK, dance_keypoints

from tests.test_pose import standing_pose

SIZE = 256


def _dance(frames: int = 60, seed: int = 7, fps: float = 30.0) -> np.ndarray:
    return dance_keypoints(seed, frames, SIZE, SIZE, SOURCE_LOOK, fps=fps)


def _moved(track: np.ndarray, frames: slice, dx: float) -> np.ndarray:
    out = track.copy()
    part = out[frames]
    part[..., 0] = np.where(part[..., 2] > 0, part[..., 0] + dx, 0.0)
    return out


def _centre_x(track: np.ndarray) -> np.ndarray:
    return np.array([pose[pose[:, 2] > 0, 0].mean() for pose in track[:, :18]])


def test_offline_filter_does_not_slide_the_body_across_a_scene_cut():
    # The same dancer 100 px further right from frame 30 on: a cut. The filter used to draw the body
    # at 151, 162, 183, 210, 231 and 242 px in frames 27-32, in between the two places.
    cut = _moved(_dance(), slice(30, None), 100.0)
    smoothed = smooth_track(cut)
    assert np.abs(_centre_x(smoothed) - _centre_x(cut)).max() < 1.0
    assert jumps(cut) == [30]


def test_a_cut_with_nobody_for_two_frames_is_not_bridged():
    cut = _moved(_dance(), slice(30, None), 100.0)
    cut[28:30] = 0.0  # the detector lost the person over the cut
    smoothed = smooth_track(cut)
    assert not (smoothed[28:30, :, 2] > 0).any()
    assert np.abs(_centre_x(smoothed[30:]) - _centre_x(cut[30:])).max() < 1.0


@pytest.mark.parametrize("length", [1, 2])
def test_a_glitch_of_one_or_two_frames_is_still_removed_by_the_median(length):
    track = _dance()
    glitched = _moved(track, slice(20, 20 + length), 90.0)
    assert jumps(glitched) == []
    smoothed = smooth_track(glitched)
    assert np.abs(_centre_x(smoothed[18:24]) - _centre_x(track[18:24])).max() < 2.0


@pytest.mark.parametrize("fps", [30.0, 5.0])
def test_ordinary_dances_have_no_jumps(fps):
    # So the filter, and the tracks training and pose statistics are made from, stay as they were.
    for seed, look in ((1, SOURCE_LOOK), (2, TARGET_LOOK), (3, SOURCE_LOOK)):
        track = dance_keypoints(seed, 150, SIZE, SIZE, look, fps=fps)
        assert jumps(track) == []


class _Batch:
    def __init__(self, keypoints: np.ndarray):
        self.keypoints = keypoints


def test_streaming_filter_matches_the_whole_track_filter_around_cuts_gaps_and_glitches():
    base = _dance(90, seed=3)
    whole_body = np.zeros((len(base), NUM_WHOLE_BODY, 3), np.float32)
    whole_body[:, :18] = base
    whole_body[::2, 18:86] = base[::2, :1] + np.array([1.0, 1.0, 0.0], np.float32)  # face every other frame
    rng = np.random.default_rng(1)
    for trial in range(3):
        track = (whole_body if trial % 2 else base).copy()
        for _ in range(3):
            track = _moved(track, slice(int(rng.integers(1, 89)), None), float(rng.choice([-120, 120])))
            gap = int(rng.integers(0, 87))
            track[gap:gap + int(rng.integers(1, 6))] = 0.0
            glitch = int(rng.integers(0, 88))
            track = _moved(track, slice(glitch, glitch + int(rng.integers(1, 3))), 90.0)
        stage, out = SmoothKeypointsStage(), []
        size = int(rng.integers(3, 12))
        for i in range(0, len(track), size):
            out += [batch.keypoints for batch in stage.process(_Batch(track[i:i + size]))]
        out += [batch.keypoints for batch in stage.flush()]
        np.testing.assert_allclose(np.concatenate(out), smooth_track(track), atol=1e-4)


def test_one_euro_filter_follows_a_cut_at_once():
    # Live: the filtered body was 27 px behind the cut in its first frame and 7 px in the next.
    cut = _moved(_dance(), slice(30, None), 100.0)
    euro = OneEuroFilter()
    out = np.stack([euro(pose, i / 25) for i, pose in enumerate(cut)])
    assert abs(_centre_x(out)[30] - _centre_x(cut)[30]) < 0.5
    assert np.abs(_centre_x(out[30:]) - _centre_x(cut[30:])).max() < 2.0


def test_one_euro_filter_still_smooths_a_dance():
    track = _dance()
    rng = np.random.default_rng(0)
    noisy = track.copy()
    noisy[..., :2] += rng.normal(0, 2, noisy[..., :2].shape) * (noisy[..., 2:] > 0)
    euro = OneEuroFilter()
    out = np.stack([euro(pose, i / 30) for i, pose in enumerate(noisy)])
    present = track[..., 2] > 0
    assert np.abs(out[..., :2] - track[..., :2])[present].mean() < np.abs(noisy[..., :2] - track[..., :2])[present].mean()


@pytest.mark.parametrize("direction", [(1.0, 0.3), (-0.2, -1.0), (1.0, -1.0)])
def test_a_limb_to_a_point_far_off_the_frame_is_drawn_to_the_edge(direction):
    # cv2 takes 32-bit fixed-point coordinates: a point 10**9 px off overflowed (a RuntimeWarning)
    # and drew the limb in another direction, or across the frame.
    height, width = 144, 176
    pose = standing_pose(height, width)
    unit = np.array(direction) / np.hypot(*direction)
    whole = np.zeros((NUM_WHOLE_BODY, 3), np.float32)
    whole[:18] = pose
    whole[RIGHT_HAND.start:RIGHT_HAND.stop] = (60.0, 60.0, 1.0)
    drawn = []
    for reach in (1e7, 1e9, 1e12):
        body, parts = pose.copy(), whole.copy()
        body[4, :2] = body[3, :2] + unit * reach  # the right wrist, far off along the forearm
        parts[:18] = body
        parts[RIGHT_HAND.start + 4, :2] = (60.0, 60.0) + unit * reach  # a thumb's tip
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            drawn.append((render_pose(body, height, width), render_pose(parts, height, width, PoseStyle(version=2))))
    for body_map, parts_map in drawn[1:]:
        np.testing.assert_array_equal(body_map, drawn[0][0])
        np.testing.assert_array_equal(parts_map, drawn[0][1])
    assert (drawn[0][0][:, -1].max(axis=-1) > 0).any() or (drawn[0][0][0].max(axis=-1) > 0).any()


@pytest.mark.parametrize("field", ["limb_width", "joint_radius", "face_point_radius", "hand_line_width",
                                   "hand_joint_radius"])
def test_a_pose_style_with_sizes_larger_than_its_frame_is_refused_in_one_line(field):
    # A card with limb_width 1e9 passed, and drawing then failed in OpenCV ("integer won't fit into a C int").
    with pytest.raises(VidtransError, match=rf"^{field} must be at most reference_height \(512\), being pixels"):
        PoseStyle.from_dict({"version": 2, field: 1e9})
    assert getattr(PoseStyle.from_dict({"version": 2, field: 512.0}), field) == 512.0


def test_a_scene_cut_loses_no_frame_of_the_person(tmp_path):
    # Tracking looked for the dancer where they had been, found nobody in the first frame after the
    # cut on each detector (frames 14 and 15 with two), and `pose` drew nothing there; the filter
    # then bridged that gap, sliding the body across.
    pytest.importorskip("mediapipe")
    from tests.media import make_clip
    from vidtrans.pipeline import render_pose_video
    from vidtrans.pose.detector import PoseDetector
    from vidtrans.train.synth import render_person

    truth = _moved(_moved(_dance(26), slice(None, 14), -45.0), slice(14, None), 70.0)
    clip = make_clip(tmp_path / "cut.mp4", frames=26, size=(SIZE, SIZE), fps=25,
                     frame_fn=lambda i, w, h: render_person(truth[i], h, w, SOURCE_LOOK))
    summary = render_pose_video(clip.path, tmp_path / "pose.mp4", keypoints_out=tmp_path / "kp.npz")
    assert summary.frames_without_person == 0
    found = np.load(tmp_path / "kp.npz")["keypoints"]
    assert np.abs(_centre_x(found) - _centre_x(truth)).max() < 8.0
    with PoseDetector() as detector:  # one detector: every frame after the first tracked
        frames = [detector.detect(render_person(pose, SIZE, SIZE, SOURCE_LOOK)) for pose in truth[12:17]]
    assert all((pose[:, 2] > 0).any() for pose in frames)
