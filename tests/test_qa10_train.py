"""QA pass 10b, training: the training square of a target video holds the person's whole body (a
portrait video included, padded past the frame's edges where the body is taller than the frame is
wide), --resume keeps the recipe it continues (and the card records the seed), messages about
--init-from and import-pix2pix say what the model is, a tiny video is not enlarged silently, and a
save cut short leaves no sample grid of its iteration."""

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, dancer_clip, make_clip, paired_folder, random_generator
from vidtrans import atomic
from vidtrans.errors import UsageError, VidtransError
from vidtrans.models.checkpoint import ModelCard, import_pix2pix, save_checkpoint
from vidtrans.options import TrainOptions, spelled
from vidtrans.pose.keypoints import KEYPOINT_INDEX, NUM_KEYPOINTS
from vidtrans.pose.render import PoseStyle
from vidtrans.train import data as data_module
from vidtrans.train.data import CROP_FILL, VideoPairs, crop_square, training_crop
from vidtrans.train.data import SYNTHETIC_DATA
from vidtrans.train.setup import prepare_training
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person
from vidtrans.train.trainer import TrainConfig, Trainer

ANKLES = [KEYPOINT_INDEX["r_ankle"], KEYPOINT_INDEX["l_ankle"]]
# How `vidtrans train` spells the settings these tests' messages name.
FLAGS = {"train_pose": "--train-pose", "resume=True": "--resume", "init_from": "--init-from",
         "temporal=False": "--no-temporal", "architecture": "--arch", "ngf": "--ngf", "size": "--size"}


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vidtrans: warning: ")]


def body_in_square(poses: np.ndarray, size: int) -> bool:
    """Whether every body keypoint found lies inside a size x size training image."""
    body = poses[..., :NUM_KEYPOINTS, :]
    xy = body[..., :2][body[..., 2] > 0]
    return bool(((xy >= -0.5) & (xy < size - 0.5)).all())


@pytest.fixture
def detected_as(monkeypatch):
    """Make pose detection of a target video give `track` (exact keypoints), without MediaPipe."""
    import vidtrans.pose.track as track_module

    def use(track: np.ndarray) -> None:
        monkeypatch.setattr(track_module, "detect_keypoints", lambda *args, **kwargs: track.copy())

    return use


# --- 1: the training square holds the whole body --------------------------------------------------


def test_a_portrait_target_is_trained_on_a_square_around_their_whole_body(tmp_path):
    # The QA's phone framing: 96x192, the character standing in the lower half. Real detection.
    clip = dancer_clip(tmp_path / "portrait.mp4", "target", frames=12, size=(96, 192))
    out = tmp_path / "m"
    result = cli("train", clip.path, "-o", out, "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0 and warnings_in(result.stderr) == [], result.stderr
    card = json.loads((out / "card.json").read_text())
    left, top, side = card["training"]["crop"]
    assert (left, side) == (0, 96) and "crop_fill" not in card["training"]
    # Ankles are about 8 px above the feet at this size; the head reaches about 12 px over the eyes.
    body = clip.keypoints[..., :NUM_KEYPOINTS, :]
    assert top <= body[..., 1][body[..., 2] > 0].min() - 12 and top + side >= body[:, ANKLES, 1].max() + 8
    # The ankle lines of the statistics lie inside the training frame (they were at 1.24 of it).
    stats = card["target_pose_stats"]
    assert 0.5 < stats["far"] <= stats["near"] < 0.95, stats


def test_a_body_taller_than_the_frame_is_wide_is_padded_with_the_recorded_fill(tmp_path, detected_as, caplog):
    # A thin dancer about 110 px tall in a 64 px wide portrait frame.
    track = dance_keypoints(3, 12, 192, 192, TARGET_LOOK)
    track[..., 0] = (track[..., 0] - 96) * 0.4 + 32
    clip = make_clip(tmp_path / "tall.mp4", frames=12, size=(64, 192), audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, TARGET_LOOK))
    detected_as(track)
    options = TrainOptions(iterations=1, architecture="resnet_6blocks", size=64, ngf=16, device="cpu")
    with caplog.at_level(logging.WARNING):
        pairs, _, card = prepare_training(tmp_path / "m", options, target=clip.path)
    assert caplog.records == []
    left, top, side = pairs.crop
    assert side > 100 and left < 0 < left + side - 64 and 0 <= top <= 192 - side
    assert card.training["crop"] == [left, top, side] and card.training["crop_fill"] == list(CROP_FILL)
    assert body_in_square(pairs.poses, 64)
    # Bars of the fill colour left and right of the frame, which is all in the square.
    frame_from, frame_to = -left * 64 / side, (64 - left) * 64 / side
    image = pairs.frames[0]
    assert (image[:, :int(frame_from)] == CROP_FILL).all() and (image[:, int(frame_to) + 1:] == CROP_FILL).all()
    assert image[:, int(frame_from) + 2:int(frame_to) - 2].mean() > 60
    # The frame as `eval --video` rebuilds it (the same function) from the frame as it was encoded.
    expected = crop_square(clip.images[0], pairs.crop, 64).astype(int)
    assert np.abs(expected - image).mean() < 3
    assert 0.5 < pairs.stats["far"] <= pairs.stats["near"] < 1


