"""A clip that never shows a whole body (a head-and-shoulders shot, a webcam at a desk) has its
upper body fitted to the target's: shoulders as wide as the target's, its usual neck position on the
target's. Statistics version 4 carries the target's upper body; older cards keep fitting the frame.
"""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.media import make_clip
from vidtrans.errors import VidtransError
from vidtrans.live.process import LivePoseMapper
from vidtrans.pose import PoseNormalizer, PoseStats, UpperBodyNormalizer, estimate_pose_stats, normalizer_for
from vidtrans.pose.files import write_keypoints_npz
from vidtrans.pose.keypoints import KEYPOINT_INDEX
from vidtrans.pose.normalize import estimate_target_stats, measure_upper_body
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints

NECK, NOSE = KEYPOINT_INDEX["neck"], KEYPOINT_INDEX["nose"]
SHOULDERS = [KEYPOINT_INDEX["r_shoulder"], KEYPOINT_INDEX["l_shoulder"]]
UPPER = ["nose", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_wrist", "l_wrist", "r_eye", "l_eye",
         "r_ear", "l_ear"]


# Version 4's upper body, which versions 1-3 lack.
NO_UPPER_BODY = {"shoulder_width": None, "neck_x": None, "neck_y": None, "head_length": None}


def target_stats(size: int = 256) -> PoseStats:
    """The statistics of a dance of the synthetic target in a `size` square frame (version 4)."""
    return estimate_pose_stats(dance_keypoints(3, 120, size, size, TARGET_LOOK), size, size)


def close_shot(frames: int = 30, height: int = 144, width: int = 176, seed: int = 0) -> np.ndarray:
    """A dance cut to its upper body and enlarged 3x about the neck, placed low and right in a
    width x height frame, as a head-and-shoulders shot frames a person: no hips, knees or ankles."""
    track = dance_keypoints(seed, frames, 256, 256, TARGET_LOOK)
    keep = np.zeros(18, bool)
    keep[[KEYPOINT_INDEX[name] for name in UPPER]] = True
    track[:, ~keep] = 0.0
    neck = np.median(track[:, NECK, :2], axis=0)
    track[:, keep, :2] = (track[:, keep, :2] - neck) * 3.0 + (0.6 * width, 0.75 * height)
    return track


def shoulder_widths(track: np.ndarray) -> np.ndarray:
    return np.linalg.norm(track[:, SHOULDERS[0], :2] - track[:, SHOULDERS[1], :2], axis=-1)


def test_the_target_statistics_carry_its_upper_body():
    stats = target_stats()
    assert stats.version == 4 and stats.upper_body is not None
    assert PoseStats.from_dict(json.loads(json.dumps(stats.to_dict()))) == stats
    # Where the target's neck usually is, and how wide its shoulders are at the 90th percentile.
    track = dance_keypoints(3, 120, 256, 256, TARGET_LOOK)
    assert stats.neck_y == pytest.approx((np.median(track[:, NECK, 1]) + 0.5) / 256, abs=1e-6)
    assert stats.shoulder_width == pytest.approx(np.percentile(shoulder_widths(track), 90) / 256, rel=1e-6)


def test_a_close_shot_is_fitted_to_the_target_upper_body():
    target, shot = target_stats(), close_shot()
    transform, why = normalizer_for(shot, 144, 176, target)
    assert isinstance(transform, UpperBodyNormalizer) and why.startswith("no frame shows a whole body")
    mapped = transform(shot)
    # Shoulders as wide as the target's, the neck where the target's usually is (256 px frame).
    assert np.percentile(shoulder_widths(mapped), 90) == pytest.approx(target.shoulder_width * 256, rel=1e-4)
    neck = np.median(mapped[:, NECK, :2], axis=0) + 0.5
    np.testing.assert_allclose(neck, [(0.5 + target.neck_x) * 256, target.neck_y * 256], atol=1e-3)
    # The dancer's movements are theirs, scaled as the body is: the nose keeps its place above the neck.
    scale = target.shoulder_width * 256 / np.percentile(shoulder_widths(shot), 90)
    head = mapped[:, NOSE, :2] - mapped[:, NECK, :2]
    np.testing.assert_allclose(head, (shot[:, NOSE, :2] - shot[:, NECK, :2]) * scale, atol=1e-3)
    # Missing points stay missing.
    assert (mapped[:, KEYPOINT_INDEX["r_ankle"]] == 0).all()


