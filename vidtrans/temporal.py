"""Temporal smoothing of translated frames (what it does shows in `vidtrans.metrics.flicker`).

GAN outputs flicker because every frame is generated on its own. `ema` blends each output with the
previous smoothed output (cheap, but smears motion). `flow` first moves the previous output along
the optical flow of the *input* frames (OpenCV's DIS flow), then blends only where that warp is
trustworthy (the warped previous input matches the current input), so moving and newly revealed
content stays sharp. Both are causal and stateful: frames must arrive in order.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidtrans.errors import VidtransError

SMOOTHING = ("none", "ema", "flow")
# Flow is estimated at most this many pixels on the longer side: DIS is robust at low resolution
# and its cost grows with the pixel count.
_FLOW_MAX_SIDE = 320


def smoothing_for(model, method: str, strength: float) -> tuple[str, float]:
    """Resolve "auto": the smoothing the model card recommends (its author measured it), else none."""
    if method != "auto":
        return method, strength
    recommended = getattr(getattr(model, "card", None), "smoothing", None) or {}
    return recommended.get("method", "none"), float(recommended.get("strength", strength))


class Smoother:
    """Causal output smoothing. `strength` in [0, 1): 0 leaves frames untouched."""

    def __init__(self, method: str = "flow", strength: float = 0.5):
        if method not in SMOOTHING:
            raise VidtransError(f"unknown smoothing {method!r}; use one of {', '.join(SMOOTHING)}")
        if not 0.0 <= strength < 1.0:
            raise VidtransError(f"smoothing strength must be in [0, 1), got {strength}")
        self.method = method
        self.strength = strength
        self._previous_output: np.ndarray | None = None
        self._previous_gray: np.ndarray | None = None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST) if method == "flow" else None

    def __call__(self, output: np.ndarray, source: np.ndarray) -> np.ndarray:
        """Smooth one translated frame; `source` is the frame it was made from (any size: it is
        only used for optical flow, at the output's aspect ratio)."""
        if self.method == "none" or self.strength == 0.0:
            return output
        gray = self._small_gray(source, output.shape) if self.method == "flow" else None
        previous = self._previous_output
        if previous is None or previous.shape != output.shape:
            result = output
        elif self.method == "ema":
            result = cv2.addWeighted(output, 1.0 - self.strength, previous, self.strength, 0.0)
        else:
            result = self._flow_blend(output, previous, gray)
        self._previous_output = result
        self._previous_gray = gray
        return result

    def _small_gray(self, frame: np.ndarray, output_shape: tuple[int, ...]) -> np.ndarray:
        """Grey `frame` at the size flow is computed at: the output's, capped at _FLOW_MAX_SIDE."""
        height, width = output_shape[:2]
        scale = min(1.0, _FLOW_MAX_SIDE / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if gray.shape[::-1] != size:
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        return gray

    def _flow_blend(self, output: np.ndarray, previous: np.ndarray, gray: np.ndarray) -> np.ndarray:
        if self._previous_gray is None or self._previous_gray.shape != gray.shape:
            return output
        # Backward flow: for each pixel of the current frame, where it was in the previous one.
        flow = self._dis.calc(gray, self._previous_gray, None)
        small_h, small_w = gray.shape
        grid_x, grid_y = np.meshgrid(np.arange(small_w, dtype=np.float32), np.arange(small_h, dtype=np.float32))
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        warped_gray = cv2.remap(self._previous_gray, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # Trust the warp where it explains the input: a photometric error of ~0 gives full weight,
        # an error of 24 grey levels or more (occlusion, new content, flow failure) gives none.
        error = cv2.GaussianBlur(np.abs(warped_gray.astype(np.float32) - gray.astype(np.float32)), (5, 5), 0)
        trust = np.clip(1.0 - error / 24.0, 0.0, 1.0)
        height, width = output.shape[:2]
        scale_x, scale_y = width / small_w, height / small_h
        full_map_x = cv2.resize(map_x, (width, height), interpolation=cv2.INTER_LINEAR) * scale_x + (scale_x - 1) / 2
        full_map_y = cv2.resize(map_y, (width, height), interpolation=cv2.INTER_LINEAR) * scale_y + (scale_y - 1) / 2
        warped = cv2.remap(previous, full_map_x, full_map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weight = cv2.resize(trust, (width, height), interpolation=cv2.INTER_LINEAR)[..., None] * self.strength
        blended = output.astype(np.float32) * (1.0 - weight) + warped.astype(np.float32) * weight
        return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
