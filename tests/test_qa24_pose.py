"""QA round 24, pose: a whole-body dancer leaving the shot lost their face and hands in the last
frame before (and the first after re-entering) wherever that frame's detector found the body only;
with someone else in the shot, a dancer hidden for one frame made the detectors follow different
people, and the track became a body halfway between them; a glitch just after a cut hid the cut
from the filter, which slid the body across; keypoint filter, detector, drawing and normalization
settings at their limits (NaN, infinity, text, a huge sigma, an empty frame) gave NaN keypoints,
blank maps, tracebacks or a 45 GB allocation instead of one clear line."""

from __future__ import annotations

import numpy as np
import pytest

from vidtrans.errors import VidtransError
from vidtrans.pose import (
    OneEuroFilter, PoseDetector, bridge_gaps, estimate_pose_stats, fit_to_frame, render_pose, render_poses,
    smooth_track,
)
from vidtrans.pose.keypoints import FACE, LEFT_HAND, NUM_KEYPOINTS, has_person
from vidtrans.train.synth import SOURCE_LOOK, dance_keypoints, render_person

from tests.media import make_clip

SIZE = 256


def _whole_body(frames: int, seed: int = 7) -> np.ndarray:
    return dance_keypoints(seed, frames, SIZE, SIZE, SOURCE_LOOK, whole_body=True)


def _as_detected(track: np.ndarray) -> np.ndarray:
    """A whole-body track as KeypointStage gives it: face and hands on even frames only."""
    out = track.copy()
    out[1::2, NUM_KEYPOINTS:] = 0.0
    return out


def _face_shown(track: np.ndarray) -> np.ndarray:
    return (track[:, FACE, 2] > 0).any(axis=1)


def test_a_whole_body_dancer_leaving_and_coming_back_keeps_face_and_hands_in_every_frame_shown():
    # On screen in frames 0-7 and 13-23: frame 7, the last before they leave, and frame 13, the
    # first back, are body-only detections, and had no face or hands after filtering (every other
    # frame showing the body had them).
    track = _as_detected(_whole_body(24))
    track[8:13] = 0.0
    smoothed = smooth_track(track)
    shown = has_person(smoothed)
    assert shown.tolist() == [True] * 8 + [False] * 5 + [True] * 11
    assert (_face_shown(smoothed) == shown).all(), np.flatnonzero(_face_shown(smoothed) != shown)
    assert ((smoothed[:, LEFT_HAND, 2] > 0).any(axis=1) == shown).all()
    # Where it was missing, the face is its neighbour's (then filtered), as at a clip's first and last frames.
    np.testing.assert_allclose(smoothed[7, FACE], smoothed[6, FACE], atol=0.5)
    np.testing.assert_allclose(smoothed[13, FACE], smoothed[14, FACE], atol=0.5)


def test_a_face_that_is_really_gone_is_not_held_inside_a_run():
    # The body stays on screen; the face, seen until frame 6, is not found from frame 8 on: frame 7
    # cannot tell, and stays without a face, as before (only a run's first and last frames take
    # their neighbour's).
    track = _as_detected(_whole_body(16))
    track[8:, FACE] = 0.0
    smoothed = smooth_track(track)
    assert _face_shown(smoothed).tolist() == [True] * 7 + [False] * 9


def test_pose_whole_body_keeps_the_face_in_the_last_frame_before_the_dancer_leaves(cli, tmp_path, monkeypatch):
    from vidtrans.pose import stages

    monkeypatch.setattr(stages, "default_detectors", lambda: 2)  # frame 5, the last shown, found without a face
    track = dance_keypoints(7, 12, SIZE, SIZE, SOURCE_LOOK)
    empty = render_person(np.zeros_like(track[0]), SIZE, SIZE, SOURCE_LOOK)
    clip = make_clip(tmp_path / "leave.mp4", frames=12, size=(SIZE, SIZE), audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, SOURCE_LOOK) if i < 6 else empty)
    result = cli("pose", clip.path, "-o", tmp_path / "pose.mp4", "--whole-body", "--keypoints", tmp_path / "kp.npz")
    assert result.returncode == 0, result.stderr
    keypoints = np.load(tmp_path / "kp.npz")["keypoints"]
    assert has_person(keypoints).tolist() == [True] * 6 + [False] * 6
    assert _face_shown(keypoints).tolist() == [True] * 6 + [False] * 6


