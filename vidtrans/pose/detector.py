"""Single-person pose detection with MediaPipe, returned as COCO-18 keypoints (BlazePose) or as
whole-body keypoints: the body, 68 face points and both hands (MediaPipe Holistic).

mediapipe is imported only when a detector is created, so everything else in vidtrans works
without it. The detector always uses BlazePose's `model_complexity=1`: that model
(pose_landmark_full.tflite) ships inside the mediapipe 0.10.21 wheel, while complexities 0 and 2
make mediapipe download a model from the internet at run time, which vidtrans must never do.
Holistic needs nothing more than the wheel holds either (face_landmark.tflite,
hand_landmark_full.tflite, holistic_landmark/hand_recrop.tflite) as long as
`refine_face_landmarks` stays off.
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
from vidtrans.options import check_switch, is_finite_number, shown
from vidtrans.pose.keypoints import FACE, LEFT_HAND, NUM_KEYPOINTS, NUM_WHOLE_BODY, RIGHT_HAND, check_frame_size

DETECTION_MAX_SIDE = 640
# A frame where nobody is found is searched again in square crops (`_crops`), but only one such
# frame in CROP_SEARCH_EVERY while nobody turns up, so a clip of an empty room stays cheap.
CROP_SEARCH_EVERY = 6
# The smallest crop searched: a person in less is a few pixels high, beyond finding, and each crop costs
# a MediaPipe run (a 1280x2 clip, 640x1 at DETECTION_MAX_SIDE, was searched in 639 crops, 51 s a frame).
MIN_CROP_SIDE = 64
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


# For each iBUG-68 face point (jaw, brows, nose, eyes, mouth), the one or two face-mesh landmarks
# whose mean it is: the correspondence of Peizhi Yan's Mediapipe_2_Dlib_Landmarks (mp2dlib.py),
# checked point by point on a real face; tests/test_detect_whole_body.py keeps the layout checked.
_FACE_MESH_FOR_IBUG68: tuple[tuple[int, ...], ...] = (
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),   # jaw: right ear to chin
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),            # jaw: chin to left ear
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),   # right brow, left brow
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),          # nose bridge, base
    (33,), (160,), (158,), (133,), (153,), (144,),                                 # the person's right eye
    (362,), (385,), (387,), (263,), (373,), (380,),                                # left eye
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),  # outer lips
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),                     # inner lips
)
# As index pairs (a single landmark twice), so that one mean over each pair maps all 68 points.
_FACE_MESH_PAIRS = np.array([(pair[0], pair[-1]) for pair in _FACE_MESH_FOR_IBUG68])


def _to_pixels(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Points (n, 3) of normalised x, y and a confidence as pixels, those outside the frame zeroed."""
    out = points.astype(np.float32)
    # MediaPipe's normalised coordinates put pixel centres at (c + 0.5) / width; ours at c.
    out[:, 0] = out[:, 0] * width - 0.5
    out[:, 1] = out[:, 1] * height - 0.5
    inside = (out[:, 0] >= -0.5) & (out[:, 0] <= width - 0.5) & (out[:, 1] >= -0.5) & (out[:, 1] <= height - 0.5)
    out[~inside] = 0.0
    return out


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
    out = _to_pixels(out, width, height)
    out[out[:, 2] < min_visibility] = 0.0
    return out


def face_mesh_to_ibug68(mesh: np.ndarray, width: int, height: int) -> np.ndarray:
    """iBUG-68 face points (68, 3) in pixels from MediaPipe's 468 face-mesh landmarks (468, 3) of
    normalised x, y and confidence; points outside the frame are zeroed."""
    return _to_pixels(mesh[_FACE_MESH_PAIRS].mean(axis=1), width, height)


