"""Checkpoints: our folder format, upstream pix2pix `.pth` import, and name -> folder lookup.

A checkpoint is a folder holding `model.safetensors` (weights) and `card.json` (everything needed to
rebuild and use the network, plus how it was trained and how well it scored). Nothing on this load
path unpickles: safetensors for our weights, `torch.load(weights_only=True)` for upstream files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import importlib.resources
import json
import logging
import os
import pickle
import re
import secrets
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors
from torch import nn

from vidtrans.atomic import (discard, filled_temporary, publish_together, same_file, special_file_kind,
                             write_atomically)
from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.models.networks import (NORMS, ResnetGenerator, build_generator, default_size, generator_shapes,
                                     parse_generator)
from vidtrans.options import (MAX_SIZE, MIN_SIZE, SMOOTHING_METHODS, InputKind, Normalization, is_finite_number,
                              is_int, plain_number, shown, shown_path, spell, spell_setting)
from vidtrans.runner import stop_signals_deferred

log = logging.getLogger(__name__)

CARD_NAME = "card.json"
WEIGHTS_NAME = "model.safetensors"
CARD_FORMAT = "vidtrans-model"
CARD_VERSION = 1
INPUT_KINDS = InputKind.values()
NORMALIZATIONS = Normalization.values()
BACKGROUND_NAME = "background.png"
# What training keeps beside the model in its output folder (vidtrans.train.trainer): the state it
# resumes from and its sample grids. They belong to the model, and go when it is replaced.
TRAIN_STATE_NAME = "train_state.pt"
SAMPLES_FOLDER = "samples"
SAMPLE_GRIDS = "iter_*.png"
# The files of a model (besides sample grids): a checkpoint folder holds them as one set.
MODEL_FILE_NAMES = (CARD_NAME, WEIGHTS_NAME, BACKGROUND_NAME, TRAIN_STATE_NAME)
# What an upstream generator's file is called (a safetensors one is told by its content too).
UPSTREAM_SUFFIXES = (".pth", ".pt", ".safetensors")
# Where the weights' header keeps the card's `weights_id`.
WEIGHTS_ID_KEY = "vidtrans_weights_id"
# Fields that every card has had since format_version 1 and that no default can stand in for: they
# say which network the weights are for and what it sees (a missing "input_kind" would feed a pose
# model photos; a missing "ngf" would fail as weights that do not fit). Fields added later
# (smoothing, temporal, weights_sha256) and those with a sound default may be absent.
REQUIRED_FIELDS = ("architecture", "ngf", "norm", "dropout", "input_nc", "output_nc", "input_kind")
# A temporal model's card field `temporal` (see ModelCard): what the generator sees besides the
# frame, and what stands in for the output before the first frame.
TEMPORAL_PREVIOUS = ("output",)
TEMPORAL_FIRST = ("background", "black")


def _shipped_checkpoints() -> Path:
    """The models that come with vidtrans: package data (vidtrans/checkpoints) in an installed
    wheel, the repository's top-level checkpoints/ folder in a source checkout or editable install."""
    packaged = Path(str(importlib.resources.files("vidtrans"))) / "checkpoints"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "checkpoints"


SHIPPED_CHECKPOINTS = _shipped_checkpoints()


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
    # Whether fp16/bf16 inference was checked to be faithful (`vidtrans train` measures it). A card
    # that does not say was not checked, so `--precision auto` runs it in fp32.
    half_precision: bool = False
    # Output smoothing `--smooth auto` applies, e.g. {"method": "flow", "strength": 0.5}.
    smoothing: dict[str, Any] | None = None
    # Temporal models (Everybody Dance Now's temporal conditioning), e.g. {"previous": "output",
    # "first": "background"}; None for models that see each frame alone. The generator's input is
    # the frame's 3 channels then its own previous output's 3 (input_nc 6), both in [-1, 1] at the
    # working size. "first": what stands in for the previous output before a clip's first frame
    # and after a frame without a person: "background" (background.png, which the folder must
    # then hold) or "black". Training makes its first frames' previous image the same way.
    temporal: dict[str, Any] | None = None
    description: str = ""
    source: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    # A random id that the save which wrote this card also wrote into its weights' header (the
    # safetensors metadata, key WEIGHTS_ID_KEY): card and weights from different saves (a folder
    # copied while training saved, or one written by a vidtrans whose saves could be cut short)
    # show without reading the weights. Empty: not recorded (older cards, weights saved elsewhere).
    weights_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["native_size"] = list(self.native_size)
        return {"format": CARD_FORMAT, "format_version": CARD_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Any, where: str = "model card") -> "ModelCard":
        """The card in `data` (parsed card.json); VidtransError naming `where`, the field and the fix
        for anything this vidtrans cannot use. Unknown fields are ignored (added by later versions)."""
        fix = "fix the card or re-export the checkpoint"
        if not isinstance(data, dict):
            raise VidtransError(f"{where}: not a model card (a JSON object expected, got a {type(data).__name__}); {fix}")
        if data.get("format") != CARD_FORMAT:
            raise VidtransError(f"{where}: not a vidtrans model card (format {data.get('format')!r}, expected "
                                f"{CARD_FORMAT!r}); {fix}")
        version = data.get("format_version")
        if is_int(version) and version > CARD_VERSION:
            raise VidtransError(f"{where}: made by a newer vidtrans (card format_version {version}, this vidtrans "
                                f"reads {CARD_VERSION}); upgrade vidtrans")
        if version != CARD_VERSION or not is_int(version):
            # Shown as JSON, where the string "1" reads "1", not 1 as Python's repr '1' seems beside it.
            raise VidtransError(f"{where}: field 'format_version' must be the number {CARD_VERSION}, got "
                                f"{json.dumps(version, default=repr)[:60]}; {fix}")
        missing = [name for name in REQUIRED_FIELDS if name not in data]
        if "architecture" in missing:  # nothing can be checked without it
            raise VidtransError(f"{where}: field 'architecture' is missing; {fix}")
        known = {f.name for f in dataclasses.fields(cls)}
        card = cls(**{k: v for k, v in data.items() if k in known})
        size = card.native_size
        if isinstance(size, list) and len(size) == 2 and all(is_int(v) for v in size):
            card.native_size = tuple(size)
        # A wrong value is named before a missing field: it is the more specific fault.
        card.check(where)
        if missing:
            raise VidtransError(f"{where}: field {missing[0]!r} is missing; {fix}")
        return card

    def check(self, where: str = "model card") -> None:
        """VidtransError naming `where` and the first field this vidtrans cannot use."""
        try:
            parse_generator(self.architecture)
        except ValueError as e:
            raise VidtransError(f"{where}: field 'architecture': {e}; fix the card or re-export the checkpoint") from None
        # Frames are RGB; a one-channel model sees grey and its grey output is shown as RGB. A
        # temporal model sees the RGB frame, then its own RGB output before it.
        temporal = self.temporal is not None
        inputs, outputs = ((6,), (3,)) if temporal else ((1, 3), (1, 3))
        input_note = (" for a temporal model (the frame's 3 channels, then the previous output's 3)" if temporal
                      else " (6 with a 'temporal' field)")
        problems = {
            "norm": None if self.norm in NORMS else f"must be one of {', '.join(NORMS)}",
            "ngf": None if is_int(self.ngf) and 1 <= self.ngf <= 4096 else "must be a whole number from 1 to 4096",
            "temporal": None if not temporal or _is_temporal_field(self.temporal) else (
                f"must be null or {{\"previous\": {' or '.join(map(json.dumps, TEMPORAL_PREVIOUS))}, "
                f"\"first\": {' or '.join(map(json.dumps, TEMPORAL_FIRST))}}}"),
            "input_nc": (None if self.input_nc in inputs and is_int(self.input_nc)
                         else f"must be {' or '.join(map(str, inputs))}{input_note}"),
            "output_nc": (None if self.output_nc in outputs and is_int(self.output_nc)
                          else f"must be {' or '.join(map(str, outputs))}{' for a temporal model' if temporal else ''}"),
            "native_size": (None if isinstance(self.native_size, (tuple, list)) and len(self.native_size) == 2
                            and all(is_int(v) and MIN_SIZE <= v <= MAX_SIZE for v in self.native_size)
                            else f"must be [height, width], whole numbers from {MIN_SIZE} to {MAX_SIZE}"),
            "input_kind": None if self.input_kind in INPUT_KINDS else f"must be one of {', '.join(INPUT_KINDS)}",
            "normalization": (None if self.normalization in NORMALIZATIONS
                              else f"must be one of {', '.join(NORMALIZATIONS)}"),
            "dropout": None if isinstance(self.dropout, bool) else "must be true or false",
            "half_precision": None if isinstance(self.half_precision, bool) else "must be true or false",
            **{name: None if getattr(self, name) is None or isinstance(getattr(self, name), dict) else "must be an object or null"
               for name in ("pose_style", "target_pose_stats")},
            "smoothing": None if self.smoothing is None or _is_smoothing_field(self.smoothing) else (
                f"must be null or {{\"method\": {' or '.join(map(json.dumps, SMOOTHING_METHODS))}, "
                "\"strength\": a number from 0 to below 1}"),
            **{name: None if isinstance(getattr(self, name), dict) else "must be an object"
               for name in ("training", "metrics")},
            **{name: None if isinstance(getattr(self, name), str) else "must be a string"
               for name in ("description", "source", "weights_sha256", "weights_id")},
        }
        for name, problem in problems.items():
            if problem:
                value = getattr(self, name)
                shown = list(value) if isinstance(value, tuple) else value
                raise VidtransError(f"{where}: field {name!r} {problem}, got {json.dumps(shown, default=repr)[:60]}; "
                                    "fix the card or re-export the checkpoint")
        self._check_pose_fields(where)

    def _check_pose_fields(self, where: str) -> None:
        """The pose style and the target's statistics, read as inference reads them: whatever they
        refuse is refused here, naming the card, before any work (their messages give the fix)."""
        if not (self.pose_style or self.target_pose_stats):
            return
        # Imported here: the pose package brings OpenCV, which cards without pose fields never need.
        from vidtrans.pose.normalize import PoseStats
        from vidtrans.pose.render import PoseStyle

        for name, read in (("pose_style", PoseStyle.from_dict), ("target_pose_stats", PoseStats.from_dict)):
            if getattr(self, name):  # an empty object stands for none, as inference reads it
                try:
                    read(getattr(self, name))
                except VidtransError as e:
                    raise VidtransError(f"{where}: field {name!r}: {e}") from None


