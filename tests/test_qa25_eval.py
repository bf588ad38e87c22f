"""`vidtrans eval --data` on pix2pix's dataset layout (train/ beside val/ or test/) scores the held-out
split, not the pairs the model was trained on."""

import json
import shutil

import pytest

from tests.media import TINY_TRAINING, paired_folder


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


# --- a folder the model was trained on (no val/): the pairs it held out ----------------------------


@pytest.fixture(scope="module")
def trained_on_folder(tmp_path_factory):
    """A tiny model trained (one iteration) on a flat folder of 40 pairs: it holds some out by name."""
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("trained")
    data, out = paired_folder(root / "pairs", 40), root / "ck"
    result = run_cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    held = json.loads((out / "card.json").read_text())["training"]["held_out_pairs"]
    assert 2 <= len(held) < 40
    return data, out, held


def test_the_folder_a_model_trained_on_is_scored_on_the_pairs_it_held_out(cli, trained_on_folder):
    data, model, held = trained_on_folder
    result = cli("eval", "--model", model, "--device", "cpu", "--data", data, "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["frames"] == len(held) and scores["held_out_in_training"] is True
    # The same figures as a folder of just those pairs.
    alone = data.parent / "held"
    alone.mkdir()
    for name in held:
        shutil.copy(data / f"{name}.png", alone)
    scored_alone = json.loads(cli("eval", "--model", model, "--device", "cpu", "--data", alone, "--json").stdout)
    assert scored_alone["held_out_in_training"] is False
    assert (scores["ssim"], scores["psnr"]) == (scored_alone["ssim"], scored_alone["psnr"])
    summary = cli("eval", "--model", model, "--device", "cpu", "--data", data)
    assert f"on the pairs of {data} it held out in training: ssim" in summary.stdout, summary.stdout


def test_another_folder_of_the_same_name_is_scored_whole(cli, trained_on_folder, tmp_path):
    data, model, held = trained_on_folder
    other = paired_folder(tmp_path / "pairs", 5, seed=9)  # none of the held-out names but 000-004
    for path in other.iterdir():
        if path.stem in held:
            path.unlink()
    result = cli("eval", "--model", model, "--device", "cpu", "--data", other, "--json")
    scores = json.loads(result.stdout)
    assert scores["frames"] == len(list(other.iterdir())) and scores["held_out_in_training"] is False


def test_a_model_that_held_out_one_pair_is_scored_on_every_pair_with_a_warning(cli, tmp_path):
    data = paired_folder(tmp_path / "few", 4)
    out = tmp_path / "ck"
    assert cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING).returncode == 0
    assert len(json.loads((out / "card.json").read_text())["training"]["held_out_pairs"]) == 1
    result = cli("eval", "--model", out, "--device", "cpu", "--data", data, "--json")
    assert json.loads(result.stdout)["frames"] == 4
    warnings = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning:")]
    assert len(warnings) == 1 and "held 1 of its pairs out" in warnings[0] and "most of them pairs it trained on" \
        in warnings[0], result.stderr
