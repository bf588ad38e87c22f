"""QA round 26, smoothing: strong output smoothing reaching a steady picture, a keypoint filter's Gaussian
far narrower than a frame, and `run`'s flicker figures against an independent computation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.media import decode_all, make_clip
from tests.test_run import FakeModel
from vidtrans.pipeline import translate_video
from vidtrans.pose import smooth_track
from vidtrans.temporal import Smoother

LOSSLESS = dict(codec="libx264rgb", pix_fmt="rgb24", crf=0, preset="ultrafast")


@pytest.mark.parametrize("sigma", [1e-300, 5e-324])
def test_a_gaussian_far_under_a_frame_leaves_the_track_as_it_is_without_warnings(sigma):
    """`smooth_track(track, sigma=1e-300)` printed NumPy's "overflow encountered in square" (in divide for
    5e-324): the neighbours' weights went through infinity on their way to exp(-inf) = 0."""
    rng = np.random.default_rng(0)
    body = rng.uniform(10, 100, (1, 18, 2)) + rng.normal(0, 1, (6, 18, 2))  # one body, jittering
    track = np.concatenate([body, np.full((6, 18, 1), 0.9)], axis=2).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smoothed = smooth_track(track, window=1, sigma=sigma)
    np.testing.assert_array_equal(smoothed, track)


def _mean_change(frames) -> float:
    """Mean absolute change between consecutive frames, over every pixel and channel."""
    return float(np.mean(np.abs(np.diff(np.stack(frames).astype(np.float64), axis=0))))


def _noisy(frames: np.ndarray) -> np.ndarray:
    """A model whose output flickers: each frame plus noise drawn from that frame's own content."""
    out = []
    for frame in frames:
        noise = np.random.default_rng(int(frame.sum(dtype=np.int64))).integers(-20, 21, frame.shape)
        out.append(np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.mark.parametrize("smoothing", ["ema", "flow"])
def test_the_summarys_flicker_is_the_mean_change_of_the_output_over_the_inputs(tmp_path, smoothing):
    clip = make_clip(tmp_path / "in.mkv", frames=10, size=(96, 64), audio=False, codec="libx264rgb",
                     pix_fmt="rgb24", options={"crf": "0"})
    summary = translate_video(clip.path, tmp_path / "out.mkv", FakeModel(_noisy), smoothing=smoothing, **LOSSLESS)
    source, _ = decode_all(clip.path)
    written, _ = decode_all(tmp_path / "out.mkv")
    assert len(written) == 10
    assert summary.flicker_input == pytest.approx(_mean_change(source), abs=1e-9)
    assert summary.flicker_output == pytest.approx(_mean_change(written), abs=1e-9)
    assert summary.to_dict()["flicker_ratio"] == round(_mean_change(written) / _mean_change(source), 4)
    assert summary.flicker_ratio < 4  # the noise alone is ~7 levels a frame against the input's ~4: smoothed


@pytest.mark.parametrize("method", ["ema", "flow"])
@pytest.mark.parametrize("strength", [0.9, 0.98])
def test_strong_smoothing_reaches_a_steady_output(method, strength):
    """Each blend was rounded to uint8 and blended again: a step under half a grey level was lost, so the
    output stopped short of a steady picture for good (at 0.98 on 130 after 100: at 106 after 300 frames)."""
    guide = np.full((64, 64, 3), 120, np.uint8)  # a still input: every frame's warp is trusted
    smoother = Smoother(method, strength)
    smoother(np.full((64, 64, 3), 100, np.uint8), guide)
    for _ in range(600):
        smoothed = smoother(np.full((64, 64, 3), 130, np.uint8), guide)
    assert np.abs(smoothed.astype(int) - 130).max() <= 1
