"""Frames/s of `Translator.translate` for unet_256 (ngf 64) at 256x256: batch 1 / 8 / 32.

Rows: the naive baseline (batch 1, contiguous memory, eager), our default (channels_last on CPU),
and torch.compile of the whole device-side step. Ratios are against the naive baseline measured in
the same run.

    .venv/bin/python benchmarks/bench_translate.py [--device cpu|cuda] [--seconds 8] [--ngf 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vidtrans  # noqa: E402
from tests.media import random_generator  # noqa: E402
from vidtrans.models.checkpoint import ModelCard, save_checkpoint


def measure(model, batch: int, seconds: float, size: int = 256) -> float:
    frames = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    model.translate(frames)  # warm-up (and compilation)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or done == 0:
        model.translate(frames)
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    net = random_generator("unet_256", 3, 3, args.ngf, "batch", seed=0)
    folder = tempfile.mkdtemp()
    save_checkpoint(folder, net, ModelCard(architecture="unet_256", ngf=args.ngf))
    batches = [int(b) for b in args.batches.split(",")]

    def load():
        return vidtrans.load_model(folder, device=args.device, precision=args.precision)

    naive = load()
    naive.net = naive.net.to(memory_format=torch.contiguous_format)
    naive.memory_format = torch.contiguous_format
    default = load()
    compiled = load()
    compiled.compile()

    device = torch.cuda.get_device_name() if default.device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"unet_256 ngf {args.ngf}, 256x256, {device}, precision {default.precision}, torch {torch.__version__}")
    print(f"{'variant':<28}" + "".join(f"{f'batch {b}':>12}" for b in batches) + f"{'vs naive b1':>14}")
    baseline = None
    for label, model in (("naive (contiguous, eager)", naive), ("channels_last (default)", default),
                         ("torch.compile", compiled)):
        rates = [measure(model, b, args.seconds) for b in batches]
        baseline = baseline or rates[0]
        print(f"{label:<28}" + "".join(f"{r:>10.1f}/s" for r in rates) + f"{max(rates) / baseline:>13.2f}x", flush=True)


if __name__ == "__main__":
    main()