def _is_temporal_field(value: Any) -> bool:
    # Exactly these keys: a later vidtrans that adds one changes what the model sees, so this one
    # must not run it as if the key were absent.
    return (isinstance(value, dict) and set(value) == {"previous", "first"}
            and value["previous"] in TEMPORAL_PREVIOUS and value["first"] in TEMPORAL_FIRST)


def _is_smoothing_field(value: Any) -> bool:
    """Whether `value` is smoothing `--smooth auto` can apply (vidtrans.temporal.smoothing_for): an
    object whose "method" and "strength", where given, a Smoother takes."""
    if not isinstance(value, dict):
        return False
    strength = value.get("strength", 0.0)
    return value.get("method", "none") in SMOOTHING_METHODS and is_finite_number(strength) and 0 <= strength < 1


def check_size(size: Any, name: str = "size") -> int:
    """`size` as frame pixels a model can run at, or VidtransError naming the parameter `name`."""
    size = plain_number(size)
    if not is_int(size) or not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(f"{spell(name)} must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, "
                         f"got {shown(size)}")
    return size


@dataclass
class Checkpoint:
    card: ModelCard
    state_dict: dict[str, torch.Tensor]
    path: Path
    # The target's empty scene (uint8 RGB at the native size, from background.png), shown for
    # frames without a person; None when the checkpoint has none.
    background: np.ndarray | None = None

    @property
    def name(self) -> str:
        return model_name(self.path)

    @property
    def files(self) -> list[Path]:
        return model_files(self.path)

    def build(self) -> nn.Module:
        """The generator with these weights, on the CPU, in fp32."""
        check_weights_fit(self.card, {name: tuple(tensor.shape) for name, tensor in self.state_dict.items()}, self.path)
        net = build_generator(self.card.architecture, self.card.input_nc, self.card.output_nc, self.card.ngf,
                              self.card.norm, self.card.dropout)
        net.load_state_dict({k: v.float() for k, v in self.state_dict.items()}, strict=True)
        return net


def describe(card: ModelCard) -> str:
    return f"{card.architecture} (ngf {card.ngf}, {card.norm} norm, {card.input_nc}->{card.output_nc} channels)"


def check_weights_fit(card: ModelCard, shapes: dict[str, tuple[int, ...]], path: Path) -> None:
    """VidtransError unless tensors of these names and `shapes` are the weights of `card`'s
    generator (`path`: the checkpoint folder or upstream file they are from). Checked before the
    generator is built, which for a card asking for more than its weights (ngf 4096 for weights of
    ngf 8) would take all the memory there is before any mismatch could show."""
    needed = _needed_shapes(card, shapes)
    if shapes == needed:
        return
    if path.is_dir():
        if differences := _card_differences(card, shapes):
            found = ", ".join(f"{name} {json.dumps(value)}" for name, value in differences)
            fields = ", ".join(f"{json.dumps(name)}: {json.dumps(value)}" for name, value in differences)
            raise VidtransError(f"{path}: {CARD_NAME} does not match the weights: it describes {describe(card)}, "
                                f"but the weights have {found}; set {fields} in {CARD_NAME} or re-export the "
                                "checkpoint")
        fix = "re-export the checkpoint"
    else:
        fix = "pass a complete, unmodified pix2pix generator (latest_net_G.pth)"
    wrong = [name for name in needed if name in shapes and shapes[name] != needed[name]]
    missing = [name for name in needed if name not in shapes]
    if wrong:
        name = wrong[0]
        problem = f"tensor {name!r} is {_shape_text(shapes[name])}, the network's is {_shape_text(needed[name])}"
    elif missing:
        problem = f"tensor {missing[0]!r} is missing" + (f" ({len(missing)} in all)" if len(missing) > 1 else "")
    else:
        problem = f"tensor {next(name for name in shapes if name not in needed)!r} is not part of it"
    raise VidtransError(f"{path}: the weights do not fit {describe(card)}: {problem}; {fix}")


def _needed_shapes(card: ModelCard, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The name and shape of each tensor `card`'s generator loads, for weights of these `shapes`."""
    needed = generator_shapes(card.architecture, card.input_nc, card.output_nc, card.ngf, card.norm, card.dropout)
    # torch fills in batch norm's step count, which inference never reads, where a file lacks it
    # (upstream files older than torch 0.4.1).
    return {name: shape for name, shape in needed.items() if name in shapes or not name.endswith("num_batches_tracked")}


def _card_differences(card: ModelCard, shapes: dict[str, tuple[int, ...]]) -> list[tuple[str, Any]]:
    """The card's fields that the weights say otherwise, as (field, the weights' value): read off
    the layers as an upstream import reads them, and only where the weights are exactly those of
    the card with these values (not where a tensor is damaged or missing)."""
    layers = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}
    try:
        found = infer_card(layers, "")
        names = ["architecture", "ngf", "norm", "input_nc", "output_nc"]
        if parse_generator(found.architecture)[0] == "resnet":  # a U-Net's dropout leaves no trace in its weights
            names.append("dropout")
        differences = [(name, getattr(found, name)) for name in names if getattr(found, name) != getattr(card, name)]
        fixed = dataclasses.replace(card, **dict(differences))
        fixed.check()  # a card that can say so (not a temporal card with a frame-by-frame model's weights)
        fits = _needed_shapes(fixed, shapes) == shapes
    except (VidtransError, LookupError, ValueError, RuntimeError):  # layers no generator of ours has
        return []
    return differences if fits else []


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a single number"


def state_dict_mismatch(error: Exception) -> str:
    """The first specific problem of a load_state_dict error (its first line only says
    "Error(s) in loading state_dict for X:")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return first_line(Exception(lines[1] if len(lines) > 1 else error))


def load_tensor_file(path: Path, fix: str, mmap: bool = False) -> Any:
    """torch.load of a file that may only hold tensors and plain data, onto the CPU (`mmap`: tensors
    are read when used); VidtransError ending in `fix` for a file that holds pickled objects
    (unpickling them could run code), was cut short, or is no torch file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": noise beside our message
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # a zip without torch's records, a truncated file, text: torch raises all sorts
        raise _unloadable(path, e, fix) from e


