"""QA pass 22, training on paired folders: the held-out split chosen by the pairs' names, so pairs
added to a folder (and a --resume on it) move no pair between training and validation, and
folders mixing two layouts refused rather than partly left out unsaid."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import TINY_TRAINING, paired_folder
from vidtrans.train.data import PairedFolder


def _split(folder: Path) -> tuple[set[str], set[str]]:
    """The names of the training and the held-out pairs of a folder of AB images."""
    pairs = PairedFolder(folder, size=16)
    return {a.name for a, _ in pairs.pairs}, {a.name for a, _ in pairs.held_out}


def test_pairs_added_to_a_folder_move_no_pair_between_training_and_validation(tmp_path):
    # Every tenth pair by position was held out: a pair added whose name sorts first moved every
    # other one, so a resumed run trained on pairs it had been scored on.
    data = paired_folder(tmp_path / "pairs", 30)
    for pair in list(data.iterdir()):
        pair.rename(data / f"b{pair.name}")
    trained, held = _split(data)
    assert held and trained
    for added in paired_folder(tmp_path / "more", 13, seed=1).iterdir():
        shutil.move(added, data / f"a{added.name}")  # names sorting before the others
    trained_now, held_now = _split(data)
    assert trained <= trained_now and held <= held_now
    assert 1 <= len(held_now) < 43


def test_a_small_folders_held_out_pair_stays_held_out_when_resumed_on_more_pairs(tmp_path, cli):
    data, out = paired_folder(tmp_path / "pairs", 2), tmp_path / "ck"
    assert cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING).returncode == 0
    held = json.loads((out / "card.json").read_text())["training"]["held_out_pairs"]
    assert len(held) == 1 and held[0] in ("000", "001")
    for added in paired_folder(tmp_path / "more", 12, seed=3).iterdir():
        shutil.move(added, data / f"m{added.name}")
    result = cli("train", "--data", data, "-o", out, "--resume", "--iterations", "2")
    assert result.returncode == 0, result.stderr
    training = json.loads((out / "card.json").read_text())["training"]
    assert held[0] in training["held_out_pairs"] and training["pairs"] + len(training["held_out_pairs"]) == 14
    if len(training["held_out_pairs"]) > 1:  # a new pair is held out too: the figures are on other pairs
        assert "its held-out pairs changed since the checkpoint was scored" in result.stderr


def test_a_val_folder_added_before_resuming_is_told(tmp_path, cli):
    data, out = paired_folder(tmp_path / "pairs", 3), tmp_path / "ck"
    assert cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING).returncode == 0
    shutil.move(paired_folder(tmp_path / "val", 2), data / "val")
    result = cli("train", "--data", data, "-o", out, "--resume", "--iterations", "2")
    assert result.returncode == 0, result.stderr
    assert "its held-out pairs are now those of val/, not the 1 the checkpoint was scored on" in result.stderr
    assert "held_out_pairs" not in json.loads((out / "card.json").read_text())["training"]


def test_a_damaged_record_of_the_held_out_pairs_is_refused_in_one_line(tmp_path, cli):
    data, out = paired_folder(tmp_path / "pairs", 3), tmp_path / "ck"
    assert cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING).returncode == 0
    card = json.loads((out / "card.json").read_text())
    card["training"]["held_out_pairs"] = "000"
    (out / "card.json").write_text(json.dumps(card))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_line(cli("train", "--data", data, "-o", out, "--resume", "--iterations", "2"), 1)
    assert line.endswith(f"{out}: the model card's held-out pairs \"000\" are not a list of names; fix the model card")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def _image(path: Path, width: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (16, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(("layout", "message"), [
    (["x.png", "A/1.png", "B/1.png"], "holds both side-by-side AB images (x.png) and A/, B/, two layouts, of which "
                                      "training reads one; move the AB images or the subfolders to another folder"),
    (["x.png", "y.png", "A/1.png"], "holds both side-by-side AB images (x.png, y.png) and A/, two layouts, of which "
                                    "training reads one; move the AB images or the subfolders to another folder"),
    (["x.png", "train/1.png", "train/2.png"], "holds train/ and, beside it, x.png, which training would leave out; "
                                              "move them into train/ (or train/ out of the folder)"),
    (["A/1.png", "B/1.png", "train/1.png", "train/2.png"], "holds train/ and, beside it, A/, B/, which training "
                                                           "would leave out; move them into train/ (or train/ out "
                                                           "of the folder)"),
])
def test_a_folder_mixing_two_layouts_is_refused_naming_what_would_be_left_out(tmp_path, cli, layout, message):
    # Either layout was read and the other left out without a word.
    data = tmp_path / "data"
    for name in layout:
        _image(data / name, 32 if "/" in name and not name.startswith("train/") else 64)
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "out", "--iterations", "1", *TINY_TRAINING), 2)
    assert line == f"vidtrans: error: {data}: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("images", "message"), [
    (["A/1.png"], "B/ holds no images"),
    (["A/train/1.png", "B/train/1.png"], "A/ holds no images but subfolders (train/), which are not read"),
])
def test_an_a_or_b_folder_without_images_is_named_not_said_to_share_no_names(tmp_path, cli, images, message):
    # pix2pix's combine_A_and_B.py takes A/train/ and B/train/: "A/ and B/ share no file names"
    # sent the user looking for misnamed files.
    data = tmp_path / "data"
    for name in images:
        _image(data / name, 32)
    (data / "B").mkdir(exist_ok=True)
    (data / "B" / "notes.txt").write_text("not an image")
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "out", "--iterations", "1", *TINY_TRAINING), 2)
    assert line == (f"vidtrans: error: {data}: {message}; pairs are images of the same name right in A/ and B/: put "
                    "them there")
    assert not (tmp_path / "out").exists()


def test_a_pairs_side_does_not_change_with_its_unicode_form_or_image_format(tmp_path):
    # A folder copied through macOS spells "é" decomposed; a pair saved again as JPEG changes its
    # extension: neither is another pair, to be held out or trained on afresh.
    names = [f"caf\u00e9{i}" for i in range(40)]
    for name in names:
        _image(tmp_path / "composed" / f"{name}.png", 64)
        _image(tmp_path / "moved" / f"{unicodedata.normalize('NFD', name)}.jpg", 64)
    pairs, moved = PairedFolder(tmp_path / "composed", size=16), PairedFolder(tmp_path / "moved", size=16)
    assert pairs.held_out_names == moved.held_out_names and 1 <= len(pairs.held_out_names) < 40
