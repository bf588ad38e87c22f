import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.train.synth import (
    SOURCE_LOOK,
    TARGET_LOOK,
    DanceGenerator,
    dance_keypoints,
    render_person,
)

SIZE = 128
NECK, R_SH, R_EL, R_WR, L_SH, R_HIP, L_HIP, R_ANK, L_ANK, R_EAR, L_EAR = (
    1, 2, 3, 4, 5, 8, 11, 10, 13, 16, 17)


def arms_out_pose() -> np.ndarray:
    """A hand-made frontal pose at 128x128 with both arms held out to the sides."""
    xy = {
        0: (64, 34), 1: (64, 44), 2: (53, 45), 3: (40, 50), 4: (28, 44), 5: (75, 45), 6: (88, 50),
        7: (100, 44), 8: (58, 78), 9: (56, 98), 10: (55, 116), 11: (70, 78), 12: (72, 98),
        13: (73, 116), 14: (61, 29), 15: (67, 29), 16: (56, 31), 17: (72, 31),
    }
    kp = np.zeros((18, 3), np.float32)
    for i, (x, y) in xy.items():
        kp[i] = (x, y, 1.0)
    return kp


def near(img: np.ndarray, x: float, y: float, radius: int = 3) -> np.ndarray:
    """Pixels of a small square around (x, y), as (n, 3) ints."""
    xi, yi = int(round(x)), int(round(y))
    return img[yi - radius:yi + radius + 1, xi - radius:xi + radius + 1].reshape(-1, 3).astype(int)


def share_close_to(pixels: np.ndarray, color: tuple[int, int, int], tol: float = 40) -> float:
    """Share of pixels close to `color` in any of the tones the renderer shades it with."""
    tones = np.array([np.clip(np.array(color) * f, 0, 255) for f in (0.7, 0.85, 1.0, 1.15)])
    dist = np.abs(pixels[:, None, :] - tones[None]).sum(axis=2).min(axis=1)
    return float((dist < tol).mean())


def test_rendering_is_deterministic():
    kp = dance_keypoints(3, 20, SIZE, SIZE)[17]
    a = render_person(kp, SIZE, SIZE)
    b = render_person(kp.copy(), SIZE, SIZE)
    assert a.dtype == np.uint8 and a.shape == (SIZE, SIZE, 3) and a.flags.c_contiguous
    assert np.array_equal(a, b)


def test_colours_land_on_the_right_body_parts():
    kp = arms_out_pose()
    img = render_person(kp, SIZE, SIZE, TARGET_LOOK)
    chest = (kp[NECK, :2] + (kp[R_HIP, :2] + kp[L_HIP, :2]) / 2) / 2
    torso = near(img, *chest, radius=8)
    shirt = share_close_to(torso, TARGET_LOOK.shirt, tol=60)
    stripes = share_close_to(torso, TARGET_LOOK.pattern, tol=60)
    assert shirt > 0.15 and stripes > 0.15 and shirt + stripes > 0.7
    # The face sits just above the nose keypoint, hair above the eyes.
    assert share_close_to(near(img, 64, 31, radius=2), TARGET_LOOK.skin, tol=60) > 0.5
    assert share_close_to(near(img, 64, 20, radius=2), TARGET_LOOK.hair, tol=60) > 0.5
    trousers = (kp[R_HIP, :2] + kp[9, :2]) / 2
    assert share_close_to(near(img, *trousers, radius=1), TARGET_LOOK.trousers, tol=60) > 0.5
    for x, y, color in ((2, 2, TARGET_LOOK.wall), (SIZE - 3, 2, TARGET_LOOK.wall),
                        (2, SIZE - 3, TARGET_LOOK.floor), (SIZE - 3, SIZE - 3, TARGET_LOOK.floor)):
        assert np.abs(img[y, x].astype(int) - color).max() < 35, (x, y, img[y, x])


def test_shoes_and_shadow_are_drawn_at_the_feet():
    kp = arms_out_pose()
    img = render_person(kp, SIZE, SIZE, TARGET_LOOK).astype(int)
    empty = render_person(np.zeros((18, 3), np.float32), SIZE, SIZE, TARGET_LOOK).astype(int)
    for ankle in (R_ANK, L_ANK):
        x, y = kp[ankle, :2]
        assert np.abs(img[int(y) + 2, int(x)] - empty[int(y) + 2, int(x)]).sum() > 60
    # Shadow: the floor just beside the feet is darker than the empty floor.
    y = int(kp[R_ANK, 1]) + 5
    assert img[y, 64].sum() < empty[y, 64].sum() - 15


def test_missing_keypoints_are_not_drawn():
    kp = arms_out_pose()
    full = render_person(kp, SIZE, SIZE)
    no_arm = kp.copy()
    no_arm[[R_EL, R_WR]] = 0
    without = render_person(no_arm, SIZE, SIZE)
    empty = render_person(np.zeros((18, 3), np.float32), SIZE, SIZE)
    forearm = (kp[R_EL, :2] + kp[R_WR, :2]) / 2
    assert share_close_to(near(full, *forearm, radius=1), TARGET_LOOK.skin, tol=60) > 0.5
    np.testing.assert_array_equal(near(without, *forearm, radius=4),
                                  near(empty, *forearm, radius=4))
    # Everything else is unchanged: the other arm is still there.
    left_forearm = (kp[6, :2] + kp[7, :2]) / 2
    np.testing.assert_array_equal(near(without, *left_forearm), near(full, *left_forearm))
    # No keypoints at all: just the room, whose colours only change from top to bottom.
    assert (empty == empty[:, :1]).all()


