"""Temporal smoothing of translated frames (what it does shows in `vidtrans.metrics.flicker`).

GAN outputs flicker because every frame is generated on its own. `ema` blends each output with the
previous smoothed output (cheap, but smears motion). `flow` first moves the previous output along
the optical flow of the *input* frames (OpenCV's DIS flow), then blends only where that warp is
trustworthy (the warped previous input matches the current input), so moving and newly revealed
content stays sharp. Neither blends across a scene cut (most of the input new since the frame before,
`_CUT_SHARE`; for flow, after the warp): the new shot starts afresh, as a clip's first frame does.
Both are causal and stateful: frames must arrive in order.

Flow's costly half (the flow, the trust mask, the maps: `FlowEstimator`) depends only on the inputs,
so `run` computes it ahead on other threads, and only the warp of the previous output and the blend
(`Smoother.blend`) stay in frame order. `live` calls the Smoother once per frame, which does both.
"""

from __future__ import annotations

import functools
import threading
from typing import NamedTuple

import cv2
import numpy as np

from vidtrans.errors import UsageError, VidtransError
from vidtrans.options import DEFAULT_SMOOTHING_STRENGTH, SMOOTHING_METHODS, spell

# Flow is estimated at most this many pixels on the longer side: DIS is robust at low resolution
# and its cost grows with the pixel count.
_FLOW_MAX_SIDE = 320
# A pixel of the input that changed by this many grey levels (blurred over 5x5) or more since the frame
# before (for flow, after its warp) is new content: flow blends none of the previous output there;
# where most of the picture is (`_CUT_SHARE`), both take it for a scene cut.
_NEW_CONTENT = 24
# The share of the picture that changes at a scene cut: 77 % and more between a real clip and another
# (carphone.mp4, examples/dancer.mp4), at most 6 % between consecutive frames of either, 30 % between
# the first and last seconds of the same shot.
_CUT_SHARE = 0.5
# OpenCV 4.11's DIS refuses or crashes (a segmentation fault, e.g. at 20x320) on images with a side
# under 32 pixels; such frames are left unsmoothed.
_DIS_MIN_SIDE = 32


def smoothing_for(model, method: str, strength: float | None) -> tuple[str, float]:
    """Resolve "auto": the smoothing the model card recommends (its author measured it), else none;
    a `strength` the user gave (not None) is kept over the card's. The method comes back as a plain
    string ("none", "ema", "flow"), whether `method` was one or a `Smoothing` member, so summaries
    and JSON carry one type."""
    recommended = {}
    if method == "auto":
        recommended = getattr(getattr(model, "card", None), "smoothing", None) or {}
        method = recommended.get("method", "none")
        if method == "none" and strength is not None:
            raise UsageError(f"{spell('smoothing_strength')} {strength} would do nothing: {spell('smoothing')} auto "
                             f"applies what the model card recommends, and {getattr(model, 'name', 'the model')}'s "
                             f"recommends no smoothing; add {spell('smoothing')} ema or flow, or drop "
                             f"{spell('smoothing_strength')}")
    elif method == "none" and strength is not None:
        raise UsageError(f"{spell('smoothing_strength')} {strength} would do nothing with {spell('smoothing')} none; "
                         f"choose {spell('smoothing')} ema or flow, or drop {spell('smoothing_strength')}")
    if strength is None:
        strength = recommended.get("strength", DEFAULT_SMOOTHING_STRENGTH)
    return str(method), float(strength)


class Motion(NamedTuple):
    """Everything flow smoothing needs from the guides (what the model saw) for one frame, made
    ahead of the outputs: where each output pixel was in the previous frame, and how much of the
    previous output to blend in there."""

    map_x: np.ndarray  # (H, W) float32, output pixels
    map_y: np.ndarray
    weight: np.ndarray  # (H, W) float32, strength times trust
    keep: np.ndarray  # 1 - weight


_per_thread = threading.local()


