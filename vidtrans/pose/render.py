"""Draw poses as OpenPose-style pose maps (RGB uint8), the input of pose2person models.

The drawing follows OpenPose's `draw_bodypose`: filled joint circles first, then each limb as an
ellipse whose long axis runs from joint to joint, blended over what is already drawn at 0.6 alpha.
Two deliberate differences: coordinates are kept sub-pixel and edges anti-aliased, so a slowly
moving joint moves the drawing smoothly instead of in 1 px jumps (less flicker in the generated
video); and sizes scale with the frame height, so a 256 px and a 1024 px render look alike.

Style version 2 ("openpose_full") adds the face and hands of whole-body poses the way the
ControlNet/DWPose annotators (controlnet_aux) draw them, over the body: each hand's 20 bones as
lines in hues spread around the colour wheel with blue dots on its joints, then the face points
as white dots.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from vidtrans.errors import VidtransError, check_version
from vidtrans.options import is_finite_number, is_int, shown
from vidtrans.pose.keypoints import (
    COLORS, FACE, HAND_EDGES, LEFT_HAND, LIMBS, NUM_KEYPOINTS, RIGHT_HAND, check_frame_size, check_keypoints,
    DEFAULT_MIN_CONFIDENCE, check_min_confidence, is_whole_body,
)

# cv2 takes sub-pixel coordinates as fixed-point integers with this many fractional bits.
_SHIFT = 4
_ONE = 1 << _SHIFT
# Points on each limb ellipse; enough for a smooth outline at 4K, cheap at 256 px.
_ELLIPSE_POINTS = 24
_ELLIPSE_ANGLES = np.linspace(0.0, 2.0 * math.pi, _ELLIPSE_POINTS, endpoint=False)
_COS, _SIN = np.cos(_ELLIPSE_ANGLES), np.sin(_ELLIPSE_ANGLES)
# Coordinates further than this many pixels off the frame are brought in before drawing (limbs and
# bones clipped exactly, dots that cannot reach the frame left out): cv2 takes them as 32-bit
# fixed-point numbers (_SHIFT fractional bits), which overflow from 2**27 pixels.
_FAR = float(1 << 20)

# controlnet_aux's `draw_handpose` colours: bone i in hue i / 20 at full saturation and value.
HAND_EDGE_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    tuple(round(255 * c) for c in colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0)) for i in range(len(HAND_EDGES)))
HAND_JOINT_COLOR = (0, 0, 255)
FACE_POINT_COLOR = (255, 255, 255)
# Face and hand dots and lines are a few pixels at 512 px; below this size (in pixels) they would
# fade into anti-aliasing on small renders, so they stop shrinking here.
_MIN_PART_SIZE = 1.0
_WHOLE_BODY_FIELDS = ("face_point_radius", "hand_line_width", "hand_joint_radius")
_SIZE_FIELDS = ("limb_width", "joint_radius", *_WHOLE_BODY_FIELDS)
_VERSIONS = (1, 2)
# What a card's pose style gets for a value the drawing cannot use.
_CARD_FIX = "fix the model card or re-export the checkpoint"


@dataclass(frozen=True)
class PoseStyle:
    """How pose maps are drawn; stored in model cards so inference draws like training did.

    Sizes are in pixels at `reference_height` and scale linearly with the frame height; the
    defaults are OpenPose's (stickwidth 4, circle radius 4) at 512 px, the render size of the
    common ControlNet/OpenPose pose maps. `limb_width` is the full thickness of a limb (OpenPose's
    ellipse half-axis `stickwidth` is half of it).

    Version 2 also draws the face and hands of whole-body poses, sized by the last three fields
    (controlnet_aux's sizes at 512 px by default; `hand_line_width` is rounded to whole pixels,
    as cv2 draws lines). A version-1 style ignores them and its dict leaves them out, so older
    vidtrans versions still read it.
    """

    version: int = 1
    reference_height: int = 512
    limb_width: float = 8.0
    joint_radius: float = 4.0
    limb_alpha: float = 0.6
    draw_joints: bool = True
    antialias: bool = True
    background: tuple[int, int, int] = (0, 0, 0)
    face_point_radius: float = 3.0
    hand_line_width: float = 2.0
    hand_joint_radius: float = 4.0

    def __post_init__(self) -> None:
        """VidtransError naming the first field the drawing cannot use (NaN or negative sizes would
        reach OpenCV as nonsense coordinates)."""
        background = self.background
        problems = {
            "version": None if is_int(self.version) and self.version in _VERSIONS else (
                f"must be {' or '.join(map(str, _VERSIONS))}"),
            "reference_height": None if is_int(self.reference_height) and self.reference_height >= 1 else (
                "must be a whole number of pixels, 1 or more"),
            **{name: _size_problem(getattr(self, name), self.reference_height) for name in _SIZE_FIELDS},
            "limb_alpha": None if is_finite_number(self.limb_alpha) and 0 <= self.limb_alpha <= 1 else (
                "must be a number from 0 to 1"),
            "draw_joints": None if isinstance(self.draw_joints, bool) else "must be true or false",
            "antialias": None if isinstance(self.antialias, bool) else "must be true or false",
            "background": None if isinstance(background, (tuple, list)) and len(background) == 3
            and all(is_int(c) and 0 <= c <= 255 for c in background)
            else "must be an RGB colour, 3 whole numbers from 0 to 255",
        }
        for name, problem in problems.items():
            if problem:
                raise VidtransError(f"{name} {problem}, got {shown(getattr(self, name))}")
        object.__setattr__(self, "background", tuple(background))  # a card holds it as a list

    @property
    def whole_body(self) -> bool:
        """Whether this style draws the face and hands of whole-body poses."""
        return self.version >= 2

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict for a model card."""
        d = asdict(self)
        d["background"] = list(self.background)
        if not self.whole_body:
            for name in _WHOLE_BODY_FIELDS:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "PoseStyle":
        """Inverse of `to_dict`; refuses versions and fields this vidtrans does not know, and values
        it cannot draw with."""
        check_version("pose style", data.get("version"), _VERSIONS, _CARD_FIX)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise VidtransError(f"pose style has unknown fields {unknown} (upgrade vidtrans to read this model card)")
        try:
            return cls(**data)
        except VidtransError as e:
            raise VidtransError(f"{e}; {_CARD_FIX}") from None

    @classmethod
    def for_card(cls, card) -> "PoseStyle":
        """The style a model card's model was trained on; OpenPose's look when the card names none."""
        return cls.from_dict(card.pose_style) if card.pose_style else cls()


