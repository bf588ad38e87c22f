"""Output smoothing (`vidtrans.temporal.Smoother`): what flow smoothing does to the pixels."""

import numpy as np
import pytest

from tests.media import moving_square
from vidtrans.temporal import Smoother


def noisy(frames, seed=0):
    """What a flickering generator gives: the true frames plus fresh noise on every frame."""
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in frames]


def errors(outputs, truth, moving):
    """Mean absolute error against the truth where the picture stands still and where it moves."""
    still, move = [], []
    for i in range(1, len(truth)):
        diff = np.abs(outputs[i].astype(float) - truth[i].astype(float)).mean(-1)
        still.append(diff[~moving[i]].mean())
        move.append(diff[moving[i]].mean())
    return float(np.mean(still)), float(np.mean(move))


@pytest.mark.parametrize("size", [(96, 64), (256, 256), (400, 240)])
def test_flow_steadies_still_parts_and_does_not_smear_moving_ones(size):
    width, height = size
    truth = [moving_square(i, width, height) for i in range(24)]
    # Where the square is in this frame or was in the last one: what a smear would spoil.
    moving = [None] + [np.abs(truth[i].astype(int) - truth[i - 1].astype(int)).max(-1) > 0 for i in range(1, 24)]
    outputs = noisy(truth)
    smoother = Smoother("flow", 0.6)
    smoothed = [smoother(output, frame) for output, frame in zip(outputs, truth)]
    still_before, move_before = errors(outputs, truth, moving)
    still_after, move_after = errors(smoothed, truth, moving)
    assert still_after < 0.7 * still_before
    assert move_after < 1.05 * move_before


@pytest.mark.parametrize("shape", [(20, 320), (8, 64), (31, 90), (12, 12), (1, 1)])
def test_flow_leaves_frames_too_small_for_optical_flow_as_they_are(shape):
    """OpenCV's DIS refuses such frames or crashes the process (20x320 did): they pass unsmoothed."""
    height, width = shape
    smoother = Smoother("flow", 0.6)
    outputs = noisy([moving_square(i, width, height) for i in range(3)])
    for i, output in enumerate(outputs):
        assert np.array_equal(smoother(output.copy(), moving_square(i, width, height)), output)


def test_flow_smooths_the_smallest_frames_it_accepts():
    smoother = Smoother("flow", 0.6)
    outputs = noisy([moving_square(i, 320, 32) for i in range(3)])
    smoothed = [smoother(output.copy(), moving_square(i, 320, 32)) for i, output in enumerate(outputs)]
    assert not np.array_equal(smoothed[2], outputs[2])


def test_smoothing_for_gives_a_plain_string_whatever_it_was_given():
    from types import SimpleNamespace

    from vidtrans.options import Smoothing
    from vidtrans.temporal import smoothing_for

    card = SimpleNamespace(card=SimpleNamespace(smoothing={"method": "ema", "strength": 0.4}))
    for method, expected in ((Smoothing.FLOW, ("flow", 0.5)), ("none", ("none", 0.5)),
                             (Smoothing.AUTO, ("ema", 0.4)), ("auto", ("ema", 0.4))):
        resolved = smoothing_for(card, method, None)
        assert resolved == expected and type(resolved[0]) is str
