"""Whole-body detection: body, 68 face points and both hands from MediaPipe Holistic, in the
layout of vidtrans.pose.keypoints, checked on a real face."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vidtrans.errors import UsageError
from vidtrans.pose.detector import PoseDetector
from vidtrans.pose.keypoints import FACE, KEYPOINT_INDEX, LEFT_HAND, NUM_KEYPOINTS, NUM_WHOLE_BODY, RIGHT_HAND, flip_keypoints
from vidtrans.pose.smoothing import smooth_track

pytest.importorskip("mediapipe")

CARPHONE = Path(__file__).resolve().parents[2] / "shared" / "data" / "people" / "carphone.mp4"
HEAD = [KEYPOINT_INDEX[name] for name in ("nose", "r_eye", "l_eye", "r_ear", "l_ear")]
# iBUG-68 numbering within the face
CHIN, MOUTH = 8, slice(48, 68)
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)  # the person's
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 36, 45


@pytest.fixture(scope="module")
def face_frames() -> list[np.ndarray]:
    """Four frames of a man facing the camera, from across the clip."""
    if not CARPHONE.exists():
        pytest.skip(f"{CARPHONE} not present")
    from vidtrans.video import VideoReader

    with VideoReader(CARPHONE) as reader:
        return [frame.image for i, frame in enumerate(reader) if i % 30 == 0]


@pytest.fixture(scope="module")
def still_detector():
    with PoseDetector(video_mode=False, whole_body=True) as detector:
        yield detector


def test_face_points_lie_on_the_face_in_ibug_order(face_frames, still_detector):
    for frame in face_frames:
        kp = still_detector.detect(frame)
        assert kp.shape == (NUM_WHOLE_BODY, 3) and kp.dtype == np.float32
        face, head = kp[FACE], kp[HEAD]
        assert (face[:, 2] == 1.0).all() and (head[:, 2] > 0).all()
        # Inside the head that the body's nose, eyes and ears outline: a little wider and higher
        # (the jaw runs in front of the ears, the brows above the eyes), down to the chin.
        ears = np.linalg.norm(kp[KEYPOINT_INDEX["r_ear"], :2] - kp[KEYPOINT_INDEX["l_ear"], :2])
        lo = head[:, :2].min(axis=0) - (0.35 * ears, 0.4 * ears)
        hi = head[:, :2].max(axis=0) + (0.35 * ears, 1.2 * ears)
        assert ((face[:, :2] >= lo) & (face[:, :2] <= hi)).all()
        assert face[CHIN, 1] > face[MOUTH, 1].max()
        # Each eye's six points surround that eye of the body, a few pixels away at most.
        for eye, body_eye in ((RIGHT_EYE, "r_eye"), (LEFT_EYE, "l_eye")):
            assert np.linalg.norm(face[eye, :2].mean(axis=0) - kp[KEYPOINT_INDEX[body_eye], :2]) < 0.2 * ears
        # Facing the camera, the person's right (iBUG's first points) is on the image's left.
        assert face[RIGHT_EYE_OUTER, 0] < face[LEFT_EYE_OUTER, 0]
        assert face[0, 0] < face[16, 0] and face[48, 0] < face[54, 0]
        assert face[17:22, 1].mean() < face[RIGHT_EYE, 1].mean()  # each brow above its eye
        assert face[22:27, 1].mean() < face[LEFT_EYE, 1].mean()


def test_mirrored_picture_gives_the_mirrored_face(face_frames, still_detector):
    """Mirroring swaps the face's sides: iBUG point 36 (right eye's outer corner) becomes 45."""
    frame = face_frames[0]
    width = frame.shape[1]
    kp = still_detector.detect(frame)
    mirrored = still_detector.detect(np.ascontiguousarray(frame[:, ::-1]))
    expected = flip_keypoints(kp, width)[FACE]
    assert (mirrored[FACE, 2] == 1.0).all()
    assert np.median(np.linalg.norm(mirrored[FACE, :2] - expected[:, :2], axis=-1)) < 1.5


def test_body_part_is_what_the_body_only_detector_finds(face_frames, still_detector):
    frame = face_frames[1]
    whole = still_detector.detect(frame)
    with PoseDetector(video_mode=False) as body_only:
        body = body_only.detect(frame)
    assert body.shape == (18, 3)
    np.testing.assert_array_equal(whole[:18, 2] > 0, body[:, 2] > 0)
    np.testing.assert_allclose(whole[:18, :2], body[:, :2], atol=0.5)


def test_hands_go_to_the_persons_side_in_frame_pixels(still_detector, monkeypatch):
    """MediaPipe Holistic's left_hand_landmarks (found from BlazePose's left wrist, the person's)
    fill LEFT_HAND, in pixels, with points outside the frame missing; an absent hand and an absent
    face are all zeros."""
    from mediapipe.framework.formats import landmark_pb2

    def landmarks(xy, visibility=0.0):
        return landmark_pb2.NormalizedLandmarkList(
            landmark=[landmark_pb2.NormalizedLandmark(x=x, y=y, visibility=visibility) for x, y in xy])

    hand = [(0.25 + 0.01 * i, 0.5) for i in range(21)]
    hand[20] = (1.2, 0.5)  # the little finger's tip out of the picture
    result = SimpleNamespace(pose_landmarks=landmarks([(0.5, 0.5)] * 33, visibility=0.9), face_landmarks=None,
                             left_hand_landmarks=landmarks(hand), right_hand_landmarks=None)
    monkeypatch.setattr(still_detector._graph, "process", lambda frame: result)
    kp = still_detector.detect(np.zeros((100, 200, 3), np.uint8))
    left = kp[LEFT_HAND]
    np.testing.assert_allclose(left[:20, :2], np.array(hand[:20]) * (200, 100) - 0.5, atol=1e-4)
    assert (left[:20, 2] == 1.0).all() and (left[20] == 0).all()
    assert (kp[RIGHT_HAND] == 0).all() and (kp[FACE] == 0).all()


def test_nobody_gives_all_zero_whole_body_pose(still_detector):
    kp = still_detector.detect(np.zeros((120, 160, 3), np.uint8))
    assert kp.shape == (NUM_WHOLE_BODY, 3) and (kp == 0).all()


def test_keypoint_stage_and_detection_pass_give_whole_body_tracks(face_frames):
    from vidtrans.pose.stages import KeypointStage
    from vidtrans.pose.track import detect_keypoints
    from vidtrans.runner import Batch

    order = list(range(len(face_frames)))
    stage = KeypointStage(detectors=2, whole_body=True)
    try:
        (batch,) = stage.process(Batch(list(face_frames), pts=order, indices=order))
    finally:
        stage.close()
    assert batch.keypoints.shape == (len(face_frames), NUM_WHOLE_BODY, 3)
    # Face and hands come from every other detector, so every other frame (Holistic costs twice
    # the body's time); the keypoint filter fills the frames between, the clip's last one too.
    assert (batch.keypoints[::2, FACE, 2] == 1.0).all() and (batch.keypoints[1::2, NUM_KEYPOINTS:] == 0).all()
    assert (batch.keypoints[:, :NUM_KEYPOINTS, 2] > 0).any(axis=1).all()
    smoothed = smooth_track(batch.keypoints)
    assert (smoothed[:, FACE, 2] > 0).all()
    between = smoothed[1:-1:2, FACE, :2]
    np.testing.assert_allclose(between, (smoothed[0:-2:2, FACE, :2] + smoothed[2::2, FACE, :2]) / 2, atol=3.0)

    track = detect_keypoints(CARPHONE, end=0.2, whole_body=True)
    assert track.shape[1:] == (NUM_WHOLE_BODY, 3) and len(track) >= 5
    # A span between two frames holds none: a usage error naming where the frames are.
    with pytest.raises(UsageError, match=r"no video frames between 3.995s and 4s \(the video has frames from 0.00"):
        detect_keypoints(CARPHONE, start=3.995, end=4.0, whole_body=True)
