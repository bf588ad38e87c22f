"""Temporal smoothing of keypoint tracks: an offline filter for whole clips, a causal one for live.

Detectors jitter by a few pixels from frame to frame, and a pix2pix generator turns that jitter
into visible flicker. Both filters only smooth keypoints that were detected: a joint missing for
a short gap is bridged, a longer absence stays missing rather than being invented. Neither
filters across a jump of the whole body (a scene cut, the detector changing to another person):
the body would slide from one place to the other over several frames, in poses nobody took.
"""

from __future__ import annotations

import math

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.options import is_finite_number, is_whole, shown
from vidtrans.pose.keypoints import (NUM_KEYPOINTS, check_keypoints, check_min_confidence, is_whole_body,
                                     missing_where_not_finite)


def _check_settings(min_confidence, **settings) -> None:
    """VidtransError naming the first of the filters' settings given that no filter can use: a
    NaN would silently turn a stage off (or every keypoint missing), an infinite sigma or a text
    fail deep inside NumPy."""
    check_min_confidence(min_confidence)
    rules = {
        "window": (lambda v: is_whole(v) and v >= 1 and v % 2 == 1, "an odd whole number of frames, 1 or more"),
        "sigma": (lambda v: is_finite_number(v) and v >= 0, "a finite number of frames, 0 or more"),
        "max_gap": (lambda v: is_whole(v) and v >= 0, "a whole number of frames, 0 or more"),
        "min_cutoff": (lambda v: is_finite_number(v) and v > 0, "a finite number of Hz above 0"),
        "d_cutoff": (lambda v: is_finite_number(v) and v > 0, "a finite number of Hz above 0"),
        "beta": (lambda v: is_finite_number(v) and v >= 0, "a finite number, 0 or more (1/pixel)"),
    }
    for name, value in settings.items():
        valid, wanted = rules[name]
        if not valid(value):
            raise VidtransError(f"keypoint filter setting {name} must be {wanted}, got {shown(value)}")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D boolean array."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2], edges[1::2]))


# A jump: the body's points (their median) moving further than this share of the body's size (the
# larger side of their bounding box) from one frame to the next, or its spread (the points' median
# distance from their median, which one stray point does not move) changing by more than
# JUMP_SIZE_RATIO. Dancers move a few hundredths of their size a frame at 30 fps (under a tenth at
# 5 fps); a scene cut or a change of person moves them by much more.
JUMP_SHARE = 0.5
JUMP_SIZE_RATIO = 2.0
# Points both frames must show to compare them, and to compare sizes.
_JUMP_POINTS, _JUMP_SIZE_POINTS = 2, 4


def jumped(a: np.ndarray, b: np.ndarray, min_confidence: float = 0.0) -> bool:
    """Whether body (18, 3) b is a jump away from body a (JUMP_SHARE, JUMP_SIZE_RATIO)."""
    both = (a[:, 2] > min_confidence) & (b[:, 2] > min_confidence)
    if both.sum() < _JUMP_POINTS:
        return False
    pa, pb = a[both, :2].astype(np.float64), b[both, :2].astype(np.float64)
    size = max(np.ptp(pa, axis=0).max(), np.ptp(pb, axis=0).max())
    if size <= 0:
        return False
    if float(np.median(np.linalg.norm(pb - pa, axis=1))) > JUMP_SHARE * size:
        return True
    spread_a, spread_b = _spread(pa), _spread(pb)
    return both.sum() >= _JUMP_SIZE_POINTS and max(spread_a, spread_b) > JUMP_SIZE_RATIO * max(min(spread_a, spread_b),
                                                                                              1e-6)


def _spread(points: np.ndarray) -> float:
    """The points' (n, 2) median distance from their median: their size, whatever one stray point does."""
    return float(np.median(np.linalg.norm(points - np.median(points, axis=0), axis=1)))


def jumps(track: np.ndarray, max_gap: int = 3, min_confidence: float = 0.0, glitch: int = 2) -> list[int]:
    """Frames of a track (T, K, 3) where the body lands after a jump (`jumped`) from the last frame
    that showed it, at most `max_gap` frames of nobody before: where the keypoint filter starts
    afresh. Jumps away and back to where the body was within `glitch` frames (a detector glitch of
    one or two frames, which the running median removes) are none; a glitch just after a cut
    leaves the cut one (dropping every jump near another, the body slid across such a cut)."""
    body = missing_where_not_finite(check_keypoints(track))[:, :NUM_KEYPOINTS]
    shown = np.flatnonzero((body[..., 2] > min_confidence).any(axis=1))
    found = [(int(a), int(b)) for a, b in zip(shown[:-1], shown[1:])
             if b - a <= max_gap + 1 and jumped(body[a], body[b], min_confidence)]
    glitches: set[int] = set()
    for k, (before, away) in enumerate(found):
        for m in range(k + 1, len(found)):
            back = found[m][1]
            if back - away > glitch:
                break
            if not jumped(body[before], body[back], min_confidence):  # back where it was
                glitches.update(range(k, m + 1))
                break
    return [landing for k, (_, landing) in enumerate(found) if k not in glitches]


