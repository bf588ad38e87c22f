"""QA round 24b, checkpoints: a model is held by its absolute path wherever it is loaded (its files
stay protected after os.chdir, and "." is named by its folder); model names holding a NUL, names
too long for a file name and values that are no name at all are refused in one line; a
VIDTRANS_MODELS entry that is a file is skipped with a warning; import-pix2pix --overwrite onto a
trained checkpoint leaves only the new one's files (and the user's own); and a background.png
whose header declares a huge image is refused from its header, before it is decoded."""

from __future__ import annotations

import logging
import os
import struct
import zlib

import pytest
import torch

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.batch import translate_folder
from vidtrans.errors import UsageError, VidtransError
from vidtrans.models.checkpoint import (BACKGROUND_NAME, ModelCard, checkpoint_path, load_checkpoint,
                                        save_checkpoint)

TINY_CARD = {"architecture": "resnet_6blocks", "ngf": 8, "norm": "instance", "native_size": (64, 64)}


def _tiny_model(folder, **extras):
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"), ModelCard(**TINY_CARD),
                    extras=extras or None)
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=3, size=(64, 48), audio=False).path


# --- 1: absolute paths --------------------------------------------------------------------------------


def test_a_checkpoint_loaded_by_a_relative_path_keeps_its_files_safe_after_a_change_of_folder(tmp_path, clip,
                                                                                             monkeypatch):
    # vidtrans.Translator(load_checkpoint(...)) is the API's other way to a model: its files were
    # kept relative, so from another folder the output check missed them. (Upstream weights are told
    # by their content whatever their name, a video's included.)
    (tmp_path / "weights").mkdir()
    weights = tmp_path / "weights" / "gen.mkv"
    torch.save(random_generator("unet_128", 3, 3, 8, "batch").state_dict(), weights)
    before = weights.read_bytes()
    monkeypatch.chdir(tmp_path / "weights")
    translator = vidtrans.Translator(load_checkpoint("gen.mkv"), device="cpu")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"gen\.mkv: output would overwrite the input"):
        vidtrans.translate_video(clip, "weights/gen.mkv", translator, overwrite=True)
    assert weights.read_bytes() == before


def test_a_model_found_through_a_relative_search_folder_is_held_by_its_absolute_path(tmp_path, monkeypatch):
    _tiny_model(tmp_path / "models" / "tiny")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDTRANS_MODELS", "models")
    assert checkpoint_path("tiny") == tmp_path / "models" / "tiny"
    assert load_checkpoint("tiny").files[0] == tmp_path / "models" / "tiny" / "card.json"


@pytest.mark.parametrize("spelling", [".", "./", "sub/..", "tiny/card.json"])
def test_the_current_folder_as_a_checkpoint_is_named_by_its_folder(tmp_path, monkeypatch, spelling):
    # "." has no name of its own: `vidtrans export .` and Translator(load_checkpoint(".")) were
    # named "", and default outputs clip..mp4.
    model = _tiny_model(tmp_path / "tiny")
    (model / "sub").mkdir()
    monkeypatch.chdir(model if spelling != "tiny/card.json" else tmp_path)
    checkpoint = load_checkpoint(spelling)
    assert checkpoint.name == "tiny" and checkpoint.path == model


# --- 2: what is no model name -------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"batch": vidtrans.BatchOptions(report="report.json")},
                                      {"options": vidtrans.RunOptions(smoothing="flow", smoothing_strength=0.5)}],
                         ids=["report", "smoothing strength"])
def test_a_model_name_holding_a_nul_is_refused_in_one_line_by_batch(tmp_path, clip, settings, monkeypatch):
    # Looked up on the search path (for the files a report must not replace, for the card's
    # smoothing), it failed with ValueError.
    monkeypatch.chdir(tmp_path)
    clips = tmp_path / "in"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(clip.read_bytes())
    with pytest.raises(UsageError) as raised:
        translate_folder(clips, tmp_path / "out", "pose\0person", **settings)
    assert "\n" not in str(raised.value) and r"pose\x00person" in str(raised.value)
    assert r"cannot hold a NUL character (\x00)" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_model_name_too_long_for_a_file_name_is_not_found_in_one_short_line(caplog):
    name = "x" * 5000
    with caplog.at_level(logging.WARNING), pytest.raises(VidtransError) as raised:
        checkpoint_path(name)
    message = str(raised.value)
    assert message.startswith("model 'xxxxxxxx") and "'... not found (available: " in message, message
    assert len(message) < 400 and "\n" not in message
    # No search folder is at fault: none is reported as skipped.
    assert caplog.records == []


def test_a_path_too_long_is_one_short_line(tmp_path, caplog):
    path = str(tmp_path) + "/a" * 3000
    with caplog.at_level(logging.WARNING), pytest.raises(VidtransError) as raised:
        checkpoint_path(path)
    message = str(raised.value)
    assert len(message) < 400 and "\n" not in message, message
    assert message.endswith("/a/a/a: file name too long; pass a checkpoint folder, a .pth file or a model name")
    assert caplog.records == []


@pytest.mark.parametrize("value", [5, b"x", 2.5])
def test_a_model_given_as_no_name_or_path_is_named_as_such(value):
    # It said "no model given (5)", though something was given.
    with pytest.raises(UsageError) as raised:
        vidtrans.load_model(value, device="cpu")
    assert str(raised.value) == (f"{value!r} is no model name or path (a str or os.PathLike); name a model, a "
                                 "checkpoint folder or a .pth file")


