import math

import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.metrics import (
    PSNR_CAP_DB,
    FlickerMeter,
    flicker,
    psnr,
    relative_flicker,
    ssim,
    ssim_per_frame,
)

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def textured(seed: int, n: int = 2, h: int = 40, w: int = 48) -> np.ndarray:
    """Frames with structure at several scales (smooth gradients plus blocks plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None]
    blocks = np.kron(rng.uniform(-50, 50, (n, h // 8, w // 8, 3)), np.ones((1, 8, 8, 1)))
    frames = base[None] + blocks + rng.normal(0, 8, (n, h, w, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Straight from the paper: explicit 11x11 windows, no separable filtering, float64."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    scores = []
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        for c in range(3):
            px = np.lib.stride_tricks.sliding_window_view(x[..., c], (11, 11))
            py = np.lib.stride_tricks.sliding_window_view(y[..., c], (11, 11))
            mx = (px * window).sum(axis=(2, 3))
            my = (py * window).sum(axis=(2, 3))
            vx = (((px - mx[..., None, None]) ** 2) * window).sum(axis=(2, 3))
            vy = (((py - my[..., None, None]) ** 2) * window).sum(axis=(2, 3))
            dx, dy = px - mx[..., None, None], py - my[..., None, None]
            cov = (dx * dy * window).sum(axis=(2, 3))
            s = ((2 * mx * my + C1) * (2 * cov + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
            scores.append(s.mean())
    return float(np.mean(scores))


def test_psnr_identical_frames_are_capped():
    x = textured(0)
    assert psnr(x, x) == PSNR_CAP_DB == 100.0


def test_psnr_of_a_constant_offset():
    x = np.full((2, 16, 20, 3), 100, np.uint8)
    assert psnr(x, x + 10) == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)
    assert psnr(x[0], x[0] + 10) == pytest.approx(28.1308, abs=1e-4)


def test_psnr_averages_frames():
    x = np.full((2, 16, 20, 3), 100, np.uint8)
    y = x.copy()
    y[0] += 10
    y[1] += 20
    expected = (20 * math.log10(255 / 10) + 20 * math.log10(255 / 20)) / 2
    assert psnr(x, y) == pytest.approx(expected, abs=1e-9)


def test_ssim_of_identical_frames_is_one():
    x = textured(1)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)


def test_ssim_of_flat_frames_has_a_closed_form():
    # No variance anywhere: SSIM reduces to its luminance term.
    a = np.full((1, 16, 16, 3), 100, np.uint8)
    b = np.full((1, 16, 16, 3), 110, np.uint8)
    expected = (2 * 100 * 110 + C1) / (100**2 + 110**2 + C1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)


def test_ssim_matches_a_direct_implementation():
    x, y = textured(2), textured(3)
    noisy = np.clip(x + np.random.default_rng(4).normal(0, 12, x.shape), 0, 255).astype(np.uint8)
    for other in (y, noisy):
        assert ssim(x, other) == pytest.approx(reference_ssim(x, other), abs=1e-9)
    per_frame = ssim_per_frame(x, y)
    assert per_frame.shape == (2,)
    assert per_frame[0] == pytest.approx(reference_ssim(x[:1], y[:1]), abs=1e-9)


def test_ssim_falls_with_noise_and_is_symmetric():
    x = textured(5)
    rng = np.random.default_rng(6)
    scores = []
    for sigma in (3, 10, 30, 80):
        noisy = np.clip(x + rng.normal(0, sigma, x.shape), 0, 255).astype(np.uint8)
        scores.append(ssim(x, noisy))
        assert ssim(noisy, x) == pytest.approx(scores[-1], abs=1e-12)
    assert 1.0 > scores[0] > scores[1] > scores[2] > scores[3]
    assert scores[3] < 0.5


def test_metrics_reject_mismatched_or_non_uint8_frames():
    x = textured(7)
    with pytest.raises(VidtransError):
        psnr(x, x[:, :-1])
    with pytest.raises(VidtransError):
        ssim(x, x.astype(np.float32))
    with pytest.raises(VidtransError):
        ssim(x[:, :8, :8], x[:, :8, :8])  # smaller than the SSIM window


def test_flicker():
    static = np.repeat(textured(8, n=1), 5, axis=0)
    assert flicker(static) == 0.0
    assert flicker(static[:1]) == 0.0
    blink = np.zeros((4, 8, 8, 3), np.uint8)
    blink[1::2] = 10
    assert flicker(blink) == pytest.approx(10.0)
    half = blink // 2
    assert relative_flicker(flicker(half), flicker(blink)) == pytest.approx(0.5)
    # One convention for a reference that does not change: there is nothing to compare with.
    assert relative_flicker(flicker(static), flicker(static)) is None
    assert relative_flicker(flicker(blink), flicker(static)) is None


def test_streaming_flicker_is_the_clip_flicker():
    """`run` measures flicker frame by frame as it encodes; it must be the figure `eval` computes."""
    clip = textured(9, n=6)
    meter = FlickerMeter()
    for frame in clip:
        meter.add(frame)
    assert meter.value == flicker(clip)
    assert meter.value == pytest.approx(np.mean(np.abs(np.diff(clip.astype(np.int16), axis=0))), abs=1e-9)
