"""QA round 23, precision: what `--precision auto` running bf16 on CPUs with AVX-512 BF16 changes
(ResNets whose norms use each frame's own statistics, temporal models), and messages that echo a
device, precision or normalization."""

import numpy as np
import pytest
import torch

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.errors import UsageError
from vidtrans.models import translator as translator_module
from vidtrans.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from vidtrans.models.networks import use_per_sample_stats

LONG = "x" * 300


# --- messages quote long values briefly ------------------------------------------------------------

@pytest.mark.parametrize("setting", ["device", "precision", "normalization"])
def test_a_long_device_precision_or_normalization_is_quoted_briefly(rgb_model_dir, setting):
    with pytest.raises(UsageError) as refused:
        vidtrans.load_model(rgb_model_dir, **{"device": "cpu", setting: LONG})
    message = str(refused.value)
    assert f"unknown {setting} 'xxxx" in message and "'..." in message and len(message) < 160, message


def test_a_long_device_is_quoted_briefly_by_the_cli(cli, rgb_model_dir, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    device = "cuda:" + "9" * 300
    line = one_line(cli("run", clip.path, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4", "--device", device), 2)
    assert "unknown device 'cuda:999" in line and "'..." in line and len(line) < 200, line
    assert not (tmp_path / "out.mp4").exists()


# --- ResNets with per-frame norms stay fp32 under --precision auto ---------------------------------

def resnet_dir(folder, temporal=None, norm="instance"):
    """A resnet_6blocks card that allows half precision (as a vidtrans-trained one may)."""
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm=norm, native_size=(64, 64), half_precision=True,
                     input_nc=6 if temporal else 3, temporal=temporal)
    save_checkpoint(folder, random_generator("resnet_6blocks", 6 if temporal else 3, 3, 8, norm, seed=0), card)
    return folder


def exact(folder, frame: np.ndarray) -> np.ndarray:
    """What float64 arithmetic makes of one frame (64x64, the native size: no resampling)."""
    net = load_checkpoint(folder).build().double().eval()
    use_per_sample_stats(net, True)
    x = torch.from_numpy(frame[None]).permute(0, 3, 1, 2).double() / 127.5 - 1
    with torch.no_grad():
        y = (net(x) + 1) * 127.5
    return y.round().clamp(0, 255).permute(0, 2, 3, 1)[0].numpy().astype(int)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU that multiplies bf16 in hardware, where `auto` picks bf16 for models that allow it."""
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: True)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_a_near_flat_frame_through_a_resnet_under_auto_is_what_exact_arithmetic_gives(tmp_path, bf16_cpu, norm):
    # A frame of one colour but for a pixel one grey level off (a fade, a dark scene): each norm
    # divides its maps' tiny variation by about sqrt(eps), so bf16's rounding of the maps came out
    # up to 180 grey levels from exact arithmetic (fp32: within 1).
    folder = resnet_dir(tmp_path / "resnet", norm=norm)
    frame = np.full((64, 64, 3), 40, np.uint8)
    frame[10, 10] = 41
    model = vidtrans.load_model(folder, device="cpu", backend="torch")
    assert model.precision == "fp32"
    assert np.abs(model.translate(frame).astype(int) - exact(folder, frame)).max() <= 1


def test_a_temporal_resnet_under_auto_does_not_drift_from_fp32(tmp_path, bf16_cpu):
    # Each output is fed back in: bf16's differences grew frame after frame (4 grey levels on the
    # first, 13 by the fourth, 49 by the twelfth) where ONNX Runtime's fp32 stays within 1 of torch's.
    folder = resnet_dir(tmp_path / "temporal", temporal={"previous": "output", "first": "black"})
    rng = np.random.default_rng(0)
    clip = np.clip(rng.integers(0, 256, (1, 64, 64, 3)) + rng.integers(-10, 11, (4, 64, 64, 3)), 0, 255)
    clip = clip.astype(np.uint8)
    auto = vidtrans.load_model(folder, device="cpu", backend="torch")
    fp32 = vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")
    assert np.abs(auto.translate(clip).astype(int) - fp32.translate(clip)).max() <= 1


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_a_unet_that_allows_half_precision_still_runs_bf16_under_auto(tmp_path, bf16_cpu, norm):
    # Its first layer pads with zeros, so even a flat frame's maps have real edges: near-flat frames
    # lose far less in bf16 (the shipped pose2person: PSNR 42-47 dB against fp32; its pose maps 56 dB).
    folder = tmp_path / "unet"
    save_checkpoint(folder, random_generator("unet_128", 3, 3, 8, norm, seed=0),
                    ModelCard(architecture="unet_128", ngf=8, norm=norm, native_size=(128, 128), half_precision=True))
    assert vidtrans.load_model(folder, device="cpu", backend="torch").precision == "bf16"
    if norm == "batch":  # running statistics: only batch norm keeps them
        assert vidtrans.load_model(folder, device="cpu", backend="torch", normalization="running").precision == "bf16"


def test_a_resnet_with_running_statistics_still_runs_bf16_under_auto(tmp_path, bf16_cpu):
    # Eval-mode batch norm (pix2pix's --eval) does not look at the map: nothing to amplify.
    folder = resnet_dir(tmp_path / "resnet", norm="batch")
    assert vidtrans.load_model(folder, device="cpu", backend="torch", normalization="running").precision == "bf16"
    assert vidtrans.load_model(folder, device="cpu", backend="torch").precision == "fp32"