def _median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running median of (n, 2) values, edges padded with the nearest value."""
    half = window // 2
    padded = np.pad(values, ((half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    return np.median(windows, axis=-1)


def _gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian smoothing of (n, 2) values; the kernel is renormalised at the ends.

    Renormalising (rather than padding) keeps the end frames of a segment from being pulled
    towards a made-up continuation.
    """
    n = len(values)
    # Taps further than n - 1 frames from the centre never meet a value: a sigma far longer than
    # the segment (1e9 asked for 6e9 taps, 45 GB) gives its mean.
    half = max(min(math.ceil(3 * sigma), n - 1), 1)
    # A sigma far under a frame (1e-300) overflows the neighbours' (k / sigma)^2 to infinity on their
    # way to exp(-inf) = 0, the weight they should have: not worth NumPy's warning.
    with np.errstate(over="ignore"):
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    weight = np.convolve(np.ones(n), kernel, mode="full")[half:half + n]
    out = np.empty_like(values)
    for c in range(values.shape[1]):
        out[:, c] = np.convolve(values[:, c], kernel, mode="full")[half:half + n] / weight
    return out


def bridge_gaps(track: np.ndarray, max_gap: int = 3, min_confidence: float = 0.0) -> np.ndarray:
    """Linearly interpolates joints missing for at most `max_gap` frames between two detections.

    The bridged keypoints get the lower confidence of the two detections around the gap. Gaps at
    the start or end of the clip, and longer gaps, stay missing.
    """
    _check_settings(max_gap=max_gap, min_confidence=min_confidence)
    track = missing_where_not_finite(check_keypoints(track)).copy()
    if len(track) < 3:
        return track
    # All joints at once (whole-body tracks have 128, their face and hands missing every other
    # frame): for each missing point, the frames that last and next show that joint.
    missing = track[..., 2] <= min_confidence
    frames = np.arange(len(track))[:, None]
    shown_at = np.where(missing, -1, frames)
    before = np.maximum.accumulate(shown_at, axis=0)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(missing, len(track), frames), axis=0), axis=0), axis=0)
    bridged = missing & (before >= 0) & (after < len(track)) & (after - before - 1 <= max_gap)
    t, j = np.nonzero(bridged)
    if len(t):
        a, b = track[before[t, j], j], track[after[t, j], j]
        steps = (t - before[t, j]).astype(np.float32) / (after[t, j] - before[t, j]).astype(np.float32)
        track[t, j, :2] = a[:, :2] + steps[:, None] * (b[:, :2] - a[:, :2])
        track[t, j, 2] = np.minimum(a[:, 2], b[:, 2])
    return track


def _hold_parts_at_the_ends(track: np.ndarray, min_confidence: float) -> np.ndarray:
    """Face and hand points are detected every other frame (pose/stages.KeypointStage), so the first
    or last frame of a run of frames showing the body (a clip's ends, a dancer leaving the shot or
    coming back) may lack them while the frame next to it in the run has them, a gap no bridge
    spans: that frame takes its neighbour's."""
    if not is_whole_body(track) or len(track) < 2:
        return track
    body = (track[:, :NUM_KEYPOINTS, 2] > min_confidence).any(axis=1)
    before = np.concatenate(([False], body[:-1]))  # whether the frame before shows the body
    after = np.concatenate((body[1:], [False]))
    held = track.copy()
    for ends, step in ((body & ~before & after, 1), (body & ~after & before, -1)):
        frames = np.flatnonzero(ends)
        parts, beside = track[frames, NUM_KEYPOINTS:], track[frames + step, NUM_KEYPOINTS:]
        missing = (parts[..., 2] <= min_confidence) & (beside[..., 2] > min_confidence)
        held[frames, NUM_KEYPOINTS:] = np.where(missing[..., None], beside, parts)
    return held


