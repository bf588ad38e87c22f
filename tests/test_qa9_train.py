"""QA pass 9, training and checkpoints: a checkpoint folder is written as one set (a stop or an
error during a save leaves the previous checkpoint whole, and --resume refuses a training state of
another iteration than its model), a trained card allows half precision only where it was measured
to be faithful, paired folders leave hidden files out, and the data messages name the real problem."""

import json
import os
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import vidtrans
from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, paired_folder, random_generator, train_tiny
from vidtrans import atomic
from vidtrans.errors import VidtransError
from vidtrans.metrics import psnr
from vidtrans.models.checkpoint import load_checkpoint

# What publishing a checkpoint's files may be cut short by: a stop signal (cli turns it into
# KeyboardInterrupt) and a failing file system.
STOPS = {"signal": (KeyboardInterrupt("SIGTERM"), 130),
         "error": (VidtransError("card.json: cannot move the finished file into place (No space left on device)"), 1)}


def files_in(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, hidden ones (temporary files) included, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def model_files(folder: Path) -> dict[str, bytes]:
    return {name: data for name, data in files_in(folder).items() if not name.startswith("samples")}


def stop_publishing_after(monkeypatch, published: int, stop: BaseException) -> list[str]:
    """Make the `published`+1-th file a save publishes fail with `stop`, as a signal or a full disk
    landing in the middle of a save would; returns the names of the files published before."""
    names: list[str] = []
    publish = atomic.publish

    def publish_then_stop(tmp, dst, overwrite=False):
        if len(names) == published:
            raise stop
        publish(tmp, dst, overwrite)
        names.append(Path(dst).name)

    monkeypatch.setattr(atomic, "publish", publish_then_stop)
    return names


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint trained 2 iterations on 4 random pairs, and the folder of those pairs."""
    return train_tiny(tmp_path_factory.mktemp("qa9"), 2, cli)


@pytest.fixture
def checkpoint(trained, tmp_path):
    data, out = trained
    return data, Path(shutil.copytree(out, tmp_path / "ck"))


# --- 3: a checkpoint is written as one set ---------------------------------------------------------


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("published", [1, 2])
def test_a_save_cut_short_leaves_the_previous_checkpoint_whole_and_resumable(checkpoint, monkeypatch, stop, published):
    data, out = checkpoint
    before = model_files(out)
    error, code = STOPS[stop]
    names = stop_publishing_after(monkeypatch, published, error)
    result = cli("train", "--data", data, "-o", out, "--resume", "--iterations", "3", *TINY_TRAINING)
    assert result.returncode == code, result.stderr
    assert len(names) == published  # the save was cut short after publishing some of its files ...
    assert model_files(out) == before  # ... which are back as they were: weights, card and state of iteration 2
    monkeypatch.undo()
    assert load_checkpoint(out).card.training["iterations"] == 2
    resumed = cli("train", "--data", data, "-o", out, "--resume", "--iterations", "3", *TINY_TRAINING)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "card.json").read_text())["training"]["iterations"] == 3


@pytest.mark.parametrize("stop", STOPS)
def test_overwrite_cut_short_in_its_first_save_keeps_the_old_checkpoint(checkpoint, monkeypatch, stop):
    data, out = checkpoint
    before = files_in(out)
    error, code = STOPS[stop]
    stop_publishing_after(monkeypatch, 1, error)
    result = cli("train", "--data", data, "-o", out, "--overwrite", "--seed", "7", "--iterations", "2", *TINY_TRAINING)
    assert result.returncode == code, result.stderr
    # The old run whole, its sample grids included, beside (in place of its own of that iteration)
    # the new run's first grid; nothing temporary.
    new_grid = "samples/iter_0000001.png"
    after = files_in(out)
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k != new_grid} == {k: v for k, v in before.items() if k != new_grid}
    monkeypatch.undo()
    assert load_checkpoint(out).card.training["iterations"] == 2


def test_a_completed_overwrite_leaves_nothing_of_the_old_run(checkpoint):
    data, out = checkpoint
    (out / "background.png").write_bytes(b"an old model's scene")
    result = cli("train", "--data", data, "-o", out, "--overwrite", "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    assert sorted(files_in(out)) == ["card.json", "model.safetensors", "samples/iter_0000001.png", "train_state.pt"]


@pytest.fixture
def upstream(tmp_path):
    def write(name: str, seed: int) -> Path:
        path = tmp_path / name
        torch.save(random_generator("resnet_6blocks", 3, 3, 4, "instance", seed=seed).state_dict(), path)
        return path

    return write


@pytest.mark.parametrize("stop", STOPS)
def test_import_overwrite_cut_short_keeps_the_old_model_and_a_new_folder_is_not_left(upstream, tmp_path,
                                                                                      monkeypatch, stop):
    old, new = upstream("old.pth", 1), upstream("new.pth", 2)
    folder = tmp_path / "imported"
    assert cli("import-pix2pix", old, "-o", folder).returncode == 0
    before = files_in(folder)
    error, code = STOPS[stop]
    stop_publishing_after(monkeypatch, 1, error)
    assert cli("import-pix2pix", new, "-o", folder, "--overwrite").returncode == code
    assert files_in(folder) == before
    assert cli("import-pix2pix", new, "-o", tmp_path / "fresh" / "model").returncode == code
    assert not (tmp_path / "fresh").exists()


def test_import_over_a_trained_model_takes_its_training_state_and_background_away(checkpoint, upstream):
    _, out = checkpoint
    (out / "background.png").write_bytes(b"the trained model's scene")
    assert cli("import-pix2pix", upstream("new.pth", 2), "-o", out, "--overwrite").returncode == 0
    assert sorted(files_in(out)) == ["card.json", "model.safetensors"]


def test_a_stop_while_a_model_replaces_another_waits_until_the_old_ones_files_are_gone(checkpoint, upstream,
                                                                                      monkeypatch):
    from vidtrans.models import checkpoint as checkpoint_module

    _, out = checkpoint
    (out / "background.png").write_bytes(b"the trained model's scene")
    remove = checkpoint_module.remove_checkpoint_files

    def signalled_then_remove(*args, **kwargs):  # the stop lands between publishing and removing
        os.kill(os.getpid(), signal.SIGTERM)
        remove(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "remove_checkpoint_files", signalled_then_remove)
    result = cli("import-pix2pix", upstream("new.pth", 2), "-o", out, "--overwrite")
    assert result.returncode == 143 and result.stderr.endswith("vidtrans: interrupted\n"), result.stderr
    assert sorted(files_in(out)) == ["card.json", "model.safetensors"]  # the new model alone, whole
    assert load_checkpoint(out).card.source == "imported from pix2pix checkpoint new.pth"


def test_resume_refuses_a_training_state_of_another_iteration(checkpoint, tmp_path):
    data, out = checkpoint
    later = Path(shutil.copytree(out, tmp_path / "later"))
    assert cli("train", "--data", data, "-o", later, "--resume", "--iterations", "3", *TINY_TRAINING).returncode == 0
    shutil.copy(later / "train_state.pt", out / "train_state.pt")  # a torn folder: model of 2, state of 3
    before = files_in(out)
    message = one_line(cli("train", "--data", data, "-o", out, "--resume", "--iterations", "5", *TINY_TRAINING), 1)
    state = out / "train_state.pt"
    assert f"{state}: is from iteration 3, but the model beside it (card.json) from iteration 2" in message, message
    assert message.endswith("start over with --overwrite"), message
    assert files_in(out) == before


def test_a_folder_whose_weights_come_from_another_save_is_listed_unusable(checkpoint, tmp_path, monkeypatch):
    data, out = checkpoint
    later = Path(shutil.copytree(out, tmp_path / "later"))
    assert cli("train", "--data", data, "-o", later, "--resume", "--iterations", "3", *TINY_TRAINING).returncode == 0
    models = tmp_path / "models"
    torn = Path(shutil.copytree(out, models / "torn"))
    shutil.copy(later / "model.safetensors", torn / "model.safetensors")  # same layout, another save
    shutil.copytree(out, models / "whole")
    monkeypatch.setenv("VIDTRANS_MODELS", str(models))
    listed = cli("models")
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if line.split()[1:2] in (["torn"], ["whole"])}
    assert "unusable files" in rows["torn"] and "resnet_6blocks ngf 4" in rows["whole"], listed.stdout
    expected = f"{torn}: model.safetensors and card.json are from different saves"
    assert expected in listed.stderr, listed.stderr
    with pytest.raises(VidtransError, match="are from different saves"):
        load_checkpoint(torn)


# --- 12: half precision only where it was measured -------------------------------------------------


def test_the_final_card_allows_half_precision_as_measured_on_held_out_samples(trained):
    data, out = trained
    card = load_checkpoint(out).card
    measured = card.metrics["half_precision"]
    assert measured["samples"] == 1 and measured["required_psnr"] == 45  # 4 pairs hold out one
    assert card.half_precision == (measured["bf16"]["psnr"] >= 45)
    # The figure is what `run --precision bf16` gives against fp32 on the held-out input.
    held_out = cv2.cvtColor(cv2.imread(str(data / "000.png")), cv2.COLOR_BGR2RGB)[None, :, :64]
    fp32, bf16 = (vidtrans.load_model(out, device="cpu", precision=p).translate(held_out) for p in ("fp32", "bf16"))
    assert psnr(bf16, fp32) == pytest.approx(measured["bf16"]["psnr"], abs=0.5)
    assert np.abs(bf16.astype(int) - fp32).max() == measured["bf16"]["max_difference"]


@pytest.mark.parametrize("required, allowed", [(0.0, True), (101.0, False)])
def test_half_precision_follows_the_tolerance_and_earlier_saves_do_not_allow_it(trained, tmp_path, monkeypatch,
                                                                                 required, allowed):
    from vidtrans.train import trainer

    data, _ = trained
    monkeypatch.setattr(trainer, "HALF_PRECISION_MIN_PSNR", required)  # PSNR is capped at 100 dB
    out = tmp_path / "m"
    saves = []
    save = trainer.Trainer.save

    def save_and_read(self, metrics, final=False):
        save(self, metrics, final)
        saves.append(json.loads((out / "card.json").read_text())["half_precision"])

    monkeypatch.setattr(trainer.Trainer, "save", save_and_read)
    assert cli("train", "--data", data, "-o", out, "--iterations", "2", *TINY_TRAINING).returncode == 0
    assert saves == [False, allowed]


# --- 9, 14: what a paired folder holds -------------------------------------------------------------


def test_hidden_files_are_left_out_and_counted(tmp_path):
    data = paired_folder(tmp_path / "mac", 3)
    (data / "._000.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")  # AppleDouble
    shutil.copy(data / "000.png", data / ".hidden.png")
    out = tmp_path / "m"
    result = cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    assert "left out 2 hidden image file(s)" in result.stderr, result.stderr
    training = load_checkpoint(out).card.training
    assert (training["pairs"], training["hidden_files_left_out"]) == (2, 2)  # 3 pairs, one held out

    only_hidden = tmp_path / "only_hidden"
    only_hidden.mkdir()
    shutil.copy(data / ".hidden.png", only_hidden / ".x.png")
    message = one_line(cli("train", "--data", only_hidden, "-o", tmp_path / "m2", *TINY_TRAINING), 2)
    assert "no images found" in message and "hidden files are left out" in message, message


def test_the_extensions_read_are_named_and_an_empty_folder_is_a_usage_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    gifs = tmp_path / "gifs"
    gifs.mkdir()
    (gifs / "0.gif").write_bytes(b"GIF89a")
    for folder in (empty, gifs):
        message = one_line(cli("train", "--data", folder, "-o", tmp_path / "m", *TINY_TRAINING), 2)
        assert f"{folder}: no images found (the extensions read: .png, .jpg, .jpeg, .bmp, .tif, .tiff" in message


def test_tiff_pairs_are_read(tmp_path):
    data = paired_folder(tmp_path / "png", 2)
    tif = tmp_path / "tif"
    tif.mkdir()
    for png in data.iterdir():
        cv2.imwrite(str(tif / f"{png.stem}.tif"), cv2.imread(str(png)))
    result = cli("train", "--data", tif, "-o", tmp_path / "m", "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr


def test_a_broken_link_is_named_as_one_before_training(tmp_path):
    data = paired_folder(tmp_path / "pairs", 3)
    os.symlink("nowhere.png", data / "8.png")
    message = one_line(cli("train", "--data", data, "-o", tmp_path / "m", "--iterations", "1", *TINY_TRAINING), 1)
    assert message.endswith(f"{data / '8.png'}: broken link (to nowhere.png, which does not exist); fix or remove "
                            "the link"), message
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("frames, name, told", [
    (9, "nine.mp4", "the person is in all 9 frames, but the clip is too short: training needs at least 10"),
    (1, "still.png", "still.png: a single picture, and training needs a video of at least 10 frames"),
], ids=["too short", "a picture"])
def test_a_clip_with_the_person_in_every_frame_but_too_few_is_called_too_short(tmp_path, monkeypatch, frames, name,
                                                                               told):
    from vidtrans.pose import track

    person = np.zeros((frames, 18, 3), np.float32)
    person[:, :, :2], person[:, :, 2] = 10.0, 0.9
    monkeypatch.setattr(track, "detect_keypoints", lambda video, **kwargs: person)
    message = one_line(cli("train", tmp_path / name, "-o", tmp_path / "m", *TINY_TRAINING), 1)
    assert told in message, message
