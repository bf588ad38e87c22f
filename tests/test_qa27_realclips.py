"""QA round 27, real-person clips (pose/): what `run` says when it cannot normalize a clip (head and
shoulders footage, as the real test clip is), and where a person off the centre of a wide frame lands
when the poses are fitted to the frame. Synthetic clips and keypoint files stand in for the footage.
"""

from __future__ import annotations

import numpy as np
import pytest

import vidtrans
from tests.media import Recorder, make_clip, normalizing_pose_model
from vidtrans.errors import VidtransError
from vidtrans.pose import estimate_pose_stats, write_keypoints_npz
from vidtrans.pose.keypoints import KEYPOINT_INDEX

SIZE = 64
# Advice that `run` cannot follow or has followed already: it fits the poses to the frame itself.
FOLLOWED_ADVICE = ("normalize=False", "--no-normalize", "turn normalization off", "full-body video")


@pytest.fixture(scope="module")
def normalizing_model(tmp_path_factory):
    """A tiny pose model whose card carries the target's body statistics, so `run` normalizes."""
    return normalizing_pose_model(tmp_path_factory.mktemp("models") / "normalizing", "resnet_6blocks", SIZE)


def upper_body(frames: int, x: float, width: int, height: int) -> np.ndarray:
    """Head and shoulders around column x of a width x height frame, as a talking-head clip shows."""
    poses = np.zeros((frames, 18, 3), np.float32)
    unit = height / 10
    points = {"nose": (0, 3), "r_eye": (-0.4, 2.6), "l_eye": (0.4, 2.6), "neck": (0, 6),
              "r_shoulder": (-2, 6.5), "l_shoulder": (2, 6.5), "r_elbow": (-2.5, 9.5), "l_elbow": (2.5, 9.5)}
    for name, (dx, dy) in points.items():
        poses[:, KEYPOINT_INDEX[name]] = (x + dx * unit, dy * unit, 0.9)
    assert poses[..., 0].min() >= 0 and poses[..., 0].max() < width
    return poses


def test_run_says_the_poses_were_fitted_to_the_frame_without_advice_it_already_followed(tmp_path, normalizing_model):
    clip = make_clip(tmp_path / "talk.mp4", frames=6, size=(SIZE, 48), audio=False)
    write_keypoints_npz(tmp_path / "talk.npz", upper_body(6, 32, SIZE, 48), SIZE, 48, smoothed=True)
    summary = vidtrans.translate_video(clip.path, tmp_path / "out.mp4", normalizing_model,
                                       keypoints=tmp_path / "talk.npz", smoothing="none")
    assert summary.pose.startswith("keypoints from talk.npz, fitted to the frame (not normalized: no frame shows a "
                                   "whole body, head to ankles,"), summary.pose
    assert not [advice for advice in FOLLOWED_ADVICE if advice in summary.pose], summary.pose
    # The library's own measure says what it lacks, not what a run should do about it.
    with pytest.raises(VidtransError) as error:
        estimate_pose_stats(upper_body(6, 32, SIZE, 48), 48, SIZE)
    assert str(error.value).startswith("no frame shows a whole body, head to ankles,")
    assert not [advice for advice in FOLLOWED_ADVICE if advice in str(error.value)], str(error.value)


def seen_maps(tmp_path, model, x: float) -> np.ndarray:
    """The pose maps `run` gives `model` for a person at column x of a wide 128x48 clip (an 8:3 frame:
    a square model frame, scaled to its height, holds its middle 48 columns only)."""
    clip = make_clip(tmp_path / "wide.mp4", frames=6, size=(128, 48), audio=False)
    write_keypoints_npz(tmp_path / "wide.npz", upper_body(6, x, 128, 48), 128, 48, smoothed=True)
    recorder = Recorder(model)
    vidtrans.translate_video(clip.path, tmp_path / "out.mp4", recorder, keypoints=tmp_path / "wide.npz",
                             smoothing="none", overwrite=True)
    return np.concatenate(recorder.seen)


def test_a_person_beside_the_middle_of_a_wide_frame_stays_in_the_fitted_frame(tmp_path, normalizing_model):
    # A talking head in the left fifth of the frame (columns 0-24): the model's frame showed the
    # middle of the picture, columns 40-88, so every pose map was black and the output the empty scene.
    maps = seen_maps(tmp_path, normalizing_model, 12)
    assert len(maps) == 6
    for pose_map in maps:
        columns = np.flatnonzero(pose_map.max(axis=(0, 2)) > 40)
        assert len(columns), "the pose map shows nobody"
        # Still at the left, as in the video, and whole: 24 columns of the video are 32 of the model's.
        assert columns[0] < 8 and columns[-1] - columns[0] >= 30, columns


@pytest.mark.parametrize("x", [64, 50], ids=["middle", "an-elbow-past-the-edge"])
def test_a_person_in_the_middle_of_a_wide_frame_is_fitted_as_before(tmp_path, normalizing_model, x):
    from vidtrans.pose.normalize import fit_to_frame
    from vidtrans.pose.render import PoseStyle, render_poses

    maps = seen_maps(tmp_path, normalizing_model, x)
    expected = render_poses(fit_to_frame((48, 128), (SIZE, SIZE))(upper_body(6, x, 128, 48)), SIZE, SIZE,
                            PoseStyle.for_card(normalizing_model.card))
    np.testing.assert_array_equal(maps, expected)
