"""QA pass 8: OpenPose folders numbered by frame, keypoint JSON/NPZ edge cases, and `vidtrans eval`
refusing options that would do nothing, keeping its refusals short, and splitting odd AB images as
pix2pix does."""

import json
import logging

import cv2
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.pose.files import read_keypoints, write_openpose_json
from vidtrans.pose.keypoints import NUM_KEYPOINTS
from vidtrans.pose.render import PoseStyle
from vidtrans.pose.smoothing import smooth_track
from vidtrans.pose.track import keypoints_for
from vidtrans.train.data import PairedFolder
from vidtrans.video import VideoReader

WIDTH, HEIGHT, FRAMES = 64, 48, 8


def track(frames: int = FRAMES) -> np.ndarray:
    """A standing pose whose nose x is 10 + the frame number: where a pose lands tells its frame."""
    kp = np.zeros((frames, NUM_KEYPOINTS, 3), np.float32)
    kp[:, :, 0] = 20 + np.arange(NUM_KEYPOINTS)
    kp[:, :, 1] = 5 + np.arange(NUM_KEYPOINTS)
    kp[:, :, 2] = 0.9
    kp[:, 0, 0] = 10 + np.arange(frames)
    return kp


def refusal(path) -> str:
    with pytest.raises(VidtransError) as info:
        read_keypoints(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


# --- OpenPose folders: the numbers in the names are frame numbers -----------------------------


def test_a_missing_frame_file_is_refused_by_name(tmp_path):
    write_openpose_json(tmp_path / "gap", track(16))
    (tmp_path / "gap" / "frame_000000000005_keypoints.json").unlink()
    message = refusal(tmp_path / "gap")
    assert "frame_000000000005_keypoints.json is missing" in message and "frame 5" in message


def test_unpadded_numbers_are_frame_numbers_not_text(tmp_path):
    folder = tmp_path / "unpadded"
    folder.mkdir()
    for i, pose in enumerate(track(12)):  # clip2_frame_10 sorts before clip2_frame_2 as text
        (folder / f"clip2_frame_{i}_keypoints.json").write_text(
            json.dumps({"people": [{"pose_keypoints_2d": pose.reshape(-1).tolist()}]}))
    loaded = read_keypoints(folder)
    np.testing.assert_allclose(loaded.keypoints[:, 0, 0], 10 + np.arange(12))
    assert loaded.first_frame == 0
    (folder / "clip2_frame_9_keypoints.json").unlink()
    assert "clip2_frame_9_keypoints.json is missing" in refusal(folder)


def test_a_folder_numbered_from_1_holds_the_clip_from_its_first_frame(tmp_path):
    # OpenPose names the files of an image folder after the images, often numbered from 1 (ffmpeg's %06d).
    clip = make_clip(tmp_path / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT), audio=False)
    folder = tmp_path / "from1"
    folder.mkdir()
    for i, pose in enumerate(track(), start=1):
        (folder / f"{i:06d}_keypoints.json").write_text(
            json.dumps({"people": [{"pose_keypoints_2d": pose.reshape(-1).tolist()}]}))
    raw = read_keypoints(folder)
    assert raw.first_frame == 0
    np.testing.assert_allclose(raw.keypoints[:, 0, 0], 10 + np.arange(FRAMES))
    with VideoReader(clip.path) as reader:
        poses = keypoints_for(folder, clip.path, reader).keypoints
    np.testing.assert_allclose(poses, smooth_track(raw.keypoints))  # as a run uses them


def test_a_folder_without_its_last_file_names_the_frames_it_has(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=FRAMES, size=(WIDTH, HEIGHT), audio=False)
    write_openpose_json(tmp_path / "short", track(FRAMES - 1))
    with VideoReader(clip.path) as reader, pytest.raises(VidtransError) as info:
        keypoints_for(tmp_path / "short", clip.path, reader)
    assert "7 frames of keypoints (frames 0 to 6 of the clip), but frames 0 to 7" in str(info.value)