def _thread_dis(shape: tuple[int, ...]) -> cv2.DISOpticalFlow:
    # One DIS per thread and image size: an instance is not safe to share, and a new one's first
    # call costs as much again for allocations. An instance that has seen another size gives
    # other flows (measured: up to 26 grey levels after smoothing), so a clip's frames must not
    # depend on what the thread's instance did before; at one size, calls are independent.
    instances = getattr(_per_thread, "dis", None)
    if instances is None:
        instances = _per_thread.dis = {}
    dis = instances.get(shape)
    if dis is None:
        # ULTRAFAST, not FAST: 2.6x cheaper at 256x256 (no variational refinement), and on noisy
        # outputs of a dancing character it leaves 3 % less error where the person moves, 2 % more
        # where nothing does (benchmarks/README.md).
        dis = instances[shape] = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    return dis


class FlowEstimator:
    """The half of flow smoothing that needs only the guides: call it with each guide in order
    (it keeps the previous one) and the output's shape; it returns the frame's `Motion`, or None
    for the first frame and at a scene cut. Outputs play no part, so it runs ahead of them: a clip
    cut into runs of frames can use one estimator per run, primed with the guide before the run."""

    def __init__(self, strength: float):
        self.strength = strength
        self._previous_gray: np.ndarray | None = None

    def __call__(self, guide: np.ndarray, output_shape: tuple[int, ...]) -> Motion | None:
        gray = _small_gray(guide, output_shape)
        previous, self._previous_gray = self._previous_gray, gray
        if previous is None or previous.shape != gray.shape or min(gray.shape) < _DIS_MIN_SIDE:
            return None
        # Backward flow: for each pixel of the current frame, where it was in the previous one.
        flow = _thread_dis(gray.shape).calc(gray, previous, None)
        grid_x, grid_y = _grid(gray.shape)
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        warped_gray = cv2.remap(previous, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        error = _change(warped_gray, gray)
        if float(np.mean(error >= _NEW_CONTENT)) > _CUT_SHARE:
            return None  # a scene cut: the warp explains little of the new shot, which starts afresh
        weight = cv2.LUT(error, _trust_table(self.strength))
        height, width = output_shape[:2]
        small_h, small_w = gray.shape
        if (small_h, small_w) != (height, width):
            scale_x, scale_y = width / small_w, height / small_h
            map_x = cv2.resize(map_x, (width, height), interpolation=cv2.INTER_LINEAR) * scale_x + (scale_x - 1) / 2
            map_y = cv2.resize(map_y, (width, height), interpolation=cv2.INTER_LINEAR) * scale_y + (scale_y - 1) / 2
            weight = cv2.resize(weight, (width, height), interpolation=cv2.INTER_LINEAR)
        return Motion(map_x, map_y, weight, 1.0 - weight)


@functools.lru_cache(maxsize=8)
def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's own x and y (read-only: shared by every frame of that size)."""
    height, width = shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    grid_x.flags.writeable = grid_y.flags.writeable = False
    return grid_x, grid_y


@functools.lru_cache(maxsize=8)
def _trust_table(strength: float) -> np.ndarray:
    """Blend weight by photometric error (grey levels) of the warp, as a lookup table: the warp is
    trusted where it explains the input; an error of ~0 gives full weight, an error of _NEW_CONTENT
    grey levels or more (occlusion, new content, flow failure) none."""
    return (np.clip(1.0 - np.arange(256, dtype=np.float32) / _NEW_CONTENT, 0.0, 1.0) * strength).astype(np.float32)


def _change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How far each pixel of a small grey guide moved from `before`, in grey levels, blurred over 5x5
    (one noisy pixel is no change)."""
    return cv2.GaussianBlur(cv2.absdiff(before, after), (5, 5), 0)


def _small_gray(frame: np.ndarray, output_shape: tuple[int, ...]) -> np.ndarray:
    """Grey `frame` at the size flow is computed at: the output's, capped at _FLOW_MAX_SIDE, but
    never shrunk below _DIS_MIN_SIDE on its shorter side (a 1000x60 strip is flowed at 533x32)."""
    height, width = output_shape[:2]
    scale = min(1.0, max(_FLOW_MAX_SIDE / max(height, width), _DIS_MIN_SIDE / max(1, min(height, width))))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if gray.shape[::-1] != size:
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


class Smoother:
    """Causal output smoothing. `strength` in [0, 1): 0 leaves frames untouched.

    One call per frame (`smoother(output, source)`) does everything in order. For flow, the
    guide-only half can instead run ahead (`estimator()`, e.g. on other threads), and `blend`
    then does only the part that needs the previous output."""

    def __init__(self, method: str = "flow", strength: float = 0.5):
        if method not in SMOOTHING_METHODS:
            raise VidtransError(f"unknown smoothing {method!r}; use one of {', '.join(SMOOTHING_METHODS)}")
        if not 0.0 <= strength < 1.0:
            raise VidtransError(f"smoothing strength must be in [0, 1), got {strength}")
        self.method = method
        self.strength = strength
        # The last smoothed frame unrounded (float32): a blend rounded to uint8 each frame loses any
        # step under half a grey level, so a steady picture stopped short of the model's colour by
        # up to 0.5 / (1 - strength) levels for good (25 at 0.98).
        self._previous_output: np.ndarray | None = None
        self._estimator = self.estimator()
        self._previous_gray: np.ndarray | None = None  # ema: the last guide, small and grey (scene cuts)

    @property
    def uses_flow(self) -> bool:
        return self.method == "flow" and self.strength > 0.0

    def estimator(self) -> FlowEstimator:
        return FlowEstimator(self.strength)

    def go_on_from(self, output: np.ndarray, source: np.ndarray) -> None:
        """Go on from an earlier frame of the clip, as if it had been the last one smoothed here:
        `output` as written, or better `carried()` then (unrounded), `source` what the model saw for
        it (a clip translated in parts)."""
        self._previous_output = output.astype(np.float32)
        if self.uses_flow:
            self._estimator(source, output.shape)
        elif self.method == "ema":
            self._previous_gray = _small_gray(source, output.shape)

    def __call__(self, output: np.ndarray, source: np.ndarray) -> np.ndarray:
        """Smooth one translated frame; `source` is the frame it was made from (any size: it is
        only used for optical flow and to see scene cuts, at the output's aspect ratio)."""
        if self.uses_flow:
            return self.blend(output, self._estimator(source, output.shape))
        if self.method == "ema" and self.strength > 0.0 and self._cut(source, output.shape):
            self._previous_output = None  # the new shot starts as a clip does, not blended with the last one
        return self.blend(output, None)

    def _cut(self, source: np.ndarray, output_shape: tuple[int, ...]) -> bool:
        """Whether most of `source` is new since the guide before it (a scene cut)."""
        gray = _small_gray(source, output_shape)
        previous, self._previous_gray = self._previous_gray, gray
        if previous is None or previous.shape != gray.shape:
            return False
        return float(np.mean(_change(previous, gray) >= _NEW_CONTENT)) > _CUT_SHARE

    def blend(self, output: np.ndarray, motion: Motion | None) -> np.ndarray:
        """Smooth one translated frame, given its `Motion` (flow; None for the first frame, or a cut)."""
        if self.method == "none" or self.strength == 0.0:
            return output
        previous = self._previous_output
        exact = output.astype(np.float32)
        if previous is None or previous.shape != output.shape or (self.method == "flow" and motion is None):
            self._previous_output = exact
            return output
        if self.method == "ema":
            exact = cv2.addWeighted(exact, 1.0 - self.strength, previous, self.strength, 0.0)
        else:
            warped = cv2.remap(previous, motion.map_x, motion.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            # output * keep + warped * weight in one pass (3.5x faster than numpy's).
            exact = cv2.blendLinear(exact, warped, motion.keep, motion.weight)
        self._previous_output = exact
        return cv2.convertScaleAbs(exact)  # rounded to uint8 in one pass (a blend is never negative)

    def carried(self, output: np.ndarray) -> np.ndarray:
        """What a clip's next part goes on from (`go_on_from`) after `output`, the last frame smoothed
        here: that frame unrounded, so the parts make exactly the frames of one piece."""
        previous = self._previous_output
        smoothing = self.method != "none" and self.strength > 0.0  # else `previous` is not this frame's
        return previous.copy() if smoothing and previous is not None and previous.shape == output.shape \
            else output.copy()
