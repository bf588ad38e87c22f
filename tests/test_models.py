"""Networks, upstream checkpoint import, checkpoints, and the exact batched translator."""

import json
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import vidtrans
from tests.media import assert_same_frames, upstream_frames
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, import_pix2pix, load_checkpoint, save_checkpoint
from vidtrans.models.networks import NLayerDiscriminator, build_generator
from vidtrans.models import translator as translator_module

# Parameter counts pix2pix prints for its networks ("Total number of parameters"), and key names
# read from its models/networks.py: an independent check that our layout is upstream's.
UPSTREAM_PARAMS = {
    ("unet_256", "batch"): 54_413_955,
    ("resnet_9blocks", "instance"): 11_378_179,
}
UPSTREAM_KEYS = {
    "unet_256": {"model.model.0.weight": (64, 3, 4, 4), "model.model.1.model.1.weight": (128, 64, 4, 4),
                 "model.model.1.model.2.running_mean": (128,), "model.model.3.weight": (128, 3, 4, 4),
                 "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight": (512, 512, 4, 4)},
    "resnet_9blocks": {"model.1.weight": (64, 3, 7, 7), "model.10.conv_block.1.weight": (256, 256, 3, 3),
                       "model.10.conv_block.5.weight": (256, 256, 3, 3), "model.26.weight": (3, 64, 7, 7)},
}


def random_generator(arch, norm, ngf=8, input_nc=3, output_nc=3, dropout=False, seed=0):
    torch.manual_seed(seed)
    net = build_generator(arch, input_nc, output_nc, ngf, norm, dropout)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                # Non-trivial affine params and running stats, so "sample" and "running" differ.
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return net


def to_uint8_frames(y):
    return ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def frames(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("arch,norm", sorted(UPSTREAM_PARAMS))
def test_parameter_counts_match_upstream(arch, norm):
    net = build_generator(arch, 3, 3, 64, norm)
    assert sum(p.numel() for p in net.parameters()) == UPSTREAM_PARAMS[(arch, norm)]
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for key, shape in UPSTREAM_KEYS[arch].items():
        assert shapes[key] == shape, key


def test_patchgan_matches_upstream_layout():
    net = NLayerDiscriminator(6, 64, 3, "batch")
    assert sum(p.numel() for p in net.parameters()) == 2_768_705
    assert [k for k in net.state_dict() if k.endswith("weight")][-1] == "model.11.weight"
    assert net(torch.zeros(1, 6, 256, 256)).shape == (1, 1, 30, 30)


ARCHS = [("unet_256", 256), ("unet_128", 128), ("resnet_6blocks", 64), ("resnet_9blocks", 64)]


VARIANTS = [("batch", "plain"), ("batch", "dataparallel"), ("instance", "plain"), ("instance", "dataparallel"),
            ("instance", "old_instance_stats")]


@pytest.mark.parametrize("arch,size", ARCHS)
@pytest.mark.parametrize("norm,variant", VARIANTS)
def test_upstream_checkpoints_load_and_translate_like_upstream(tmp_path, arch, size, norm, variant):
    dropout = arch.startswith("resnet")  # covers the shifted resnet layout; U-Net dropout has no weights
    net = random_generator(arch, norm, dropout=dropout)
    state = net.state_dict()
    if variant == "dataparallel":
        state = {f"module.{k}": v for k, v in state.items()}
    if variant == "old_instance_stats":
        # PyTorch < 0.4 saved running stats for InstanceNorm layers, under the norm layer's index.
        norm_index = "model.model.1.model.2" if arch.startswith("unet") else "model.2"
        state[f"{norm_index}.running_mean"] = torch.zeros(16)
        state[f"{norm_index}.running_var"] = torch.ones(16)
        state[f"{norm_index}.num_batches_tracked"] = torch.tensor(0)
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)

    checkpoint = import_pix2pix(path)
    assert checkpoint.card.architecture == arch
    assert (checkpoint.card.ngf, checkpoint.card.norm, checkpoint.card.dropout) == (8, norm, dropout)

    model = vidtrans.load_model(path, device="cpu", precision="fp32")  # the reference is fp32
    model.card.native_size = (size, size)
    x = frames(3, size, size, seed=1)
    expected = upstream_frames(net, x)
    got = model.translate(x)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("arch", ["unet_256", "resnet_9blocks"])
