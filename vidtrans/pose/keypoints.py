"""COCO-18 keypoints in OpenPose order, the 17 OpenPose limbs and OpenPose's colour palette, and
the face and hand points that whole-body poses add.

Everything that draws, reads or maps keypoints uses these tables so that pose maps rendered by
vidtrans look like the OpenPose renders that upstream pose2person models were trained on.
A pose is a float32 array (K, 3) of x, y (pixels of its frame) and confidence (0 = missing), with
K = 18 (the body, COCO-18) or K = 128, a whole-body pose: the body, then 68 face points (the
iBUG-68 / COCO-WholeBody face that DWPose and OpenPose's face model give: jaw, brows, nose, eyes,
mouth), then 21 points of the person's left hand and 21 of their right hand (OpenPose and
MediaPipe hand order: wrist, then thumb, index, middle, ring and little finger from base to tip).
Pixel coordinates follow OpenPose and cv2: the centre of pixel column c is x = c.
"""

from __future__ import annotations

import numbers

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.options import is_finite_number, shown

NUM_KEYPOINTS = 18  # the body
NUM_FACE = 68
NUM_HAND = 21
NUM_WHOLE_BODY = NUM_KEYPOINTS + NUM_FACE + 2 * NUM_HAND
KEYPOINT_COUNTS = (NUM_KEYPOINTS, NUM_WHOLE_BODY)
FACE = slice(NUM_KEYPOINTS, NUM_KEYPOINTS + NUM_FACE)
LEFT_HAND = slice(FACE.stop, FACE.stop + NUM_HAND)
RIGHT_HAND = slice(LEFT_HAND.stop, LEFT_HAND.stop + NUM_HAND)

# Confidences run from 0 (missing) to 1, but heatmap detectors overshoot a little (OpenPose
# reports up to about 1.4, mmpose's heatmap models about 1.3): files beyond this have their
# numbers in another layout (or another meaning) than x, y, confidence.
MAX_CONFIDENCE = 2.0
# OpenPose's own --render_threshold: keypoints it reports below this are noise. Pose maps draw only
# points above it, so a pose of no point above it shows nobody (`has_person`).
DEFAULT_MIN_CONFIDENCE = 0.05
# Detectors place points just off the frame (a hand reaching past its edge; MediaPipe extrapolates
# hidden landmarks); points present further out than this many frame widths (heights) cannot be
# pixels of this frame.
OFF_FRAME_LIMIT = 1.0

# The 20 bones of a hand, as OpenPose draws them: from the wrist (0) along each finger.
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    edge for finger in range(5) for edge in ((0 if k == 0 else 4 * finger + k, 4 * finger + k + 1) for k in range(4)))

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
KEYPOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# OpenPose's `limbSeq` (1-based there) converted to 0-based, in its drawing order. The two extra
# shoulder-ear connections OpenPose lists after these are never drawn by `draw_bodypose`.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7),
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# OpenPose's 18 colours, RGB. Limb i and joint i both use colour i, so limb 0 (neck -> right
# shoulder) and joint 0 (nose) are red.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)


def _flip_permutation() -> tuple[int, ...]:
    perm = list(range(NUM_KEYPOINTS))
    for i, name in enumerate(KEYPOINT_NAMES):
        if name.startswith(("r_", "l_")):
            other = ("l_" if name.startswith("r_") else "r_") + name[2:]
            perm[i] = KEYPOINT_INDEX[other]
    return tuple(perm)


# FLIP_INDEX[i] is the body keypoint that i becomes when the image is mirrored (right <-> left).
FLIP_INDEX: tuple[int, ...] = _flip_permutation()

