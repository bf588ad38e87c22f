"""Whole-body poses (issue 14, item 4) through everything that is not drawing, detection or files:
the keypoint layout, smoothing, normalization, training set-up and the run's pose track."""

import numpy as np
import pytest

from vidtrans.pose.keypoints import (FACE, LEFT_HAND, NUM_KEYPOINTS, NUM_WHOLE_BODY, RIGHT_HAND, flip_keypoints,
                                     has_person, is_whole_body, with_parts)
from vidtrans.pose.normalize import PoseNormalizer, estimate_pose_stats
from vidtrans.pose.smoothing import OneEuroFilter, smooth_track
from vidtrans.train.synth import dance_keypoints


def whole_body_track(frames=40, size=256, seed=3) -> np.ndarray:
    return dance_keypoints(seed, frames, size, size, whole_body=True)


def test_mirroring_swaps_the_hands_and_the_faces_sides_and_undoes_itself():
    track = whole_body_track(4)
    flipped = flip_keypoints(track, 256)
    # The person's left hand, mirrored, is where the right hand was drawn, seen from the other side.
    present = track[:, LEFT_HAND, 2] > 0
    np.testing.assert_allclose(flipped[:, RIGHT_HAND][present][:, 0], 255 - track[:, LEFT_HAND][present][:, 0], atol=1e-4)
    face, mirrored_face = track[:, FACE], flipped[:, FACE]
    both = (face[:, 36, 2] > 0) & (face[:, 45, 2] > 0)
    # iBUG 36 (the image-left eye's outer corner) becomes the mirrored 45.
    np.testing.assert_allclose(mirrored_face[both, 45, 0], 255 - face[both, 36, 0], atol=1e-4)
    np.testing.assert_allclose(flip_keypoints(flipped, 256), track, atol=1e-4)


def test_parts_convert_both_ways_and_a_person_is_found_by_the_body():
    track = whole_body_track(3)
    body = with_parts(track, whole_body=False)
    assert body.shape == (3, NUM_KEYPOINTS, 3) and not is_whole_body(body)
    np.testing.assert_array_equal(body, track[:, :NUM_KEYPOINTS])
    padded = with_parts(body, whole_body=True)
    assert padded.shape == (3, NUM_WHOLE_BODY, 3) and (padded[:, NUM_KEYPOINTS:] == 0).all()
    hands_only = np.zeros((1, NUM_WHOLE_BODY, 3), np.float32)
    hands_only[0, LEFT_HAND, 2] = 1.0
    assert not has_person(hands_only)[0] and has_person(track).all()


def test_smoothing_and_normalization_treat_face_and_hands_like_the_body():
    rng = np.random.default_rng(0)
    track = whole_body_track(40)
    noisy = track.copy()
    noisy[..., :2] += rng.normal(0, 1.0, noisy[..., :2].shape) * (noisy[..., 2:] > 0)
    smoothed = smooth_track(noisy)
    assert smoothed.shape == track.shape
    np.testing.assert_array_equal(smoothed[:, :NUM_KEYPOINTS], smooth_track(noisy[:, :NUM_KEYPOINTS]))
    shown = track[..., 2] > 0
    assert np.abs(smoothed - track)[..., :2][shown].mean() < np.abs(noisy - track)[..., :2][shown].mean() * 0.7
    # The normalizer moves the face and hands with the body: the same scale and shift for every point.
    stats = estimate_pose_stats(track, 256, 256)
    target = estimate_pose_stats(track * np.float32([1.2, 1.2, 1]), 256 * 1.2, 256 * 1.2)
    normalized = PoseNormalizer(stats, target)(track)
    np.testing.assert_allclose(normalized[:, :NUM_KEYPOINTS], PoseNormalizer(stats, target)(track[:, :NUM_KEYPOINTS]),
                               atol=1e-4)
    face_scale = np.ptp(normalized[:, FACE][shown[:, FACE]][:, 0]) / np.ptp(track[:, FACE][shown[:, FACE]][:, 0])
    body_scale = np.ptp(normalized[:, :NUM_KEYPOINTS][shown[:, :NUM_KEYPOINTS]][:, 1]) \
        / np.ptp(track[:, :NUM_KEYPOINTS][shown[:, :NUM_KEYPOINTS]][:, 1])
    assert face_scale == pytest.approx(body_scale, rel=0.05)


