"""Training speed: the training step before issue 14 against today's, with the recipe off and on.

    baseline       the loop as it was (HEAD before issue 14, copied below): samples rendered in the
                   step, one PatchGAN, every loss read with .item() each step
    off, workers N today's Trainer, recipe off (pix2pix's objective), samples prepared by N worker
                   processes (0: drawn in the step), for each N of --workers
    on             today's defaults: 2-scale PatchGAN + feature matching, face discriminator, face L1,
                   default workers (none on a CPU, up to 8 on a GPU)

The default synthetic training at the shipped model's size: unet_256, ngf 16, PatchGAN ndf 32,
256x256. Rows are interleaved and repeated; the best of each is kept, as other work on the machine
only ever slows a run down. Today's rows read their losses once per measured stretch, as `fit`
does at its reports.

    .venv/bin/python benchmarks/bench_train.py [--batch-sizes 1 4] [--workers 0 1] [--steps 6] [--repeat 3]
                                               [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidtrans.models.networks import NLayerDiscriminator, build_generator, init_weights  # noqa: E402
from vidtrans.options import TrainOptions  # noqa: E402
from vidtrans.train.setup import prepare_training  # noqa: E402
from vidtrans.train.trainer import RECIPE_OFF, Trainer, _to_tensor  # noqa: E402

SHIPPED = {"architecture": "unet_256", "ngf": 16, "ndf": 32}


class Baseline:
    """`Trainer.step` as it was before issue 14 (git show 02f0fe2:vidtrans/train/trainer.py), its
    set-up reduced to what the step uses."""

    def __init__(self, source, config, device: torch.device):
        self.source, self.config, self.device = source, config, device
        self.amp = config.amp and device.type == "cuda"
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.netG = build_generator(config.architecture, 3, 3, config.ngf, config.norm).to(device, memory_format=self.memory_format)
        self.netD = NLayerDiscriminator(6, config.ndf, config.n_layers_d, config.norm).to(device, memory_format=self.memory_format)
        for net in (self.netG, self.netD):
            init_weights(net)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.G, self.D = self.netG, self.netD

    def step(self) -> dict[str, float]:
        pairs = [self.source.sample(self.rng) for _ in range(self.config.batch_size)]
        real_a = _to_tensor([a for a, _, _ in pairs], self.device, self.memory_format)
        real_b = _to_tensor([b for _, b, _ in pairs], self.device, self.memory_format)
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
        return {"g_gan": loss_gan.item(), "g_l1": loss_l1.item(), "d": loss_d.item()}


def _gan_loss(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.binary_cross_entropy_with_logits(prediction.float(), target)


def timed(trainer, steps: int) -> float:
    """Iterations/s over `steps` steps, the losses read once at the end (a baseline reads them every step)."""
    started = time.perf_counter()
    totals = None
    for _ in range(steps):
        losses = trainer.step()
        if isinstance(trainer, Trainer):
            values = torch.stack(list(losses.values()))
            totals = values if totals is None else totals + values
    if totals is not None:
        totals.tolist()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=6, help="measured steps per row and repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1], help="sample workers of the 'off' rows")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp())
    rows = {"baseline": RECIPE_OFF, **{f"off, workers {n}": {**RECIPE_OFF, "data_workers": n} for n in args.workers},
            "on": {}}
    results: dict[tuple[str, int], float] = {}
    for batch in args.batch_sizes:
        trainers = {}
        for name, settings in rows.items():
            options = TrainOptions(batch_size=batch, device=args.device, iterations=10**6, save_every=10**6,
                                   validate_every=10**6, **SHIPPED, **settings)
            source, config, card = prepare_training(work / f"{name}-{batch}", options, synthetic=True)
            trainer = Trainer(source, work / f"{name}-{batch}", config, card, device=args.device)
            if name == "baseline":
                trainer = Baseline(source, config, trainer.device)
            for _ in range(2):  # warm-up: workers start, allocators and kernels settle
                trainer.step()
            trainers[name] = trainer
        for _ in range(args.repeat):
            for name, trainer in trainers.items():
                results[name, batch] = max(results.get((name, batch), 0.0), timed(trainer, args.steps))
        for trainer in trainers.values():
            getattr(trainer, "close", lambda: None)()

    device = trainers["on"].device
    print(f"\ntraining step, {SHIPPED['architecture']} ngf {SHIPPED['ngf']} ndf {SHIPPED['ndf']} at 256x256, {device}, "
          f"{torch.get_num_threads()} threads; best of {args.repeat} x {args.steps} steps\n")
    print("| row | " + " | ".join(f"batch {b}: it/s | samples/s | vs baseline" for b in args.batch_sizes) + " |")
    print("|---|" + "---|---|---|" * len(args.batch_sizes))
    for name in rows:
        cells = []
        for batch in args.batch_sizes:
            speed = results[name, batch]
            cells.append(f"{speed:.2f} | {speed * batch:.2f} | {speed / results['baseline', batch]:.2f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