def test_two_files_of_one_frame_or_a_name_without_number_are_refused(tmp_path):
    write_openpose_json(tmp_path / "two", track(3))
    write_openpose_json(tmp_path / "two", track(3), prefix="other")
    assert "are both frame 0; keep the files of one clip" in refusal(tmp_path / "two")
    folder = tmp_path / "nonum"
    folder.mkdir()
    (folder / "a_keypoints.json").write_text(json.dumps({"people": []}))
    assert "no frame number in the name" in refusal(folder)


# --- JSON and NPZ edge cases --------------------------------------------------------------------


def poses_json(path, point: str = "[20, 5, 0.9]", frames: int = 2, **extra):
    """A JSON list of frames of our layout, every point written as `point` (raw JSON text)."""
    body = "[" + ",".join(["[" + ",".join([point] * NUM_KEYPOINTS) + "]"] * frames) + "]"
    path.write_text(f'{{"frames": {body}{"".join(f", {json.dumps(k)}: {v}" for k, v in extra.items())}}}')
    return path


@pytest.mark.parametrize("number", ["9" * 5000, "1e400"])
def test_numbers_beyond_range_are_refused_as_infinite_in_one_line(tmp_path, number):
    message = refusal(poses_json(tmp_path / "big.json", f"[{number}, 5, 0.9]"))
    assert "keypoint 0 of frame 0 is (inf, 5, 0.9): give numbers" in message


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    plain = poses_json(tmp_path / "plain.json")
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    np.testing.assert_array_equal(read_keypoints(tmp_path / "bom.json").keypoints, read_keypoints(plain).keypoints)


def test_non_finite_present_points_are_refused_in_json_and_npz_alike(tmp_path):
    json_message = refusal(poses_json(tmp_path / "nan.json", "[NaN, 5, 0.9]"))
    kp = track(2)
    kp[0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", keypoints=kp, width=WIDTH, height=HEIGHT)
    npz_message = refusal(tmp_path / "nan.npz")
    tail = "keypoint 0 of frame 0 is (nan, 5, 0.9): give numbers (0, 0, 0 for a missing point)"
    assert json_message.endswith(tail) and npz_message.endswith(tail)


def test_a_missing_point_may_hold_nan_in_json_and_npz_alike(tmp_path):
    """DWPose writes NaN coordinates for points it did not find, with confidence 0."""
    from_json = read_keypoints(poses_json(tmp_path / "missing.json", "[NaN, NaN, 0]")).keypoints
    kp = np.full((2, NUM_KEYPOINTS, 3), np.nan, np.float32)
    kp[..., 2] = 0
    np.savez(tmp_path / "missing.npz", keypoints=kp, width=WIDTH, height=HEIGHT)
    from_npz = read_keypoints(tmp_path / "missing.npz").keypoints
    assert (from_json == 0).all() and (from_npz == 0).all()


@pytest.mark.parametrize("frame", [
    [[True, True, True]] * NUM_KEYPOINTS,
    [True] * (3 * NUM_KEYPOINTS),
    {"people": [{"pose_keypoints_2d": [True] * (3 * NUM_KEYPOINTS)}]},
])
def test_booleans_are_not_coordinates(tmp_path, frame):
    path = tmp_path / "bools.json"
    path.write_text(json.dumps([frame]))
    assert "of numbers" in refusal(path)


@pytest.mark.parametrize("value", ["true", '"128"', "128.9", "1e400"])
def test_frame_sizes_must_be_whole_numbers(tmp_path, value):
    message = refusal(poses_json(tmp_path / "size.json", width=value, height=value))
    assert f"width is {value if value != '1e400' else 'Infinity'}, not a whole number of pixels" in message


def test_whole_number_sizes_written_as_floats_are_read(tmp_path):
    loaded = read_keypoints(poses_json(tmp_path / "float.json", width="128.0", height="96"))
    assert (loaded.width, loaded.height) == (128, 96) and type(loaded.width) is int


@pytest.mark.parametrize("field, value, message", [
    ("first_frame", np.float64(2.5), "first_frame is 2.5, not a frame number, 0 or more"),
    ("width", np.float64(64.9), "width is 64.9, not a whole number of pixels"),
    ("height", np.bool_(True), "height is True, not a whole number of pixels"),
    ("keypoints", track(2) > 0, "keypoints are true/false values, not numbers"),
])
def test_npz_numbers_must_be_what_they_say(tmp_path, field, value, message):
    contents = {"keypoints": track(2), "width": np.int64(WIDTH), "height": np.int64(HEIGHT), field: value}
    np.savez(tmp_path / "odd.npz", **contents)
    assert message in refusal(tmp_path / "odd.npz")


# --- eval ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory):
    """A pose model trained (so its card says) on the synthetic dances, with a card describing its
    data at paragraph length, as pose2person's does."""
    folder = tmp_path_factory.mktemp("models") / "dancer"
    training = {"train_seeds": [0, 10_000], "data": "synthetic only: " + "a long description, " * 30}
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                     input_kind="pose", pose_style=PoseStyle().to_dict(), training=training)
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"), card)
    return folder


