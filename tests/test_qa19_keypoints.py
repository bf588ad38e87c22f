"""Keypoint files from other tools (QA 19): pixel files of another video, the person followed in
multi-person files, pixel coordinates on a ControlNet canvas, OpenPose folders numbered from
--frame_first N, and OpenPose 1.0's field names."""

import json

import numpy as np
import pytest

from tests.conftest import one_line, run_cli
from tests.media import make_clip
from tests.test_qa17_keypoints import tiny_pose_model
from vidtrans.errors import VidtransError
from vidtrans.pose import read_keypoints
from vidtrans.pose.keypoints import NUM_KEYPOINTS
from vidtrans.pose.track import keypoints_for
from vidtrans.video import VideoReader

WIDTH, HEIGHT, FRAMES, FPS = 64, 48, 12, 25


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT), fps=FPS,
                     audio=False).path


@pytest.fixture(scope="module")
def body_model(tmp_path_factory):
    return tiny_pose_model(tmp_path_factory.mktemp("models") / "body", 1)


def body(x: float = 0.0, y: float = 0.0, confidence: float = 0.9, seed: int = 0) -> np.ndarray:
    """A standing COCO-18 body in a WIDTH x HEIGHT frame, moved by x, y."""
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(20, 44, NUM_KEYPOINTS) + x, rng.uniform(6, 42, NUM_KEYPOINTS) + y,
                              np.full(NUM_KEYPOINTS, confidence)]).astype(np.float32)
    return points


def person(pose: np.ndarray, field: str = "pose_keypoints_2d") -> dict:
    return {field: [float(v) for v in pose.reshape(-1)]}


def openpose_folder(folder, frames, first: int = 0, prefix: str = "clip"):
    """A folder of OpenPose files, one per frame from number `first`; each frame a list of people."""
    folder.mkdir()
    for i, people in enumerate(frames):
        (folder / f"{prefix}_{first + i:012d}_keypoints.json").write_text(json.dumps({"version": 1.3,
                                                                                      "people": people}))
    return folder


def read_for_clip(path, clip, start=None):
    with VideoReader(clip, start=start) as reader:
        return keypoints_for(path, clip, reader)


def message(call, *args) -> str:
    with pytest.raises(VidtransError) as info:
        call(*args)
    return str(info.value)


# ---------------------------------------------------------------- pixels of another video

def test_an_openpose_folder_of_a_larger_video_is_refused_naming_the_cause_and_the_fix(tmp_path, clip):
    # The same dancer in a video of twice the size: most points land past the clip's right and bottom edges.
    folder = openpose_folder(tmp_path / "op", [[person(body() * [2, 2, 1])]] * FRAMES)
    text = message(read_for_clip, folder, clip)
    assert f"of its visible keypoints lie outside the {WIDTH}x{HEIGHT} frame" in text
    assert "keypoints of a larger or another video" in text
    assert "extract them from this video with vidtrans pose" in text


def test_a_dancer_leaving_the_frame_for_some_frames_is_kept(tmp_path, clip):
    # Walking out on the right over the last frames (a third of them), a wrist just off the left edge throughout.
    frames = []
    for i in range(FRAMES):
        pose = body(x=max(0, i - 7) * 8.0)
        pose[4, 0] = -3.0
        frames.append([person(pose)])
    folder = openpose_folder(tmp_path / "op", frames)
    assert read_for_clip(folder, clip).keypoints.shape == (FRAMES, NUM_KEYPOINTS, 3)
    kp = read_keypoints(folder).keypoints  # as the file holds them (a run uses them smoothed)
    outside = ((kp[..., 0] < -0.5) | (kp[..., 0] > WIDTH - 0.5)).mean()
    assert 0.1 < outside < 0.25


def test_run_refuses_keypoints_of_a_larger_video_in_one_line(tmp_path, clip, body_model):
    folder = openpose_folder(tmp_path / "op", [[person(body() * [2, 2, 1])]] * FRAMES)
    out = tmp_path / "out.mp4"
    line = one_line(run_cli("run", clip, "-o", out, "--model", body_model, "--keypoints", folder), 1)
    assert "outside the 64x48 frame" in line and "vidtrans pose" in line and not out.exists()


# ---------------------------------------------------------------- several people

