"""Where viewers look: the person's box, the face square and the hand squares, from keypoints.

One definition for everything that weighs or scores parts of a frame (the end-to-end evaluation's
crops, training's face loss), so that "the face" means the same square everywhere. Boxes are
(x0, y0, x1, y1) in whole pixels, end-exclusive, clipped to the frame; None when the keypoints do not
show that part or it lies outside the frame.
"""

from __future__ import annotations

import numpy as np

from vidtrans.pose.keypoints import KEYPOINT_INDEX, check_keypoints, missing_where_not_finite

Box = tuple[int, int, int, int]

# Neck to the middle of the hips as a share of standing height: the anthropometric average, and
# the synthetic target's own proportion (synth.Look.torso_length). The torso is the body's least
# foreshortened length, so it gives the scale of a person whatever the arms and legs do.
TORSO_SHARE = 0.30
FACE_SHARE = 0.20  # side of the face square, as a share of body height
HAND_SHARE = 0.16  # side of a hand square
# A hand's centre lies beyond the wrist along the forearm (about a third of a hand length).
HAND_REACH = 0.04

_NOSE, _NECK = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["neck"]
_HIPS = (KEYPOINT_INDEX["r_hip"], KEYPOINT_INDEX["l_hip"])
_FACE = tuple(KEYPOINT_INDEX[n] for n in ("nose", "r_eye", "l_eye", "r_ear", "l_ear"))
_ARMS = ((KEYPOINT_INDEX["r_elbow"], KEYPOINT_INDEX["r_wrist"]), (KEYPOINT_INDEX["l_elbow"], KEYPOINT_INDEX["l_wrist"]))


# Farther off any frame than a frame reaches, and far from where sums of coordinates overflow: a
# point beyond is taken as here, where every box it makes is the same (clipped to the frame).
_FAR = 1e15


def _shown(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A checked pose (K, 3), in float64, and which of its points are present: a point at NaN or
    infinity is missing, as the renderer takes it, and one beyond _FAR is moved in to it, rather than
    a box no integer can hold (a float32's 3e38 less its negative overflows; an int64's wraps)."""
    kp = missing_where_not_finite(check_keypoints(keypoints, "pose", track=False, dtype=np.float64))
    kp = np.concatenate([np.clip(kp[:, :2], -_FAR, _FAR), kp[:, 2:]], axis=1)
    return kp, kp[:, 2] > 0


def body_height(keypoints: np.ndarray) -> float | None:
    """Standing height in pixels, from the torso; from the keypoints' extent without one; None
    when fewer than two keypoints are present."""
    kp, ok = _shown(keypoints)
    if ok[_NECK] and ok[list(_HIPS)].all():
        torso = float(np.hypot(*(kp[_NECK, :2] - kp[list(_HIPS), :2].mean(axis=0))))
        if torso > 1e-3:
            return torso / TORSO_SHARE
    if ok.sum() < 2:
        return None
    extent = kp[ok, :2].max(axis=0) - kp[ok, :2].min(axis=0)
    return float(extent.max()) or None


def _square(center: np.ndarray, side: float, height: int, width: int) -> Box | None:
    half = side / 2
    x0, y0 = int(np.floor(center[0] - half + 0.5)), int(np.floor(center[1] - half + 0.5))
    x1, y1 = x0 + int(round(side)), y0 + int(round(side))
    return _clip((x0, y0, x1, y1), height, width)


def _clip(box: tuple[int, int, int, int], height: int, width: int) -> Box | None:
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def person_box(keypoints: np.ndarray, height: int, width: int, margin: float = 0.08) -> Box | None:
    """The present keypoints' bounding box, grown by `margin` body heights on every side (and by a
    head above the eyes and ears, which are below the top of the head)."""
    kp, ok = _shown(keypoints)
    scale = body_height(kp)
    if scale is None:
        return None
    (x0, y0), (x1, y1) = kp[ok, :2].min(axis=0), kp[ok, :2].max(axis=0)
    pad = margin * scale
    top = pad + (0.1 * scale if ok[list(_FACE)].any() else 0.0)
    return _clip((int(np.floor(x0 - pad)), int(np.floor(y0 - top)), int(np.ceil(x1 + pad)) + 1,
                  int(np.ceil(y1 + pad)) + 1), height, width)


def face_box(keypoints: np.ndarray, height: int, width: int) -> Box | None:
    """A square around the nose (the face keypoints' mean without it), side FACE_SHARE of the body height."""
    kp, ok = _shown(keypoints)
    scale = body_height(kp)
    face = [i for i in _FACE if ok[i]]
    if scale is None or not face:
        return None
    center = kp[_NOSE, :2] if ok[_NOSE] else kp[face, :2].mean(axis=0)
    return _square(center, FACE_SHARE * scale, height, width)


def hand_boxes(keypoints: np.ndarray, height: int, width: int) -> list[Box]:
    """A square per visible wrist (right first), centred a little beyond it along the forearm."""
    kp, ok = _shown(keypoints)
    scale = body_height(kp)
    boxes = []
    for elbow, wrist in _ARMS:
        if scale is None or not ok[wrist]:
            continue
        center = kp[wrist, :2].astype(np.float64)
        if ok[elbow]:
            forearm = center - kp[elbow, :2]
            length = float(np.hypot(*forearm))
            if length > 1e-3:
                center = center + forearm / length * HAND_REACH * scale
        box = _square(center, HAND_SHARE * scale, height, width)
        if box is not None:
            boxes.append(box)
    return boxes
