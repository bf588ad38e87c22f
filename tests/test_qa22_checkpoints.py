"""QA round 22, checkpoints a researcher brings: generators built and saved as
pytorch-CycleGAN-and-pix2pix builds and saves them (its networks written out here as upstream writes
them, not vidtrans's), run through every backend against the upstream network itself, and files
that are no such generator, each refused in one line naming the problem and the fix."""

import functools

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import vidtrans
from tests.conftest import one_line
from tests.media import assert_same_frames, make_clip


# --- pytorch-CycleGAN-and-pix2pix's models/networks.py, as upstream writes it -------------------------


class Identity(nn.Module):
    def forward(self, x):
        return x


def get_norm_layer(norm_type):
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)

    def norm_layer(x):
        return Identity()
    return norm_layer


def use_bias_for(norm_layer):
    if type(norm_layer) == functools.partial:  # noqa: E721 (upstream's test)
        return norm_layer.func == nn.InstanceNorm2d
    return norm_layer == nn.InstanceNorm2d


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm_layer, use_dropout, use_bias):
        super().__init__()
        block = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm_layer(dim),
                 nn.ReLU(True)]
        if use_dropout:
            block += [nn.Dropout(0.5)]
        block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks):
        super().__init__()
        use_bias = use_bias_for(norm_layer)
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                 norm_layer(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                      norm_layer(ngf * mult * 2), nn.ReLU(True)]
        model += [ResnetBlock(ngf * 4, norm_layer, use_dropout, use_bias) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1,
                                         output_padding=1, bias=use_bias),
                      norm_layer(int(ngf * mult / 2)), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        use_bias = use_bias_for(norm_layer)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu, downnorm = nn.LeakyReLU(0.2, True), norm_layer(inner_nc)
        uprelu, upnorm = nn.ReLU(True), norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            if use_dropout:
                model += [nn.Dropout(0.5)]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf, norm_layer, use_dropout):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm_layer=norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm_layer=norm_layer,
                                            use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm_layer=norm_layer)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             norm_layer=norm_layer)

    def forward(self, x):
        return self.model(x)


def define_G(input_nc, output_nc, ngf, net_g, norm, use_dropout, seed=0):
    """Upstream's define_G with init_type normal (0.02); then batch norm scales, shifts and running
    statistics, and biases, that matter, as trained weights have them."""
    torch.manual_seed(seed)
    norm_layer = get_norm_layer(norm)
    if net_g.startswith("resnet"):
        net = ResnetGenerator(input_nc, output_nc, ngf, norm_layer, use_dropout, int(net_g[7]))
    else:
        net = UnetGenerator(input_nc, output_nc, {"unet_128": 7, "unet_256": 8}[net_g], ngf, norm_layer, use_dropout)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0.0, 0.02)
                if m.bias is not None:
                    m.bias.uniform_(-0.05, 0.05)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net


def upstream_test(net, frames, input_nc=3, dtype=torch.float32):
    """What upstream's test.py makes of uint8 RGB frames: PIL's grey for --input_nc 1, train mode
    (a batch of one frame), dropout off as vidtrans runs it; a grey output shown as RGB. In
    `dtype`: float64 stands for exact arithmetic. Returns float levels (0-255) unrounded."""
    net = net.to(dtype).train()
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    if input_nc == 1:
        frames = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in frames])[..., None]
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(dtype) / 127.5 - 1
    with torch.no_grad():
        y = torch.cat([net(x[i:i + 1]) for i in range(len(x))]).double()
    net.float()
    return ((y.expand(-1, 3, -1, -1) + 1) * 127.5).clamp(0, 255).permute(0, 2, 3, 1).numpy()


def levels(got, expected):
    return float(np.abs(got.astype(np.float64) - np.round(expected)).max())


