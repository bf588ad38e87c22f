"""Temporal smoothing of keypoint tracks: an offline filter for whole clips, a causal one for live.

Detectors jitter by a few pixels from frame to frame, and a pix2pix generator turns that jitter
into visible flicker. Both filters only smooth keypoints that were detected: a joint missing for
a short gap is bridged, a longer absence stays missing rather than being invented.
"""

from __future__ import annotations

import math

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.pose.keypoints import NUM_KEYPOINTS, check_keypoints, is_whole_body


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D boolean array."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2], edges[1::2]))


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
    half = max(int(math.ceil(3 * sigma)), 1)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    n = len(values)
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
    track = check_keypoints(track).copy()
    for j in range(track.shape[1]):
        missing = track[:, j, 2] <= min_confidence
        for start, end in _runs(missing):
            if start == 0 or end == len(track) or end - start > max_gap:
                continue
            before, after = track[start - 1, j], track[end, j]
            steps = np.arange(1, end - start + 1, dtype=np.float32) / (end - start + 1)
            track[start:end, j, :2] = before[:2] + steps[:, None] * (after[:2] - before[:2])
            track[start:end, j, 2] = min(before[2], after[2])
    return track


def _hold_parts_at_the_ends(track: np.ndarray, min_confidence: float) -> np.ndarray:
    """Face and hand points are detected every other frame (pose/stages.KeypointStage), so a
    clip's first or last frame may lack them while the frame next to it has them, a gap no
    bridge spans: that frame takes its neighbour's."""
    if not is_whole_body(track) or len(track) < 2:
        return track
    track = track.copy()
    for end, neighbour in ((0, 1), (-1, -2)):
        parts, beside = track[end, NUM_KEYPOINTS:], track[neighbour, NUM_KEYPOINTS:]
        missing = (parts[:, 2] <= min_confidence) & (beside[:, 2] > min_confidence)
        parts[missing] = beside[missing]
    return track


def smooth_track(track: np.ndarray, window: int = 5, sigma: float = 1.5, max_gap: int = 3,
                 min_confidence: float = 0.0) -> np.ndarray:
    """Offline, zero-lag smoothing of a whole track (T, K, 3).

    Short gaps are bridged first (`bridge_gaps`; and a whole-body track's face and hands reach
    its first and last frames); then each unbroken run of detections of each
    joint gets a centred running median of `window` frames (removes single-frame detector
    glitches) followed by a Gaussian of `sigma` frames (removes the remaining jitter). Both are
    symmetric, so smoothing adds no lag. window=1 and sigma=0 turn the stages off; larger values
    smooth more. Confidences are kept; missing keypoints stay all-zero.
    """
    if window < 1 or window % 2 == 0:
        raise VidtransError(f"smoothing window must be an odd number of frames >= 1, got {window}")
    if sigma < 0:
        raise VidtransError(f"smoothing sigma must be >= 0 frames, got {sigma}")
    track = bridge_gaps(_hold_parts_at_the_ends(check_keypoints(track), min_confidence), max_gap=max_gap,
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
    fresh at its new position instead of sliding in from where it was last seen.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.02, d_cutoff: float = 1.0,
                 min_confidence: float = 0.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise VidtransError("One Euro filter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
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
        kp = check_keypoints(keypoints, "pose", track=False)
        if self._alive is None or len(self._alive) != len(kp):
            self._x, self._dx, self._alive = np.zeros((len(kp), 2)), np.zeros((len(kp), 2)), np.zeros(len(kp), bool)
        present = kp[:, 2] > self.min_confidence
        x = kp[:, :2].astype(np.float64)

        if self._t is not None and t_seconds <= self._t:
            raise VidtransError(f"One Euro filter times must increase ({t_seconds} after {self._t})")
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