def _unloadable(path: Path, error: Exception, fix: str) -> VidtransError:
    """Why torch.load could not read `path` (`error`), ending in `fix`. torch's own words mislead:
    its zip reader says "Invalid argument" for a file cut short (an OSError of errno EINVAL, from
    seeking to records the file no longer holds), and its weights-only unpickler raises the same
    error for damaged bytes, or a video's, as for pickled objects."""
    if isinstance(error, OSError) and error.errno != errno.EINVAL:  # reading the file failed: permissions, a disk
        return VidtransError(f"{path}: cannot read ({first_line(error)}); {fix}")
    if _cut_short(path):
        return VidtransError(f"{path}: a truncated or damaged PyTorch file (the directory torch.save ends it with is "
                             "missing or damaged: cut short while it was written or copied); copy it again from a "
                             f"whole copy, or {fix}")
    if isinstance(error, pickle.UnpicklingError) and _holds_objects(path):
        # torch's own text is many lines of advice on loading the file anyway, with terminal codes.
        return VidtransError(f"{path}: holds pickled Python objects, not just tensors; refused to unpickle them "
                             f"(that could run code); {fix}")
    return VidtransError(f"{path}: not a readable PyTorch file (not a PyTorch checkpoint at all, or a damaged or "
                         f"truncated one); {fix}")


# The first bytes of a zip archive, torch.save's format since torch 1.6: a file's first record.
_ZIP_START = b"PK\x03\x04"


def _cut_short(path: Path) -> bool:
    """Whether `path` begins as a zip archive but lacks the directory that ends one, or has it
    damaged: a file cut short (a copy or a save stopped part way, a full disk)."""
    return _file_start(path, len(_ZIP_START)) == _ZIP_START and not _is_zip(path)


def _is_zip(path: Path) -> bool:
    """zipfile.is_zipfile, but False rather than BadZipFile for an archive whose end record is
    damaged (it reads as one spanning several disks)."""
    try:
        return zipfile.is_zipfile(path)
    except zipfile.BadZipFile:
        return False


def _holds_objects(path: Path) -> bool:
    """Whether the torch.save file `path`, which torch's weights-only unpickler refused, holds
    pickled objects (classes or functions it does not allow), rather than damaged bytes, which
    that unpickler refuses alike. Its pickle is scanned without being run where torch can (2.5 and
    later, the zip format); else any file that starts as torch.save's is taken to (a video does not)."""
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is None or not _is_zip(path):
        return _starts_like_torch_save(path)
    try:
        return bool(scan(path))
    except Exception:  # a pickle too damaged to scan holds no objects anyone saved
        return False


def _starts_like_torch_save(path: Path) -> bool:
    """Whether `path` begins as torch.save writes: a zip archive (whole or cut short), or (the
    legacy format, and plain pickles) a pickle's PROTO opcode."""
    start = _file_start(path, len(_ZIP_START))
    return start[:1] == pickle.PROTO or start == _ZIP_START or _is_zip(path)


# What a generator's weights may be stored as (float8 and other formats are refused).
_WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_weights(state_dict: dict[str, torch.Tensor], where: str | os.PathLike) -> None:
    """VidtransError naming `where` and the first tensor a generator cannot compute with. Weights
    are floating point (the only whole numbers are batch norm's step counts, which inference never
    reads) and finite in the float32 the network computes in, and batch norm's variances are not
    negative: a NaN or infinity in one turns every frame to garbage."""
    for name, tensor in state_dict.items():
        if name.endswith("num_batches_tracked"):
            continue
        if tensor.layout != torch.strided:
            raise VidtransError(f"{where}: tensor {name!r} is stored {str(tensor.layout).removeprefix('torch.')}, not "
                                "as a dense tensor; save the weights with tensor.to_dense()")
        # torch.load's map_location moves no tensor off the meta device, whose tensors have a
        # shape and no values (a network made there, as for loading big models, never filled).
        if tensor.is_meta:
            raise VidtransError(f"{where}: tensor {name!r} holds no values (saved from the meta device: a network's "
                                "shapes without its weights); save the trained network's weights")
        if tensor.dtype not in _WEIGHT_DTYPES and tensor.is_floating_point():
            raise VidtransError(f"{where}: tensor {name!r} holds {str(tensor.dtype).removeprefix('torch.')} values, "
                                "which vidtrans cannot compute with; save the weights as float32 (or float16/bfloat16)")
        if not tensor.is_floating_point():
            raise VidtransError(f"{where}: tensor {name!r} holds {str(tensor.dtype).removeprefix('torch.')} values, "
                                "not floating point weights; save the trained float weights instead")
        # As the network computes (in float32, `Checkpoint.build`): a float64 value beyond its range
        # is infinite there, and every frame came out black.
        if not torch.isfinite(tensor.float()).all():
            held = ("NaN or infinite values" if not torch.isfinite(tensor).all()
                    else "values beyond float32's range, which the network computes in")
            raise VidtransError(f"{where}: tensor {name!r} holds {held} (training diverged, or the file was damaged); "
                                "use an earlier checkpoint or train again")
        # Training's variances are never below zero; with running statistics one would be the square
        # root of a negative number, and every frame black.
        if name.endswith("running_var") and (tensor < 0).any():
            raise VidtransError(f"{where}: tensor {name!r} holds negative variances, which no training makes (the "
                                "file was damaged); use an earlier checkpoint or copy it again")


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def weights_sha256(name_or_path: str | os.PathLike) -> str:
    """The sha256 of a model's weights, without loading them: what tells a changed model (a batch
    redoes its clips then). The card's record for a checkpoint folder; the file's own hash for an
    upstream .pth, or for a card written without one."""
    path = checkpoint_path(name_or_path)
    if path.is_dir():
        recorded = read_card(path).weights_sha256
        return recorded or sha256_of(path / WEIGHTS_NAME)
    return sha256_of(path)


def save_checkpoint(folder: str | os.PathLike, net: nn.Module, card: ModelCard, dtype: torch.dtype = torch.float32,
                    *, extras: Mapping[str, Callable[[BinaryIO], None]] | None = None, replaces: bool = False,
                    keep: Collection[Path] = ()) -> Path:
    """Write `net`'s weights, `card` and `extras` (file name: a function writing the file, such as
    training's background.png and train_state.pt) into `folder` as one set: each is written under
    a temporary name, then all are published together, so that an error or a stop at any point
    leaves the folder's previous set whole (or, in a folder this made, nothing).

    replaces: the set replaces another model, whose other files (MODEL_FILE_NAMES the set lacks,
    and its sample grids, but those in `keep`) go in the same step. Whether the folder may be
    replaced at all is the caller's decision (train --resume/--overwrite, import --overwrite)."""
    folder = Path(folder)
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous().cpu()
               for k, v in net.state_dict().items()}
    card.weights_id = secrets.token_hex(16)
    # A folder (or other non-file) named as a file of the set, or of the model it replaces, would fail
    # the publishing step half done (the new set in place, the old one's files partly removed): refused
    # before anything is written.
    destinations = [folder / WEIGHTS_NAME, *(folder / name for name in extras or {}), folder / CARD_NAME]
    replaced = [path for path in checkpoint_files(folder) if path not in keep] if replaces else []
    for path in [*destinations, *replaced]:
        if kind := not_a_file(path):
            raise VidtransError(f"{path}: {kind}, where the checkpoint's files go; move it away or write the "
                                "checkpoint to another folder")
    # The folders of extras in subfolders (training's samples/), deepest first, then the folder's.
    subfolders = sorted({(folder / name).parent for name in (extras or {})} - {folder}, key=lambda p: -len(p.parts))
    made = [path for path in (*subfolders, folder, *folder.parents) if not path.exists()]
    written: dict[Path, Path] = {}  # destination: its finished temporary file
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for subfolder in reversed(subfolders):
                subfolder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VidtransError(f"{folder}: cannot create the checkpoint folder ({first_line(e)}); choose a "
                                "writable folder") from e
        def write_temporary(dst: Path, what: str, write: Callable[[BinaryIO], None]) -> Path:
            return filled_temporary(dst, write, what, lambda tmp: written.__setitem__(dst, tmp))

        weights = write_temporary(folder / WEIGHTS_NAME, "weights", lambda f: f.write(
            save_tensors(tensors, metadata={WEIGHTS_ID_KEY: card.weights_id})))
        card.weights_sha256 = sha256_of(weights)
        for name, write in (extras or {}).items():
            write_temporary(folder / name, name, write)
        # The card last: written from here on, it describes the files above.
        write_temporary(folder / CARD_NAME, "model card",
                        lambda f: f.write((json.dumps(card.to_dict(), indent=2) + "\n").encode()))
        with stop_signals_deferred() if replaces else contextlib.nullcontext():
            publish_together([(tmp, dst) for dst, tmp in written.items()], overwrite=True)
            if replaces:
                remove_checkpoint_files(folder, keep={*written, *keep})
    except BaseException:
        for tmp in written.values():
            discard(tmp)
        for path in made:  # innermost first; a folder something else put files in stays
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return folder


