"""Pictures made of several frames, shared by `run --side-by-side` and live's side view."""

from __future__ import annotations

import cv2
import numpy as np


def side_by_side(parts: list[np.ndarray]) -> np.ndarray:
    """Panels scaled to the height of the last one (the output) and joined left to right."""
    height = parts[-1].shape[0]
    scaled = [p if p.shape[0] == height else
              cv2.resize(p, (max(2, round(p.shape[1] * height / p.shape[0])), height), interpolation=cv2.INTER_AREA)
              for p in parts]
    return np.concatenate(scaled, axis=1)