def test_a_path_in_the_home_of_a_user_who_does_not_exist_is_not_found_in_one_line():
    # Path.expanduser raised RuntimeError ("Could not determine home directory.").
    with pytest.raises(VidtransError, match=r"^~nobody-such/m\.pth: no such file or folder; pass a checkpoint "):
        vidtrans.load_model("~nobody-such/m.pth", device="cpu")


@pytest.mark.parametrize("value", [None, ""])
def test_no_model_is_still_said_to_be_none(value):
    with pytest.raises(UsageError, match=rf"^no model given \({value!r}\); name a model, a checkpoint folder or a "
                                         r"\.pth file$"):
        vidtrans.load_model(value, device="cpu")


# --- 3: a search path entry that is a file --------------------------------------------------------------


def test_a_search_path_entry_that_is_a_file_is_skipped_with_a_warning(tmp_path, cli, monkeypatch, caplog):
    entry = tmp_path / "models.txt"
    entry.write_text("tiny\n")
    _tiny_model(tmp_path / "models" / "tiny")
    warning = (f"{entry}: cannot look for models there (a file, not a folder), so it was skipped; take it off the "
               "model search path")
    monkeypatch.setenv("VIDTRANS_MODELS", os.pathsep.join([str(entry), str(tmp_path / "models")]))
    with caplog.at_level(logging.WARNING):
        assert checkpoint_path("tiny") == tmp_path / "models" / "tiny"
    assert [record.getMessage() for record in caplog.records] == [warning]

    # Told once per process: another file for the command.
    entry = tmp_path / "more-models.txt"
    entry.write_text("")
    listed = cli("models", env={**os.environ, "VIDTRANS_MODELS": str(entry)})
    assert listed.returncode == 0, listed.stderr
    assert f"vidtrans: warning: {warning.replace('models.txt', 'more-models.txt')}" in listed.stderr.splitlines()


# --- 4: import-pix2pix --overwrite onto a trained checkpoint ---------------------------------------------


def test_import_over_a_trained_checkpoint_leaves_only_the_new_checkpoint_and_the_users_files(tmp_path, cli):
    # What training writes: the model, its background, its state and its sample grids.
    folder = _tiny_model(tmp_path / "ck", **{BACKGROUND_NAME: lambda f: f.write(_png(64, 64)),
                                              "train_state.pt": lambda f: torch.save({"iteration": 1}, f),
                                              "samples/iter_0000001.png": lambda f: f.write(_png(8, 8))})
    (tmp_path / "other").mkdir()
    _tiny_model(tmp_path / "other" / "ck", **{"samples/iter_0000001.png": lambda f: f.write(_png(8, 8))})
    (tmp_path / "other" / "ck" / "samples" / "notes.txt").write_text("mine")
    (folder / "notes.txt").write_text("mine")
    generator = tmp_path / "g.pth"
    torch.save(random_generator("unet_128", 3, 3, 8, "batch").state_dict(), generator)

    result = cli("import-pix2pix", generator, "-o", folder, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "model.safetensors", "notes.txt"]
    # A samples folder holding something of the user's keeps it, and stays.
    result = cli("import-pix2pix", generator, "-o", tmp_path / "other" / "ck", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "other" / "ck" / "samples").iterdir()) == ["notes.txt"]


# --- 5: a background.png declaring a huge image ------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, rows: int | None = None) -> bytes:
    """An RGB PNG of `width` x `height` black pixels whose data holds only its first `rows` rows (all
    by default): the header of a huge image over a few bytes."""
    data = zlib.compress(b"\0" * ((3 * width + 1) * (height if rows is None else rows)))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))


def test_a_background_declaring_a_huge_image_is_refused_from_its_header(tmp_path, cli):
    # OpenCV allocated and decoded all 20000x20000 pixels (2.6 GB, 13 s for a whole 1 MB file)
    # before the size check; this one holds two rows, which OpenCV called no readable image.
    folder = _tiny_model(tmp_path / "models" / "tiny", **{BACKGROUND_NAME: lambda f: f.write(_png(20000, 20000, 2))})
    expected = (f"{folder / BACKGROUND_NAME}: 20000x20000, but the model's native size is 64x64; resize the image "
                "to that or delete it")
    with pytest.raises(VidtransError) as raised:
        load_checkpoint(folder)
    assert str(raised.value) == expected
    assert one_line(cli("export", folder, "-o", tmp_path / "x.onnx"), 1) == f"vidtrans: error: {expected}"
    assert not (tmp_path / "x.onnx").exists()


def test_a_background_png_with_a_damaged_header_is_no_readable_image(tmp_path):
    png = bytearray(_png(64, 64))
    png[12:16] = b"IHDX"  # the first chunk is no IHDR
    folder = _tiny_model(tmp_path / "tiny", **{BACKGROUND_NAME: lambda f: f.write(bytes(png))})
    with pytest.raises(VidtransError, match=r"background\.png: not a readable image; replace it with a PNG"):
        load_checkpoint(folder)


def test_a_background_of_the_native_size_still_loads(tmp_path):
    folder = _tiny_model(tmp_path / "tiny", **{BACKGROUND_NAME: lambda f: f.write(_png(64, 64))})
    assert load_checkpoint(folder).background.shape == (64, 64, 3)