def user_cache() -> Path:
    """$XDG_CACHE_HOME/vidtrans (by default ~/.cache/vidtrans): models found by name, and the work
    vidtrans keeps to save time (exported ONNX graphs, detected training dances)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vidtrans"


def model_search_path() -> list[Path]:
    """Folders searched for a model given by name, first match wins."""
    paths = [Path(p) for p in os.environ.get("VIDTRANS_MODELS", "").split(os.pathsep) if p]
    paths.append(user_cache())
    paths.append(SHIPPED_CHECKPOINTS)
    return paths


def available_models() -> list[Path]:
    """Every model folder on the search path (see `_is_model_folder`; first occurrence of each
    name). A folder of the path that cannot be listed is skipped, with a warning."""
    found: dict[str, Path] = {}
    for root in _search_folders():
        try:
            folders = sorted(Path(entry.path) for entry in os.scandir(root))
            models = [folder for folder in folders if _is_model_folder(folder)]
        except FileNotFoundError:  # removed meanwhile
            continue
        except OSError as e:
            _warn_skipped(root, first_line(e))
            continue
        for folder in models:
            found.setdefault(folder.name, folder)
    return list(found.values())


def _search_folders() -> list[Path]:
    """The folders of the model search path that exist. One that does not is left out (it need not
    exist); one that is no folder (a VIDTRANS_MODELS entry naming a file) or cannot be looked up,
    with a warning."""
    folders = []
    for root in model_search_path():
        try:
            mode = root.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            _warn_skipped(root, first_line(e))
            continue
        if stat.S_ISDIR(mode):
            folders.append(root)
        else:
            _warn_skipped(root, f"{'a file' if stat.S_ISREG(mode) else special_file_kind(mode)}, not a folder",
                          "take it off the model search path")
    return folders


def _is_model_folder(folder: Path) -> bool:
    """Whether `folder` is a model's, as far as the search path tells: it holds a card.json of any
    kind (a broken link, a FIFO: loading it says what is wrong), or it is a folder that cannot be
    looked into (loading it says why). OSError where `folder`'s own parent cannot be searched."""
    try:
        os.lstat(folder / CARD_NAME)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        return stat.S_ISDIR(folder.stat().st_mode)
    except OSError as e:
        # A link that loops leads to no folder, as a broken one does; raised on, it made the whole
        # search folder count as one that cannot be searched, hiding every model in it.
        if e.errno == errno.ELOOP:
            return False
        raise
    return True


# The folders of the search path skipped with a warning: each is told once per process, not at
# every lookup of a name.
_skipped: set[Path] = set()


def _warn_skipped(folder: Path, problem: str,
                  fix: str = "fix its permissions, or take it off the model search path") -> None:
    if folder not in _skipped:
        _skipped.add(folder)
        log.warning("%s: cannot look for models there (%s), so it was skipped; %s", folder, problem, fix)


def model_files(path: Path) -> list[Path]:
    """Every file the model at `path` (a checkpoint folder or a .pth) is read from: what no output
    may replace, even with overwrite. A folder's background counts even while it is missing: a file
    written there would become it."""
    if not path.is_dir():
        return [path]  # an upstream .pth
    return [path / name for name in (CARD_NAME, WEIGHTS_NAME, BACKGROUND_NAME)]


def resolve(name_or_path: str | os.PathLike, fix: str | None = None) -> Path:
    """The absolute path a model name or path stands for; VidtransError when there is none, ending in
    `fix` (what to pass instead: by default a checkpoint folder, a .pth file or a model name).
    Absolute, so that the model's files stay the ones no output may replace after the caller
    changes folder (os.chdir), and "." is named by its folder, as default output names carry it;
    made by os.path.abspath, not Path.resolve: a link keeps its own name."""
    text = _model_text(name_or_path)
    # os.path's: Path.expanduser raises RuntimeError for a user that does not exist.
    path = Path(os.path.expanduser(text))
    named = _named_model(text) if _is_model_name(name_or_path) else None
    too_long = False
    try:
        # A folder that is no checkpoint (an earlier batch's output folder named like the model,
        # say) does not hide the model of that name.
        if path.exists() and not (named is not None and path.is_dir() and not _is_model_folder(path)):
            return Path(os.path.abspath(path))
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:  # a folder on the way that cannot be entered
            raise VidtransError(f"{shown_path(path)}: cannot be read ({first_line(e)}); check the permissions of it "
                                "and of the folders it is in") from e
        too_long = True  # no file has that name
    if named is not None:
        return named
    # "facades.pth" is a file that is missing, not the name of a model.
    if _is_model_name(name_or_path) and path.suffix.lower() not in UPSTREAM_SUFFIXES:
        names = ", ".join(p.name for p in available_models() if _is_usable(p)) or "none"
        raise VidtransError(f"model {shown(text)} not found (available: {names}); "
                            f"{fix or 'pass a checkpoint folder or a .pth file'}")
    raise VidtransError(f"{shown_path(path)}: {'file name too long' if too_long else 'no such file or folder'}; "
                        f"{fix or 'pass a checkpoint folder, a .pth file or a model name'}")


def _model_text(name_or_path: Any) -> str:
    """`name_or_path` as text; UsageError for no model at all, a value that is no name or path, or
    one holding a NUL character (which Python's file functions refuse with ValueError). Not naming
    a parameter: Python callers call it name_or_path or model, the command line --model."""
    text = os.fspath(name_or_path) if isinstance(name_or_path, (str, os.PathLike)) else None
    fix = "name a model, a checkpoint folder or a .pth file"
    if name_or_path is None or text == "":  # an empty path would be the current folder
        raise UsageError(f"no model given ({shown(name_or_path)}); {fix}")
    if not isinstance(text, str):
        raise UsageError(f"{shown(name_or_path)} is no model name or path (a str or os.PathLike); {fix}")
    if "\0" in text:
        raise UsageError(f"{shown(text)}: a model name or path cannot hold a NUL character (\\x00); {fix}")
    return text


def _named_model(name: str) -> Path | None:
    """The first model folder called `name` on the search path (absolute: see `resolve`). A folder
    of the path that cannot be searched is skipped, with a warning: the model may be there."""
    for root in _search_folders():
        try:
            if _is_model_folder(root / name):
                return Path(os.path.abspath(root / name))
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:  # a name no file can have is in no folder
                _warn_skipped(root, first_line(e))
    return None


def _is_model_name(name: Any) -> bool:
    """Whether `name` can name a folder on the search path: any folder's name (spaces included), so
    every model `vidtrans models` lists loads by its name."""
    separators = {os.sep, os.altsep} - {None}
    return isinstance(name, str) and name not in ("", ".", "..") and not any(s in name for s in separators)


def check_has_weights(folder: Path) -> None:
    """VidtransError unless a checkpoint folder has something at its weights' name (not read;
    whether it is a file that can be read is `check_model_files`')."""
    if not os.path.lexists(folder / WEIGHTS_NAME):
        raise VidtransError(f"{folder}: not a checkpoint folder ({WEIGHTS_NAME} missing); copy the weights there "
                            "or remove the folder")


def check_model_files(folder: Path, card: ModelCard) -> np.ndarray | None:
    """The background (see `_load_background`) of a checkpoint folder whose weights exist;
    VidtransError unless its files are what `card` needs: the weights whole, from the save that
    wrote the card, and fitting it, and background.png an image of the native size, which a
    temporal card starting clips from it needs. Reads the weights' header only, so `vidtrans
    models` can afford it for every model; loading checks the same first (`check_folder`)."""
    weights = folder / WEIGHTS_NAME
    _check_readable(weights, "copy the checkpoint again")
    try:
        with safe_open(str(weights), framework="pt") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
            weights_id = (f.metadata() or {}).get(WEIGHTS_ID_KEY, "")
    except (SafetensorError, OSError, ValueError) as e:
        raise _damaged_weights(weights, e) from e
    if card.weights_id and weights_id and weights_id != card.weights_id:
        raise VidtransError(f"{folder}: {WEIGHTS_NAME} and {CARD_NAME} are from different saves (a save cut short or "
                            "a mixed copy); copy the checkpoint again, or use a complete one")
    check_weights_fit(card, shapes, folder)
    background = _load_background(folder, card)
    if card.temporal and card.temporal["first"] == "background" and background is None:
        raise VidtransError(f"{folder}: the card's temporal model starts clips from {BACKGROUND_NAME}, which is "
                            "missing; copy the checkpoint again")
    return background


