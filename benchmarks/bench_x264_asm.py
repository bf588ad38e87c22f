"""What libx264's AVX2 code costs against its AVX-512 code, on a CPU that has AVX-512.

On such CPUs the writer passes `x264-params asm=AVX2` (vidtrans/video/writer.py): with mb-tree and
B-frames, x264's AVX-512 code reads memory it never wrote, so the same frames could encode to
another file. This measures the price: the writer's default settings (CRF 18, preset medium) on
noisy frames (the hard case for the encoder), both ways, rows alternating --repeat times; prints
frames/s (best of the repeats, as other work only slows a run) and AVX2 / default.

    .venv/bin/python benchmarks/bench_x264_asm.py [--size 512] [--frames 120] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import time

import av
import numpy as np


def encode_seconds(frames: list[np.ndarray], count: int, options: dict[str, str]) -> float:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", options
        start = time.perf_counter()
        for i in range(count):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")))
        container.mux(stream.encode())
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = [np.clip(rng.normal(128, 40, (args.size, args.size, 3)), 0, 255).astype(np.uint8) for _ in range(8)]
    rows = {"default (AVX-512 where the CPU has it)": {}, "asm=AVX2 (what the writer passes there)":
            {"x264-params": "asm=AVX2"}}
    best = dict.fromkeys(rows, 0.0)
    for _ in range(args.repeat):
        for name, extra in rows.items():
            fps = args.frames / encode_seconds(frames, args.frames, {"crf": "18", "preset": "medium", **extra})
            best[name] = max(best[name], fps)
    for name, fps in best.items():
        print(f"{name:42s} {fps:7.1f} fps")
    default, avx2 = best.values()
    print(f"AVX2 / default: {avx2 / default:.2f}x ({args.size}x{args.size}, {args.frames} frames)")


if __name__ == "__main__":
    main()