def test_batch_equals_frame_by_frame(tmp_path, arch):
    net = random_generator(arch, "batch", ngf=8)
    checkpoint = load_checkpoint_from(net, arch, tmp_path)
    model = vidtrans.load_model(checkpoint, device="cpu")
    x = frames(16, 256, 256, seed=2)
    batched = model.translate(x)
    single = np.concatenate([model.translate(x[i:i + 1]) for i in range(len(x))])
    assert_same_frames(batched, single)


def load_checkpoint_from(net, arch, folder, norm="batch", **card_fields):
    ngf = net.model.model[0].out_channels if arch.startswith("unet") else net.model[1].out_channels
    card = ModelCard(architecture=arch, ngf=ngf, norm=norm, **card_fields)
    save_checkpoint(folder, net, card)
    return folder


def test_running_statistics_option_differs_and_is_eval_mode(tmp_path):
    net = random_generator("unet_256", "batch")
    folder = load_checkpoint_from(net, "unet_256", tmp_path)
    x = frames(2, 256, 256, seed=3)
    running = vidtrans.load_model(folder, device="cpu", normalization="running").translate(x)
    sample = vidtrans.load_model(folder, device="cpu").translate(x)
    net.eval()
    with torch.no_grad():
        expected = to_uint8_frames(net(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1))
    assert np.abs(running.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(running.astype(int) - sample.astype(int)).mean() > 1


@pytest.mark.parametrize("shape", [(270, 480), (721, 1281), (64, 64), (1, 1)])
def test_any_frame_size_comes_back_at_its_own_size(tmp_path, shape):
    net = random_generator("unet_256", "batch")
    model = vidtrans.load_model(load_checkpoint_from(net, "unet_256", tmp_path), device="cpu")
    out = model.translate(frames(2, *shape))
    assert out.shape == (2, *shape, 3) and out.dtype == np.uint8


def test_native_size_is_not_resampled(tmp_path):
    """A constant frame at native size must map to exactly what the network gives (no resampling blur)."""
    net = random_generator("resnet_6blocks", "instance")
    folder = load_checkpoint_from(net, "resnet_6blocks", tmp_path, norm="instance", native_size=(64, 96))
    model = vidtrans.load_model(folder, device="cpu", precision="fp32")  # the reference is fp32
    x = frames(1, 64, 96, seed=4)
    expected = upstream_frames(net, x)
    assert np.abs(model.translate(x).astype(int) - expected.astype(int)).max() <= 1


def test_non_native_aspect_is_kept(tmp_path):
    """A wide frame is scaled to fit the native size with its aspect ratio, padded, and cropped back."""
    net = build_generator("resnet_6blocks", 3, 3, 8, "none")
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    model = vidtrans.load_model(load_checkpoint_from(net, "resnet_6blocks", tmp_path, norm="none"), device="cpu")
    assert model.working_size(90, 200) == (115, 256)
    assert model.working_size(721, 1281) == (144, 256)
    out = model.translate(frames(1, 90, 200))
    assert out.shape == (1, 90, 200, 3)
    assert np.abs(out.astype(int) - 128).max() <= 1  # tanh(0) is mid grey everywhere, borders included


def test_bf16_close_to_fp32(tmp_path):
    net = random_generator("unet_256", "batch")
    folder = load_checkpoint_from(net, "unet_256", tmp_path)
    x = frames(2, 256, 256, seed=5)
    fp32 = vidtrans.load_model(folder, device="cpu", precision="fp32").translate(x).astype(int)
    bf16 = vidtrans.load_model(folder, device="cpu", precision="bf16").translate(x).astype(int)
    # bf16 keeps 8 bits of mantissa: stated tolerance, mean error under 3 levels, 99th pct under 12.
    diff = np.abs(fp32 - bf16)
    assert diff.mean() < 3 and np.percentile(diff, 99) <= 12


@pytest.mark.parametrize("amx,half_allowed,expected", [(True, True, "bf16"), (False, True, "fp32"), (True, False, "fp32")])
def test_auto_precision_on_cpu_is_bf16_only_with_bf16_units_and_card_consent(monkeypatch, amx, half_allowed, expected):
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: amx)
    card = ModelCard(architecture="unet_256", half_precision=half_allowed)
    assert translator_module.resolve_precision("auto", torch.device("cpu"), card, per_sample=True) == expected