@pytest.mark.parametrize("width, height", [(96, 192), (64, 192), (160, 160), (256, 128), (128, 96)])
def test_the_training_square_holds_the_body_with_room_for_head_and_feet(width, height):
    track = dance_keypoints(5, 24, height, width, TARGET_LOOK)
    left, top, side = training_crop(track, width, height)
    assert side == min(width, height)  # the character fits the shorter side: no padding
    assert 0 <= left <= width - side and 0 <= top <= height - side
    body = track[..., :NUM_KEYPOINTS, :]
    present = body[..., 2] > 0
    xs, ys = body[..., 0][present], body[..., 1][present]
    tall = np.median(np.where(present, body[..., 1], -np.inf).max(1) - np.where(present, body[..., 1], np.inf).min(1))
    room = 0.08 * tall  # for the head over the eyes and the feet under the ankles, where the frame has it
    assert top <= max(0, ys.min() - room) and top + side >= min(height, ys.max() + room)
    assert left <= max(0, xs.min() - room) and left + side >= min(width, xs.max() + room)


def test_a_dancer_travelling_wider_than_the_square_is_told_once(tmp_path, detected_as, caplog):
    # Landscape 192x64: the character crosses from the left to the right edge.
    track = dance_keypoints(3, 12, 64, 64, TARGET_LOOK)
    track[..., 0] += np.linspace(-30, 100, 12)[:, None]
    track[(track[..., 0] < 0) | (track[..., 0] > 191)] = 0
    clip = make_clip(tmp_path / "wide.mp4", frames=12, size=(192, 64), audio=False)
    detected_as(track)
    with caplog.at_level(logging.WARNING):
        pairs = VideoPairs(clip.path, size=64)
    told = [r.getMessage() for r in caplog.records]
    assert pairs.crop[2] == 64 and len(told) == 1, told
    assert "the person reaches out of the training square (64x64 pixels at x" in told[0]
    assert "frames showing them" in told[0] and "a square of its height" in told[0]


