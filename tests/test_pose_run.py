"""Pose models in `run` (detection, pose-map input, keypoint files, normalization) and `vidtrans pose`."""

import json
import subprocess
import sys

import numpy as np
import pytest

import vidtrans
from tests.conftest import run_cli
from tests.media import Recorder, dancer_clip, decode_all, make_clip, random_generator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.pipeline import render_pose_video, translate_video
from vidtrans.pose import PoseStats, PoseStyle, looks_like_pose_map, read_keypoints, render_poses, write_keypoints_npz
from vidtrans.pose.normalize import fit_to_frame
from vidtrans.pose.smoothing import smooth_track

TARGET_STATS = PoseStats(frame_width=128, frame_height=128, far=0.80, near=0.90, height_far=0.55, height_near=0.62)


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory):
    """A tiny pose -> person model whose card carries the target's pose statistics."""
    net = random_generator("unet_128", 3, 3, 8, "instance", seed=0)
    folder = tmp_path_factory.mktemp("models") / "tinypose"
    save_checkpoint(folder, net, ModelCard(architecture="unet_128", ngf=8, norm="instance", native_size=(128, 128),
                                           input_kind="pose", pose_style=PoseStyle().to_dict(),
                                           target_pose_stats=TARGET_STATS.to_dict()))
    return vidtrans.load_model(folder, device="cpu")


@pytest.fixture(scope="module")
def dancer(tmp_path_factory):
    return dancer_clip(tmp_path_factory.mktemp("clips") / "dancer.mp4", frames=20, size=(160, 120), audio=True)


def test_run_detects_normalizes_and_renders_pose_maps(tmp_path, pose_model, dancer):
    recorder = Recorder(pose_model)
    out = tmp_path / "out.mp4"
    summary = translate_video(dancer.path, out, recorder, batch_size=4, side_by_side=True)
    assert summary.pose.startswith("detected") and "normalized to the target" in summary.pose
    # 20 frames showing the whole body are too few to measure it well, and the summary says so.
    assert ("(on only 0.8 s of video showing the whole body, which can misjudge the dancer's size by a few per "
            "cent)") in summary.pose
    images, times = decode_all(out)
    _, in_times = decode_all(dancer.path)
    assert len(images) == summary.frames == 20 and times == pytest.approx(in_times, abs=1e-6)
    assert images[0].shape[:2] in ((128, 427), (128, 428))  # input scaled to 128 high | pose map | output (even)
    maps = np.concatenate(recorder.seen)
    assert maps.shape == (20, 128, 128, 3) and looks_like_pose_map(list(maps))
    # The mapped body stands on the target's ankle line: the lowest drawn pixels sit near 0.80-0.90 of the height.
    lowest = max(np.flatnonzero(m.max(axis=(1, 2)) > 100).max() for m in maps) / 128
    assert 0.78 <= lowest <= 0.95


def test_pose_map_input_is_recognised_and_passed_through(tmp_path, pose_model, dancer):
    pose_video = tmp_path / "poses.mp4"
    render_pose_video(dancer.path, pose_video)
    recorder = Recorder(pose_model)
    summary = translate_video(pose_video, tmp_path / "out.mp4", recorder)
    assert summary.pose == "input is pose maps" and summary.frames == 20
    explicit = translate_video(dancer.path, tmp_path / "out2.mp4", pose_model, pose="none")
    assert explicit.pose == "input is pose maps"


def test_keypoints_file_replaces_detection(tmp_path, pose_model, dancer):
    npz = tmp_path / "kp.npz"
    write_keypoints_npz(npz, dancer.keypoints, 160, 120)
    summary = translate_video(dancer.path, tmp_path / "out.mp4", pose_model, keypoints=npz, normalize=False)
    assert summary.pose.startswith("keypoints from kp.npz") and summary.frames == 20
    short = tmp_path / "short.npz"
    write_keypoints_npz(short, dancer.keypoints[:5], 160, 120)
    with pytest.raises(vidtrans.errors.VidtransError, match="5 frames of keypoints"):
        translate_video(dancer.path, tmp_path / "out3.mp4", pose_model, keypoints=short)


