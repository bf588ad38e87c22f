"""QA pass 23, `train` and `eval`: long values echoed shortened, a folder or video name longer than the
file system takes told in one line (it was a traceback), an evaluation card whose record of its
training video is damaged refused naming the card (tracebacks from deep in the scoring), and a
training state whose recorded settings are damaged refused naming the state (tracebacks, or the
user's flags blamed for values they never gave); eval --data of one pair refused as such whatever
--frames says, and a folder of more pairs than fit in memory cut with a warning, as a video's tail is."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.conftest import one_line
from tests.media import make_clip, paired_folder, train_tiny
from tests.test_qa21_eval_live import video_model

LONG = "x" * 5000
DIGITS = "9" * 200


def _shortened(line: str, text: str) -> None:
    assert text[0] * 20 in line and text[0] * 61 not in line and "..." in line and len(line) < 300, line


@pytest.mark.parametrize("flag, value", [("--arch", LONG), ("--iterations", f"-{DIGITS}"), ("--ngf", DIGITS),
                                         ("--size", DIGITS), ("--d-scales", DIGITS), ("--data-workers", DIGITS),
                                         ("--batch-size", f"-{DIGITS}"), ("--save-every", f"-{DIGITS}")])
def test_a_long_training_value_is_shortened_in_the_error_line(cli, tmp_path, flag, value):
    line = one_line(cli("train", "--synthetic", "-o", tmp_path / "ck", flag, value), 2)
    _shortened(line, value.lstrip("-"))
    assert not (tmp_path / "ck").exists()


def test_a_long_value_given_against_a_resumed_checkpoint_is_shortened(cli, trained):
    line = one_line(cli("train", "--data", trained / "pairs", "-o", trained / "ck", "--resume", "--ngf", DIGITS), 2)
    _shortened(line, DIGITS)


@pytest.mark.parametrize("args", [["--frames", DIGITS], ["--frames", f"-{DIGITS}"], ["--seed", f"-{DIGITS}"],
                                  ["--size", DIGITS, "16"]])
def test_a_long_evaluation_value_is_shortened_in_the_error_line(cli, pose_model_dir, args):
    line = one_line(cli("eval", "-m", pose_model_dir, "--synthetic", "--device", "cpu", *args), 2)
    _shortened(line, DIGITS)


@pytest.mark.parametrize("command", [["train", "-o", "OUT", "--data"], ["eval", "-m", "MODEL", "--data"]])
def test_a_data_folder_named_longer_than_the_file_system_takes_is_one_line(cli, tmp_path, pose_model_dir, command):
    # Path.is_dir raised "File name too long" (OSError) through the command: a traceback.
    args = [{"OUT": tmp_path / "ck", "MODEL": pose_model_dir}.get(a, a) for a in command]
    line = one_line(cli(*args, tmp_path / LONG), 2)
    assert "File name too long" in line
    _shortened(line, LONG)
    assert list(tmp_path.iterdir()) == []


def _card_training(model, **changes) -> None:
    card = model / "card.json"
    data = json.loads(card.read_text())
    data["training"].update(changes)
    card.write_text(json.dumps(data))


@pytest.fixture
def video_and_model(tmp_path):
    clip = make_clip(tmp_path / "target.mp4", frames=20, size=(64, 48), audio=False).path
    return clip, video_model(tmp_path / "m", clip, held_out_from=17)


def test_a_video_to_score_named_longer_than_the_file_system_takes_is_one_line(cli, tmp_path, video_and_model):
    _, model = video_and_model
    line = one_line(cli("eval", "-m", model, "--video", tmp_path / LONG, "--model-only", "--device", "cpu"), 1)
    assert "File name too long" in line
    _shortened(line, LONG)


@pytest.mark.parametrize("changes", [
    {"crop": 5}, {"crop": "abc"}, {"crop": [0, 0]}, {"crop": [0.5, 0, 48]}, {"crop": [0, 0, 0]}, {"crop": [0, 0, -48]},
    {"crop_fill": "red"}, {"crop_fill": [1000, 0, 0]}, {"held_out": [17]}, {"held_out": {}},
    {"held_out": {"from_frame": "x"}}, {"held_out": {"from_frame": -3}}, {"held_out": {"from_frame": 1.5}},
    {"video": 5},
])
def test_a_damaged_record_of_the_training_video_is_refused_naming_the_card(cli, video_and_model, changes):
    # Each was a traceback (TypeError, KeyError, cv2.error) from deep in the scoring, or read as
    # "the video does not fit" / "has 20 frames": the card is what is wrong.
    clip, model = video_and_model
    _card_training(model, **changes)
    line = one_line(cli("eval", "-m", model, "--video", clip, "--model-only", "--device", "cpu"), 1)
    assert "card" in line and "fix the model card" in line, line


def test_a_recorded_square_larger_than_the_video_is_refused_without_a_huge_number(cli, video_and_model):
    # A side of 10**300 "fitted" (it holds all of the frame) and failed in OpenCV; no square
    # training chooses is longer than the frame's longer side.
    clip, model = video_and_model
    _card_training(model, crop=[0, 0, 10**300])
    line = one_line(cli("eval", "-m", model, "--video", clip, "--model-only", "--device", "cpu"), 1)
    assert "does not fit" in line and "0" * 61 not in line, line


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A folder with `pairs` and a checkpoint `ck` trained 2 iterations on them (TINY_TRAINING)."""
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("trained")
    train_tiny(root, 2, run_cli)
    return root


