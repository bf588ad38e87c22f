"""Tests for pose style version 2 ("openpose_full"): faces and hands drawn as ControlNet/DWPose do."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.test_pose import pixel, standing_pose
from vidtrans.errors import VidtransError
from vidtrans.pose import KEYPOINT_INDEX, PoseStyle, looks_like_pose_map, render_pose, render_poses
from vidtrans.pose.keypoints import FACE, HAND_EDGES, LEFT_HAND, RIGHT_HAND, with_parts
from vidtrans.pose.render import HAND_EDGE_COLORS

V1, V2 = PoseStyle(), PoseStyle(version=2)
WHITE, BLUE = (255, 255, 255), (0, 0, 255)
MOUTH = range(FACE.start + 48, FACE.stop)


def _ring(count: int, centre: tuple[float, float], radii: tuple[float, float]) -> list[tuple[float, float]]:
    return [(centre[0] + radii[0] * math.cos(t), centre[1] + radii[1] * math.sin(t))
            for t in np.linspace(math.pi, 3 * math.pi, count, endpoint=False)]


def _face_layout() -> np.ndarray:
    """The 68 iBUG face points in face units: x -1..1 from the image's left, y down, nose tip at 0."""
    jaw = [(math.cos(t), 1.2 * math.sin(t) - 0.3) for t in np.linspace(math.pi, 0.0, 17)]  # ear to ear
    brows = [(side * u, -0.5 - 0.08 * math.sin(math.pi * (u - 0.15) / 0.6))
             for side in (-1, 1) for u in (np.linspace(0.75, 0.15, 5) if side < 0 else np.linspace(0.15, 0.75, 5))]
    nose = [(0.0, v) for v in np.linspace(-0.35, -0.05, 4)] + [(u, 0.1) for u in np.linspace(-0.2, 0.2, 5)]
    eyes = _ring(6, (-0.4, -0.25), (0.15, 0.06)) + _ring(6, (0.4, -0.25), (0.15, 0.06))
    mouth = _ring(12, (0.0, 0.5), (0.35, 0.13)) + _ring(8, (0.0, 0.5), (0.2, 0.05))
    return np.asarray(jaw + brows + nose + eyes + mouth, np.float32)


def _hand_fan(wrist: np.ndarray, direction: np.ndarray, length: float) -> np.ndarray:
    """21 hand points: from the wrist, five straight fingers fanned out around `direction`."""
    points = [wrist]
    for finger, angle in enumerate(np.radians([-55, -25, 0, 25, 50])):
        c, s = math.cos(angle), math.sin(angle)
        axis = np.array([c * direction[0] - s * direction[1], s * direction[0] + c * direction[1]])
        start = 0.25 if finger == 0 else 0.45  # the thumb's base sits nearer the wrist
        points += [wrist + axis * length * (start + (1 - start) * k / 3) for k in range(4)]
    return np.asarray(points, np.float32)


def whole_body_pose(height: int, width: int, face_width: float = 0.08, hand_length: float = 0.12) -> np.ndarray:
    """A standing person (128, 3) with a face (`face_width` of the frame height wide) and open hands."""
    kp = with_parts(standing_pose(height, width), True)
    nose = kp[KEYPOINT_INDEX["nose"], :2]
    kp[FACE, :2] = nose + _face_layout() * (face_width * height / 2)
    for hand, side in ((LEFT_HAND, "l"), (RIGHT_HAND, "r")):
        wrist, elbow = kp[KEYPOINT_INDEX[f"{side}_wrist"], :2], kp[KEYPOINT_INDEX[f"{side}_elbow"], :2]
        direction = (wrist - elbow) / np.linalg.norm(wrist - elbow)
        kp[hand, :2] = _hand_fan(wrist, direction, hand_length * height)
    kp[FACE.start:, 2] = 1.0
    return kp


def nearest_hand_colour(colour: np.ndarray) -> int:
    return int(np.abs(np.asarray(HAND_EDGE_COLORS) - colour).sum(axis=1).argmin())