AMX = {"amx_bf16": True}  # a Xeon with AMX (the test reads only what a CPU has)
AVX512_BF16 = {"amx_bf16": False, "avx512_bf16": True}  # AMD EPYC since Zen 4, Intel Cooper Lake
NO_BF16 = {"avx2": True, "avx512_f": True, "avx512_vnni": True}


@pytest.mark.parametrize("units,cap,native", [
    # A CPU whose oneDNN is kept to older instructions emulates bf16 (slower than fp32); a name
    # oneDNN does not know caps nothing.
    (AMX, None, True), (AMX, "AVX2", False), (AMX, "avx512_core_bf16", False), (AMX, "AVX512_CORE_AMX", True),
    (AMX, "DEFAULT", True),
    # Without AMX: 19.4 against 10.3 fps of fp32 for unet_256 at batch 8 on a 2-core EPYC; capped at
    # AVX512_CORE_VNNI, 5.6 (emulated).
    (AVX512_BF16, None, True), (AVX512_BF16, "AVX512_CORE_VNNI", False), (AVX512_BF16, "avx512_core_bf16", True),
    (AVX512_BF16, "AVX512_CORE_FP16", True), (AVX512_BF16, "AVX2", False), (AVX512_BF16, "ALL", True),
    (AVX512_BF16, "AVX10_9_1024", True),
    (NO_BF16, None, False),
])
def test_auto_precision_is_bf16_where_the_cpu_multiplies_it_and_onednn_may(monkeypatch, units, cap, native):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: units)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    card = ModelCard(architecture="unet_256", half_precision=True)
    resolved = translator_module.resolve_precision("auto", torch.device("cpu"), card, per_sample=True)
    assert resolved == ("bf16" if native else "fp32")
    if native:  # where bf16 is twice as fast as fp32, torch runs it, whatever ONNX Runtime offers
        assert translator_module.resolve_backend("auto", torch.device("cpu"), "auto") == "torch"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_half_precision_close_to_fp32(tmp_path, precision):
    net = random_generator("unet_256", "batch")
    folder = load_checkpoint_from(net, "unet_256", tmp_path)
    x = frames(4, 256, 256, seed=6)
    fp32 = vidtrans.load_model(folder, device="cuda", precision="fp32").translate(x).astype(int)
    half = vidtrans.load_model(folder, device="cuda", precision=precision).translate(x).astype(int)
    diff = np.abs(fp32 - half)
    assert diff.mean() < 3 and np.percentile(diff, 99) <= 12
    cpu = vidtrans.load_model(folder, device="cpu").translate(x).astype(int)
    assert np.abs(cpu - fp32).max() <= 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_in_flight_give_the_frames_of_one_after_another(tmp_path, monkeypatch):
    """Threads translating at once (the pipeline's two workers, clips of a batch) each use their
    own CUDA stream, at most `in_flight` batches at a time, and get the frames they would alone."""
    folder = load_checkpoint_from(random_generator("unet_256", "batch", ngf=16), "unet_256", tmp_path)
    model = vidtrans.load_model(folder, device="cuda", precision="fp32")
    parts = [frames(4, 256, 256, seed=10 + i) for i in range(8)]
    alone = [model.translate(part) for part in parts]

    active, most = [0], [0]
    counting = threading.Lock()
    translate_tensor = model.translate_tensor

    def counted(*args, **kwargs):
        with counting:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return translate_tensor(*args, **kwargs)
        finally:
            with counting:
                active[0] -= 1

    monkeypatch.setattr(model, "translate_tensor", counted)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(model.translate, parts))
    assert model.in_flight == 2 and 1 <= most[0] <= model.in_flight
    for a, b in zip(alone, together):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_checkpoint_round_trip_and_card(tmp_path):
    net = random_generator("unet_128", "batch")
    card = ModelCard(architecture="unet_128", ngf=8, native_size=(128, 128), input_kind="pose",
                     pose_style={"version": 1}, metrics={"ssim": 0.9})
    save_checkpoint(tmp_path / "m", net, card, dtype=torch.float16)
    data = json.loads((tmp_path / "m" / "card.json").read_text())
    assert data["architecture"] == "unet_128" and data["input_kind"] == "pose" and len(data["weights_sha256"]) == 64
    loaded = load_checkpoint(tmp_path / "m")
    assert loaded.card.native_size == (128, 128) and loaded.card.metrics == {"ssim": 0.9}
    assert loaded.state_dict["model.model.0.weight"].dtype == torch.float16


