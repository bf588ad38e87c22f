"""QA pass 11: --resume trains on the square its checkpoint's card records (however it was chosen,
and with its fill), so the card's pose statistics stay those of that square (item 2); run's
normalization caveat counts the seconds that show the dancer's whole body, the frames their size is
measured on, not the clip's length (item 10)."""

import json
import logging

import numpy as np
import pytest

import vidtrans
from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.options import TrainOptions
from vidtrans.pipeline import translate_video
from vidtrans.pose import PoseStats, PoseStyle, write_keypoints_npz
from vidtrans.pose.keypoints import KEYPOINT_INDEX
from vidtrans.pose.normalize import estimate_pose_stats, whole_body_frames
from vidtrans.pose.smoothing import smooth_track
from vidtrans.train.data import crop_square, keypoints_in_crop, training_crop
from vidtrans.train.setup import prepare_training
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person

ANKLES = [KEYPOINT_INDEX["r_ankle"], KEYPOINT_INDEX["l_ankle"]]


@pytest.fixture
def detected_as(monkeypatch):
    """Make pose detection of a target video give `track` (exact keypoints), without MediaPipe."""
    import vidtrans.pose.track as track_module

    def use(track: np.ndarray) -> None:
        monkeypatch.setattr(track_module, "detect_keypoints", lambda *args, **kwargs: track.copy())

    return use


def trained_on(tmp_path, track: np.ndarray, size: tuple[int, int]):
    """A video of `track` danced by the target character, and a checkpoint trained 1 iteration on it."""
    clip = make_clip(tmp_path / "target.mp4", frames=len(track), size=size, audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, TARGET_LOOK))
    out = tmp_path / "ck"
    result = cli("train", clip.path, "-o", out, "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    return clip, out


def edit_card(folder, **training) -> dict:
    path = folder / "card.json"
    card = json.loads(path.read_text())
    card["training"].update(training)
    card["training"] = {k: v for k, v in card["training"].items() if v is not None}
    path.write_text(json.dumps(card))
    return card


# --- 2: --resume keeps the recorded training square ------------------------------------------------


def test_resume_trains_on_the_cards_square_and_keeps_its_pose_statistics(tmp_path, detected_as):
    # A portrait 96x192 clip, the dancer in its lower half. Yesterday's vidtrans cropped the middle
    # square, cutting their feet off; today's training_crop chooses another.
    track = dance_keypoints(3, 12, 192, 96, TARGET_LOOK)
    detected_as(track)
    clip, out = trained_on(tmp_path, track, (96, 192))
    old_square = [0, 48, 96]
    assert tuple(old_square) != training_crop(track, 96, 192)
    in_old_square = keypoints_in_crop(smooth_track(track), tuple(old_square), 64)
    old_stats = estimate_pose_stats(in_old_square, 64, 64).to_dict()  # as that run measured them
    edit_card(out, crop=old_square)
    card = json.loads((out / "card.json").read_text())
    card["target_pose_stats"] = old_stats
    (out / "card.json").write_text(json.dumps(card))

    pairs, _, resumed = prepare_training(out, TrainOptions(resume=True, iterations=2, device="cpu"),
                                         target=clip.path)
    assert pairs.crop == tuple(old_square) and resumed.training["crop"] == old_square
    # The same frames as the run's first part: that square of each frame, at the model's size.
    expected = crop_square(clip.images[0], tuple(old_square), 64).astype(int)
    assert np.abs(expected - pairs.frames[0]).mean() < 3
    assert np.allclose(pairs.poses, in_old_square[pairs.indices], atol=1e-4)

    result = cli("train", clip.path, "-o", out, "--iterations", "2", "--resume")
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["crop"] == old_square and "crop_fill" not in card["training"]
    assert card["target_pose_stats"] == pytest.approx(old_stats, rel=1e-6)


def test_resume_of_a_padded_square_fills_it_with_the_recorded_colour(tmp_path, detected_as):
    # A thin dancer about 110 px tall in a 64 px wide portrait frame: the square reaches past its sides.
    track = dance_keypoints(3, 12, 192, 192, TARGET_LOOK)
    track[..., 0] = (track[..., 0] - 96) * 0.4 + 32
    detected_as(track)
    clip, out = trained_on(tmp_path, track, (64, 192))
    left, top, side = json.loads((out / "card.json").read_text())["training"]["crop"]
    assert left < 0
    edit_card(out, crop_fill=[40, 90, 160])

    pairs, _, card = prepare_training(out, TrainOptions(resume=True, iterations=2, device="cpu"), target=clip.path)
    assert pairs.crop == (left, top, side) and card.training["crop_fill"] == [40, 90, 160]
    bar = pairs.frames[0][:, :int(-left * 64 / side)]
    assert bar.size and (bar == (40, 90, 160)).all()


def test_resume_of_a_card_without_a_square_trains_on_todays_and_says_so(tmp_path, detected_as, caplog):
    track = dance_keypoints(3, 12, 192, 96, TARGET_LOOK)
    detected_as(track)
    clip, out = trained_on(tmp_path, track, (96, 192))
    edit_card(out, crop=None)
    with caplog.at_level(logging.WARNING):
        pairs, _, card = prepare_training(out, TrainOptions(resume=True, iterations=2, device="cpu"),
                                          target=clip.path)
    # (The other warning: iterations=2 moves the learning rate's decay of a run planned for 1.)
    told = [r.getMessage() for r in caplog.records if "learning rate" not in r.getMessage()]
    assert pairs.crop == training_crop(track, 96, 192) and card.training["crop"] == list(pairs.crop)
    assert len(told) == 1 and "does not record the square of target.mp4 it was trained on" in told[0], told


@pytest.mark.parametrize(("training", "named"), [
    ({"crop": [0, 48]}, "training square [0, 48] (fill [0, 0, 0]) is not [left, top, side] in whole pixels"),
    ({"crop": [0, 48, 96], "crop_fill": [0, 0, 300]}, "fix the model card"),
    ({"crop": [40, 48, 96]}, "target.mp4: 96x192, which the training square [40, 48, 96] does not fit; train on the "
                             "video that square was chosen in"),
])
def test_resume_refuses_a_recorded_square_it_cannot_use_in_one_line(tmp_path, detected_as, training, named):
    track = dance_keypoints(3, 12, 192, 96, TARGET_LOOK)
    detected_as(track)
    clip, out = trained_on(tmp_path, track, (96, 192))
    edit_card(out, **training)
    line = one_line(cli("train", clip.path, "-o", out, "--iterations", "2", "--resume"), 1)
    assert named in line


# --- 10: the short-clip caveat counts the seconds that show the whole body -------------------------


@pytest.fixture(scope="module")
def pose_model(tmp_path_factory):
    net = random_generator("resnet_6blocks", 3, 3, 4, "instance", seed=0)
    folder = tmp_path_factory.mktemp("models") / "pose"
    stats = PoseStats(frame_width=64, frame_height=64, far=0.80, near=0.90, height_far=0.55, height_near=0.62)
    save_checkpoint(folder, net, ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64),
                                           input_kind="pose", pose_style=PoseStyle().to_dict(),
                                           target_pose_stats=stats.to_dict()))
    return vidtrans.load_model(folder, device="cpu")


