"""pix2pix generators, the PatchGAN discriminator and pix2pixHD's multi-scale discriminator.

Module nesting, parameter names and shapes follow pytorch-CycleGAN-and-pix2pix's
`models/networks.py` exactly (including its quirks, e.g. convolutions without bias when the norm
layer is batch norm or none), so its `latest_net_G.pth` files load with `strict=True`.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

GENERATORS = ("unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks")
NORMS = ("batch", "instance", "none")


class BatchNorm2d(nn.BatchNorm2d):
    """Batch norm that can normalize each sample with its own statistics.

    pix2pix's test script leaves the generator in train mode, so batch norm uses the statistics
    of a batch of one frame. Normalizing each sample on its own with the learned scale/shift gives
    exactly that result for any batch size, which makes batched video inference identical to
    frame-by-frame inference. Off (plain batch norm) during training.
    """

    per_sample = False
    flat_exact = False  # see `flat_maps_exact`
    shifted = False  # see `shifted_statistics`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.per_sample:
            return super().forward(x)
        # Batch norm in train mode normalizes with the biased variance, as instance norm does.
        y = (_shifted_instance_norm(x, self.weight, self.bias, self.eps) if self.shifted
             else F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps))
        return _flat_to_shift(x, y, self.bias) if self.flat_exact else y


class InstanceNorm2d(nn.InstanceNorm2d):
    """pix2pix's instance norm (no scale or shift, no running statistics), and `flat_exact`."""

    flat_exact = False  # see `flat_maps_exact`
    shifted = False  # see `shifted_statistics`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _shifted_instance_norm(x, self.weight, self.bias, self.eps) if self.shifted else super().forward(x)
        return _flat_to_shift(x, y, None) if self.flat_exact else y


def _shifted_instance_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                           eps: float) -> torch.Tensor:
    """Instance norm (biased variance, then the scale and shift where given) with each map's
    statistics taken of its differences to its first value: exact arithmetic gives the same."""
    return F.instance_norm(x - x[:, :, :1, :1], weight=weight, bias=bias, eps=eps)