def brightest_near(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The brightest pixel within 1 px of `xy` (thin anti-aliased lines cover a pixel centre only partly)."""
    x, y = int(round(xy[0])), int(round(xy[1]))
    patch = image[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).astype(int)
    return patch[patch.sum(axis=1).argmax()]


def test_v2_draws_white_face_points_over_everything():
    kp = whole_body_pose(512, 512, face_width=0.3)
    image = render_pose(kp, 512, 512, V2)
    for xy in kp[FACE, :2]:
        np.testing.assert_array_equal(pixel(image, xy), WHITE)
    # They are dots of radius 3 at 512 px: white nowhere else.
    white = np.argwhere(image.min(axis=2) >= 200)[:, ::-1]
    assert len(white) > 68 * 9
    assert np.linalg.norm(white[:, None] - kp[None, FACE, :2], axis=2).min(axis=1).max() <= 3.5


def test_v2_draws_hand_bones_in_their_hues_and_blue_joints():
    kp = whole_body_pose(512, 512)
    image = render_pose(kp, 512, 512, V2)
    assert len(set(HAND_EDGE_COLORS)) == 20 and HAND_EDGE_COLORS[0] == (255, 0, 0) and HAND_EDGE_COLORS[10] == (0, 255, 255)
    for hand in (LEFT_HAND, RIGHT_HAND):
        points = kp[hand, :2]
        for i, (a, b) in enumerate(HAND_EDGES):
            colour = brightest_near(image, (points[a] + points[b]) / 2)
            assert nearest_hand_colour(colour) == i and colour.max() >= 230
        for xy in points:
            np.testing.assert_array_equal(pixel(image, xy), BLUE)


def test_missing_face_and_hand_points_draw_nothing():
    kp = whole_body_pose(512, 512, face_width=0.3)
    body_only = render_pose(kp, 512, 512, V1)
    index_finger = range(RIGHT_HAND.start + 5, RIGHT_HAND.start + 9)
    kp[list(MOUTH), 2] = 0.05  # at the confidence threshold counts as missing
    kp[list(index_finger), 2] = 0.0
    image = render_pose(kp, 512, 512, V2)
    for i in [*MOUTH, *index_finger]:
        np.testing.assert_array_equal(pixel(image, kp[i, :2]), pixel(body_only, kp[i, :2]))
    wrist, knuckle = kp[RIGHT_HAND.start, :2], kp[index_finger[0], :2]
    np.testing.assert_array_equal(pixel(image, (wrist + knuckle) / 2), pixel(body_only, (wrist + knuckle) / 2))
    # The other fingers and the rest of the face are still there.
    middle_knuckle = kp[RIGHT_HAND.start + 9, :2]
    assert nearest_hand_colour(brightest_near(image, (wrist + middle_knuckle) / 2)) == 8
    np.testing.assert_array_equal(pixel(image, kp[FACE.start + 30, :2]), WHITE)


@pytest.mark.parametrize("height, width", [(256, 256), (128, 96)])
def test_v2_parts_stay_visible_on_small_renders(height, width):
    kp = whole_body_pose(height, width)
    image = render_pose(kp, height, width, V2)
    face_pixels = np.stack([brightest_near(image, xy) for xy in kp[FACE, :2]])
    assert face_pixels.min() >= 128  # white dots, not faded into anti-aliasing
    points = kp[LEFT_HAND, :2]
    for a, b in HAND_EDGES[1::4]:  # a bone in the middle of each finger
        assert brightest_near(image, (points[a] + points[b]) / 2).max() >= 128
    assert all(pixel(image, xy)[2] >= 128 for xy in points)  # blue joints


def test_styles_agree_on_the_body():
    track = np.stack([whole_body_pose(256, 192), whole_body_pose(256, 192, face_width=0.2)])
    track[1, :, :2] += 7.3
    body = render_poses(with_parts(track, False), 256, 192, V1)
    np.testing.assert_array_equal(render_poses(track, 256, 192, V1), body)  # v1 ignores face and hands
    np.testing.assert_array_equal(render_poses(with_parts(track, False), 256, 192, V2), body)
    whole = render_poses(track, 256, 192, V2)
    assert whole.shape == (2, 256, 192, 3) and (whole != body).any(axis=3).sum() > 500


def test_v1_style_dict_is_unchanged():
    assert not V1.whole_body and V2.whole_body
    assert V1.to_dict() == {"version": 1, "reference_height": 512, "limb_width": 8.0, "joint_radius": 4.0,
                            "limb_alpha": 0.6, "draw_joints": True, "antialias": True, "background": [0, 0, 0]}
    assert PoseStyle.from_dict({"version": 1, "limb_width": 6.0}) == PoseStyle(limb_width=6.0)


def test_v2_style_dict_round_trip_and_checks():
    style = PoseStyle(version=2, face_point_radius=2.5, hand_line_width=3.0, background=(1, 2, 3))
    data = json.loads(json.dumps(style.to_dict()))
    assert {"face_point_radius", "hand_line_width", "hand_joint_radius"} <= set(data)
    assert PoseStyle.from_dict(data) == style and PoseStyle.from_dict(data).whole_body
    with pytest.raises(VidtransError, match=r"unknown fields \['face_mesh'\]"):
        PoseStyle.from_dict({**data, "face_mesh": True})
    with pytest.raises(VidtransError, match="version 3"):
        PoseStyle.from_dict({**data, "version": 3})


def test_v2_renders_are_recognised_as_pose_maps():
    rng = np.random.default_rng(2)
    jitter = [1, 1, 0]
    for face_width in (0.08, 0.3):  # a full figure and a large face
        poses = [whole_body_pose(160, 120, face_width) + rng.normal(0, 1, (128, 3)).astype(np.float32) * jitter
                 for _ in range(4)]
        maps = [render_pose(p, 160, 120, V2) for p in poses]
        assert looks_like_pose_map(maps)
        assert looks_like_pose_map([np.clip(m.astype(float) * 0.9 + 8, 0, 255).astype(np.uint8) for m in maps])
    # Natural images are still refused, and bright, nearly white patches in a dark scene are not face dots.
    yy, xx = np.mgrid[0:160, 0:120]
    natural = np.stack([100 + 60 * np.sin(xx / 9), 90 + 50 * np.cos(yy / 13), 80 + 30 * np.sin((xx + yy) / 7)], axis=2)
    assert not looks_like_pose_map([natural.astype(np.uint8)] * 3)
    for patch in ((235, 238, 240), (245, 230, 220)):  # a window, brightly lit skin
        dark_scene = natural * 0.3
        dark_scene[20:60, 30:90] = patch
        assert not looks_like_pose_map([dark_scene.astype(np.uint8)] * 3)
