"""Keypoint files from other tools (QA 17): DWPose/ControlNet JSON (hidden points, canvas size, stray
points), COCO-17 bodies, the messages of bad files, and body-only files given to whole-body models."""

import json

import numpy as np
import pytest

from tests.conftest import one_line, run_cli
from tests.media import make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.pose import PoseStyle, read_keypoints, write_keypoints_npz
from vidtrans.pose.keypoints import KEYPOINT_INDEX, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND
from vidtrans.pose.track import _scaled_like, keypoints_for
from vidtrans.video import VideoReader

WIDTH, HEIGHT, FRAMES = 64, 48, 3


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT)).path


def tiny_pose_model(folder, style: int):
    """A tiny pose model of pose style `style` (1: body only, 2: whole body) saved in `folder`."""
    net = random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0)
    save_checkpoint(folder, net, ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                                           input_kind="pose", pose_style=PoseStyle(version=style).to_dict()))
    return folder


@pytest.fixture(scope="module")
def whole_body_model(tmp_path_factory):
    return tiny_pose_model(tmp_path_factory.mktemp("models") / "wholebody", 2)


def body(scale=(1.0, 1.0)) -> np.ndarray:
    """A standing COCO-18 body in a WIDTH x HEIGHT frame (normalised to 0-1 when `scale` is 1/size)."""
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(20, 44, NUM_KEYPOINTS), rng.uniform(6, 42, NUM_KEYPOINTS),
                              np.full(NUM_KEYPOINTS, 0.9)]).astype(np.float32)
    return points * [*scale, 1]


def dwpose_person(points: np.ndarray, hand=None) -> dict:
    """A person as controlnet_aux's DWPose writes one: normalised points, each [x, y, 1.0]; the face and
    hands it did not see are at -1 (confidence 1 all the same)."""
    hidden = [-1.0, -1.0, 1.0] * 21
    return {"pose_keypoints_2d": [v for p in points for v in (p[0], p[1], 1.0)],
            "face_keypoints_2d": [-1.0, -1.0, 1.0] * 68,
            "hand_left_keypoints_2d": hand if hand is not None else hidden, "hand_right_keypoints_2d": hidden}


def as_dwpose_read(points: np.ndarray) -> np.ndarray:
    """What a DWPose file of `points` reads as, in pixels: every point it writes has confidence 1."""
    return np.column_stack([points[:, :2], np.ones(len(points), np.float32)])


def dwpose_file(path, canvas, people) -> None:
    path.write_text(json.dumps([{"people": people, "canvas_width": canvas[0], "canvas_height": canvas[1]}] * FRAMES))


def read_for_clip(path, clip):
    with VideoReader(clip) as reader:
        return keypoints_for(path, clip, reader).keypoints


def message(call, *args) -> str:
    with pytest.raises(VidtransError) as info:
        call(*args)
    return str(info.value)


# ---------------------------------------------------------------- DWPose's hidden points

def test_dwpose_points_it_did_not_see_are_missing_not_bones_to_the_corner(tmp_path):
    normalised = body((1 / WIDTH, 1 / HEIGHT))
    hand = [v for i in range(21) for v in ((0.5, 0.5, 1.0) if i < 5 else (-1.0, -1.0, 1.0))]
    path = tmp_path / "dw.json"
    dwpose_file(path, (WIDTH, HEIGHT), [dwpose_person(normalised, hand)])
    kp = read_keypoints(path).keypoints
    np.testing.assert_allclose(kp[0, :NUM_KEYPOINTS, :2], body()[:, :2], rtol=1e-5)
    # The face and the right hand were not seen at all, the left hand's five first points were.
    assert (kp[:, NUM_KEYPOINTS:LEFT_HAND.start, 2] == 0).all() and (kp[:, RIGHT_HAND, 2] == 0).all()
    np.testing.assert_allclose(kp[0, LEFT_HAND][:5], [[WIDTH / 2, HEIGHT / 2, 1]] * 5)
    assert (kp[:, LEFT_HAND][:, 5:] == 0).all()


def test_negative_pixels_of_an_openpose_folder_are_a_point_off_the_left_edge(tmp_path):
    pose = body()
    pose[KEYPOINT_INDEX["r_wrist"], 0] = -5.0
    folder = tmp_path / "op"
    folder.mkdir()
    for i in range(FRAMES):
        (folder / f"clip_{i:012d}_keypoints.json").write_text(json.dumps({"people": [
            {"pose_keypoints_2d": pose.reshape(-1).tolist()}]}))
    kp = read_keypoints(folder).keypoints
    np.testing.assert_allclose(kp[0, KEYPOINT_INDEX["r_wrist"]], [-5.0, pose[KEYPOINT_INDEX["r_wrist"], 1], 0.9])


# ---------------------------------------------------------------- the canvas of normalised files