def smooth_track(track: np.ndarray, window: int = 5, sigma: float = 1.5, max_gap: int = 3,
                 min_confidence: float = 0.0) -> np.ndarray:
    """Offline, zero-lag smoothing of a whole track (T, K, 3).

    Short gaps are bridged first (`bridge_gaps`; and a whole-body track's face and hands reach
    its first and last frames); then each unbroken run of detections of each
    joint gets a centred running median of `window` frames (removes single-frame detector
    glitches) followed by a Gaussian of `sigma` frames (removes the remaining jitter). Both are
    symmetric, so smoothing adds no lag. window=1 and sigma=0 turn the stages off; larger values
    smooth more. Confidences are kept; missing keypoints stay all-zero. The track is filtered in
    pieces split where the body jumps (`jumps`: scene cuts), each piece as a clip of its own.
    """
    _check_settings(window=window, sigma=sigma, max_gap=max_gap, min_confidence=min_confidence)
    track = missing_where_not_finite(check_keypoints(track))
    cuts = jumps(track, max_gap, min_confidence, glitch=window // 2)
    if cuts:
        bounds = [0, *cuts, len(track)]
        return np.concatenate([_smooth_piece(track[a:b], window, sigma, max_gap, min_confidence)
                               for a, b in zip(bounds[:-1], bounds[1:])])
    return _smooth_piece(track, window, sigma, max_gap, min_confidence)


def _smooth_piece(track: np.ndarray, window: int, sigma: float, max_gap: int, min_confidence: float) -> np.ndarray:
    """`smooth_track` of a track without jumps."""
    track = bridge_gaps(_hold_parts_at_the_ends(track, min_confidence), max_gap=max_gap,
                        min_confidence=min_confidence)
    out = track.copy()
    for j in range(track.shape[1]):
        present = track[:, j, 2] > min_confidence
        for start, end in _runs(present):
            xy = track[start:end, j, :2].astype(np.float64)
            if window > 1 and end - start >= window:
                xy = _median(xy, window)
            if sigma > 0 and end - start > 1:
                xy = _gaussian(xy, sigma)
            out[start:end, j, :2] = xy
        out[~present, j] = 0.0
    return out


class OneEuroFilter:
    """Causal One Euro filter (Casiez et al. 2012) per joint and coordinate, for live video.

    Low speed -> low cutoff (strong smoothing of jitter); high speed -> the cutoff rises by
    `beta` per pixel/second of speed, so fast moves are followed with little lag. Units: cutoffs
    in Hz, `beta` in 1/pixel. A joint that goes missing is reset, so when it comes back it starts
    fresh at its new position instead of sliding in from where it was last seen; so does the whole
    pose when the body jumps (`jumped`: a scene cut, another person), rather than sliding across.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0,
                 min_confidence: float = 0.0):
        _check_settings(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, min_confidence=min_confidence)
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.min_confidence = min_confidence
        self.reset()

    def reset(self) -> None:
        """Forgets all joints, e.g. at a scene cut."""
        self._x = self._dx = self._alive = None  # sized by the first pose (body or whole body)
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, keypoints: np.ndarray, t_seconds: float) -> np.ndarray:
        """Filtered copy of one pose (K, 3) seen at time `t_seconds` (must increase)."""
        kp = missing_where_not_finite(check_keypoints(keypoints, "pose", track=False))
        if not is_finite_number(t_seconds):
            raise VidtransError(f"One Euro filter times must be finite numbers of seconds, got {shown(t_seconds)}")
        if self._t is not None and t_seconds <= self._t:
            raise VidtransError(f"One Euro filter times must increase ({t_seconds} after {self._t})")
        if self._alive is None or len(self._alive) != len(kp):
            self._x, self._dx, self._alive = np.zeros((len(kp), 2)), np.zeros((len(kp), 2)), np.zeros(len(kp), bool)
        present = kp[:, 2] > self.min_confidence
        x = kp[:, :2].astype(np.float64)

        if self._t is not None and self._alive[:NUM_KEYPOINTS].any():
            alive = self._alive[:NUM_KEYPOINTS, None] * (self.min_confidence + 1.0)
            last = np.concatenate([self._x[:NUM_KEYPOINTS], alive], axis=1)
            if jumped(last, kp[:NUM_KEYPOINTS], self.min_confidence):
                self._alive[:] = False  # every joint starts afresh where it now is
        continuing = present & self._alive
        if self._t is not None and continuing.any():
            dt = t_seconds - self._t
            dx = (x - self._x) / dt
            dx_hat = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
            cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
            x_hat = self._x + self._alpha(cutoff, dt) * (x - self._x)
            self._x[continuing] = x_hat[continuing]
            self._dx[continuing] = dx_hat[continuing]
        starting = present & ~self._alive
        self._x[starting] = x[starting]
        self._dx[starting] = 0.0
        self._alive = present
        self._t = t_seconds

        out = kp.copy()
        out[present, :2] = self._x[present]
        out[~present] = 0.0
        return out