def test_a_whole_body_is_normalized_as_before_and_a_body_without_shoulders_is_refused():
    target = target_stats()
    transform, why = normalizer_for(dance_keypoints(5, 60, 512, 512, TARGET_LOOK), 512, 512, target)
    assert isinstance(transform, PoseNormalizer) and why is None
    shot = close_shot()
    shot[:, SHOULDERS] = 0.0
    with pytest.raises(VidtransError, match=r"^no frame shows a whole body, head to ankles, and pose "
                                            r"normalization needs at least 5; no frame shows the neck and both "
                                            r"shoulders apart, and fitting an upper body needs at least 5$"):
        normalizer_for(shot, 144, 176, target)
    # Statistics without an upper body (versions 1-3) refuse as the whole body does.
    older = PoseStats(**{**target.to_dict(), **NO_UPPER_BODY, "version": 3})
    with pytest.raises(VidtransError, match=r"^no frame shows a whole body, head to ankles, and pose "
                                            r"normalization needs at least 5$"):
        normalizer_for(close_shot(), 144, 176, older)
    with pytest.raises(VidtransError, match="no upper body"):
        UpperBodyNormalizer(measure_upper_body(close_shot(), 144, 176), (144, 176), older)


@pytest.mark.parametrize("fields, message", [
    ({"neck_x": None}, "go together"),
    ({"version": 3}, "only in version 4"),
    ({"shoulder_width": 0.0}, "shoulder_width must be a finite number above 0, from 1/1048576 to 1048576"),
    ({"shoulder_width": 1e300}, "shoulder_width must be a finite number above 0, from 1/1048576 to 1048576"),
    ({"neck_x": 1e30}, "neck_x must be a finite number from -1048576 to 1048576 .frame heights., or None, got 1e"),
    ({"neck_y": float("nan")}, "neck_y must be a finite number from -1048576 to 1048576 .frame heights., or None"),
])
def test_upper_body_fields_that_cannot_be_used_are_refused(fields, message):
    with pytest.raises(VidtransError, match=message):
        PoseStats(**{**target_stats().to_dict(), **fields})


def test_version_3_cards_read_without_an_upper_body():
    data = {key: value for key, value in target_stats().to_dict().items()
            if key not in NO_UPPER_BODY} | {"version": 3}
    stats = PoseStats.from_dict(data)
    assert stats.upper_body is None and stats.to_dict() == data
    with pytest.raises(VidtransError, match="exactly the fields"):
        PoseStats.from_dict({**data, "version": 4})


