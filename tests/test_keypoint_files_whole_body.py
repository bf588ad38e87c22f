"""Keypoint files with face and hand points: vidtrans's .npz, OpenPose JSON and DWPose/ControlNet JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.pose.files import read_keypoints, write_keypoints_npz, write_openpose_json
from vidtrans.pose.keypoints import FACE, LEFT_HAND, NUM_KEYPOINTS, NUM_WHOLE_BODY, RIGHT_HAND

WIDTH, HEIGHT = 640, 480
RIGHT_EYE, LEFT_EYE = slice(FACE.start + 36, FACE.start + 42), slice(FACE.start + 42, FACE.start + 48)


def whole_body_track(frames: int, seed: int = 0) -> np.ndarray:
    """Random whole-body poses in pixels of a WIDTH x HEIGHT frame, some points missing."""
    rng = np.random.default_rng(seed)
    track = np.zeros((frames, NUM_WHOLE_BODY, 3), np.float32)
    track[..., 0] = rng.uniform(2, WIDTH - 2, (frames, NUM_WHOLE_BODY))
    track[..., 1] = rng.uniform(2, HEIGHT - 2, (frames, NUM_WHOLE_BODY))
    track[..., 2] = rng.uniform(0.1, 1.0, (frames, NUM_WHOLE_BODY))
    track[rng.random((frames, NUM_WHOLE_BODY)) < 0.1] = 0.0
    return track


def flat(points) -> list[float]:
    return np.asarray(points, np.float32).reshape(-1).tolist()


def body(x: float, confidence: float = 0.9) -> list[float]:
    """A COCO-18 body whose points lie at x, x + 1, ... on row 50."""
    return flat([(x + i, 50, confidence) for i in range(NUM_KEYPOINTS)])


def test_npz_keeps_whole_body_and_body_only_tracks(tmp_path):
    track = whole_body_track(5)
    for name, written in (("whole.npz", track), ("body.npz", track[:, :NUM_KEYPOINTS])):
        write_keypoints_npz(tmp_path / name, written, width=WIDTH, height=HEIGHT)
        loaded = read_keypoints(tmp_path / name)
        np.testing.assert_array_equal(loaded.keypoints, written)
        assert (loaded.width, loaded.height) == (WIDTH, HEIGHT)


def test_openpose_json_round_trip_of_a_whole_body_track_adds_pupils_and_drops_them_on_read(tmp_path):
    track = whole_body_track(6)
    track[2] = 0.0                                     # nobody in frame 2
    track[0, RIGHT_EYE] = track[0, LEFT_EYE] = 0.8     # both eyes complete in frame 0
    track[0, RIGHT_EYE, 0] = np.arange(6) + 100.0
    track[0, LEFT_EYE.start + 3] = 0.0                 # ... until the left one loses a point
    write_openpose_json(tmp_path / "json", track)

    loaded = read_keypoints(tmp_path / "json")
    assert loaded.keypoints.shape == (6, NUM_WHOLE_BODY, 3)
    np.testing.assert_allclose(loaded.keypoints, track, atol=1e-4)

    person = json.loads((tmp_path / "json" / "frame_000000000000_keypoints.json").read_text())["people"][0]
    assert [len(person[field]) for field in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
                                             "hand_right_keypoints_2d")] == [54, 210, 63, 63]
    pupils = np.reshape(person["face_keypoints_2d"], (70, 3))[68:]
    np.testing.assert_allclose(pupils[0], [102.5, track[0, RIGHT_EYE, 1].mean(), 0.8], rtol=1e-5)
    np.testing.assert_array_equal(pupils[1], 0.0)     # an incomplete eye gives no pupil


def test_openpose_json_of_a_body_only_track_is_unchanged(tmp_path):
    track = whole_body_track(2)[:, :NUM_KEYPOINTS]
    write_openpose_json(tmp_path / "json", track)
    written = json.loads((tmp_path / "json" / "frame_000000000001_keypoints.json").read_text())
    assert written == {"version": 1.3, "people": [{"pose_keypoints_2d": track[1].reshape(-1).tolist()}]}
    assert read_keypoints(tmp_path / "json").keypoints.shape == (2, NUM_KEYPOINTS, 3)


def test_openpose_face_and_hands_land_in_their_slots(tmp_path):
    folder = tmp_path / "openpose"
    folder.mkdir()
    face70 = [(i, 200, 0.7) for i in range(70)]
    left = [(1000 + i, 300, 0.6) for i in range(21)]
    right = [(2000 + i, 300, 0.5) for i in range(21)]
    frames = [
        # OpenPose with face and hands on: the 70-point face, the person's left and right hands.
        [{"pose_keypoints_2d": body(10), "face_keypoints_2d": flat(face70),
          "hand_left_keypoints_2d": flat(left), "hand_right_keypoints_2d": flat(right)}],
        # A 68-point face; nothing found for the hands.
        [{"pose_keypoints_2d": body(10), "face_keypoints_2d": flat(face70[:68]),
          "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}],
        # The person of the frames before is followed, though another body is more confident (the body
        # deciding in the first frame, not face and hands: test_qa19_keypoints).
        [{"pose_keypoints_2d": body(20, 0.9)},
         {"pose_keypoints_2d": body(10, 0.5), "face_keypoints_2d": flat(face70), "hand_left_keypoints_2d": flat(left)}],
    ]
    for i, people in enumerate(frames):
        (folder / f"clip_{i:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))

    kp = read_keypoints(folder).keypoints
    assert kp.shape == (3, NUM_WHOLE_BODY, 3)
    np.testing.assert_allclose(kp[0, FACE], face70[:68])
    np.testing.assert_allclose(kp[0, LEFT_HAND], left)
    np.testing.assert_allclose(kp[0, RIGHT_HAND], right)
    np.testing.assert_allclose(kp[1, FACE], face70[:68])
    assert (kp[1, LEFT_HAND.start:] == 0).all()
    assert kp[2, 0, 0] == 10 and (kp[2, NUM_KEYPOINTS:] > 0).any()


@pytest.mark.parametrize("parts", [
    {"face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []},  # OpenPose, detectors off
    {"face_keypoints_2d": None, "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None},  # ControlNet
    {},
])
def test_files_without_face_or_hand_points_stay_body_only(tmp_path, parts):
    path = tmp_path / "frame_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": body(10), **parts}]}))
    kp = read_keypoints(path).keypoints
    assert kp.shape == (1, NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(kp[0, :, 0], np.arange(NUM_KEYPOINTS) + 10)


def test_dwpose_controlnet_json_is_scaled_from_normalised_coordinates(tmp_path):
    """ControlNet's DWPose files: coordinates in [0, 1] of the canvas, 70 face points (the last two
    the body's eyes), confidence 1 or 0, null for a part not found; newer ones write NaN for missing."""
    face = [(0.4 + i / 1000, 0.2, 1.0) for i in range(68)] + [(0.45, 0.19, 1.0), (0.55, 0.19, 1.0)]
    face[5] = (float("nan"), float("nan"), 0.0)
    left = [(0.7, 0.5 + i / 100, 1.0) for i in range(21)]
    body_points = [(0.5, 0.1 + i / 50, 1.0) for i in range(NUM_KEYPOINTS)]
    body_points[4] = (0.0, 0.0, 0.0)
    frame = {"people": [{"pose_keypoints_2d": flat(body_points), "face_keypoints_2d": flat(face),
                         "hand_left_keypoints_2d": flat(left), "hand_right_keypoints_2d": None}],
             "canvas_width": WIDTH, "canvas_height": HEIGHT}
    nobody = {"people": [], "canvas_width": WIDTH, "canvas_height": HEIGHT}
    path = tmp_path / "dwpose.json"
    path.write_text(json.dumps([frame, nobody]))

    loaded = read_keypoints(path)
    assert (loaded.width, loaded.height) == (WIDTH, HEIGHT)
    kp = loaded.keypoints
    assert kp.shape == (2, NUM_WHOLE_BODY, 3)
    np.testing.assert_allclose(kp[0, FACE.start + 10], [(0.41) * WIDTH, 0.2 * HEIGHT, 1.0], rtol=1e-5)
    np.testing.assert_allclose(kp[0, LEFT_HAND.start + 20], [0.7 * WIDTH, 0.7 * HEIGHT, 1.0], rtol=1e-5)
    np.testing.assert_allclose(kp[0, 1], [0.5 * WIDTH, 0.12 * HEIGHT, 1.0], rtol=1e-5)
    assert (kp[0, FACE.start + 5] == 0).all() and (kp[0, 4] == 0).all()
    assert (kp[0, RIGHT_HAND] == 0).all() and (kp[1] == 0).all()