def _check_readable(path: Path, fix: str) -> None:
    """VidtransError unless `path` is a regular file this process can open: what it is instead (a
    folder, a FIFO, a link to nothing), then `fix`, or why it cannot be opened. The libraries that
    read weights and images say neither (safetensors calls a file it may not read missing, OpenCV
    no image), and opening a FIFO would wait for a writer."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISREG(mode):
            with open(path, "rb"):
                return
        problem = f"is {'a folder' if stat.S_ISDIR(mode) else special_file_kind(mode)}, not a file"
    except FileNotFoundError:
        problem = f"a link to {os.readlink(path)}, which does not exist" if path.is_symlink() else "no such file"
    except OSError as e:  # permissions, of the file or of a folder on the way
        raise VidtransError(f"{path}: cannot be read ({first_line(e)}); check the permissions of it and of the "
                            "folders it is in") from e
    raise VidtransError(f"{path}: {problem}; {fix}")


def _no_card(folder: str | os.PathLike) -> VidtransError:
    if generators := _upstream_generators(Path(folder)):
        held = f" (it holds {', '.join(generators)})" if len(generators) > 1 else ""
        return VidtransError(f"{folder}: a pix2pix/CycleGAN checkpoints folder, not a vidtrans one ({CARD_NAME} "
                             f"missing); pass its generator's file, such as {Path(folder) / generators[0]}{held}")
    return VidtransError(f"{folder}: not a checkpoint folder ({CARD_NAME} missing); pass a folder holding "
                         f"{CARD_NAME} and {WEIGHTS_NAME}")


def _upstream_generators(folder: Path) -> list[str]:
    """The last generators pytorch-CycleGAN-and-pix2pix saved in `folder` (its latest_net_G.pth, or
    CycleGAN's latest_net_G_A.pth and latest_net_G_B.pth); else those of its epochs (5_net_G.pth)."""
    try:
        return sorted(path.name for path in folder.glob("latest_net_G*.pth")) or \
            sorted(path.name for path in folder.glob("*_net_G*.pth"))
    except OSError:  # a folder that cannot be listed: the message above says what is missing all the same
        return []


def check_folder(folder: Path) -> ModelCard:
    """The card of a checkpoint folder, after every check that reads no weights (see
    `check_model_files`): what a model listed as available has passed."""
    return _checked_folder(folder)[0]


def _checked_folder(folder: Path) -> tuple[ModelCard, np.ndarray | None]:
    """`check_folder`'s card, and the background it read."""
    card = read_card(folder)
    check_has_weights(folder)
    return card, check_model_files(folder, card)


def _damaged_weights(path: Path, error: Exception) -> VidtransError:
    """Why a checkpoint folder's weights (`path`) cannot be read as safetensors (`error`)."""
    if _starts_like_torch_save(path) and not _starts_like_safetensors(path):
        # A folder made by hand around an upstream latest_net_G.pth renamed: safetensors' own
        # words ("header too large") would call it damaged.
        return VidtransError(f"{path}: a PyTorch file (torch.save's format), not the safetensors file a checkpoint "
                             "folder holds; move it out of the folder (as latest_net_G.pth, say) and pass that as the "
                             "model, or import it: vidtrans import-pix2pix latest_net_G.pth -o FOLDER")
    return VidtransError(f"{path}: damaged or truncated weights ({first_line(error)}); copy the checkpoint again")


def _is_usable(folder: Path) -> bool:
    """Whether a checkpoint folder on the search path loads, as far as `check_folder` can tell
    without reading its weights."""
    try:
        check_folder(folder)
    except VidtransError:
        return False
    return True


def load_checkpoint(name_or_path: str | os.PathLike) -> Checkpoint:
    """A model by name, checkpoint folder, card.json/model.safetensors path, or upstream pix2pix .pth file."""
    path = checkpoint_path(name_or_path)
    if path.is_dir():
        return _load_folder(path)
    # Only a regular file is looked into: opening a FIFO would wait for a writer, beyond Ctrl-C's reach.
    if (path.suffix.lower() in UPSTREAM_SUFFIXES or not path.is_file() or _safetensors_metadata(path) is not None
            or _starts_like_torch_save(path)):  # .bin, .ckpt: what torch.save wrote, whatever the name
        return import_pix2pix(path)  # which says what is wrong with a path that is no file
    raise VidtransError(f"{path}: not a checkpoint; pass a folder with {CARD_NAME} and {WEIGHTS_NAME}, or a pix2pix "
                        "generator's .pth or .safetensors file")


def model_name(path: Path) -> str:
    """The name of the model at `path` (a `checkpoint_path`), as output file names carry it: its
    folder's, or an upstream file's without the extension (x.mp4 through dp.pth gives x.dp.mp4)."""
    return path.name if path.is_dir() else path.stem


def checkpoint_path(name_or_path: str | os.PathLike, fix: str | None = None) -> Path:
    """The checkpoint folder, or upstream file, that a model name or path stands for (`fix`: see `resolve`).
    Refused, as an input video's name is: a URL, which the Path would mangle (https:/host/m.pth, "no
    such file"), and an existing file's name with a trailing slash, which it would drop."""
    from vidtrans.video.reader import check_input_name  # here: it imports PyAV and OpenCV

    if isinstance(name_or_path, (str, os.PathLike)):
        check_input_name(os.fspath(name_or_path))
    path = resolve(name_or_path, fix)
    # A checkpoint's card or weights stand for its folder; a model.safetensors beside no card is
    # an upstream generator saved under that common name (Hugging Face's), which loads as a file.
    in_checkpoint = path.name == CARD_NAME or path.name == WEIGHTS_NAME and os.path.lexists(path.parent / CARD_NAME)
    return path.parent if path.is_file() and in_checkpoint else path


def read_card(folder: str | os.PathLike) -> ModelCard:
    """The card.json of a checkpoint folder, validated; VidtransError naming the file and the fix."""
    path = Path(folder) / CARD_NAME
    try:
        # Checked before it is opened: a FIFO would wait for a writer for ever.
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else special_file_kind(mode)
            raise VidtransError(f"{path}: is {kind}, not a file; copy the checkpoint again")
        # UTF-8 whatever the locale; "-sig" takes the byte-order mark some Windows editors write.
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        if path.is_symlink():
            raise VidtransError(f"{path}: a link to {os.readlink(path)}, which does not exist; copy the checkpoint "
                                "again") from None
        raise _no_card(folder) from None
    except OSError as e:
        raise VidtransError(f"{path}: cannot read the model card ({first_line(e)}); check the permissions of it and "
                            "of its folder") from e
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nesting too deep to parse
        raise VidtransError(f"{path}: not valid JSON ({first_line(e)}); fix the card or re-export the checkpoint") from e
    return ModelCard.from_dict(data, str(path))


def _load_folder(folder: Path) -> Checkpoint:
    card, background = _checked_folder(folder)
    weights_path = folder / WEIGHTS_NAME
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise _damaged_weights(weights_path, e) from e
    # Cards written before the field existed have no record to check against.
    if card.weights_sha256 and sha256_of(weights_path) != card.weights_sha256.lower():
        raise VidtransError(f"{folder}: the weights are not the ones the card describes ({WEIGHTS_NAME}'s sha256 "
                            "differs from the card's weights_sha256); re-export or fix weights_sha256")
    _check_weights(state_dict, weights_path)
    return Checkpoint(card, state_dict, folder, background)


def save_background(folder: str | os.PathLike, image: np.ndarray) -> None:
    """Store the target's empty scene (uint8 RGB at the model's native size) in a checkpoint folder;
    VidtransError for an image of another kind or size, which loading the model would refuse."""
    height, width = read_card(folder).native_size
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (height, width, 3)):
        got = f"{image.dtype} of shape {image.shape}" if isinstance(image, np.ndarray) else shown(image)
        raise VidtransError(f"the background must be uint8 RGB of the model's native size ({height}, {width}, 3), "
                            f"got {got}")
    png = background_png(image)
    write_atomically(Path(folder) / BACKGROUND_NAME, lambda f: f.write(png), overwrite=True, what="background image")


def background_png(image: np.ndarray) -> bytes:
    """The target's empty scene (uint8 RGB (H, W, 3)) as the PNG file BACKGROUND_NAME holds."""
    import cv2

    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise VidtransError(f"cannot encode a background image of shape {image.shape}; pass uint8 RGB (H, W, 3)")
    return png.tobytes()