@pytest.fixture(scope="module")
def six_seconds(tmp_path_factory):
    """A 6 s clip at 25 fps (what it shows does not matter: the keypoints come from a file)."""
    return make_clip(tmp_path_factory.mktemp("clips") / "six.mp4", frames=150, size=(64, 64), audio=False)


def run_with(tmp_path, pose_model, clip, track) -> str:
    keypoints = tmp_path / "poses.npz"
    write_keypoints_npz(keypoints, track, 64, 64)
    return translate_video(clip.path, tmp_path / "out.mp4", pose_model, keypoints=keypoints).pose


def test_a_dancer_seen_whole_for_part_of_a_long_clip_gets_the_caveat(tmp_path, pose_model, six_seconds):
    # The QA's case: the dancer is in the first 40 frames (1.6 s) of 6 s only.
    track = dance_keypoints(2, 150, 64, 64, TARGET_LOOK)
    track[40:] = 0
    pose = run_with(tmp_path, pose_model, six_seconds, track)
    assert ("normalized to the target's body (on only 1.6 s of video showing the whole body, which can misjudge "
            "the dancer's size by a few per cent)") in pose, pose


def test_frames_without_ankles_do_not_count_as_seen_whole(tmp_path, pose_model, six_seconds):
    # The dancer is there throughout, but their ankles only in the first 50 frames (2 s).
    track = dance_keypoints(2, 150, 64, 64, TARGET_LOOK)
    track[50:, ANKLES] = 0
    assert whole_body_frames(track).sum() == 50
    pose = run_with(tmp_path, pose_model, six_seconds, track)
    assert "(on only 2.0 s of video showing the whole body," in pose, pose


def test_a_dancer_seen_whole_throughout_a_long_clip_gets_no_caveat(tmp_path, pose_model, six_seconds):
    pose = run_with(tmp_path, pose_model, six_seconds, dance_keypoints(2, 150, 64, 64, TARGET_LOOK))
    assert pose.endswith("normalized to the target's body"), pose


def test_the_statistics_are_measured_on_the_frames_that_count_as_seen_whole():
    track = dance_keypoints(2, 20, 64, 64, TARGET_LOOK)
    track[4:, ANKLES] = 0  # 4 frames with ankles: one too few for the statistics
    with pytest.raises(VidtransError, match=r"^only 4 frames show a whole body"):
        estimate_pose_stats(track, 64, 64)
    assert whole_body_frames(track).sum() == 4
