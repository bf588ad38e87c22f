"""Training on what inference sees (issue 14, item 3): synthetic pose maps drawn from keypoints
detected on the rendered dances (detected once, then read from the cache), or from exact keypoints
moved by the detector's measured error; `vidtrans train --synthetic --train-pose` chooses."""

import functools
import json

import numpy as np
import pytest

from tests.conftest import run_cli as cli
from vidtrans.errors import VidtransError
from vidtrans.options import TrainOptions
from vidtrans.pose.detector import PoseDetector
from vidtrans.pose.render import render_pose
from vidtrans.train import data
from vidtrans.train.detected import DetectedDances, DetectorError, cache_dir
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person

TINY = ["--ngf", "8", "--ndf", "8", "--arch", "unet_128", "--size", "128", "--save-every", "2", "--validate-every", "2",
        "--data-workers", "0"]


@pytest.fixture
def detected_frames(monkeypatch, tmp_path):
    """The frames the pose detector is given from now on (one entry each), with an empty cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    frames = []
    detect = PoseDetector.detect

    def counted(self, frame, frame_size=None):
        frames.append(frame.shape)
        return detect(self, frame, frame_size)

    monkeypatch.setattr(PoseDetector, "detect", counted)
    return frames


def test_dances_are_detected_once_then_read_from_the_cache(detected_frames):
    first = DetectedDances(128, TARGET_LOOK, frames=10, video_size=256).track(5)
    assert len(detected_frames) == 10 and detected_frames[0] == (256, 256, 3)
    # The detected keypoints are those of the dance, in the training frame.
    exact = dance_keypoints(5, 10, 128, 128)
    assert (first[..., 2] > 0).any(axis=1).all()
    assert np.abs(first[..., :2] - exact[..., :2])[(first[..., 2] > 0) & (exact[..., 2] > 0)].mean() < 4.0
    again = DetectedDances(128, TARGET_LOOK, frames=10, video_size=256).track(5)  # another run, or --resume
    assert len(detected_frames) == 10
    np.testing.assert_array_equal(again, first)
    # A damaged cache file is detected again (and replaced).
    (cached,) = cache_dir().iterdir()
    cached.write_bytes(b"not keypoints")
    np.testing.assert_array_equal(DetectedDances(128, TARGET_LOOK, frames=10, video_size=256).track(5), first)
    assert len(detected_frames) == 20
    DetectedDances(128, TARGET_LOOK, frames=10, video_size=256).track(5)
    assert len(detected_frames) == 20


def test_training_on_detected_poses_is_recorded_and_resumes_from_the_cache(tmp_path, monkeypatch, detected_frames):
    monkeypatch.setattr(data, "SyntheticPairs", functools.partial(
        data.SyntheticPairs, dances=data.Dances(frames=8, stats_dances=2, detected_dances=2, video_size=256)))
    out = tmp_path / "model"
    first = cli("train", "--synthetic", "--train-pose", "detected", "-o", out, "--iterations", "1", *TINY)
    assert first.returncode == 0, first.stderr
    # The two training dances (which also give the target's statistics) and the validation dance.
    assert len(detected_frames) == 3 * 8
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["train_pose"] == "detected" and card["training"]["detected_poses"] == 2 * 8
    assert "MediaPipe" in card["training"]["target_pose_stats"]
    resumed = cli("train", "--synthetic", "--train-pose", "detected", "-o", out, "--iterations", "2", "--resume", *TINY)
    assert resumed.returncode == 0, resumed.stderr
    assert len(detected_frames) == 3 * 8


@pytest.mark.parametrize("train_pose", ["exact", "detected", "noisy"])
def test_pose_maps_come_from_the_chosen_keypoints_and_targets_stay_exact(train_pose):
    # The session's cache: the three share their detected dances.
    source = data.SyntheticPairs(size=128, train_pose=train_pose, dances=data.Dances(
        frames=12, stats_dances=2, detected_dances=1, video_size=256))
    source.prepare()
    pose_map, target, keypoints = source.sample(np.random.default_rng(0))
    np.testing.assert_array_equal(target, render_person(keypoints, 128, 128))
    drawn_from_exact = (pose_map == render_pose(keypoints, 128, 128)).all()
    assert drawn_from_exact == (train_pose == "exact")


def test_noisy_poses_have_the_measured_spread():
    rng = np.random.default_rng(0)
    error = DetectorError(bias=np.tile([-0.02, 0.005], (18, 1)), covariance=np.tile(np.diag([0.006, 0.003]) ** 2, (18, 1, 1)),
                          miss_rate=np.where(np.arange(18) == 4, 0.3, 0.0))
    exact = np.tile(dance_keypoints(1, 100, 256, 256), (10, 1, 1))
    noisy = np.stack([error.perturb(pose, TARGET_LOOK, rng) for pose in exact])
    measured = DetectorError.measure(exact, noisy, TARGET_LOOK)
    np.testing.assert_allclose(measured.bias, error.bias, atol=0.001)
    np.testing.assert_allclose(np.sqrt(np.diagonal(measured.covariance, axis1=1, axis2=2)), [[0.006, 0.003]] * 18,
                               rtol=0.1)
    np.testing.assert_allclose(measured.miss_rate, error.miss_rate, atol=0.05)
    # Hidden keypoints stay hidden.
    assert ((exact[..., 2] == 0) <= (noisy[..., 2] == 0)).all()


def test_noisy_poses_err_like_the_detector(detected_frames):
    # The detector's error is mostly systematic (limbs read about 2 % of the body height short), so
    # exact keypoints moved by its measured error lie much nearer to the detected ones.
    exact, detected = dance_keypoints(2, 30, 256, 256), DetectedDances(256, TARGET_LOOK, frames=30).track(2)
    noisy = np.stack([DetectorError.measure(exact, detected, TARGET_LOOK).perturb(pose, TARGET_LOOK, rng)
                      for pose, rng in zip(exact, map(np.random.default_rng, range(30)))])
    both = (exact[..., 2] > 0) & (detected[..., 2] > 0)

    def distance(poses):
        return np.hypot(*(poses[..., :2] - detected[..., :2])[both].T).mean()

    assert distance(exact) > 2.0 and distance(noisy) < 0.6 * distance(exact)


def test_bad_train_pose_values_are_refused_in_one_line(tmp_path):
    with pytest.raises(VidtransError, match=r"^train_pose must be one of exact, detected, noisy, not 'blurry'$"):
        TrainOptions(train_pose="blurry")
    usage = cli("train", "--synthetic", "--train-pose", "blurry", "-o", tmp_path / "m")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    video = cli("train", tmp_path / "target.mp4", "--train-pose", "noisy", "-o", tmp_path / "m")
    assert video.returncode == 2 and video.stderr.count("\n") == 1, video.stderr
    assert "--train-pose noisy is for synthetic training only" in video.stderr
    assert not (tmp_path / "m").exists()
