"""Checkpoints: our folder format, upstream pix2pix `.pth` import, and name -> folder lookup.

A checkpoint is a folder holding `model.safetensors` (weights) and `card.json` (everything needed to
rebuild and use the network, plus how it was trained and how well it scored). Nothing on this load
path unpickles: safetensors for our weights, `torch.load(weights_only=True)` for upstream files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vidtrans.atomic import publish
from vidtrans.errors import VidtransError
from vidtrans.models.networks import build_generator

CARD_NAME = "card.json"
WEIGHTS_NAME = "model.safetensors"
CARD_FORMAT = "vidtrans-model"
CARD_VERSION = 1
REPO_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


@dataclass
class ModelCard:
    """What a checkpoint is and how to use it. Stored as card.json beside the weights."""

    architecture: str
    ngf: int = 64
    norm: str = "batch"
    dropout: bool = False
    input_nc: int = 3
    output_nc: int = 3
    native_size: tuple[int, int] = (256, 256)  # (height, width) the network was trained at
    input_kind: str = "rgb"  # "rgb" (any image) or "pose" (rendered pose maps)
    pose_style: dict[str, Any] | None = None  # vidtrans.pose.render.PoseStyle as a dict
    target_pose_stats: dict[str, Any] | None = None  # vidtrans.pose.normalize.PoseStats of the target
    # "sample": batch norm with each frame's own statistics (pix2pix's test-time default);
    # "running": batch norm with the running statistics (pix2pix --eval).
    normalization: str = "sample"
    half_precision: bool = True  # whether fp16/bf16 inference was checked to be faithful
    # Output smoothing `--smooth auto` applies, e.g. {"method": "flow", "strength": 0.5}.
    smoothing: dict[str, Any] | None = None
    description: str = ""
    source: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["native_size"] = list(self.native_size)
        return {"format": CARD_FORMAT, "format_version": CARD_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        if data.get("format") != CARD_FORMAT or data.get("format_version") != CARD_VERSION:
            raise ValueError(f"not a {CARD_FORMAT} card version {CARD_VERSION}")
        known = {f.name for f in dataclasses.fields(cls)}
        card = cls(**{k: v for k, v in data.items() if k in known})
        card.native_size = tuple(card.native_size)
        return card


@dataclass
class Checkpoint:
    card: ModelCard
    state_dict: dict[str, torch.Tensor]
    path: Path

    def build(self) -> nn.Module:
        """The generator with these weights, on the CPU, in fp32."""
        net = build_generator(self.card.architecture, self.card.input_nc, self.card.output_nc, self.card.ngf,
                              self.card.norm, self.card.dropout)
        try:
            net.load_state_dict({k: v.float() for k, v in self.state_dict.items()}, strict=True)
        except RuntimeError as e:
            raise VidtransError(f"{self.path}: weights do not fit {describe(self.card)}: {_first_line(e)}") from e
        return net


def describe(card: ModelCard) -> str:
    return f"{card.architecture} (ngf {card.ngf}, {card.norm} norm, {card.input_nc}->{card.output_nc} channels)"


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(folder: str | os.PathLike, net: nn.Module, card: ModelCard, dtype: torch.dtype = torch.float32) -> Path:
    """Write `net`'s weights and `card` into `folder`, atomically file by file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in net.state_dict().items()}
    weights = folder / WEIGHTS_NAME
    tmp = folder / f".{WEIGHTS_NAME}.partial"
    save_file(tensors, str(tmp))
    publish(tmp, weights)
    card.weights_sha256 = sha256_of(weights)
    tmp = folder / f".{CARD_NAME}.partial"
    tmp.write_text(json.dumps(card.to_dict(), indent=2) + "\n")
    publish(tmp, folder / CARD_NAME)
    return folder