def test_a_target_video_smaller_than_the_training_size_is_told_once(tmp_path, detected_as):
    track = dance_keypoints(7, 12, 48, 48, TARGET_LOOK)
    clip = make_clip(tmp_path / "tiny.mp4", frames=12, size=(48, 48), audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, TARGET_LOOK))
    detected_as(track)
    result = cli("train", clip.path, "-o", tmp_path / "m", "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    told = warnings_in(result.stderr)
    assert len(told) == 1, result.stderr
    assert told[0] == (f"vidtrans: warning: {clip.path}: the training square (48x48 pixels at x 0, y 0) is enlarged "
                       "to --size 64, so the model learns blurred frames; train from a larger video, or at --size 48")
    # A resumed run, which must keep the video, is not told again what it cannot act on.
    result = cli("train", clip.path, "-o", tmp_path / "m", "--iterations", "2", "--resume", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    assert not [line for line in warnings_in(result.stderr) if "enlarged" in line], result.stderr


# --- 3: --resume keeps the recipe -----------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_checkpoint(tmp_path_factory):
    """A checkpoint trained 1 iteration on 4 noise pairs with a recipe other than the defaults."""
    root = tmp_path_factory.mktemp("recipe")
    pairs = paired_folder(root / "pairs", 4)
    out = root / "ck"
    result = cli("train", "--data", pairs, "-o", out, "--iterations", "1", "--lr", "0.001", "--seed", "3",
                 "--lambda-l1", "50", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    return pairs, out


@pytest.fixture
def recipe_copy(recipe_checkpoint, tmp_path):
    pairs, out = recipe_checkpoint
    return pairs, Path(shutil.copytree(out, tmp_path / "ck"))


def card_of(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text())


def test_resume_goes_on_with_the_recorded_recipe_and_the_card_records_the_seed(recipe_copy):
    pairs, out = recipe_copy
    assert card_of(out)["training"]["seed"] == 3
    result = cli("train", "--data", pairs, "-o", out, "--resume", "--iterations", "2", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    training = card_of(out)["training"]
    assert (training["iterations"], training["lr"], training["lambda_l1"], training["seed"]) == (2, 0.001, 50.0, 3)
    # Giving the recorded values is no change.
    result = cli("train", "--data", pairs, "-o", out, "--resume", "--iterations", "3", "--lr", "0.001", "--seed", "3",
                 *TINY_TRAINING)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("flags, named", [
    (["--lr", "0.0002"], "--lr 0.001, which --resume keeps; drop --lr 0.0002"),  # the default, given
    (["--seed", "5", "--lambda-l1", "1"], "--lambda-l1 50.0 and --seed 3, which --resume keeps; drop --lambda-l1 1.0 "
                                          "and --seed 5"),
    (["--batch-size", "2"], "--batch-size 1, which --resume keeps; drop --batch-size 2"),
    (["--lambda-feat", "0", "--lambda-face-gan", "1", "--lambda-face", "0"],
     "--lambda-feat 10.0, --lambda-face-gan 2.0 and --lambda-face 100.0, which --resume keeps"),
])
def test_resume_refuses_a_changed_recipe_in_one_line(recipe_copy, flags, named):
    pairs, out = recipe_copy
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    line = one_line(cli("train", "--data", pairs, "-o", out, "--resume", "--iterations", "3", *flags,
                        *TINY_TRAINING), 2)
    assert f"{out} was trained with {named}" in line, line
    assert line.endswith(f"or start a new stage from this model with --init-from {out} and another output folder")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


class _NoPairs:  # a checkpoint whose card and state alone are under test
    def background(self):
        return None


def synthetic_checkpoint(folder: Path, train_pose: str = "exact") -> Path:
    card = ModelCard(architecture="resnet_6blocks", ngf=4, native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle().to_dict(), training={"data": SYNTHETIC_DATA, "train_pose": train_pose})
    config = TrainConfig(iterations=1, architecture="resnet_6blocks", ngf=4, ndf=4, d_scales=1, face_d=False)
    Trainer(_NoPairs(), folder, config, card, device="cpu").save({})
    return folder


def refuse_loading(monkeypatch):
    def load(*args, **kwargs):
        raise AssertionError("training data was loaded before the options were checked")

    for source in ("SyntheticPairs", "VideoPairs", "PairedFolder"):
        monkeypatch.setattr(data_module, source, load)


def test_resume_refuses_other_pose_maps_and_python_callers_are_held_to_the_record(tmp_path, monkeypatch):
    refuse_loading(monkeypatch)
    out = synthetic_checkpoint(tmp_path / "m")
    with pytest.raises(UsageError, match=r"was trained with --train-pose exact, which --resume keeps; drop "
                                         r"--train-pose noisy, or start a new stage"), spelled(FLAGS):
        prepare_training(out, TrainOptions(resume=True, iterations=5, train_pose="noisy"), synthetic=True)
    # Python callers: a setting away from its default is a choice.
    with pytest.raises(UsageError, match=r"was trained with lr 0.0002, which resume=True keeps; drop lr 0.01"):
        prepare_training(out, TrainOptions(resume=True, iterations=5, lr=0.01), synthetic=True)


def test_a_python_resume_takes_the_recorded_recipe(recipe_copy):
    pairs, out = recipe_copy
    _, config, _ = prepare_training(out, TrainOptions(resume=True, iterations=5, device="cpu"), data=pairs)
    assert (config.lr, config.lambda_l1, config.seed) == (0.001, 50.0, 3)


def test_a_trainer_resumed_with_another_recipe_is_refused(tmp_path):
    out = synthetic_checkpoint(tmp_path / "m")
    card = ModelCard(architecture="resnet_6blocks", ngf=4, native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle().to_dict())
    config = TrainConfig(iterations=2, architecture="resnet_6blocks", ngf=4, ndf=4, d_scales=1, face_d=False, seed=9)
    with pytest.raises(UsageError, match="seed 9 differs from the checkpoint's 0"):
        Trainer(_NoPairs(), out, config, card, device="cpu", resume=True)


# --- 6: messages about the model training starts from ---------------------------------------------


@pytest.fixture(scope="module")
def temporal_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("temporal") / "t1"
    card = ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle().to_dict(), input_nc=6, temporal={"previous": "output", "first": "black"})
    save_checkpoint(folder, random_generator("resnet_6blocks", 6, 3, 4, "instance"), card)
    return folder


def test_init_from_an_unknown_name_offers_what_init_from_takes(tmp_path, monkeypatch):
    refuse_loading(monkeypatch)
    with pytest.raises(VidtransError) as info, spelled(FLAGS):
        prepare_training(tmp_path / "m", TrainOptions(init_from="no-such-model"), synthetic=True)
    message = str(info.value)
    assert message.startswith("model 'no-such-model' not found (available: ")
    assert message.endswith("; --init-from takes a vidtrans checkpoint folder or a model's name (a pix2pix .pth "
                            "file: import it first with vidtrans import-pix2pix)")


def test_init_from_conflicts_say_why_the_model_cannot_start_them(tmp_path, monkeypatch, temporal_model):
    refuse_loading(monkeypatch)
    options = TrainOptions(init_from=str(temporal_model), temporal=False)
    with pytest.raises(UsageError) as info, spelled(FLAGS):
        prepare_training(tmp_path / "m", options, synthetic=True)
    assert str(info.value) == (f"--init-from {temporal_model} is a temporal generator (it also sees its previous "
                               "output), which cannot start a frame-by-frame one: drop --no-temporal (or start from "
                               "a frame-by-frame model)")
    options = TrainOptions(init_from=str(temporal_model), architecture="unet_256", size=128)
    with pytest.raises(UsageError) as info, spelled(FLAGS):
        prepare_training(tmp_path / "m", options, synthetic=True)
    assert str(info.value) == (f"--init-from {temporal_model} starts from its generator as it is (resnet_6blocks, "
                               "--ngf 4, --size 64): drop --arch unet_256 and --size 128")
    assert "checkpoint" not in str(info.value)


def test_import_says_what_a_six_channel_generator_is(tmp_path, temporal_model):
    six = tmp_path / "six.pth"
    torch.save(random_generator("resnet_6blocks", 6, 3, 4, "instance").state_dict(), six)
    with pytest.raises(VidtransError) as info:
        import_pix2pix(six)
    assert str(info.value) == (f"{six}: a whole resnet_6blocks generator, with 6 input channels as a temporal model "
                               "has (the frame, then its previous output), which a pix2pix file cannot describe: only "
                               "generators of 1 or 3 input channels are imported; use a vidtrans temporal model's "
                               "checkpoint folder instead")
    # A vidtrans model's weights, in their folder or copied out of it.
    copied = tmp_path / "weights.safetensors"
    shutil.copy(temporal_model / "model.safetensors", copied)
    weights = temporal_model / "model.safetensors"
    line = one_line(cli("import-pix2pix", weights, "-o", tmp_path / "imported"), 1)
    assert line == (f"vidtrans: error: {weights}: the weights of a vidtrans checkpoint, which need no import; use "
                    f"its folder ({weights.parent}) as the model")
    # Copied out of it, the folder they are in has no card: it is the one they came from that works.
    line = one_line(cli("import-pix2pix", copied, "-o", tmp_path / "imported"), 1)
    assert line == (f"vidtrans: error: {copied}: the weights of a vidtrans checkpoint, which need no import but the "
                    "card.json saved with them; use the checkpoint folder they were copied from as the model")
    # Beside another model's card, as much as without one.
    other = tmp_path / "other"
    other.mkdir()
    (other / "card.json").write_text(json.dumps({"weights_id": "another save's"}))
    shutil.copy(copied, other / "w.safetensors")
    assert "copied from" in one_line(cli("import-pix2pix", other / "w.safetensors", "-o", tmp_path / "imported"), 1)


# --- 6: a save cut short leaves no grid of its iteration ------------------------------------------


class _Pairs:
    """Four random 64x64 pairs and a grey background, without keypoints."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.pairs = [tuple(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)) for _ in range(4)]

    def sample(self, rng):
        a, b = self.pairs[rng.integers(len(self.pairs))]
        return a, b, None

    def validation(self):
        return self.pairs[:2]

    def background(self):
        return np.full((64, 64, 3), 90, np.uint8)


def tiny_trainer(out: Path, iterations: int, resume: bool = False) -> Trainer:
    config = TrainConfig(iterations=iterations, architecture="resnet_6blocks", ngf=4, ndf=4, d_scales=1,
                         face_d=False, save_every=1, validate_every=1, data_workers=0)
    card = ModelCard(architecture="resnet_6blocks", native_size=(64, 64), training={"data": "pairs"})
    return Trainer(_Pairs(), out, config, card, device="cpu", resume=resume)


def test_a_save_cut_short_leaves_no_grid_of_its_iteration(tmp_path, monkeypatch):
    out = tmp_path / "m"
    tiny_trainer(out, 2).fit()
    grids = sorted(p.name for p in (out / "samples").iterdir())
    assert grids == ["iter_0000001.png", "iter_0000002.png"]
    # Each file of the set is what it should be (the grid is not written over the background).
    assert cv2.imread(str(out / "background.png")).shape == (64, 64, 3)
    assert cv2.imread(str(out / "samples" / "iter_0000002.png")).shape == (2 * 64, 3 * 64, 3)
    publish = atomic.publish

    def stop_at_the_card(tmp, dst, overwrite=False):
        if Path(dst).name == "card.json":
            raise KeyboardInterrupt("SIGTERM")
        publish(tmp, dst, overwrite)

    monkeypatch.setattr(atomic, "publish", stop_at_the_card)
    with pytest.raises(KeyboardInterrupt):
        tiny_trainer(out, 3, resume=True).fit()
    assert card_of(out)["training"]["iterations"] == 2
    assert sorted(p.name for p in (out / "samples").iterdir()) == grids
