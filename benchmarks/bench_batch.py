"""`vidtrans batch` on a folder of short clips against `vidtrans run` on one long clip of the same frames.

Short clips pay a start-up and a drain per file (opening, the first batch's decode, the last
batch's encode) during which the model waits; running several clips at once hides that. The goal is
a folder of 16 short clips at >= 0.8x the frames/s of one long clip.

    (a) one long clip:  translate_video on CLIPS x FRAMES frames
    (b) batch, 1 worker: translate_folder on CLIPS clips of FRAMES frames, one clip at a time
    (c) batch:           the same with --workers (default 2), --repeat times

All in one process, same model (unet_256 with random pix2pix-initialised weights, saved as a
checkpoint), same synthetic content; prints frames/s and the ratios (c)/(a) and (b)/(a).
(Until 2026-12-02 a row (d) had the device's workers take turns with the model; on a CPU that
measured 1.04-1.18x slower, and on a GPU the translator now bounds its batches in flight itself.)

    .venv/bin/python benchmarks/bench_batch.py [--device cpu|cuda] [--clips 16] [--frames 30] [--size 256] [--ngf 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vidtrans  # noqa: E402
from tests.media import make_clip, random_generator  # noqa: E402
from vidtrans.batch import translate_folder  # noqa: E402
from vidtrans.models.checkpoint import ModelCard, save_checkpoint  # noqa: E402
from vidtrans.pipeline import translate_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=30, help="frames per short clip")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs of (c)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        size = (args.size, args.size)
        total = args.clips * args.frames
        (work / "short").mkdir()
        long_clip = make_clip(work / "long.mp4", frames=total, size=size, fps=30, audio=True)
        for i in range(args.clips):
            # Consecutive pieces of the long clip's content, so both sides translate the same pictures.
            make_clip(work / "short" / f"clip{i:02d}.mp4", frames=args.frames, size=size, fps=30, audio=True,
                      frame_fn=lambda k, w, h, i=i: long_clip.images[i * args.frames + k])
        net = random_generator("unet_256", 3, 3, args.ngf, "batch", seed=0)
        save_checkpoint(work / "model", net, ModelCard(architecture="unet_256", ngf=args.ngf))

        model = vidtrans.load_model(work / "model", device=args.device)
        model.translate(long_clip.images[0][None].repeat(args.batch_size, 0))  # warm-up outside the timings
        started = time.perf_counter()
        frames = translate_video(long_clip.path, work / "long.out.mp4", model, batch_size=args.batch_size,
                                 compile="off").frames
        rows = {"(a) one long clip": (frames, time.perf_counter() - started)}
        runs = [("(b) batch, 1 worker", 1)]
        runs += [(f"(c) batch, {args.workers} workers #{i + 1}", args.workers) for i in range(args.repeat)]
        for label, workers in runs:
            report = translate_folder(work / "short", work / f"out{len(rows)}", work / "model",
                                      devices=[args.device], workers=workers, batch_size=args.batch_size,
                                      compile="off")
            assert not report.failed, report.failed
            rows[label] = (report.totals()["frames"], report.seconds)

        where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
        print(f"unet_256 ngf {args.ngf}, {args.size}x{args.size}, {args.clips} clips x {args.frames} frames "
              f"vs 1 clip x {total} frames, batch {args.batch_size}, {where}")
        print(f"{'':<24}{'frames':>8}{'seconds':>10}{'fps':>9}")
        fps = {}
        for label, (count, seconds) in rows.items():
            fps[label] = count / seconds
            print(f"{label:<24}{count:>8}{seconds:>10.2f}{fps[label]:>9.2f}")
        long_fps = fps["(a) one long clip"]

        def mean_fps(prefix: str) -> float:  # all frames over all seconds of that row's runs
            picked = [rows[label] for label in rows if label.startswith(prefix)]
            return sum(f for f, _ in picked) / sum(s for _, s in picked)

        print(f"batch ({args.workers} workers) / long clip = {mean_fps('(c)') / long_fps:.2f}x  (goal >= 0.80x)")
        print(f"batch (1 worker) / long clip  = {fps['(b) batch, 1 worker'] / long_fps:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
