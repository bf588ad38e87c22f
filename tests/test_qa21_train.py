"""QA pass 21, training: phone photos as WebP read upright, hostile paired folders (loops of links,
A/ and B/ misspelt), the output folder checked before training, and --resume refusing a damaged or
mismatched checkpoint before the data is read, with a card true to the resumed run."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import one_line, run_cli
from tests.media import TINY_TRAINING, paired_folder, train_tiny
from tests.test_qa20_train import _ab
from vidtrans.train.data import PairedFolder, _fit, image_size
from vidtrans.video import VideoReader


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)


def _webp_with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    """A lossless WebP of `rgb` in the extended layout a phone or an editor writes: a VP8X chunk
    with its EXIF flag, the picture, then an EXIF chunk (a little-endian TIFF header and one
    directory holding the orientation)."""
    ok, encoded = cv2.imencode(".webp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, 101])
    encoded = bytes(encoded)
    assert ok and encoded[12:16] == b"VP8L"
    height, width = rgb.shape[:2]
    vp8x = _riff_chunk(b"VP8X", bytes([0x08, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
                       + (height - 1).to_bytes(3, "little"))
    exif = (b"II*\0" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
            + struct.pack("<I", 0))
    payload = b"WEBP" + vp8x + encoded[12:] + _riff_chunk(b"EXIF", exif)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_a_webp_photo_with_an_exif_orientation_trains_upright_as_run_reads_it(tmp_path, orientation):
    # OpenCV ignores a WebP's EXIF, where it turns JPEG, PNG and TIFF, and FFmpeg (run, batch)
    # turns all of them: a phone's WebP trained on its side while its JPEG twin trained upright.
    (tmp_path / "x.webp").write_bytes(_webp_with_orientation(_ab(), orientation))
    cv2.imwrite(str(tmp_path / "y.png"), cv2.cvtColor(_ab(), cv2.COLOR_RGB2BGR))
    with VideoReader(tmp_path / "x.webp") as reader:
        upright = next(iter(reader)).image  # the picture as run and batch read it
    assert image_size(tmp_path / "x.webp") == (upright.shape[1], upright.shape[0])
    a, b = PairedFolder(tmp_path, size=16).all_pairs()[0]
    half = upright.shape[1] // 2
    for read, want in ((a, upright[:, :half]), (b, upright[:, half:])):
        assert np.abs(read.astype(int) - _fit(want, 16)).max() <= 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint trained 2 iterations on 4 random pairs, and the folder of those pairs."""
    return train_tiny(tmp_path_factory.mktemp("qa21"), 2, run_cli)


@pytest.mark.parametrize("damage", ["missing", "cut short"])
def test_resume_from_damaged_weights_is_refused_before_the_data_is_read(trained, tmp_path, cli, monkeypatch,
                                                                        damage):
    # The weights were first read by the trainer, after the data: a target video's pose detection
    # (minutes) ran, and a warning about the new plan was told, before the refusal.
    from vidtrans.train import data as training_data

    pairs, out = trained
    out = Path(shutil.copytree(out, tmp_path / "ck"))
    weights = out / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:1000])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def read_data(*args, **kwargs):
        raise AssertionError("the data was read before the checkpoint was checked")

    monkeypatch.setattr(training_data, "PairedFolder", read_data)
    result = cli("train", "--data", pairs, "-o", out, "--resume", "--iterations", "4", *TINY_TRAINING)
    line = one_line(result, 1)
    assert "model.safetensors" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_loop_of_links_is_named_as_one_not_as_a_link_to_nothing(tmp_path, cli):
    # x.png -> y.png -> x.png: both names are there, so "which does not exist" sent the user looking
    # for a missing file.
    cv2.imwrite(str(tmp_path / "a.png"), _ab())
    (tmp_path / "x.png").symlink_to("y.png")
    (tmp_path / "y.png").symlink_to("x.png")
    line = one_line(cli("train", "--data", tmp_path, "-o", tmp_path.parent / "out", *TINY_TRAINING), 1)
    assert "x.png" in line and "loop" in line and "does not exist" not in line


def test_a_resumed_runs_save_before_its_first_score_keeps_the_checkpoints_figures(trained, tmp_path, cli,
                                                                                   monkeypatch):
    # A save between two scores keeps the earlier score, but a resumed run's first saves wrote a
    # card without any: the figures of the checkpoint it resumed were lost.
    from vidtrans.train import trainer as trainer_module

    pairs, out = trained
    out = Path(shutil.copytree(out, tmp_path / "ck"))
    scored = json.loads((out / "card.json").read_text())["metrics"]["validation"]
    assert scored["iteration"] == 2
    real_save, cards = trainer_module.Trainer.save, []

    def save(self, metrics, final=False):
        real_save(self, metrics, final)
        cards.append(json.loads((out / "card.json").read_text()))

    monkeypatch.setattr(trainer_module.Trainer, "save", save)
    result = cli("train", "--data", pairs, "-o", out, "--resume", "--iterations", "4", "--validate-every", "4")
    assert result.returncode == 0, result.stderr
    first, last = cards
    assert first["training"]["iterations"] == 3 and first["metrics"] == {"validation": scored}
    assert last["metrics"]["validation"]["iteration"] == 4