def _size_problem(size, reference_height) -> str | None:
    """What is wrong with a size of a PoseStyle (pixels at reference_height), or None."""
    if not (is_finite_number(size) and size >= 0):
        return "must be a finite number, 0 or more"
    # Larger covers the whole frame, and far larger no longer fits OpenCV's integers.
    if is_int(reference_height) and size > reference_height:
        return f"must be at most reference_height ({reference_height}), being pixels at that frame height"
    return None


def limb_width(height: int, style: PoseStyle = PoseStyle()) -> float:
    """The thickness in pixels of the limbs `style` draws on a frame `height` pixels tall."""
    return max(style.limb_width * (height / style.reference_height), 1.0)


def face_dot_radius(height: int, style: PoseStyle = PoseStyle(version=2)) -> float:
    """The radius in pixels of the face dots `style` draws on a frame `height` pixels tall."""
    return max(style.face_point_radius * (height / style.reference_height), _MIN_PART_SIZE)


def _check_drawing(height, width, style, min_confidence) -> None:
    """VidtransError naming the first setting of a render that no pose map can be drawn with (a
    negative min_confidence would draw missing points at 0, 0; NaN would draw nothing)."""
    check_frame_size("pose map size", (height, width), whole=True)
    if not isinstance(style, PoseStyle):
        raise VidtransError(f"style must be a PoseStyle, got {shown(style)}")
    check_min_confidence(min_confidence)


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
    """Pose map (height, width, 3) uint8 RGB of one pose (K, 3) in pixels of that frame size.

    Keypoints with confidence <= min_confidence are missing: they draw nothing, nor does any limb
    or bone touching them. The face and hands of a whole-body pose (K = 128) are drawn only by a
    whole-body style; the body alone draws the same with either style.
    """
    _check_drawing(height, width, style, min_confidence)
    canvas = blank_maps(1, height, width, style)[0]
    draw_pose(canvas, keypoints, style, min_confidence)
    return canvas


