"""pix2pix training: conditional GAN + lambda * L1, in one plain loop, with pix2pixHD's and
Everybody Dance Now's additions (each one a setting): PatchGANs at two scales with discriminator
feature matching, a discriminator and an L1 loss on the face square, and EDN's temporal model
(the generator also sees its own previous output, the discriminator two consecutive frames).

No part of the objective uses pretrained weights: pix2pixHD and EDN also use a VGG perceptual loss,
but an ImageNet network cannot be had offline, and vidtrans never downloads weights.

Samples are drawn each from its own number, so a seed gives the same samples whether DataLoader
worker processes prepare them ahead of the step (the default on a GPU: rendering a synthetic pair
costs several ms of CPU) or the step draws them, however the workers are scheduled. Runs on one CPU
or GPU, or on several GPUs under `torchrun` (DDP; each
rank draws its own samples, rank 0 validates and writes checkpoints). The output folder is a
normal vidtrans checkpoint (usable by `load_model` at every save) plus `train_state.pt` for
`--resume`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vidtrans.atomic import write_atomically
from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.metrics import psnr, ssim
from vidtrans.models.checkpoint import (BACKGROUND_NAME, CARD_NAME, MAX_SIZE, SAMPLE_GRIDS, SAMPLES_FOLDER,
                                        TRAIN_STATE_NAME, WEIGHTS_NAME, ModelCard, background_png,
                                        check_checkpoint_folder, checkpoint_files, load_checkpoint,
                                        load_tensor_file, not_a_file, read_card, save_checkpoint,
                                        state_dict_mismatch)
from vidtrans.models.networks import (GENERATORS, NORMS, MultiscaleDiscriminator, build_generator, init_weights,
                                      input_multiple, parse_generator, peak_activations, use_per_sample_stats,
                                      widen_input)
from vidtrans.models.translator import available_memory, memory_name, out_of_memory, resolve_device
from vidtrans.options import check_switch, is_int, plain, shown, spell, spelled
from vidtrans.pose.regions import Box, face_box
from vidtrans.runner import usable_cores

STATE_NAME = TRAIN_STATE_NAME
_STATE_KEYS = ("iteration", "netD", "optG", "optD", "config")
# Settings that shape the networks and the training images: a resumed run must keep them.
RESUME_SETTINGS = ("architecture", "ngf", "ndf", "n_layers_d", "norm", "size", "d_scales", "face_d", "temporal")
# Settings of the objective and of the samples drawn (each from the seed and its number, batch after
# batch): a resumed run must keep them too, or its card would describe the whole run with new ones.
RESUMED_OBJECTIVE = ("batch_size", "lr", "lambda_l1", "lambda_feat", "lambda_face_gan", "lambda_face", "seed")
# The recipe's settings, all off: pix2pix's objective, and what a training state saved before they
# existed trained with.
RECIPE_OFF = {"d_scales": 1, "face_d": False, "lambda_feat": 0.0, "lambda_face_gan": 0.0, "lambda_face": 0.0,
              "temporal": False}
# The face square is resized to this side for its discriminator and L1 loss: a 256 px frame's face
# (about 30 px) upsampled, a 1024 px frame's downsampled; the face PatchGAN then sees all of it.
FACE_CROP = 64
# How often fit hands the losses to on_step: reading them waits for the device.
REPORT_SECONDS = 0.5
# The final save allows half precision in the card (fp16 on CUDA, bf16 on CPUs with AMX or AVX-512 BF16, under
# --precision auto) only where the generator's output in bf16 (and, trained on CUDA, fp16) is
# within this PSNR of its fp32 output on every one of the first HALF_PRECISION_SAMPLES held-out
# samples: about 1.4 grey levels RMS. The shipped pose2person is at 56.5 dB in bf16.
HALF_PRECISION_MIN_PSNR = 45.0
HALF_PRECISION_SAMPLES = 4


class PairSource(Protocol):
    """Where training pairs come from: `sample` draws one (input, target) pair of uint8 RGB images,
    with the keypoints (18, 3) of the person in the target image, or None where they are unknown."""

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def background(self) -> np.ndarray | None:
        """The target's scene without the person (uint8 RGB at the training size), or None if unknown."""
        ...


class SequenceSource(PairSource, Protocol):
    """A source of consecutive frames, which a temporal model trains on: `sample_sequence` draws
    `length` consecutive ones, each as `sample` would, and `validation_sequences` gives held-out
    runs of `length` (input, target) pairs."""

    def sample_sequence(self, rng: np.random.Generator,
                        length: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]: ...

    def validation_sequences(self, length: int) -> list[list[tuple[np.ndarray, np.ndarray]]]: ...


@dataclass
class TrainConfig:
    iterations: int = 10000
    batch_size: int = 1
    architecture: str = "unet_256"
    ngf: int = 64
    ndf: int = 64
    n_layers_d: int = 3
    # Instance norm behaves like pix2pix's batch norm at batch size 1 (its default) for any batch
    # size, and keeps inference batch-invariant.
    norm: str = "instance"
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l1: float = 100.0
    decay_from: float = 0.5  # fraction of iterations after which the learning rate decays linearly to 0
    save_every: int = 500
    validate_every: int = 500
    seed: int = 0
    amp: bool = True  # CUDA only
    # The recipe (pix2pixHD, Everybody Dance Now), none of it pretrained (see the module's note).
    d_scales: int = 2  # PatchGANs at the full frame and each halving (pix2pixHD); 1: pix2pix's one
    lambda_feat: float = 10.0  # discriminator feature matching (pix2pixHD's weight); 0: off
    face_d: bool = True  # a conditional PatchGAN on the face square (EDN's face GAN, vid2vid's face D)
    lambda_face_gan: float = 2.0  # its adversarial loss's weight for the generator (vid2vid's)
    lambda_face: float = 100.0  # L1 on the face square, on top of the frame's; 0: off
    data_workers: int | None = None  # processes preparing samples; None: chosen for the device
    init_from: str | None = None  # checkpoint whose generator weights a new run starts from (fine-tuning)
    # Everybody Dance Now's temporal model: the generator sees the frame's input and its own output
    # for the frame before; the discriminator judges two consecutive frames (needs a SequenceSource).
    temporal: bool = False