def _flat_to_shift(x: torch.Tensor, y: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
    """`y`, the normalized `x`, with every map of `x` whose values are all the same set to what
    normalizing it gives exactly: 0, then the shift."""
    flat = x.amax((2, 3), keepdim=True) == x.amin((2, 3), keepdim=True)
    exact = torch.zeros_like(y) if shift is None else shift[:, None, None].expand_as(y)
    return torch.where(flat, exact, y)


def use_per_sample_stats(net: nn.Module, enabled: bool = True) -> None:
    """Switch every batch norm of `net` between per-sample statistics and its usual behaviour."""
    for module in net.modules():
        if isinstance(module, BatchNorm2d):
            module.per_sample = enabled


def shifted_statistics(net: nn.Module) -> nn.Module:
    """`net` with every per-sample norm computing its statistics as `_shifted_instance_norm` does:
    the graph ONNX Runtime runs. A map of almost equal values (from a frame of one colour but for a
    pixel a grey level off) has a variance far below eps, so its norm divides by about sqrt(eps),
    amplifying the rounding of its mean some 300 times, and every norm after it again: ONNX
    Runtime's float32 mean of the values themselves (its InstanceNormalization's, or ReduceMean's)
    put such frames up to 56 grey levels from exact arithmetic (resnet_9blocks, ngf 64), where
    torch's kernel stays within 1. Differences to the map's first value are as small as the map's
    variation, and so is their rounding; instance norm does not change when a map is shifted, and
    the subtraction costs nothing measurable (unet_256 ngf 64: 178.6 against 180.3 ms of CPU a frame)."""
    for module in net.modules():
        if isinstance(module, (BatchNorm2d, InstanceNorm2d)):
            module.shifted = True
    return net


def flat_maps_exact(net: nn.Module) -> nn.Module:
    """`net` with every norm normalizing a map of equal values to exactly what exact arithmetic
    gives (0, then the shift), for `flat_frame_output`."""
    for module in net.modules():
        if isinstance(module, (BatchNorm2d, InstanceNorm2d)):
            module.flat_exact = True
    return net


def flat_frame_degenerate(architecture: str, norm: str, per_sample: bool) -> bool:
    """Whether the generator's output for a flat frame (every pixel alike: black, at a fade) is
    rounding noise. A ResNet's first layer (reflect padding, then a convolution) turns a flat
    frame into flat maps, which rounding leaves varying by about a millionth of their value;
    normalizing with the map's own statistics divides that by sqrt(eps) and, layer after layer,
    amplifies it into a picture of noise, different in every backend (ONNX Runtime and torch 250
    grey levels apart). A U-Net's first layer pads with zeros, which gives a flat frame's maps real
    edges; batch norm with running statistics does not look at the map."""
    return architecture.startswith("resnet") and (norm == "instance" or (norm == "batch" and per_sample))


@torch.no_grad()
def flat_frame_output(net: nn.Module, channels: int, height: int, width: int) -> torch.Tensor:
    """What exact arithmetic makes of a flat frame of height x width (in its model's input
    range) through `net`, a generator for which `flat_frame_degenerate` holds, prepared by
    `flat_maps_exact`: the first norm maps any flat frame to its shift, whatever its colour, so
    the frame is all zeros here, which keeps every map after it exactly flat or exactly computed."""
    return net(torch.zeros(1, channels, height, width))


def _norm_factory(norm: str):
    if norm == "batch":
        return lambda channels: BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "instance":
        return lambda channels: InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")


def _conv_bias(norm: str) -> bool:
    # Upstream gives convolutions a bias only when followed by instance norm (batch norm has its
    # own shift; with no norm it is an upstream quirk we must keep for the weights to fit).
    return norm == "instance"


class UnetSkipConnectionBlock(nn.Module):
    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        make_norm = _norm_factory(norm)
        bias = _conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, make_norm(inner_nc), submodule, uprelu, upconv, make_norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` halvings: input sides must be multiples of 2**num_downs."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: str = "batch",
                 use_dropout: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net needs at least 5 downsamplings")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, use_dropout: bool):
        super().__init__()
        make_norm = _norm_factory(norm)
        bias = _conv_bias(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, bias=bias), make_norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Two stride-2 downsamplings, `n_blocks` residual blocks, two upsamplings: sides must be multiples of 4,
    from 8 (`smallest_input`)."""

    num_downs = 2

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, norm: str = "batch", use_dropout: bool = False,
                 n_blocks: int = 9):
        super().__init__()
        make_norm = _norm_factory(norm)
        bias = _conv_bias(norm)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, bias=bias), make_norm(ngf),
                  nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                       make_norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1,
                                          output_padding=1, bias=bias),
                       make_norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: classifies overlapping patches (70x70 with n_layers=3) as real or fake."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        make_norm = _norm_factory(norm)
        bias = _conv_bias(norm)
        layers = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=stride, padding=1, bias=bias),
                       make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each convolution block (after its activation), then the patch logits: what
        pix2pixHD's feature matching compares between real and generated pairs."""
        found = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                found.append(x)
        return found + [x]


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's discriminator: one PatchGAN per scale, the first on the input, each next one on it
    average-pooled to half the previous size; with the same patch size, the coarse scales judge the
    whole figure and the finest the detail. forward gives each scale's `NLayerDiscriminator.features`
    (its scales keep NLayerDiscriminator's key layout, under `scales.N.`)."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch", scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(NLayerDiscriminator(input_nc, ndf, n_layers, norm) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for i, scale in enumerate(self.scales):
            if i:  # pix2pixHD's downsampling, which ignores the padding at the borders
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale.features(x))
        return outputs


def init_weights(net: nn.Module, gain: float = 0.02) -> None:
    """pix2pix's 'normal' init: N(0, 0.02) for convolutions, N(1, 0.02) for norm scales."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, gain)
            nn.init.zeros_(module.bias)


# Bounds on what a name may ask for, so a bad card cannot request an absurd network.
MAX_UNET_SIZE = 8192
MAX_RESNET_BLOCKS = 64


def parse_generator(architecture: str) -> tuple[str, int]:
    """("unet", halvings) or ("resnet", residual blocks) for a generator name such as unet_256;
    ValueError for anything build_generator cannot build."""
    name = architecture if isinstance(architecture, str) else ""
    if m := re.fullmatch(r"unet_([0-9]+)", name):
        size = int(m.group(1))
        if 32 <= size <= MAX_UNET_SIZE and not size & (size - 1):
            return "unet", size.bit_length() - 1
    if m := re.fullmatch(r"resnet_([0-9]+)blocks", name):
        if 1 <= int(m.group(1)) <= MAX_RESNET_BLOCKS:
            return "resnet", int(m.group(1))
    raise ValueError(f"unknown generator {architecture!r}; expected one of {', '.join(GENERATORS)} (or unet_N for "
                     f"a power of two N from 32 to {MAX_UNET_SIZE}, resnet_Nblocks for N from 1 to {MAX_RESNET_BLOCKS})")


# Activation values one frame's forward pass holds at its peak, per input pixel and per unit of
# ngf. Measured as peak RSS growth of whole translations on the CPU in fp32 (frames of 1024x1024,
# batches of 1 and 2, ngf 16 and 64), which also holds the translator's copies of input and output:
# ResNets 3.0-3.4 (their full-resolution layers: a norm's input and output beside the reflection
# padding), U-Nets 1.0-1.4 (the outermost skip connection beside its concatenation).
_PEAK_ACTIVATIONS_PER_NGF = {"resnet": 3.0, "unet": 1.5}


def peak_activations(architecture: str, ngf: int, height: int, width: int) -> int:
    """About how many values the activations of one frame's forward pass at height x width hold at
    their peak: the memory a pass needs besides its input and output."""
    kind, _ = parse_generator(architecture)
    return math.ceil(_PEAK_ACTIVATIONS_PER_NGF[kind] * ngf * height * width)


def input_multiple(architecture: str) -> int:
    """Input height and width must be multiples of this: 2**halvings for a U-Net (unet_256: 256), 4 for a ResNet."""
    kind, count = parse_generator(architecture)
    return 2**count if kind == "unet" else 2**ResnetGenerator.num_downs


def smallest_input(architecture: str) -> int:
    """The smallest input height or width the generator takes (a multiple of `input_multiple`): a
    U-Net's multiple (1x1 at its innermost layer); 8 for a ResNet, whose residual blocks
    reflect-pad by 1, which needs 2 rows and columns there, after its two halvings."""
    kind, _ = parse_generator(architecture)
    return 2 * 2**ResnetGenerator.num_downs if kind == "resnet" else input_multiple(architecture)


def default_size(architecture: str) -> int:
    """The square size upstream trains a generator at when nothing says otherwise: unet_N at N
    (its smallest input), a ResNet at 256 (pix2pix's default crop)."""
    kind, count = parse_generator(architecture)
    return 2**count if kind == "unet" else 256


def build_generator(architecture: str, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch",
                    dropout: bool = False) -> nn.Module:
    kind, count = parse_generator(architecture)
    if kind == "unet":
        return UnetGenerator(input_nc, output_nc, count, ngf, norm, dropout)
    return ResnetGenerator(input_nc, output_nc, ngf, norm, dropout, n_blocks=count)


def generator_shapes(architecture: str, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "batch",
                     dropout: bool = False) -> dict[str, tuple[int, ...]]:
    """The name and shape of each tensor in `build_generator`'s state_dict, from a network built on
    the meta device: no memory whatever its size (resnet_6blocks at ngf 4096 holds 128 GB)."""
    with torch.device("meta"):
        net = build_generator(architecture, input_nc, output_nc, ngf, norm, dropout)
    return {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}


def widen_input(state_dict: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """The weights `state_dict` of a generator like `net` but with fewer input channels, its first
    convolution given zero weights for `net`'s extra (last) channels: `net` loaded with them
    computes what the narrower generator did, whatever those channels hold. How a temporal model
    (frame, then previous output) starts from a frame-by-frame one."""
    name, conv = next((name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv2d))
    weight = state_dict[f"{name}.weight"]
    extra = conv.in_channels - weight.shape[1]
    if extra <= 0:
        return state_dict
    zeros = weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])
    return {**state_dict, f"{name}.weight": torch.cat([weight, zeros], 1)}
