"""Flat frames (every pixel alike: black at a fade, a title card's background) through a ResNet
whose norms use each frame's own statistics: rounding noise amplified layer after layer made them
pictures of noise, different in torch and ONNX Runtime; they come out as exact arithmetic has them."""

from __future__ import annotations

import numpy as np
import pytest

import vidtrans
from tests.media import random_generator
from vidtrans.models import onnx_backend
from vidtrans.models.checkpoint import ModelCard, save_checkpoint

BACKENDS = ["torch", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not onnx_backend.available(), reason="needs onnxruntime (pip install onnxruntime)"))]


def model_folder(tmp_path, architecture: str, norm: str):
    folder = tmp_path / f"{architecture}-{norm}"
    net = random_generator(architecture, 3, 3, 8, norm, seed=1)
    if norm == "batch":  # a shift and scale of their own, as trained batch norms have
        for module in net.modules():
            if hasattr(module, "running_mean"):
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.5, 0.5)
    save_checkpoint(folder, net, ModelCard(architecture=architecture, ngf=8, norm=norm, native_size=(64, 64)))
    return folder


def flat(color, count=1, size=(64, 64)) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.uint8), (count, *size, 3)).copy()


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_flat_frames_are_the_same_picture_in_every_backend_and_batch(tmp_path, norm, backend):
    folder = model_folder(tmp_path, "resnet_6blocks", norm)
    reference = vidtrans.load_model(folder, device="cpu", backend="torch")
    model = vidtrans.load_model(folder, device="cpu", backend=backend)
    black = reference.translate(flat((0, 0, 0)))[0]
    # The first norm takes the frame's colour away: every flat frame gives the same picture.
    frames = np.concatenate([flat((0, 0, 0)), flat((200, 30, 90)),
                             np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), np.uint8), flat((16, 16, 16))])
    out = model.translate(frames)
    for i in (0, 1, 3):
        assert np.abs(out[i].astype(int) - black).max() <= 1, f"flat frame {i}"
    # A frame with something in it goes through the network as before, alone or in a batch.
    alone = model.translate(frames[2:3])[0]
    assert np.abs(out[2].astype(int) - alone).max() <= 1
    assert np.abs(alone.astype(int) - reference.translate(frames[2:3])[0]).max() <= 1


def test_a_frame_one_pixel_from_flat_is_not_taken_for_flat(tmp_path):
    model = vidtrans.load_model(model_folder(tmp_path, "resnet_6blocks", "instance"), device="cpu", backend="torch")
    almost = flat((100, 100, 100))
    almost[0, 32, 32] = (101, 100, 100)
    assert not np.array_equal(model.translate(almost), model.translate(flat((100, 100, 100))))


def test_the_flat_picture_is_computed_only_for_batches_that_hold_one(tmp_path, monkeypatch):
    from vidtrans.models import translator

    calls = []
    real = translator.flat_frame_output
    monkeypatch.setattr(translator, "flat_frame_output", lambda *args: calls.append(args[2:]) or real(*args))
    model = vidtrans.load_model(model_folder(tmp_path, "resnet_6blocks", "instance"), device="cpu", backend="torch")
    model.translate(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), np.uint8))
    assert calls == []  # a pass of the network's CPU copy, paid only when needed
    model.translate(flat((0, 0, 0), 2))
    model.translate(flat((9, 9, 9)))
    assert calls == [(64, 64)]  # once per size


def test_flat_frames_through_a_u_net_in_bf16_come_out_as_in_fp32():
    """A U-Net's maps of a flat frame vary only by what zero padding gives at their edges, which bf16
    rounds away: the shipped pose2person gave black 15 grey levels from fp32. A pose video's empty
    frames and fades are flat; they now come out as fp32 has them, in any batch."""
    exact = vidtrans.load_model("pose2person", device="cpu", precision="fp32")
    model = vidtrans.load_model("pose2person", device="cpu", precision="bf16")
    pose = np.zeros((1, 256, 256, 3), np.uint8)
    pose[0, 60:200, 120:130] = (255, 0, 85)  # a limb: not flat, through bf16 as before
    # A fade through more colours than are kept, black at both ends.
    fade = [flat((v, v, v), size=(256, 256)) for v in range(0, 40, 2)] + [flat((0, 0, 0), size=(256, 256))]
    frames = np.concatenate([*fade[:3], pose, *fade[3:]])
    out = model.translate(frames)
    flat_rows = [i for i in range(len(frames)) if i != 3]
    assert np.abs(out[flat_rows].astype(int) - exact.translate(frames[flat_rows])).max() <= 1
    assert np.array_equal(out[3], model.translate(pose)[0])
    assert np.array_equal(out, np.concatenate([model.translate(frame) for frame in frames[:, None]]))