def model_search_path() -> list[Path]:
    """Folders searched for a model given by name, first match wins."""
    paths = [Path(p) for p in os.environ.get("VIDTRANS_MODELS", "").split(os.pathsep) if p]
    paths.append(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vidtrans")
    paths.append(REPO_CHECKPOINTS)
    return paths


def available_models() -> list[Path]:
    """Every checkpoint folder on the search path (first occurrence of each name)."""
    found: dict[str, Path] = {}
    for root in model_search_path():
        if root.is_dir():
            for card in sorted(root.glob(f"*/{CARD_NAME}")):
                found.setdefault(card.parent.name, card.parent)
    return list(found.values())


def resolve(name_or_path: str | os.PathLike) -> Path:
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    if isinstance(name_or_path, str) and re.fullmatch(r"[\w.-]+", name_or_path):
        for root in model_search_path():
            if (root / name_or_path / CARD_NAME).is_file():
                return root / name_or_path
        names = ", ".join(p.name for p in available_models()) or "none"
        raise VidtransError(f"model {name_or_path!r} not found (available: {names}); pass a checkpoint folder or a .pth file")
    raise VidtransError(f"{path}: no such file or folder; pass a checkpoint folder, a .pth file or a model name")


def load_checkpoint(name_or_path: str | os.PathLike) -> Checkpoint:
    """A model by name, checkpoint folder, card.json/model.safetensors path, or upstream pix2pix .pth file."""
    path = resolve(name_or_path)
    if path.is_file() and path.name in (CARD_NAME, WEIGHTS_NAME):
        path = path.parent
    if path.is_dir():
        return _load_folder(path)
    if path.suffix in (".pth", ".pt"):
        return import_pix2pix(path)
    raise VidtransError(f"{path}: not a checkpoint; pass a folder with {CARD_NAME} and {WEIGHTS_NAME}, or a pix2pix .pth file")


def _load_folder(folder: Path) -> Checkpoint:
    card_path, weights_path = folder / CARD_NAME, folder / WEIGHTS_NAME
    for needed in (card_path, weights_path):
        if not needed.is_file():
            raise VidtransError(f"{folder}: not a checkpoint folder ({needed.name} missing)")
    try:
        card = ModelCard.from_dict(json.loads(card_path.read_text()))
    except (ValueError, TypeError) as e:
        raise VidtransError(f"{card_path}: unreadable model card ({_first_line(e)}); re-export the checkpoint") from e
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise VidtransError(f"{weights_path}: damaged or truncated weights ({_first_line(e)}); copy the checkpoint again") from e
    return Checkpoint(card, state_dict, folder)


# --- upstream pytorch-CycleGAN-and-pix2pix ---------------------------------------------------------


def import_pix2pix(path: str | os.PathLike, input_kind: str = "rgb") -> Checkpoint:
    """Read an upstream `latest_net_G.pth` and describe it with a card inferred from its keys."""
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise VidtransError(f"{path}: no such file") from e
    except Exception as e:  # weights_only raises UnpicklingError/RuntimeError for anything but tensors
        raise VidtransError(f"{path}: not a PyTorch state dict of tensors (refused to unpickle objects: "
                            f"{_first_line(e)[:120]}); pass a pix2pix latest_net_G.pth") from e
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise VidtransError(f"{path}: expected a dict of tensors (a generator's state_dict), got {type(raw).__name__}")
    state_dict = {k.removeprefix("module."): v for k, v in raw.items()}
    card = infer_card(state_dict, str(path))
    card.input_kind = input_kind
    card.source = f"imported from pix2pix checkpoint {path.name}"
    state_dict = _drop_instance_norm_stats(state_dict, card)
    checkpoint = Checkpoint(card, state_dict, path)
    checkpoint.build()  # fail now, with a clear message, if the layout does not match
    return checkpoint


def infer_card(state_dict: dict[str, torch.Tensor], where: str) -> ModelCard:
    """Architecture, depth, ngf, norm, channels and dropout layout from the key names and shapes."""
    if "model.model.0.weight" in state_dict:
        return _infer_unet(state_dict)
    if "model.1.weight" in state_dict and any(".conv_block." in k for k in state_dict):
        return _infer_resnet(state_dict)
    if "model.0.weight" in state_dict and not any(".conv_block." in k for k in state_dict):
        raise VidtransError(f"{where}: this looks like a PatchGAN discriminator (net_D); pass the generator (latest_net_G.pth)")
    raise VidtransError(f"{where}: unknown layout; expected a pix2pix/CycleGAN generator (unet_128, unet_256, "
                        f"resnet_6blocks or resnet_9blocks) with keys like model.model.0.weight or model.1.weight")


def _norm_from_keys(state_dict: dict[str, torch.Tensor], norm_key: str, conv_key: str) -> str:
    if f"{norm_key}.weight" in state_dict:
        return "batch"
    if f"{conv_key}.bias" in state_dict:
        return "instance"  # upstream instance norm has no affine weights but its convolutions have biases
    return "none"


def _infer_unet(state_dict: dict[str, torch.Tensor]) -> ModelCard:
    depth, prefix = 1, "model.model.1.model."
    while f"{prefix}1.weight" in state_dict:
        depth += 1
        prefix += "3.model."
    first = state_dict["model.model.0.weight"]
    last = state_dict["model.model.3.weight"]  # ConvTranspose2d: (in, out, kh, kw)
    norm = _norm_from_keys(state_dict, "model.model.1.model.2", "model.model.1.model.1")
    # Dropout layers hold no weights, so they leave no trace in the keys; it does not matter
    # here because inference runs with dropout off for deterministic video.
    return ModelCard(architecture=f"unet_{2 ** depth}", ngf=first.shape[0], norm=norm, dropout=False,
                     input_nc=first.shape[1], output_nc=last.shape[1])


def _infer_resnet(state_dict: dict[str, torch.Tensor]) -> ModelCard:
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}
    first_block = min(blocks)
    dropout = f"model.{first_block}.conv_block.6.weight" in state_dict  # Dropout shifts the second conv from 5 to 6
    first = state_dict["model.1.weight"]
    last_conv = max((int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"model\.(\d+)\.weight", k))))
    norm = _norm_from_keys(state_dict, "model.2", "model.1")
    return ModelCard(architecture=f"resnet_{len(blocks)}blocks", ngf=first.shape[0], norm=norm, dropout=dropout,
                     input_nc=first.shape[1], output_nc=state_dict[f"model.{last_conv}.weight"].shape[0])


def _drop_instance_norm_stats(state_dict: dict[str, torch.Tensor], card: ModelCard) -> dict[str, torch.Tensor]:
    """Old CycleGAN checkpoints carry running stats for InstanceNorm layers that no longer have them."""
    if card.norm != "instance":
        return state_dict
    stats = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in state_dict.items() if k.rsplit(".", 1)[-1] not in stats}
