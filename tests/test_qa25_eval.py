"""`vidtrans eval --data` on pix2pix's dataset layout (train/ beside val/ or test/) scores the held-out
split, not the pairs the model was trained on."""

import json
import shutil

import pytest

from tests.media import paired_folder


def split_dataset(root, held_out="val"):
    """pix2pix's layout: 4 training pairs in train/, 2 others in `held_out`/."""
    paired_folder(root / "train", 4, seed=1)
    paired_folder(root / held_out, 2, seed=2)
    return root


@pytest.mark.parametrize("held_out", ["val", "test"])
def test_a_dataset_with_a_held_out_split_is_scored_on_that_split(cli, rgb_model_dir, tmp_path, held_out):
    data = split_dataset(tmp_path / "facades", held_out)
    args = ("--model", rgb_model_dir, "--device", "cpu", "--precision", "fp32")
    whole = cli("eval", *args, "--data", data, "--json")
    assert whole.returncode == 0, whole.stderr
    scores = json.loads(whole.stdout)
    assert scores["frames"] == 2 and scores["data"] == str(data / held_out)
    # The same figures as scoring the split alone: its pairs, not the training pairs beside it.
    alone = json.loads(cli("eval", *args, "--data", data / held_out, "--json").stdout)
    assert (scores["ssim"], scores["psnr"]) == (alone["ssim"], alone["psnr"])
    summary = cli("eval", *args, "--data", data)
    assert f"on the pairs of {data / held_out}: ssim" in summary.stdout, summary.stdout


def test_a_held_out_split_of_one_pair_is_refused_naming_it(cli, rgb_model_dir, tmp_path):
    data = split_dataset(tmp_path / "facades")
    for extra in sorted((data / "val").iterdir())[1:]:
        extra.unlink()
    result = cli("eval", "--model", rgb_model_dir, "--device", "cpu", "--data", data)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"vidtrans: error: {data / 'val'}: one pair, and evaluation needs at least 2 "
                                     "(flicker compares consecutive frames); add pairs"), result.stderr


def test_more_frames_than_the_split_holds_are_told_against_the_split(cli, rgb_model_dir, tmp_path):
    data = split_dataset(tmp_path / "facades")
    result = cli("eval", "--model", rgb_model_dir, "--device", "cpu", "--data", data, "--frames", "5", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 2
    assert f"{data / 'val'}: --frames 5 asked for, but it has only 2 pairs" in result.stderr, result.stderr


def test_a_folder_without_a_split_is_scored_whole(cli, rgb_model_dir, tmp_path):
    data = split_dataset(tmp_path / "facades")
    shutil.rmtree(data / "val")
    result = cli("eval", "--model", rgb_model_dir, "--device", "cpu", "--data", data / "train", "--json")
    assert json.loads(result.stdout)["frames"] == 4, result.stderr
