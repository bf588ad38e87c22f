"""QA round 24, models: weights that are finite as stored but not as the network computes with
them, batch norm statistics no training makes, and the ONNX graph cache when the weights change
while a model loads."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.models import onnx_backend
from vidtrans.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from vidtrans.models.translator import Translator

needs_onnx = pytest.mark.skipif(not onnx_backend.available(), reason="needs onnx and onnxruntime (pip install "
                                "'vidtrans[onnx]')")


def tiny_card(norm="instance"):
    return ModelCard(architecture="resnet_6blocks", ngf=8, norm=norm, native_size=(64, 64))


def with_weights(folder, change, **card):
    """`folder`'s checkpoint with its weights passed through `change` (and these card fields):
    the card's sha256 cleared, as someone editing the weights would leave it."""
    weights = folder / "model.safetensors"
    save_file(change(load_file(str(weights))), str(weights))
    fields = {**json.loads((folder / "card.json").read_text()), "weights_sha256": "", "weights_id": "", **card}
    (folder / "card.json").write_text(json.dumps(fields))
    return folder


def filled(name, value):
    """Tensor `name` in float64, every value `value`."""
    return lambda tensors: {**tensors, name: torch.full_like(tensors[name], value, dtype=torch.float64)}


def negative_variance(tensors):
    return {k: -v.abs() - 1 if k.endswith("running_var") else v for k, v in tensors.items()}


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48)).path


# float64 weights of 1e300 are finite as stored, and infinite in the float32 the network computes
# in: every frame came out black, exit 0. A batch norm variance below zero (no training makes one)
# is the square root of a negative number with running statistics: black frames again.
@pytest.mark.parametrize("change, norm, normalization, said", [
    (filled("model.1.weight", 1e300), "instance", "sample", "beyond float32's range"),
    (filled("model.1.bias", -1e39), "instance", "sample", "beyond float32's range"),
    (negative_variance, "batch", "running", "negative"),
], ids=["weight", "bias", "variance"])
def test_weights_the_network_cannot_compute_with_are_refused_in_every_command(tmp_path, cli, clip, change, norm,
                                                                               normalization, said):
    folder = tmp_path / "model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, norm, seed=0), tiny_card(norm))
    with_weights(folder, change, normalization=normalization)
    name = "running_var" if said == "negative" else "model.1"
    for command in (["run", clip, "--model", folder, "-o", tmp_path / "out.mp4"],
                    ["export", folder, "-o", tmp_path / "out.onnx"]):
        line = one_line(cli(*command), 1)
        assert name in line and said in line, line
    with pytest.raises(vidtrans.VidtransError, match=said):
        vidtrans.load_model(folder, device="cpu")
    # The same tensors in an upstream generator's .pth: refused before anything is written.
    pth = tmp_path / "latest_net_G.pth"
    torch.save(change(random_generator("resnet_6blocks", 3, 3, 8, norm, seed=0).state_dict()), pth)
    line = one_line(cli("import-pix2pix", pth, "-o", tmp_path / "imported", "--normalization", normalization), 1)
    assert said in line, line
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.onnx").exists()
    assert not (tmp_path / "imported").exists()


def test_float64_weights_within_float32s_range_still_load(tmp_path):
    folder = tmp_path / "model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0), tiny_card())
    frame = np.random.default_rng(0).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    expected = vidtrans.load_model(folder, device="cpu", precision="fp32").translate(frame)
    with_weights(folder, lambda tensors: {k: v.double() for k, v in tensors.items()})
    np.testing.assert_array_equal(vidtrans.load_model(folder, device="cpu", precision="fp32").translate(frame),
                                  expected)


@needs_onnx
def test_weights_replaced_while_a_model_loads_never_get_the_old_graph(tmp_path, monkeypatch):
    # Training saving into the folder a run is loading from: the graph of the weights loaded was
    # cached under the name of the weights saved meanwhile, and every later run of the new weights
    # on onnxruntime translated with the old ones.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0), tiny_card())
    old = load_checkpoint(folder)
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=1), tiny_card(),
                    replaces=True)
    frame = np.random.default_rng(0).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    old_frames = Translator(old, device="cpu", backend="onnxruntime").translate(frame)
    new_frames = vidtrans.load_model(folder, device="cpu", backend="onnxruntime").translate(frame)
    assert np.abs(old_frames.astype(int) - Translator(old, device="cpu", backend="torch").translate(frame)).max() <= 1
    assert np.abs(new_frames.astype(int) - vidtrans.load_model(folder, device="cpu", backend="torch")
                  .translate(frame)).max() <= 1


