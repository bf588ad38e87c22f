"""Whole-body poses of the procedural dancer: face and hand points where the character is drawn."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from vidtrans.pose.keypoints import FACE, LEFT_HAND, NUM_KEYPOINTS, NUM_WHOLE_BODY, RIGHT_HAND
from vidtrans.train.synth import SOURCE_LOOK, TARGET_LOOK, DanceGenerator, dance_keypoints, render_person

SIZE = 512
NOSE, R_ELBOW, R_WRIST, L_ELBOW, L_WRIST, R_EYE, L_EYE, R_EAR, L_EAR = 0, 3, 4, 6, 7, 14, 15, 16, 17
R_SHOULDER, L_SHOULDER, NECK, R_HIP, L_HIP = 2, 5, 1, 8, 11
JAW, BROWS, NOSE_POINTS, R_EYE_POINTS, L_EYE_POINTS, MOUTH = (
    np.s_[0:17], np.s_[17:27], np.s_[27:36], np.s_[36:42], np.s_[42:48], np.s_[48:68])
EYE_WHITE = (245, 245, 240)


def tones(color, factors=(0.7, 0.82, 0.85, 0.88, 0.9, 1.0, 1.15)) -> np.ndarray:
    """The shades the renderer paints `color` in."""
    return np.array([np.clip(np.array(color) * f, 0, 255) for f in factors])


def colored(img: np.ndarray, colors: np.ndarray, tol: float = 30) -> np.ndarray:
    """Mask of pixels within `tol` (sum of channel differences) of any of `colors`."""
    dist = np.abs(img.astype(int)[..., None, :] - np.asarray(colors, int)).sum(-1)
    return (dist < tol).any(-1)


def near(mask: np.ndarray, point, radius: float) -> bool:
    """Whether `mask` has a pixel within `radius` pixels of `point`."""
    x0, y0 = (max(0, int(np.floor(c - radius))) for c in point[:2])
    ys, xs = np.nonzero(mask[y0:int(np.ceil(point[1] + radius)) + 1, x0:int(np.ceil(point[0] + radius)) + 1])
    return bool(len(xs)) and float(np.hypot(xs + x0 - point[0], ys + y0 - point[1]).min()) <= radius


def turn(pose: np.ndarray) -> float:
    """How far the head is turned to the image right (+) or left (-): the nose's offset from
    between the eyes along the line through them, relative to the eyes' distance (0 facing the
    camera)."""
    across = pose[L_EYE, :2] - pose[R_EYE, :2]
    offset = pose[NOSE, :2] - (pose[R_EYE, :2] + pose[L_EYE, :2]) / 2
    return float(offset @ across / (across @ across))


def head_poses() -> list[tuple]:
    """(look, whole-body pose) of dances at 512x512: per dance the frames with the head turned
    furthest to either side, and the one facing the camera most squarely."""
    chosen = []
    for seed, look in ((0, TARGET_LOOK), (1, TARGET_LOOK), (2, TARGET_LOOK), (3, SOURCE_LOOK)):
        track = dance_keypoints(seed, 600, SIZE, SIZE, look, whole_body=True)
        turns = np.array([turn(pose) for pose in track])
        for frame in (turns.argmin(), turns.argmax(), np.abs(turns).argmin()):
            chosen.append((look, track[frame]))
    return chosen


POSES = head_poses()
POSE_IDS = [f"{look.name}-{i}" for i, (look, _) in enumerate(POSES)]


@pytest.fixture(scope="module", params=range(len(POSES)), ids=POSE_IDS)
def drawn(request):
    """A pose, its look and its frame."""
    look, pose = POSES[request.param]
    return look, pose, render_person(pose, SIZE, SIZE, look)


def visible(points: np.ndarray) -> np.ndarray:
    return points[points[:, 2] > 0, :2]


def test_whole_body_keypoints_add_face_and_hands_to_the_same_body():
    body = dance_keypoints(5, 40, 144, 176)
    whole = dance_keypoints(5, 40, 144, 176, whole_body=True)
    assert whole.shape == (40, NUM_WHOLE_BODY, 3) and whole.dtype == np.float32
    np.testing.assert_array_equal(whole[:, :NUM_KEYPOINTS], body)
    # Chunks of a long dance give the same poses as one call.
    chunk = DanceGenerator(5).keypoints(15, 144, 176, start=25, whole_body=True)
    np.testing.assert_array_equal(chunk, whole[25:])
    assert DanceGenerator(5).keypoints(0, 144, 176, whole_body=True).shape == (0, NUM_WHOLE_BODY, 3)
    # Hands are always drawn in a dance; a missing point is all zero.
    assert (whole[:, LEFT_HAND, 2] == 1).all() and (whole[:, RIGHT_HAND, 2] == 1).all()
    face = whole[:, FACE]
    assert (face[..., 2] > 0).mean() > 0.9
    assert (face[face[..., 2] == 0] == 0).all()
    # The hands start at their own wrists: LEFT_HAND is the person's left, the l_wrist side.
    np.testing.assert_allclose(whole[:, LEFT_HAND][:, 0, :2], body[:, L_WRIST, :2], atol=1e-3)
    np.testing.assert_allclose(whole[:, RIGHT_HAND][:, 0, :2], body[:, R_WRIST, :2], atol=1e-3)


def test_render_draws_a_whole_body_pose_from_its_body():
    look, pose = POSES[0]
    body_only = render_person(pose[:NUM_KEYPOINTS], SIZE, SIZE, look)
    np.testing.assert_array_equal(render_person(pose, SIZE, SIZE, look), body_only)
    moved = pose.copy()
    moved[NUM_KEYPOINTS:, :2] += 40.0  # face and hand points elsewhere draw nothing different
    np.testing.assert_array_equal(render_person(moved, SIZE, SIZE, look), body_only)


def test_eye_and_brow_points_lie_on_the_drawn_eyes_and_brows(drawn):
    look, pose, img = drawn
    eye_pixels = colored(img, [look.eyes, EYE_WHITE])
    for eye in (R_EYE_POINTS, L_EYE_POINTS):
        points = visible(pose[FACE][eye])
        assert len(points) >= 4
        assert near(eye_pixels, points.mean(0), 1.5), points.mean(0)
    brows = visible(pose[FACE][BROWS])
    assert len(brows) >= 8
    brow_pixels = colored(img, tones(look.hair))
    assert all(near(brow_pixels, p, 1.0) for p in brows)


def test_mouth_points_lie_on_the_lips(drawn):
    look, pose, img = drawn
    points = visible(pose[FACE][MOUTH])
    assert len(points) == 20
    x, y = np.round(points.mean(0)).astype(int)
    assert colored(img[y:y + 1, x:x + 1], [look.lips]).all()
    # The lip outline stays on the lips (or their anti-aliased rim).
    lips = colored(img, [look.lips], tol=80)
    assert all(near(lips, p, 1.0) for p in points)


def test_nose_points_lie_on_the_nose(drawn):
    look, pose, img = drawn
    points = pose[FACE][NOSE_POINTS]
    assert (points[:, 2] > 0).all()
    nose = colored(img, tones(look.skin, (0.82,)), tol=15)
    assert all(near(nose, p, 1.5) for p in points[:, :2])
    assert points[0, 1] < points[3, 1]  # the bridge runs down to the tip


def test_jaw_points_follow_the_face_outline(drawn):
    look, pose, img = drawn
    # Pixels painted with hair, and with skin but not hair: recolour one and see what changes.
    hair = (img != render_person(pose, SIZE, SIZE, replace(look, hair=(0, 255, 0)))).any(-1)
    skin = (img != render_person(pose, SIZE, SIZE, replace(look, skin=(0, 0, 255)))).any(-1) & ~hair
    earless = pose.copy()
    earless[[R_EAR, L_EAR]] = 0
    ears = (img != render_person(earless, SIZE, SIZE, look)).any(-1)
    head = cv2.convexHull(np.argwhere(hair)[:, ::-1].astype(np.int32))
    points = visible(pose[FACE][JAW])
    assert len(points) >= 9
    for p in points:
        assert cv2.pointPolygonTest(head, (float(p[0]), float(p[1])), True) > -1, p
        # On the edge of the face: next to its skin and to the hair (or an ear) around it.
        assert near(skin & ~ears, p, 1.5) and near(hair | ears, p, 2.0), p


def test_face_points_run_in_ibug_order(drawn):
    _, pose, _ = drawn
    face = pose[FACE]
    x, y, seen = face[:, 0], face[:, 1], face[:, 2] > 0

    def left_to_right(*indices):
        shown = [i for i in indices if seen[i]]
        assert np.all(np.diff(x[shown]) > 0), shown

    left_to_right(36, 39, 42, 45)
    left_to_right(17, 21, 22, 26)
    left_to_right(31, 33, 35)
    left_to_right(48, 51, 54)
    left_to_right(0, 4, 8, 12, 16)
    assert y[37] < y[41] and y[44] < y[46]  # upper lids above lower lids
    assert y[19] < y[37] and y[24] < y[44]  # brows above the eyes
    assert y[30] < y[51] < y[57]  # nose above mouth, upper lip above lower lip
    assert y[8] > y[57]  # chin below the mouth


def test_face_points_turned_away_from_the_camera_are_missing():
    track = dance_keypoints(0, 600, SIZE, SIZE, whole_body=True)
    turns = np.array([turn(pose) for pose in track])
    face = track[:, FACE]
    for frames, far_end, near_end in ((turns < -0.1, 0, 16), (turns > 0.1, 16, 0)):
        assert frames.sum() > 10  # the dance does turn its head both ways
        assert (face[frames, far_end, 2] == 0).all() and (face[frames, near_end, 2] > 0).all()
    # A head turned so far that the far ear hides loses the far end of the jaw, not its near half.
    for ear, far_end, near_half in ((R_EAR, 0, np.s_[8:17]), (L_EAR, 16, np.s_[0:9])):
        hidden = track[:, ear, 2] == 0
        assert hidden.any()
        assert (face[hidden, far_end, 2] == 0).all() and (face[hidden, near_half, 2] > 0).all()
    # Facing the camera, everything shows.
    facing = np.abs(turns) < 0.01
    assert facing.any() and (face[facing, :, 2] > 0).all()


@pytest.mark.parametrize("look,seed", [(TARGET_LOOK, 2), (SOURCE_LOOK, 3)], ids=["target", "source"])
def test_hand_points_lie_in_the_drawn_mittens(look, seed):
    track = dance_keypoints(seed, 300, SIZE, SIZE, look, whole_body=True)
    tested = 0
    for pose in track[::30]:
        scale = np.hypot(*(pose[NECK, :2] - (pose[R_HIP, :2] + pose[L_HIP, :2]) / 2)) / look.torso_length
        if np.hypot(*(pose[L_SHOULDER, :2] - pose[R_SHOULDER, :2])) < 0.8 * look.shoulder_width * scale:
            continue  # the body is turned: an arm may pass behind it
        img = render_person(pose, SIZE, SIZE, look)
        for hand, elbow, wrist in ((LEFT_HAND, L_ELBOW, L_WRIST), (RIGHT_HAND, R_ELBOW, R_WRIST)):
            handless = pose.copy()
            handless[wrist] = 0
            mitten = (img != render_person(handless, SIZE, SIZE, look)).any(-1)  # the arm
            mitten[mitten] = colored(img[mitten], tones(look.skin), tol=40)
            points = pose[hand][:, :2]
            along = pose[wrist, :2] - pose[elbow, :2]
            along /= np.hypot(*along)
            assert all(near(mitten, p, 1.5) for p in points)
            assert ((points - pose[wrist, :2]) @ along >= -1e-3).all()  # beyond the wrist, in the hand
            # The finger tips reach the end of the mitten.
            for tip in (12, 16):
                beyond = points[tip] + along * 4
                assert not mitten[int(round(beyond[1])), int(round(beyond[0]))], tip
            # The thumb and little finger are on opposite sides of the middle finger.
            middle = points[12] - points[0]
            sides = [np.cross(middle, points[i] - points[0]) for i in (4, 20)]
            assert sides[0] * sides[1] < 0
            tested += 1
    assert tested >= 8
