"""What `--smooth flow` does to the picture: noisy outputs of the synthetic character dancing (a
stand-in for a flickering generator: Gaussian noise, sigma 12, fresh on every frame), smoothed, then
the mean absolute error (grey levels) against the clean frames, where the picture moves (a pixel
changed by more than 20 levels since the last frame) and where it does not. Smoothing should cut the
second a lot and must not raise the first (a smear).

    .venv/bin/python benchmarks/smooth_quality.py [--size 256] [--frames 90] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media import dancer_clip, decode_all  # noqa: E402
from vidtrans.temporal import Smoother  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = dancer_clip(Path(folder) / "dance.mp4", frames=args.frames, size=(args.size, args.size), seed=args.seed)
        truth, _ = decode_all(clip.path)
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in truth]
    moving = [np.abs(truth[i].astype(int) - truth[i - 1].astype(int)).max(-1) > 20 for i in range(1, len(truth))]

    def errors(outputs):
        diffs = [np.abs(o.astype(float) - t.astype(float)).mean(-1) for o, t in zip(outputs[1:], truth[1:])]
        return (np.mean([d[m].mean() for d, m in zip(diffs, moving)]),
                np.mean([d[~m].mean() for d, m in zip(diffs, moving)]))

    print(f"{args.size}x{args.size}, {args.frames} frames of dance seed {args.seed}")
    print(f"{'':<20}{'moving':>8}{'still':>8}")
    print(f"{'no smoothing':<20}" + "".join(f"{e:>8.2f}" for e in errors(noisy)))
    for strength in (0.5, 0.7):
        smoother = Smoother("flow", strength)
        smoothed = [smoother(n.copy(), t) for n, t in zip(noisy, truth)]
        print(f"{f'flow, strength {strength}':<20}" + "".join(f"{e:>8.2f}" for e in errors(smoothed)))


if __name__ == "__main__":
    main()