@needs_onnx
def test_export_of_a_model_with_a_large_native_size_takes_little_memory(tmp_path):
    # The graph was exported and checked at the native size: at 8192x8192 some 30 GB (the machine's
    # memory, then a traceback or the kernel's kill), at 2048x2048 2 GB and half a minute, for a
    # graph that is the same at every size.
    import os
    import resource
    import subprocess
    import sys

    folder = tmp_path / "model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(8192, 8192)))

    def limited():  # address space for the interpreter, torch and ONNX Runtime, not for 8192x8192 maps
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    done = subprocess.run([sys.executable, "-m", "vidtrans", "export", str(folder), "-o", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, preexec_fn=limited,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "m.onnx").stat().st_size > 0


@needs_onnx
def test_what_onnx_runtime_cannot_run_is_one_line(tmp_path, cli, clip, monkeypatch):
    # ONNX Runtime's exceptions are no RuntimeError: one running out of memory (a limit the
    # translator could not see) escaped `run --backend onnxruntime` and `export` as a traceback.
    import onnxruntime
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0), tiny_card())
    vidtrans.load_model(folder, device="cpu", backend="onnxruntime")  # the graph cached

    def out_of_memory(*args, **kwargs):
        raise Fail("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Conv node. Status "
                   "Message: bfc_arena.cc:360 Failed to allocate memory for requested buffer of size 402653184")

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", out_of_memory)
    line = one_line(cli("run", clip, "--model", folder, "--backend", "onnxruntime", "-o", tmp_path / "out.mp4"), 1)
    assert "out of CPU memory" in line and "smaller model size or batch size" in line, line
    line = one_line(cli("export", folder, "-o", tmp_path / "out.onnx"), 1)
    assert "out of CPU memory" in line, line
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.onnx").exists()


def prefixed(prefix, net):
    return {prefix + k: v for k, v in net.state_dict().items()}


# torch.compile(net).state_dict() names "model.1.weight" "_orig_mod.model.1.weight" (written out here:
# importing torch's compiler takes seconds).
@pytest.mark.parametrize("wrap", [
    lambda net: prefixed("_orig_mod.", net),
    lambda net: prefixed("module._orig_mod.", net),  # compiled, then DataParallel
    lambda net: {"netG": prefixed("_orig_mod.", net), "epoch": 3},  # a training script's whole save
], ids=["compiled", "data-parallel-compiled", "nested"])
def test_a_generator_saved_through_torch_compile_translates_as_the_generator(tmp_path, wrap):
    # A generator saved after torch.compile names its tensors "_orig_mod.…": it was refused as an
    # unknown layout.
    net = random_generator("resnet_6blocks", 3, 3, 8, "batch", seed=0)
    torch.save(net.state_dict(), tmp_path / "plain.pth")
    torch.save(wrap(net), tmp_path / "wrapped.pth")
    frame = np.random.default_rng(0).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    expected = vidtrans.load_model(tmp_path / "plain.pth", device="cpu").translate(frame)
    np.testing.assert_array_equal(vidtrans.load_model(tmp_path / "wrapped.pth", device="cpu").translate(frame),
                                  expected)


def test_a_file_holding_a_tensor_twice_under_wrapped_names_is_refused(tmp_path, cli):
    # "module.model.1.weight" and "model.1.weight" are one layer: one of them was used unsaid.
    state = random_generator("resnet_6blocks", 3, 3, 8, "batch", seed=0).state_dict()
    pth = tmp_path / "latest_net_G.pth"
    torch.save({**{"module." + k: v for k, v in state.items()}, "model.1.weight": torch.zeros(8, 3, 7, 7)}, pth)
    line = one_line(cli("import-pix2pix", pth, "-o", tmp_path / "imported"), 1)
    assert "'model.1.weight' twice" in line and "'module.model.1.weight'" in line, line
    assert not (tmp_path / "imported").exists()


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only file system (a read-only bind mount of an empty folder); skipped
    where this process may not mount (not root, or no mount privilege)."""
    import subprocess

    folder = tmp_path / "read-only"
    folder.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    try:
        if not mounted or subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)],
                                         capture_output=True).returncode:
            pytest.skip("cannot make a read-only bind mount here")
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_checkpoint_folder_on_a_read_only_file_system_says_so(tmp_path, cli, read_only_folder):
    # os.access's "no" was reported as "permission denied", whatever the reason.
    pth = tmp_path / "latest_net_G.pth"
    torch.save(random_generator("resnet_6blocks", 3, 3, 8, "batch", seed=0).state_dict(), pth)
    line = one_line(cli("import-pix2pix", pth, "-o", read_only_folder / "imported"), 2)
    assert "cannot write the checkpoint there (Read-only file system)" in line, line