def test_a_normalised_file_on_a_canvas_of_the_videos_shape_is_scaled_to_the_video(tmp_path, clip):
    path = tmp_path / "dw.json"
    # ControlNet's canvas is the clip scaled to 512 on its short side, each side rounded to a multiple
    # of 64: 704x512 for 64x48 (aspect ratio 1.375, against the video's 1.333).
    dwpose_file(path, (704, 512), [dwpose_person(body((1 / WIDTH, 1 / HEIGHT)))])
    np.testing.assert_allclose(read_for_clip(path, clip)[0, :NUM_KEYPOINTS], as_dwpose_read(body()), rtol=1e-5)


def test_a_normalised_file_of_another_shape_is_refused_naming_both_aspect_ratios(tmp_path, clip):
    path = tmp_path / "dw.json"
    dwpose_file(path, (512, 512), [dwpose_person(body((1 / WIDTH, 1 / HEIGHT)))])
    text = message(read_for_clip, path, clip)
    assert "512x512 canvas, of aspect ratio 1.000" in text and f"{WIDTH}x{HEIGHT}, of aspect ratio 1.333" in text
    assert "extract them from this video" in text


def test_a_pixel_file_giving_its_frame_size_must_still_give_the_videos(tmp_path, clip):
    path = tmp_path / "px.json"
    path.write_text(json.dumps({"frames": [body().tolist()] * FRAMES, "width": 2 * WIDTH, "height": 2 * HEIGHT}))
    assert f"keypoints of a {2 * WIDTH}x{2 * HEIGHT} video" in message(read_for_clip, path, clip)


# ---------------------------------------------------------------- normalised or pixels

def test_a_stray_far_point_does_not_turn_a_normalised_file_into_pixels(tmp_path):
    normalised = body((1 / WIDTH, 1 / HEIGHT))
    normalised[KEYPOINT_INDEX["l_ankle"], :2] = [2.5, 0.9]  # the detector's wild guess, 1.5 canvases off it
    path = tmp_path / "dw.json"
    dwpose_file(path, (WIDTH, HEIGHT), [dwpose_person(normalised)])
    kp = read_keypoints(path).keypoints[0, :NUM_KEYPOINTS]
    expected = as_dwpose_read(body())
    expected[KEYPOINT_INDEX["l_ankle"]] = 0.0
    np.testing.assert_allclose(kp, expected, rtol=1e-5)


def test_a_normalised_npz_with_a_stray_point_is_still_recognised_as_normalised(tmp_path):
    track = np.repeat(body((1 / WIDTH, 1 / HEIGHT))[None], FRAMES, axis=0)
    track[0, 0, :2] = [30.0, 20.0]
    path = tmp_path / "kp.npz"
    np.savez(path, keypoints=track, width=WIDTH, height=HEIGHT)  # another tool's file: vidtrans refuses to write it
    assert "look normalised to the frame (0-1)" in message(read_keypoints, path)


# ---------------------------------------------------------------- COCO-17

COCO17 = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
          "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")


def coco17(pose: np.ndarray) -> np.ndarray:
    return pose[[KEYPOINT_INDEX[name] for name in COCO17]]


def expected_coco18(pose: np.ndarray, l_shoulder_confidence: float) -> np.ndarray:
    """`pose` with the neck midway between the shoulders, as sure as the less sure one."""
    out = pose.copy()
    r, l = out[KEYPOINT_INDEX["r_shoulder"]], out[KEYPOINT_INDEX["l_shoulder"]]
    out[KEYPOINT_INDEX["neck"]] = [(r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l_shoulder_confidence)]
    out[KEYPOINT_INDEX["l_shoulder"], 2] = l_shoulder_confidence
    return out