def test_whole_body_keypoint_lists_are_read_in_our_layout(tmp_path):
    pose = whole_body_track(1)[0] / [WIDTH, HEIGHT, 1]
    nested = [[float(x), float(y)] if c > 0 else None for x, y, c in pose]
    path = tmp_path / "poses.json"
    path.write_text(json.dumps({"frames": [nested, flat(pose)], "width": WIDTH, "height": HEIGHT}))
    kp = read_keypoints(path).keypoints
    present = pose[:, 2] > 0
    expected = pose[present, :2] * [WIDTH, HEIGHT]
    np.testing.assert_allclose(kp[0, present, :2], expected, rtol=1e-5)
    np.testing.assert_allclose(kp[1, present, :2], expected, rtol=1e-5)
    assert (kp[:, ~present] == 0).all()


@pytest.mark.parametrize("field, values, message", [
    ("face_keypoints_2d", [1.0] * 50, r"face_keypoints_2d has 50 numbers; expected 204 or 210 \(68 or 70 points"),
    ("hand_left_keypoints_2d", [1.0] * 60, r"hand_left_keypoints_2d has 60 numbers; expected 63 \(21 points"),
    ("hand_right_keypoints_2d", "wrist", r"hand_right_keypoints_2d must be a list of numbers"),
])
def test_bad_face_or_hand_arrays_are_refused_naming_file_and_field(tmp_path, field, values, message):
    path = tmp_path / "bad_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": body(10), field: values}]}))
    with pytest.raises(VidtransError, match=message) as info:
        read_keypoints(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["npz", "openpose folder"])
def test_coordinates_normalised_to_the_frame_are_refused_where_pixels_are_read(tmp_path, kind):
    track = np.random.default_rng(0).uniform(0.2, 0.8, (3, NUM_KEYPOINTS, 3)).astype(np.float32)
    track[..., 2] = 0.9
    # Another tool's files: vidtrans's writers refuse such tracks.
    if kind == "npz":
        path = tmp_path / "kp.npz"
        np.savez(path, keypoints=track, width=640, height=480)
    else:
        path = tmp_path / "json"
        path.mkdir()
        for i, pose in enumerate(track):
            people = [{"pose_keypoints_2d": pose.ravel().tolist()}]
            (path / f"frame_{i:012d}_keypoints.json").write_text(json.dumps({"people": people}))
    with pytest.raises(VidtransError, match=r"look normalised to the frame \(0-1\); .*multiply x by its width"):
        read_keypoints(path)
    # The same poses in pixels are read as they are.
    pixels = track * [640, 480, 1]
    if kind == "npz":
        write_keypoints_npz(path, pixels, width=640, height=480, overwrite=True)
    else:
        write_openpose_json(path, pixels, overwrite=True)
    np.testing.assert_allclose(read_keypoints(path).keypoints, pixels, rtol=1e-6)
