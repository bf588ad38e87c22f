"""Tests for vidtrans.pose: rendering, detection, smoothing, normalisation, keypoint files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.pose import (
    COLORS,
    FLIP_INDEX,
    KEYPOINT_INDEX,
    LIMBS,
    OneEuroFilter,
    PoseDetector,
    PoseNormalizer,
    PoseStats,
    PoseStyle,
    estimate_pose_stats,
    flip_keypoints,
    looks_like_pose_map,
    read_keypoints,
    render_pose,
    render_poses,
    smooth_track,
    write_keypoints_npz,
    write_openpose_json,
)
from vidtrans.video import VideoReader

SHARED = Path(__file__).resolve().parents[2] / "shared"
CARPHONE = SHARED / "data" / "people" / "carphone.mp4"
# 60 of its 120 frames, at half the detection time: the tests below hold on them with the margins
# they have on the whole clip (every upper-body point found in every frame; median errors of 0.9 %
# and 0.4 % of the width, 1.0 % and 0.5 % on the whole clip, against bounds of 3 % and 1 %).
CARPHONE_SECONDS = 2.0

# A person standing facing the camera, x and y as fractions of the frame height / width.
_STANDING = {
    "nose": (0.50, 0.12), "neck": (0.50, 0.22),
    "r_shoulder": (0.42, 0.22), "r_elbow": (0.38, 0.36), "r_wrist": (0.36, 0.48),
    "l_shoulder": (0.58, 0.22), "l_elbow": (0.62, 0.36), "l_wrist": (0.64, 0.48),
    "r_hip": (0.45, 0.50), "r_knee": (0.45, 0.68), "r_ankle": (0.45, 0.86),
    "l_hip": (0.55, 0.50), "l_knee": (0.55, 0.68), "l_ankle": (0.55, 0.86),
    "r_eye": (0.48, 0.10), "l_eye": (0.52, 0.10), "r_ear": (0.46, 0.11), "l_ear": (0.54, 0.11),
}


def standing_pose(height: int, width: int) -> np.ndarray:
    kp = np.zeros((18, 3), dtype=np.float32)
    for name, (x, y) in _STANDING.items():
        kp[KEYPOINT_INDEX[name]] = (x * width, y * height, 1.0)
    return kp


def pixel(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return image[int(round(xy[1])), int(round(xy[0]))].astype(int)


# ---------------------------------------------------------------- keypoints and rendering

def test_limbs_and_colours_follow_openpose():
    assert len(LIMBS) == 17 and len(COLORS) == 18
    assert LIMBS[0] == (KEYPOINT_INDEX["neck"], KEYPOINT_INDEX["r_shoulder"])
    assert LIMBS[12] == (KEYPOINT_INDEX["neck"], KEYPOINT_INDEX["nose"])
    assert COLORS[0] == (255, 0, 0)
    assert FLIP_INDEX[KEYPOINT_INDEX["r_shoulder"]] == KEYPOINT_INDEX["l_shoulder"]
    assert FLIP_INDEX[KEYPOINT_INDEX["nose"]] == KEYPOINT_INDEX["nose"]
    kp = standing_pose(100, 80)
    flipped = flip_keypoints(kp, 80)
    assert flipped[KEYPOINT_INDEX["r_shoulder"], 0] == pytest.approx(79 - kp[KEYPOINT_INDEX["l_shoulder"], 0])
    np.testing.assert_allclose(flip_keypoints(flipped, 80), kp, atol=1e-4)


def test_render_puts_limb_colours_in_the_right_places():
    kp = standing_pose(256, 256)
    image = render_pose(kp, 256, 256)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    neck, r_shoulder = kp[1, :2], kp[2, :2]
    # Limb 0 (neck -> right shoulder) is red at 0.6 alpha over black.
    np.testing.assert_allclose(pixel(image, (neck + r_shoulder) / 2), [153, 0, 0], atol=12)
    # The right lower leg (limb 8, knee -> ankle) is on the image's left, in colour 8.
    knee, ankle = kp[9, :2], kp[10, :2]
    assert LIMBS[8] == (9, 10)
    np.testing.assert_allclose(pixel(image, (knee + ankle) / 2), np.array(COLORS[8]) * 0.6, atol=12)
    assert (knee[0] + ankle[0]) / 2 < 128
    # The nose joint is drawn in colour 0 under the neck->nose limb blend.
    assert pixel(image, kp[0, :2])[0] > 150
    assert image[:20, :].max() == 0 and image[:, :60].max() == 0  # nothing where no body is


def test_missing_keypoint_draws_nothing():
    kp = standing_pose(256, 256)
    full = render_pose(kp, 256, 256)
    kp[KEYPOINT_INDEX["r_wrist"], 2] = 0.0
    image = render_pose(kp, 256, 256)
    elbow, wrist = kp[3, :2], kp[4, :2]
    assert pixel(full, (elbow + wrist) / 2).sum() > 100
    assert pixel(image, (elbow + wrist) / 2).sum() == 0
    assert pixel(image, wrist).sum() == 0
    assert pixel(image, (kp[2, :2] + elbow) / 2).sum() > 100  # the upper arm is still there
    # Below the confidence threshold counts as missing too.
    kp[KEYPOINT_INDEX["r_wrist"], 2] = 0.01
    assert pixel(render_pose(kp, 256, 256, min_confidence=0.05), wrist).sum() == 0


@pytest.mark.parametrize("height, width", [(720, 1280), (241, 321)])
def test_render_any_size(height, width):
    empty = render_pose(np.zeros((18, 3), np.float32), height, width)
    assert empty.shape == (height, width, 3) and empty.max() == 0
    image = render_pose(standing_pose(height, width), height, width)
    assert image.shape == (height, width, 3)
    assert 0.005 < (image.max(axis=2) > 0).mean() < 0.2


def test_render_batch_and_partly_offscreen():
    track = np.stack([standing_pose(64, 48), np.zeros((18, 3), np.float32)])
    track[0, :, 0] += 24  # the left arm leaves the frame on the right
    maps = render_poses(track, 64, 48)
    assert maps.shape == (2, 64, 48, 3)
    assert maps[0].max() > 0 and maps[1].max() == 0
    np.testing.assert_array_equal(maps[0], render_pose(track[0], 64, 48))


def test_style_dict_round_trip_and_version_check():
    style = PoseStyle(limb_width=6.0, background=(10, 20, 30))
    data = json.loads(json.dumps(style.to_dict()))
    assert PoseStyle.from_dict(data) == style
    with pytest.raises(VidtransError, match="version"):
        PoseStyle.from_dict({**data, "version": 3})
    image = render_pose(np.zeros((18, 3), np.float32), 8, 8, style)
    assert (image == (10, 20, 30)).all()


def test_looks_like_pose_map():
    rng = np.random.default_rng(1)
    poses = [standing_pose(160, 120) + rng.normal(0, 2, (18, 3)).astype(np.float32) * [1, 1, 0] for _ in range(5)]
    maps = [render_pose(p, 160, 120) for p in poses]
    assert looks_like_pose_map(maps)
    blurred = [np.clip(m.astype(float) * 0.9 + 8, 0, 255).astype(np.uint8) for m in maps]  # lifted blacks
    assert looks_like_pose_map(blurred)
    noise = [rng.integers(0, 256, (160, 120, 3), dtype=np.uint8) for _ in range(3)]
    assert not looks_like_pose_map(noise)
    yy, xx = np.mgrid[0:160, 0:120]
    natural = np.stack([100 + 60 * np.sin(xx / 9), 90 + 50 * np.cos(yy / 13), 80 + 30 * np.sin((xx + yy) / 7)], axis=2)
    assert not looks_like_pose_map([natural.astype(np.uint8)] * 3)
    dark_scene = (natural * 0.3).astype(np.uint8)
    dark_scene[60:100, 40:80] = (200, 180, 170)  # a dim room with a lit, skin-coloured patch
    assert not looks_like_pose_map([dark_scene] * 3)
    assert not looks_like_pose_map([np.zeros((160, 120, 3), np.uint8)])
    stripes = np.repeat(np.asarray(COLORS, np.uint8)[None, :, None], 160, axis=0).repeat(7, axis=2).reshape(160, 126, 3)
    assert not looks_like_pose_map([stripes])  # palette colours but no black background


# ---------------------------------------------------------------- detector

def test_detector_without_mediapipe_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(VidtransError, match="pip install mediapipe"):
        PoseDetector()


def test_blazepose_mapping_to_coco18():
    from vidtrans.pose.detector import blazepose_to_coco18

    landmarks = np.zeros((33, 3), np.float32)
    landmarks[:, :2] = 0.5
    landmarks[:, 2] = 0.9
    landmarks[12] = (0.3, 0.4, 0.8)    # BlazePose right shoulder
    landmarks[11] = (0.7, 0.4, 0.6)    # BlazePose left shoulder
    landmarks[16, 2] = 0.2             # right wrist barely visible
    landmarks[27, 1] = 1.3             # left ankle below the frame
    kp = blazepose_to_coco18(landmarks, width=101, height=51, min_visibility=0.5)
    np.testing.assert_allclose(kp[KEYPOINT_INDEX["r_shoulder"]], (0.3 * 101 - 0.5, 0.4 * 51 - 0.5, 0.8), rtol=1e-5)
    np.testing.assert_allclose(kp[KEYPOINT_INDEX["neck"]], (0.5 * 101 - 0.5, 0.4 * 51 - 0.5, 0.6), rtol=1e-5)
    assert (kp[KEYPOINT_INDEX["r_wrist"]] == 0).all()
    assert (kp[KEYPOINT_INDEX["l_ankle"]] == 0).all()
    assert kp[KEYPOINT_INDEX["r_ankle"], 2] == pytest.approx(0.9)


@pytest.fixture(scope="module")
def carphone() -> tuple[list[np.ndarray], np.ndarray]:
    """The first CARPHONE_SECONDS of the real video, and what one tracking detector finds in them
    (both tests below compare against it)."""
    if not CARPHONE.exists():
        pytest.skip(f"{CARPHONE} not present")
    pytest.importorskip("mediapipe")
    # As vidtrans reads it: its pixels are not square (128:117), and are shown 193 wide.
    with VideoReader(CARPHONE, end=CARPHONE_SECONDS) as reader:
        frames = [frame.image for frame in reader]
    with PoseDetector(video_mode=True) as detector:
        return frames, np.stack([detector.detect(f) for f in frames])


def test_detector_on_real_video_and_left_right(carphone):
    frames, track = carphone
    height, width = frames[0].shape[:2]
    with PoseDetector(video_mode=True) as detector:
        mirrored = np.stack([detector.detect(np.ascontiguousarray(f[:, ::-1])) for f in frames])
    assert track.shape == (len(frames), 18, 3) and track.dtype == np.float32

    upper = [KEYPOINT_INDEX[n] for n in ("nose", "r_eye", "l_eye", "neck", "r_shoulder", "l_shoulder")]
    for kp in (track, mirrored):
        found = kp[:, upper, 2] > 0
        assert found.mean(axis=0).min() >= 0.95
        both = found[:, 4] & found[:, 5]
        # The person's right shoulder is on the image's left, whichever way the image is mirrored.
        assert (kp[both, 2, 0] < kp[both, 5, 0]).mean() >= 0.95
    # Mirroring the image mirrors the keypoints with left and right swapped.
    expected = flip_keypoints(track, width)
    both = (expected[:, upper, 2] > 0) & (mirrored[:, upper, 2] > 0)
    error = np.abs(expected[:, upper, :2] - mirrored[:, upper, :2])[both]
    assert np.median(error) < 0.03 * width


def test_pipeline_detection_on_real_video_matches_one_detector(carphone):
    """`vidtrans pose` and `run` detect with two detectors on alternating frames (for speed):
    they must find what one tracking detector finds, in the same places."""
    from vidtrans.pose.track import detect_keypoints

    frames, single = carphone
    paired = detect_keypoints(CARPHONE, end=CARPHONE_SECONDS)
    assert paired.shape == single.shape
    upper = [KEYPOINT_INDEX[n] for n in ("nose", "r_eye", "l_eye", "neck", "r_shoulder", "l_shoulder")]
    found = paired[:, upper, 2] > 0
    assert found.mean(axis=0).min() >= 0.95
    both = found & (single[:, upper, 2] > 0)
    error = np.linalg.norm(paired[:, upper, :2] - single[:, upper, :2], axis=-1)[both]
    assert np.median(error) < 0.01 * frames[0].shape[1]


def test_detection_on_frames_decoded_small_gives_keypoints_in_input_pixels(tmp_path):
    """Above 640 px the pipeline decodes frames straight to the detector's size; the keypoints must
    still be in the pixels of the input video, where one detector on full frames puts them."""
    pytest.importorskip("mediapipe")
    from tests.media import dancer_clip
    from vidtrans.pose.track import detect_keypoints

    clip = dancer_clip(tmp_path / "hd.mp4", frames=6, size=(1280, 720), fps=30)
    with VideoReader(clip.path) as reader, PoseDetector(video_mode=True) as detector:
        single = np.stack([detector.detect(frame.image) for frame in reader])
    paired = detect_keypoints(clip.path)
    upper = [KEYPOINT_INDEX[n] for n in ("neck", "r_shoulder", "l_shoulder", "r_hip", "l_hip")]
    both = (paired[:, upper, 2] > 0) & (single[:, upper, 2] > 0)
    assert both.mean() >= 0.9
    error = np.linalg.norm(paired[:, upper, :2] - single[:, upper, :2], axis=-1)[both]
    assert np.median(error) < 0.01 * 1280


@pytest.mark.parametrize("kind", ["black", "noise"])
def test_detector_finds_nobody_in_empty_frames(kind):
    pytest.importorskip("mediapipe")
    rng = np.random.default_rng(0)
    frame = np.zeros((120, 160, 3), np.uint8) if kind == "black" else rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    with PoseDetector(video_mode=False) as detector:
        kp = detector.detect(frame)
    assert kp.shape == (18, 3) and (kp[:, 2] == 0).all() and (kp == 0).all()


# ---------------------------------------------------------------- smoothing

def _noisy_track(frames: int = 120, noise: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(frames)[:, None]
    base = standing_pose(256, 256)
    truth = np.repeat(base[None], frames, axis=0)
    phase = np.arange(18)[None, :] * 0.3
    truth[..., 0] += 20 * np.sin(2 * np.pi * t / 40 + phase)
    truth[..., 1] += 12 * np.cos(2 * np.pi * t / 55 + phase)
    noisy = truth.copy()
    noisy[..., :2] += np.random.default_rng(seed).normal(0, noise, noisy[..., :2].shape)
    return truth, noisy


def _jitter(track: np.ndarray) -> float:
    return float(np.abs(np.diff(track[..., :2], n=2, axis=0)).mean())


def test_offline_smoothing_removes_jitter_without_lag():
    truth, noisy = _noisy_track()
    smooth = smooth_track(noisy)
    assert _jitter(noisy) / _jitter(smooth) >= 3
    assert np.std(noisy[..., :2] - truth[..., :2]) / np.std(smooth[..., :2] - truth[..., :2]) >= 2
    # On clean motion the centred filter follows the truth with no lag: error well under one
    # frame of motion.
    clean = smooth_track(truth)
    inner = slice(5, -5)
    step = np.abs(np.diff(truth[..., :2], axis=0)).mean()
    assert np.abs(clean[inner, :, :2] - truth[inner, :, :2]).mean() < 0.25 * step
    lags = range(-3, 4)
    x_true, x_smooth = truth[:, 3, 0] - truth[:, 3, 0].mean(), smooth[:, 3, 0] - smooth[:, 3, 0].mean()
    corr = [np.dot(np.roll(x_true, lag)[10:-10], x_smooth[10:-10]) for lag in lags]
    assert list(lags)[int(np.argmax(corr))] == 0


def test_smoothing_bridges_short_gaps_only():
    truth, _ = _noisy_track(frames=60, noise=0)
    track = truth.copy()
    wrist = KEYPOINT_INDEX["r_wrist"]
    track[20, wrist] = 0.0            # one-frame dropout
    track[35:45, wrist] = 0.0         # ten-frame absence
    out = smooth_track(track, max_gap=3)
    assert out[20, wrist, 2] > 0
    assert np.abs(out[20, wrist, :2] - truth[20, wrist, :2]).max() < 2.0
    assert (out[35:45, wrist] == 0).all()
    assert (out[34, wrist, 2] > 0) and (out[45, wrist, 2] > 0)


def test_one_euro_reduces_jitter_and_resets_missing_joints():
    truth, noisy = _noisy_track()
    euro = OneEuroFilter(min_cutoff=1.0, beta=0.02)
    filtered = np.stack([euro(pose, i / 30) for i, pose in enumerate(noisy)])
    assert _jitter(noisy) / _jitter(filtered) >= 2
    nose = KEYPOINT_INDEX["nose"]
    gone = noisy[0].copy()
    gone[nose] = 0.0
    assert (euro(gone, 200 / 30)[nose] == 0).all()
    back = noisy[0].copy()
    back[nose, :2] += 100  # reappears elsewhere: taken as is, not slid in from the old place
    np.testing.assert_allclose(euro(back, 201 / 30)[nose], back[nose], atol=1e-3)
    with pytest.raises(VidtransError):
        euro(back, 0.0)


# ---------------------------------------------------------------- normalisation

def _walking_track(frames: int, frame_h: int, frame_w: int, height_far: float, height_near: float,
                   far: float, near: float) -> np.ndarray:
    """A person walking towards the camera: ankle line far -> near, body height growing with it."""
    base = standing_pose(1, 1)
    foot = base[KEYPOINT_INDEX["r_ankle"], 1]
    top = base[KEYPOINT_INDEX["nose"], 1]
    track = []
    for t in np.linspace(0, 1, frames):
        ankle_y = far + (near - far) * t
        body = height_far + (height_near - height_far) * t
        k = base.copy()
        scale = body / (foot - top)
        k[:, 1] = ankle_y + (k[:, 1] - foot) * scale
        k[:, 0] = 0.5 * frame_w / frame_h + (k[:, 0] - 0.5) * scale
        k[:, :2] *= frame_h
        track.append(k)
    return np.stack(track).astype(np.float32)


def _height_and_ankle(track: np.ndarray, frame_h: int) -> tuple[np.ndarray, np.ndarray]:
    ankle = track[:, [10, 13], 1].max(axis=1)
    return (ankle - track[:, 0, 1]) / frame_h, ankle / frame_h


def test_normalization_maps_source_onto_target_body_and_floor():
    # Source: 720p, a person twice as tall as the target's and standing lower in the frame.
    source = _walking_track(60, 720, 1280, height_far=0.60, height_near=0.80, far=0.85, near=0.97)
    target = _walking_track(40, 256, 192, height_far=0.30, height_near=0.40, far=0.70, near=0.78)
    source_stats = estimate_pose_stats(source, 720, 1280)
    target_stats = estimate_pose_stats(target, 256, 192)
    assert source_stats.height_near == pytest.approx(0.80, abs=0.01)
    assert target_stats.far == pytest.approx(0.70, abs=0.01)

    mapped = PoseNormalizer(source_stats, target_stats)(source)
    height, ankle = _height_and_ankle(mapped, 256)
    t = np.linspace(0, 1, 60)
    np.testing.assert_allclose(height, 0.30 + 0.10 * t, atol=0.02)
    np.testing.assert_allclose(ankle, 0.70 + 0.08 * t, atol=0.02)
    # Horizontally the person stays centred in the target frame.
    assert np.abs(mapped[:, 1, 0] / 192 - 0.5).max() < 0.02
    # A single pose works too, and missing keypoints stay missing.
    pose = source[30].copy()
    pose[KEYPOINT_INDEX["l_wrist"]] = 0.0
    single = PoseNormalizer(source_stats, target_stats)(pose)
    assert single.shape == (18, 3) and (single[KEYPOINT_INDEX["l_wrist"]] == 0).all()
    np.testing.assert_allclose(single[:7], mapped[30, :7], atol=1e-3)


def test_a_target_trained_on_a_crop_around_them_sees_their_own_video_as_trained():
    """`vidtrans train target.mp4` crops a square around where the dancer stands; their own video,
    whole, must map onto that crop (it did not when they stood off-centre: the offset from the frame
    centre was kept), and a version 1 card keeps the old mapping."""
    video = _walking_track(60, 360, 640, height_far=0.5, height_near=0.6, far=0.8, near=0.9)
    video[..., 0] += 130  # standing right of the frame's centre
    left, side, size = 270, 360, 256  # the crop VideoPairs takes around them, scaled to the model's size
    crop = video.copy()
    crop[..., 0] = (crop[..., 0] - left + 0.5) * size / side - 0.5
    crop[..., 1] = (crop[..., 1] + 0.5) * size / side - 0.5
    target = estimate_pose_stats(crop, size, size)
    mapped = PoseNormalizer(estimate_pose_stats(video, 360, 640), target)(video)
    np.testing.assert_allclose(mapped[..., :2], crop[..., :2], atol=0.5)

    upper = {"shoulder_width", "neck_x", "neck_y", "head_length"}  # version 4's upper body, which versions 1-3 lack
    version_1 = PoseStats.from_dict({k: v for k, v in target.to_dict().items() if k not in upper | {"centre_x"}}
                                    | {"version": 1})
    assert version_1.centre_x is None and version_1.to_dict().keys() == target.to_dict().keys() - upper - {"centre_x"}
    old = PoseNormalizer(estimate_pose_stats(video, 360, 640, like=version_1), version_1)(video)
    assert np.abs(old[..., 0] - crop[..., 0]).mean() == pytest.approx((left + side / 2 - 320) * size / side, abs=1)


def test_pose_stats_round_trip_and_needs_full_bodies():
    stats = estimate_pose_stats(_walking_track(20, 256, 256, 0.5, 0.6, 0.8, 0.9), 256, 256)
    assert PoseStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    with pytest.raises(VidtransError):
        PoseStats.from_dict({**stats.to_dict(), "version": 7})
    with pytest.raises(VidtransError, match="fields"):  # version 1 has no centre_x
        PoseStats.from_dict({**stats.to_dict(), "version": 1})
    upper_body = _walking_track(20, 256, 256, 0.5, 0.6, 0.8, 0.9)
    upper_body[:, [10, 13]] = 0.0
    with pytest.raises(VidtransError, match="ankles"):
        estimate_pose_stats(upper_body, 256, 256)


# ---------------------------------------------------------------- keypoint files

def test_npz_round_trip(tmp_path):
    _, track = _noisy_track(frames=7)
    track[3, 5] = 0.0
    write_keypoints_npz(tmp_path / "kp.npz", track, width=256, height=256)
    loaded = read_keypoints(tmp_path / "kp.npz")
    np.testing.assert_array_equal(loaded.keypoints, track)
    assert (loaded.width, loaded.height) == (256, 256)


def test_openpose_json_folder_coco_and_body25(tmp_path):
    _, track = _noisy_track(frames=12)
    track[4] = 0.0  # nobody in frame 4
    write_openpose_json(tmp_path / "coco", track)
    # A folder copied from a Mac holds "._" resource files beside each JSON: hidden, no frames.
    (tmp_path / "coco" / "._clip_000000000005_keypoints.json").write_bytes(b"\x00\x05\x16\x07 not JSON")
    loaded = read_keypoints(tmp_path / "coco")
    np.testing.assert_allclose(loaded.keypoints, track, atol=1e-4)
    assert loaded.width is None

    # BODY_25 (OpenPose's default): MidHip at index 8 and foot points that COCO-18 lacks.
    body25 = np.zeros((25, 3), np.float32)
    body25[:, 0] = np.arange(25) * 10 + 1
    body25[:, 1] = 5
    body25[:, 2] = 0.9
    folder = tmp_path / "body25"
    folder.mkdir()
    for i in range(11):  # unpadded numbers: frame order comes from the numbers (clip_10 sorts before clip_2 as text)
        # A less confident person first, elsewhere (the person picked in frame 0 is followed).
        other = {"pose_keypoints_2d": (body25 * [1, 1, 0.1] + [0, 300, 0]).ravel().tolist()}
        (folder / f"clip_{i}_keypoints.json").write_text(json.dumps(
            {"people": [other, {"pose_keypoints_2d": (body25 + [i, 0, 0]).ravel().tolist()}]}))
    loaded = read_keypoints(folder).keypoints
    assert loaded.shape == (11, 18, 3)
    np.testing.assert_allclose(loaded[:, 0, 0], np.arange(11) + 1)                         # nose, by frame number
    assert loaded[0, KEYPOINT_INDEX["r_hip"], 0] == pytest.approx(91)                      # BODY_25 RHip = 9
    assert loaded[0, KEYPOINT_INDEX["l_ear"], 0] == pytest.approx(181)                     # BODY_25 LEar = 18
    assert loaded[0, 0, 2] == pytest.approx(0.9)


def test_dwpose_style_json(tmp_path):
    frame = [[x, y] for x, y in _STANDING.values()]
    frame[4] = None
    path = tmp_path / "poses.json"
    path.write_text(json.dumps({"frames": [frame, frame], "width": 200, "height": 100}))
    loaded = read_keypoints(path)
    assert loaded.keypoints.shape == (2, 18, 3) and (loaded.width, loaded.height) == (200, 100)
    assert loaded.keypoints[0, 0, 0] == pytest.approx(100) and loaded.keypoints[0, 0, 1] == pytest.approx(12)
    assert (loaded.keypoints[:, 4] == 0).all()


@pytest.mark.parametrize("name, content", [
    ("bad.npz", b"not a zip"),
    ("bad.json", b"{not json"),
    ("wrong.json", b'{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}'),
    ("short.json", b"[[[1, 2], [3, 4]]]"),
    ("kp.txt", b"hello"),
])
def test_bad_keypoint_files_raise_one_line(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VidtransError) as info:
        read_keypoints(path)
    assert "\n" not in str(info.value)


def test_missing_and_empty_keypoint_paths(tmp_path):
    with pytest.raises(VidtransError, match="no such"):
        read_keypoints(tmp_path / "nope.npz")
    with pytest.raises(VidtransError, match="no OpenPose"):
        read_keypoints(tmp_path)


def test_stderr_is_restored_when_detectors_silence_it_from_several_threads():
    """Detectors run in two threads; MediaPipe's chatter is silenced around their calls, and
    stderr must point where it did afterwards, however the calls overlap."""
    import os
    import threading

    from vidtrans.pose.detector import _native_stderr_silenced

    before = os.fstat(2)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():  # enters first, leaves first
        with _native_stderr_silenced():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with _native_stderr_silenced():
            second_in.set()
            first_out.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_every_keypoint_consumer_refuses_a_wrong_shape_naming_it():
    bad_track, bad_pose = np.zeros((4, 17, 3), np.float32), np.zeros((18, 2), np.float32)
    for call in (lambda: render_poses(bad_track, 8, 8), lambda: smooth_track(bad_track),
                 lambda: estimate_pose_stats(bad_track, 8, 8), lambda: write_keypoints_npz("unused.npz", bad_track, 8, 8)):
        with pytest.raises(VidtransError, match=r"\(4, 17, 3\), expected \(frames, K, 3\) keypoints with K = 18 "
                                                r"\(COCO-18 body\) or 128 \(body, face and hands\)"):
            call()
    for call in (lambda: render_pose(bad_pose, 8, 8), lambda: OneEuroFilter()(bad_pose, 0.0)):
        with pytest.raises(VidtransError, match=r"\(18, 2\), expected \(K, 3\) keypoints with K = 18"):
            call()


@pytest.mark.parametrize("cores, detectors", [(1, 2), (2, 2), (5, 2), (6, 3), (16, 8), (64, 8)])
def test_detection_takes_half_the_cores_from_two_to_eight(monkeypatch, cores, detectors):
    import os

    from vidtrans.pose import stages

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert stages.default_detectors() == detectors


def test_normalised_json_with_a_point_off_the_canvas_is_still_normalised(tmp_path):
    """DWPose can put a wrist a little outside the frame (x = 1.004): the file stays normalised
    (it was read as pixels: a person 1 pixel tall, exit 0); without a frame size it is refused."""
    frame = [[x, y] for x, y in _STANDING.values()]  # normalised
    frame[4] = [1.004, 0.5]
    path = tmp_path / "poses.json"
    path.write_text(json.dumps({"frames": [frame], "width": 200, "height": 100}))
    loaded = read_keypoints(path).keypoints
    assert loaded[0, 0, 0] == pytest.approx(100) and loaded[0, 4, 0] == pytest.approx(200.8)
    path.write_text(json.dumps([frame]))
    with pytest.raises(VidtransError, match="normalised .* gives no frame size"):
        read_keypoints(path)
