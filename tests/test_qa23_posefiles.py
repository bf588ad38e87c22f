"""Keypoint files (QA 23): a file mixing frames normalised to the canvas (0-1) with frames in pixels
is refused naming a frame of each kind, rather than drawing one kind as dots in the corner or
dropping its people; frame numbers past any video's (an OpenPose file name of 200 digits, an NPZ's
first_frame of 1e300) are refused in a few digits, not echoed whole, and cannot be written."""

import io
import json
import re
import zipfile

import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip
from vidtrans.errors import VidtransError
from vidtrans.pose import flip_keypoints, read_keypoints, write_keypoints_npz, write_openpose_json
from vidtrans.pose.keypoints import NUM_KEYPOINTS, NUM_WHOLE_BODY

WIDTH, HEIGHT, FRAMES = 64, 48, 12
HUGE = 10 ** 199  # a frame number of 200 digits


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT),
                     audio=False).path


def body(seed: int = 0) -> np.ndarray:
    """A COCO-18 body in pixels of a WIDTH x HEIGHT frame."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(20, 44, NUM_KEYPOINTS), rng.uniform(6, 42, NUM_KEYPOINTS),
                            np.full(NUM_KEYPOINTS, 0.9)]).astype(np.float32)


def normalised(pose: np.ndarray) -> np.ndarray:
    return pose / np.array([WIDTH, HEIGHT, 1], np.float32)


def canvas_file(path, poses) -> None:
    """A ControlNet-style JSON: one OpenPose frame per pose, on a canvas of the video's size."""
    path.write_text(json.dumps([{"people": [{"pose_keypoints_2d": pose.reshape(-1).tolist()}] if pose is not None
                                 else [], "canvas_width": WIDTH, "canvas_height": HEIGHT} for pose in poses]))


