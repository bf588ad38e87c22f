"""Image-quality and temporal-stability metrics for uint8 RGB frames (training validation, eval).

Frames are uint8 arrays (H, W, 3) or batches (N, H, W, 3); both arguments of a comparison must
have the same shape. Per-frame scores are averaged over the frames.
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


def flicker(frames: np.ndarray) -> float:
    """Mean absolute change between consecutive frames, in uint8 levels (0 for < 2 frames)."""
    clip = _batch(frames, "clip")
    if len(clip) < 2:
        return 0.0
    total = 0.0
    for prev, cur in zip(clip[:-1], clip[1:]):
        total += float(np.abs(cur.astype(np.int16) - prev).mean())
    return total / (len(clip) - 1)


def flicker_ratio(output_frames: np.ndarray, reference_frames: np.ndarray) -> float:
    """flicker(output) / flicker(reference): > 1 means the output changes more than the truth.

    A static reference gives 1.0 when the output is static too, and inf otherwise.
    """
    out, ref = flicker(output_frames), flicker(reference_frames)
    if ref == 0:
        return 1.0 if out == 0 else math.inf
    return out / ref
