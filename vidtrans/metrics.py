"""Image-quality and temporal-stability metrics for uint8 RGB frames: SSIM, PSNR and flicker.

Used by `run`'s summary (flicker of input and output), `vidtrans eval` and training validation.
Frames are uint8 arrays (H, W, 3) or batches (N, H, W, 3); both arguments of a comparison must
have the same shape. Per-frame scores are averaged over the frames.

Flicker is the mean absolute change between consecutive frames, in uint8 levels; it is always
compared with a reference's (the input video's, or the ground truth's) by `relative_flicker`, which
is undefined (None) when the reference does not change at all (a still, or a single frame).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vidtrans.errors import VidtransError

# PSNR of identical frames is infinite; capping it keeps means over frames finite and comparable.
PSNR_CAP_DB = 100.0

# SSIM constants of Wang et al. 2004.
_WINDOW = 11
_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _batch(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise VidtransError(f"{name}: expected uint8 RGB frames (H, W, 3) or (N, H, W, 3), got "
                            f"{arr.dtype} {arr.shape} (convert to uint8 RGB first)")
    if 0 in arr.shape[-3:-1]:  # else a mean over no pixels: NaN, which PSNR's cap and flicker's sum hid
        raise VidtransError(f"{name}: frames of {arr.shape[-2]}x{arr.shape[-3]} hold no pixels; pass frames of at "
                            "least 1x1")
    return arr[None] if arr.ndim == 3 else arr


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _batch(a, "first clip"), _batch(b, "second clip")
    if x.shape != y.shape:
        raise VidtransError(f"cannot compare frames of shape {x.shape} with {y.shape}: "
                            "pass clips with the same frame count and size")
    if len(x) == 0:
        raise VidtransError("cannot compare empty clips: pass at least one frame")
    return x, y


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the per-frame PSNR in dB (data range 255), each capped at 100 dB."""
    x, y = _pair(a, b)
    values = []
    for fx, fy in zip(x, y):
        mse = float(np.mean((fx.astype(np.float64) - fy) ** 2))
        db = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
        values.append(min(PSNR_CAP_DB, db))
    return float(np.mean(values))


_KERNEL = cv2.getGaussianKernel(_WINDOW, _SIGMA, cv2.CV_64F)
_HALF = _WINDOW // 2


def _blur(channels: np.ndarray) -> np.ndarray:
    # Separable Gaussian; the border rows it invents are cropped, leaving the 'valid' region.
    out = cv2.sepFilter2D(channels, cv2.CV_64F, _KERNEL, _KERNEL, borderType=cv2.BORDER_REFLECT)
    return out[_HALF:-_HALF, _HALF:-_HALF]


def ssim_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each frame pair, shape (N,).

    Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 255,
    computed on each RGB channel separately and averaged. Like the reference MATLAB code (and
    scikit-image), the SSIM map covers only positions where the window fits inside the frame.
    """
    x, y = _pair(a, b)
    if min(x.shape[1:3]) < _WINDOW:
        raise VidtransError(f"frames of {x.shape[2]}x{x.shape[1]} are too small for SSIM: "
                            f"use frames of at least {_WINDOW}x{_WINDOW}")
    scores = np.empty(len(x))
    for i, (fx, fy) in enumerate(zip(x, y)):
        # float64: E[x^2] - E[x]^2 of values up to 255 loses too much in float32.
        p, q = fx.astype(np.float64), fy.astype(np.float64)
        mu_p, mu_q = _blur(p), _blur(q)
        var_p = _blur(p * p) - mu_p**2
        var_q = _blur(q * q) - mu_q**2
        cov = _blur(p * q) - mu_p * mu_q
        ssim_map = ((2 * mu_p * mu_q + _C1) * (2 * cov + _C2)) / (
            (mu_p**2 + mu_q**2 + _C1) * (var_p + var_q + _C2))
        scores[i] = ssim_map.mean()
    return scores


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over frames (see `ssim_per_frame`); 1.0 for identical frames."""
    return float(np.mean(ssim_per_frame(a, b)))


def frame_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two frames of the same shape, in uint8 levels."""
    # OpenCV works on uint8 directly: 3-5x faster than widening to int16 in NumPy, which matters
    # because `run` takes the flicker figure in the encoder's thread for every frame.
    return float(np.mean(cv2.mean(cv2.absdiff(a, b))[:a.shape[-1] if a.ndim == 3 else 1]))


class FlickerMeter:
    """`flicker` of frames streaming past, one at a time; frames of another size than the one before
    start over (a size change is a cut, not motion)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0
        self._previous: np.ndarray | None = None

    def add(self, frame: np.ndarray) -> None:
        if self._previous is not None and self._previous.shape == frame.shape:
            self.total += frame_change(frame, self._previous)
            self.count += 1
        self._previous = frame

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


# The fewest frames a clip is scored on: flicker compares consecutive frames (`vidtrans eval`, and
# the held-out tail training keeps for it).
MIN_SCORED_FRAMES = 2


def flicker(frames: np.ndarray) -> float:
    """Mean absolute change between consecutive frames, in uint8 levels (0 for < 2 frames)."""
    meter = FlickerMeter()
    for frame in _batch(frames, "clip"):
        meter.add(frame)
    return meter.value


def relative_flicker(flicker_of_output: float, flicker_of_reference: float) -> float | None:
    """Output flicker relative to the reference's (> 1: the output changes more); None when the
    reference does not change at all, as there is nothing to compare with."""
    return flicker_of_output / flicker_of_reference if flicker_of_reference > 0 else None