@pytest.mark.parametrize("setting, value", [
    ("window", 5.0), ("window", "5"), ("window", True), ("window", None),
    ("sigma", float("inf")), ("sigma", float("nan")), ("sigma", -1.0), ("sigma", "1.5"), ("sigma", None),
    ("max_gap", -1), ("max_gap", 2.5), ("max_gap", "3"), ("max_gap", None), ("max_gap", float("nan")),
    ("min_confidence", float("nan")), ("min_confidence", -0.5), ("min_confidence", "0"),
])
def test_keypoint_filter_settings_no_filter_can_use_are_refused_in_one_line(setting, value):
    track = dance_keypoints(7, 12, SIZE, SIZE, SOURCE_LOOK)
    with pytest.raises(VidtransError) as error:
        smooth_track(track, **{setting: value})
    message = str(error.value)
    assert setting in message and "\n" not in message, message
    if setting in ("max_gap", "min_confidence"):
        with pytest.raises(VidtransError):
            bridge_gaps(track, **{setting: value})


def test_filter_settings_at_their_limits_still_filter():
    track = dance_keypoints(7, 30, SIZE, SIZE, SOURCE_LOOK)
    np.testing.assert_array_equal(smooth_track(track, window=1, sigma=0, max_gap=0), track)
    assert np.isfinite(smooth_track(track, window=np.int64(3), sigma=np.float32(1.5), max_gap=np.int32(2))).all()
    # A sigma far longer than the clip is a plain mean over it (it used to ask for a kernel of 6e9
    # taps: 45 GB), and a window longer than the clip leaves the median out.
    flat = smooth_track(track, window=10**9 + 1, sigma=1e9)
    shown = track[..., 2] > 0
    always = shown.all(axis=0)
    np.testing.assert_allclose(flat[5, always, :2], track[:, always, :2].mean(axis=0), atol=1e-3)


@pytest.mark.parametrize("setting, value", [
    ("min_cutoff", float("nan")), ("beta", float("nan")), ("d_cutoff", float("nan")), ("min_cutoff", float("inf")),
    ("beta", float("inf")), ("min_cutoff", "1"), ("beta", None), ("min_confidence", float("nan")),
])
def test_one_euro_settings_that_give_nan_keypoints_are_refused_in_one_line(setting, value):
    # NaN settings used to give NaN keypoints, 828 of 864 numbers of a dance.
    with pytest.raises(VidtransError) as error:
        OneEuroFilter(**{setting: value})
    assert setting in str(error.value), str(error.value)


@pytest.mark.parametrize("later", [float("nan"), float("inf"), "0.1", None])
def test_one_euro_times_that_are_no_finite_seconds_are_refused_in_one_line(later):
    track = dance_keypoints(7, 3, SIZE, SIZE, SOURCE_LOOK)
    one_euro = OneEuroFilter()
    one_euro(track[0], 0.0)
    with pytest.raises(VidtransError, match="time"):
        one_euro(track[1], later)
    # The filter goes on from where it was.
    assert np.isfinite(one_euro(track[2], 0.1)).all()


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 64, 3), (64, 0, 3)])
def test_an_empty_frame_is_refused_and_the_detector_still_works(shape):
    # (0, 64) broke MediaPipe's graph for good (every later frame, and closing it, raised
    # RuntimeError); (0, 0) raised ZeroDivisionError.
    with PoseDetector() as detector:
        with pytest.raises(VidtransError, match="empty"):
            detector.detect(np.zeros(shape, np.uint8))
        assert detector.detect(np.zeros((64, 64, 3), np.uint8)).shape == (NUM_KEYPOINTS, 3)


@pytest.mark.parametrize("shape", [(1, 5000, 3), (5000, 1, 3), (1, 1, 3)])
def test_a_one_pixel_strip_is_searched_and_shows_nobody(shape):
    # A strip scaled down to the detector's side lost its one row: OpenCV's resize assertion.
    with PoseDetector() as detector:
        assert not detector.detect(np.zeros(shape, np.uint8)).any()


