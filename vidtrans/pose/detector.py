"""Single-person pose detection with MediaPipe's BlazePose, returned as COCO-18 keypoints.

mediapipe is imported only when a detector is created, so everything else in vidtrans works
without it. The detector always uses BlazePose's `model_complexity=1`: that model
(pose_landmark_full.tflite) ships inside the mediapipe 0.10.21 wheel, while complexities 0 and 2
make mediapipe download a model from the internet at run time, which vidtrans must never do.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import weakref

import cv2
import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.pose.keypoints import NUM_KEYPOINTS

DETECTION_MAX_SIDE = 640
INSTALL_HINT = "pip install mediapipe==0.10.21 (needs Python 3.10-3.12)"

# BlazePose landmark index for each COCO-18 keypoint; the neck (None) is built from the shoulders.
_BLAZEPOSE_FOR_COCO: tuple[int | None, ...] = (
    0,            # nose
    None,         # neck
    12, 14, 16,   # right shoulder, elbow, wrist
    11, 13, 15,   # left shoulder, elbow, wrist
    24, 26, 28,   # right hip, knee, ankle
    23, 25, 27,   # left hip, knee, ankle
    5, 2,         # right eye, left eye
    8, 7,         # right ear, left ear
)
_RIGHT_SHOULDER, _LEFT_SHOULDER = 12, 11


def blazepose_to_coco18(landmarks: np.ndarray, width: int, height: int,
                        min_visibility: float) -> np.ndarray:
    """COCO-18 keypoints (18, 3) in pixels from BlazePose landmarks (33, 3) of normalised x, y, visibility.

    Keypoints below `min_visibility` or outside the frame are zeroed (missing) rather than
    guessed: BlazePose always returns all 33 landmarks, hallucinating occluded ones.
    """
    out = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    for coco, blaze in enumerate(_BLAZEPOSE_FOR_COCO):
        if blaze is None:
            r, l = landmarks[_RIGHT_SHOULDER], landmarks[_LEFT_SHOULDER]
            out[coco] = ((r[0] + l[0]) / 2, (r[1] + l[1]) / 2, min(r[2], l[2]))
        else:
            out[coco] = landmarks[blaze]
    # MediaPipe's normalised coordinates put pixel centres at (c + 0.5) / width; ours at c.
    out[:, 0] = out[:, 0] * width - 0.5
    out[:, 1] = out[:, 1] * height - 0.5
    inside = (out[:, 0] >= -0.5) & (out[:, 0] <= width - 0.5) & (out[:, 1] >= -0.5) & (out[:, 1] <= height - 0.5)
    keep = inside & (out[:, 2] >= min_visibility)
    out[~keep] = 0.0
    return out


# A MediaPipe graph still open when Python exits hangs the interpreter's shutdown once it has
# tracked a person, so every detector is closed at exit, whatever path led there (errors, Ctrl-C).
_open_detectors: "weakref.WeakSet[PoseDetector]" = weakref.WeakSet()


@atexit.register
def _close_open_detectors() -> None:
    for detector in list(_open_detectors):
        detector.close()


class _NativeStderrSilencer:
    """MediaPipe's C++ chatter (XNNPACK, absl warnings) goes straight to file descriptor 2, where it
    would bury vidtrans' one-line messages; it only happens when a graph starts or first tracks.

    Detectors run in several threads at once, so the redirection is counted: the first thread in
    points fd 2 at /dev/null, the last one out restores it (two threads each saving and restoring
    on their own would leave stderr pointing at /dev/null for good).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: int | None = None

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = self._redirect()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    os.dup2(self._saved, 2)
                    os.close(self._saved)
                    self._saved = None

    @staticmethod
    def _redirect() -> int | None:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no real stderr (e.g. captured): nothing to protect
            return None
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return saved


_native_stderr_silenced = _NativeStderrSilencer()


class PoseDetector:
    """Detects one person per frame: `detect(rgb_frame) -> (18, 3)` float32 keypoints in input pixels.

    video_mode=True tracks the person from frame to frame (faster and steadier on clips); use
    False for unrelated still images. MediaPipe's own landmark smoothing is off because vidtrans
    smooths tracks itself (offline or One Euro), and double smoothing adds lag.
    Small frames need no upscaling: on a 176x144 clip the head, neck and shoulders are found in
    every frame at native size.
    """

    def __init__(self, video_mode: bool = True, min_visibility: float = 0.5,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        try:
            import mediapipe as mp
        except ImportError as e:
            raise VidtransError(f"pose detection needs mediapipe, which is not installed ({INSTALL_HINT})") from e
        self.min_visibility = min_visibility
        self._quiet_frames = 2
        with _native_stderr_silenced():
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=not video_mode,
                model_complexity=1,  # the only model in the wheel (module docstring)
                smooth_landmarks=False,
                enable_segmentation=False,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
            # The first inference starts the graph and its TFLite interpreters, which is when
            # the chatter is printed: do it here, silenced, rather than in the middle of a run.
            self._pose.process(np.zeros((64, 64, 3), np.uint8))
        _open_detectors.add(self)

    def detect(self, rgb_frame: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        """Keypoints (18, 3) of the most prominent person; all zeros when nobody is found.

        frame_size: (height, width) of the frame `rgb_frame` is a scaled-down copy of; keypoints
        then come back in that frame's pixels.
        """
        if self._pose is None:
            raise VidtransError("pose detector is closed (create a new PoseDetector)")
        frame = np.asarray(rgb_frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise VidtransError(f"pose detection needs an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        # Landmarks come back normalized to the picture, so they map onto the frame's own size
        # however small a copy MediaPipe was given.
        height, width = frame_size or frame.shape[:2]
        scale = DETECTION_MAX_SIDE / max(frame.shape[:2])
        if scale < 1.0:
            # MediaPipe runs its networks at 256x256 anyway; handing it a smaller frame saves
            # its own copy and resize of the full frame (~13 ms at 720p).
            frame = cv2.resize(frame, (round(frame.shape[1] * scale), round(frame.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        if self._quiet_frames:
            # MediaPipe logs once more when it first tracks a person in a non-square frame.
            with _native_stderr_silenced():
                result = self._pose.process(np.ascontiguousarray(frame))
            self._quiet_frames -= result.pose_landmarks is not None
        else:
            result = self._pose.process(np.ascontiguousarray(frame))
        if result.pose_landmarks is None:
            return np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
        landmarks = np.array([(lm.x, lm.y, lm.visibility) for lm in result.pose_landmarks.landmark], dtype=np.float32)
        return blazepose_to_coco18(landmarks, width, height, self.min_visibility)

    def close(self) -> None:
        """Frees MediaPipe's graph; the detector cannot be used afterwards."""
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def __enter__(self) -> "PoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # Tolerates a failed __init__, where _pose was never set.
        if getattr(self, "_pose", None) is not None:
            self.close()