def random_frames(count, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


SIZES = {"unet_128": 128, "unet_256": 256, "resnet_6blocks": 32, "resnet_9blocks": 32}


# --- every layout, every backend -------------------------------------------------------------------


@pytest.mark.parametrize("arch,norm,dropout,channels", [  # a sample of the 96 layouts checked once by hand
    ("unet_128", "instance", False, (1, 3)), ("resnet_6blocks", "batch", True, (1, 1)),
    ("resnet_9blocks", "none", False, (3, 1)),
])
def test_upstream_generators_match_upstream_on_both_backends_at_any_batch_size(tmp_path, arch, norm, dropout,
                                                                              channels):
    pytest.importorskip("onnxruntime")
    net = define_G(*channels, 8, arch, norm, dropout)
    path = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)  # as DataParallel saved it
    size = SIZES[arch]
    frames = random_frames(8, size, size, seed=1)
    expected = upstream_test(net, frames, channels[0])
    for backend in ("torch", "onnxruntime"):
        model = vidtrans.load_model(path, device="cpu", precision="fp32", size=size, backend=backend)
        batched = model.translate(frames)
        assert levels(batched, expected) <= 1, backend
        assert_same_frames(batched, np.concatenate([model.translate(frames[i:i + 1]) for i in range(8)]))


@pytest.mark.parametrize("saved", ["fp16", "wrapped", "model_entry", "legacy"])
def test_upstream_files_saved_other_ways_translate_as_the_generator_they_hold(tmp_path, saved):
    net = define_G(3, 3, 8, "resnet_6blocks", "batch", False)
    state = net.state_dict()
    path = tmp_path / f"{saved}.pth"
    if saved in ("fp16", "bf16"):
        state = {k: v.to(getattr(torch, {"fp16": "float16", "bf16": "bfloat16"}[saved]))
                 if v.is_floating_point() else v for k, v in state.items()}
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    saved_as = {"wrapped": {"state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4}]}},
                "model_entry": {"model": state, "epoch": 200}}.get(saved, state)
    torch.save(saved_as, path, _use_new_zipfile_serialization=saved != "legacy")
    frames = random_frames(3, 64, 64, seed=2)
    model = vidtrans.load_model(path, device="cpu", precision="auto", size=64, backend="torch")
    assert levels(model.translate(frames), upstream_test(net, frames)) <= 1


# --- near-flat frames on ONNX Runtime --------------------------------------------------------------


def near_flat_frames(size):
    """Frames of one colour but for one pixel a grey level off (a fade, a title card, a backdrop)."""
    frames = np.zeros((3, size, size, 3), np.uint8)
    frames[0], frames[0, -1, -1, 2] = 200, 199
    frames[1, 10, 10, 0] = 1
    frames[2], frames[2, 5, 5] = 16, 17
    return frames


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_near_flat_frames_on_onnxruntime_are_what_exact_arithmetic_gives(tmp_path, cli, norm):
    # ONNX Runtime took each map's mean as a float32 sum of its values, whose rounding a map of
    # almost equal values (variance far below eps) sees amplified ~300 times by every norm: up to 56
    # grey levels from exact arithmetic (CycleGAN's resnet_9blocks, ngf 64), where torch stays within 1.
    ort = pytest.importorskip("onnxruntime")
    net = define_G(3, 3, 16, "resnet_6blocks", norm, False, seed=5)
    path = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), path)
    frames = near_flat_frames(64)
    exact = upstream_test(net, frames, dtype=torch.float64)
    for backend in ("torch", "onnxruntime"):
        model = vidtrans.load_model(path, device="cpu", precision="fp32", size=64, backend=backend)
        assert levels(model.translate(frames), exact) <= 1, backend
    if norm == "batch":
        return
    # `vidtrans export` writes the same graph.
    onnx_path = tmp_path / "g.onnx"
    assert cli("export", path, "-o", onnx_path).returncode == 0
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().numpy() / 127.5 - 1
    y = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert levels(((y + 1) * 127.5).clip(0, 255).transpose(0, 2, 3, 1), exact) <= 1.5


# --- what is no pix2pix generator, or no file of one ----------------------------------------------


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator (--netG global): pix2pix's ResNet but for its 4 downsamplings."""

    def __init__(self, input_nc, output_nc, ngf=4, n_downsampling=4, n_blocks=9):
        super().__init__()
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0), nn.InstanceNorm2d(ngf),
                 nn.ReLU(True)]
        for i in range(n_downsampling):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
                      nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        mult = 2 ** n_downsampling
        model += [ResnetBlock(ngf * mult, get_norm_layer("instance"), False, True) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1,
                                         output_padding=1), nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "clip.mp4"
    make_clip(path, frames=3, size=(32, 32), audio=False)
    return path


