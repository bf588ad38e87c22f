"""`--smooth flow` against `--smooth none` with a zero-cost model: the pipeline's own ceiling, as on
a GPU host where the model is not the limit.

    none           translate_video, no smoothing
    flow, in order everything, flow included, per frame in the smoothing thread (the arrangement
                   before issue 15; the blend's code is today's, slightly faster than it was)
    flow, ahead    flow computed ahead on a pool, only the warp of the previous output and the blend in order

The model returns its input (no cost, real motion for the flow). Rows are interleaved and repeated;
the best of each is kept, as other work on the machine only ever slows a run down. Columns:
frames/s, its ratio to none's, CPU time of all threads per frame (on a small CPU the sum is the
limit), and the wall time the in-order smoothing stage is busy per frame (the limit on a big one).

    .venv/bin/python benchmarks/bench_smooth.py [--size 256] [--frames 300] [--batch-size 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media import make_clip  # noqa: E402
from vidtrans import pipeline  # noqa: E402


class ZeroCostModel:
    """Stands in for a translator that costs nothing: the output is the input."""

    name, device, precision, input_kind = "zero-cost", torch.device("cpu"), "fp32", "rgb"

    def translate(self, frames: np.ndarray) -> np.ndarray:
        return frames


def in_order_smoothing(smoother):
    """The smoothing stages as they were: everything, flow included, in one in-order stage."""
    return [pipeline.SmoothStage(smoother)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp())
    clip = make_clip(work / "in.mp4", frames=args.frames, size=(args.size, args.size), fps=30, audio=False)
    model = ZeroCostModel()

    def none():
        return pipeline.translate_video(clip.path, work / "out.mp4", model, smoothing="none", overwrite=True,
                                        batch_size=args.batch_size, compile="off")

    def flow_ahead():
        return pipeline.translate_video(clip.path, work / "out.mp4", model, smoothing="flow", overwrite=True,
                                        batch_size=args.batch_size, compile="off")

    def flow_in_order():
        with mock.patch.object(pipeline, "smoothing_stages", in_order_smoothing):
            return flow_ahead()

    rows = {"none": none, "flow, in order": flow_in_order, "flow, ahead": flow_ahead}
    best = {label: 0.0 for label in rows}
    cpu_ms = {label: float("inf") for label in rows}  # CPU time of all threads per frame
    in_order_ms = {label: float("inf") for label in rows}  # the in-order smoothing stage's busy time per frame
    for _ in range(args.repeat):
        for label, run in rows.items():
            busy = [0.0]
            started, cpu_started = time.perf_counter(), time.process_time()
            with mock.patch.object(pipeline.SmoothStage, "process", timed(pipeline.SmoothStage.process, busy)):
                frames = run().frames
            best[label] = max(best[label], frames / (time.perf_counter() - started))
            cpu_ms[label] = min(cpu_ms[label], (time.process_time() - cpu_started) * 1000 / frames)
            in_order_ms[label] = min(in_order_ms[label], busy[0] * 1000 / frames)
    print(f"zero-cost model, {args.size}x{args.size}, {args.frames} frames, batch {args.batch_size}, "
          f"best of {args.repeat}, CPU ({os.cpu_count()} cores)")
    print(f"{'':<16}{'fps':>9}  {'x none':>6}  {'CPU ms/frame':>12}  {'in-order ms/frame':>17}")
    for label, fps in best.items():
        print(f"{label:<16}{fps:>9.1f}  {fps / best['none']:>6.2f}  {cpu_ms[label]:>12.2f}"
              f"  {in_order_ms[label]:>17.2f}")


def timed(process, busy: list[float]):
    """`process` adding its wall time to busy[0]: the in-order stage's share of the critical path."""
    def timed_process(self, batch):
        started = time.perf_counter()
        done = list(process(self, batch))
        busy[0] += time.perf_counter() - started
        yield from done
    return timed_process


if __name__ == "__main__":
    main()
