"""Keypoint files (QA 22): an NPZ whose keypoints are not a track at all (a flat or 2-D array) is
refused for its shape, not taken for a track of as many frames as its first axis, and before it is
read whole; a frame size far too large is quoted in a few digits, not hundreds."""

import json

import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip
from tests.test_qa21_keypoints import declared_npz
from vidtrans.pose.keypoints import NUM_KEYPOINTS

WIDTH, HEIGHT, FRAMES = 64, 48, 6


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT),
                     audio=False).path


def track(frames: int = FRAMES) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.uniform(20, 44, (frames, NUM_KEYPOINTS)), rng.uniform(6, 42, (frames, NUM_KEYPOINTS)),
                     np.full((frames, NUM_KEYPOINTS), 0.9)], axis=-1).astype(np.float32)


@pytest.mark.parametrize("shape", [(-1,), (FRAMES * NUM_KEYPOINTS, 3), (1, -1, 3)])
def test_npz_of_another_shape_is_refused_for_its_shape(cli, clip, pose_model_dir, tmp_path, shape):
    # (324,) and (108, 3) have more entries along their first axis than the clip has frames: they were
    # refused as "324 frames of keypoints ... from another clip", which sends the user looking for another clip.
    path = tmp_path / "kp.npz"
    keypoints = track().reshape(shape)
    np.savez(path, keypoints=keypoints, width=WIDTH, height=HEIGHT)
    out = tmp_path / "out.mp4"
    line = one_line(cli("run", clip, "--model", pose_model_dir, "--keypoints", path, "-o", out), 1)
    assert f"has shape {keypoints.shape}, expected (frames, K, 3)" in line and "frames of keypoints" not in line
    assert not out.exists()


def test_npz_of_another_shape_is_refused_before_it_is_read(cli, clip, pose_model_dir, tmp_path):
    # A flat array declaring 2**40 numbers in its header, with almost nothing behind it: refused from the header.
    path = declared_npz(tmp_path / "kp.npz", 0, shape=(2 ** 40,))
    line = one_line(cli("run", clip, "--model", pose_model_dir, "--keypoints", path, "-o", tmp_path / "o.mp4"), 1)
    assert f"has shape ({2 ** 40},), expected (frames, K, 3)" in line


def test_huge_canvas_is_quoted_briefly(cli, clip, pose_model_dir, tmp_path):
    path = tmp_path / "pose.json"
    frames = [{"people": [{"pose_keypoints_2d": (pose / [WIDTH, HEIGHT, 1]).reshape(-1).tolist()}],
               "canvas_width": 1e300, "canvas_height": 1e300} for pose in track()]
    path.write_text(json.dumps(frames))
    line = one_line(cli("run", clip, "--model", pose_model_dir, "--keypoints", path, "-o", tmp_path / "o.mp4"), 1)
    assert "frame size" in line and len(line) < 300, line
