"""The synthetic target's keypoints as `vidtrans run` sees them: detected, not exact.

At inference the keypoints come from MediaPipe (run on the user's video) and the keypoint filter,
never from the renderer. Statistics and training pose maps made from the renderer's exact
keypoints therefore describe a slightly different body: the detector puts the nose and ankles
elsewhere than the renderer's keypoints (a target's own video did not normalize to the identity),
and it errs by a few pixels on every joint (a model trained on exact keypoints never saw that).

So the target's dances are rendered as a user's video would show them (VIDEO_SIZE square frames),
detected with the run's own `KeypointStage` (tracking mode, two detectors), filtered with
`smooth_track` and mapped to the training frame with `fit_to_frame`, exactly as
`pose/track.pose_stages_for` does for a clip. Rendering and detection run at about 50 frames/s on
two cores (a minute and a half for the 4800 frames of the statistics), so each dance's raw
detections are kept in the user cache ($XDG_CACHE_HOME/vidtrans/poses), one file per dance, named
by everything that shapes them (look, dance length, video size, MediaPipe version); MediaPipe gives
the same keypoints for the same frames, so a cached dance is what detecting it again would give.

`DetectorError` models what the detector gets wrong (per keypoint: bias, spread and misses, in
units of body height), for training on exact keypoints plus matched noise instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from vidtrans.atomic import write_atomically
from vidtrans.errors import VidtransError
from vidtrans.pose.detector import INSTALL_HINT
from vidtrans.pose.keypoints import KEYPOINT_INDEX, KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS, NUM_WHOLE_BODY
from vidtrans.train.synth import Look, dance_keypoints, render_person

# The size of the videos the target's dances are rendered as: a typical user's clip, which the
# detector sees whole (it works at up to 640 px, pose/detector.DETECTION_MAX_SIDE).
VIDEO_SIZE = 512
# Part of every cached file's name: bump it when what is cached changes, so caches refill.
_CACHE_VERSION = 1
_BATCH = 8

_NECK = KEYPOINT_INDEX["neck"]
_HIPS = [KEYPOINT_INDEX["r_hip"], KEYPOINT_INDEX["l_hip"]]
# Each keypoint's parent: the other end of the limb that leads to it from the neck (OpenPose's
# limbs form a tree rooted at the neck).
_PARENT = {child: parent for parent, child in LIMBS}


def cache_dir() -> Path:
    """Where detected dances are kept: $XDG_CACHE_HOME/vidtrans/poses, by default ~/.cache/vidtrans/poses."""
    from vidtrans.models.checkpoint import user_cache

    return user_cache() / "poses"


def _detector_version() -> str:
    try:
        return importlib.metadata.version("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        raise VidtransError("synthetic training measures the target's poses with the pose detector, which needs "
                            f"mediapipe ({INSTALL_HINT})") from None


class DetectedDances:
    """Detected keypoint tracks of the dances of `look`, in pixels of a size x size training frame.

    `track(seed)` is what `run` would make of a video of dance `seed`: frame i is the detected
    (and filtered) counterpart of `dance_keypoints(seed, frames, size, size, look)[i]`, with all
    zeros where the detector found nobody.
    """

    def __init__(self, size: int, look: Look, frames: int, video_size: int = VIDEO_SIZE, whole_body: bool = False):
        self.size = size
        self.look = look
        self.frames = frames
        self.video_size = video_size
        self.whole_body = whole_body  # face and hand points too (MediaPipe Holistic), else the body
        self._tracks: dict[int, np.ndarray] = {}

    def _path(self, seed: int) -> Path:
        what = (_CACHE_VERSION, self.look, self.frames, self.video_size, _detector_version())
        # Body-only dances keep the names they were cached under before whole-body ones existed.
        what = repr((*what, "whole body, face and hands every other frame") if self.whole_body else what)
        return cache_dir() / f"{self.look.name}-{hashlib.sha256(what.encode()).hexdigest()[:16]}-{seed}.npy"

    def track(self, seed: int) -> np.ndarray:
        from vidtrans.pose.normalize import fit_to_frame
        from vidtrans.pose.smoothing import smooth_track

        if seed not in self._tracks:
            side = self.video_size
            to_training_frame = fit_to_frame((side, side), (self.size, self.size))
            self._tracks[seed] = to_training_frame(smooth_track(self._raw(seed)))
        return self._tracks[seed]

    def prepare(self, seeds: Iterable[int], progress: Callable[[int, int, str], None] | None = None) -> None:
        """Detects (or reads from the cache) the dances `seeds` now, reporting frames done."""
        seeds = list(seeds)
        for done, seed in enumerate(seeds):
            self.track(seed)
            if progress:
                progress((done + 1) * self.frames, len(seeds) * self.frames, "detecting the target's poses")

    def _raw(self, seed: int) -> np.ndarray:
        """Detections (frames, K, 3) in pixels of the video frame, from the cache when they are there."""
        path = self._path(seed)
        points = NUM_WHOLE_BODY if self.whole_body else NUM_KEYPOINTS
        try:
            raw = np.load(path, allow_pickle=False)
            if raw.shape == (self.frames, points, 3) and raw.dtype == np.float32:
                return raw
        except (OSError, ValueError, EOFError):
            pass  # not cached yet, or unreadable (an old or damaged file): detect again
        raw = self._detect(seed)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Two processes (torchrun ranks) may detect the same dance; the later one replacing
            # the file is harmless, as both wrote the same keypoints.
            write_atomically(path, lambda f: np.save(f, raw), overwrite=True, what="detected poses")
        except (OSError, VidtransError):
            pass  # an unwritable cache costs time next run, not this one
        return raw

    def _detect(self, seed: int) -> np.ndarray:
        from vidtrans.pose.stages import KeypointStage
        from vidtrans.runner import Batch, run_stages

        side = self.video_size
        poses = dance_keypoints(seed, self.frames, side, side, self.look)

        def video():  # rendered batch by batch on the runner's source thread, as a decoder would
            for start in range(0, self.frames, _BATCH):
                indices = list(range(start, min(start + _BATCH, self.frames)))
                yield Batch([render_person(poses[i], side, side, self.look) for i in indices], indices, indices)

        # Two detectors on every machine, so that a cached dance is the same wherever it was detected
        # (more, as run uses on many cores, move keypoints by about a pixel).
        found = [batch.keypoints for batch in run_stages(video(), [KeypointStage(detectors=2, whole_body=self.whole_body)])]
        return np.concatenate(found).astype(np.float32)


def body_heights(exact: np.ndarray, look: Look) -> np.ndarray:
    """Pixels per body height of each exact pose (..., 18, 3), as the renderer measures it: our
    dances never foreshorten the torso (neck to the middle of the hips)."""
    torso = exact[..., _NECK, :2] - exact[..., _HIPS, :2].mean(axis=-2)
    return np.hypot(torso[..., 0], torso[..., 1]) / look.torso_length


def limb_frames(exact: np.ndarray) -> np.ndarray:
    """Per keypoint of exact poses (..., 18, 3): rotations (..., 18, 2, 2) whose rows are the unit
    vector along the limb from its parent keypoint and the one across it (image axes for the neck,
    and where the parent is missing).

    The detector's error follows the limbs: it reads elbows and wrists about 2 % of the body height
    short of the renderer's, whichever way the arm points, so in these frames its spread is a
    third of that in image axes."""
    exact = np.asarray(exact, np.float64)
    frames = np.broadcast_to(np.eye(2), (*exact.shape[:-1], 2, 2)).copy()
    for child, parent in _PARENT.items():
        limb = exact[..., child, :2] - exact[..., parent, :2]
        length = np.hypot(limb[..., 0], limb[..., 1])
        usable = (exact[..., parent, 2] > 0) & (length > 1e-6)
        along = limb / np.where(usable, length, 1.0)[..., None]
        across = np.stack([-along[..., 1], along[..., 0]], axis=-1)
        frames[..., child, :, :] = np.where(usable[..., None, None], np.stack([along, across], axis=-2),
                                            frames[..., child, :, :])
    return frames


@dataclass(frozen=True)
class DetectorError:
    """What the detector (and keypoint filter) gets wrong, per keypoint, in units of body height
    and in the keypoint's limb frame (`limb_frames`: along and across the limb from its parent).

    bias (18, 2) and covariance (18, 2, 2) of detected minus exact position, over keypoints both
    have; miss_rate (18,): the share of exact keypoints the detector does not report. (Keypoints the
    renderer hides but the detector reports anyway, such as the far ear, cannot be made up from
    exact keypoints, which have no position for them.)
    """

    bias: np.ndarray
    covariance: np.ndarray
    miss_rate: np.ndarray

    @classmethod
    def measure(cls, exact: np.ndarray, detected: np.ndarray, look: Look) -> "DetectorError":
        """From tracks (frames, 18, 3) of the exact and the detected keypoints of the same frames."""
        exact, detected = np.asarray(exact, np.float64), np.asarray(detected, np.float64)
        offset = (detected[..., :2] - exact[..., :2]) / body_heights(exact, look)[:, None, None]
        error = np.einsum("fjab,fjb->fja", limb_frames(exact), offset)
        shown, found = exact[..., 2] > 0, detected[..., 2] > 0
        both = shown & found
        if (both.sum(axis=0) < 3).any():
            rare = KEYPOINT_NAMES[int(np.argmin(both.sum(axis=0)))]
            raise VidtransError(f"the {rare} is shown and detected in fewer than 3 frames, too few to measure the "
                                "detector's error; measure it on more dances")
        bias = np.stack([error[both[:, j], j].mean(axis=0) for j in range(NUM_KEYPOINTS)])
        covariance = np.stack([np.cov(error[both[:, j], j], rowvar=False) for j in range(NUM_KEYPOINTS)])
        miss_rate = 1.0 - both.sum(axis=0) / np.maximum(shown.sum(axis=0), 1)
        return cls(bias, covariance, miss_rate)

    def perturb(self, exact: np.ndarray, look: Look, rng: np.random.Generator) -> np.ndarray:
        """A copy of one exact pose (18, 3) as the detector might have reported it."""
        pose = np.array(exact, dtype=np.float64, copy=True)
        shown = pose[:, 2] > 0
        spread = np.linalg.cholesky(self.covariance + 1e-12 * np.eye(2))
        error = self.bias + np.einsum("jab,jb->ja", spread, rng.standard_normal((NUM_KEYPOINTS, 2)))
        offset = np.einsum("jba,jb->ja", limb_frames(pose), error)  # limb frame -> image axes
        pose[:, :2] += offset * body_heights(pose, look)
        pose[~shown | (rng.random(NUM_KEYPOINTS) < self.miss_rate)] = 0.0
        return pose.astype(np.float32)
