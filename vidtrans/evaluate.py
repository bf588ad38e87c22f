"""Held-out quality of a model: SSIM, PSNR and flicker against known ground truth.

On synthetic data the ground truth is exact: the dance generator gives the keypoints, the
renderer draws our target character in that pose, and the model sees the pose maps drawn in its
own card's style. Frames go through the same stages as `vidtrans run` (translation and optional
output smoothing), without the lossy encode, so the figures measure the model.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.metrics import flicker, psnr, relative_flicker, ssim
from vidtrans.options import is_int
from vidtrans.pipeline import TranslateStage, smoothing_stages
from vidtrans.runner import Batch, run_stages
from vidtrans.temporal import Smoother, smoothing_for

DEFAULT_EVAL_SEED = 20_000_000


def _check_frames(frames: int) -> None:
    if not is_int(frames) or frames < 2:
        raise VidtransError(f"evaluation needs at least 2 frames (flicker compares consecutive frames), got {frames!r}")


def synthetic_ground_truth(model, seed: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(pose maps, true images) for `frames` frames of the held-out dance `seed`, at the model's size."""
    from vidtrans.pose.render import PoseStyle, render_pose
    from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person

    _check_frames(frames)
    train_seeds = model.card.training.get("train_seeds")
    if train_seeds and train_seeds[0] <= seed < train_seeds[1]:
        raise VidtransError(f"seed {seed} was used in training (seeds {train_seeds[0]}..{train_seeds[1] - 1}); "
                            f"pick a held-out seed such as {DEFAULT_EVAL_SEED}")
    height, width = model.native_size
    style = PoseStyle.for_card(model.card)
    track = dance_keypoints(seed, frames, height, width, TARGET_LOOK)
    inputs = np.stack([render_pose(kp, height, width, style) for kp in track])
    truth = np.stack([render_person(kp, height, width, TARGET_LOOK) for kp in track])
    return inputs, truth


def folder_ground_truth(model, folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of a paired folder (AB images, or A/ and B/), in file-name order."""
    from vidtrans.train.data import PairedFolder

    source = PairedFolder(folder, size=model.native_size[0])
    pairs = source.all_pairs()
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def evaluate(model, inputs: np.ndarray, truth: np.ndarray, batch_size: int = 8, smoothing: str = "auto",
             smoothing_strength: float = 0.5) -> dict[str, Any]:
    """Translate `inputs` through the run pipeline's stages and score the result against `truth`."""
    _check_frames(len(inputs))
    if not is_int(batch_size) or batch_size < 1:
        raise VidtransError(f"batch size must be at least 1, got {batch_size!r}")
    spans = (range(i, min(i + batch_size, len(inputs))) for i in range(0, len(inputs), batch_size))
    batches = (Batch(frames=inputs[span.start:span.stop], pts=list(span), indices=list(span)) for span in spans)
    smoothing, smoothing_strength = smoothing_for(model, smoothing, smoothing_strength)
    stages: list[Any] = [TranslateStage.for_device(model)]
    if smoothing != "none":
        stages += smoothing_stages(Smoother(smoothing, smoothing_strength))
    output = np.concatenate([batch.output for batch in run_stages(batches, stages)])
    flicker_ratio = relative_flicker(flicker(output), flicker(truth))
    return {
        "ssim": round(float(ssim(output, truth)), 4),
        "psnr": round(float(psnr(output, truth)), 2),
        "flicker_ratio": None if flicker_ratio is None else round(flicker_ratio, 4),
        "frames": int(len(output)),
        "smoothing": smoothing,
    }
