"""A procedural dancer: a 2D character rendered from COCO-18 keypoints, and the dances it performs.

The default pose2person model needs a target person that can be shipped, so we draw one. Because
we draw it, the ground-truth image exists for any pose, which is what training and the held-out
SSIM/PSNR evaluation use. The character is deliberately clean (flat colours, banded shading, no
noise) so that a pix2pix generator trained on a CPU can learn it at 256x256.

All lengths of a `Look` are fractions of the body height (soles to the top of the head); the
renderer recovers the body height in pixels from the neck-to-hips distance of the keypoints.
The character is drawn from its body keypoints alone; its face and hand points (a whole-body pose)
are read off the same face and hand geometry the renderer draws, so they always agree with the image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.pose.keypoints import (
    FACE,
    KEYPOINT_INDEX,
    LEFT_HAND,
    NUM_FACE,
    NUM_HAND,
    NUM_KEYPOINTS,
    NUM_WHOLE_BODY,
    RIGHT_HAND,
    check_keypoints,
)

RGB = tuple[int, int, int]

NOSE, NECK = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["neck"]
R_SHOULDER, R_ELBOW, R_WRIST = (KEYPOINT_INDEX[n] for n in ("r_shoulder", "r_elbow", "r_wrist"))
L_SHOULDER, L_ELBOW, L_WRIST = (KEYPOINT_INDEX[n] for n in ("l_shoulder", "l_elbow", "l_wrist"))
R_HIP, R_KNEE, R_ANKLE = (KEYPOINT_INDEX[n] for n in ("r_hip", "r_knee", "r_ankle"))
L_HIP, L_KNEE, L_ANKLE = (KEYPOINT_INDEX[n] for n in ("l_hip", "l_knee", "l_ankle"))
R_EYE, L_EYE, R_EAR, L_EAR = (KEYPOINT_INDEX[n] for n in ("r_eye", "l_eye", "r_ear", "l_ear"))


@dataclass(frozen=True)
class Look:
    """Proportions (fractions of body height) and colours (RGB) of a character and its room."""

    name: str
    stature: float = 1.0  # body height relative to the default framing (0.66 of the frame height)
    head_radius: float = 0.072
    neck_length: float = 0.075  # neck keypoint to the bottom of the head
    torso_length: float = 0.30  # neck keypoint to the middle of the hip keypoints
    shoulder_width: float = 0.23
    hip_width: float = 0.14
    upper_arm: float = 0.17
    forearm: float = 0.15
    thigh: float = 0.24
    shin: float = 0.23
    ankle_height: float = 0.035
    arm_width: float = 0.068
    forearm_width: float = 0.056
    hand_length: float = 0.06
    thigh_width: float = 0.1
    shin_width: float = 0.075
    neck_width: float = 0.065
    skin: RGB = (224, 172, 135)
    lips: RGB = (190, 100, 95)
    eyes: RGB = (60, 40, 30)
    hair: RGB = (70, 45, 30)
    hair_style: str = "short"  # "short" or "long"
    shirt: RGB = (200, 55, 50)
    shirt_pattern: str = "stripes"  # "stripes", "logo" or "none"
    pattern: RGB = (245, 230, 200)
    sleeve: float = 0.6  # arm covered by the sleeve: 1 = to the elbow, 2 = to the wrist
    trousers: RGB = (45, 60, 100)
    shoes: RGB = (40, 40, 45)
    soles: RGB = (235, 235, 230)
    wall: RGB = (205, 200, 188)
    floor: RGB = (150, 118, 88)
    horizon: float = 0.55  # where the floor meets the wall, as a fraction of the frame height


# The pose2person target: medium build, short dark hair, red striped T-shirt, jeans.
TARGET_LOOK = Look(name="target")

# A visibly different source dancer: taller and slimmer, longer legs, long black hair, yellow
# long-sleeved top with a chest logo, green trousers, red shoes, in a blue-grey room.
SOURCE_LOOK = Look(
    name="source", stature=1.06, head_radius=0.066, neck_length=0.075, torso_length=0.285,
    shoulder_width=0.205, hip_width=0.13, upper_arm=0.18, forearm=0.16, thigh=0.255, shin=0.25,
    arm_width=0.054, forearm_width=0.044, hand_length=0.055, thigh_width=0.078, shin_width=0.058,
    neck_width=0.052, skin=(141, 95, 60), lips=(120, 60, 55), eyes=(25, 20, 20), hair=(25, 22, 25),
    hair_style="long", shirt=(235, 190, 50), shirt_pattern="logo", pattern=(40, 70, 140),
    sleeve=1.85, trousers=(70, 100, 70), shoes=(190, 40, 40), soles=(245, 245, 245),
    wall=(125, 145, 170), floor=(95, 95, 102), horizon=0.5,
)

_LIGHT = np.array([-0.6, -0.8])  # light comes from the upper left
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn with 1/16 pixel precision
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA


def _shade(color: RGB, factor: float) -> RGB:
    r, g, b = (int(min(255, max(0, round(c * factor)))) for c in color)
    return r, g, b


def _fx(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 1e-6 else np.array([0.0, -1.0])


def _poly(img: np.ndarray, points: list[np.ndarray], color: RGB) -> None:
    pts = np.round(np.array(points, dtype=np.float64) * _ONE).astype(np.int32)
    cv2.fillPoly(img, [pts], color, _AA, _SHIFT)


def _disc(img: np.ndarray, center: np.ndarray, radius: float, color: RGB) -> None:
    cv2.circle(img, _fx(center), max(1, int(round(radius * _ONE))), color, -1, _AA, _SHIFT)


def _ellipse(img: np.ndarray, center: np.ndarray, axes: tuple[float, float], angle_deg: float,
             color: RGB) -> None:
    ax = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(img, _fx(center), ax, angle_deg, 0, 360, color, -1, _AA, _SHIFT)


def _capsule(img: np.ndarray, p: np.ndarray, q: np.ndarray, radius: float, color: RGB) -> None:
    n = np.array([-(q - p)[1], (q - p)[0]])
    n = _unit(n) * radius if np.hypot(*n) > 1e-6 else np.zeros(2)
    _poly(img, [p + n, q + n, q - n, p - n], color)
    _disc(img, p, radius, color)
    _disc(img, q, radius, color)


def _shaded_capsule(img: np.ndarray, p: np.ndarray, q: np.ndarray, radius: float,
                    color: RGB) -> None:
    """A limb lit from the upper left: dark rim, base tone shifted to the light, a highlight."""
    n = _unit(np.array([-(q - p)[1], (q - p)[0]]))
    toward_light = n * float(n @ _LIGHT)
    _capsule(img, p, q, radius, _shade(color, 0.7))
    off = toward_light * radius * 0.18
    _capsule(img, p + off, q + off, radius * 0.8, color)
    off = toward_light * radius * 0.38
    _capsule(img, p + off, q + off, radius * 0.32, _shade(color, 1.15))


@functools.lru_cache(maxsize=8)
def _background(height: int, width: int, look: Look) -> np.ndarray:
    """The empty room: a wall with a skirting board, and a floor lighter towards the camera."""
    img = np.empty((height, width, 3), np.uint8)
    horizon = int(round(look.horizon * height))
    wall_shade = np.linspace(0.9, 1.0, max(horizon, 1))[:, None, None]
    img[:horizon] = np.clip(np.array(look.wall) * wall_shade, 0, 255).astype(np.uint8)
    floor_shade = np.linspace(0.82, 1.05, max(height - horizon, 1))[:, None, None]
    img[horizon:] = np.clip(np.array(look.floor) * floor_shade, 0, 255).astype(np.uint8)
    board = max(1, round(0.018 * height))
    img[max(0, horizon - board):horizon] = _shade(look.wall, 0.72)
    img.flags.writeable = False
    return img


class _Pose:
    """Keypoints plus what the renderer derives from them: scale, head frame, facing."""

    def __init__(self, keypoints: np.ndarray, look: Look) -> None:
        kp = np.asarray(keypoints, dtype=np.float64)[:NUM_KEYPOINTS]  # face and hands follow the body
        self.xy = kp[:, :2]
        self.ok = kp[:, 2] > 0
        self.look = look
        self.scale = self._body_height()

    def has(self, *idx: int) -> bool:
        return all(self.ok[i] for i in idx)

    def p(self, i: int) -> np.ndarray:
        return self.xy[i]

    def _body_height(self) -> float:
        """Pixels per body height; the torso is never foreshortened by our dances, limbs may be."""
        lk = self.look
        if self.has(NECK, R_HIP, L_HIP):
            torso = np.hypot(*(self.p(NECK) - (self.p(R_HIP) + self.p(L_HIP)) / 2))
            if torso > 1e-3:
                return float(torso / lk.torso_length)
        bones = [(R_SHOULDER, R_ELBOW, lk.upper_arm), (L_SHOULDER, L_ELBOW, lk.upper_arm),
                 (R_ELBOW, R_WRIST, lk.forearm), (L_ELBOW, L_WRIST, lk.forearm),
                 (R_HIP, R_KNEE, lk.thigh), (L_HIP, L_KNEE, lk.thigh),
                 (R_KNEE, R_ANKLE, lk.shin), (L_KNEE, L_ANKLE, lk.shin),
                 (R_SHOULDER, L_SHOULDER, lk.shoulder_width)]
        estimates = [np.hypot(*(self.p(a) - self.p(b))) / length
                     for a, b, length in bones if self.has(a, b)]
        return float(max(estimates)) if estimates else 1.0

    def torso_up(self) -> np.ndarray:
        if self.has(NECK, R_HIP, L_HIP):
            return _unit(self.p(NECK) - (self.p(R_HIP) + self.p(L_HIP)) / 2)
        return np.array([0.0, -1.0])

    def head_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
        """Head centre, its right and down axes, and the facing s = sideways nose offset / radius.

        s < 0 means the face is turned towards the image left (the person's right).
        None when no face keypoint is present.
        """
        face = [i for i in (NOSE, R_EYE, L_EYE, R_EAR, L_EAR) if self.ok[i]]
        if not face:
            return None
        r = self.look.head_radius * self.scale
        if self.has(R_EYE, L_EYE):
            right = _unit(self.p(L_EYE) - self.p(R_EYE))
            up = np.array([right[1], -right[0]])
        else:
            up = self.torso_up()
            right = np.array([-up[1], up[0]])
        down = -up
        if self.ok[NECK]:
            center = self.p(NECK) + up * (self.look.neck_length * self.scale + r)
        else:
            center = np.mean([self.p(i) for i in face], axis=0) - down * 0.05 * r
        if self.ok[NOSE]:
            s = float((self.p(NOSE) - center) @ right) / (1.05 * r)
        elif self.has(R_EYE, L_EYE):
            s = float(((self.p(R_EYE) + self.p(L_EYE)) / 2 - center) @ right) / (0.95 * r * 0.8776)
        else:
            s = 0.0
        return center, right, down, float(np.clip(s, -1.0, 1.0))

    def far_side(self, facing: float) -> str | None:
        """'r' or 'l' when the body is turned enough for that side to pass behind the torso."""
        if not self.has(R_SHOULDER, L_SHOULDER):
            return None
        width = np.hypot(*(self.p(L_SHOULDER) - self.p(R_SHOULDER)))
        if width > 0.8 * self.look.shoulder_width * self.scale or abs(facing) < 0.15:
            return None
        return "r" if facing < 0 else "l"


def render_person(keypoints: np.ndarray, height: int, width: int,
                  look: Look = TARGET_LOOK) -> np.ndarray:
    """Draw the character of `look` in the pose `keypoints` (18, 3) in its room.

    A whole-body pose (128, 3) is drawn from its body alone: face and hands follow the body, so
    the same body gives the same pixels. Returns a uint8 RGB frame (height, width, 3).
    Deterministic; parts whose keypoints are missing (confidence 0) are not drawn.
    """
    kp = check_keypoints(keypoints, "pose", track=False, dtype=None)
    if height < 1 or width < 1:
        raise VidtransError(f"cannot render a person into {width}x{height}: pass a positive frame size")
    pose = _Pose(kp, look)
    img = _background(height, width, look).copy()
    head = pose.head_frame()
    facing = head[3] if head is not None else 0.0
    far = pose.far_side(facing)
    _draw_shadow(img, pose)
    if head is not None and look.hair_style == "long":
        _draw_long_hair(img, pose, head)
    leg_order = ("l", "r") if far == "l" else ("r", "l")
    for side in leg_order:
        _draw_leg(img, pose, side)
    if far is not None:
        _draw_arm(img, pose, far)
    _draw_pelvis(img, pose)
    _draw_torso(img, pose)
    if head is not None:
        _draw_neck_and_head(img, pose, head)
    for side in ("r", "l"):
        if side != far:
            _draw_arm(img, pose, side)
    return img


def _draw_shadow(img: np.ndarray, pose: _Pose) -> None:
    """A soft contact shadow on the floor, under the lowest foot, spanning both feet."""
    ankles = [pose.p(i) for i in (R_ANKLE, L_ANKLE) if pose.ok[i]]
    if not ankles:
        return
    s = pose.scale
    floor_y = max(a[1] for a in ankles) + pose.look.ankle_height * s
    xs = [a[0] for a in ankles]
    cx = (min(xs) + max(xs)) / 2
    half_w = (max(xs) - min(xs)) / 2 + 0.11 * s
    half_h = 0.028 * s
    sigma = max(0.8, 0.015 * s)
    pad = 3 * sigma
    h, w = img.shape[:2]
    x0, x1 = int(max(0, cx - half_w - pad)), int(min(w, cx + half_w + pad + 1))
    y0, y1 = int(max(0, floor_y - half_h - pad)), int(min(h, floor_y + half_h + pad + 1))
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    _ellipse(mask, np.array([cx - x0, floor_y - y0]), (half_w, half_h), 0.0, (1.0, 1.0, 1.0))
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * (1.0 - 0.45 * mask[..., None]) + 0.5).astype(np.uint8)


def _draw_leg(img: np.ndarray, pose: _Pose, side: str) -> None:
    lk, s = pose.look, pose.scale
    hip, knee, ankle = (R_HIP, R_KNEE, R_ANKLE) if side == "r" else (L_HIP, L_KNEE, L_ANKLE)
    if pose.has(hip, knee):
        _shaded_capsule(img, pose.p(hip), pose.p(knee), lk.thigh_width * s / 2, lk.trousers)
    if pose.has(knee, ankle):
        _shaded_capsule(img, pose.p(knee), pose.p(ankle), lk.shin_width * s / 2, lk.trousers)
    if pose.ok[ankle]:
        outward = -1.0 if side == "r" else 1.0
        center = pose.p(ankle) + np.array([outward * 0.012, 0.017]) * s
        _ellipse(img, center + np.array([0, 0.006]) * s, (0.05 * s, 0.021 * s), 0, lk.soles)
        _ellipse(img, center, (0.047 * s, 0.019 * s), 0, _shade(lk.shoes, 0.75))
        _ellipse(img, center - np.array([0.004, 0.003]) * s, (0.04 * s, 0.014 * s), 0, lk.shoes)
        _ellipse(img, center - np.array([0.015, 0.008]) * s, (0.014 * s, 0.005 * s), 0,
                 _shade(lk.shoes, 1.5))


def _draw_arm(img: np.ndarray, pose: _Pose, side: str) -> None:
    lk, s = pose.look, pose.scale
    sh, el, wr = (R_SHOULDER, R_ELBOW, R_WRIST) if side == "r" else (L_SHOULDER, L_ELBOW, L_WRIST)
    upper_r, fore_r = lk.arm_width * s / 2, lk.forearm_width * s / 2
    if pose.has(sh, el):
        a, b = pose.p(sh), pose.p(el)
        _shaded_capsule(img, a, b, upper_r, lk.shirt if lk.sleeve >= 1 else lk.skin)
        if lk.sleeve < 1:
            _shaded_capsule(img, a, a + (b - a) * lk.sleeve, upper_r * 1.2, lk.shirt)
    if pose.has(el, wr):
        a, b = pose.p(el), pose.p(wr)
        _shaded_capsule(img, a, b, fore_r, lk.skin)
        if lk.sleeve > 1:
            _shaded_capsule(img, a, a + (b - a) * (lk.sleeve - 1), fore_r * 1.25, lk.shirt)
        _shaded_capsule(img, *_mitten(pose, side), lk.skin)


def _mitten(pose: _Pose, side: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The hand of arm `side` as drawn: a capsule (wrist, tip, radius) that carries on along the
    forearm; None when the forearm is missing, so the hand is not drawn."""
    el, wr = (R_ELBOW, R_WRIST) if side == "r" else (L_ELBOW, L_WRIST)
    if not pose.has(el, wr):
        return None
    lk, s = pose.look, pose.scale
    a, b = pose.p(el), pose.p(wr)
    along = _unit(b - a)
    return b, b + along * lk.hand_length * s * 0.7, lk.forearm_width * s * 0.6


def _draw_pelvis(img: np.ndarray, pose: _Pose) -> None:
    if not pose.has(R_HIP, L_HIP):
        return
    lk, s = pose.look, pose.scale
    rh, lh = pose.p(R_HIP), pose.p(L_HIP)
    across = _unit(lh - rh) if np.hypot(*(lh - rh)) > 1e-3 else np.array([1.0, 0.0])
    up = pose.torso_up()
    out = lk.thigh_width * s / 2
    points = [rh + up * 0.06 * s - across * out, lh + up * 0.06 * s + across * out,
              lh + across * out, (rh + lh) / 2 - up * 0.06 * s, rh - across * out]
    _poly(img, points, lk.trousers)


def _draw_torso(img: np.ndarray, pose: _Pose) -> None:
    if not pose.has(R_SHOULDER, L_SHOULDER, R_HIP, L_HIP):
        return
    lk, s = pose.look, pose.scale
    rs, ls, rh, lh = (pose.p(i) for i in (R_SHOULDER, L_SHOULDER, R_HIP, L_HIP))
    up = pose.torso_up()
    down = -up
    across = _unit(ls - rs) if np.hypot(*(ls - rs)) > 1e-3 else np.array([-up[1], up[0]])
    hip_across = _unit(lh - rh) if np.hypot(*(lh - rh)) > 1e-3 else across
    ar = lk.arm_width * s / 2
    neck = pose.p(NECK) if pose.ok[NECK] else (rs + ls) / 2
    # Corners of the shirt body: shoulder line (top) and waist line (bottom), right then left.
    top_r = rs - across * ar * 0.9 + down * ar * 0.3
    top_l = ls + across * ar * 0.9 + down * ar * 0.3
    waist_down = down * 0.035 * s
    bot_r = rh - hip_across * lk.thigh_width * s * 0.5 + waist_down
    bot_l = lh + hip_across * lk.thigh_width * s * 0.5 + waist_down
    cap = [top_r, rs + up * ar * 0.8 - across * ar * 0.3, neck + up * ar * 0.45,
           ls + up * ar * 0.8 + across * ar * 0.3, top_l]
    _poly(img, cap, lk.shirt)
    _poly(img, [cap[3], top_l, top_l - across * 0.02 * s], _shade(lk.shirt, 0.85))

    def band(t0: float, t1: float, color: RGB) -> None:
        # A slice of the shirt between heights t0 and t1 (0 = shoulders, 1 = waist), with the
        # side away from the light darker.
        r0, r1 = top_r + (bot_r - top_r) * t0, top_r + (bot_r - top_r) * t1
        l0, l1 = top_l + (bot_l - top_l) * t0, top_l + (bot_l - top_l) * t1
        m0, m1 = r0 + (l0 - r0) * 0.8, r1 + (l1 - r1) * 0.8
        _poly(img, [r0, m0, m1, r1], color)
        _poly(img, [m0, l0, l1, m1], _shade(color, 0.85))

    band(0.0, 1.0, lk.shirt)
    if lk.shirt_pattern == "stripes":
        for t in (0.28, 0.5, 0.72):
            band(t, t + 0.1, lk.pattern)
    elif lk.shirt_pattern == "logo":
        left, right = top_r + (bot_r - top_r) * 0.3, top_l + (bot_l - top_l) * 0.3
        center = (left + right) / 2
        rx = max(0.3 * np.hypot(*(right - left)) / 2, 1.0)
        ry = 0.045 * s
        angle = math.degrees(math.atan2(across[1], across[0]))
        _ellipse(img, center, (rx, ry), angle, lk.pattern)
        _ellipse(img, center, (rx * 0.62, ry * 0.62), angle, lk.shirt)
        _ellipse(img, center, (rx * 0.3, ry * 0.3), angle, lk.pattern)
    hem = max(1, int(round(0.008 * s)))
    outline = np.round(np.array([top_r, bot_r, bot_l, top_l]) * _ONE).astype(np.int32)
    cv2.polylines(img, [outline], False, _shade(lk.shirt, 0.65), hem, _AA, _SHIFT)


def _draw_long_hair(img: np.ndarray, pose: _Pose,
                    head: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> None:
    center, right, down, _ = head
    r = pose.look.head_radius * pose.scale
    angle = math.degrees(math.atan2(right[1], right[0]))
    _ellipse(img, center + down * 1.3 * r, (1.12 * r, 2.1 * r), angle, _shade(pose.look.hair, 0.8))


@dataclass(slots=True)
class _Eye:
    """One drawn eye: its white (an ellipse around the eye keypoint), pupil and brow (a line)."""

    center: np.ndarray
    axes: tuple[float, float]
    pupil: np.ndarray
    brow: np.ndarray  # the middle of the brow line, which runs along the head's right axis
    brow_half: float  # half the brow's length


@dataclass(slots=True)
class _FaceLayout:
    """Where the face of a head is drawn, in pixels: what the renderer paints and where the face
    points of a whole-body pose lie, computed once for both."""

    right: np.ndarray  # the head's axes on screen
    down: np.ndarray
    radius: float  # of the head
    yaw: float  # radians, positive: turned towards the person's right
    outline_center: np.ndarray  # the face, an ellipse in front of the hair
    outline_axes: tuple[float, float]
    eyes: dict[int, _Eye]  # by body keypoint (R_EYE, L_EYE); only the eyes that are drawn
    nose: np.ndarray | None  # the nose keypoint, tip of a capsule reaching nose_length up; None: no nose
    nose_length: float
    nose_radius: float
    mouth_center: np.ndarray  # the lips, an ellipse
    mouth_axes: tuple[float, float]

    @property
    def angle(self) -> float:
        """The head's roll in degrees, as cv2.ellipse takes it."""
        return math.degrees(math.atan2(self.right[1], self.right[0]))


def _face_layout(pose: _Pose, head: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> _FaceLayout:
    """The face of `pose` in its head frame `head` (`_Pose.head_frame`), as the renderer draws it."""
    center, right, down, facing = head
    r = pose.look.head_radius * pose.scale
    yaw = -math.asin(facing)
    eyes = {}
    for eye, azimuth in ((R_EYE, 0.5), (L_EYE, -0.5)):
        if not pose.ok[eye]:
            continue
        # An eye turned away from the camera narrows, but stays drawn.
        squash = max(0.3, math.cos(azimuth + yaw))
        p = pose.p(eye)
        eyes[eye] = _Eye(center=p, axes=(0.16 * r * squash, 0.1 * r), pupil=p + right * (0.04 * r * facing),
                         brow=p - down * (0.24 * r), brow_half=0.15 * r * squash)
    return _FaceLayout(
        right=right, down=down, radius=r, yaw=yaw,
        outline_center=center + right * (0.3 * r * facing) + down * (0.18 * r),
        outline_axes=(0.8 * r * (1 - 0.2 * abs(facing)), 0.84 * r),
        eyes=eyes, nose=pose.p(NOSE) if pose.ok[NOSE] else None, nose_length=0.2 * r, nose_radius=0.06 * r,
        mouth_center=center + right * (0.85 * r * facing) + down * (0.58 * r),
        mouth_axes=(0.22 * r * (1 - 0.35 * abs(facing)), 0.07 * r))


def _draw_neck_and_head(img: np.ndarray, pose: _Pose,
                        head: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> None:
    lk, s = pose.look, pose.scale
    center, right, down, _ = head
    face = _face_layout(pose, head)
    r, angle = face.radius, face.angle
    if pose.ok[NECK]:
        _shaded_capsule(img, pose.p(NECK), center + down * 0.5 * r, lk.neck_width * s / 2, lk.skin)
    _disc(img, center - down * 0.04 * r, 1.08 * r, _shade(lk.hair, 0.7))
    _disc(img, center - down * 0.06 * r - right * 0.03 * r, 1.0 * r, lk.hair)
    if lk.hair_style == "short":
        for ear in (R_EAR, L_EAR):
            if pose.ok[ear]:
                _ellipse(img, pose.p(ear), (0.2 * r, 0.3 * r), angle, _shade(lk.skin, 0.88))
    face_axes = face.outline_axes
    _ellipse(img, face.outline_center, face_axes, angle, _shade(lk.skin, 0.9))
    _ellipse(img, face.outline_center - right * 0.06 * r - down * 0.04 * r,
             (face_axes[0] * 0.9, face_axes[1] * 0.93), angle, lk.skin)
    for eye in face.eyes.values():
        half = right * eye.brow_half
        cv2.line(img, _fx(eye.brow - half), _fx(eye.brow + half), _shade(lk.hair, 0.9),
                 max(1, int(round(0.07 * r))), _AA, _SHIFT)
        _ellipse(img, eye.center, eye.axes, angle, (245, 245, 240))
        _disc(img, eye.pupil, 0.08 * r, lk.eyes)
    if face.nose is not None:
        _capsule(img, face.nose - down * face.nose_length, face.nose, face.nose_radius, _shade(lk.skin, 0.82))
    _ellipse(img, face.mouth_center, face.mouth_axes, angle, lk.lips)


# ---------------------------------------------------------------------------------------------
# Face and hand points: read off the drawn face and hands


# The drawn features the 68 face points lie on. A point is the feature's origin plus a times its
# width along the head's right axis plus b times its height along the head's up axis.
_JAW, _R_BROW, _L_BROW, _BRIDGE, _NOSTRILS, _R_LIDS, _L_LIDS, _LIPS, _INNER_LIPS = range(9)


def _face_point_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per iBUG-68 point: its feature, its place (a, b) on that feature and its azimuth around the
    head (radians, 0 facing the camera, positive on the person's right); with the head turned by
    yaw it faces the camera while cos(azimuth + yaw) > 0. Runs go from the image left to the
    image right, and outlines clockwise from their image-left end, as iBUG numbers them."""
    rows: list[tuple[int, float, float, float]] = []

    def arc(feature: int, angles, azimuth: float, spread: float, a_scale: float = 1.0,
            b_scale: float = 1.0) -> None:
        # Angles counter-clockwise from the right axis; the image-left end (a = -1) lies
        # `spread` further towards the person's right than the middle.
        for theta in angles:
            a = a_scale * math.cos(theta)
            rows.append((feature, a, b_scale * math.sin(theta), azimuth - spread * a))

    # The jaw: the lower face outline from beside the image-left eye, under the chin, to beside
    # the other eye. Its azimuth grows steadily from the chin to the ends, just in front of the
    # ears, so a turning head hides its far jaw from the end.
    jaw = np.linspace(math.pi - 0.2, 2 * math.pi + 0.2, 17)
    edge = math.pi / 2 - 0.2
    rows += [(_JAW, math.cos(t), math.sin(t), az) for t, az in zip(jaw, np.linspace(edge, -edge, 17))]
    arc(_R_BROW, np.linspace(math.pi, 0.0, 5), 0.5, 0.3)
    arc(_L_BROW, np.linspace(math.pi, 0.0, 5), -0.5, 0.3)
    rows += [(_BRIDGE, 0.0, b, 0.0) for b in (1.0, 2 / 3, 1 / 3, 0.0)]  # from the top to the tip
    arc(_NOSTRILS, np.linspace(math.pi, 2 * math.pi, 5), 0.0, 0.06)
    lids = np.array([3, 2, 1, 0, -1, -2]) * math.pi / 3  # left corner, upper lid, right corner, lower lid
    arc(_R_LIDS, lids, 0.5, 0.18)
    arc(_L_LIDS, lids, -0.5, 0.18)
    arc(_LIPS, math.pi - np.arange(12) * math.pi / 6, 0.0, 0.3)
    # The drawn mouth is closed: the inner lip line is a thin ellipse inside the lips.
    arc(_INNER_LIPS, math.pi - np.arange(8) * math.pi / 4, 0.0, 0.3, a_scale=0.6, b_scale=0.15)
    feature, a, b, azimuth = (np.array(column) for column in zip(*rows))
    assert len(feature) == NUM_FACE
    return feature.astype(np.int64), a, b, azimuth


_FACE_FEATURE, _FACE_A, _FACE_B, _FACE_AZIMUTH = _face_point_table()
_NOWHERE = np.zeros(2)


def _face_features(face: _FaceLayout) -> tuple[list[np.ndarray], list[tuple[float, float]], list[bool]]:
    """Per feature (_JAW ... _INNER_LIPS) of a drawn face: origin, (width, height), whether drawn."""
    origins, sizes, drawn = [face.outline_center], [face.outline_axes], [True]
    eyes = [face.eyes.get(R_EYE), face.eyes.get(L_EYE)]
    for eye in eyes:  # the brows
        origins.append(_NOWHERE if eye is None else eye.brow)
        sizes.append((0.0, 0.0) if eye is None else (eye.brow_half, 0.0))
        drawn.append(eye is not None)
    nose = _NOWHERE if face.nose is None else face.nose
    origins += [nose, nose]
    sizes += [(0.0, face.nose_length), (face.nose_radius, face.nose_radius)]
    drawn += [face.nose is not None] * 2
    for eye in eyes:  # the lids
        origins.append(_NOWHERE if eye is None else eye.center)
        sizes.append((0.0, 0.0) if eye is None else eye.axes)
        drawn.append(eye is not None)
    origins += [face.mouth_center] * 2
    sizes += [face.mouth_axes] * 2
    drawn += [True, True]
    return origins, sizes, drawn


def _face_points(faces: list[_FaceLayout]) -> np.ndarray:
    """The 68 face points (faces, 68, 3) on drawn faces; points turned away from the camera, and
    those of features that are not drawn, are missing (all zero)."""
    features = [_face_features(face) for face in faces]
    origins = np.array([origin for origin, _, _ in features]).reshape(len(faces), -1, 2)
    sizes = np.array([size for _, size, _ in features]).reshape(len(faces), -1, 2)
    drawn = np.array([shown for _, _, shown in features], bool).reshape(len(faces), -1)
    axes = np.array([(face.right, -face.down) for face in faces]).reshape(len(faces), 2, 2)
    yaw = np.array([face.yaw for face in faces])
    f = _FACE_FEATURE
    # Per point, how far along the head's right and up axes it lies from its feature's origin.
    steps = sizes[:, f] * np.stack([_FACE_A, _FACE_B], -1)
    out = np.zeros((len(faces), NUM_FACE, 3))
    out[..., :2] = origins[:, f] + steps @ axes
    out[..., 2] = drawn[:, f] & (np.cos(_FACE_AZIMUTH + yaw[:, None]) > 0)
    out[out[..., 2] == 0] = 0.0
    return out


def _hand_point_table() -> np.ndarray:
    """Per hand point (OpenPose order): where it lies in the mitten, as (along in mitten lengths
    from the wrist, along in mitten radii, across towards the thumb in mitten radii)."""
    rows = [(0.0, 0.0, 0.0)]  # the wrist
    rows += [(0.2, 0.0, 0.35), (0.45, 0.0, 0.62), (0.72, 0.0, 0.78), (0.95, 0.0, 0.85)]  # thumb
    for fan in (0.55, 0.18, -0.18, -0.55):  # index to little finger, fanned around the tip
        base = np.array([0.5, 0.0, 0.8 * math.sin(fan)])
        tip = np.array([1.0, 0.8 * math.cos(fan), 0.8 * math.sin(fan)])
        rows += [tuple(base + (tip - base) * k) for k in (0.0, 0.45, 0.75, 1.0)]
    assert len(rows) == NUM_HAND
    return np.array(rows)


_HAND_PLACES = _hand_point_table()


def _hand_points(mittens: list[tuple[np.ndarray, np.ndarray, float]], side: str) -> np.ndarray:
    """The 21 points (mittens, 21, 3) of drawn hands of arm `side`: the wrist at the wrist
    keypoint, the fingers fanned out to the mitten's tip, the thumb on the side that is outward
    when the arm hangs (a palm facing the camera)."""
    wrist = np.array([m[0] for m in mittens]).reshape(-1, 2)
    span = np.array([m[1] for m in mittens]).reshape(-1, 2) - wrist
    radius = np.array([m[2] for m in mittens])[:, None, None]
    along = span / np.maximum(np.hypot(span[:, :1], span[:, 1:]), 1e-9)
    thumb_way = np.stack([-along[:, 1], along[:, 0]], -1) * (1.0 if side == "r" else -1.0)
    place = _HAND_PLACES[None]
    out = np.ones((len(mittens), NUM_HAND, 3))
    out[..., :2] = (wrist[:, None] + place[..., :1] * span[:, None] + place[..., 1:2] * radius * along[:, None]
                    + place[..., 2:] * radius * thumb_way[:, None])
    return out


def _with_face_and_hands(body: np.ndarray, look: Look) -> np.ndarray:
    """Whole-body poses (frames, 128, 3) of body poses (frames, 18, 3): the face and hands where
    `render_person` draws them for that body."""
    out = np.zeros((len(body), NUM_WHOLE_BODY, 3), np.float32)
    out[:, :NUM_KEYPOINTS] = body
    # The geometry is the renderer's, one pose at a time; the points are then placed in one go.
    faces, face_frames = [], []
    hands: dict[str, tuple[list, list]] = {"l": ([], []), "r": ([], [])}  # frames, mittens
    for frame, pose_keypoints in enumerate(body):
        pose = _Pose(pose_keypoints, look)
        head = pose.head_frame()
        if head is not None:
            faces.append(_face_layout(pose, head))
            face_frames.append(frame)
        for side, (frames, mittens) in hands.items():
            mitten = _mitten(pose, side)
            if mitten is not None:
                frames.append(frame)
                mittens.append(mitten)
    if faces:
        out[face_frames, FACE] = _face_points(faces)
    for side, points in (("l", LEFT_HAND), ("r", RIGHT_HAND)):
        frames, mittens = hands[side]
        if mittens:
            out[frames, points] = _hand_points(mittens, side)
    return out


# ---------------------------------------------------------------------------------------------
# Dances


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _Signal:
    """A smooth random curve in about [-1, 1]: random sinusoids plus low-pass (spline) noise.

    Stateless in time: value(t) depends only on the seed, so any frame range can be generated.
    """

    def __init__(self, seed: int, stream: int, freq: tuple[float, float], beat: float | None = None,
                 sines: int = 3, noise: float = 0.3) -> None:
        rng = np.random.default_rng([seed, stream])
        self.freqs = rng.uniform(*freq, size=sines)
        if beat is not None:  # lock the first component to the music
            self.freqs[0] = beat
        self.phases = rng.uniform(0, 2 * math.pi, size=sines)
        self.amps = rng.uniform(0.4, 1.0, size=sines)
        self.amps /= self.amps.sum()
        self.key = (seed, stream)
        self.knot_period = 1.0 / freq[1] / 2
        self.noise = noise

    def _knots(self, idx: np.ndarray) -> np.ndarray:
        # Each knot is drawn from its own seed so values never depend on where a clip starts.
        return np.array([np.random.default_rng([*self.key, 1, int(i) & 0x7FFFFFFF]).uniform(-1, 1)
                         for i in idx.ravel()]).reshape(idx.shape)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        sines = (self.amps * np.sin(2 * math.pi * self.freqs * t[..., None] + self.phases)).sum(-1)
        u = t / self.knot_period
        i = np.floor(u).astype(np.int64)
        f = u - i
        lo, hi = int(i.min()) - 1, int(i.max()) + 3
        table = self._knots(np.arange(lo, hi))
        p0, p1, p2, p3 = (table[i + k - lo] for k in (-1, 0, 1, 2))
        # Catmull-Rom: continuous first derivative through the knots.
        spline = 0.5 * (2 * p1 + (p2 - p0) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f ** 2
                        + (3 * p1 - p0 - 3 * p2 + p3) * f ** 3)
        return np.clip((1 - self.noise) * sines + self.noise * spline, -1.0, 1.0)


def _rot(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 2) clockwise on screen (y points down) by angle radians."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return np.concatenate([v[..., :1] * c - v[..., 1:] * s, v[..., :1] * s + v[..., 1:] * c], -1)


def _vec(x: np.ndarray | float, y: np.ndarray | float, n: int) -> np.ndarray:
    return np.stack([np.broadcast_to(x, (n,)), np.broadcast_to(y, (n,))], -1).astype(np.float64)


class DanceGenerator:
    """A procedural dance for the body proportions of `look`, fully determined by `seed`.

    The skeleton lives in body units (body height 1, floor at y = 0, y down) and is driven by
    smooth curves: steps that carry the body across the stage, hip sway, crouches, arm waves,
    torso and head turns (shoulders narrow and far ears disappear, a 2.5D effect) and a slow
    change of depth (closer: bigger and lower in the frame).
    """

    _MARGIN = 0.04  # of the frame, kept clear on every side
    _PAD = 0.06  # body units drawn beyond the outermost keypoints (hands, shoes, limb widths)

    def __init__(self, seed: int, look: Look = TARGET_LOOK) -> None:
        self.seed = int(seed)
        self.look = look
        rng = np.random.default_rng([self.seed, 0])
        self.beat = rng.uniform(90, 128) / 60.0  # beats per second
        self.step_period = (1.0 if rng.random() < 0.5 else 2.0) / self.beat
        self.step_duty = 0.55  # part of a step period the moving foot is in the air
        self.crouch_depth = rng.uniform(0.1, 0.22)
        self.wave_strength = rng.uniform(0.4, 1.0)
        sig = functools.partial(_Signal, self.seed)
        b = self.beat
        self.wander = sig(1, (0.04, 0.12), noise=0.4)
        self.stance = sig(2, (0.05, 0.2))
        self.depth = sig(3, (0.03, 0.09))
        self.torso_yaw = sig(4, (0.08, 0.25), noise=0.4)
        self.head_yaw = sig(5, (0.15, 0.45))
        self.head_roll = sig(6, (0.2, 0.6), beat=b / 2)
        self.lean = sig(7, (0.15, 0.5), beat=b / 2)
        self.crouch = sig(8, (0.08, 0.3))
        self.arm_raise = (sig(9, (0.1, 0.35), beat=b / 4), sig(10, (0.1, 0.35), beat=b / 4))
        self.elbow = (sig(11, (0.2, 0.6), beat=b / 2), sig(12, (0.2, 0.6), beat=b / 2))
        self.wave = sig(13, (0.05, 0.15))
        self.shrug = sig(14, (0.3, 0.8), beat=b)
        self.bounce_phase = rng.uniform(0, 2 * math.pi)
        self.sway_phase = rng.uniform(0, 2 * math.pi)

    def keypoints(self, frames: int, height: int, width: int, fps: float = 30.0,
                  start: int = 0, whole_body: bool = False) -> np.ndarray:
        """Keypoints (frames, 18, 3) float32 in pixels of a height x width frame.

        `start` is the index of the first frame, so long dances can be made in chunks.
        `whole_body=True` gives whole-body poses (frames, 128, 3): the same body, then the face
        and hand points where `render_person` draws them (face points turned away from the
        camera are missing).
        """
        if frames < 0 or height < 16 or width < 16 or fps <= 0:
            raise VidtransError(f"dance of {frames} frames at {width}x{height}, {fps} fps: "
                                "use frames >= 0, a frame of at least 16x16 and fps > 0")
        if frames == 0:
            return np.zeros((0, NUM_WHOLE_BODY if whole_body else NUM_KEYPOINTS, 3), np.float32)
        t = (start + np.arange(frames)) / float(fps)
        lk = self.look
        margin = self._MARGIN * min(height, width)
        # Framing: a raised hand of this look, at its closest depth, stays inside the top margin.
        floor_px = height * (1 - self._MARGIN) - 0.06 * height  # room for shoes and shadow
        reach_up = (lk.ankle_height + lk.thigh + lk.shin + lk.torso_length + 0.012
                    + 0.8 * lk.upper_arm + lk.forearm + lk.hand_length + lk.forearm_width / 2)
        # Sideways, both arms stretched out must fit; the stage is what a typical pose leaves.
        full_side = lk.shoulder_width / 2 + lk.upper_arm + lk.forearm + self._PAD + 0.04
        reach_side = lk.shoulder_width / 2 + 0.5 * (lk.upper_arm + lk.forearm) + self._PAD
        size = min(0.66 * height * lk.stature,
                   (floor_px + 0.03 * height - margin) / reach_up / 1.05,
                   (width / 2 - margin) / full_side / 1.05)
        room = max(0.0, (width / 2 - margin) / (size * 1.05) - reach_side)
        body = self._body(t, room)
        depth = self.depth(t)
        scale = (size * (1 + 0.05 * depth))[:, None]
        x = width / 2 + body[..., 0] * scale
        # Fully stretched arms at the edge of the stage: slide the body back inside. The bounds
        # move continuously, so this never makes the motion jump.
        pad = self._PAD * scale[:, 0]
        low = margin - (x.min(axis=1) - pad)
        high = width - 1 - margin - (x.max(axis=1) + pad)
        shift = np.where(low <= high, np.clip(0.0, low, high), (low + high) / 2)
        out = np.zeros((frames, NUM_KEYPOINTS, 3), np.float32)
        out[..., 0] = x + shift[:, None]
        out[..., 1] = (floor_px + 0.03 * height * depth)[:, None] + body[..., 1] * scale
        out[..., 2] = body[..., 2]
        out[out[..., 2] == 0] = 0.0
        return _with_face_and_hands(out, lk) if whole_body else out

    def _feet(self, t: np.ndarray,
              room: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Feet x (stage centre = 0) and lift; each step moves one foot towards where the dance
        wanders, `room` body units either side of the centre."""
        period, duty = self.step_period, self.step_duty
        k = np.floor(t / period).astype(np.int64)
        phase = t / period - k
        xs, lifts = [], []
        for foot, side in ((0, -1.0), (1, 1.0)):  # right foot on the image left
            j = np.where(k % 2 == foot, k, k - 1)  # this foot's latest step

            def target(step: np.ndarray) -> np.ndarray:
                when = (step + duty) * period
                return side * (0.05 + 0.05 * (self.stance(when) + 1)) + room * self.wander(when)

            moving = (j == k) & (phase < duty)
            ease = _smoothstep(phase / duty)
            xs.append(np.where(moving, target(j - 2) + (target(j) - target(j - 2)) * ease,
                               target(j)))
            lifts.append(np.where(moving, 0.03 * np.sin(math.pi * np.clip(phase / duty, 0, 1)), 0))
        return xs[0], xs[1], lifts[0], lifts[1]

    def _body(self, t: np.ndarray, room: float) -> np.ndarray:
        """Keypoints (frames, 18, 3) in body units: stage centre x = 0, floor y = 0, y down."""
        lk, n = self.look, len(t)
        kp = np.zeros((n, NUM_KEYPOINTS, 3))
        foot_r, foot_l, lift_r, lift_l = self._feet(t, room)
        sway = 0.025 * np.sin(math.pi * self.beat * t + self.sway_phase)
        lean = 0.1 * self.lean(t) - 1.5 * sway
        tau = 0.8 * self.torso_yaw(t)
        hip_roll = -2.0 * sway
        hip_mid_x = (foot_r + foot_l) / 2 + sway
        half_hip = lk.hip_width / 2 * np.cos(0.5 * tau)
        hip_dir = _rot(_vec(1.0, 0.0, n), hip_roll)
        bounce = 0.5 + 0.5 * np.cos(2 * math.pi * self.beat * t + self.bounce_phase)
        crouch = self.crouch_depth * ((self.crouch(t) + 1) / 2) ** 2 + 0.03 * bounce
        leg = (lk.thigh + lk.shin) * (0.99 - crouch)
        ankle_r = _vec(foot_r, -(lk.ankle_height + lift_r), n)
        ankle_l = _vec(foot_l, -(lk.ankle_height + lift_l), n)
        hip_r_off, hip_l_off = -hip_dir * half_hip[:, None], hip_dir * half_hip[:, None]
        # Hips as high as the shorter reach allows, so both legs can touch their ankles.
        heights = []
        for ankle, off in ((ankle_r, hip_r_off), (ankle_l, hip_l_off)):
            dx = hip_mid_x + off[:, 0] - ankle[:, 0]
            heights.append(-ankle[:, 1] + np.sqrt(np.maximum(leg ** 2 - dx ** 2, 1e-6)) + off[:, 1])
        hip_mid = _vec(hip_mid_x, -np.minimum(*heights), n)
        hip_r, hip_l = hip_mid + hip_r_off, hip_mid + hip_l_off
        knee_r = self._knee(hip_r, ankle_r, lk.thigh, lk.shin, -1.0)
        knee_l = self._knee(hip_l, ankle_l, lk.thigh, lk.shin, 1.0)
        up = _rot(_vec(0.0, -1.0, n), lean)
        across = _rot(_vec(1.0, 0.0, n), lean)
        neck = hip_mid + up * lk.torso_length
        half_sh = (lk.shoulder_width / 2 * np.cos(tau))[:, None]
        shrug = 0.012 * self.shrug(t)[:, None]
        sh_r = neck - across * half_sh + up * shrug
        sh_l = neck + across * half_sh - up * shrug
        arms = []
        for side, shoulder, raise_sig, elbow_sig in ((-1.0, sh_r, self.arm_raise[0], self.elbow[0]),
                                                    (1.0, sh_l, self.arm_raise[1], self.elbow[1])):
            wave = self.wave_strength * (self.wave(t) + 1) / 2
            upper_angle = np.clip(1.0 + 1.7 * raise_sig(t), 0.12, 2.5)
            bend = 0.55 + 1.0 * wave * elbow_sig(t)
            # Angles open outwards from straight down, mirrored for the two sides.
            upper_dir = _rot(_vec(-side * 0.0, 1.0, n), -side * upper_angle + lean)
            fore_dir = _rot(_vec(0.0, 1.0, n), -side * (upper_angle + bend) + lean)
            elbow_p = shoulder + upper_dir * lk.upper_arm
            arms.append((elbow_p, elbow_p + fore_dir * lk.forearm))
        (elbow_r, wrist_r), (elbow_l, wrist_l) = arms
        head_roll = lean + 0.15 * self.head_roll(t)
        yaw = np.clip(tau + 0.4 * self.head_yaw(t), -1.0, 1.0)
        r = lk.head_radius
        center = neck + _rot(_vec(0.0, -1.0, n), head_roll) * (lk.neck_length + r)
        h_right = _rot(_vec(1.0, 0.0, n), head_roll)
        h_down = _rot(_vec(0.0, 1.0, n), head_roll)

        def face_point(azimuth: float, radius: float, drop: float, visible_above: float):
            # Azimuth 0 faces the camera; positive azimuths are on the person's right.
            a = azimuth + yaw
            pos = center + h_right * (-radius * np.sin(a))[:, None] + h_down * drop * r
            return pos, (np.cos(a) > visible_above)

        points = {
            NECK: (neck, None), R_SHOULDER: (sh_r, None), L_SHOULDER: (sh_l, None),
            R_ELBOW: (elbow_r, None), R_WRIST: (wrist_r, None),
            L_ELBOW: (elbow_l, None), L_WRIST: (wrist_l, None),
            R_HIP: (hip_r, None), R_KNEE: (knee_r, None), R_ANKLE: (ankle_r, None),
            L_HIP: (hip_l, None), L_KNEE: (knee_l, None), L_ANKLE: (ankle_l, None),
            NOSE: face_point(0.0, 1.05 * r, 0.25, 0.0),
            R_EYE: face_point(0.5, 0.95 * r, -0.02, 0.0),
            L_EYE: face_point(-0.5, 0.95 * r, -0.02, 0.0),
            R_EAR: face_point(math.pi / 2, r, 0.08, -0.35),
            L_EAR: face_point(-math.pi / 2, r, 0.08, -0.35),
        }
        for idx, (pos, visible) in points.items():
            kp[:, idx, :2] = pos
            kp[:, idx, 2] = 1.0 if visible is None else visible.astype(np.float64)
        return kp

    @staticmethod
    def _knee(hip: np.ndarray, ankle: np.ndarray, thigh: float, shin: float,
              outward: float) -> np.ndarray:
        """Two-bone IK in 2.5D: a bent knee comes mostly towards the camera and a little
        outwards, so on screen it sits near the hip-ankle line, slightly outside it."""
        d_vec = ankle - hip
        d = np.clip(np.hypot(d_vec[:, 0], d_vec[:, 1]), 1e-6, thigh + shin - 1e-6)
        along = d_vec / d[:, None]
        a = (thigh ** 2 - shin ** 2 + d ** 2) / (2 * d)
        h = np.sqrt(np.maximum(thigh ** 2 - a ** 2, 0.0))
        normal = np.stack([-along[:, 1], along[:, 0]], -1)
        normal *= np.sign(normal[:, :1] * outward + 1e-9)
        return hip + along * a[:, None] + normal * (0.45 * h)[:, None]


def dance_keypoints(seed: int, frames: int, height: int, width: int, look: Look = TARGET_LOOK,
                    fps: float = 30.0, whole_body: bool = False) -> np.ndarray:
    """The first `frames` poses (frames, 18, 3) of dance `seed` for a height x width frame; with
    `whole_body=True` whole-body poses (frames, 128, 3), see `DanceGenerator.keypoints`."""
    return DanceGenerator(seed, look).keypoints(frames, height, width, fps, whole_body=whole_body)