def sample_length(config: TrainConfig) -> int:
    """Frames per training sample: a temporal model learns from two consecutive ones (EDN)."""
    return 2 if config.temporal else 1


def _whole(value: Any, low: int, high: int | None = None) -> bool:
    return is_int(value) and low <= value <= (high or value)


def check_config(config: TrainConfig, size: int | None) -> None:
    """VidtransError for a setting training cannot use (the training `size` too, unless None)."""
    try:
        parse_generator(config.architecture)
    except ValueError:
        raise UsageError(f"{spell('architecture')} {shown(config.architecture)} is unknown; use one of "
                            f"{', '.join(GENERATORS)}") from None
    for setting in ("ngf", "ndf"):
        if not _whole(getattr(config, setting), 1, 1024):
            raise UsageError(f"{spell(setting)} must be a whole number from 1 to 1024, got "
                             f"{shown(getattr(config, setting))}")
    for setting in ("iterations", "batch_size", "save_every", "validate_every"):
        if not _whole(getattr(config, setting), 1):
            raise UsageError(f"{spell(setting)} must be at least 1, got {shown(getattr(config, setting))}")
    if config.norm not in NORMS:
        raise UsageError(f"{spell('norm')} must be one of {', '.join(NORMS)}, not {shown(config.norm)}")
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise UsageError(f"{spell('lr')} must be a positive learning rate such as 2e-4, got {shown(config.lr)}")
    if not (isinstance(config.decay_from, (int, float)) and 0 <= config.decay_from <= 1):
        raise UsageError(f"{spell('decay_from')} must be a share of the iterations from 0 to 1, got "
                         f"{shown(config.decay_from)}")
    for setting in ("lambda_l1", "lambda_feat", "lambda_face_gan", "lambda_face"):
        value = getattr(config, setting)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and value >= 0):
            raise UsageError(f"{spell(setting)} must be 0 or more, got {shown(value)}")
    if not _whole(config.d_scales, 1, 3):
        raise UsageError(f"{spell('d_scales')} must be 1, 2 or 3, got {shown(config.d_scales)}")
    for setting in ("face_d", "temporal"):
        check_switch(getattr(config, setting), setting)
    if config.data_workers is not None and not _whole(config.data_workers, 0, 64):
        raise UsageError(f"{spell('data_workers')} must be a whole number from 0 to 64, got "
                         f"{shown(config.data_workers)}")
    multiple, low = size_steps(config)
    if size is not None and (not _whole(size, low, MAX_SIZE) or size % multiple):
        scales = f" with {spell('d_scales')} {config.d_scales}" if low > max(multiple, 32) else ""
        raise UsageError(f"{spell('size')} {shown(size)} does not fit {config.architecture}{scales}: use a multiple of "
                            f"{multiple} from {low} to {MAX_SIZE}")


def size_steps(config: TrainConfig) -> tuple[int, int]:
    """(multiple, smallest): the training sizes `config`'s networks take are the multiples of the
    first from the second up to MAX_SIZE. The generator's input must be a multiple of its
    downsampling (a U-Net halves it down to 1 px); the PatchGAN discriminator needs at least 32 px
    at its coarsest scale."""
    multiple = input_multiple(config.architecture)
    return multiple, max(multiple, 32 << (config.d_scales - 1))


def largest_size(config: TrainConfig, most: int) -> int | None:
    """The largest training size of at most `most` pixels that `config`'s networks take; None where
    they take none that small."""
    multiple, smallest = size_steps(config)
    size = min(most, MAX_SIZE) // multiple * multiple
    return size if size >= smallest else None


def check_output(out_dir: str | os.PathLike, resume: bool, overwrite: bool) -> None:
    """UsageError if training cannot write `out_dir` as asked, before any work is done."""
    if resume and overwrite:
        raise UsageError(f"{spell('resume=True')} continues the checkpoint in {out_dir} and {spell('overwrite=True')} "
                         "replaces it; pass one of them")
    check_checkpoint_folder(out_dir)
    out_dir = Path(out_dir)
    # A folder (or other non-file) named as a file saves write, or as one of the old run's that the
    # first save of --overwrite removes: that save would fail, after training up to it.
    for path in checkpoint_files(out_dir):
        if kind := not_a_file(path):
            raise UsageError(f"{path}: {kind}, where training writes or replaces its checkpoint's "
                             f"{path.relative_to(out_dir).as_posix()}; move it away or write the checkpoint to "
                             "another folder")
    resumable = (out_dir / STATE_NAME).is_file()
    # A model without its training state (shipped, imported, or its state deleted) cannot go on
    # training: only fine-tuning or starting over, whichever way round the folder was given.
    model = not resumable and any((out_dir / name).exists() for name in (CARD_NAME, WEIGHTS_NAME))
    fine_tune = f"fine-tune it with {spell('init_from')} {out_dir} and another output folder"
    if resume and model:
        raise UsageError(f"{out_dir}: holds a model but no training state ({STATE_NAME}) to resume; {fine_tune}, "
                         f"or start over there with {spell('overwrite=True')} instead of {spell('resume=True')}")
    if resume and not resumable:
        raise UsageError(f"{out_dir}: nothing to resume ({STATE_NAME} missing); drop {spell('resume=True')} to start "
                         "fresh")
    if not resume and not overwrite and model:
        raise UsageError(f"{out_dir}: already holds a model, without the training state ({STATE_NAME}) "
                         f"{spell('resume=True')} needs; {fine_tune}, or pass {spell('overwrite=True')} to start over "
                         "(replacing it)")
    if not resume and not overwrite and any((out_dir / name).exists() for name in (CARD_NAME, WEIGHTS_NAME, STATE_NAME)):
        raise UsageError(f"{out_dir}: already holds a checkpoint; pass {spell('resume=True')} to continue training it "
                         f"or {spell('overwrite=True')} to start over (replacing it)")
    if not resume and not overwrite:
        # Files of the names training writes beside a checkpoint, in a folder holding none: the
        # user's own (a background picture), which the first save would replace unasked.
        theirs = [out_dir / BACKGROUND_NAME] + sorted((out_dir / SAMPLES_FOLDER).glob(SAMPLE_GRIDS))
        if taken := next((path for path in theirs if os.path.lexists(path)), None):
            raise UsageError(f"{taken}: already there, named as training names its files (a checkpoint's "
                             "background, its sample grids); move it away, "
                             f"write the checkpoint to another folder, or pass {spell('overwrite=True')} to replace it")
    grids = out_dir / SAMPLES_FOLDER
    if os.path.lexists(grids) and not grids.is_dir():
        # No save replaces it (its grids go in it), and the first one, after training up to it, would fail.
        raise UsageError(f"{grids}: not a folder, where training writes its sample grids; move it away or write the "
                         "checkpoint to another folder")