# The same for the 68 face points (iBUG numbering): the jaw, brows, the nose's base, eyes and
# mouth run from the image's left to its right, so mirroring reverses each run; the nose
# bridge (27-30) maps onto itself.
_FACE_FLIP: tuple[int, ...] = (
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, *range(35, 30, -1),
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    *range(54, 47, -1), *range(59, 54, -1), *range(64, 59, -1), 67, 66, 65,
)
WHOLE_BODY_FLIP_INDEX: tuple[int, ...] = (
    *FLIP_INDEX, *(FACE.start + i for i in _FACE_FLIP),
    *range(RIGHT_HAND.start, RIGHT_HAND.stop), *range(LEFT_HAND.start, LEFT_HAND.stop),
)


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the horizontally mirrored frame: x -> width - 1 - x and left/right swapped.

    Works on one pose (K, 3) or a track (frames, K, 3); missing keypoints stay all-zero.
    """
    kp = check_keypoints(keypoints, "keypoints", track=None)
    if not is_frame_side(width):  # past it, mirrored points overflowed float32 to infinity
        raise VidtransError(f"width must be the frame's width in pixels, from 1 to {MAX_FRAME_SIDE}; "
                            f"got {shown(width)}")
    out = kp[..., FLIP_INDEX if kp.shape[-2] == NUM_KEYPOINTS else WHOLE_BODY_FLIP_INDEX, :].copy()
    present = out[..., 2] > 0
    # Pixel centres sit at integers, so column c mirrors to column width - 1 - c.
    out[..., 0] = np.where(present, width - 1 - out[..., 0], 0.0)
    return out


def has_person(keypoints: np.ndarray) -> np.ndarray:
    """Per pose of a track (..., K, 3): whether any body keypoint was found, above the confidence pose maps
    draw from (a frame with nobody is all missing; one of only fainter points is drawn blank)."""
    return (np.asarray(keypoints)[..., :NUM_KEYPOINTS, 2] > DEFAULT_MIN_CONFIDENCE).any(axis=-1)


def is_whole_body(keypoints: np.ndarray) -> bool:
    """Whether poses (..., K, 3) carry face and hand points (K = 128) rather than the body alone."""
    return np.shape(keypoints)[-2] == NUM_WHOLE_BODY


def with_parts(keypoints: np.ndarray, whole_body: bool) -> np.ndarray:
    """Poses (..., K, 3) as body-only (..., 18, 3) or whole-body (..., 128, 3) ones: the body of a
    whole-body pose, or a body with its face and hands missing (all zero)."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if is_whole_body(kp) == whole_body:
        return kp
    if not whole_body:
        return kp[..., :NUM_KEYPOINTS, :]
    out = np.zeros((*kp.shape[:-2], NUM_WHOLE_BODY, 3), np.float32)
    out[..., :NUM_KEYPOINTS, :] = kp
    return out


def check_keypoints(keypoints, what: str = "keypoint track", *, track: bool | None = True,
                    dtype=np.float32) -> np.ndarray:
    """`keypoints` as an array (of `dtype`; None keeps its own), refused with a VidtransError naming
    `what` unless it is a track (frames, K, 3) (`track=True`), one pose (K, 3) (`track=False`),
    or either (`track=None`), with K = 18 (body) or 128 (whole body), of real numbers."""
    kp = np.asarray(keypoints)
    # Checked before any conversion: complex numbers would lose their imaginary part with a warning.
    if kp.dtype.kind not in "biuf":
        raise VidtransError(f"{what} holds {kp.dtype} values; expected real numbers (x, y in pixels, confidence)")
    ranks = {True: (3,), False: (2,), None: (2, 3)}[track]
    if kp.ndim not in ranks or kp.shape[-1] != 3 or kp.shape[-2] not in KEYPOINT_COUNTS:
        expected = {True: "(frames, K, 3)", False: "(K, 3)", None: "(K, 3) or (frames, K, 3)"}[track]
        raise VidtransError(f"{what} has shape {kp.shape}, expected {expected} keypoints with "
                            f"K = {NUM_KEYPOINTS} (COCO-18 body) or {NUM_WHOLE_BODY} (body, face and hands)")
    return kp if dtype is None else kp.astype(dtype, copy=False)


