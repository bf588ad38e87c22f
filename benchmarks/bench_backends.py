"""Frames/s of `Translator.translate` per backend: torch fp32, torch bf16, ONNX Runtime (fp32).

unet_256 (ngf 64, per-sample normalization) at 256x256, batch 1 and 8, the model alone (no
decoding or encoding). The ONNX graph is exported into a temporary cache first (not timed).
Needs the onnx extra.

    .venv/bin/python benchmarks/bench_backends.py [--seconds 4] [--ngf 64] [--batches 1,8]
"""

from __future__ import annotations

import argparse
import sys
import os
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vidtrans  # noqa: E402
from tests.media import random_generator  # noqa: E402
from bench_translate import measure
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.models.translator import _cpu_multiplies_bf16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()

    net = random_generator("unet_256", 3, 3, args.ngf, "batch", seed=0)
    folder = tempfile.mkdtemp()
    os.environ["XDG_CACHE_HOME"] = os.path.join(folder, "cache")
    save_checkpoint(os.path.join(folder, "model"), net, ModelCard(architecture="unet_256", ngf=args.ngf))
    batches = [int(b) for b in args.batches.split(",")]
    variants = {"torch fp32": ("torch", "fp32"), "torch bf16": ("torch", "bf16"), "onnxruntime fp32": ("onnxruntime", "fp32")}
    models = {name: vidtrans.load_model(os.path.join(folder, "model"), device="cpu", precision=precision, backend=backend)
              for name, (backend, precision) in variants.items()}
    print(f"unet_256 ngf {args.ngf}, 256x256, CPU ({torch.get_num_threads()} threads), bf16 in hardware: {_cpu_multiplies_bf16()}, "
          f"auto picks: {vidtrans.load_model(os.path.join(folder, 'model'), device='cpu').backend}")
    print("| backend | " + " | ".join(f"batch {b}" for b in batches) + " |")
    print("|---|" + "---|" * len(batches))
    for name, model in models.items():
        print(f"| {name} | " + " | ".join(f"{measure(model, b, args.seconds):.1f}" for b in batches) + " |")


if __name__ == "__main__":
    main()