def openpose_folder(folder, poses, numbers) -> None:
    folder.mkdir()
    for number, pose in zip(numbers, poses):
        (folder / f"clip_{number}_keypoints.json").write_text(
            json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": pose.reshape(-1).tolist()}]}))


def refusal(cli, clip, model, keypoints, tmp_path) -> str:
    out = tmp_path / "out.mp4"
    line = one_line(cli("run", clip, "--model", model, "--keypoints", keypoints, "-o", out), 1)
    assert not out.exists()
    return line


def message(call, *args, **kwargs) -> str:
    with pytest.raises(VidtransError) as info:
        call(*args, **kwargs)
    text = str(info.value)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------- normalised and pixel frames in one file

@pytest.mark.parametrize("normalised_frames", [range(1, FRAMES), range(FRAMES // 2), [7]])
def test_a_json_mixing_normalised_and_pixel_frames_is_refused_naming_one_of_each(cli, clip, pose_model_dir, tmp_path,
                                                                                normalised_frames):
    # Mostly normalised: the pixel frame's points, beyond 2, were dropped as off the canvas (nobody there);
    # mostly pixels: the normalised frames were drawn as a dot in the frame's corner. Both exit 0.
    path = tmp_path / "pose.json"
    canvas_file(path, [normalised(body(i)) if i in normalised_frames else body(i) for i in range(FRAMES)])
    line = refusal(cli, clip, pose_model_dir, path, tmp_path)
    first_pixels = min(set(range(FRAMES)) - set(normalised_frames))
    assert f"frame {min(normalised_frames)}" in line and f"frame {first_pixels}" in line, line
    assert "normalised" in line and "pixels" in line, line


def test_an_openpose_folder_with_a_normalised_file_among_pixel_ones_is_refused_naming_it(tmp_path):
    folder = tmp_path / "op"
    openpose_folder(folder, [normalised(body(i)) if i == 3 else body(i) for i in range(FRAMES)],
                    [f"{i:012d}" for i in range(FRAMES)])
    text = message(read_keypoints, folder)
    assert "clip_000000000003_keypoints.json" in text and "clip_000000000000_keypoints.json" in text, text


def test_an_npz_with_normalised_frames_among_pixel_ones_is_refused(tmp_path):
    path = tmp_path / "kp.npz"
    track = np.stack([normalised(body(i)) if i >= 8 else body(i) for i in range(FRAMES)])
    np.savez(path, keypoints=track, width=WIDTH, height=HEIGHT)
    text = message(read_keypoints, path)
    assert "frame 8" in text and "frame 0" in text, text


def test_normalised_files_with_frames_of_nobody_or_unseen_parts_are_still_read(tmp_path):
    # DWPose writes every point it did not see at (-1, -1) with confidence 1: a frame of nobody is no pixel frame.
    path = tmp_path / "pose.json"
    unseen = [-1.0, -1.0, 1.0]
    frames = []
    for i in range(FRAMES):
        pose = normalised(body(i)) if i % 3 else np.tile(np.float32(unseen), (NUM_KEYPOINTS, 1))
        frames.append({"people": [{"pose_keypoints_2d": pose.reshape(-1).tolist(), "face_keypoints_2d": unseen * 68,
                                   "hand_left_keypoints_2d": unseen * 21, "hand_right_keypoints_2d": unseen * 21}],
                       "canvas_width": WIDTH, "canvas_height": HEIGHT})
    path.write_text(json.dumps(frames))
    track = read_keypoints(path)
    assert track.normalised and track.keypoints.shape == (FRAMES, NUM_WHOLE_BODY, 3)
    assert not (track.keypoints[::3, ..., 2] > 0).any() and (track.keypoints[1::3, :NUM_KEYPOINTS, 2] > 0).all()


def test_a_pixel_file_with_a_few_points_near_the_corner_is_still_read(tmp_path):
    # A detector's stray points at (0, 0), or a frame showing one or two points near the corner, are no
    # normalised frame: only a body's worth of points within 2 of the corner is.
    track = np.stack([body(i) for i in range(FRAMES)])
    track[2, :3] = [[0, 0, 0.1], [0, 0, 0.2], [0, 0, 0.1]]
    track[5] = 0
    track[5, :2] = [[1.5, 1.0, 0.9], [0.5, 1.5, 0.9]]
    path = tmp_path / "kp.npz"
    np.savez(path, keypoints=track, width=WIDTH, height=HEIGHT)
    np.testing.assert_array_equal(read_keypoints(path).keypoints, track)


# ---------------------------------------------------------------- frame numbers past any video's

def no_long_numbers(line: str) -> str:
    assert not re.search(r"\d{61}", line) and len(line) < 400, line
    return line


@pytest.mark.parametrize("offsets", [(0, 1, 2), (0, 2), (0, 0)], ids=["consecutive", "gap", "twice"])
def test_an_openpose_folder_numbered_past_any_video_is_refused_in_a_few_digits(cli, clip, pose_model_dir, tmp_path,
                                                                              offsets):
    # Each case echoed the 200 digits whole, some twice or three times ("frames N to M of the clip").
    numbers = [str(HUGE + offset) for offset in offsets]
    if len(set(numbers)) < len(numbers):
        numbers[1] = "0" + numbers[1]  # the same frame, padded otherwise
    openpose_folder(tmp_path / "op", [body(i) for i in range(len(numbers))], numbers)
    line = no_long_numbers(refusal(cli, clip, pose_model_dir, tmp_path / "op", tmp_path))
    assert "frame" in line and "..." in line, line


def test_an_openpose_folder_padded_to_200_digits_is_named_in_a_few_of_them(tmp_path):
    folder = tmp_path / "op"
    openpose_folder(folder, [body(i) for i in range(3)], [f"{i:0200d}" for i in (0, 1, 3)])
    text = no_long_numbers(message(read_keypoints, folder))
    assert "without frame 2 " in text, text


def test_an_npz_first_frame_past_any_video_is_quoted_briefly(cli, clip, pose_model_dir, tmp_path):
    path = tmp_path / "kp.npz"
    np.savez(path, keypoints=np.stack([body(i) for i in range(FRAMES)]), width=WIDTH, height=HEIGHT,
             first_frame=np.float64(1e300))
    line = no_long_numbers(refusal(cli, clip, pose_model_dir, path, tmp_path))
    assert "first_frame is 1e+300" in line, line


@pytest.mark.parametrize("first_frame", [HUGE, np.uint64(2 ** 64 - 1)], ids=["200 digits", "uint64 max"])
def test_a_first_frame_no_npz_can_hold_is_refused_when_writing(tmp_path, first_frame):
    # 10**199 raised OverflowError; 2**64 - 1 was written as -1, a file its own reader refused.
    path = tmp_path / "kp.npz"
    no_long_numbers(message(write_keypoints_npz, path, np.stack([body()]), WIDTH, HEIGHT, first_frame=first_frame))
    assert not path.exists()


def test_an_npz_size_of_long_text_is_quoted_briefly(tmp_path):
    path = tmp_path / "kp.npz"
    np.savez(path, keypoints=np.stack([body()]), width="6" * 500, height=HEIGHT)
    assert "width holds values of 2,000 bytes" in no_long_numbers(message(read_keypoints, path))


# ---------------------------------------------------------------- [0, 0] in lists without confidences

def test_points_at_0_0_of_a_list_without_confidences_are_missing_not_bones_to_the_corner(tmp_path):
    # [x, y] lists have no confidence to say a point is missing: [0, 0] is COCO's mark for it, as in
    # COCO-17 lists, and was drawn as a point in the frame's corner with bones to it.
    poses = [body(i) for i in range(FRAMES)]
    frames = [[[0, 0] if j >= 14 else pose[j, :2].tolist() for j in range(NUM_KEYPOINTS)] for pose in poses]
    path = tmp_path / "pose.json"
    path.write_text(json.dumps(frames))
    track = read_keypoints(path).keypoints
    assert not (track[:, 14:, 2] > 0).any() and (track[:, :14, 2] == 1).all()
    np.testing.assert_allclose(track[:, :14, :2], np.stack(poses)[:, :14, :2])


def test_a_whole_body_pixel_list_with_unseen_parts_at_0_0_is_read_as_pixels(tmp_path):
    # Face and hands unseen, and six body points: over 90 % of the "visible" points lay at the corner, so
    # the file was taken for normalised coordinates and refused for giving no frame size.
    frames = [[[0, 0] if j >= 12 else point[:2].tolist() for j, point in enumerate(body(i))] + [[0, 0]] * 110
              for i in range(FRAMES)]
    path = tmp_path / "pose.json"
    path.write_text(json.dumps(frames))
    track = read_keypoints(path)
    assert not track.normalised and track.keypoints.shape == (FRAMES, NUM_WHOLE_BODY, 3)
    assert (track.keypoints[:, :12, 2] == 1).all() and not (track.keypoints[:, 12:, 2] > 0).any()


# ---------------------------------------------------------------- writers write only what their reader reads

@pytest.mark.parametrize("prefix", [".clip", "take/1"])
def test_an_openpose_prefix_the_reader_would_not_find_is_refused(tmp_path, prefix):
    # ".clip" wrote hidden files, which read_keypoints skips ("no OpenPose files in this folder"); "take/1"
    # failed with "check the folder is writable".
    folder = tmp_path / "op"
    text = message(write_openpose_json, folder, np.stack([body()]), prefix=prefix)
    assert "prefix" in text and repr(prefix) in text, text
    assert not folder.exists() or not any(folder.rglob("*"))


@pytest.mark.parametrize("write", ["npz", "openpose"])
@pytest.mark.parametrize("bad", [(np.nan, 10.0, 0.9), (10.0, np.inf, 0.9), (10.0, 10.0, 7.0)], ids=["nan", "inf", "c7"])
def test_keypoints_the_reader_refuses_are_not_written(tmp_path, write, bad):
    track = np.stack([body(i) for i in range(3)])
    track[1, 4] = bad
    path = tmp_path / ("kp.npz" if write == "npz" else "op")
    call = (lambda: write_keypoints_npz(path, track, WIDTH, HEIGHT)) if write == "npz" else \
        (lambda: write_openpose_json(path, track))
    assert "keypoint 4 of frame 1" in message(call)
    assert not path.exists() or not any(path.iterdir())


def test_a_point_far_outside_the_frame_given_is_not_written(tmp_path):
    track = np.stack([body()])
    track[0, 2, :2] = [10 * WIDTH, 10]
    path = tmp_path / "kp.npz"
    assert f"far outside the {WIDTH}x{HEIGHT} frame" in message(write_keypoints_npz, path, track, WIDTH, HEIGHT)
    assert not path.exists()


def test_missing_points_are_written_as_zeros_whatever_their_coordinates(tmp_path):
    track = np.stack([body(i) for i in range(3)])
    track[1, 4] = [np.nan, np.nan, 0]
    path = tmp_path / "kp.npz"
    write_keypoints_npz(path, track, WIDTH, HEIGHT)
    expected = track.copy()
    expected[1, 4] = 0
    np.testing.assert_array_equal(read_keypoints(path).keypoints, expected)


# ---------------------------------------------------------------- NPZ members that are not what they say

def npz(path, members: dict[str, bytes]):
    """An NPZ of these raw members (name in the archive: bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def npy(value=None, *, declared: tuple[int, ...] | None = None, descr: str = "<f8") -> bytes:
    """An .npy file of `value`, or one whose header declares an array of shape `declared` but holds 64 bytes."""
    buffer = io.BytesIO()
    if declared is None:
        np.save(buffer, value)
        return buffer.getvalue()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": declared})
    return buffer.getvalue() + bytes(64)


@pytest.mark.parametrize("name", ["width", "height", "first_frame", "smoothed"])
@pytest.mark.parametrize("declared, descr", [((2 ** 27,), "<f8"), ((2 ** 40,), "<f8")], ids=["1 GiB", "8 TiB"])
def test_an_npz_number_declaring_gigabytes_is_refused_before_it_is_read(tmp_path, name, declared, descr):
    # A member of 1 MB inflating to a gigabyte of zeros took 10 s and 1.3 GB of memory to be refused: 20 MB would
    # have exhausted this machine's memory. Only the keypoints' header was read first.
    members = {"keypoints.npy": npy(np.stack([body()])), "width.npy": npy(np.int64(WIDTH)),
               "height.npy": npy(np.int64(HEIGHT))}
    members[f"{name}.npy"] = npy(declared=declared, descr=descr)
    text = message(read_keypoints, npz(tmp_path / "kp.npz", members))
    assert f"{name} is an array of shape {declared}" in text, text


@pytest.mark.parametrize("name", ["keypoints", "width"])
def test_an_npz_member_that_is_no_npy_array_is_refused_in_one_line(cli, clip, pose_model_dir, tmp_path, name):
    # np.load hands over the raw bytes of a member named without ".npy": AttributeError, a traceback (from
    # `run` for the width; for the keypoints from read_keypoints, which `run` gave the clip's length).
    members = {"keypoints.npy": npy(np.stack([body(i) for i in range(FRAMES)])), "width.npy": npy(np.int64(WIDTH)),
               "height.npy": npy(np.int64(HEIGHT))}
    del members[f"{name}.npy"]
    members[name] = b"not an array"
    path = npz(tmp_path / "kp.npz", members)
    assert "not a vidtrans keypoint .npz" in message(read_keypoints, path)
    assert "not a vidtrans keypoint .npz" in refusal(cli, clip, pose_model_dir, path, tmp_path)


@pytest.mark.parametrize("path", ["", b"kp.npz", 5, None])
def test_read_keypoints_refuses_what_is_no_path_in_one_line(path):
    # "" read the current folder as OpenPose files; bytes, numbers and None raised TypeError.
    assert "must be a keypoint file" in message(read_keypoints, path)


def test_writing_into_a_folder_of_a_200_digit_frame_names_it_briefly(tmp_path):
    folder = tmp_path / "op"
    openpose_folder(folder, [body()], [str(HUGE)])
    no_long_numbers(message(write_openpose_json, folder, np.stack([body()])))


@pytest.mark.parametrize("keypoints, width", [(np.zeros((3, 5, 3)), WIDTH), ([[1.0, 2.0]], WIDTH),
                                              (np.zeros((3, NUM_KEYPOINTS, 3)), "64"),
                                              (np.zeros((3, NUM_KEYPOINTS, 3)), None)])
def test_flip_keypoints_refuses_what_is_no_pose_or_width_in_one_line(keypoints, width):
    # IndexError and TypeError from the public vidtrans.pose.flip_keypoints.
    message(flip_keypoints, keypoints, width)


def test_an_npz_with_an_encrypted_member_is_refused_in_one_line(cli, clip, pose_model_dir, tmp_path):
    # zipfile raises RuntimeError ("password required"), which escaped as a traceback.
    path = npz(tmp_path / "kp.npz", {"keypoints.npy": npy(np.stack([body(i) for i in range(FRAMES)])),
                                     "width.npy": npy(np.int64(WIDTH)), "height.npy": npy(np.int64(HEIGHT))})
    data = bytearray(path.read_bytes())
    for signature, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the first member's local and central headers
        data[data.find(signature) + flags] |= 1  # "encrypted"
    path.write_bytes(bytes(data))
    assert "encrypted" in refusal(cli, clip, pose_model_dir, path, tmp_path)


def test_the_writers_refuse_tracks_their_reader_refuses_for_their_kind(tmp_path):
    """A track normalised to the frame (0-1), or mixing such frames with pixel ones, was written, then
    refused by read_keypoints: the writers now refuse it first, naming what to do."""
    rng = np.random.default_rng(0)
    normalised = np.concatenate([rng.uniform(0.2, 0.8, (4, 18, 2)), np.ones((4, 18, 1))], axis=-1).astype(np.float32)
    pixels = normalised * np.array([640, 480, 1], np.float32)
    mixed = np.concatenate([pixels[:2], normalised[2:]])
    for track in (normalised, mixed):
        with pytest.raises(VidtransError, match="normalised to the frame"):
            write_keypoints_npz(tmp_path / "k.npz", track, 640, 480)
        with pytest.raises(VidtransError, match="normalised to the frame"):
            write_openpose_json(tmp_path / "json", track)
    assert not (tmp_path / "k.npz").exists()
    write_keypoints_npz(tmp_path / "k.npz", pixels, 640, 480)
    assert np.allclose(read_keypoints(tmp_path / "k.npz").keypoints, pixels)