def read_train_state(out_dir: str | os.PathLike, mmap: bool = False) -> dict:
    """The train_state.pt of a checkpoint folder, on the CPU; VidtransError unless it holds only tensors
    and plain data with everything a resume needs."""
    path = Path(out_dir) / STATE_NAME
    fix = f"start over with {spell('overwrite=True')}"
    state = load_tensor_file(path, fix, mmap=mmap)
    if not isinstance(state, dict):
        raise VidtransError(f"{path}: not a vidtrans training state (a {type(state).__name__}); {fix}")
    bad = [key for key in _STATE_KEYS if key not in state]
    if not bad:
        checks = {"config": isinstance(state["config"], dict), "iteration": _whole(state["iteration"], 0)}
        bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise VidtransError(f"{path}: not a vidtrans training state (missing or bad: {', '.join(bad)}); {fix}")
    if "d_scales" not in state["config"] and isinstance(state["netD"], dict):
        # Saved before the recipe settings: its one PatchGAN is a one-scale discriminator's first scale.
        state["netD"] = {f"scales.0.{name}": value for name, value in state["netD"].items()}
    state["config"] = {**RECIPE_OFF, **state["config"]}  # what it left out was not yet there: off
    # A resumed run goes on with these (its plan and recipe): each must be one a run could have had.
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        with spelled({}):  # the file's settings, not the caller's: named as the file names them
            check_config(TrainConfig(**{k: v for k, v in state["config"].items() if k in fields}), None)
    except UsageError as e:
        raise VidtransError(f"{path}: not a vidtrans training state ({e}); {fix}") from None
    return state


def check_state_fits_card(out_dir: str | os.PathLike, state: dict, card: ModelCard) -> None:
    """VidtransError unless the training state is that of the model beside it (the same
    iteration): resuming from the discriminators and optimizers of another iteration would go on
    silently with a run that never was."""
    saved = card.training.get("iterations")
    mismatch = None
    if saved != state["iteration"]:
        model = f"iteration {plain(saved)}" if _whole(saved, 0) else "no recorded iteration"
        mismatch = f"is from iteration {plain(state['iteration'])}, but the model beside it ({CARD_NAME}) from {model}"
    else:  # a state of the same iteration from another run: its networks, or the recipe its
        # discriminators and optimizers went by, are another run's (the card records the rest of both)
        config = state["config"]
        recorded = {**card.training, "architecture": card.architecture, "ngf": card.ngf}
        for setting in (*RESUME_SETTINGS, *RESUMED_OBJECTIVE):
            if setting in config and setting in recorded and config[setting] != recorded[setting]:
                mismatch = (f"is of a run with {spell(setting)} {plain(config[setting])}, but the model "
                            f"beside it ({CARD_NAME}) has {plain(recorded[setting])}")
                break
    if mismatch:
        raise VidtransError(f"{Path(out_dir) / STATE_NAME}: {mismatch}, so they cannot resume together (a save was "
                            f"cut short, or the files come from different runs); start over with "
                            f"{spell('overwrite=True')}")


def check_world_size(out_dir: str | os.PathLike, card: ModelCard, world: int) -> None:
    """UsageError where the checkpoint in `out_dir` was trained by another number of processes
    than `world`: each process draws its own samples, a batch of the batch size each, so the run
    would go on with other samples and batches than its card records, as with another batch size."""
    trained = card.training.get("world_size")
    if not _whole(trained, 1) or trained == world:  # cards of older vidtrans may not record it
        return

    def processes(count: int) -> str:
        return "one process" if count == 1 else f"{plain(count)} torchrun processes"

    raise UsageError(f"{out_dir} was trained by {processes(trained)}, which {spell('resume=True')} keeps "
                     f"({spell('batch_size')} is per process); resume it with {processes(trained)}, not {world}, or "
                     f"start a new stage from this model with {spell('init_from')} {out_dir} and another output folder")


def saved_settings(out_dir: str | os.PathLike, state: dict | None = None) -> dict[str, Any]:
    """RESUME_SETTINGS as the checkpoint in `out_dir` has them (those it records)."""
    state = state if state is not None else read_train_state(out_dir, mmap=True)
    settings = {k: state["config"][k] for k in RESUME_SETTINGS if k in state["config"]}
    settings["size"] = read_card(out_dir).native_size[0]
    return settings


def resume_conflicts(saved: dict[str, Any], requested: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, requested, saved) for every requested setting the checkpoint has otherwise."""
    return [(k, v, saved[k]) for k, v in requested.items() if k in saved and v != saved[k]]


def describe_conflicts(conflicts: list[tuple[str, Any, Any]], advice: str = "use") -> str:
    """E.g. "ngf 32 differs from the checkpoint's 16; use ngf 16", one clause per conflict. A switch
    is named as it is asked for: "face_d=False differs from the checkpoint, trained with
    face_d=True; use face_d=True" (with the CLI's names, --no-face-d and --face-d)."""

    def clause(setting: str, value: Any, saved: Any) -> str:
        if isinstance(saved, bool):
            asked, kept = spell(f"{setting}={value}"), spell(f"{setting}={saved}")
            return f"{asked} differs from the checkpoint, trained with {kept}; {advice} {kept}"
        value, saved = plain(value), plain(saved)
        return f"{spell(setting)} {value} differs from the checkpoint's {saved}; {advice} {spell(setting)} {saved}"

    return "; ".join(clause(*conflict) for conflict in conflicts)