def test_an_openpose_folder_follows_one_person_however_the_others_score(tmp_path):
    dancer, bystander = body(x=-15, confidence=0.8), body(x=15, seed=1, confidence=0.5)
    frames = []
    for i in range(FRAMES):
        # The bystander steps into the light (more confident than the dancer) and comes first in every other frame.
        other = body(x=15, seed=1, confidence=0.95) if i >= 4 else bystander
        moved = dancer + [i * 0.5, 0, 0]
        frames.append([person(other), person(moved)] if i % 2 else [person(moved), person(other)])
    kp = read_keypoints(openpose_folder(tmp_path / "op", frames)).keypoints
    for i in range(FRAMES):
        np.testing.assert_allclose(kp[i], dancer + [i * 0.5, 0, 0], rtol=1e-5)


def test_a_dwpose_file_follows_the_first_person_though_every_point_is_sure(tmp_path):
    """DWPose gives every point confidence 1: the order of its list decided, and changed between frames."""
    left, right = body(x=-15) / [WIDTH, HEIGHT, 1], body(x=15, seed=1) / [WIDTH, HEIGHT, 1]
    frames = [{"people": [person(left), person(right)] if i % 3 == 0 else [person(right), person(left)],
               "canvas_width": WIDTH, "canvas_height": HEIGHT} for i in range(FRAMES)]
    path = tmp_path / "dw.json"
    path.write_text(json.dumps(frames))
    kp = read_keypoints(path).keypoints
    np.testing.assert_allclose(kp[:, :, 0], np.repeat(body(x=-15)[None, :, 0], FRAMES, axis=0), rtol=1e-5)


def test_the_person_followed_is_the_one_nearest_after_frames_with_nobody_or_a_part_hidden(tmp_path):
    dancer, bystander = body(x=-15, confidence=0.9), body(x=15, seed=1, confidence=1.0)
    hidden = dancer.copy()
    hidden[:9] = 0.0  # the dancer's upper body hidden ...
    bystander_upper = bystander.copy()
    bystander_upper[9:] = 0.0  # ... and the bystander's lower body: the dancer is the one whose points match
    upper = dancer.copy()
    upper[9:] = 0.0
    frames = [[person(dancer), person(bystander * [1, 1, 0.3])], [], [person(bystander), person(dancer)],
              [person(bystander_upper), person(hidden)], [person(bystander_upper), person(upper)]]
    kp = read_keypoints(openpose_folder(tmp_path / "op", frames)).keypoints
    np.testing.assert_allclose(kp[[0, 2]], [dancer, dancer], rtol=1e-5)
    assert (kp[1] == 0).all()
    np.testing.assert_allclose(kp[3], hidden, rtol=1e-5)
    # Frame 4 shares no point with frame 3's pick (its upper body only, after the lower): the boxes decide.
    np.testing.assert_allclose(kp[4], upper, rtol=1e-5)


# ---------------------------------------------------------------- pixels on a canvas

def test_pixels_on_a_canvas_of_the_videos_shape_are_scaled_to_the_video(tmp_path, clip):
    """openpose-editor's pixels on its 683x512 canvas of a 480x360 clip were refused, though the same
    points normalised were scaled."""
    canvas = (85, 64)  # 64x48 scaled to 64 on its short side, as a 480x360 clip to 683x512
    scale = [canvas[0] / WIDTH, canvas[1] / HEIGHT, 1]
    frames = [{"people": [person(body() * scale)], "canvas_width": canvas[0], "canvas_height": canvas[1]}] * FRAMES
    path = tmp_path / "editor.json"
    path.write_text(json.dumps(frames))
    np.testing.assert_allclose(read_for_clip(path, clip).keypoints[0], body(), rtol=1e-4)


def test_pixels_on_a_canvas_of_another_shape_are_refused_naming_both_aspect_ratios(tmp_path, clip):
    frames = [{"people": [person(body())], "canvas_width": 512, "canvas_height": 512}] * FRAMES
    path = tmp_path / "editor.json"
    path.write_text(json.dumps(frames))
    text = message(read_for_clip, path, clip)
    assert "in pixels of a 512x512 canvas, of aspect ratio 1.000" in text and "aspect ratio 1.333" in text


# ---------------------------------------------------------------- OpenPose folders from --frame_first N