@pytest.mark.parametrize("frame_size", [(0, 0), (-5, 10), ("a", "b"), (64,), (float("nan"), 64), (True, 64)])
def test_a_frame_size_that_is_no_size_is_refused(frame_size):
    with PoseDetector() as detector:
        with pytest.raises(VidtransError, match="frame_size"):
            detector.detect(np.zeros((64, 64, 3), np.uint8), frame_size)


@pytest.mark.parametrize("height, width", [(0, 256), (256, 0), ("256", 256), (True, 256), (float("inf"), 256),
                                           (float("nan"), 256), (10**30, 256)])
def test_pose_statistics_of_a_frame_that_is_no_size_are_refused_in_one_line(height, width):
    track = dance_keypoints(7, 12, SIZE, SIZE, SOURCE_LOOK)
    with pytest.raises(VidtransError, match="frame_height|frame_width"):
        estimate_pose_stats(track, height, width)


@pytest.mark.parametrize("source, target", [((0, 64), (64, 64)), ((64, 64), (0, 64)), ((64, "64"), (64, 64))])
def test_fitting_to_a_frame_that_is_no_size_is_refused_in_one_line(source, target):
    with pytest.raises(VidtransError, match="size"):
        fit_to_frame(source, target)



@pytest.mark.parametrize("height, width, changes", [
    (-1, 64, {}), ("64", 64, {}), (64.0, 64, {}), (True, 64, {}), (0, 64, {}),
    (64, 64, {"min_confidence": float("nan")}), (64, 64, {"min_confidence": -1.0}), (64, 64, {"min_confidence": "x"}),
    (64, 64, {"style": "openpose"}),
])
def test_drawing_settings_no_pose_map_can_be_drawn_with_are_refused_in_one_line(height, width, changes):
    # They raised ValueError, TypeError or AttributeError from NumPy, or drew a blank map.
    pose = dance_keypoints(7, 1, 64, 64, SOURCE_LOOK)
    for draw, keypoints in ((render_pose, pose[0]), (render_poses, pose)):
        with pytest.raises(VidtransError, match="size|min_confidence|style"):
            draw(keypoints, height, width, **changes)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_point_at_nan_or_infinity_is_missing_to_the_regions_as_to_the_renderer(bad):
    # person_box, face_box and hand_boxes raised ValueError (cannot convert float NaN to integer).
    from vidtrans.pose.regions import face_box, hand_boxes, person_box

    pose = dance_keypoints(7, 1, SIZE, SIZE, SOURCE_LOOK)[0]
    for point in (0, 4, 10):  # the nose, a wrist, an ankle
        broken, missing = pose.copy(), pose.copy()
        broken[point, 0] = bad
        missing[point] = 0.0
        for region in (person_box, face_box, hand_boxes):
            assert region(broken, SIZE, SIZE) == region(missing, SIZE, SIZE), (region.__name__, point)


@pytest.mark.parametrize("setting, value", [
    ("min_visibility", float("nan")), ("min_visibility", "0.5"), ("min_detection_confidence", 2.0),
    ("min_detection_confidence", float("nan")), ("min_tracking_confidence", -1), ("video_mode", "yes"),
    ("whole_body", 1),
])
def test_detector_settings_mediapipe_would_take_silently_are_refused_in_one_line(setting, value):
    # All were taken: NaN or 2.0 found nobody in any frame, without a word.
    with pytest.raises(VidtransError, match=setting):
        PoseDetector(**{setting: value})


def test_frames_that_are_not_rgb_are_refused_not_read_three_values_at_a_time():
    # RGBA or grey frames were reshaped into "RGB" pixels (or failed in reshape), and 0-1 floats
    # were said not to be pose maps.
    from vidtrans.pose import looks_like_pose_map

    pose_map = render_pose(dance_keypoints(7, 1, SIZE, SIZE, SOURCE_LOOK)[0], SIZE, SIZE)
    assert looks_like_pose_map([pose_map])
    opaque = np.full((SIZE, SIZE, 1), 255, np.uint8)
    for frame in (np.concatenate([pose_map, opaque], axis=2), pose_map[..., 0], pose_map / 255.0):
        with pytest.raises(VidtransError, match=r"RGB uint8 frames \(H, W, 3\)"):
            looks_like_pose_map([frame])
    with pytest.raises(VidtransError, match="sequence of frames"):
        looks_like_pose_map(None)
    assert not looks_like_pose_map([np.zeros((0, 0, 3), np.uint8)])


