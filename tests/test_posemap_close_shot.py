"""`run --pose auto` takes the whole-body pose maps `vidtrans pose --whole-body` writes of a close shot
(a head and shoulders) for pose maps: their face dots cover more pixels than the few limbs in view,
most of all on small frames, where the dots stop shrinking. Footage is still detected."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.media import dancer_clip, decode_all, make_clip
from vidtrans.pose import KEYPOINT_INDEX, KEYPOINT_NAMES, PoseStyle, looks_like_pose_map, render_pose
from vidtrans.pose.keypoints import FACE, NUM_WHOLE_BODY
from vidtrans.train.synth import dance_keypoints

FRAMES = 6
WHOLE_BODY = PoseStyle(version=2)
CARPHONE = Path("/work/shared/data/people/carphone.mp4")
BELOW_THE_FRAME = ("elbow", "wrist", "hip", "knee", "ankle")


def close_shot_keypoints(height: int, width: int, head_to_neck: float) -> np.ndarray:
    """Whole-body poses of a dance cut to the head and shoulders (arms and hands below the frame, as
    at a desk): enlarged about the neck until the nose is `head_to_neck` of the frame's height above
    it, the neck low in the frame, and what falls outside the frame missing, as a detector reports it."""
    poses = dance_keypoints(3, FRAMES, 720, 720, whole_body=True)
    arms_and_legs = [i for i, name in enumerate(KEYPOINT_NAMES) if name.endswith(BELOW_THE_FRAME)]
    poses[:, arms_and_legs + list(range(FACE.stop, NUM_WHOLE_BODY)), 2] = 0
    neck, nose = poses[:, KEYPOINT_INDEX["neck"], :2], poses[:, KEYPOINT_INDEX["nose"], :2]
    scale = head_to_neck * height / np.linalg.norm(neck - nose, axis=1).mean()
    poses[..., :2] = (poses[..., :2] - neck.mean(axis=0)) * scale + (width / 2, 0.8 * height)
    x, y = poses[..., 0], poses[..., 1]
    poses[..., 2] *= (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return poses


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    """`frames` as an H.264 video at run's default quality (crf 18), which desaturates thin lines."""
    height, width = frames[0].shape[:2]
    make_clip(path, frames=len(frames), size=(width, height), audio=False, frame_fn=lambda i, w, h: frames[i],
              options={"crf": "18", "preset": "medium"})
    return path


def close_shot_pose_video(path: Path, height: int, width: int, head_to_neck: float = 0.2) -> Path:
    poses = close_shot_keypoints(height, width, head_to_neck)
    return write_video(path, [render_pose(pose, height, width, WHOLE_BODY) for pose in poses])


def run_summary(source: Path, model_dir: Path, tmp_path: Path) -> str:
    result = run_cli("run", source, "-m", model_dir, "-o", tmp_path / "out.mp4")
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_close_shot_shows_more_face_dots_than_limbs(tmp_path):
    """What recognition must get right: more white than palette colour (a rule of at most one white
    pixel per palette pixel took this for footage)."""
    frames = decode_all(close_shot_pose_video(tmp_path / "poses.mp4", 96, 128))[0]
    pixels = np.concatenate([frame.reshape(-1, 3) for frame in frames]).astype(int)
    white = (pixels.min(axis=1) >= 200).sum()
    saturated = ((pixels.max(axis=1) >= 200) & (pixels.min(axis=1) <= 60)).sum()
    assert white > saturated > 0


# From 96 px tall: on smaller frames x264 takes the colour out of limbs a pixel or two thick.
@pytest.mark.parametrize("height, width", [(96, 128), (144, 176), (360, 480), (1080, 1440)])
@pytest.mark.parametrize("head_to_neck", [0.1, 0.3])  # the smaller the head, the more dots per limb pixel
def test_close_shot_pose_maps_are_recognised_small_and_large(tmp_path, height, width, head_to_neck):
    frames = decode_all(close_shot_pose_video(tmp_path / "poses.mp4", height, width, head_to_neck))[0]
    assert looks_like_pose_map(frames)