def ab_folder(folder, width: int = 128, pairs: int = 3):
    """AB images 32 high: A 10, B 200, the last column of each B 250."""
    folder.mkdir()
    for i in range(pairs):
        ab = np.full((32, width, 3), 10, np.uint8)
        ab[:, width // 2:] = 200
        ab[:, -1] = 250
        cv2.imwrite(str(folder / f"{i}.png"), ab)
    return folder


@pytest.mark.parametrize("args, refused", [
    (["--seed", "20000001"], "--seed picks the synthetic dance, and --data and --video score other material; drop it"),
    (["--no-normalize"], "--no-normalize turns off fitting the detected dancer to the target's body, which only "
                         "end-to-end evaluation does; drop it"),
])
def test_eval_data_refuses_options_that_would_do_nothing(cli, rgb_model_dir, tmp_path, args, refused):
    data = ab_folder(tmp_path / "ab")
    assert one_line(cli("eval", "--model", rgb_model_dir, "--data", data, "--frames", "3", *args), 2).endswith(refused)


def test_eval_model_only_refuses_no_normalize_and_video_refuses_seed(cli, pose_model, tmp_path):
    assert "--no-normalize turns off" in one_line(cli("eval", "--model", pose_model, "--model-only", "--frames", "3",
                                                      "--no-normalize"), 2)
    assert "--seed picks the synthetic dance" in one_line(cli("eval", "--model", pose_model, "--video",
                                                              tmp_path / "x.mp4", "--seed", "20000001"), 2)


def test_eval_video_on_a_model_not_trained_from_one_says_so_briefly(cli, pose_model, tmp_path):
    line = one_line(cli("eval", "--model", pose_model, "--video", tmp_path / "nofile.mp4", "--frames", "3"), 2)
    assert "dancer was not trained from a video" in line and "drop --video" in line
    assert "description" not in line and len(line) < 200, line


def test_odd_width_ab_images_split_as_pix2pix_does_and_say_so(tmp_path, caplog):
    data = ab_folder(tmp_path / "odd", width=65)
    with caplog.at_level(logging.WARNING):
        pairs = PairedFolder(data, size=32, flip=False).all_pairs()
    for a, b in pairs:
        assert (a == 10).all()  # the left 32 columns: no column of B
        assert (b[:, :-1] == 200).all() and (b[:, -1] > 200).all()  # the right 33, the last one kept
    told = [r.getMessage() for r in caplog.records if "odd width" in r.getMessage()]
    assert len(told) == 1 and "A the left 32 columns, B the right 33" in told[0], told


def test_eval_data_with_odd_width_says_how_it_splits(cli, rgb_model_dir, tmp_path):
    result = cli("eval", "--model", rgb_model_dir, "--data", ab_folder(tmp_path / "odd", width=129), "--json")
    assert result.returncode == 0, result.stderr
    assert "an AB image of odd width 129, split as pix2pix splits it" in result.stderr
    assert json.loads(result.stdout)["frames"] == 3