def test_names_resolve_through_search_path(tmp_path, monkeypatch):
    net = random_generator("unet_128", "batch")
    save_checkpoint(tmp_path / "alice", net, ModelCard(architecture="unet_128", ngf=8, native_size=(128, 128)))
    monkeypatch.setenv("VIDTRANS_MODELS", str(tmp_path))
    assert vidtrans.load_model("alice", device="cpu").card.architecture == "unet_128"
    with pytest.raises(VidtransError, match="not found.*alice"):
        vidtrans.load_model("bob", device="cpu")


def test_bad_checkpoints_give_one_line_errors(tmp_path):
    bad = {
        "missing": tmp_path / "nope.pth",
        "not a checkpoint": tmp_path / "notes.txt",
        "pickled object": tmp_path / "object.pth",
        "discriminator": tmp_path / "latest_net_D.pth",
        "truncated safetensors": tmp_path / "cut",
        "mismatched card": tmp_path / "mismatch",
    }
    bad["not a checkpoint"].write_text("hello")

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    bad["pickled object"].write_bytes(pickle.dumps({"model.1.weight": Payload()}))
    torch.save(NLayerDiscriminator(6, 8).state_dict(), bad["discriminator"])
    net = random_generator("unet_128", "batch")
    save_checkpoint(bad["truncated safetensors"], net, ModelCard(architecture="unet_128", ngf=8))
    weights = bad["truncated safetensors"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    save_checkpoint(bad["mismatched card"], net, ModelCard(architecture="unet_128", ngf=16))
    messages = {}
    for what, path in bad.items():
        with pytest.raises(VidtransError) as info:
            vidtrans.load_model(path, device="cpu")
        messages[what] = str(info.value)
        assert "\n" not in messages[what]
    assert not (tmp_path / "pwned").exists()
    assert "refused to unpickle" in messages["pickled object"]
    assert "discriminator" in messages["discriminator"]
    assert "truncated" in messages["truncated safetensors"]
    assert "unet_128 (ngf 16" in messages["mismatched card"]


def test_unknown_state_dict_layout(tmp_path):
    path = tmp_path / "weird.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(VidtransError, match="unknown layout.*unet_256"):
        import_pix2pix(path)
    path2 = tmp_path / "shapes.pth"
    state = build_generator("unet_128", 3, 3, 8, "batch").state_dict()
    state["model.model.1.model.1.weight"] = torch.zeros(3, 3, 4, 4)
    torch.save(state, path2)
    with pytest.raises(VidtransError, match="do not fit unet_128"):
        import_pix2pix(path2)