def test_a_folder_numbered_from_frame_first_n_starts_at_frame_n(tmp_path, clip):
    first = 4
    frames = [[person(body(x=i))] for i in range(first, FRAMES)]
    folder = openpose_folder(tmp_path / "op", frames, first=first)
    assert read_keypoints(folder).first_frame == first
    track = read_for_clip(folder, clip, start=first / FPS)
    assert track.first_frame == first
    np.testing.assert_allclose(track.keypoints, smoothed(folder), rtol=1e-5)
    np.testing.assert_allclose(read_keypoints(folder).keypoints[:, 0, 0],
                               [body(x=i)[0, 0] for i in range(first, FRAMES)], rtol=1e-5)
    # The whole clip needs poses for frames 0 to 3 too, which the folder lacks.
    assert "frames 4 to 11 of the clip" in message(read_for_clip, folder, clip)


@pytest.mark.parametrize("first", [0, 1])
def test_folders_numbered_from_0_or_1_start_at_the_clips_first_frame(tmp_path, clip, first):
    folder = openpose_folder(tmp_path / "op", [[person(body(x=i))] for i in range(FRAMES)], first=first)
    track = read_for_clip(folder, clip)
    assert track.first_frame == 0
    np.testing.assert_allclose(track.keypoints, smoothed(folder), rtol=1e-5)
    np.testing.assert_allclose(read_keypoints(folder).keypoints[:, 0, 0], [body(x=i)[0, 0] for i in range(FRAMES)],
                               rtol=1e-5)


def smoothed(path) -> np.ndarray:
    """A file's poses as a run uses them: filtered over the whole file."""
    from vidtrans.pose.smoothing import smooth_track

    return smooth_track(read_keypoints(path).keypoints)


# ---------------------------------------------------------------- OpenPose 1.0 and 1.1

def test_openpose_1_0_field_names_are_read(tmp_path):
    face = np.column_stack([np.linspace(25, 40, 70), np.full(70, 10.0), np.full(70, 0.8)])
    frames = [[{**person(body(), "pose_keypoints"), "face_keypoints": face.reshape(-1).tolist(),
                "hand_left_keypoints": [], "hand_right_keypoints": []}]] * 2
    kp = read_keypoints(openpose_folder(tmp_path / "op", frames)).keypoints
    np.testing.assert_allclose(kp[0, :NUM_KEYPOINTS], body(), rtol=1e-5)
    np.testing.assert_allclose(kp[0, NUM_KEYPOINTS:NUM_KEYPOINTS + 68], face[:68], rtol=1e-5)


def test_a_person_without_pose_keypoints_names_the_field(tmp_path):
    path = tmp_path / "kp.json"
    path.write_text(json.dumps({"people": [{"face_keypoints_2d": []}]}))
    text = message(read_keypoints, path)
    assert "a person has no pose_keypoints_2d (nor OpenPose 1.0's pose_keypoints)" in text
    assert "only face_keypoints_2d" in text


def test_in_the_first_frame_the_most_confident_body_is_followed_not_the_most_face_and_hands(tmp_path):
    face = np.column_stack([np.linspace(25, 40, 70), np.full(70, 10.0), np.full(70, 0.9)]).reshape(-1).tolist()
    bystander = {**person(body(x=15, seed=1, confidence=0.5)), "face_keypoints_2d": face}
    frames = [[bystander, person(body(x=-15))]] * 3
    kp = read_keypoints(openpose_folder(tmp_path / "op", frames)).keypoints
    assert kp.shape == (3, 128, 3)
    np.testing.assert_allclose(kp[:, :NUM_KEYPOINTS], [body(x=-15)] * 3, rtol=1e-5)
    assert (kp[:, NUM_KEYPOINTS:] == 0).all()


def test_a_fifo_given_as_keypoints_is_named_for_what_it_is(tmp_path):
    import os

    fifo = tmp_path / "kp.json"
    os.mkfifo(fifo)
    with pytest.raises(VidtransError) as caught:  # never opened: reading it would wait for a writer
        read_keypoints(fifo)
    assert str(caught.value) == (f"{fifo}: not a regular file (a FIFO); give a keypoint file (.npz, .json) or a "
                                 "folder of OpenPose *_keypoints.json")
