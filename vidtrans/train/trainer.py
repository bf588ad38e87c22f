"""pix2pix training: conditional GAN (PatchGAN) + lambda * L1, in one plain loop.

Runs on one CPU or GPU, or on several GPUs under `torchrun` (DDP; each rank draws its own samples,
rank 0 validates and writes checkpoints). The output folder is a normal vidtrans checkpoint
(usable by `load_model` at every save) plus `train_state.pt` for `--resume`.
"""

from __future__ import annotations

import dataclasses
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
from vidtrans.errors import VidtransError
from vidtrans.metrics import psnr, ssim
from vidtrans.models.checkpoint import (BACKGROUND_NAME, CARD_NAME, MAX_SIZE, WEIGHTS_NAME, ModelCard,
                                        load_checkpoint, load_tensor_file, read_card, save_background,
                                        save_checkpoint, state_dict_mismatch)
from vidtrans.models.networks import (GENERATORS, NORMS, NLayerDiscriminator, build_generator, init_weights,
                                      input_multiple, parse_generator, use_per_sample_stats)
from vidtrans.models.translator import resolve_device
from vidtrans.options import is_int

STATE_NAME = "train_state.pt"
_STATE_KEYS = ("iteration", "netD", "optG", "optD", "config")
# Settings that shape the networks and the training images: a resumed run must keep them.
RESUME_SETTINGS = ("architecture", "ngf", "ndf", "n_layers_d", "norm", "size")
# How errors spell settings for Python callers; the CLI passes its flags instead.
PARAMETERS = {"resume": "resume=True", "overwrite": "overwrite=True"}


class PairSource(Protocol):
    """Where training pairs come from: `sample` draws one (input, target) pair of uint8 RGB images,
    with the keypoints (18, 3) of the person in the target image, or None where they are unknown."""

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...

    def validation(self) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def background(self) -> np.ndarray | None:
        """The target's scene without the person (uint8 RGB at the training size), or None if unknown."""
        ...


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


def _spell(names: dict[str, str] | None) -> Callable[[str], str]:
    return lambda setting: {**PARAMETERS, **(names or {})}.get(setting, setting)


def _whole(value: Any, low: int, high: int | None = None) -> bool:
    return is_int(value) and low <= value <= (high or value)


def check_config(config: TrainConfig, size: int, names: dict[str, str] | None = None) -> None:
    """VidtransError for a setting training cannot use; `names` spells settings (e.g. CLI flags)."""
    spell = _spell(names)
    try:
        parse_generator(config.architecture)
    except ValueError:
        raise VidtransError(f"{spell('architecture')} {config.architecture!r} is unknown; use one of "
                            f"{', '.join(GENERATORS)}") from None
    for setting in ("ngf", "ndf"):
        if not _whole(getattr(config, setting), 1, 1024):
            raise VidtransError(f"{spell(setting)} must be a whole number from 1 to 1024, got {getattr(config, setting)!r}")
    for setting in ("iterations", "batch_size", "save_every", "validate_every"):
        if not _whole(getattr(config, setting), 1):
            raise VidtransError(f"{spell(setting)} must be at least 1, got {getattr(config, setting)!r}")
    if config.norm not in NORMS:
        raise VidtransError(f"{spell('norm')} must be one of {', '.join(NORMS)}, not {config.norm!r}")
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise VidtransError(f"{spell('lr')} must be a positive learning rate such as 2e-4, got {config.lr!r}")
    if not (isinstance(config.lambda_l1, (int, float)) and math.isfinite(config.lambda_l1) and config.lambda_l1 >= 0):
        raise VidtransError(f"{spell('lambda_l1')} must be 0 or more, got {config.lambda_l1!r}")
    # The generator's input must be a multiple of its downsampling (a U-Net halves it down to 1 px);
    # the PatchGAN discriminator needs at least 32 px.
    multiple = input_multiple(config.architecture)
    low = max(multiple, 32)
    if not _whole(size, low, MAX_SIZE) or size % multiple:
        raise VidtransError(f"{spell('size')} {size!r} does not fit {config.architecture}: use a multiple of {multiple} "
                            f"from {low} to {MAX_SIZE}")