def test_the_live_filter_follows_whole_body_poses():
    track = whole_body_track(3)
    one_euro = OneEuroFilter()
    out = [one_euro(pose, t / 30) for t, pose in enumerate(track)]
    assert out[-1].shape == (NUM_WHOLE_BODY, 3)
    np.testing.assert_array_equal(out[0], track[0])
    # A body-only pose after whole-body ones starts the filter afresh at its own size.
    assert one_euro(track[0, :NUM_KEYPOINTS], 1.0).shape == (NUM_KEYPOINTS, 3)


def test_whole_body_training_draws_face_points_records_the_style_and_resume_keeps_it(tmp_path, monkeypatch):
    import functools
    import json

    from tests.conftest import run_cli as cli
    from tests.test_train_pose import TINY
    from vidtrans.pose.render import PoseStyle, render_pose
    from vidtrans.train import data

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dances = data.Dances(frames=8, stats_dances=2, detected_dances=2, video_size=256)
    source = data.SyntheticPairs(size=128, style=PoseStyle(version=2), train_pose="detected", dances=dances)
    source.prepare()
    pose_map, target, keypoints = source.sample(np.random.default_rng(0))
    assert keypoints.shape == (NUM_WHOLE_BODY, 3)
    # The detector found the drawn face: its points are white in the pose map, which the body alone never draws.
    white = (pose_map == 255).all(axis=-1)
    assert white.sum() > 20
    body_only = render_pose(with_parts(source.detected.track(source.detected_seeds[0])[0], False), 128, 128)
    assert not (body_only == 255).all(axis=-1).any()

    monkeypatch.setattr(data, "SyntheticPairs", functools.partial(data.SyntheticPairs, dances=dances))
    out = tmp_path / "model"
    first = cli("train", "--synthetic", "--whole-body", "--train-pose", "detected", "-o", out, "--iterations", "1", *TINY)
    assert first.returncode == 0, first.stderr
    assert PoseStyle.from_dict(json.loads((out / "card.json").read_text())["pose_style"]).whole_body
    conflict = cli("train", "--synthetic", "--body-only", "-o", out, "--iterations", "2", "--resume", *TINY)
    assert conflict.returncode == 2 and "trained on whole-body pose maps, which --resume keeps" in conflict.stderr, \
        conflict.stderr
    resumed = cli("train", "--synthetic", "--train-pose", "detected", "-o", out, "--iterations", "2", "--resume", *TINY)
    assert resumed.returncode == 0, resumed.stderr
    noisy = cli("train", "--synthetic", "--whole-body", "--train-pose", "noisy", "-o", tmp_path / "n", *TINY)
    assert noisy.returncode == 2 and "--train-pose detected" in noisy.stderr, noisy.stderr


@pytest.fixture(scope="module")
def whole_body_model(tmp_path_factory):
    import vidtrans
    from tests.media import random_generator
    from tests.test_pose_run import TARGET_STATS
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint
    from vidtrans.pose.render import PoseStyle

    net = random_generator("unet_128", 3, 3, 8, "instance", seed=0)
    folder = tmp_path_factory.mktemp("models") / "wholebody"
    save_checkpoint(folder, net, ModelCard(architecture="unet_128", ngf=8, norm="instance", native_size=(128, 128),
                                           input_kind="pose", pose_style=PoseStyle(version=2).to_dict(),
                                           target_pose_stats=TARGET_STATS.to_dict()))
    return vidtrans.load_model(folder, device="cpu")


@pytest.fixture(scope="module")
def big_dancer(tmp_path_factory):
    from tests.media import dancer_clip

    # Large enough for the face mesh to find the character's face (about 40 px wide).
    return dancer_clip(tmp_path_factory.mktemp("clips") / "dancer.mp4", frames=10, size=(384, 384))