def test_resuming_a_finished_run_does_not_blame_an_iterations_flag_never_given(trained, cli):
    # "--iterations 2 asks for no more" when --iterations was not passed: the run's own plan is done.
    pairs, out = trained
    line = one_line(cli("train", "--data", pairs, "-o", out, "--resume"), 2)
    assert "--iterations 2 asks" not in line and "planned 2 iterations" in line
    assert line.endswith("pass --iterations larger than 2 to train it further")


@pytest.mark.parametrize("setting, value, named", [("ndf", 8, "--ndf 8"), ("lr", 0.001, "--lr 0.001"),
                                                   ("seed", 5, "--seed 5")])
def test_a_training_state_of_another_recipe_beside_the_model_is_refused(trained, tmp_path, cli, setting, value,
                                                                        named):
    # A train_state.pt of the same iteration from another run (a folder assembled from two runs'
    # files): its discriminators and optimizers went on with this generator, silently, and the
    # card then recorded the other run's settings for the whole model.
    import torch

    pairs, out = trained
    out = Path(shutil.copytree(out, tmp_path / "ck"))
    state = torch.load(out / "train_state.pt", weights_only=True)
    state["config"][setting] = value
    torch.save(state, out / "train_state.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_line(cli("train", "--data", pairs, "-o", out, "--resume", "--iterations", "3"), 1)
    assert named in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_a_file_where_the_sample_grids_go_is_refused_before_training(trained, tmp_path, cli, flags):
    # `-o ~/project` holding a file named samples: training ran to its first save (hours, at the
    # default --save-every 500) and then said "cannot create the checkpoint folder (File exists);
    # choose a writable folder" of a folder that was there and writable.
    pairs, trained_out = trained
    out = Path(shutil.copytree(trained_out, tmp_path / "ck")) if flags else tmp_path / "project"
    if not flags:
        out.mkdir()
    else:
        shutil.rmtree(out / "samples")
    (out / "samples").write_text("my notes")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_line(cli("train", "--data", pairs, "-o", out, "--iterations", "1", *TINY_TRAINING, *flags), 2)
    assert str(out / "samples") in line and "folder" in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("halves", [("a", "b"), ("A",)])
def test_a_paired_folder_without_both_a_and_b_says_so_not_that_it_holds_no_images(tmp_path, cli, halves):
    # a/ and b/ (or A/ alone) were called "no images found", of a folder of images.
    data = tmp_path / "data"
    for half in halves:
        (data / half).mkdir(parents=True)
        cv2.imwrite(str(data / half / "1.png"), _ab())
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "out", *TINY_TRAINING), 2)
    assert "no images found" not in line and f"{halves[0]}/" in line and "A/ and B/" in line


def test_a_resumed_cards_notes_on_the_data_are_those_of_the_data_it_resumed_on(tmp_path, cli):
    # Pairs added before resuming a one-pair run (and a hidden file removed): the card kept
    # "validated_on": "training pairs" and the old hidden-file count, and the summary said
    # "training-pair ssim" of a held-out pair.
    data = paired_folder(tmp_path / "pairs", 1)
    (data / "._0.png").write_bytes(b"AppleDouble")
    out = tmp_path / "ck"
    assert cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING).returncode == 0
    training = json.loads((out / "card.json").read_text())["training"]
    assert training["validated_on"] == "training pairs" and training["hidden_files_left_out"] == 1
    (data / "._0.png").unlink()
    for added in paired_folder(tmp_path / "more", 4).iterdir():
        shutil.copy(added, data / f"more{added.name}")
    result = cli("train", "--data", data, "-o", out, "--resume", "--iterations", "2")
    assert result.returncode == 0 and "held-out ssim" in result.stdout + result.stderr, result.stderr
    training = json.loads((out / "card.json").read_text())["training"]
    assert training["pairs"] + len(training["held_out_pairs"]) == 5 and "validated_on" not in training and "hidden_files_left_out" not in training


def _animated_webp(rgb: np.ndarray, frames: int = 2) -> bytes:
    """An animated WebP of `frames` copies of `rgb`: VP8X with its animation flag, ANIM, ANMF frames."""
    ok, encoded = cv2.imencode(".webp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, 101])
    height, width = rgb.shape[:2]
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    frame = _riff_chunk(b"ANMF", bytes(6) + size + (100).to_bytes(3, "little") + b"\0" + bytes(encoded)[12:])
    payload = (b"WEBP" + _riff_chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + size) + _riff_chunk(b"ANIM", bytes(6))
               + frame * frames)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def test_an_animated_webp_among_the_pairs_is_refused_not_trained_on_its_first_picture(tmp_path, cli):
    data = paired_folder(tmp_path / "data", 3)
    animated = data / "003.webp"
    animated.write_bytes(_animated_webp(np.zeros((64, 128, 3), np.uint8)))
    assert cv2.imread(str(animated)) is not None  # OpenCV reads its first picture, silently
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "out", *TINY_TRAINING), 1)
    assert line.endswith(f"{animated}: an animated WebP, of which training would see the first picture only; save "
                         "the frames as images, one pair each")
    assert not (tmp_path / "out").exists()