@pytest.mark.parametrize("value", [float("nan"), -0.5, "0", None])
def test_a_confidence_threshold_that_is_no_threshold_is_refused_by_normalization(value):
    # NaN took every keypoint for missing: the normalized poses were all zeros, without a word.
    from vidtrans.pose import PoseNormalizer

    track = dance_keypoints(7, 12, SIZE, SIZE, SOURCE_LOOK)
    stats = estimate_pose_stats(track, SIZE, SIZE)
    with pytest.raises(VidtransError, match="min_confidence"):
        PoseNormalizer(stats, stats, min_confidence=value)
    with pytest.raises(VidtransError, match="min_confidence"):
        estimate_pose_stats(track, SIZE, SIZE, min_confidence=value)


def _two_dancers(path, frames: int, dancer_away: tuple[int, ...]):
    """A clip of two dancers side by side (512x256), the left one (the source look) out of the shot
    in the frames `dancer_away`; and the left dancer's keypoints."""
    from vidtrans.train.synth import TARGET_LOOK

    dancer = dance_keypoints(7, frames, SIZE, SIZE, SOURCE_LOOK)
    other = dance_keypoints(3, frames, SIZE, SIZE, TARGET_LOOK)
    empty = render_person(np.zeros_like(dancer[0]), SIZE, SIZE, SOURCE_LOOK)

    def frame(i, w, h):
        left = empty if i in dancer_away else render_person(dancer[i], SIZE, SIZE, SOURCE_LOOK)
        return np.concatenate([left, render_person(other[i], SIZE, SIZE, TARGET_LOOK)], axis=1)

    make_clip(path, frames=frames, size=(2 * SIZE, SIZE), audio=False, frame_fn=frame)
    return dancer


def _body_x(track: np.ndarray) -> np.ndarray:
    return np.array([np.median(pose[pose[:, 2] > 0, 0]) if (pose[:18, 2] > 0).any() else np.nan
                     for pose in track[:, :NUM_KEYPOINTS]])


def test_a_dancer_hidden_for_a_frame_beside_someone_else_is_still_the_one_followed(cli, tmp_path, monkeypatch):
    # The detector of frame 6 lost the dancer and found the other person, whom it then followed
    # while the other detector followed the dancer: the track alternated between them every
    # frame, and the filter drew a body halfway between, 120 px off, in every frame from 6 on.
    from vidtrans.pose import stages

    monkeypatch.setattr(stages, "default_detectors", lambda: 2)
    dancer = _two_dancers(tmp_path / "two.mp4", 16, dancer_away=(6,))
    result = cli("pose", tmp_path / "two.mp4", "-o", tmp_path / "pose.mp4", "--keypoints", tmp_path / "kp.npz")
    assert result.returncode == 0, result.stderr
    keypoints = np.load(tmp_path / "kp.npz")["keypoints"]
    assert len(keypoints) == 16 and has_person(keypoints).all()
    assert np.abs(_body_x(keypoints) - _body_x(dancer)).max() < 6.0, _body_x(keypoints).round()


def test_when_the_dancer_leaves_for_good_the_track_goes_on_with_the_one_left(cli, tmp_path, monkeypatch):
    # What every detector sees is taken (a frame late): no frame of the one left is lost. Frame 7's
    # detector found a ghost near where the dancer had been, a glitch that hid the cut at frame 6
    # from the filter (every jump near another was dropped), which slid the body across 6 frames.
    from vidtrans.pose import stages

    monkeypatch.setattr(stages, "default_detectors", lambda: 2)
    dancer = _two_dancers(tmp_path / "two.mp4", 12, dancer_away=tuple(range(6, 12)))
    result = cli("pose", tmp_path / "two.mp4", "-o", tmp_path / "pose.mp4", "--keypoints", tmp_path / "kp.npz")
    assert result.returncode == 0, result.stderr
    x = _body_x(np.load(tmp_path / "kp.npz")["keypoints"])
    assert np.abs(x[:6] - _body_x(dancer)[:6]).max() < 6.0 and (x[6:] > SIZE).all(), x.round()


