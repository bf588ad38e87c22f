"""Draw COCO-18 poses as OpenPose-style pose maps (RGB uint8), the input of pose2person models.

The drawing follows OpenPose's `draw_bodypose`: filled joint circles first, then each limb as an
ellipse whose long axis runs from joint to joint, blended over what is already drawn at 0.6 alpha.
Two deliberate differences: coordinates are kept sub-pixel and edges anti-aliased, so a slowly
moving joint moves the drawing smoothly instead of in 1 px jumps (less flicker in the generated
video); and sizes scale with the frame height, so a 256 px and a 1024 px render look alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.pose.keypoints import COLORS, LIMBS, check_keypoints

# OpenPose's own --render_threshold: keypoints it reports below this are noise.
DEFAULT_MIN_CONFIDENCE = 0.05

# cv2 takes sub-pixel coordinates as fixed-point integers with this many fractional bits.
_SHIFT = 4
_ONE = 1 << _SHIFT
# Points on each limb ellipse; enough for a smooth outline at 4K, cheap at 256 px.
_ELLIPSE_POINTS = 24
_ELLIPSE_ANGLES = np.linspace(0.0, 2.0 * math.pi, _ELLIPSE_POINTS, endpoint=False)
_COS, _SIN = np.cos(_ELLIPSE_ANGLES), np.sin(_ELLIPSE_ANGLES)


@dataclass(frozen=True)
class PoseStyle:
    """How pose maps are drawn; stored in model cards so inference draws like training did.

    Sizes are in pixels at `reference_height` and scale linearly with the frame height; the
    defaults are OpenPose's (stickwidth 4, circle radius 4) at 512 px, the render size of the
    common ControlNet/OpenPose pose maps. `limb_width` is the full thickness of a limb (OpenPose's
    ellipse half-axis `stickwidth` is half of it).
    """

    version: int = 1
    reference_height: int = 512
    limb_width: float = 8.0
    joint_radius: float = 4.0
    limb_alpha: float = 0.6
    draw_joints: bool = True
    antialias: bool = True
    background: tuple[int, int, int] = (0, 0, 0)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict for a model card."""
        d = asdict(self)
        d["background"] = list(self.background)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "PoseStyle":
        """Inverse of `to_dict`; refuses versions and fields this vidtrans does not know."""
        version = data.get("version")
        if version != 1:
            raise VidtransError(f"pose style version {version!r} is not supported (upgrade vidtrans to read this model card)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VidtransError(f"pose style has unknown fields {unknown} (upgrade vidtrans to read this model card)")
        kwargs = dict(data)
        if "background" in kwargs:
            kwargs["background"] = tuple(int(c) for c in kwargs["background"])
        return cls(**kwargs)

    @classmethod
    def for_card(cls, card) -> "PoseStyle":
        """The style a model card's model was trained on; OpenPose's look when the card names none."""
        return cls.from_dict(card.pose_style) if card.pose_style else cls()


def _to_fixed(points: np.ndarray) -> np.ndarray:
    return np.round(points * _ONE).astype(np.int32)


def blank_maps(count: int, height: int, width: int, style: PoseStyle = PoseStyle()) -> np.ndarray:
    """(count, height, width, 3) uint8 frames of the style's background."""
    # Zeros are nearly free (the pages are only mapped when drawn on); broadcast-filling costs
    # ~4 ms per 720p frame, and black is the usual background.
    if tuple(style.background) == (0, 0, 0):
        return np.zeros((count, height, width, 3), dtype=np.uint8)
    return np.tile(np.asarray(style.background, dtype=np.uint8), (count, height, width, 1))


def render_pose(keypoints: np.ndarray, height: int, width: int, style: PoseStyle = PoseStyle(),
                min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> np.ndarray:
    """Pose map (height, width, 3) uint8 RGB of one pose (18, 3) in pixels of that frame size.

    Keypoints with confidence <= min_confidence are missing: they draw nothing, nor does any limb
    touching them.
    """
    canvas = blank_maps(1, height, width, style)[0]
    draw_pose(canvas, keypoints, style, min_confidence)
    return canvas


def draw_pose(canvas: np.ndarray, keypoints: np.ndarray, style: PoseStyle = PoseStyle(),
              min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
    """Draws one pose (18, 3) onto `canvas` (height, width, 3), which holds the background."""
    kp = check_keypoints(keypoints, "pose", track=False)
    height, width = canvas.shape[:2]
    present = (kp[:, 2] > min_confidence) & np.isfinite(kp[:, :2]).all(axis=1)
    if not present.any():
        return

    scale = height / style.reference_height
    half_width = max(style.limb_width * scale / 2.0, 0.5)
    radius = max(style.joint_radius * scale, 0.5)
    line_type = cv2.LINE_AA if style.antialias else cv2.LINE_8

    if style.draw_joints:
        for i in np.flatnonzero(present):
            centre = tuple(int(v) for v in _to_fixed(kp[i, :2]))
            cv2.circle(canvas, centre, int(round(radius * _ONE)), COLORS[i], -1, line_type, _SHIFT)

    alpha = style.limb_alpha
    for limb_index, (a, b) in enumerate(LIMBS):
        if not (present[a] and present[b]):
            continue
        pa, pb = kp[a, :2].astype(np.float64), kp[b, :2].astype(np.float64)
        centre = (pa + pb) / 2.0
        half_length = float(np.hypot(*(pb - pa))) / 2.0
        angle = math.atan2(pb[1] - pa[1], pb[0] - pa[0])
        ca, sa = math.cos(angle), math.sin(angle)
        ex, ey = half_length * _COS, half_width * _SIN
        polygon = np.stack([centre[0] + ex * ca - ey * sa, centre[1] + ex * sa + ey * ca], axis=1)

        # Blend only inside the limb's bounding box: blending the whole frame 17 times, as
        # OpenPose does, costs ~1 ms per limb at 720p and changes nothing outside the ellipse.
        x0 = max(int(math.floor(polygon[:, 0].min())) - 1, 0)
        y0 = max(int(math.floor(polygon[:, 1].min())) - 1, 0)
        x1 = min(int(math.ceil(polygon[:, 0].max())) + 2, width)
        y1 = min(int(math.ceil(polygon[:, 1].max())) + 2, height)
        if x0 >= x1 or y0 >= y1:
            continue
        roi = canvas[y0:y1, x0:x1]
        layer = roi.copy()
        cv2.fillConvexPoly(layer, _to_fixed(polygon - (x0, y0)), COLORS[limb_index], line_type, _SHIFT)
        canvas[y0:y1, x0:x1] = cv2.addWeighted(roi, 1.0 - alpha, layer, alpha, 0.0)


def render_poses(track: np.ndarray, height: int, width: int, style: PoseStyle = PoseStyle(),
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> np.ndarray:
    """Pose maps (T, height, width, 3) uint8 RGB of a keypoint track (T, 18, 3)."""
    track = check_keypoints(track)
    out = blank_maps(len(track), height, width, style)
    for canvas, pose in zip(out, track):
        draw_pose(canvas, pose, style, min_confidence)
    return out