def check_output(out_dir: str | os.PathLike, resume: bool, overwrite: bool, names: dict[str, str] | None = None) -> None:
    """VidtransError if training cannot write `out_dir` as asked, before any work is done."""
    spell, out_dir = _spell(names), Path(out_dir)
    if resume and overwrite:
        raise VidtransError(f"{spell('resume')} continues the checkpoint in {out_dir} and {spell('overwrite')} "
                            "replaces it; pass one of them")
    if out_dir.exists() and not out_dir.is_dir():
        raise VidtransError(f"{out_dir}: is a file; give a folder for the checkpoint")
    if resume and not (out_dir / STATE_NAME).is_file():
        raise VidtransError(f"{out_dir}: nothing to resume ({STATE_NAME} missing); drop {spell('resume')} to start fresh")
    if not resume and not overwrite and any((out_dir / name).exists() for name in (CARD_NAME, WEIGHTS_NAME, STATE_NAME)):
        raise VidtransError(f"{out_dir}: already holds a checkpoint; pass {spell('resume')} to continue training it "
                            f"or {spell('overwrite')} to start over (replacing it)")
    existing = next(folder for folder in (out_dir, *out_dir.absolute().parents) if folder.exists())
    if not existing.is_dir():
        raise VidtransError(f"{out_dir}: {existing} is a file, not a folder; choose another output folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VidtransError(f"{out_dir}: cannot write to {existing} (permission denied); choose a writable folder")


def read_train_state(out_dir: str | os.PathLike, names: dict[str, str] | None = None, mmap: bool = False) -> dict:
    """The train_state.pt of a checkpoint folder, on the CPU; VidtransError unless it holds only tensors
    and plain data with everything a resume needs."""
    spell, path = _spell(names), Path(out_dir) / STATE_NAME
    fix = f"start over with {spell('overwrite')}"
    state = load_tensor_file(path, fix, mmap=mmap)
    if not isinstance(state, dict):
        raise VidtransError(f"{path}: not a vidtrans training state (a {type(state).__name__}); {fix}")
    bad = [key for key in _STATE_KEYS if key not in state]
    if not bad:
        checks = {"config": isinstance(state["config"], dict), "iteration": _whole(state["iteration"], 0)}
        bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise VidtransError(f"{path}: not a vidtrans training state (missing or bad: {', '.join(bad)}); {fix}")
    return state


def saved_settings(out_dir: str | os.PathLike, names: dict[str, str] | None = None,
                   state: dict | None = None) -> dict[str, Any]:
    """RESUME_SETTINGS as the checkpoint in `out_dir` has them (those it records)."""
    state = state if state is not None else read_train_state(out_dir, names, mmap=True)
    settings = {k: state["config"][k] for k in RESUME_SETTINGS if k in state["config"]}
    settings["size"] = read_card(out_dir).native_size[0]
    return settings


def resume_conflicts(saved: dict[str, Any], requested: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, requested, saved) for every requested setting the checkpoint has otherwise."""
    return [(k, v, saved[k]) for k, v in requested.items() if k in saved and v != saved[k]]


def describe_conflicts(conflicts: list[tuple[str, Any, Any]], names: dict[str, str] | None = None,
                       advice: str = "use") -> str:
    """E.g. "ngf 32 differs from the checkpoint's 16; use ngf 16", one clause per conflict."""
    spell = _spell(names)
    return "; ".join(f"{spell(k)} {value} differs from the checkpoint's {saved}; {advice} {spell(k)} {saved}"
                     for k, value, saved in conflicts)


def _to_tensor(images: list[np.ndarray], device: torch.device, memory_format) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x.contiguous(memory_format=memory_format)


def _to_images(x: torch.Tensor) -> np.ndarray:
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    def __init__(self, source: PairSource, out_dir: str | os.PathLike, config: TrainConfig, card: ModelCard,
                 device: str = "auto", resume: bool = False,
                 on_step: Callable[[int, dict[str, float]], None] | None = None, overwrite: bool = False):
        """Train into the checkpoint folder `out_dir`: a new one, the one there with `resume`, or a
        fresh one replacing it with `overwrite` (the old run's files go when training starts)."""
        check_config(config, card.native_size[0])
        check_output(out_dir, resume, overwrite)
        self.source = source
        self.out_dir = Path(out_dir)
        self.config = config
        self.card = card
        self.on_step = on_step
        self.rank, self.world = _distributed()
        if device == "auto":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
        self.device = resolve_device(device)
        self.amp = config.amp and self.device.type == "cuda"
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        torch.manual_seed(config.seed + self.rank)
        self.rng = np.random.default_rng(config.seed + 1000 * self.rank)
        self.netG = build_generator(config.architecture, 3, 3, config.ngf, config.norm).to(self.device, memory_format=self.memory_format)
        self.netD = NLayerDiscriminator(6, config.ndf, config.n_layers_d, config.norm).to(self.device, memory_format=self.memory_format)
        for net in (self.netG, self.netD):
            init_weights(net)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.iteration = 0
        if overwrite and self.rank == 0:
            _remove_run(self.out_dir)
        if resume:
            self._load_state()
            # Draw new samples after a resume rather than replaying the first run's sequence.
            self.rng = np.random.default_rng([config.seed, self.rank, self.iteration])
        self.G = self.netG
        self.D = self.netD
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G = nn.parallel.DistributedDataParallel(self.netG, device_ids=ids)
            self.D = nn.parallel.DistributedDataParallel(self.netD, device_ids=ids)

    # --- one step ------------------------------------------------------------------------------------

    def _lr(self, iteration: int) -> float:
        decay_start = self.config.decay_from * self.config.iterations
        if iteration < decay_start:
            return self.config.lr
        remaining = max(self.config.iterations - decay_start, 1)
        return self.config.lr * max(0.0, 1.0 - (iteration - decay_start) / remaining)

    def step(self) -> dict[str, float]:
        pairs = [self.source.sample(self.rng) for _ in range(self.config.batch_size)]
        real_a = _to_tensor([a for a, _, _ in pairs], self.device, self.memory_format)
        real_b = _to_tensor([b for _, b, _ in pairs], self.device, self.memory_format)
        for opt in (self.optG, self.optD):
            for group in opt.param_groups:
                group["lr"] = self._lr(self.iteration)
        autocast = torch.autocast(self.device.type, enabled=self.amp)
        with autocast:
            fake_b = self.G(real_a)
            pred_fake = self.D(torch.cat([real_a, fake_b.detach()], 1))
            pred_real = self.D(torch.cat([real_a, real_b], 1))
            loss_d = 0.5 * (_gan_loss(pred_fake, False) + _gan_loss(pred_real, True))
        self.optD.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.optD)
        with autocast:
            pred_fake = self.D(torch.cat([real_a, fake_b], 1))
            loss_gan = _gan_loss(pred_fake, True)
            loss_l1 = F.l1_loss(fake_b.float(), real_b)
            loss_g = loss_gan + self.config.lambda_l1 * loss_l1
        self.optG.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.optG)
        self.scaler.update()
        self.iteration += 1
        return {"g_gan": loss_gan.item(), "g_l1": loss_l1.item(), "d": loss_d.item()}

    # --- loop ----------------------------------------------------------------------------------------

    def fit(self) -> dict[str, float]:
        metrics: dict[str, float] = self.card.metrics.get("validation", {})
        started, start_iteration = time.perf_counter(), self.iteration
        while self.iteration < self.config.iterations:
            losses = self.step()
            done = self.iteration
            losses["it_s"] = (done - start_iteration) / max(time.perf_counter() - started, 1e-9)
            last = done == self.config.iterations
            if self.rank == 0 and (done % self.config.validate_every == 0 or last):
                metrics = self.validate()
                losses.update(metrics)
            if self.rank == 0 and (done % self.config.save_every == 0 or last):
                self.save(metrics)
            if self.on_step and self.rank == 0:
                self.on_step(done, losses)
        if self.world > 1:
            dist.barrier()
        return metrics

    @torch.no_grad()
    def validate(self, write_grid: bool = True) -> dict[str, float]:
        """SSIM/PSNR on the held-out pairs, with the generator as inference will run it."""
        pairs = self.source.validation()
        if not pairs:
            return {}
        self.netG.eval()
        use_per_sample_stats(self.netG, True)
        outputs = []
        for i in range(0, len(pairs), 8):
            chunk = pairs[i:i + 8]
            outputs.append(_to_images(self.netG(_to_tensor([a for a, _ in chunk], self.device, self.memory_format))))
        use_per_sample_stats(self.netG, False)
        self.netG.train()
        fake = np.concatenate(outputs)
        real = np.stack([b for _, b in pairs])
        if write_grid:
            self._write_grid(pairs, fake)
        return {"ssim": round(ssim(fake, real), 4), "psnr": round(psnr(fake, real), 2)}

    def _write_grid(self, pairs, fake: np.ndarray, rows: int = 4) -> None:
        """pose | generated | real, one row per held-out sample."""
        picks = np.linspace(0, len(pairs) - 1, min(rows, len(pairs))).astype(int)
        grid = np.concatenate([np.concatenate([pairs[i][0], fake[i], pairs[i][1]], axis=1) for i in picks], axis=0)
        samples = self.out_dir / "samples"
        samples.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(samples / f"iter_{self.iteration:07d}.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))

    def save(self, metrics: dict[str, float]) -> None:
        card = dataclasses.replace(self.card, architecture=self.config.architecture, ngf=self.config.ngf,
                                   norm=self.config.norm, input_nc=3, output_nc=3)
        card.training = {**self.card.training, "iterations": self.iteration, "batch_size": self.config.batch_size,
                         "world_size": self.world, "lr": self.config.lr, "lambda_l1": self.config.lambda_l1,
                         "ndf": self.config.ndf, "device": self.device.type}
        card.metrics = {**self.card.metrics, **({"validation": metrics} if metrics else {})}
        save_checkpoint(self.out_dir, self.netG, card)
        background = self.source.background()
        if background is not None:  # `run` shows it for frames without a person
            save_background(self.out_dir, background)
        state = {"iteration": self.iteration, "netD": self.netD.state_dict(), "optG": self.optG.state_dict(),
                 "optD": self.optD.state_dict(), "config": dataclasses.asdict(self.config)}
        write_atomically(self.out_dir / STATE_NAME, lambda f: torch.save(state, f), overwrite=True,
                         what="training state")

    def _load_state(self) -> None:
        state = read_train_state(self.out_dir)
        requested = {**{k: getattr(self.config, k) for k in RESUME_SETTINGS if k != "size"},
                     "size": self.card.native_size[0]}
        conflicts = resume_conflicts(saved_settings(self.out_dir, state=state), requested)
        if conflicts:
            raise VidtransError(f"{self.out_dir}: {describe_conflicts(conflicts)}")
        checkpoint = load_checkpoint(self.out_dir)
        try:
            # Optimizers move their state to their parameters' device.
            self.netG.load_state_dict(checkpoint.state_dict)
            self.netD.load_state_dict(state["netD"])
            self.optG.load_state_dict(state["optG"])
            self.optD.load_state_dict(state["optD"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise VidtransError(f"{self.out_dir / STATE_NAME}: does not fit the networks ({state_dict_mismatch(e)}); "
                                f"start over with {PARAMETERS['overwrite']}") from e
        self.iteration = state["iteration"]


def _remove_run(out_dir: Path) -> None:
    """Delete the files of a previous training run in `out_dir` (its checkpoint and sample grids)."""
    try:
        for name in (CARD_NAME, WEIGHTS_NAME, STATE_NAME, BACKGROUND_NAME):
            (out_dir / name).unlink(missing_ok=True)
        for grid in (out_dir / "samples").glob("iter_*.png"):
            grid.unlink()
    except OSError as e:
        raise VidtransError(f"{out_dir}: cannot remove the previous checkpoint ({e.strerror or e}); "
                            "check the folder is writable") from e


def _gan_loss(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.binary_cross_entropy_with_logits(prediction.float(), target)