# A training step keeps every activation of the generator and the discriminators for the backward
# pass: measured on a CPU (peak RSS, batch 1 against 256 / 64), 14x the generator's inference peak
# per sample for resnet_6blocks ngf 4 at 64x64, 8.7x for unet_128 ngf 8 at 128x128. 4x is a bound
# that no batch which would fit reaches.
_TRAINING_PEAK_FACTOR = 4


def _check_batch_fits(config: TrainConfig, size: tuple[int, int], device: torch.device) -> None:
    """UsageError for a batch that cannot fit the memory available by a wide margin (an oversized
    --batch-size filled a 23 GB machine for a minute and a half before failing)."""
    available = available_memory(device)
    per_sample = _TRAINING_PEAK_FACTOR * peak_activations(config.architecture, config.ngf, *size) * 4  # float32
    if available is not None and config.batch_size * per_sample > available:
        fits = max(1, available // per_sample)
        raise UsageError(f"batches of {config.batch_size} samples need more than "
                         f"{config.batch_size * per_sample / 2**30:.1f} GiB of {memory_name(device)} memory, and "
                         f"{available / 2**30:.1f} GiB is available; pass a batch size under {fits}")


def _to_device(images: torch.Tensor, device: torch.device, memory_format) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1] on `device` (copied without waiting when pinned)."""
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x.contiguous(memory_format=memory_format)


def _to_tensor(images: list[np.ndarray], device: torch.device, memory_format) -> torch.Tensor:
    return _to_device(torch.from_numpy(np.stack(images)), device, memory_format)


def _to_images(x: torch.Tensor) -> np.ndarray:
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# What torchrun does for a process it starts, and what a variable of its left in the environment
# (a job script's export) is told to do instead.
_LAUNCH = "torchrun sets these variables for each process it starts: torchrun --nproc_per_node N -m vidtrans train ..."


def launched() -> tuple[int, int]:
    """(rank, world size) of this process: its process group's, or those torchrun gave it for the
    group it joins when training starts (known before any work is done); (0, 1) alone."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = _launch_number("WORLD_SIZE", 1)
    if world <= 1:
        return 0, 1
    rank = _launch_number("RANK", 0)
    if rank >= world:
        raise UsageError(f"RANK={rank} in the environment is not below WORLD_SIZE={world}; {_LAUNCH}, or unset both "
                         "to train in one process")
    return rank, world


def _launch_number(name: str, default: int) -> int:
    """The whole number in the environment variable `name` that torchrun sets; `default` if unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    number = int(value) if value.isascii() and value.isdigit() else -1  # int() refuses '²', which isdigit takes
    if number < 0:
        raise UsageError(f"{name}={shown(value)} in the environment is not a whole number; {_LAUNCH}, or unset "
                         f"{name} to train in one process")
    return number


def _distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size), joining torchrun's process group: NCCL for CUDA devices, Gloo otherwise
    (NCCL cannot reduce CPU tensors, e.g. `--device cpu` on a machine with GPUs)."""
    world = launched()[1]
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        except (ValueError, dist.DistError) as e:
            # Its rendezvous's variables missing: WORLD_SIZE came from elsewhere (a job script's export).
            missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name, "").strip()]
            if missing:
                raise UsageError(f"WORLD_SIZE={world} in the environment asks for {world} processes, but "
                                 f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; {_LAUNCH}, "
                                 "or unset WORLD_SIZE to train in one process") from None
            raise VidtransError(f"cannot join torchrun's {world} processes ({first_line(e)}); {_LAUNCH}") from e
    return launched()


# Sample preparation processes when --data-workers is not given. On a GPU the step is shorter than
# rendering a batch, so several. On a CPU the step keeps every core busy, and a process drawing
# ahead only takes turns with it: on 2 cores it measured 5 % slower at batch 1 and the same at
# batch 4 than samples drawn in the step (benchmarks/README.md, "Training speed").
CPU_DATA_WORKERS = 0
MAX_DATA_WORKERS = 8