def test_a_whole_body_model_gets_face_points_in_run_and_from_keypoint_files(tmp_path, whole_body_model, big_dancer):
    from tests.conftest import run_cli
    from tests.test_pose_run import Recorder
    from vidtrans.pipeline import translate_video
    from vidtrans.pose import read_keypoints

    recorder = Recorder(whole_body_model)
    summary = translate_video(big_dancer.path, tmp_path / "out.mp4", recorder)
    assert summary.frames == 10 and summary.pose.startswith("detected, with face and hands")
    maps = np.concatenate(recorder.seen)
    assert ((maps == 255).all(axis=-1).sum(axis=(1, 2)) > 10).all()  # white face points in every frame

    # `vidtrans pose --whole-body` keeps the 128 points; a body-only file draws no face in the same model.
    whole, body = tmp_path / "whole.npz", tmp_path / "body.npz"
    assert run_cli("pose", big_dancer.path, "-o", tmp_path / "p.mp4", "--whole-body", "--keypoints", whole).returncode == 0
    assert run_cli("pose", big_dancer.path, "-o", tmp_path / "q.mp4", "--keypoints", body).returncode == 0
    assert read_keypoints(whole).keypoints.shape == (10, NUM_WHOLE_BODY, 3)
    assert read_keypoints(body).keypoints.shape == (10, NUM_KEYPOINTS, 3)
    recorder = Recorder(whole_body_model)
    summary = translate_video(big_dancer.path, tmp_path / "out2.mp4", recorder, keypoints=body)
    assert summary.pose.startswith("keypoints from body.npz")
    assert not (np.concatenate(recorder.seen) == 255).all(axis=-1).any()


def test_face_and_hands_found_every_other_frame_reach_every_frame_after_filtering():
    track = whole_body_track(9)
    alternate = track.copy()
    alternate[1::2, NUM_KEYPOINTS:] = 0  # what two detectors, one of them body-only, give
    alternate[-1, :NUM_KEYPOINTS] = 0  # and the body missing in the last frame: that stays missing
    smoothed = smooth_track(alternate)
    shown = track[:, NUM_KEYPOINTS:, 2] > 0
    always = shown.all(axis=0)  # points the character shows throughout (a turned head hides some)
    assert always[FACE.start - NUM_KEYPOINTS:].sum() > 60
    assert (smoothed[:, NUM_KEYPOINTS:, 2] > 0)[:, always].all()
    assert np.abs(smoothed[:, NUM_KEYPOINTS:, :2] - track[:, NUM_KEYPOINTS:, :2])[shown].mean() < 1.0
    assert (smoothed[-1, :NUM_KEYPOINTS] == 0).all()


def test_whole_body_is_refused_for_a_folder_of_rgb_pairs(tmp_path):
    from tests.conftest import run_cli

    result = run_cli("train", "--data", tmp_path, "--whole-body", "-o", tmp_path / "m")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--whole-body is about drawing pose maps" in result.stderr and "--input-kind pose" in result.stderr
    assert not (tmp_path / "m").exists()


def test_live_detects_face_and_hands_every_other_frame_and_moves_them_with_the_body_between(big_dancer):
    from vidtrans.live.process import AlternatingWholeBodyDetector
    from vidtrans.pose.keypoints import KEYPOINT_INDEX
    from vidtrans.video import VideoReader

    with VideoReader(big_dancer.path) as reader:
        frames = [frame.image for frame in reader][:6]
    detector = AlternatingWholeBodyDetector()
    try:
        poses = [detector.detect(frame) for frame in frames]
    finally:
        detector.close()
    nose = KEYPOINT_INDEX["nose"]
    for held, pose in zip(poses[0::2], poses[1::2]):
        assert pose.shape == (NUM_WHOLE_BODY, 3) and (pose[FACE, 2] > 0).all()
        # Between Holistic frames, the face is the last one moved as the nose moved.
        np.testing.assert_allclose(pose[FACE, :2] - held[FACE, :2], np.tile(pose[nose, :2] - held[nose, :2], (68, 1)),
                                   atol=1e-3)