def test_pose_command_writes_maps_and_keypoints(tmp_path, dancer):
    out, npz = tmp_path / "pose.mp4", tmp_path / "kp.npz"
    result = run_cli("pose", dancer.path, "-o", out, "--keypoints", npz, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == 20 and summary["frames_with_person"] == 20
    images, times = decode_all(out)
    _, in_times = decode_all(dancer.path)
    assert len(images) == 20 and times == pytest.approx(in_times, abs=1e-6)
    assert images[0].shape[:2] == (120, 160) and looks_like_pose_map(images)
    track = read_keypoints(npz)
    assert track.keypoints.shape == (20, 18, 3) and (track.width, track.height) == (160, 120)
    # Detected joints land near the ones the dance was rendered from (smoothing included).
    both = (track.keypoints[..., 2] > 0) & (dancer.keypoints[..., 2] > 0)
    error = np.linalg.norm(track.keypoints[..., :2] - dancer.keypoints[..., :2], axis=-1)[both]
    assert np.median(error) < 0.04 * 120
    # The rendered maps are what our renderer draws from those keypoints (codec loss aside).
    expected = render_poses(track.keypoints, 120, 160)
    assert np.abs(images[5].astype(int) - expected[5].astype(int)).mean() < 4


def test_frames_without_a_person_keep_the_count(tmp_path, pose_model):
    empty = make_clip(tmp_path / "empty.mp4", frames=12, size=(96, 64), audio=False)
    out = tmp_path / "pose.mp4"
    summary = render_pose_video(empty.path, out)
    images, _ = decode_all(out)
    assert summary.frames == len(images) == 12 and summary.extra["frames_with_person"] == 0
    assert max(int(img.max()) for img in images) < 20  # black maps
    run = translate_video(empty.path, tmp_path / "run.mp4", pose_model, pose="detect")
    assert run.frames == 12 and "not normalized" in run.pose


def test_pose_command_bad_input_is_one_line(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for path in (tmp_path / "missing.mp4", text):
        out = tmp_path / "pose.mp4"
        result = run_cli("pose", path, "-o", out)
        assert result.returncode == 1 and result.stderr.count("\n") == 1 and path.name in result.stderr
        assert not out.exists() and not any(p.name.startswith(".pose") for p in tmp_path.iterdir())


def test_pose_command_without_mediapipe_is_one_line(tmp_path, dancer):
    # Detectors start in the background; their failure must still end the run as one line.
    out = tmp_path / "pose.mp4"
    hide_mediapipe = ("import runpy, sys; sys.modules['mediapipe'] = None; "
                      "sys.argv = ['vidtrans'] + sys.argv[1:]; runpy.run_module('vidtrans', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", hide_mediapipe, "pose", str(dancer.path), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "pip install mediapipe" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("frames", "fps", "warned"), [(149, 30, True), (150, 30, False), (10, 0, False)])
def test_normalizing_a_short_clip_says_the_measure_is_rough(frames, fps, warned):
    from vidtrans.pose.track import _short_clip_caveat

    assert bool(_short_clip_caveat(frames, fps)) == warned


def jittery(keypoints: np.ndarray, seed: int = 0) -> np.ndarray:
    """The track with a few pixels of frame-to-frame jitter, as a detector gives it."""
    noisy = keypoints.copy()
    visible = noisy[..., 2] > 0
    noisy[..., :2][visible] += np.random.default_rng(seed).normal(0, 3, (int(visible.sum()), 2)).astype(np.float32)
    return noisy


@pytest.mark.parametrize("smoothed", [True, False], ids=["smoothed", "raw"])
def test_keypoints_are_filtered_over_time_exactly_once(tmp_path, pose_model, dancer, smoothed):
    track = jittery(dancer.keypoints)
    npz = tmp_path / "kp.npz"
    write_keypoints_npz(npz, track, 160, 120, smoothed=smoothed)
    recorder = Recorder(pose_model)
    translate_video(dancer.path, tmp_path / "out.mp4", recorder, keypoints=npz, normalize=False)
    expected = track if smoothed else smooth_track(track)
    # Mapped into the model's 128x128 frame as `run` does without normalization: 160x120 scaled to 128 high.
    maps = render_poses(fit_to_frame((120, 160), (128, 128))(expected), 128, 128, PoseStyle())
    np.testing.assert_array_equal(np.concatenate(recorder.seen), maps)


def test_pose_command_marks_its_keypoints_smoothed(tmp_path, dancer):
    npz = tmp_path / "kp.npz"
    result = run_cli("pose", dancer.path, "-o", tmp_path / "pose.mp4", "--keypoints", npz)
    assert result.returncode == 0, result.stderr
    assert read_keypoints(npz).smoothed
    assert not read_keypoints(_written(tmp_path / "raw.npz")).smoothed


def _written(path):
    write_keypoints_npz(path, np.zeros((2, 18, 3), np.float32), 8, 8)
    return path


@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_a_keypoint_file_whose_smoothed_is_not_0_or_1_is_refused(tmp_path, value):
    path = tmp_path / "kp.npz"
    np.savez(path, keypoints=np.zeros((2, 18, 3), np.float32), width=8, height=8, smoothed=value)
    with pytest.raises(vidtrans.errors.VidtransError, match=r"smoothed is .*, not 0 or 1; write the file with vidtrans"):
        read_keypoints(path)


def test_smoothed_written_as_a_bool_reads_as_one(tmp_path):
    path = tmp_path / "kp.npz"
    np.savez(path, keypoints=np.zeros((2, 18, 3), np.float32), width=8, height=8, smoothed=True)
    assert read_keypoints(path).smoothed is True
    with pytest.raises(vidtrans.errors.VidtransError, match="smoothed must be True or False; got 'no'"):
        write_keypoints_npz(tmp_path / "other.npz", np.zeros((2, 18, 3), np.float32), 8, 8, smoothed="no")