def pose_panel_height(video) -> int:
    """Rows of the side-by-side output's pose map (the middle panel, at the model's 256x256) that
    draw anything."""
    import av

    with av.open(str(video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    panel = frame[:, -508:-260]  # a few columns in: the encoder blurs colour across the panels' edges
    rows = np.flatnonzero((panel > 40).any(axis=(1, 2)))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


@pytest.mark.parametrize("version", [4, 3])
def test_run_fits_a_close_shot_to_the_target_and_old_cards_to_the_frame(tmp_path, version):
    """The shipped model, through `run`: version 4 draws the close shot's upper body at the target's
    size and says so; a version 3 card (made before) scales it to the frame, a head filling it."""
    model = tmp_path / "model"
    shutil.copytree("checkpoints/pose2person", model)
    if version == 3:
        card = json.loads((model / "card.json").read_text())
        for name in NO_UPPER_BODY:
            del card["target_pose_stats"][name]
        card["target_pose_stats"]["version"] = 3
        (model / "card.json").write_text(json.dumps(card))
    clip = make_clip(tmp_path / "shot.mp4", frames=30, size=(176, 144), audio=False).path
    write_keypoints_npz(tmp_path / "kp.npz", close_shot(), 176, 144)
    out = tmp_path / "out.mp4"
    result = run_cli("run", clip, "-o", out, "--model", model, "--keypoints", tmp_path / "kp.npz", "--side-by-side",
                     "--device", "cpu", "--precision", "fp32", "--json")
    assert result.returncode == 0, result.stderr
    pose = json.loads(result.stdout)["pose"]
    height = pose_panel_height(out)
    if version == 4:
        assert "upper body fitted to the target's (no frame shows a whole body" in pose
        # The target's head, shoulders and arms: about a quarter of the frame (its whole body is 0.6 of it).
        assert 0 < height < 0.3 * 256
    else:
        assert "fitted to the frame (not normalized: no frame shows a whole body" in pose
        assert height > 0.5 * 256


def test_live_fits_a_close_shot_then_normalizes_a_whole_body_once_it_shows():
    """A camera at a desk: the upper body is fitted as soon as a few frames show it (a head does not
    fill the frame for the warm-up's seconds), measured again on the warm-up's frames; the person
    stepping back into full view is normalized as a whole, with the mapping told as it happened."""
    target = target_stats(64)
    mapper = LivePoseMapper((144, 176), (64, 64), target.to_dict())
    shot = close_shot(60)
    for i, pose in enumerate(shot[:10]):
        mapper(pose, 100.0 + i / 20)  # 0.5 s at 20 fps: within the warm-up
    early = mapper.transform
    assert isinstance(early, UpperBodyNormalizer)
    assert mapper.how == ("fitted to the frame for the first 0.2 s, then its upper body fitted to the target's while "
                          "the whole body was looked for")  # from the fifth frame on
    assert early.source == measure_upper_body(shot[:5], 144, 176)
    for i, pose in enumerate(shot[10:], 10):
        mapper(pose, 100.0 + i / 20)  # to 3 s
    assert isinstance(mapper.transform, UpperBodyNormalizer) and mapper.transform is not early
    assert mapper.transform.source == measure_upper_body(shot[:41], 144, 176)  # the frames up to 2 s
    assert mapper.how.startswith("fitted to the frame for the first 0.2 s, then its upper body fitted to the "
                                 "target's (no frame shows a whole body")
    whole = dance_keypoints(7, 80, 144, 176, TARGET_LOOK)
    for i, pose in enumerate(whole):
        mapper(pose, 103.0 + i / 20)  # 4 s more: the whole body shows in most collected frames
    assert isinstance(mapper.transform, PoseNormalizer)
    assert mapper.how.startswith("fitted to the frame, then by its upper body, for the first ")
    assert mapper.how.endswith(" s, then normalized to the target's body")


@pytest.mark.parametrize("size", [(0, 176), (144, float("nan"))])
def test_a_frame_size_that_cannot_be_used_is_refused_before_either_fit(size):
    with pytest.raises(VidtransError, match=r"^frame size must be \(height, width\) in pixels"):
        normalizer_for(close_shot(), *size, target_stats())
    with pytest.raises(VidtransError, match=r"^frame size must be \(height, width\) in pixels"):
        measure_upper_body(close_shot(), *size)


def test_a_target_trained_on_its_upper_body_fits_every_clip_by_its_upper_body():
    """A target whose video never showed its whole body (a head-and-shoulders shot) is known by its
    upper body alone, and clips are fitted to it by theirs, whole bodies too."""
    target = estimate_target_stats(close_shot(seed=4), 144, 176)
    assert not target.whole_body and target.far is None and target.centre_x is None
    assert target.upper_body == measure_upper_body(close_shot(seed=4), 144, 176)
    assert PoseStats.from_dict(json.loads(json.dumps(target.to_dict()))) == target
    dance = dance_keypoints(5, 60, 512, 512, TARGET_LOOK)
    transform, why = normalizer_for(dance, 512, 512, target)
    assert isinstance(transform, UpperBodyNormalizer) and why == "the target is known by its upper body alone"
    width = np.percentile(shoulder_widths(transform(dance)), 90)
    assert width == pytest.approx(target.shoulder_width * 144, rel=1e-4)  # in the target's 176x144 frame
    shot = close_shot()
    shot[:, SHOULDERS] = 0.0
    with pytest.raises(VidtransError, match="^the target is known by its upper body alone; no frame shows the "
                                            "neck and both shoulders"):
        normalizer_for(shot, 144, 176, target)
    with pytest.raises(VidtransError, match="upper body alone"):
        PoseNormalizer(estimate_pose_stats(dance, 512, 512), target)
    # A video showing neither a whole body nor shoulders says both.
    with pytest.raises(VidtransError, match=r"^no frame shows a whole body.*; no frame shows the neck"):
        estimate_target_stats(shot, 144, 176)


@pytest.mark.parametrize("fields, message", [
    # The whole body's fields go together.
    ({"far": 0.8}, r"near must be a finite number from -1048576 to 1048576 \(frame heights\), got None"),
    (NO_UPPER_BODY, "need the upper body"),
    ({"version": 3, **NO_UPPER_BODY},
     r"without a whole body .* got version 3, centre_x=None$"),
])
def test_upper_body_only_statistics_that_cannot_be_used_are_refused(fields, message):
    data = {**estimate_target_stats(close_shot(), 144, 176).to_dict(), **fields}
    with pytest.raises(VidtransError, match=message):
        PoseStats(**data)


def side_on(shot: np.ndarray, narrow: float = 0.2) -> np.ndarray:
    """`shot` seen from the side: each frame's shoulders drawn `narrow` of their width apart."""
    turned = shot.copy()
    middle = turned[:, SHOULDERS, :2].mean(axis=1, keepdims=True)
    turned[:, SHOULDERS, :2] = middle + (turned[:, SHOULDERS, :2] - middle) * narrow
    return turned


def test_a_close_shot_seen_from_the_side_throughout_is_sized_by_its_head():
    """Shoulders seen a fifth of their width apart in every frame would scale the body five times
    too large: where the shoulders make it much larger than the head does, the head sizes it."""
    target, shot = target_stats(), side_on(close_shot())
    assert target.head_length is not None
    mapped = UpperBodyNormalizer.measured(shot, 144, 176, target)(shot)
    heads = np.linalg.norm(mapped[:, NOSE, :2] - mapped[:, NECK, :2], axis=-1)
    assert np.percentile(heads, 90) == pytest.approx(target.head_length * 256, rel=1e-4)
    # Seen from the front, the shoulders size it (the head only guards against a turned body).
    front = UpperBodyNormalizer.measured(close_shot(), 144, 176, target)(close_shot())
    assert np.percentile(shoulder_widths(front), 90) == pytest.approx(target.shoulder_width * 256, rel=1e-4)
    # Without the nose, nothing tells the turn: the shoulders size it, as before.
    noseless = shot.copy()
    noseless[:, NOSE] = 0.0
    assert measure_upper_body(noseless, 144, 176).head_length is None
    mapped = UpperBodyNormalizer.measured(noseless, 144, 176, target)(noseless)
    assert np.percentile(shoulder_widths(mapped), 90) == pytest.approx(target.shoulder_width * 256, rel=1e-4)


@pytest.mark.parametrize("fields, message", [
    ({**NO_UPPER_BODY, "head_length": 0.1}, "go together"),
    ({"head_length": 0.0}, "head_length must be a finite number above 0"),
    ({"head_length": None}, None),  # a target whose nose never showed
])
def test_the_head_length_goes_with_the_upper_body_or_is_none(fields, message):
    data = {**target_stats().to_dict(), **fields}
    if message is None:
        assert PoseStats.from_dict(data).upper_body.head_length is None
        return
    with pytest.raises(VidtransError, match=message):
        PoseStats(**data)