@pytest.mark.parametrize("layout", ["points", "flat", "openpose"])
def test_coco17_bodies_are_read_as_coco18_with_the_neck_between_the_shoulders(tmp_path, layout):
    pose = body()
    points = coco17(pose)
    points[COCO17.index("l_shoulder"), 2] = 0.6
    frames = {"points": [points.tolist()] * FRAMES, "flat": [points.reshape(-1).tolist()] * FRAMES,
              "openpose": [{"people": [{"pose_keypoints_2d": points.reshape(-1).tolist()}]}] * FRAMES}[layout]
    path = tmp_path / "kp.json"
    path.write_text(json.dumps(frames))
    kp = read_keypoints(path).keypoints
    assert kp.shape == (FRAMES, NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(kp[0], expected_coco18(pose, 0.6), rtol=1e-6)


def test_a_coco17_body_without_both_shoulders_has_no_neck(tmp_path):
    points = coco17(body())
    points[COCO17.index("r_shoulder")] = 0.0
    path = tmp_path / "kp.json"
    path.write_text(json.dumps([points.tolist()] * FRAMES))
    kp = read_keypoints(path).keypoints
    assert (kp[:, KEYPOINT_INDEX["neck"]] == 0).all() and (kp[:, KEYPOINT_INDEX["nose"], 2] > 0).all()


def test_a_coco17_point_at_0_0_is_not_seen_whatever_its_confidence(tmp_path):
    """YOLO-pose zeroes the points it is unsure of but keeps their confidence: (0, 0, 0.3) was drawn
    as a limb to the corner."""
    points = coco17(body())
    points[COCO17.index("l_wrist")] = [0.0, 0.0, 0.3]
    path = tmp_path / "kp.json"
    path.write_text(json.dumps([points.tolist()] * FRAMES))
    kp = read_keypoints(path).keypoints
    assert (kp[:, KEYPOINT_INDEX["l_wrist"], 2] == 0).all() and (kp[:, KEYPOINT_INDEX["r_wrist"], 2] > 0).all()


@pytest.mark.parametrize("video, canvas, same", [
    ((1280, 720), (896, 512), True), ((640, 480), (704, 512), True), ((720, 1280), (512, 896), True),
    ((1920, 1080), (910, 512), True), ((64, 48), (64, 48), True),
    ((1280, 720), (512, 512), False), ((640, 480), (896, 512), False), ((720, 1280), (896, 512), False),
])
def test_controlnets_canvases_are_the_video_scaled_with_sides_rounded_to_64(video, canvas, same):
    """ControlNet rounds each side of its detector's picture to a multiple of 64: 1280x720 gives
    896x512, whose shape is 1.6 % off the video's (such files were refused)."""
    assert _scaled_like(*canvas, *video) is same


# ---------------------------------------------------------------- messages

def test_a_npy_array_named_npz_says_so_and_how_to_save_an_npz(tmp_path):
    path = tmp_path / "kp.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((FRAMES, NUM_KEYPOINTS, 3), np.float32))
    text = message(read_keypoints, path)
    assert "a .npy array (np.save), not an .npz archive" in text and "np.savez(" in text
    assert "context manager" not in text


def test_a_person_that_is_not_an_object_is_named_as_such(tmp_path):
    path = tmp_path / "kp.json"
    path.write_text('{"people": [null]}')
    assert "a person in 'people' is null; each person must be an object" in message(read_keypoints, path)


def test_one_frame_of_keypoints_is_singular(tmp_path, clip):
    path = tmp_path / "kp.npz"
    write_keypoints_npz(path, body()[None], WIDTH, HEIGHT)
    assert "1 frame of keypoints (frame 0 of the clip)" in message(read_for_clip, path, clip)


@pytest.mark.parametrize("value, problem", [(float("nan"), "is (nan"), (1000.0, "far outside the 64x48 frame")])
def test_bad_values_in_an_openpose_folder_name_the_file(tmp_path, clip, value, problem):
    folder = tmp_path / "op"
    folder.mkdir()
    for i in range(FRAMES):
        pose = body()
        if i == 1:
            pose[0, 0] = value
        (folder / f"clip_{i:012d}_keypoints.json").write_text(json.dumps({"people": [
            {"pose_keypoints_2d": [None if np.isnan(v) else float(v) for v in pose.reshape(-1)]}]}).replace(
            "null", "NaN"))
    text = message(read_for_clip, folder, clip)
    assert "keypoint 0 of clip_000000000001_keypoints.json" in text and problem in text


# ---------------------------------------------------------------- the CLI

def test_run_scales_a_dwpose_file_to_the_video(tmp_path, clip, whole_body_model):
    dw = tmp_path / "dw.json"
    dwpose_file(dw, (704, 512), [dwpose_person(body((1 / WIDTH, 1 / HEIGHT)))])
    out = tmp_path / "out.mp4"
    result = run_cli("run", clip, "-o", out, "--model", whole_body_model, "--keypoints", dw)
    assert result.returncode == 0 and out.exists(), result.stderr
    assert "warning" not in result.stderr  # a whole-body file (its face and hands unseen) is no body-only one


def test_run_warns_once_that_a_body_only_file_leaves_out_face_and_hands(tmp_path, clip, whole_body_model):
    npz = tmp_path / "body.npz"
    write_keypoints_npz(npz, np.repeat(body()[None], FRAMES, axis=0), WIDTH, HEIGHT)
    result = run_cli("run", clip, "-o", tmp_path / "out2.mp4", "--model", whole_body_model, "--keypoints", npz)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning:")]
    assert len(warnings) == 1 and f"{npz} holds the body only" in warnings[0]
    assert "draws the face and hands too" in warnings[0] and "--whole-body --keypoints" in warnings[0]


def test_run_refuses_a_dwpose_file_of_another_shape_in_one_line(tmp_path, clip, whole_body_model):
    dw = tmp_path / "dw.json"
    dwpose_file(dw, (512, 512), [dwpose_person(body((1 / WIDTH, 1 / HEIGHT)))])
    out = tmp_path / "out.mp4"
    line = one_line(run_cli("run", clip, "-o", out, "--model", whole_body_model, "--keypoints", dw), 1)
    assert "aspect ratio 1.000" in line and "aspect ratio 1.333" in line and not out.exists()
