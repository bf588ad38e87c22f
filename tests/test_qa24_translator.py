"""QA pass 24, the translator: a network whose arithmetic overflows made NaN, which rounding to
uint8 turned into flat grey or black frames, a video of them written and told as done."""

import numpy as np
import pytest
import torch

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, save_checkpoint


@pytest.fixture(scope="module")
def overflowing_model(tmp_path_factory):
    """Finite weights (they pass the checks on load), a million times too large: activations overflow."""
    folder = tmp_path_factory.mktemp("overflowing") / "model"
    net = random_generator("unet_128", 3, 3, 8, "none", seed=1)
    with torch.no_grad():
        for weight in (p for p in net.parameters() if p.ndim == 4):
            weight.mul_(1e6)
    save_checkpoint(folder, net, ModelCard(architecture="unet_128", ngf=8, norm="none", native_size=(128, 128)))
    return folder


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_output_that_is_not_finite_is_an_error_not_a_grey_frame(overflowing_model, precision):
    model = vidtrans.load_model(overflowing_model, device="cpu", precision=precision)
    frames = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), np.uint8)
    fix = "use another checkpoint" if precision == "fp32" else "use precision='fp32'"
    with pytest.raises(VidtransError, match=f"NaN or infinite values, its arithmetic overflowing in {precision}; {fix}"):
        model.translate(frames)


def test_run_with_such_a_model_fails_in_one_line_and_writes_nothing(overflowing_model, tmp_path, cli):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", overflowing_model, "--precision", "fp32")
    assert "NaN or infinite values" in one_line(result, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_compiled_half_precision_u_net_compiles_once_for_clips_with_flat_frames(tmp_path):
    """Flat frames go through half-precision U-Nets in fp32, handed to the compiled graph as a tensor
    beside the frames: None until the first flat frame, then a tensor, compiled it a second time."""
    from torch._dynamo.utils import counters

    folder = tmp_path / "unet"
    save_checkpoint(folder, random_generator("unet_128", 3, 3, 8, "batch", seed=0),
                    ModelCard(architecture="unet_128", ngf=8, norm="batch", native_size=(128, 128)))
    model = vidtrans.load_model(folder, device="cpu", precision="bf16")
    exact = vidtrans.load_model(folder, device="cpu", precision="fp32")
    model.compile()
    frames = np.random.default_rng(0).integers(0, 256, (4, 128, 128, 3), np.uint8)
    model.translate(frames)
    graphs = counters["stats"]["unique_graphs"]
    frames[1] = 0
    out = model.translate(frames)
    assert counters["stats"]["unique_graphs"] == graphs
    assert np.abs(out[1].astype(int) - exact.translate(frames[1:2])[0]).max() <= 1
