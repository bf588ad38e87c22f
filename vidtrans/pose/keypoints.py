"""COCO-18 keypoints in OpenPose order, the 17 OpenPose limbs and OpenPose's colour palette.

Everything that draws, reads or maps keypoints uses these tables so that pose maps rendered by
vidtrans look like the OpenPose renders that upstream pose2person models were trained on.
A pose is a float32 array (18, 3) of x, y (pixels of its frame) and confidence (0 = missing).
Pixel coordinates follow OpenPose and cv2: the centre of pixel column c is x = c.
"""

from __future__ import annotations

import numpy as np

from vidtrans.errors import VidtransError

NUM_KEYPOINTS = 18

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


# FLIP_INDEX[i] is the keypoint that i becomes when the image is mirrored (right <-> left).
FLIP_INDEX: tuple[int, ...] = _flip_permutation()


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Keypoints of the horizontally mirrored frame: x -> width - 1 - x and left/right swapped.

    Works on one pose (18, 3) or a track (..., 18, 3); missing keypoints stay all-zero.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    out = kp[..., FLIP_INDEX, :].copy()
    present = out[..., 2] > 0
    # Pixel centres sit at integers, so column c mirrors to column width - 1 - c.
    out[..., 0] = np.where(present, width - 1 - out[..., 0], 0.0)
    return out


def has_person(keypoints: np.ndarray) -> np.ndarray:
    """Per pose of a track (..., 18, 3): whether any keypoint was found (a frame with nobody is all missing)."""
    return (np.asarray(keypoints)[..., 2] > 0).any(axis=-1)


def check_keypoints(keypoints, what: str = "keypoint track", *, track: bool | None = True,
                    dtype=np.float32) -> np.ndarray:
    """`keypoints` as an array (of `dtype`; None keeps its own), refused with a VidtransError naming
    `what` unless it is a track (frames, 18, 3) (`track=True`), one pose (18, 3) (`track=False`),
    or either (`track=None`)."""
    kp = np.asarray(keypoints, dtype=dtype)
    ranks = {True: (3,), False: (2,), None: (2, 3)}[track]
    if kp.ndim not in ranks or kp.shape[-2:] != (NUM_KEYPOINTS, 3):
        expected = {True: f"(frames, {NUM_KEYPOINTS}, 3)", False: f"({NUM_KEYPOINTS}, 3)",
                    None: f"({NUM_KEYPOINTS}, 3) or (frames, {NUM_KEYPOINTS}, 3)"}[track]
        raise VidtransError(f"{what} has shape {kp.shape}, expected {expected} COCO-18 keypoints")
    return kp