@pytest.mark.parametrize("version", [1, 2])
def test_full_figures_are_recognised_in_either_style(tmp_path, version):
    poses = dance_keypoints(3, FRAMES, 144, 176, whole_body=True)
    frames = [render_pose(pose, 144, 176, PoseStyle(version=version)) for pose in poses]
    assert looks_like_pose_map(decode_all(write_video(tmp_path / "poses.mp4", frames))[0])


def test_run_takes_a_close_shot_pose_video_for_pose_maps(tmp_path, pose_model_dir):
    source = close_shot_pose_video(tmp_path / "poses.mp4", 144, 176)
    assert "pose: input is pose maps" in run_summary(source, pose_model_dir, tmp_path)


def lamp_and_sign(index: int, width: int, height: int) -> np.ndarray:
    """A dark room: a white lamp and a small red sign, a few saturated colours on black. The lamp
    is a small face's worth of white, but the sign is too little colour for that many face dots."""
    frame = np.full((height, width, 3), 12, np.uint8)
    cv2.circle(frame, (width // 2, height // 5), height // 24, (250, 250, 250), -1)
    top_left = (width // 6, height // 2 + index)
    cv2.rectangle(frame, top_left, (top_left[0] + height // 16, top_left[1] + height // 64), (255, 20, 60), -1)
    return frame


def credits(index: int, width: int, height: int) -> np.ndarray:
    """White credits and a small red logo on black."""
    frame = np.zeros((height, width, 3), np.uint8)
    for line, text in enumerate(("directed by someone", "written by someone else", "music by a third")):
        cv2.putText(frame, text, (width // 8, height // 3 + line * height // 8 + index), cv2.FONT_HERSHEY_SIMPLEX,
                    height / 300, (255, 255, 255), 2)
    cv2.putText(frame, "STUDIO", (width // 3, 7 * height // 8), cv2.FONT_HERSHEY_SIMPLEX, height / 600,
                (255, 40, 40), 2)
    return frame


@pytest.mark.parametrize("frame_fn", [lamp_and_sign, credits])
def test_white_beside_a_few_saturated_colours_is_no_pose_map(tmp_path, frame_fn):
    clip = make_clip(tmp_path / "scene.mp4", frames=FRAMES, size=(640, 360), audio=False, frame_fn=frame_fn)
    assert not looks_like_pose_map(decode_all(clip.path)[0])


@pytest.mark.parametrize("brightness", [1.0, 0.25])
def test_run_still_detects_a_dancer_in_footage_bright_or_dark(tmp_path, pose_model_dir, brightness):
    clip = dancer_clip(tmp_path / "dancer.mp4", frames=FRAMES, size=(176, 144))
    dimmed = [(frame * brightness).astype(np.uint8) for frame in decode_all(clip.path)[0]]
    source = write_video(tmp_path / "dimmed.mp4", dimmed)
    assert not looks_like_pose_map(dimmed)
    summary = run_summary(source, pose_model_dir, tmp_path)
    assert "pose: detected" in summary and "input is pose maps" not in summary


@pytest.mark.skipif(not CARPHONE.is_file(), reason=f"{CARPHONE} (shared test data) is not on this machine")
def test_the_whole_body_pose_maps_of_carphone_are_recognised(tmp_path, pose_model_dir):
    pose_video = tmp_path / "carphone_pose.mp4"
    result = run_cli("pose", CARPHONE, "-o", pose_video, "--whole-body", "--end", "1")
    assert result.returncode == 0, result.stderr
    assert "pose: input is pose maps" in run_summary(pose_video, pose_model_dir, tmp_path)
    assert not looks_like_pose_map(decode_all(CARPHONE)[0][:FRAMES])
