"""Pictures made of several frames, shared by `run --side-by-side` and live's side view, and the
target's empty scene shown where nobody is (`resized`)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# How much a shorter panel is enlarged at most: beyond that enlarging shows blur, not detail, and
# makes frames wider than encoders take (a 1024x16 input beside a 256-pixel output, 16x: 16384
# pixels). Such a panel is centred on black instead.
MAX_ENLARGEMENT = 2


def side_by_side(parts: list[np.ndarray]) -> np.ndarray:
    """Panels joined left to right at the height of the last one (the output): a taller panel is
    scaled down to it, a shorter one up, at most MAX_ENLARGEMENT times, and centred."""
    height = parts[-1].shape[0]
    return np.concatenate([_panel(part, height) for part in parts], axis=1)


def side_by_side_size(sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The (height, width) of `side_by_side` of panels of these (height, width)s, without drawing it."""
    height = sizes[-1][0]
    return height, sum(_scaled_size(h, w, height)[1] for h, w in sizes)


def _scaled_size(h: int, w: int, height: int) -> tuple[int, int]:
    """A panel's (height, width) once scaled for a picture `height` high."""
    scaled_h = min(height, h * MAX_ENLARGEMENT)
    return (h, w) if scaled_h == h else (scaled_h, max(2, round(w * scaled_h / h)))


def _panel(part: np.ndarray, height: int) -> np.ndarray:
    h, w = part.shape[:2]
    scaled_h, scaled_w = _scaled_size(h, w, height)
    if (scaled_h, scaled_w) != (h, w):
        part = cv2.resize(part, (scaled_w, scaled_h), interpolation=cv2.INTER_AREA)
    if scaled_h == height:
        return part
    top = (height - scaled_h) // 2
    return cv2.copyMakeBorder(part, top, height - scaled_h - top, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` at height x width (itself when it already is)."""
    return image if image.shape[:2] == (height, width) else cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
