"""How far normalization moves a target's own clip, by clip length: what `run` does to a video of
the shipped model's target that it should leave where it is.

The target dances held-out procedural dances (seeds 20000000 on), rendered as 512x512 videos and
read by MediaPipe as `run` reads a clip (`vidtrans.train.detected`: detected once, then cached in
the user cache; about a minute and a half the first time). Each dance is cut into windows of each
length; every window is normalized to the card's target statistics with statistics measured on the
window itself, as `run` measures a clip, and compared with mapping it into the model's frame only
(`fit_to_frame`, the identity here). Printed per length: |scale - 1| (body height, median over the
window's frames: mean and worst over windows), the nose's shift and every keypoint's shift in
pixels at the model's 256 px (mean; the nose's 90th percentile), and the share of windows kept as
framed (`normalize.framed_alike`). The baseline, measured on the same windows: the same
normalization with every window normalized (what `run` did before the twenty-fifth session); the
ratio column is the mean keypoint shift over the baseline's.

    .venv/bin/python benchmarks/normalize_accuracy.py [--model pose2person] [--dances 24] [--lengths 64 120 240]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vidtrans.evaluate import DEFAULT_EVAL_SEED  # noqa: E402
from vidtrans.models.checkpoint import check_folder, resolve  # noqa: E402
from vidtrans.pose.keypoints import KEYPOINT_INDEX  # noqa: E402
from vidtrans.pose.normalize import PoseNormalizer, PoseStats, estimate_pose_stats, fit_to_frame  # noqa: E402
from vidtrans.train.detected import VIDEO_SIZE, DetectedDances  # noqa: E402
from vidtrans.train.synth import TARGET_LOOK  # noqa: E402

NOSE, NECK = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["neck"]
ANKLES = [KEYPOINT_INDEX["r_ankle"], KEYPOINT_INDEX["l_ankle"]]


def window_errors(track: np.ndarray, target: PoseStats, model_size: int,
                  always: bool = False) -> tuple[float, float, float, float]:
    """(scale - 1, mean nose shift px, mean keypoint shift px, 1 if kept as framed) of normalizing
    `track` to `target`; `always`: as if no clip were framed alike (the baseline)."""
    normalizer = PoseNormalizer(estimate_pose_stats(track, VIDEO_SIZE, VIDEO_SIZE), target)
    kept = normalizer.alike and not always
    normalizer.alike = kept
    normalized = normalizer(track)
    fitted = fit_to_frame((VIDEO_SIZE, VIDEO_SIZE), (model_size, model_size))(track)

    def heights(poses):  # neck to the lower ankle: the body normalization scales
        return poses[:, ANKLES, 1].max(axis=1) - poses[:, NECK, 1]

    shift = np.linalg.norm(normalized[..., :2] - fitted[..., :2], axis=-1)
    return (float(np.median(heights(normalized) / heights(fitted)) - 1), float(shift[:, NOSE].mean()),
            float(shift[track[..., 2] > 0].mean()), float(kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="pose2person")
    parser.add_argument("--dances", type=int, default=24)
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 120, 240])
    args = parser.parse_args()
    card = check_folder(resolve(args.model))
    target, model_size = PoseStats.from_dict(card.target_pose_stats), card.native_size[0]
    longest = max(args.lengths)
    dances = DetectedDances(VIDEO_SIZE, TARGET_LOOK, longest)
    seeds = range(DEFAULT_EVAL_SEED, DEFAULT_EVAL_SEED + args.dances)
    dances.prepare(seeds, lambda done, total, what: print(f"\rdetecting {done}/{total}", end="", file=sys.stderr))
    print(file=sys.stderr)
    print(f"{'frames':>6} {'windows':>7} {'normalization':>14} {'|scale-1| mean':>14} {'worst':>7} {'nose px':>7} "
          f"{'nose p90':>8} {'all px':>6} {'kept':>5} {'ratio':>6}")
    for length in sorted(args.lengths):
        # Windows overlap by half (whole dances for the longest), so every length sees the same frames.
        step = longest if length == longest else max(1, length // 2)
        windows = [dances.track(seed)[start:start + length]
                   for seed in seeds for start in range(0, longest - length + 1, step)]
        rows = {name: np.array([window_errors(window, target, model_size, always) for window in windows])
                for name, always in (("always (base)", True), ("framed alike", False))}
        base = rows["always (base)"][:, 2].mean()
        for name, errors in rows.items():
            scale = np.abs(errors[:, 0])
            print(f"{length:>6} {len(errors):>7} {name:>14} {scale.mean() * 100:>13.2f}% {scale.max() * 100:>6.2f}% "
                  f"{errors[:, 1].mean():>7.2f} {np.percentile(errors[:, 1], 90):>8.2f} {errors[:, 2].mean():>6.2f} "
                  f"{errors[:, 3].mean():>5.0%} {errors[:, 2].mean() / base:>5.2f}x")


if __name__ == "__main__":
    main()
