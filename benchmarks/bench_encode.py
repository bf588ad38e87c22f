"""Segmented encoding (issue 15, item 3): one encoder against segments encoded at once.

    writer         VideoWriter alone, frames in memory (the encoder's own speed, colour conversion included)
    decode->encode translate_video with a zero-cost model, no smoothing: the pipeline's floor, as on a
                   GPU host where the model is not the limit

"1 encoder" is what every run did before segments: x264 with the threads it picks for itself.
"N segments" encodes N consecutive 2-second parts at once, each encoder with cores/N threads. The
frames are the example dancer's, scaled to the size, repeated to the length. Rows are interleaved
and repeated; the best of each is kept, as other work on the machine only ever slows a run down.

    .venv/bin/python benchmarks/bench_encode.py [--sizes 256 512] [--frames 300] [--segments 2 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_smooth import ZeroCostModel  # noqa: E402,F401 - gpu_check takes it from here too
from vidtrans import pipeline  # noqa: E402
from vidtrans.options import EncodeOptions  # noqa: E402
from vidtrans.video import VideoReader, VideoWriter  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dancer.mp4"


def frames_of_example(size: int, count: int) -> list[np.ndarray]:
    with VideoReader(EXAMPLE) as reader:
        images = [cv2.resize(frame.image, (size, size), interpolation=cv2.INTER_AREA) for frame in reader]
    return [images[i % len(images)] for i in range(count)]


def write_all(dst: Path, frames: list[np.ndarray], segments: int) -> int:
    size = frames[0].shape[0]
    with VideoWriter(dst, size, size, Fraction(1, 25), 25, EncodeOptions(segments=segments), overwrite=True) as w:
        for i, image in enumerate(frames):
            w.write(image, i)
    return len(frames)


def decode_encode(src: Path, dst: Path, segments: int, model) -> int:
    return pipeline.translate_video(src, dst, model, smoothing="none", overwrite=True, compile="off",
                                    encode=EncodeOptions(segments=segments)).frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--segments", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp())
    model = ZeroCostModel()
    counts = [1, *args.segments]
    label = {n: "1 encoder" if n == 1 else f"{n} segments" for n in counts}
    best: dict[tuple[int, str, int], float] = {}
    for size in args.sizes:
        frames = frames_of_example(size, args.frames)
        src = work / f"in{size}.mp4"
        write_all(src, frames, 1)
        for _ in range(args.repeat):
            for n in counts:
                for kind, run in (("writer", lambda: write_all(work / "out.mp4", frames, n)),
                                  ("decode->encode", lambda: decode_encode(src, work / "out.mp4", n, model))):
                    started = time.perf_counter()
                    done = run()
                    fps = done / (time.perf_counter() - started)
                    best[size, kind, n] = max(best.get((size, kind, n), 0.0), fps)
    print(f"x264 medium crf 18, {args.frames} frames, best of {args.repeat}, CPU ({os.cpu_count()} cores); frames/s")
    print(f"{'size':<6}{'row':<16}" + "".join(f"{label[n]:>14}" for n in counts) + f"{'best / 1':>10}")
    for size in args.sizes:
        for kind in ("writer", "decode->encode"):
            figures = [best[size, kind, n] for n in counts]
            print(f"{size:<6}{kind:<16}" + "".join(f"{fps:>14.1f}" for fps in figures)
                  + f"{max(figures[1:]) / figures[0]:>9.2f}x")


if __name__ == "__main__":
    main()