def check_keypoint_values(keypoints, what: str = "keypoint track",
                          frame_size: tuple[int, int] | None = None,
                          frame_names: list[str] | None = None) -> np.ndarray:
    """A track (frames, K, 3) from outside vidtrans (a file) as float32, refused with a VidtransError
    naming `what` unless it passes `check_keypoints` and holds what a detector gives: finite numbers,
    confidences from 0 (missing) to MAX_CONFIDENCE and, with `frame_size` (height, width), present
    points at most OFF_FRAME_LIMIT frame sizes outside the frame. The message names a frame by its
    place in the track, or by `frame_names` (a folder's files, one per frame) when given."""
    with np.errstate(over="ignore"):  # beyond float32's range: infinite, and refused as such below
        kp = check_keypoints(keypoints, what)
    confidence = kp[..., 2]
    problems = [(~np.isfinite(kp).all(axis=-1), "is {values}: give numbers (0, 0, 0 for a missing point)"),
                ((confidence < 0) | (confidence > MAX_CONFIDENCE),
                 f"has confidence {{confidence:g}}; confidences run from 0 (missing) to 1 (up to {MAX_CONFIDENCE:g} "
                 "is accepted): check that the numbers are x, y, confidence")]
    if frame_size is not None:
        height, width = frame_size
        reach = OFF_FRAME_LIMIT * np.array([width, height])
        outside = ((kp[..., :2] < -reach) | (kp[..., :2] > reach + [width, height])).any(axis=-1)
        problems.append((outside & (confidence > 0),
                         f"is at {{values}}, far outside the {width}x{height} frame: keypoints are pixels of the "
                         "video they were made from; extract them from this video"))
    for bad, problem in problems:
        if bad.any():
            frame, point = np.argwhere(bad)[0]
            values = "(" + ", ".join(f"{v:g}" for v in kp[frame, point]) + ")"
            where = frame_names[frame] if frame_names else f"frame {frame}"
            raise VidtransError(f"{what}: keypoint {point} of {where} "
                                + problem.format(values=values, confidence=confidence[frame, point]))
    return kp


# The largest frame side anywhere: keypoint files', detection's, pose maps' and cards' alike (a keypoint
# file of a larger frame is of no video `pose` detects in). Far past any video's (AV1's largest is 65536),
# and within what OpenCV draws in fixed point (`render`); a side beyond NumPy's integers (a file's 2^70)
# turned positions divided by it into Python objects that no NumPy function takes.
MAX_FRAME_SIDE = 1 << 20


def is_frame_side(value) -> bool:
    """A frame side in pixels: a number (a NumPy one too, not a bool) from 1 to MAX_FRAME_SIDE; not
    necessarily whole, as a frame's size scaled is not."""
    return is_finite_number(value) and 1 <= value <= MAX_FRAME_SIDE


def is_frame_size(size, whole: bool = False) -> bool:
    """Whether `size` is a frame's two sides (a tuple or list, in either order) in pixels, `whole`
    numbers of them where pixels are made or a file gives them."""
    return (isinstance(size, (tuple, list)) and len(size) == 2 and all(map(is_frame_side, size))
            and (not whole or all(isinstance(side, numbers.Integral) for side in size)))


def check_frame_size(name: str, size, whole: bool = False) -> None:
    """VidtransError unless `size`, the setting `name`, is a frame's (height, width) in pixels,
    `whole` numbers of them where pixels are made."""
    if not is_frame_size(size, whole):
        raise VidtransError(f"{name} must be (height, width) in {'whole ' if whole else ''}pixels, from 1 to "
                            f"{MAX_FRAME_SIDE} each, got {shown(size)}")


def missing_where_not_finite(keypoints: np.ndarray) -> np.ndarray:
    """Checked `keypoints` (..., K, 3) with every point holding NaN or infinity made missing (all
    zero), as the renderer takes them: such a point (a detector's NaN for what it did not find)
    spread through the keypoint filter (15 frames of NaN from one) and normalization (a whole frame)."""
    finite = np.isfinite(keypoints).all(axis=-1, keepdims=True)
    return keypoints if finite.all() else np.where(finite, keypoints, 0).astype(keypoints.dtype)


def check_min_confidence(min_confidence) -> None:
    """VidtransError unless `min_confidence`, below which a keypoint is missing, is a finite number,
    0 or more: a negative one takes missing points (0, 0, 0) for points at the frame's corner, NaN
    every point for missing."""
    if not (is_finite_number(min_confidence) and min_confidence >= 0):
        raise VidtransError(f"min_confidence must be a finite number, 0 or more, got {shown(min_confidence)}")