def _data_workers(config: TrainConfig, device: torch.device, world: int) -> int:
    if config.data_workers is not None:
        return config.data_workers
    if device.type != "cuda":
        return CPU_DATA_WORKERS
    return max(1, min(MAX_DATA_WORKERS, usable_cores() // world - 1))


class _Samples(torch.utils.data.Dataset):
    """Sample number n of a run, drawn with a generator seeded by (seed, rank, n): the same seed gives
    the same samples whichever worker prepares them and when, and a resumed run goes on with the
    samples the uninterrupted run would have drawn. A sample is `length` consecutive frames."""

    def __init__(self, source: PairSource, seed: int, rank: int, length: int = 1):
        self.source, self.seed, self.rank, self.length = source, seed, rank, length

    def __getitem__(self, n: int):
        rng = np.random.default_rng([self.seed, self.rank, n])
        try:
            frames = self.source.sample_sequence(rng, self.length) if self.length > 1 else [self.source.sample(rng)]
        except VidtransError as e:
            return e  # raised by the training loop: DataLoader would add its own lines to the message
        return [(a, b, face_box(keypoints, *b.shape[:2]) if keypoints is not None else None)
                for a, b, keypoints in frames]


# Inputs and targets (uint8, T*N x H x W x 3: the N samples' first frames, then their second ones,
# ...), each frame's face box, and which frames show a face.
Batch = tuple[torch.Tensor, torch.Tensor, list[Box], torch.Tensor]


def _collate(samples: list) -> Batch | Exception:
    """A frame without a face gets the whole frame as its box, so that the batch's crops always
    have one shape (and weight 0)."""
    error = next((s for s in samples if isinstance(s, Exception)), None)
    if error is not None:
        return error
    frames = [sample[t] for t in range(len(samples[0])) for sample in samples]
    height, width = frames[0][1].shape[:2]
    boxes = [box or (0, 0, width, height) for _, _, box in frames]
    faces = torch.tensor([box is not None for _, _, box in frames])
    inputs, targets = (torch.from_numpy(np.stack([frame[i] for frame in frames])) for i in (0, 1))
    return inputs, targets, boxes, faces


def _generate(net: nn.Module, inputs: torch.Tensor, length: int, first: torch.Tensor | None,
              memory_format=torch.contiguous_format) -> torch.Tensor:
    """The generator's output for a batch of inputs (`length` * N frames, frame-major as in Batch).
    A temporal generator (`first`: its previous image before a clip's first frame, (1, 3, H, W))
    makes each sample's frames in order, each from its input and the output for the frame before,
    taken as given (detached, as in EDN): every frame learns from its own losses."""
    if first is None:
        return net(inputs)
    outputs, previous = [], first.expand(len(inputs) // length, -1, -1, -1)
    for frame in inputs.chunk(length):
        outputs.append(net(torch.cat([frame, previous], 1).contiguous(memory_format=memory_format)))
        previous = outputs[-1].detach()
    return torch.cat(outputs)


def _sequence_pairs(pairs: torch.Tensor, length: int) -> torch.Tensor:
    """Each frame's (input, image) pair (`length` * N, 6, H, W), frame-major -> what the frame
    discriminator judges: each sample's `length` inputs, then its `length` images (N, 6 * length,
    H, W; EDN's temporal discriminator sees pose t-1, pose t, image t-1, image t)."""
    if length == 1:
        return pairs
    frames = pairs.chunk(length)
    return torch.cat([frame[:, :3] for frame in frames] + [frame[:, 3:] for frame in frames], 1)


class Trainer:
    def __init__(self, source: PairSource, out_dir: str | os.PathLike, config: TrainConfig, card: ModelCard,
                 device: str = "auto", resume: bool = False,
                 on_step: Callable[[int, dict[str, float]], None] | None = None, overwrite: bool = False):
        """Train into the checkpoint folder `out_dir`: a new one, the one there with `resume`, or a
        fresh one replacing it with `overwrite` (the old run's files go when this one writes its
        first checkpoint: a run stopped before that leaves them as they were).

        on_step(iteration, losses) is called on rank 0 about every REPORT_SECONDS and after each
        validation, with the losses averaged since the previous call and "it_s" (plus "ssim" and
        "psnr" after a validation)."""
        check_config(config, card.native_size[0])
        check_output(out_dir, resume, overwrite)
        if config.temporal and not callable(getattr(source, "sample_sequence", None)):
            raise UsageError("a temporal model trains on consecutive frames, which this data source does not "
                             "have (a paired folder's pairs are unrelated); train on a video or synthetic data")
        self.source = source
        self.out_dir = Path(out_dir)
        self.config = config
        self.card = card
        self.on_step = on_step
        if device == "auto":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        self.device = resolve_device(device)
        _check_batch_fits(config, card.native_size, self.device)
        self.rank, self.world = _distributed(self.device)
        self.amp = config.amp and self.device.type == "cuda"
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        torch.manual_seed(config.seed + self.rank)
        self.length = sample_length(config)
        # Before a clip's first frame a temporal generator sees the card's "first" image, as the
        # translator makes it: the target's empty scene if known, else black (uint8 0: -1).
        self.temporal: dict[str, str] | None = None  # the card's field
        self.first: torch.Tensor | None = None
        if config.temporal:
            background = source.background()
            self.temporal = {"previous": "output", "first": "black" if background is None else "background"}
            first = (torch.zeros((1, *card.native_size, 3), dtype=torch.uint8) if background is None
                     else torch.from_numpy(background)[None])
            self.first = _to_device(first, self.device, self.memory_format)
        # Each network initialised as soon as it is built: the generator's initial weights then do
        # not depend on which discriminators the recipe asks for.
        input_nc = 6 if config.temporal else 3  # the frame's input, then the previous output
        self.netG = self._initialised(build_generator(config.architecture, input_nc, 3, config.ngf, config.norm))
        self.netD = self._initialised(MultiscaleDiscriminator(6 * self.length, config.ndf, config.n_layers_d,
                                                              config.norm, config.d_scales))
        # The face square's discriminator, conditional like the frame's: (pose crop, image crop).
        self.netD_face = (self._initialised(MultiscaleDiscriminator(6, config.ndf, config.n_layers_d, config.norm, 1))
                          if config.face_d else None)
        self.discriminators = [net for net in (self.netD, self.netD_face) if net is not None]
        # Fused Adam: one kernel for all parameters (on a CPU, a third of the time of the default
        # implementation for these networks), and with AMP the scaler's check for infinite gradients
        # stays on the device instead of waiting for it.
        adam = {"lr": config.lr, "betas": (config.beta1, 0.999), "fused": True}
        self.optG = torch.optim.Adam(self.netG.parameters(), **adam)
        self.optD = torch.optim.Adam(itertools.chain(*(net.parameters() for net in self.discriminators)), **adam)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.iteration = 0
        self._old_run_to_remove = overwrite and self.rank == 0
        self._new_grids: set[Path] = set()
        self._grid_to_save: np.ndarray | None = None  # the sample grid of the iteration `save` writes
        # Sample grids made before this run's first save (path: PNG): written with it, so that a run
        # stopped or failing before it leaves nothing (not even the folder it would have made), and
        # an --overwrite run replaces none of the old run's grids before it has a checkpoint.
        self._held_grids: dict[Path, bytes] | None = {}
        if resume:
            self._load_state()
        elif config.init_from:
            self._load_generator(config.init_from)
        self.G, self.D, self.D_face = self.netG, self.netD, self.netD_face
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = functools.partial(nn.parallel.DistributedDataParallel, device_ids=ids)
            self.G, self.D = ddp(self.netG), ddp(self.netD)
            if self.netD_face is not None:
                self.D_face = ddp(self.netD_face)
        self._batches: Any = None  # the DataLoader's iterator, started by the first step

    def _initialised(self, net: nn.Module) -> nn.Module:
        init_weights(net)
        return net.to(self.device, memory_format=self.memory_format)

    # --- one step ------------------------------------------------------------------------------------

    def _lr(self, iteration: int) -> float:
        decay_start = self.config.decay_from * self.config.iterations
        if iteration < decay_start:
            return self.config.lr
        remaining = max(self.config.iterations - decay_start, 1)
        return self.config.lr * max(0.0, 1.0 - (iteration - decay_start) / remaining)

    def _next_batch(self) -> Batch:
        """The next batch, inputs and targets as floats on the device (each sample's `length` frames)."""
        if self._batches is None:
            workers = _data_workers(self.config, self.device, self.world)
            loader = torch.utils.data.DataLoader(
                _Samples(self.source, self.config.seed, self.rank, self.length), batch_size=self.config.batch_size,
                sampler=itertools.count(self.iteration * self.config.batch_size), num_workers=workers,
                collate_fn=_collate, pin_memory=self.device.type == "cuda", prefetch_factor=2 if workers else None,
                generator=torch.Generator().manual_seed(self.config.seed))  # leaves the global RNG alone
            self._batches = iter(loader)
        batch = next(self._batches)
        if isinstance(batch, Exception):
            raise batch
        inputs, targets, boxes, faces = batch
        inputs, targets = (_to_device(images, self.device, self.memory_format) for images in (inputs, targets))
        return inputs, targets, boxes, faces

    def close(self) -> None:
        """Stop the sample-preparing processes (fit does; a caller of `step` may)."""
        self._batches = None  # the iterator shuts its workers down when dropped

    def step(self) -> dict[str, torch.Tensor]:
        """One iteration: the discriminators' update, then the generator's. The losses stay on the
        device: reading them would make the CPU wait for it."""
        config = self.config
        real_a, real_b, boxes, faces = self._next_batch()
        for opt in (self.optG, self.optD):
            for group in opt.param_groups:
                group["lr"] = self._lr(self.iteration)
        # The face terms are left out of a batch without a face; under DDP every process computes
        # them (weight 0 without a face), as all must take part in reducing the face discriminator.
        face = (config.face_d or config.lambda_face > 0) and (bool(faces.any()) or self.world > 1)
        autocast = torch.autocast(self.device.type, enabled=self.amp)
        losses: dict[str, torch.Tensor] = {}
        with autocast:
            # A temporal sample's two frames are judged together by the frame discriminator, and
            # the L1 and face terms cover both (as EDN's perceptual loss does): the first is what a
            # clip's first frame gets at inference, and what the second sees as the previous output.
            fake_b = _generate(self.G, real_a, self.length, self.first, self.memory_format)
            real_frames, fake_frames = torch.cat([real_a, real_b], 1), torch.cat([real_a, fake_b], 1)
            real_pair, fake_pair = (_sequence_pairs(pairs, self.length) for pairs in (real_frames, fake_frames))
            if face:
                weights = (faces / faces.sum().clamp(min=1)).to(self.device, non_blocking=True)
                real_face, fake_face = (_crop(pairs, boxes, self.memory_format) for pairs in (real_frames, fake_frames))

            for net in self.discriminators:
                net.requires_grad_(True)
            real_out = self.D(real_pair)
            losses["d"] = 0.5 * (_gan_loss(real_out, True) + _gan_loss(self.D(fake_pair.detach()), False))
            loss_d = losses["d"]
            if face and config.face_d:
                real_face_out = self.D_face(real_face)
                losses["d_face"] = 0.5 * (_gan_loss(real_face_out, True, weights)
                                          + _gan_loss(self.D_face(fake_face.detach()), False, weights))
                loss_d = loss_d + losses["d_face"]
        self.optD.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.optD)

        # As upstream pix2pix: the generator's step computes no gradients for the discriminators.
        # Frozen, they have nothing for DDP to reduce either, so their own modules are called.
        for net in self.discriminators:
            net.requires_grad_(False)
        with autocast:
            fake_out = self.netD(fake_pair)
            losses["g_gan"] = _gan_loss(fake_out, True)
            losses["g_l1"] = F.l1_loss(fake_b.float(), real_b)
            loss_g = losses["g_gan"] + config.lambda_l1 * losses["g_l1"]
            if config.lambda_feat:
                # Real features from the discriminators' step (before their update, as pix2pixHD
                # takes both from one pass), which saves a discriminator pass per step.
                losses["g_feat"] = _feature_matching(fake_out, real_out, config.n_layers_d)
                loss_g = loss_g + config.lambda_feat * losses["g_feat"]
            if config.face_d:
                losses["g_face_gan"] = losses["g_face_feat"] = torch.zeros((), device=self.device)
                if face:
                    face_out = self.netD_face(fake_face)
                    losses["g_face_gan"] = _gan_loss(face_out, True, weights)
                    losses["g_face_feat"] = _feature_matching(face_out, real_face_out, config.n_layers_d, weights)
                    loss_g = (loss_g + config.lambda_face_gan * losses["g_face_gan"]
                              + config.lambda_feat * losses["g_face_feat"])
            if config.lambda_face:
                losses["g_face"] = torch.zeros((), device=self.device)
                if face:
                    losses["g_face"] = _mean((fake_face[:, 3:].float() - real_face[:, 3:].float()).abs(), weights)
                    loss_g = loss_g + config.lambda_face * losses["g_face"]
        self.optG.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.optG)
        self.scaler.update()
        self.iteration += 1
        return {name: loss.detach() for name, loss in losses.items()}

    # --- loop ----------------------------------------------------------------------------------------

    def fit(self) -> dict[str, float]:
        metrics: dict[str, float] = self.card.metrics.get("validation", {})
        scored_at = metrics.get("iteration", self.iteration)  # cards before it was recorded: at their save
        started, start_iteration = time.perf_counter(), self.iteration
        reporting = self.on_step is not None and self.rank == 0
        totals: dict[str, torch.Tensor] = {}
        steps, reported = 0, started
        try:
            while self.iteration < self.config.iterations:
                losses = self.step()
                if reporting:
                    totals = {name: totals[name] + loss if name in totals else loss for name, loss in losses.items()}
                    steps += 1
                done = self.iteration
                last = done == self.config.iterations
                validated = self.rank == 0 and (done % self.config.validate_every == 0 or last)
                saving = self.rank == 0 and (done % self.config.save_every == 0 or last)
                if validated:
                    metrics, grid = self._scored()
                    scored_at = done
                    if saving:  # written with its checkpoint: a save cut short leaves neither
                        self._grid_to_save = grid
                    elif grid is not None:
                        self._write_grid(grid)
                if saving:
                    self.save({**metrics, "iteration": scored_at} if metrics else {}, final=last)
                now = time.perf_counter()
                if reporting and (validated or now - reported >= REPORT_SECONDS):
                    means = (torch.stack(list(totals.values())).float() / steps).tolist()  # the one wait
                    report = {**dict(zip(totals, means)), "it_s": (done - start_iteration) / max(now - started, 1e-9),
                              **(metrics if validated else {})}
                    self.on_step(done, report)
                    totals, steps, reported = {}, 0, now
        except (RuntimeError, MemoryError) as e:
            if not out_of_memory(e):  # a batch too large
                raise
            size = self.card.native_size[0]
            raise VidtransError(f"out of {memory_name(self.device)} memory training on batches of "
                                f"{self.config.batch_size} samples of {size}x{size}; pass a smaller batch "
                                "size") from None
        finally:
            self.close()
        if self.world > 1:
            dist.barrier()
        return metrics

    def _held_out(self) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """The held-out samples: runs of `length` consecutive (input, target) frames, scored on the last."""
        return (self.source.validation_sequences(self.length) if self.config.temporal
                else [[pair] for pair in self.source.validation()])

    @torch.no_grad()
    def _generated(self, sequences: list[list[tuple[np.ndarray, np.ndarray]]],
                   half: torch.dtype | None = None) -> np.ndarray:
        """The generator's images (uint8) for the last frame of each of `sequences`, made as
        inference makes them (a temporal one's first frame as a clip's first; `half`: under
        autocast to that type, as --precision does)."""
        self.netG.eval()
        use_per_sample_stats(self.netG, True)
        outputs = []
        for i in range(0, len(sequences), 8):
            chunk = sequences[i:i + 8]
            inputs = _to_tensor([frames[t][0] for t in range(self.length) for frames in chunk], self.device,
                                self.memory_format)
            with torch.autocast(self.device.type, dtype=half, enabled=half is not None):
                fake = _generate(self.netG, inputs, self.length, self.first, self.memory_format)
            outputs.append(_to_images(fake.chunk(self.length)[-1]))
        use_per_sample_stats(self.netG, False)
        self.netG.train()
        return np.concatenate(outputs)

    def _scored(self) -> tuple[dict[str, float], np.ndarray | None]:
        """SSIM/PSNR on the held-out pairs, with the generator as inference will run it (a temporal
        one's on the second of two consecutive held-out frames, the first made as a clip's first),
        and their sample grid (None without any)."""
        sequences = self._held_out()
        if not sequences:
            return {}, None
        fake = self._generated(sequences)
        pairs = [frames[-1] for frames in sequences]
        real = np.stack([b for _, b in pairs])
        return {"ssim": round(ssim(fake, real), 4), "psnr": round(psnr(fake, real), 2)}, _sample_grid(pairs, fake)

    def half_precision(self) -> dict[str, Any]:
        """How far the generator's output in half precision is from its fp32 output: bf16 (what
        CPUs with AMX or AVX-512 BF16 run), and fp16 (what CUDA runs) where training runs on CUDA, each as the
        lowest PSNR over the first HALF_PRECISION_SAMPLES held-out samples and the largest
        difference in grey levels; "faithful" when all are within HALF_PRECISION_MIN_PSNR."""
        sequences = self._held_out()[:HALF_PRECISION_SAMPLES]
        if not sequences:
            return {"faithful": False}
        reference = self._generated(sequences)
        types = {"bf16": torch.bfloat16, **({"fp16": torch.float16} if self.device.type == "cuda" else {})}
        measured: dict[str, Any] = {}
        for name, half in types.items():
            output = self._generated(sequences, half)
            measured[name] = {"psnr": round(min(psnr(a[None], b[None]) for a, b in zip(output, reference)), 2),
                              "max_difference": int(np.abs(output.astype(int) - reference).max())}
        faithful = all(figures["psnr"] >= HALF_PRECISION_MIN_PSNR for figures in measured.values())
        return {"faithful": faithful, "samples": len(sequences), "required_psnr": HALF_PRECISION_MIN_PSNR, **measured}

    def _grid_path(self) -> Path:
        """Where the sample grid of this iteration goes."""
        return self.out_dir / SAMPLES_FOLDER / f"iter_{self.iteration:07d}.png"

    def _write_grid(self, grid: np.ndarray) -> None:
        path, png = self._grid_path(), _png(grid)
        if self._held_grids is not None:
            self._held_grids[path] = png
            return
        path.parent.mkdir(exist_ok=True)
        write_atomically(path, lambda f: f.write(png), overwrite=True, what="sample grid")
        self._new_grids.add(path)

    def save(self, metrics: dict[str, float], final: bool = False) -> None:
        """Write the checkpoint: model, background, training state and the sample grid `fit` made
        at this iteration as one set (see save_checkpoint). The first save of an `overwrite` run
        replaces the old run's files, all but the sample grids this run has written: none of them
        may mix with this run's, and until this run has a checkpoint of its own, the old one stays
        whole. Only the `final` save measures half precision; the card of an earlier one does not
        allow it."""
        card = dataclasses.replace(self.card, architecture=self.config.architecture, ngf=self.config.ngf,
                                   norm=self.config.norm, input_nc=6 if self.temporal else 3, output_nc=3,
                                   temporal=self.temporal)
        card.training = {**self.card.training, "iterations": self.iteration, "batch_size": self.config.batch_size,
                         "world_size": self.world, "lr": self.config.lr, "lambda_l1": self.config.lambda_l1,
                         "ndf": self.config.ndf, "seed": self.config.seed, "device": self.device.type,
                         **{k: getattr(self.config, k) for k in RECIPE_OFF}}
        card.metrics = {**self.card.metrics, **({"validation": metrics} if metrics else {})}
        card.half_precision = False
        if final:
            measured = self.half_precision()
            card.half_precision = measured.pop("faithful")
            if measured:
                card.metrics["half_precision"] = measured
        state = {"iteration": self.iteration, "netD": self.netD.state_dict(), "optG": self.optG.state_dict(),
                 "optD": self.optD.state_dict(), "scaler": self.scaler.state_dict(),
                 "config": dataclasses.asdict(self.config)}
        if self.netD_face is not None:
            state["netD_face"] = self.netD_face.state_dict()
        extras = {}
        background = self.source.background()
        if background is not None:  # `run` shows it for frames without a person
            png = background_png(background)
            extras[BACKGROUND_NAME] = lambda f: f.write(png)
        extras[STATE_NAME] = lambda f: torch.save(state, f)
        grid, self._grid_to_save = self._grid_to_save, None
        grids = dict(self._held_grids or {})
        if grid is not None:
            grids[self._grid_path()] = _png(grid)
        for path, grid_png in grids.items():
            extras[str(path.relative_to(self.out_dir))] = lambda f, data=grid_png: f.write(data)
        save_checkpoint(self.out_dir, self.netG, card, extras=extras, replaces=self._old_run_to_remove,
                        keep=self._new_grids)
        self._new_grids.update(grids)
        self._held_grids = None
        self._old_run_to_remove = False

    def _load_generator(self, name_or_path: str) -> None:
        checkpoint = load_checkpoint(name_or_path)
        try:
            # A frame-by-frame model starts a temporal run ignoring the previous output: it starts
            # out making exactly the frames it made, and learns to use it.
            self.netG.load_state_dict(widen_input(checkpoint.state_dict, self.netG))
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise VidtransError(f"{checkpoint.path}: its generator does not fit this run's ({state_dict_mismatch(e)}); "
                                "drop the architecture settings to take the model's") from e

    def _load_state(self) -> None:
        state, card = read_train_state(self.out_dir), read_card(self.out_dir)
        check_state_fits_card(self.out_dir, state, card)
        check_world_size(self.out_dir, card, self.world)
        requested = {**{k: getattr(self.config, k) for k in (*RESUME_SETTINGS, *RESUMED_OBJECTIVE) if k != "size"},
                     "size": self.card.native_size[0]}
        saved = {**saved_settings(self.out_dir, state=state),
                 **{k: state["config"][k] for k in RESUMED_OBJECTIVE if k in state["config"]}}
        conflicts = resume_conflicts(saved, requested)
        if conflicts:
            raise UsageError(f"{self.out_dir}: {describe_conflicts(conflicts)}")
        checkpoint = load_checkpoint(self.out_dir)
        try:
            # Optimizers move their state to their parameters' device.
            self.netG.load_state_dict(checkpoint.state_dict)
            self.netD.load_state_dict(state["netD"])
            if self.netD_face is not None:
                self.netD_face.load_state_dict(state["netD_face"])
            self.optG.load_state_dict(state["optG"])
            self.optD.load_state_dict(state["optD"])
            if state.get("scaler"):  # empty when saved without AMP (e.g. on a CPU); a no-op without AMP
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise VidtransError(f"{self.out_dir / STATE_NAME}: does not fit the networks ({state_dict_mismatch(e)}); "
                                f"start over with {spell('overwrite=True')}") from e
        self.iteration = state["iteration"]


def _sample_grid(pairs: list[tuple[np.ndarray, np.ndarray]], fake: np.ndarray, rows: int = 4) -> np.ndarray:
    """pose | generated | real, one row per held-out sample (up to `rows`, spread over them)."""
    picks = np.linspace(0, len(pairs) - 1, min(rows, len(pairs))).astype(int)
    return np.concatenate([np.concatenate([pairs[i][0], fake[i], pairs[i][1]], axis=1) for i in picks], axis=0)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def _crop(images: torch.Tensor, boxes: list[Box], memory_format) -> torch.Tensor:
    """Each image's box (x0, y0, x1, y1), resized to FACE_CROP x FACE_CROP."""
    crops = [F.interpolate(images[i:i + 1, :, y0:y1, x0:x1].float().contiguous(), size=(FACE_CROP, FACE_CROP),
                           mode="bilinear", align_corners=False, antialias=True) for i, (x0, y0, x1, y1) in enumerate(boxes)]
    return torch.cat(crops).contiguous(memory_format=memory_format)


def _mean(loss: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of `loss`; with per-sample `weights` (summing to 1 or 0), each sample's mean weighted."""
    if weights is None:
        return loss.mean()
    return (loss.flatten(1).mean(1) * weights).sum()


def _gan_loss(outputs: list[list[torch.Tensor]], real: bool, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of each scale's patch logits (its last output) against real or fake, summed over
    the scales as pix2pixHD does."""
    total = torch.zeros((), device=outputs[0][-1].device)
    for features in outputs:
        logits = features[-1].float()
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        total = total + _mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), weights)
    return total


def _feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]], n_layers: int,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """pix2pixHD's feature matching: L1 between the discriminator's intermediate features on the
    generated and the real pair, each layer weighted 4 / (n_layers + 1), averaged over the scales."""
    total = torch.zeros((), device=fake[0][-1].device)
    for fake_features, real_features in zip(fake, real):
        for f, r in zip(fake_features[:-1], real_features[:-1]):
            total = total + _mean((f.float() - r.detach().float()).abs(), weights)
    return total * (4.0 / (n_layers + 1)) / len(fake)