@pytest.mark.parametrize("damage, args", [
    ({"iterations": "x"}, []),  # TypeError: '<=' not supported
    ({"iterations": "x"}, ["--iterations", "5"]),  # TypeError: can't multiply sequence
    ({"decay_from": "x"}, ["--iterations", "5"]),  # TypeError: str doesn't define __round__
    ({"iterations": -5}, []),  # "the end of its planned -5 iterations"
    ({"save_every": "x"}, ["--iterations", "5"]),  # "--save-every must be at least 1": never given
    ({"validate_every": 0}, ["--iterations", "5"]),
])
def test_a_training_state_with_damaged_settings_is_refused_naming_it(cli, tmp_path, trained, damage, args):
    out = tmp_path / "ck"
    shutil.copytree(trained / "ck", out)
    state = torch.load(out / "train_state.pt", weights_only=True)
    state["config"].update(damage)
    torch.save(state, out / "train_state.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_line(cli("train", "--data", trained / "pairs", "-o", out, "--resume", *args), 1)
    setting = next(iter(damage))
    assert f"{out / 'train_state.pt'}: not a vidtrans training state" in line and setting in line, line
    assert "--" + setting.replace("_", "-") not in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_single_pair_is_refused_as_one_pair_whatever_frames_asks_for(cli, tmp_path, pose_model_dir):
    # With --frames 2 it warned that only 1 pair would be scored, then refused a "--frames 1" never given.
    data = paired_folder(tmp_path / "one", 1)
    line = one_line(cli("eval", "-m", pose_model_dir, "--data", data, "--frames", "2", "--device", "cpu"), 2)
    assert f"{data}: one pair, and evaluation needs at least 2" in line and "--frames 1" not in line, line


def test_a_folder_of_more_pairs_than_fit_in_memory_is_cut_with_a_warning(cli, tmp_path, pose_model_dir, monkeypatch):
    # Without --frames every pair is scored, up to what fits in memory, as for a video's held-out
    # tail; past that it refused a "--frames 5" never given.
    from vidtrans import evaluate

    data = paired_folder(tmp_path / "pairs", 5)
    monkeypatch.setattr(evaluate, "EVAL_MEMORY", 3 * evaluate.FRAME_COPIES * 64 * 64 * 3)  # 3 frames fit
    result = cli("eval", "-m", pose_model_dir, "--data", data, "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    told = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning: ")]
    assert len(told) == 1 and "has 5 pairs" in told[0] and "scoring the first 3" in told[0], result.stderr


def test_a_subfolder_of_the_pairs_that_cannot_be_listed_is_one_line(cli, tmp_path, monkeypatch):
    # As root no folder is unreadable: listing A/ fails as it does for a user without read permission.
    import pathlib

    data = tmp_path / "pairs"
    data.mkdir()
    for side in "AB":
        shutil.move(paired_folder(tmp_path / side, 2), data / side)
    listing = pathlib.Path.iterdir

    def iterdir(self):
        if self.name == "A":
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "ck", "--device", "cpu"), 1)
    assert f"{data / 'A'}: cannot be read (Permission denied)" in line, line
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("recorded", ["bogus", 5])
def test_a_damaged_record_of_the_training_pose_maps_is_the_cards_not_a_flag_given(cli, tmp_path, trained, recorded):
    # It was told as "--train-pose must be one of exact, detected, noisy", exit 2, a flag never given.
    out = tmp_path / "ck"
    shutil.copytree(trained / "ck", out)
    card = json.loads((out / "card.json").read_text())
    card["training"]["train_pose"] = recorded
    (out / "card.json").write_text(json.dumps(card))
    line = one_line(cli("train", "--data", trained / "pairs", "-o", out, "--resume", "--iterations", "3"), 1)
    assert f"{out}: the model card's training pose maps" in line and "fix the model card" in line, line
    assert "--train-pose" not in line, line


def test_a_device_given_as_the_pairs_folder_is_not_called_a_file(cli, tmp_path, pose_model_dir):
    line = one_line(cli("eval", "-m", pose_model_dir, "--data", "/dev/null"), 2)
    assert "/dev/null: is not a folder" in line, line