def test_looks_differ():
    kp = arms_out_pose()
    a = render_person(kp, SIZE, SIZE, TARGET_LOOK).astype(int)
    b = render_person(kp, SIZE, SIZE, SOURCE_LOOK).astype(int)
    assert np.abs(a - b).mean() > 20
    assert SOURCE_LOOK.stature > TARGET_LOOK.stature


def test_render_rejects_bad_keypoints():
    with pytest.raises(VidtransError):
        render_person(np.zeros((17, 3)), SIZE, SIZE)


def body_height(kp: np.ndarray, look=TARGET_LOOK) -> np.ndarray:
    torso = np.hypot(*(kp[:, NECK, :2] - (kp[:, R_HIP, :2] + kp[:, L_HIP, :2]) / 2).T)
    return torso / look.torso_length


@pytest.mark.parametrize("look", [TARGET_LOOK, SOURCE_LOOK])
@pytest.mark.parametrize("height,width", [(128, 128), (96, 160), (160, 96)])
def test_dance_stays_inside_the_frame(look, height, width):
    for seed in range(3):
        kp = dance_keypoints(seed, 240, height, width, look)
        assert kp.shape == (240, 18, 3) and kp.dtype == np.float32
        seen = kp[..., 2] > 0
        assert seen[:, :14].all()  # only face keypoints ever hide
        x, y = kp[..., 0][seen], kp[..., 1][seen]
        assert x.min() > 0.03 * width and x.max() < 0.97 * width
        assert y.min() > 0.03 * height and y.max() < 0.97 * height
    # The drawn body too (hands, hair, shoes, shadow): the frame border stays empty room.
    empty = render_person(np.zeros((18, 3), np.float32), height, width, look)
    for pose in kp[::8]:
        img = render_person(pose, height, width, look)
        for border in (np.s_[:2], np.s_[-2:], np.s_[:, :2], np.s_[:, -2:]):
            np.testing.assert_array_equal(img[border], empty[border])


def test_dance_is_smooth_and_keeps_proportions():
    kp = dance_keypoints(7, 300, 256, 256)
    body = body_height(kp)
    assert np.ptp(body) < 0.15 * body.mean()  # only depth changes the size, slowly
    both = (kp[1:, :, 2] > 0) & (kp[:-1, :, 2] > 0)
    step = np.hypot(*(kp[1:, :, :2] - kp[:-1, :, :2]).transpose(2, 0, 1))[both]
    assert step.max() < 0.08 * body.mean()
    assert step.mean() > 0.002 * body.mean()  # and it does move
    upper_arm = np.hypot(*(kp[:, R_EL, :2] - kp[:, R_SH, :2]).T) / body
    np.testing.assert_allclose(upper_arm, TARGET_LOOK.upper_arm, rtol=0.01)


def test_dance_moves_like_a_dance():
    kp = dance_keypoints(1, 600, 256, 256)
    body = body_height(kp).mean()
    assert np.ptp(kp[:, NECK, 0]) > 0.15 * body  # travels across the stage
    hip_height = kp[:, R_ANK, 1] - kp[:, R_HIP, 1]
    assert np.ptp(hip_height) > 0.03 * body  # crouches
    wrist_up = kp[:, R_WR, 1] < kp[:, R_SH, 1]
    assert 0 < wrist_up.mean() < 1  # arms go up and down
    shoulders = np.hypot(*(kp[:, L_SH, :2] - kp[:, R_SH, :2]).T) / body_height(kp)
    assert shoulders.min() < 0.85 * shoulders.max()  # the torso turns


def test_head_turns_hide_the_far_ear():
    kp = dance_keypoints(2, 600, 256, 256)
    right_hidden, left_hidden = kp[:, R_EAR, 2] == 0, kp[:, L_EAR, 2] == 0
    assert right_hidden.any() and left_hidden.any() and (~right_hidden & ~left_hidden).any()
    assert not (right_hidden & left_hidden).any()
    np.testing.assert_array_equal(kp[right_hidden, R_EAR], 0)
    # The right ear hides when the face turns to the person's right (the image left).
    nose_offset = kp[:, 0, 0] - kp[:, NECK, 0]
    assert (nose_offset[right_hidden] < 0).all() and (nose_offset[left_hidden] > 0).all()


def test_dances_are_reproducible_and_vary_with_the_seed():
    a = dance_keypoints(11, 90, SIZE, SIZE)
    np.testing.assert_array_equal(a, dance_keypoints(11, 90, SIZE, SIZE))
    gen = DanceGenerator(11)
    chunks = np.concatenate([gen.keypoints(40, SIZE, SIZE),
                             gen.keypoints(50, SIZE, SIZE, start=40)])
    np.testing.assert_allclose(chunks, a, atol=1e-4)
    b = dance_keypoints(12, 90, SIZE, SIZE)
    assert np.abs(a[..., :2] - b[..., :2]).mean() > 0.02 * SIZE


def test_source_dancer_is_taller():
    target = body_height(dance_keypoints(4, 60, 256, 256, TARGET_LOOK), TARGET_LOOK).mean()
    source = body_height(dance_keypoints(4, 60, 256, 256, SOURCE_LOOK), SOURCE_LOOK).mean()
    assert source > 1.03 * target