def test_a_glitch_just_after_a_cut_leaves_the_cut_one():
    # As MediaPipe found in the frame after the dancer left: a small ghost of a skeleton near where
    # they had been, a jump away from them and from the person now followed.
    from vidtrans.pose.smoothing import jumps

    dance = dance_keypoints(7, 60, SIZE, SIZE, SOURCE_LOOK)
    track = dance.copy()
    track[30:, :, 0] = np.where(track[30:, :, 2] > 0, track[30:, :, 0] + 120.0, 0.0)
    assert jumps(track) == [30]
    ghost = track.copy()
    centre = np.median(dance[31, :, :2], axis=0)
    ghost[31, :, :2] = centre + (dance[31, :, :2] - centre) * 0.3
    assert jumps(ghost) == [30]  # was []: the body slid across, 19 px off in frame 29, 76 in 30, 18 in 32
    x, truth = _body_x(smooth_track(ghost)), _body_x(track)
    assert np.abs(x[:30] - truth[:30]).max() < 2.0 and np.abs(x[32:] - truth[32:]).max() < 2.0


def test_a_point_at_nan_is_missing_to_the_filters_and_normalization_not_spread():
    # One NaN point (a detector's "not found") made 15 frames of NaN after the keypoint filter, a
    # whole frame of NaN after normalization, and NaN for good in the live filter; an infinite
    # ankle made the statistics fail with "near must be a finite number, got nan".
    from vidtrans.pose import PoseNormalizer

    track = dance_keypoints(7, 30, SIZE, SIZE, SOURCE_LOOK)
    broken, missing = track.copy(), track.copy()
    broken[10, 4, 0], broken[12, 10, 1] = np.nan, np.inf
    missing[10, 4], missing[12, 10] = 0.0, 0.0
    np.testing.assert_array_equal(smooth_track(broken), smooth_track(missing))
    np.testing.assert_array_equal(bridge_gaps(broken), bridge_gaps(missing))
    stats = estimate_pose_stats(broken, SIZE, SIZE)
    assert stats == estimate_pose_stats(missing, SIZE, SIZE)
    np.testing.assert_array_equal(PoseNormalizer(stats, stats)(broken), PoseNormalizer(stats, stats)(missing))
    live, expected = OneEuroFilter(), OneEuroFilter()
    for i in range(len(track)):
        np.testing.assert_array_equal(live(broken[i], i / 25), expected(missing[i], i / 25))


def test_a_stray_body_before_an_empty_scene_holds_no_frames_back(monkeypatch):
    """One frame of someone far from the dancer, then nobody: the frames after it were held until
    the clip's end (every batch, in memory), waiting for a body to decide the stray one by."""
    from types import SimpleNamespace

    from vidtrans.pose import stages

    dancer = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    dancer[:, 0], dancer[:, 1], dancer[:, 2] = np.linspace(100, 140, NUM_KEYPOINTS), np.linspace(40, 220, NUM_KEYPOINTS), 1
    stray = dancer.copy()
    stray[:, 0] += 300

    class Scripted:  # finds the dancer in frames 0-7, the stray body in frame 8, nobody after
        num_keypoints = NUM_KEYPOINTS

        def __init__(self, **_):
            pass

        def detect(self, frame, frame_size=None):
            index = int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])
            return dancer if index < 8 else stray if index == 8 else np.zeros_like(dancer)

        def close(self):
            pass

    monkeypatch.setattr(stages, "PoseDetector", Scripted)
    stage = stages.KeypointStage(detectors=2)
    released = 0
    try:
        for b in range(25):
            frames = np.zeros((8, 4, 4, 3), np.uint8)
            for i in range(8):
                frames[i, 0, 0, :2] = ((b * 8 + i) % 256, (b * 8 + i) // 256)
            released += len(list(stage.process(SimpleNamespace(frames=frames))))
            assert released >= b, f"batch {b}: only {released} released"
    finally:
        stage.close()