def _crops(height: int, width: int) -> list[tuple[int, int, int]]:
    """Square crops (x, y, side) of a wide or tall frame, side its short side, overlapping by at
    least half a side, that cover it; none for a frame near square, which gains nothing from them, or
    for a strip under MIN_CROP_SIDE high (or wide).

    MediaPipe's person detector sees the whole frame squeezed into 224x224, letterboxed: a 16:9
    frame fills 56% of it, and a dancer a quarter of the frame high is too small there to be
    found (in none of 12 frames; a third high in another clip), while in crops as high as the
    frame one a fifth high is found in every frame, keypoints within 1-2 px.
    """
    side, long = min(height, width), max(height, width)
    if long < 1.25 * side or side < MIN_CROP_SIDE:
        return []
    count = -(-(long - side) * 2 // side) + 1
    offsets = [round(k * (long - side) / (count - 1)) for k in range(count)]
    return [(o, 0, side) if width > height else (0, o, side) for o in offsets]


def _normalised_points(landmarks, confidence: float | None = None,
                       crop: tuple[int, int, int, int, int] | None = None) -> np.ndarray:
    """A MediaPipe landmark list as (n, 3): x, y and the landmark's visibility, or `confidence` for
    landmarks (face, hands) that carry none.

    crop: (x, y, side, frame height, frame width) when MediaPipe saw a square crop of the frame;
    x and y then come back normalised to the whole frame (exactly: a normalised x is (c + 0.5) /
    side of crop pixel c, so x * side + crop x is (c' + 0.5) of frame pixel c').
    """
    points = np.array([(lm.x, lm.y, lm.visibility if confidence is None else confidence)
                       for lm in landmarks.landmark], dtype=np.float64)
    if crop is not None:
        x, y, side, height, width = crop
        points[:, 0] = (points[:, 0] * side + x) / width
        points[:, 1] = (points[:, 1] * side + y) / height
    return points.astype(np.float32)


def _crop(frame: np.ndarray, region: tuple[int, int, int]) -> np.ndarray:
    x, y, side = region
    return np.ascontiguousarray(frame[y:y + side, x:x + side])


def _follow(region: tuple[int, int, int], landmarks, frame_shape: tuple[int, int]) -> tuple[int, int, int]:
    """The crop for the next frame: `region` moved towards the person whose landmarks (normalised
    to the crop) it holds, so that they stay inside it. It moves at most a tenth of its side a
    frame, which tracking follows as it follows the person's own motion."""
    x, y, side = region
    points = np.array([(lm.x, lm.y) for lm in landmarks.landmark])
    centre = (points.min(axis=0) + points.max(axis=0)) / 2 * side + (x, y)
    height, width = frame_shape
    step = max(1, side // 10)

    def moved(origin: int, centre: float, limit: int) -> int:
        wanted = min(max(round(centre - side / 2), 0), limit)
        return origin + max(-step, min(step, wanted - origin))

    return moved(x, centre[0], width - side), moved(y, centre[1], height - side), side


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
    """Detects one person per frame: `detect(rgb_frame)` gives float32 keypoints in input pixels,
    (18, 3) of the body or, with whole_body=True, (128, 3) of body, face and hands
    (vidtrans.pose.keypoints).

    video_mode=True tracks the person from frame to frame (faster and steadier on clips); use
    False for unrelated still images. MediaPipe's own landmark smoothing is off because vidtrans
    smooths tracks itself (offline or One Euro), and double smoothing adds lag.
    A person small in a wide frame (down to a fifth of its height) is found in square crops of it
    (`_find`). Small frames need no upscaling: on a 176x144 clip the head, neck and shoulders are
    found in every frame at native size, and Holistic finds the face in every frame too.
    Whole-body detection runs MediaPipe Holistic, whose body is BlazePose's, so the body part is
    the one the body-only detector gives; face and hands take about as long again as the body
    (29-34 against 16-19 ms a frame on 2 cores, on clips where no hand was found).
    """

    def __init__(self, video_mode: bool = True, min_visibility: float = 0.5,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 whole_body: bool = False):
        # Checked here: MediaPipe takes any threshold silently (2.0 finds nobody, ever), and a NaN
        # or text min_visibility would drop every keypoint, or fail at the first person found.
        check_switch(video_mode, "video_mode")
        check_switch(whole_body, "whole_body")
        for name, value in (("min_visibility", min_visibility), ("min_detection_confidence", min_detection_confidence),
                            ("min_tracking_confidence", min_tracking_confidence)):
            if not (is_finite_number(value) and 0 <= value <= 1):
                raise VidtransError(f"{name} must be a number from 0 to 1, got {shown(value)}")
        try:
            import mediapipe as mp
        except ImportError as e:
            raise VidtransError(f"pose detection needs mediapipe, which is not installed ({INSTALL_HINT})") from e
        self.min_visibility = min_visibility
        self.whole_body = whole_body
        self._video_mode = video_mode
        self._tracking = False  # whether the last frame found a person, whom the graph now tracks
        self._region: tuple[int, int, int] | None = None  # the square crop (x, y, side) tracked in
        self._search_wait = 0  # frames left before nobody found on the whole frame means a crop search
        self._quiet_frames = 2
        options = dict(
            static_image_mode=not video_mode,
            model_complexity=1,  # the only model in the wheel (module docstring)
            smooth_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        with _native_stderr_silenced():
            if whole_body:
                # The refined face model (with irises) is not in the wheel (module docstring).
                self._graph = mp.solutions.holistic.Holistic(**options, refine_face_landmarks=False)
            else:
                self._graph = mp.solutions.pose.Pose(**options)
            # The first inference starts the graph and its TFLite interpreters, which is when
            # the chatter is printed: do it here, silenced, rather than in the middle of a run.
            self._graph.process(np.zeros((64, 64, 3), np.uint8))
        _open_detectors.add(self)

    @property
    def num_keypoints(self) -> int:
        """K of the (K, 3) poses `detect` returns."""
        return NUM_WHOLE_BODY if self.whole_body else NUM_KEYPOINTS

    def detect(self, rgb_frame: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
        """Keypoints (K, 3) of the most prominent person (K = `num_keypoints`); all zeros when
        nobody is found, and a face or hand that is not found is all zeros too.

        frame_size: (height, width) of the frame `rgb_frame` is a scaled-down copy of; keypoints
        then come back in that frame's pixels.
        """
        if self._graph is None:
            raise VidtransError("pose detector is closed (create a new PoseDetector)")
        frame = np.asarray(rgb_frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise VidtransError(f"pose detection needs an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        if not frame.size:  # MediaPipe's graph fails on it, and for good: every later frame fails too
            raise VidtransError(f"pose detection needs a frame of 1x1 pixels or more, got an empty one, {frame.shape}")
        if frame_size is not None:
            check_frame_size("frame_size", frame_size)
        # Landmarks come back normalized to the picture, so they map onto the frame's own size
        # however small a copy MediaPipe was given.
        height, width = frame_size or frame.shape[:2]
        scale = DETECTION_MAX_SIDE / max(frame.shape[:2])
        if scale < 1.0:
            # MediaPipe runs its networks at 256x256 anyway; handing it a smaller frame saves
            # its own copy and resize of the full frame (~13 ms at 720p). A side of a pixel or
            # two keeps one (OpenCV refuses a size of 0).
            frame = cv2.resize(frame, (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
        frame = np.ascontiguousarray(frame)
        result, region = self._find(frame)
        keypoints = np.zeros((self.num_keypoints, 3), dtype=np.float32)
        if result.pose_landmarks is None:
            return keypoints
        crop = None if region is None else (*region, *frame.shape[:2])
        keypoints[:NUM_KEYPOINTS] = blazepose_to_coco18(
            _normalised_points(result.pose_landmarks, crop=crop), width, height, self.min_visibility)
        if self.whole_body:
            if result.face_landmarks is not None:
                # The mesh has no per-point visibility: the face's presence is all there is.
                mesh = _normalised_points(result.face_landmarks, confidence=1.0, crop=crop)
                keypoints[FACE] = face_mesh_to_ibug68(mesh, width, height)
            # Holistic finds each hand from the BlazePose wrist of that side (left_hand_landmarks
            # from landmark 15, the person's left wrist), so its "left" is the person's left, as
            # LEFT_HAND is: the hand swaps sides when the picture is mirrored.
            for part, hand in ((LEFT_HAND, result.left_hand_landmarks), (RIGHT_HAND, result.right_hand_landmarks)):
                if hand is not None:
                    keypoints[part] = _to_pixels(_normalised_points(hand, confidence=1.0, crop=crop),
                                                 width, height)
        return keypoints

    def _find(self, frame: np.ndarray):
        """MediaPipe's result for `frame` and the square crop (x, y, side) it saw, None for the
        whole frame.

        A person too small for the whole frame (a dancer a quarter of a 16:9 frame high) is looked
        for in square crops (`_crops`), and once found is tracked in a crop that follows them, at
        one MediaPipe run a frame as on the whole frame. Frames with nobody cost the crops' runs
        (3 on a 16:9 frame) once in CROP_SEARCH_EVERY frames: 1.5 runs a frame on average.
        """
        tracking = self._tracking
        if self._region is not None:
            result = self._process(_crop(frame, self._region))
            if result.pose_landmarks is None:
                # Lost: look again in this crop, anew, then on the whole frame and in every crop.
                result = self._process(_crop(frame, self._region))
            if result.pose_landmarks is not None:
                region = self._region
                self._region = _follow(region, result.pose_landmarks, frame.shape[:2])
                return result, region
            self._region, self._search_wait, tracking = None, 0, False
        result = self._process(frame)
        if result.pose_landmarks is None and tracking:
            # Tracking looks where the person was: after a scene cut, or a jump, it finds nobody
            # there, and only the next frame would look for them anew. This one looks again now.
            result = self._process(frame)
        self._tracking = self._video_mode and result.pose_landmarks is not None
        if result.pose_landmarks is not None:
            return result, None
        if self._search_wait > 0:
            self._search_wait -= 1
            return result, None
        for region in _crops(*frame.shape[:2]):
            found = self._process(_crop(frame, region))
            if found.pose_landmarks is not None:
                if self._video_mode:
                    self._region = _follow(region, found.pose_landmarks, frame.shape[:2])
                    self._tracking = True
                return found, region
        self._search_wait = CROP_SEARCH_EVERY - 1 if self._video_mode else 0
        return result, None

    def _process(self, frame: np.ndarray):
        if self._quiet_frames:
            # MediaPipe logs once more when it first tracks a person in a non-square frame.
            with _native_stderr_silenced():
                result = self._graph.process(frame)
            self._quiet_frames -= result.pose_landmarks is not None
            return result
        return self._graph.process(frame)

    def close(self) -> None:
        """Frees MediaPipe's graph; the detector cannot be used afterwards."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> "PoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # Tolerates a failed __init__, where _graph was never set.
        if getattr(self, "_graph", None) is not None:
            self.close()
