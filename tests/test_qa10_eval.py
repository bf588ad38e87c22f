"""QA pass 10a, `vidtrans eval`: the scores are the command's output (stdout), a folder named like an
image is told apart from a broken image, a paired folder without pairs is a usage error, and fewer
frames than `--frames` asked for are scored with a warning."""

import json

import cv2
import numpy as np

from tests.conftest import one_line
from tests.media import dancer_clip, paired_folder, random_generator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.pose.render import PoseStyle
from vidtrans.video import file_identity


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vidtrans: warning: ")]


# --- the summary is the product: stdout -----------------------------------------------------------


def test_the_score_summary_goes_to_stdout_and_nothing_else_does(cli, rgb_model_dir, tmp_path):
    data = paired_folder(tmp_path / "pairs", 3)
    result = cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu", "--precision", "fp32")
    assert result.returncode == 0, result.stderr
    # `vidtrans eval ... > scores.txt` keeps the scores, saying what ran.
    assert result.stdout.startswith(f"tiny (cpu fp32 torch), model only on the pairs of {data}: ssim ")
    assert result.stdout.rstrip().endswith("over 3 frames") and result.stdout.count("\n") == 1, result.stdout
    assert "ssim" not in result.stderr, result.stderr
    # --json stays the only thing on stdout when asked for.
    scores = cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu", "--json")
    assert json.loads(scores.stdout)["frames"] == 3


# --- paired folders: a folder among the images, A/ and B/ without pairs ----------------------------


def test_a_folder_named_like_an_image_is_left_out_and_called_a_folder(cli, rgb_model_dir, tmp_path):
    data = paired_folder(tmp_path / "pairs", 3)
    (data / "dir.png").mkdir()
    result = cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    told = warnings_in(result.stderr)
    assert len(told) == 1 and "dir.png" in told[0] and "a folder" in told[0], result.stderr
    assert "not a readable image" not in result.stderr


def test_a_folder_named_like_an_image_in_a_and_b_is_left_out_too(cli, rgb_model_dir, tmp_path):
    data = tmp_path / "ab"
    for side, value in (("A", 10), ("B", 200)):
        (data / side).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(data / side / f"{i}.png"), np.full((64, 64, 3), value, np.uint8))
    (data / "B" / "2.png").mkdir()
    result = cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 2
    assert any("2.png" in line and "a folder" in line for line in warnings_in(result.stderr)), result.stderr


def test_only_folders_named_like_images_is_no_images(cli, rgb_model_dir, tmp_path):
    data = tmp_path / "dirs"
    for name in ("0.png", "1.png"):
        (data / name).mkdir(parents=True)
    line = one_line(cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu"), 2)
    assert "no images found" in line and "folders" in line, line


def test_a_and_b_sharing_no_names_is_a_usage_error(cli, rgb_model_dir, tmp_path):
    data = tmp_path / "names"
    for side in ("A", "B"):
        (data / side).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(data / side / f"{side.lower()}{i}.png"), np.zeros((64, 64, 3), np.uint8))
    line = one_line(cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu"), 2)
    assert f"{data}: A/ and B/ share no file names" in line, line


# --- fewer frames than --frames -------------------------------------------------------------------


def test_a_held_out_tail_shorter_than_frames_is_scored_with_a_warning(cli, tmp_path):
    # A person in view: a tail without one is refused (tests/test_qa31_eval.py).
    clip = dancer_clip(tmp_path / "target.mp4", "target", frames=10, size=(64, 48))
    # What `vidtrans train target.mp4` records: the square it crops, and where the held-out tail
    # starts (frame 8 of 10: two frames).
    training = {"data": "target video target.mp4", "video": "target.mp4", "video_identity": file_identity(clip.path),
                "crop": [8, 0, 48], "held_out": {"from_frame": 8, "from_time": 8 / 25}}
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle().to_dict(), training=training)
    model = tmp_path / "m"
    save_checkpoint(model, random_generator("resnet_6blocks", 3, 3, 8, "instance"), card)
    result = cli("eval", "--model", model, "--video", clip.path, "--model-only", "--frames", "5", "--device", "cpu",
                 "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 2
    told = warnings_in(result.stderr)
    assert len(told) == 1 and "--frames 5" in told[0] and "only 2" in told[0], result.stderr
    # Asking for what exists says nothing.
    exact = cli("eval", "--model", model, "--video", clip.path, "--model-only", "--frames", "2", "--device", "cpu",
                "--json")
    assert exact.returncode == 0 and warnings_in(exact.stderr) == [], exact.stderr


def test_a_paired_folder_with_fewer_pairs_than_frames_is_scored_with_a_warning(cli, rgb_model_dir, tmp_path):
    data = paired_folder(tmp_path / "pairs", 3)
    result = cli("eval", "--model", rgb_model_dir, "--data", data, "--frames", "10", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    told = warnings_in(result.stderr)
    assert len(told) == 1 and "--frames 10" in told[0] and "only 3" in told[0], result.stderr
