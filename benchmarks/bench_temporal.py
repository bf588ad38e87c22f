"""What recurrence costs: a temporal model (it also sees its previous output, so the frames of one
clip go through it one at a time) against the same network seeing each frame alone.

    (a) model alone: `translate` on preloaded frames, batches of --batch-size (the temporal model
        takes them one at a time, in order, within each call); the frame-by-frame model at batch 1
        too, to tell the cost of losing the batch from the cost of three more input channels
    (b) `translate_video` on a generated clip (decode, translate, encode), --batch-size

Both networks are unet_256 with pix2pix's initial weights (random), ngf --ngf; the temporal one has
6 input channels (the frame, then its previous output). Rows alternate --repeat times, as the
machine drifts; each figure is frames over seconds of all its runs. Prints frames/s and temporal /
frame-by-frame.

    .venv/bin/python benchmarks/bench_temporal.py [--device cpu|cuda] [--frames 64] [--ngf 16] [--precision auto]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vidtrans  # noqa: E402
from tests.media import make_clip, random_generator  # noqa: E402
from vidtrans.models.checkpoint import ModelCard, save_checkpoint  # noqa: E402
from vidtrans.pipeline import translate_video  # noqa: E402

TEMPORAL = {"previous": "output", "first": "black"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--frames", type=int, default=64, help="frames per measurement (and of the clip)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_temporal_"))
    try:
        clip = make_clip(work / "clip.mp4", frames=args.frames, size=(args.size, args.size), fps=30, audio=False)
        frames = np.stack(clip.images)
        models = {}
        for name, input_nc, temporal in (("frame by frame", 3, None), ("temporal", 6, TEMPORAL)):
            net = random_generator("unet_256", input_nc, 3, args.ngf, "batch", seed=0)
            card = ModelCard(architecture="unet_256", ngf=args.ngf, input_nc=input_nc,
                             native_size=(args.size, args.size), temporal=temporal)
            save_checkpoint(work / name.replace(" ", "_"), net, card)
            models[name] = vidtrans.load_model(work / name.replace(" ", "_"), device=args.device,
                                               precision=args.precision, backend=args.backend)
            models[name].translate(frames[:args.batch_size])  # warm-up outside the timings

        def model_alone(model, batch_size: int) -> None:
            for start in range(0, len(frames), batch_size):
                model.translate(frames[start:start + batch_size])  # a temporal model: a clip per call

        def pipeline(model, batch_size: int) -> None:
            translate_video(clip.path, work / "out.mp4", model, batch_size=batch_size, compile="off",
                            smoothing="none", overwrite=True)

        rows = {
            f"(a) model alone, batch {args.batch_size}": (model_alone, args.batch_size),
            "(a) model alone, batch 1": (model_alone, 1),
            f"(b) translate_video, batch {args.batch_size}": (pipeline, args.batch_size),
        }
        seconds: dict[tuple[str, str], float] = {}
        for _ in range(args.repeat):
            for row, (work_fn, batch_size) in rows.items():
                for name, model in models.items():
                    started = time.perf_counter()
                    work_fn(model, batch_size)
                    seconds[row, name] = seconds.get((row, name), 0.0) + time.perf_counter() - started

        model = models["temporal"]
        where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
        print(f"unet_256 ngf {args.ngf}, {args.size}x{args.size}, {args.frames} frames x {args.repeat}, "
              f"{model.precision}, {model.backend}, {where}. Frames/s:")
        print(f"{'':<34}{'frame by frame':>15}{'temporal':>10}{'ratio':>8}")
        for row in rows:
            fps = {name: args.frames * args.repeat / seconds[row, name] for name in models}
            print(f"{row:<34}{fps['frame by frame']:>15.2f}{fps['temporal']:>10.2f}"
                  f"{fps['temporal'] / fps['frame by frame']:>7.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