def _load_background(folder: Path, card: ModelCard) -> np.ndarray | None:
    path = folder / BACKGROUND_NAME
    if not os.path.lexists(path):
        return None
    fix = "replace it with a PNG of the target's empty scene or delete it"
    _check_readable(path, fix)
    import cv2

    # Only a PNG is decoded, its size checked from its header first: OpenCV decodes an image whole before
    # its size can be checked, which for a small file declaring 20000x20000 pixels took 2.3 GB or more
    # (a 700-byte JPEG; any format OpenCV reads declares its size so). What training saves is a PNG.
    head = _file_start(path, 24)  # the signature, the first chunk's length and type, then width and height
    if not head.startswith(_PNG_SIGNATURE):
        problem = "an image, but not a PNG" if cv2.haveImageReader(str(path)) else "not a readable image"
        raise VidtransError(f"{path}: {problem}; {fix}")
    if len(head) < 24 or head[12:16] != b"IHDR":  # a PNG's first chunk, which libpng requires
        raise VidtransError(f"{path}: not a readable image; {fix}")
    height, width = card.native_size
    declared = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    # Either way round: OpenCV turns an image upright as its orientation tag (eXIf) says, as viewers show it.
    if declared not in ((width, height), (height, width)):
        raise _background_size_error(path, declared, card)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise VidtransError(f"{path}: not a readable image; {fix}")
    if image.shape[:2] != (height, width):
        raise _background_size_error(path, (image.shape[1], image.shape[0]), card)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _background_size_error(path: Path, size: tuple[int, int], card: ModelCard) -> VidtransError:
    """The background `path` is `size` (width, height), not the card's native size."""
    height, width = card.native_size
    return VidtransError(f"{path}: {size[0]}x{size[1]}, but the model's native size is {width}x{height}; resize the "
                         "image to that or delete it")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _file_start(path: Path, size: int) -> bytes:
    """The first `size` bytes of `path`: fewer in a shorter file, none where it cannot be read (what
    reads it whole then says why)."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


# --- upstream pytorch-CycleGAN-and-pix2pix ---------------------------------------------------------


def check_checkpoint_folder(folder: str | os.PathLike) -> None:
    """UsageError unless a checkpoint can be written at `folder` (made, if it does not exist), for
    train and import-pix2pix alike: not an empty path (Path("") is the current folder), not a file,
    and the nearest folder that exists tried for real, a folder made there and removed, the file
    system's own answer, which `os.access` does not give for root or for special file systems
    (/proc, /sys), where the first write would fail after minutes of work. A name of its own, so
    that processes checking at once (torchrun's) never see each other's."""
    if not os.fspath(folder).strip():
        raise UsageError("the checkpoint folder is an empty path; name a folder, such as checkpoints/mine")
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: is a file; give a folder for the checkpoint")
        existing = next(path for path in (folder, *folder.absolute().parents) if path.exists())
        for name in (CARD_NAME, WEIGHTS_NAME):  # what callers look for next: the whole path's length
            (folder / name).exists()
    except OSError as e:  # the file system refuses to even look the name up
        if e.errno == errno.ENAMETOOLONG:
            raise UsageError(f"{folder}: file name too long; choose a shorter output name") from None
        raise UsageError(f"{folder}: cannot use this output folder ({first_line(e)}); choose another output "
                         "folder") from None
    if not existing.is_dir():
        raise UsageError(f"{folder}: {existing} is a file, not a folder; choose another output folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".vidtrans-check-", dir=existing))
    except OSError as e:  # the file system's reason: os.access called a read-only one "permission denied" too
        reason = "permission denied" if isinstance(e, PermissionError) else e.strerror or first_line(e)
        raise UsageError(f"{folder}: cannot write the checkpoint there ({reason}); choose a writable folder") from None


def convert_pix2pix(path: str | os.PathLike, folder: str | os.PathLike, *, input_kind: str = "rgb",
                    size: int | None = None, normalization: str = "sample", overwrite: bool = False) -> ModelCard:
    """Import an upstream generator (see `import_pix2pix`) and save it as the checkpoint `folder`;
    returns its card. An existing checkpoint there is replaced only with `overwrite`."""
    check_checkpoint_folder(folder)
    folder = Path(folder)
    input_kind = InputKind.parse(input_kind, "input_kind").value
    normalization = Normalization.parse(normalization, "normalization").value
    replacing = (folder / CARD_NAME).exists()
    # A background.png without a card is someone's picture, which the model written there would
    # show as its own (or, of another size, fail to load with).
    background = not replacing and os.path.lexists(folder / BACKGROUND_NAME)
    # Weights without a card are someone's too. The input itself is named as such below.
    input_is_there = any(same_file(path, folder / name) for name in MODEL_FILE_NAMES)
    if not overwrite and (replacing or (folder / WEIGHTS_NAME).exists()) and not input_is_there:
        raise UsageError(f"{folder} already holds a checkpoint; pass {spell('overwrite=True')} to replace it")
    if kind := not_a_file(folder / BACKGROUND_NAME):
        # Refused before the import's work, as the save would refuse it.
        raise UsageError(f"{folder / BACKGROUND_NAME}: {kind}, where a checkpoint keeps its background; move it "
                         "away or import into another folder")
    if not overwrite and background and not input_is_there:
        raise UsageError(f"{folder / BACKGROUND_NAME}: already there, named as a checkpoint's background, which the "
                         "imported model would show as its own; move it away, import into another folder, or pass "
                         f"{spell('overwrite=True')} to replace it")
    checkpoint = import_pix2pix(path, input_kind=input_kind, size=size)
    check_normalization(checkpoint.card, normalization, path)
    # The save writes or removes these (a folder without a card keeps a train_state.pt, but a
    # model.safetensors there is replaced, with `overwrite`). After the import: a vidtrans
    # model's own weights are refused there, as needing no import.
    if input_is_there:
        raise UsageError(f"{folder}: the checkpoint written there would replace the input {path}; choose another "
                         "output folder")
    checkpoint.card.normalization = normalization
    # With `overwrite`, such a background goes as the set is put in place; what a folder without
    # a card keeps stays.
    keep = () if replacing else [folder / TRAIN_STATE_NAME, *(folder / SAMPLES_FOLDER).glob(SAMPLE_GRIDS)]
    save_checkpoint(folder, checkpoint.build(), checkpoint.card, replaces=replacing or background, keep=keep)
    return checkpoint.card


def check_normalization(card: ModelCard, normalization: str, model: str | os.PathLike) -> None:
    """UsageError where `normalization` asks for running statistics of a generator without batch
    norm (`model`: how the message names it): only batch norm keeps them, so the setting would
    change the card, or nothing at all, but never a frame."""
    if normalization == Normalization.RUNNING.value and card.norm != "batch":
        held = ("which keeps none: it normalizes each frame by its own statistics" if card.norm == "instance"
                else "no norm layers")
        raise UsageError(f"{spell_setting('normalization', 'running')} uses batch norm's running statistics, and "
                         f"{model} is a {card.architecture} generator with {card.norm} norm ({held}); drop it")


def checkpoint_files(folder: str | os.PathLike) -> list[Path]:
    """The paths of the model in `folder` and of what training keeps beside it: card, weights,
    background, training state (whether there or not) and the sample grids there are."""
    folder = Path(folder)
    return [folder / name for name in MODEL_FILE_NAMES] + sorted((folder / SAMPLES_FOLDER).glob(SAMPLE_GRIDS))


def not_a_file(path: Path) -> str | None:
    """What is at `path` where a checkpoint's file goes and cannot ("a folder", "a FIFO"...): no
    save replaces it, nor removes it with the model; None for a file, a link, or nothing."""
    if not os.path.lexists(path) or path.is_symlink() or path.is_file():
        return None
    return "a folder" if path.is_dir() else special_file_kind(os.stat(path).st_mode)


def remove_checkpoint_files(folder: str | os.PathLike, keep: Collection[Path] = ()) -> None:
    """Delete the model in `folder` with everything that belongs to it: card, weights, background,
    and what training kept beside it (its state, its sample grids, and their folder once empty),
    but the files in `keep`; any other file stays. A new model written there must not inherit the
    old one's background or training state, nor show its samples as its own."""
    folder = Path(folder)
    samples = folder / SAMPLES_FOLDER
    try:
        for path in checkpoint_files(folder):
            if path not in keep:
                path.unlink(missing_ok=True)
    except OSError as e:
        raise VidtransError(f"{folder}: cannot remove the previous checkpoint ({first_line(e)}); "
                            "check the folder is writable") from e
    # Kept where it still holds something (this model's grids, or the user's files), or is no folder.
    with contextlib.suppress(OSError):
        samples.rmdir()


def import_pix2pix(path: str | os.PathLike, input_kind: str = "rgb", size: int | None = None) -> Checkpoint:
    """Read an upstream `latest_net_G.pth` and describe it with a card inferred from its keys.

    size: the square size the model was trained at (pix2pix's --crop_size); None takes the
    architecture's (unet_128: 128, unet_256: 256, ResNets: 256, upstream's default crop).
    Imported models run in fp32 unless asked otherwise: nobody checked them in fp16/bf16.
    """
    path = Path(path)
    if size is not None:
        check_size(size)
    if path.is_dir():
        raise VidtransError(f"{path}: is a folder; a .pth file is expected: pass a pix2pix generator such as "
                            "latest_net_G.pth")
    if not path.is_file():
        what = f"is {special_file_kind(path.stat().st_mode)}, not a file" if path.exists() else "no such file"
        raise VidtransError(f"{path}: {what}; pass a pix2pix latest_net_G.pth")
    _check_readable(path, "pass a pix2pix latest_net_G.pth")  # unreadable: the fix is its permissions
    # A safetensors file is told by its content: torch.load picks the format by the extension.
    metadata = _safetensors_metadata(path)
    # Our weights: torch.load reads them too, but a card inferred anew would lose theirs.
    if WEIGHTS_ID_KEY in (metadata or {}) or path.name == WEIGHTS_NAME and (path.parent / CARD_NAME).is_file():
        raise _needs_no_import(path, (metadata or {}).get(WEIGHTS_ID_KEY, ""))
    fix = "re-save the generator with torch.save(net.state_dict(), path)"
    if metadata is None and _is_torchscript(path):
        raise VidtransError(f"{path}: a TorchScript archive (a whole network saved with torch.jit.save), not a "
                            "generator's state_dict; save its weights with "
                            f"torch.save(torch.jit.load({str(path)!r}).state_dict(), 'G.pth') and pass G.pth")
    if metadata is None:
        raw, entry = _generator_entry(load_tensor_file(path, fix), path)
    else:
        try:
            raw, entry = load_file(str(path)), None
        except (SafetensorError, OSError, ValueError) as e:
            raise _damaged_safetensors(path, e) from e
    if not isinstance(raw, dict):
        raise VidtransError(f"{path}: holds a value of type {type(raw).__name__}, not a generator's state_dict "
                            f"(a dict of tensors); {fix}")
    not_names = [key for key in raw if not isinstance(key, str)]
    if not_names:
        kind = type(not_names[0]).__name__
        raise VidtransError(f"{path}: entry {str(not_names[0])[:60]!r} is named by {_article(kind)} {kind}, "
                            f"not a layer's name, so this is no generator's state_dict; {fix}")
    not_tensors = [key for key, value in raw.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        key = not_tensors[0]
        raise VidtransError(f"{path}: entry {str(key)[:60]!r} holds a value of type {type(raw[key]).__name__}, not "
                            f"a tensor, so this is no generator's state_dict; {fix}")
    state_dict = _unwrapped(raw, path, fix)
    card = infer_card(state_dict, str(path))
    card.input_kind = input_kind
    card.half_precision = False
    card.source = f"imported from pix2pix checkpoint {path.name}" + (f" (entry {entry!r})" if entry else "")
    try:
        card.check(str(path))
    except VidtransError as e:
        raise _not_a_pix2pix_generator(path, card, e, state_dict) from None
    side = default_size(card.architecture) if size is None else size
    card.native_size = (side, side)
    state_dict = _drop_instance_norm_stats(state_dict, card)
    # The shapes before the values: a tensor declared huge over a few stored bytes (a stride of 0)
    # would take more memory than there is to be looked at.
    check_weights_fit(card, {name: tuple(tensor.shape) for name, tensor in state_dict.items()}, path)
    _check_weights(state_dict, path)
    checkpoint = Checkpoint(card, state_dict, path)
    checkpoint.build()  # fail now, with a clear message, if the layout does not match
    return checkpoint


# What wrappers put before a network's own names in its state_dict: DataParallel's and
# DistributedDataParallel's "module.", torch.compile's "_orig_mod.", in any order and number.
_WRAPPERS = re.compile(r"^(?:module\.|_orig_mod\.)+")


def _unwrapped(raw: dict[str, torch.Tensor], path: Path, fix: str) -> dict[str, torch.Tensor]:
    """`raw` under the generator's own names (see _WRAPPERS); VidtransError where two entries
    become one, which is then no single generator's."""
    state_dict: dict[str, torch.Tensor] = {}
    wrapped: dict[str, str] = {}
    for key, value in raw.items():
        name = _WRAPPERS.sub("", key)
        if name in state_dict:
            raise VidtransError(f"{path}: holds tensor {name!r} twice (entries {wrapped[name][:60]!r} and "
                                f"{key[:60]!r}), so it is no single generator's state_dict; {fix}")
        state_dict[name], wrapped[name] = value, key
    return state_dict


def _not_a_pix2pix_generator(path: Path, card: ModelCard, error: VidtransError,
                             state_dict: dict[str, torch.Tensor]) -> VidtransError:
    """Why the generator at `path` (`state_dict`), read as `card`, cannot be imported (`error`: the card's check)."""
    if card.input_nc == 6 and _checks(dataclasses.replace(
            card, temporal={"previous": TEMPORAL_PREVIOUS[0], "first": TEMPORAL_FIRST[0]})):
        return VidtransError(f"{path}: a whole {card.architecture} generator, with 6 input channels as a temporal "
                             "model has (the frame, then its previous output), which a pix2pix file cannot describe: "
                             "only generators of 1 or 3 input channels are imported; use a vidtrans temporal model's "
                             "checkpoint folder instead")
    channels = {"input": card.input_nc, "output": card.output_nc}
    odd = {side: count for side, count in channels.items() if count not in (1, 3)}
    if odd and _is_whole(state_dict, card, dataclasses.replace(card, input_nc=3, output_nc=3)):
        counts = " and ".join(f"{count} {side} channels" for side, count in odd.items())
        sides = " and ".join({"input": "feeds", "output": "takes back"}[side] for side in odd)
        flags = " and ".join(f"--{side}_nc" for side in odd)
        return VidtransError(f"{path}: a whole {card.architecture} generator with {counts}; vidtrans {sides} 1 "
                             "(grey) or 3 (RGB) channels, so it cannot use this model; pass a generator trained with "
                             f"pix2pix's {flags} 1 or 3")
    # The card was read off the layers: a value no generator has means layers are missing or foreign.
    found = str(error).split(": ", 1)[-1].split(";")[0]
    return VidtransError(f"{path}: its layers do not make a whole pix2pix generator ({found}); pass a complete "
                         "latest_net_G.pth (unet_128, unet_256, resnet_6blocks or resnet_9blocks)")


def _is_whole(state_dict: dict[str, torch.Tensor], card: ModelCard, fixed: ModelCard) -> bool:
    """Whether `state_dict`, read as `card` (whose channel counts no vidtrans model has), is a whole
    generator: `fixed` (the same with counts vidtrans takes) checks, and the tensors are exactly
    those of `card`'s generator."""
    if not _checks(fixed):
        return False
    found = {name: tuple(tensor.shape) for name, tensor in _drop_instance_norm_stats(state_dict, card).items()}
    try:
        return _needed_shapes(card, found) == found
    except (VidtransError, LookupError, ValueError, RuntimeError):
        return False


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _is_torchscript(path: Path) -> bool:
    """Whether `path` is a TorchScript archive (torch.jit.save's zip, which holds constants.pkl)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "constants.pkl" or name.endswith("/constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _needs_no_import(path: Path, weights_id: str) -> VidtransError:
    """The error for a vidtrans checkpoint's weights given to import: use the folder they are in, where
    it holds their card; weights copied out of their folder need the card saved with them."""
    card = path.parent / CARD_NAME
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if card.is_file() and json.loads(card.read_text()).get("weights_id", "") in ("", weights_id):
            return VidtransError(f"{path}: the weights of a vidtrans checkpoint, which need no import; use its "
                                 f"folder ({path.parent}) as the model")
    return VidtransError(f"{path}: the weights of a vidtrans checkpoint, which need no import but the card.json saved "
                         "with them; use the checkpoint folder they were copied from as the model")


def _checks(card: ModelCard) -> bool:
    try:
        card.check()
    except VidtransError:
        return False
    return True


def _safetensors_metadata(path: Path) -> dict[str, str] | None:
    """The header metadata of a safetensors file (empty where it has none); None for any other file.
    VidtransError for a file that begins as safetensors do, or is named as one and is no torch.save
    file, but cannot be read as one (truncated, its header's length damaged)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        named = path.suffix.lower() == ".safetensors" and not _starts_like_torch_save(path)
        if named or _starts_like_safetensors(path):
            raise _damaged_safetensors(path, e) from e
        return None


def _damaged_safetensors(path: Path, error: Exception) -> VidtransError:
    return VidtransError(f"{path}: a damaged or truncated safetensors file ({first_line(error)}); copy it again")


# The largest header safetensors reads (its own limit is 100 MB).
_MAX_SAFETENSORS_HEADER = 100_000_000


def _starts_like_safetensors(path: Path) -> bool:
    """Whether `path` begins as a safetensors file does: the header's length (8 bytes, little-endian),
    then the header, a JSON object."""
    start = _file_start(path, 9)
    return len(start) == 9 and start[8:] == b"{" and 2 <= int.from_bytes(start[:8], "little") <= _MAX_SAFETENSORS_HEADER


def _generator_entry(raw: Any, path: Path) -> tuple[Any, str | None]:
    """The generator's state_dict in what an upstream file holds, and the entry it is under (None:
    the file is the state_dict, or no generator was told apart): a file saved whole by a training
    script holds the networks' state_dicts ({"netG": ..., "netD": ..., "epoch": 3}), one of which is
    the generator; the one entry that is a dict ({"state_dict": ...}) is taken as it. Several
    generators (CycleGAN's G_A and G_B) are refused, naming them: which one is wanted is the user's."""
    if not isinstance(raw, dict):
        return raw, None
    _refuse_optimizer_state(raw, path)
    nested = [key for key, value in raw.items() if isinstance(value, dict)]
    if len(nested) == 1:
        _refuse_optimizer_state(raw[nested[0]], path)
        return raw[nested[0]], nested[0]
    generators = [key for key in nested if _layout({_WRAPPERS.sub("", str(k)): v for k, v in raw[key].items()})]
    if len(generators) == 1:
        return raw[generators[0]], generators[0]
    if generators:
        raise VidtransError(f"{path}: holds {len(generators)} generators (entries "
                            f"{', '.join(map(repr, generators))}); save the one to import alone, e.g. "
                            f"torch.save(torch.load({str(path)!r}, weights_only=True)[{generators[0]!r}], "
                            "'generator.pth'), and pass that")
    if nested:
        raise VidtransError(f"{path}: holds no pix2pix generator's state_dict (its entries "
                            f"{', '.join(map(repr, nested))} are no generator's); pass the generator "
                            "(latest_net_G.pth)")
    return raw, None


def _refuse_optimizer_state(raw: Mapping[Any, Any], path: Path) -> None:
    """VidtransError where `raw` is an optimizer's state_dict (torch.optim's: 'state' and 'param_groups')."""
    if isinstance(raw.get("state"), dict) and isinstance(raw.get("param_groups"), list):
        raise VidtransError(f"{path}: an optimizer's state (torch.optim's 'state' and 'param_groups'), not a "
                            "generator's weights; pass the generator (latest_net_G.pth)")


def infer_card(state_dict: dict[str, torch.Tensor], where: str) -> ModelCard:
    """Architecture, depth, ngf, norm, channels and dropout layout from the key names and shapes."""
    layout = _layout(state_dict)
    if layout is _infer_resnet:
        _refuse_other_downsampling(state_dict, where)
    if layout is not None:
        try:
            return layout(state_dict)
        except (KeyError, IndexError, ValueError) as e:  # a layer missing, or not the shape of one
            what = f"no layer {e.args[0]!r}" if isinstance(e, KeyError) else "a layer not shaped as a generator's"
            raise VidtransError(f"{where}: its layers do not make a whole pix2pix generator ({what}); pass a "
                                "complete latest_net_G.pth (unet_128, unet_256, resnet_6blocks or "
                                "resnet_9blocks)") from None
    if "model.0.weight" in state_dict and not any(".conv_block." in k for k in state_dict):
        raise VidtransError(f"{where}: this looks like a PatchGAN discriminator (net_D); pass the generator (latest_net_G.pth)")
    raise VidtransError(f"{where}: unknown layout; expected a pix2pix/CycleGAN generator (unet_128, unet_256, "
                        f"resnet_6blocks or resnet_9blocks) with keys like model.model.0.weight or model.1.weight")


def _layout(state_dict: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor]], ModelCard] | None:
    """What reads the card off a pix2pix generator's state_dict, told by its keys (any of them, so
    that a file missing its first layer is named as such); None for none."""
    if any(str(k).startswith("model.model.") for k in state_dict):
        return _infer_unet
    if any(re.match(r"model\.\d+\.conv_block\.", str(k)) for k in state_dict):
        return _infer_resnet
    return None


def _norm_from_keys(state_dict: dict[str, torch.Tensor], norm_key: str, conv_keys: tuple[str, ...]) -> str:
    # Batch norm's scale or shift: either is enough, so that a missing one is named as missing.
    if f"{norm_key}.weight" in state_dict or f"{norm_key}.bias" in state_dict:
        return "batch"
    # Upstream instance norm has no affine weights but its convolutions have biases: any of two
    # is enough, so that a file missing one bias is named as missing it, not read as norm none.
    if any(f"{key}.bias" in state_dict for key in conv_keys):
        return "instance"
    return "none"


def _infer_unet(state_dict: dict[str, torch.Tensor]) -> ModelCard:
    depth, prefix = 1, "model.model.1.model."
    while f"{prefix}1.weight" in state_dict:
        depth += 1
        prefix += "3.model."
    if 2 ** depth < 32:  # no U-Net is that shallow: the next level's convolution is missing
        raise KeyError(f"{prefix}1.weight")
    first = state_dict["model.model.0.weight"]
    last = state_dict["model.model.3.weight"]  # ConvTranspose2d: (in, out, kh, kw)
    norm = _norm_from_keys(state_dict, "model.model.1.model.2", ("model.model.0", "model.model.1.model.1"))
    # Dropout layers hold no weights, so they leave no trace in the keys; it does not matter
    # here because inference runs with dropout off for deterministic video.
    return ModelCard(architecture=f"unet_{2 ** depth}", ngf=first.shape[0], norm=norm, dropout=False,
                     input_nc=first.shape[1], output_nc=last.shape[1])


def _resnet_blocks(state_dict: Mapping[str, Any]) -> set[int]:
    """The indices in `model` of a ResNet generator's residual blocks."""
    return {int(m.group(1)) for k in state_dict if (m := re.match(r"model\.(\d+)\.conv_block\.", str(k)))}


def _refuse_other_downsampling(state_dict: Mapping[str, Any], where: str) -> None:
    """VidtransError for a ResNet generator that halves its input other than twice before its
    residual blocks (each halving a convolution, a norm and an activation, after the first four
    layers), which no pix2pix generator does: pix2pixHD's (4 by default) is otherwise alike, so
    its latest_net_G.pth would read as a pix2pix file with layers missing."""
    halvings, rest = divmod(min(_resnet_blocks(state_dict)) - 4, 3)
    convolutions = all(f"model.{4 + 3 * i}.weight" in state_dict for i in range(halvings))  # not blocks missing
    if halvings >= 0 and not rest and convolutions and halvings != ResnetGenerator.num_downs:
        raise VidtransError(f"{where}: a ResNet generator with {halvings} downsampling{'s' * (halvings != 1)} before "
                            f"its residual blocks, as pix2pixHD's has (pix2pix's have {ResnetGenerator.num_downs}), "
                            "which vidtrans cannot run; pass a pytorch-CycleGAN-and-pix2pix generator (resnet_6blocks, "
                            "resnet_9blocks, unet_128 or unet_256), or train one with vidtrans train")


def _infer_resnet(state_dict: dict[str, torch.Tensor]) -> ModelCard:
    blocks = _resnet_blocks(state_dict)
    first_block = min(blocks)
    # Dropout shifts the second convolution from index 5 to 6. Without dropout, batch norm's 1-D
    # scale is at 6 (after the convolution), so only a 4-D convolution kernel there means dropout.
    shifted = state_dict.get(f"model.{first_block}.conv_block.6.weight")
    dropout = shifted is not None and shifted.ndim == 4
    first = state_dict["model.1.weight"]
    # The last convolution comes 8 layers after the last block (two upsamplings of 3, a padding):
    # looked up there, so that a file without it is named as such.
    last = state_dict[f"model.{max(blocks) + 8}.weight"]
    norm = _norm_from_keys(state_dict, "model.2", ("model.1", "model.4"))
    return ModelCard(architecture=f"resnet_{len(blocks)}blocks", ngf=first.shape[0], norm=norm, dropout=dropout,
                     input_nc=first.shape[1], output_nc=last.shape[0])


def _drop_instance_norm_stats(state_dict: dict[str, torch.Tensor], card: ModelCard) -> dict[str, torch.Tensor]:
    """Old CycleGAN checkpoints carry running stats for InstanceNorm layers that no longer have them."""
    if card.norm != "instance":
        return state_dict
    stats = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in state_dict.items() if k.rsplit(".", 1)[-1] not in stats}
