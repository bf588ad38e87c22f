"""pix2pix paired folders (`vidtrans train --data`): what is paired, what is left out, and saying so."""

import logging

import cv2
import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.train.data import PairedFolder


def image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((32, 32, 3), value, np.uint8))


def test_unpaired_images_are_left_out_and_named(tmp_path, caplog):
    for name in ("a", "b", "c"):
        image(tmp_path / "A" / f"{name}.png", 10)
    for name in ("a", "b", "z"):
        image(tmp_path / "B" / f"{name}.png", 200)
    image(tmp_path / "val" / "A" / "v.png", 10)
    image(tmp_path / "val" / "B" / "v.png", 200)
    with caplog.at_level(logging.WARNING):
        data = PairedFolder(tmp_path, size=32)
    assert [a.stem for a, _ in data.pairs] == ["a", "b"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 image(s) in A/" in m and "c.png" in m for m in messages)
    assert any("1 image(s) in B/" in m and "z.png" in m for m in messages)


def test_fully_paired_folders_say_nothing(tmp_path, caplog):
    for name in ("a", "b"):
        image(tmp_path / "A" / f"{name}.png", 10)
        image(tmp_path / "B" / f"{name}.png", 200)
    with caplog.at_level(logging.WARNING):
        PairedFolder(tmp_path, size=32)
    assert not caplog.records


@pytest.mark.parametrize("kind, problem", [("file", "is a file, not a folder"), ("missing", "no such folder")])
def test_data_that_is_not_a_folder_is_named_for_what_it_is(tmp_path, kind, problem):
    path = tmp_path / "clip.mp4"
    if kind == "file":
        path.write_bytes(b"not a folder")
    with pytest.raises(VidtransError, match=problem):
        PairedFolder(path)


def test_train_data_that_is_not_a_folder_exits_2_like_batch(cli, tmp_path):
    result = cli("train", "--data", tmp_path / "nope", "-o", tmp_path / "m", "--iterations", "1")
    assert result.returncode == 2 and result.stderr.startswith("vidtrans: error: ") and "no such folder" in result.stderr
    assert not (tmp_path / "m").exists()
