"""QA pass 15: checkpoints a researcher brings that are damaged or foreign get one line, not a traceback."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.models.checkpoint import CARD_NAME, ModelCard, save_checkpoint, sha256_of


def upstream_state(arch="unet_256", ngf=8):
    return random_generator(arch, 3, 3, ngf, "batch").state_dict()


def broken(kind: str) -> dict:
    """A state_dict as a damaged or hand-edited latest_net_G.pth holds it."""
    if kind == "unet cut short":
        return {"model.model.0.weight": torch.zeros(8, 3, 4, 4)}
    if kind == "unet of vectors":
        return {k: torch.zeros(3) for k in upstream_state()}
    if kind == "resnet of vectors":
        return {k: torch.zeros(()) for k in upstream_state("resnet_6blocks")}
    if kind == "integer names":
        return {**upstream_state(), 7: torch.zeros(3)}
    if kind == "float8 weights":
        return {k: v.to(torch.float8_e4m3fn) if v.is_floating_point() else v for k, v in upstream_state().items()}
    if kind == "sparse weights":
        state = upstream_state()
        state["model.model.0.weight"] = state["model.model.0.weight"].to_sparse()
        return state
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["unet cut short", "unet of vectors", "resnet of vectors", "integer names",
                                  "float8 weights", "sparse weights"])
def test_a_damaged_pix2pix_file_is_refused_in_one_line(tmp_path, cli, kind):
    weights = tmp_path / "latest_net_G.pth"
    torch.save(broken(kind), weights)
    clip = make_clip(tmp_path / "in.mp4", frames=2)
    result = cli("run", clip.path, "--model", weights, "-o", tmp_path / "out.mp4", "--pose", "none")
    assert str(weights) in one_line(result, 1)
    assert not (tmp_path / "out.mp4").exists()
    result = cli("export", weights, "-o", tmp_path / "out.onnx")
    assert result.returncode != 0 and result.exception is None, result.stderr


def test_float8_weights_in_a_vidtrans_folder_are_refused_in_one_line(tmp_path, cli):
    folder = tmp_path / "model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 4, "instance"),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64)))
    weights = load_file(folder / "model.safetensors")
    metadata = safe_open(str(folder / "model.safetensors"), "pt").metadata()
    save_file({k: v.to(torch.float8_e4m3fn) for k, v in weights.items()}, folder / "model.safetensors", metadata)
    card = json.loads((folder / CARD_NAME).read_text())  # as if saved so: the card names these weights
    card["weights_sha256"] = sha256_of(folder / "model.safetensors")
    (folder / CARD_NAME).write_text(json.dumps(card))
    clip = make_clip(tmp_path / "in.mp4", frames=2)
    result = cli("run", clip.path, "--model", folder, "-o", tmp_path / "out.mp4")
    assert "float8_e4m3fn" in one_line(result, 1)


# --- other hostile inputs found in the same pass -------------------------------------------------------


@pytest.mark.parametrize("args", [("live", "--camera", "²"), ("live", "--size", "²x20"), ("live", "--serve", "²"),
                                  ("batch", "in", "-o", "out", "--ray", "host:²")])
def test_digits_of_other_scripts_are_refused_in_one_line(tmp_path, cli, args):
    (tmp_path / "in").mkdir()
    result = cli(*[str(tmp_path / a) if a in ("in", "out") else a for a in args])
    assert result.returncode in (1, 2) and result.exception is None, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "vidtrans: error" in result.stderr, result.stderr


def test_a_keypoint_file_declaring_an_impossible_shape_is_refused_in_one_line(tmp_path, cli):
    import io
    import zipfile

    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (10**11, 18, 3)})
    with zipfile.ZipFile(tmp_path / "k.npz", "w") as z:
        z.writestr("keypoints.npy", buffer.getvalue())
        for name in ("width", "height"):
            small = io.BytesIO()
            np.save(small, np.array(64))
            z.writestr(f"{name}.npy", small.getvalue())
    clip = make_clip(tmp_path / "in.mp4", frames=2)
    result = cli("run", clip.path, "--keypoints", tmp_path / "k.npz", "-o", tmp_path / "out.mp4")
    assert "k.npz" in one_line(result, 1)


def test_a_folder_named_like_a_model_does_not_hide_it(tmp_path, monkeypatch):
    """`vidtrans batch clips/ -o pose2person/` then `vidtrans run clip.mp4`: the default model is
    still the shipped one, not the output folder in the current directory."""
    from vidtrans.models.checkpoint import SHIPPED_CHECKPOINTS, resolve

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pose2person").mkdir()
    assert resolve("pose2person") == SHIPPED_CHECKPOINTS / "pose2person"
    (tmp_path / "pose2person" / CARD_NAME).write_text("{}")  # a checkpoint folder of that name: the user's
    assert resolve("pose2person").resolve() == tmp_path / "pose2person"


def test_importing_a_vidtrans_models_own_weights_is_refused_and_changes_nothing(tmp_path, cli):
    folder = tmp_path / "model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 4, "instance"),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64)))
    (folder / "train_state.pt").write_bytes(b"a training run's state")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = cli("import-pix2pix", folder / "model.safetensors", "-o", folder, "--overwrite")
    assert "need no import" in one_line(result, 1)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_an_upstream_file_is_found_whatever_the_case_of_its_extension(tmp_path):
    import vidtrans

    path = tmp_path / "LATEST_NET_G.PTH"
    torch.save(upstream_state("unet_128"), path)
    assert vidtrans.load_model(path, device="cpu").card.architecture == "unet_128"


def test_a_fifo_named_like_a_checkpoint_is_not_called_missing(tmp_path, cli):
    import os

    fifo = tmp_path / "net.pth"
    os.mkfifo(fifo)
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    line = one_line(cli("run", clip.path, "-m", fifo, "-o", tmp_path / "out.mp4"), 1)
    assert f"{fifo}: is a FIFO, not a file; pass a pix2pix latest_net_G.pth" in line


def test_load_model_takes_no_device_as_auto(rgb_model_dir):
    import vidtrans

    assert vidtrans.load_model(rgb_model_dir, device=None).device == vidtrans.load_model(rgb_model_dir).device
