"""QA round 26, pose: the detection pass's progress ended on the container's estimate of the frames
(one more than a variable-rate Matroska clip holds, hundreds more for an AVI), so a bar stopped short
of its end, unlike the translation pass's, which ends on the frames written; normalization placed a
frame whose ankles do not show (feet cut by the frame's edge) by the ankle lines of its batch only,
so such frames were drawn where the batch size put them; a pose-map video whose dancer enters after
its first 8 frames was taken for camera footage (those frames are black), and MediaPipe found nobody
in its pose maps."""

from __future__ import annotations

import numpy as np
import pytest

import vidtrans
from vidtrans.pose import PoseStyle, render_pose, write_keypoints_npz
from vidtrans.pose.keypoints import KEYPOINT_INDEX
from vidtrans.train.synth import SOURCE_LOOK, dance_keypoints, render_person

from tests.media import decode_all, make_clip, normalizing_pose_model

SIZE = 128


@pytest.fixture(scope="module")
def normalizing_model(tmp_path_factory):
    """A tiny pose model whose card carries the target's pose statistics, so `run` normalizes."""
    return normalizing_pose_model(tmp_path_factory.mktemp("models") / "normalizing", "unet_128", SIZE,
                                  PoseStyle().to_dict())


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_the_detection_pass_ends_its_progress_on_the_frames_read(tmp_path, pose_model, ext):
    clip = make_clip(tmp_path / f"in.{ext}", frames=13, audio=False, vfr=True)
    calls = []
    vidtrans.translate_video(clip.path, tmp_path / "out.mp4", pose_model, pose="detect",
                             progress=lambda done, total, what: calls.append((done, total, what)))
    detection = [(done, total) for done, total, what in calls if what == "detecting poses"]
    assert detection[-1] == (13, 13)
    assert all(done <= total for done, total in detection)


def test_frames_whose_feet_do_not_show_are_normalized_as_in_the_whole_clip_whatever_the_batch(
        tmp_path, normalizing_model):
    # A dancer walking towards the camera whose feet leave the picture in frames 8-15: with batches
    # of 8, none of those frames' batch showed an ankle, so all eight were placed at the middle of
    # the dancer's ankle range instead of between the ankle lines of frames 7 and 16 (and batches
    # of 5 placed frames 8, 9 and 15 otherwise again).
    track = dance_keypoints(7, 24, SIZE, SIZE, SOURCE_LOOK)
    track[..., 1] += np.linspace(-20, 20, 24)[:, None] * (track[..., 2] > 0)
    for ankle in ("r_ankle", "l_ankle"):
        track[8:16, KEYPOINT_INDEX[ankle]] = 0.0
    clip = make_clip(tmp_path / "walk.mp4", frames=24, size=(SIZE, SIZE), audio=False)
    write_keypoints_npz(tmp_path / "walk.npz", track, SIZE, SIZE, smoothed=True)
    outputs = {}
    for batch_size in (24, 8, 5):  # 24: the whole clip in one batch
        dst = tmp_path / f"out{batch_size}.mp4"
        vidtrans.translate_video(clip.path, dst, normalizing_model, keypoints=tmp_path / "walk.npz",
                                 batch_size=batch_size, smoothing="none", crf=0)  # lossless: frames compare exactly
        outputs[batch_size] = np.stack(decode_all(dst)[0])
    for batch_size in (8, 5):
        differing = np.flatnonzero((outputs[batch_size] != outputs[24]).any(axis=(1, 2, 3)))
        assert differing.tolist() == [], f"batch size {batch_size}"


@pytest.mark.parametrize("enters", [0, 12])
def test_a_pose_map_video_is_recognised_whenever_the_dancer_enters(tmp_path, pose_model, enters):
    poses = dance_keypoints(7, 20, SIZE, SIZE, SOURCE_LOOK)
    clip = make_clip(tmp_path / "poses.mp4", frames=20, size=(SIZE, SIZE), audio=False,
                     frame_fn=lambda i, w, h: render_pose(poses[i] * (i >= enters), h, w))
    summary = vidtrans.translate_video(clip.path, tmp_path / "out.mp4", pose_model)
    assert summary.pose == "input is pose maps"
    assert len(decode_all(tmp_path / "out.mp4")[0]) == 20


def test_footage_that_fades_in_from_black_is_still_footage(tmp_path, pose_model):
    clip = make_clip(tmp_path / "fade.mp4", frames=20, size=(SIZE, SIZE), audio=False,
                     frame_fn=lambda i, w, h: np.zeros((h, w, 3), np.uint8) if i < 12 else
                     render_person(dance_keypoints(7, 20, h, w, SOURCE_LOOK)[i], h, w, SOURCE_LOOK))
    summary = vidtrans.translate_video(clip.path, tmp_path / "out.mp4", pose_model)
    assert summary.pose.startswith("detected")
