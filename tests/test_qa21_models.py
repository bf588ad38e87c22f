"""QA pass 21: models given by path, files of a model that cannot be read, damaged pix2pix files, ONNX Runtime."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import (BACKGROUND_NAME, CARD_NAME, WEIGHTS_NAME, ModelCard, import_pix2pix,
                                        load_checkpoint, save_background, save_checkpoint)

REPO = Path(__file__).resolve().parents[1]
# Root reads any file; without these capabilities it meets permissions as a user does.
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def tiny_model(folder: Path) -> Path:
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 4, "instance"),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64)))
    return folder


def load_error(model) -> str:
    with pytest.raises(VidtransError) as caught:
        load_checkpoint(model)
    return str(caught.value)


# --- 1. a generator saved as model.safetensors, with no card beside it ---------------------------------


def test_an_upstream_generator_named_model_safetensors_loads_as_a_file(tmp_path, cli):
    net = random_generator("resnet_6blocks", 3, 3, 4, "instance")
    (tmp_path / "download").mkdir()
    weights = tmp_path / "download" / WEIGHTS_NAME  # Hugging Face's usual name for weights
    save_file(net.state_dict(), weights)
    model = vidtrans.load_model(weights, device="cpu", backend="torch")
    assert (model.card.architecture, model.card.ngf, model.native_size) == ("resnet_6blocks", 4, (256, 256))
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False).path
    result = cli("run", clip, "-m", weights, "-o", tmp_path / "out.mp4", "--backend", "torch", "--model-size", "64")
    assert result.returncode == 0 and (tmp_path / "out.mp4").is_file(), result.stderr
    # A checkpoint's own weights still stand for their folder, card and all.
    folder = tiny_model(tmp_path / "ck")
    assert vidtrans.load_model(folder / WEIGHTS_NAME, device="cpu", backend="torch").native_size == (64, 64)


# --- 2. files of a model that are no file, or that cannot be read ----------------------------------------


@pytest.mark.parametrize("name", [WEIGHTS_NAME, BACKGROUND_NAME])
@pytest.mark.parametrize("kind", ["folder", "broken link"])
def test_weights_or_background_that_are_no_file_are_named(tmp_path, cli, name, kind):
    folder = tiny_model(tmp_path / "ck")
    path = folder / name
    path.unlink(missing_ok=True)
    if kind == "folder":
        path.mkdir()
        expected = f"{path}: is a folder, not a file; "
    else:
        path.symlink_to(tmp_path / "gone.bin")
        expected = f"{path}: a link to {tmp_path / 'gone.bin'}, which does not exist; "
    # Before: a background.png of either kind was passed over, the model running without its
    # target's empty scene; weights of either kind were called missing.
    assert load_error(folder).startswith(expected)
    listed = cli("models", env={**os.environ, "VIDTRANS_MODELS": str(tmp_path)})
    assert listed.returncode == 0 and f"vidtrans: warning: {expected}" in listed.stderr, listed.stderr


def test_files_of_a_model_that_cannot_be_read_say_so(tmp_path):
    if os.geteuid() == 0 and (shutil.which("setpriv") is None
                              or subprocess.run([*NO_OVERRIDE, "true"]).returncode != 0):
        pytest.skip("running as root, and root's permission override cannot be dropped here")
    weights = tiny_model(tmp_path / "weights")
    background = tiny_model(tmp_path / "background")
    save_background(background, torch.zeros(64, 64, 3, dtype=torch.uint8).numpy())
    upstream = tmp_path / "G.pth"
    torch.save(random_generator("resnet_6blocks", 3, 3, 4, "instance").state_dict(), upstream)
    locked = [weights / WEIGHTS_NAME, background / BACKGROUND_NAME, upstream]
    for path in locked:
        path.chmod(0)
    script = ("import sys\nfrom vidtrans.models.checkpoint import load_checkpoint\nfor model in sys.argv[1:]:\n"
              "    try:\n        load_checkpoint(model)\n    except Exception as e:\n        print(e)\n")
    prefix = NO_OVERRIDE if os.geteuid() == 0 else []
    child = subprocess.run([*prefix, sys.executable, "-c", script, str(weights), str(background), str(upstream)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = child.stdout.splitlines()
    # Before: "damaged or truncated weights (No such file or directory ...)", "not a readable
    # image; replace it", and "cannot read (Permission denied); re-save the generator".
    assert lines == [f"{path}: cannot be read (Permission denied); check the permissions of it and of the folders it "
                     "is in" for path in locked], child.stdout + child.stderr


# --- 3. a pix2pix file missing one layer is named by that layer -----------------------------------------


@pytest.mark.parametrize("arch, missing", [("resnet_6blocks", "model.1.bias"), ("resnet_6blocks", "model.23.weight"),
                                           ("resnet_6blocks", "model.1.weight"), ("unet_256", "model.model.0.weight"),
                                           ("unet_256", "model.model.1.model.1.bias")])
def test_a_pix2pix_file_missing_one_layer_names_it(tmp_path, arch, missing):
    state_dict = random_generator(arch, 3, 3, 4, "instance").state_dict()
    del state_dict[missing]
    path = tmp_path / "G.pth"
    torch.save(state_dict, path)
    with pytest.raises(VidtransError) as caught:
        import_pix2pix(path)
    # Before: read as norm none ("tensor 'model.4.bias' is not part of it"), as another output
    # channel count ("field 'output_nc' must be 1 or 3, got 4"), or as an unknown layout.
    message = str(caught.value)
    assert f"{missing!r} is missing" in message or f"no layer {missing!r}" in message, message
    assert "none norm" not in message and "output_nc" not in message, message


@pytest.mark.parametrize("name", ["model.1.weight", "model.99.weight"])
def test_a_tiny_pix2pix_file_declaring_a_huge_tensor_is_one_line(tmp_path, name):
    state_dict = random_generator("resnet_6blocks", 3, 3, 4, "instance").state_dict()
    state_dict[name] = torch.zeros(1).expand(1 << 16, 1 << 16, 7, 7)  # 800 GB declared, 4 bytes stored
    path = tmp_path / "G.pth"
    torch.save(state_dict, path)
    assert path.stat().st_size < 1 << 20
    # Before: RuntimeError "DefaultCPUAllocator: can't allocate memory", checking the values first.
    with pytest.raises(VidtransError, match="its layers do not make a whole|is not part of it"):
        import_pix2pix(path)


# --- 4. ONNX Runtime writes nothing of its own -----------------------------------------------------------


def test_the_onnxruntime_backend_writes_nothing_outside_vidtrans_cache(tmp_path):
    pytest.importorskip("onnxruntime")
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    script = "from vidtrans.models import onnx_backend\nassert onnx_backend.available()\n"
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0 and child.stderr == "", child.stderr
    # Before: ONNX Runtime's device id and telemetry database, in Microsoft/DeveloperTools/.onnxruntime.
    assert list(cache.iterdir()) == []


# --- 5. a card saved with a byte-order mark --------------------------------------------------------------


def test_a_card_saved_with_a_byte_order_mark_loads(tmp_path, cli):
    folder = tiny_model(tmp_path / "ck")
    card = folder / CARD_NAME
    card.write_bytes(b"\xef\xbb\xbf" + card.read_bytes())  # Notepad's and PowerShell's UTF-8
    assert load_checkpoint(folder).card.ngf == 4
    card.write_bytes(b"\xef\xbb\xbf" + b"{")
    line = one_line(cli("export", folder, "-o", tmp_path / "g.onnx"), 1)
    assert line.startswith(f"vidtrans: error: {card}: not valid JSON"), line