def draw_pose(canvas: np.ndarray, keypoints: np.ndarray, style: PoseStyle = PoseStyle(),
              min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
    """Draws one pose (K, 3) onto `canvas` (height, width, 3), which holds the background."""
    kp = check_keypoints(keypoints, "pose", track=False)
    if not style.whole_body:
        kp = kp[:NUM_KEYPOINTS]
    present = (kp[:, 2] > min_confidence) & np.isfinite(kp[:, :2]).all(axis=1)
    if not present.any():
        return
    scale = canvas.shape[0] / style.reference_height
    line_type = cv2.LINE_AA if style.antialias else cv2.LINE_8
    _draw_body(canvas, kp[:NUM_KEYPOINTS], present[:NUM_KEYPOINTS], style, scale, line_type)
    if is_whole_body(kp):
        _draw_hands_and_face(canvas, kp, present, style, scale, line_type)


def _draw_body(canvas: np.ndarray, kp: np.ndarray, present: np.ndarray, style: PoseStyle, scale: float,
               line_type: int) -> None:
    height, width = canvas.shape[:2]
    half_width = limb_width(height, style) / 2.0
    radius = max(style.joint_radius * scale, 0.5)

    if style.draw_joints:
        for i in np.flatnonzero(present):
            if _off_canvas(kp[i, :2], radius, height, width):
                continue
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
        polygon = polygon - (x0, y0)
        if np.abs(polygon).max() > _FAR:
            polygon = _clip_polygon(polygon, x1 - x0, y1 - y0)
            if len(polygon) < 3:  # it passes the frame by
                continue
        cv2.fillConvexPoly(layer, _to_fixed(polygon), COLORS[limb_index], line_type, _SHIFT)
        canvas[y0:y1, x0:x1] = cv2.addWeighted(roi, 1.0 - alpha, layer, alpha, 0.0)


def _draw_hands_and_face(canvas: np.ndarray, kp: np.ndarray, present: np.ndarray, style: PoseStyle, scale: float,
                         line_type: int) -> None:
    """Draws the hands and then the face of a whole-body pose (128, 3) as controlnet_aux does."""
    # Converting all points at once keeps the ~150 draw calls per pose cheap; missing points may
    # hold NaN, which has no fixed-point value, and points far off the frame none that fits.
    height, width = canvas.shape[:2]
    far = present & (np.abs(kp[:, :2]) > _FAR).any(axis=1)
    points = [tuple(p) for p in _to_fixed(np.where(present[:, None] & ~far[:, None], kp[:, :2], 0.0)).tolist()]
    line_width = round(max(style.hand_line_width * scale, _MIN_PART_SIZE))
    joint_radius = round(max(style.hand_joint_radius * scale, _MIN_PART_SIZE) * _ONE)
    face_radius = round(face_dot_radius(height, style) * _ONE)

    def dots(indices, radius: int, colour: tuple[int, int, int]) -> None:
        for i in indices:
            if present[i] and not far[i]:  # a dot that far off cannot reach the frame
                cv2.circle(canvas, points[i], radius, colour, -1, line_type, _SHIFT)

    for hand in (LEFT_HAND, RIGHT_HAND):
        for (a, b), colour in zip(HAND_EDGES, HAND_EDGE_COLORS):
            a, b = hand.start + a, hand.start + b
            if present[a] and present[b]:
                ends = (points[a], points[b])
                if far[a] or far[b]:
                    margin = line_width + 2
                    clipped = _clip_polygon(kp[[a, b], :2].astype(np.float64) + margin, width + 2 * margin,
                                            height + 2 * margin)
                    if len(clipped) < 2:
                        continue
                    ends = [tuple(p) for p in _to_fixed(clipped[[0, -1]] - margin).tolist()]
                cv2.line(canvas, *ends, colour, line_width, line_type, _SHIFT)
        dots(range(hand.start, hand.stop), joint_radius, HAND_JOINT_COLOR)
    dots(range(FACE.start, FACE.stop), face_radius, FACE_POINT_COLOR)


def _off_canvas(centre: np.ndarray, radius: float, height: int, width: int) -> bool:
    """Whether a dot of `radius` at `centre` lies wholly off a height x width canvas."""
    reach = radius + 2.0  # and its anti-aliasing
    return bool(centre[0] < -reach or centre[1] < -reach or centre[0] > width - 1 + reach
                or centre[1] > height - 1 + reach)


def _clip_polygon(polygon: np.ndarray, width: float, height: float) -> np.ndarray:
    """A convex polygon (n, 2) (or a segment, n = 2) cut to the box from -2 to width + 2 by -2 to
    height + 2 (Sutherland-Hodgman): what lies inside is unchanged, and the cut edges lie off a
    width x height canvas, beyond its anti-aliasing."""
    points = [tuple(p) for p in np.asarray(polygon, np.float64)]
    closed = len(points) > 2
    for axis, limit, keep_below in ((0, -2.0, False), (0, width + 2.0, True), (1, -2.0, False),
                                    (1, height + 2.0, True)):
        def inside(p) -> bool:
            return p[axis] <= limit if keep_below else p[axis] >= limit

        def crossing(p, q) -> tuple[float, float]:
            t = (limit - p[axis]) / (q[axis] - p[axis])
            return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))

        out = []
        pairs = zip(points, points[1:] + points[:1]) if closed else zip(points[:-1], points[1:])
        for p, q in pairs:
            if inside(p):
                out.append(p)
                if not inside(q):
                    out.append(crossing(p, q))
            elif inside(q):
                out.append(crossing(p, q))
        if not closed and points and inside(points[-1]):
            out.append(points[-1])
        points = out
        if not points:
            break
    return np.array(points, np.float64).reshape(-1, 2)


def render_poses(track: np.ndarray, height: int, width: int, style: PoseStyle = PoseStyle(),
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> np.ndarray:
    """Pose maps (T, height, width, 3) uint8 RGB of a keypoint track (T, K, 3)."""
    _check_drawing(height, width, style, min_confidence)
    track = check_keypoints(track)
    out = blank_maps(len(track), height, width, style)
    for canvas, pose in zip(out, track):
        draw_pose(canvas, pose, style, min_confidence)
    return out