@pytest.mark.parametrize("command", ["run", "export"])
def test_a_pix2pixhd_generator_is_named_as_such_not_as_an_incomplete_file(tmp_path, cli, clip, command):
    path = tmp_path / "latest_net_G.pth"
    torch.save(GlobalGenerator(36, 3).state_dict(), path)  # label maps of 35 classes and an edge map
    output = tmp_path / ("out.mp4" if command == "run" else "out.onnx")
    result = cli(command, *([clip, "--model"] if command == "run" else []), path, "-o", output)
    line = one_line(result, 1)
    assert "4 downsamplings" in line and "pix2pixHD" in line and "complete" not in line, line
    assert "resnet_9blocks" in line and not output.exists()


@pytest.mark.parametrize("files", [("latest_net_G.pth", "latest_net_D.pth", "5_net_G.pth"),
                                   ("latest_net_G_A.pth", "latest_net_G_B.pth", "latest_net_D_A.pth")],
                         ids=["pix2pix", "cyclegan"])
def test_an_upstream_checkpoints_folder_names_its_generator_files(tmp_path, cli, clip, files):
    folder = tmp_path / "horse2zebra"
    folder.mkdir()
    state = define_G(3, 3, 4, "resnet_6blocks", "instance", False).state_dict()
    for name in files:
        torch.save(state, folder / name)
    line = one_line(cli("run", clip, "--model", folder, "-o", tmp_path / "out.mp4"), 1)
    generators = [name for name in files if name.startswith("latest_net_G")]
    assert f"pass its generator's file, such as {folder / generators[0]}" in line, line
    assert all(name in line for name in generators) and "net_D" not in line and "5_net_G" not in line
    assert not (tmp_path / "out.mp4").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)


class Payload:
    """What unpickling would call: a marker file made, the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_file(tmp_path, kind):
    """A file that is no usable generator, and what its error line must say."""
    from safetensors.torch import save

    state = define_G(3, 3, 4, "resnet_6blocks", "instance", False).state_dict()
    tensors = save({k: v.contiguous() for k, v in state.items()})
    header_end = 8 + int.from_bytes(tensors[:8], "little")
    path = tmp_path / {"huge_header": "G.safetensors", "lying_header": "G.safetensors"}.get(kind, "latest_net_G.pth")
    if kind == "whole_object":  # torch.save(net): the network's classes pickled with its weights
        torch.save(define_G(3, 3, 4, "resnet_6blocks", "instance", False), path)
        return path, "holds pickled Python objects"
    if kind == "code":
        torch.save({"model.1.weight": Payload(tmp_path / "ran")}, path)
        return path, "holds pickled Python objects"
    if kind == "lying_header":  # a tensor said to end far beyond the file
        header = tensors[8:header_end].replace(b'"data_offsets":[0,', b'"data_offsets":[0,9', 1)
        path.write_bytes(len(header).to_bytes(8, "little") + header + tensors[header_end:])
        return path, "damaged or truncated safetensors file"
    if kind == "huge_header":  # its length field damaged
        path.write_bytes((2**62).to_bytes(8, "little") + tensors[8:])
        return path, "damaged or truncated safetensors file"
    if kind == "not_torch_zip":
        import zipfile
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("weights.txt", "0.1 0.2")
        return path, "not a readable PyTorch file"
    state["model.1.weight"][0, 0, 0, 0] = float("inf")
    torch.save(state, path)
    return path, "tensor 'model.1.weight' holds NaN or infinite values"


@pytest.mark.parametrize("command", ["run", "export", "batch"])
@pytest.mark.parametrize("kind", ["whole_object", "code", "lying_header", "huge_header", "not_torch_zip", "infinite"])
def test_hostile_model_files_are_one_line_in_every_command_and_nothing_is_written(tmp_path, cli, clip, kind, command):
    path, problem = hostile_file(tmp_path, kind)
    before = path.read_bytes()
    out = tmp_path / "out"
    args = {"run": ["run", clip, "--model", path, "-o", out.with_suffix(".mp4")],
            "export": ["export", path, "-o", out.with_suffix(".onnx")],
            "batch": ["batch", clip.parent, "--model", path, "-o", out]}[command]
    line = one_line(cli(*args), 1)
    assert line.startswith(f"vidtrans: error: {path}: ") and problem in line, line
    assert "; " in line.partition(problem)[2]  # a fix follows
    assert not any(p.exists() for p in (out, out.with_suffix(".mp4"), out.with_suffix(".onnx"), tmp_path / "ran"))
    assert path.read_bytes() == before
