"""Training temporal models (Everybody Dance Now: the generator also sees its own previous output,
the discriminator two consecutive frames): the consecutive frames they learn from, the recurrent
model they write, resume, fine-tuning from a frame-by-frame model, and what is refused."""

import json

import cv2
import numpy as np
import pytest
import torch

import vidtrans
from tests.conftest import run_cli as cli
from tests.media import dancer_clip, random_generator
from tests.test_train_recipe import SIZE, card, one_thread, source  # noqa: F401 (fixtures: the same tiny set-up)
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, read_card, save_checkpoint
from vidtrans.models.translator import RecurrentState
from vidtrans.options import TrainOptions, spelled
from vidtrans.train.data import VideoPairs
from vidtrans.train.setup import prepare_training
from vidtrans.train.synth import dance_keypoints
from vidtrans.train.trainer import TrainConfig, Trainer

TINY = {"architecture": "unet_64", "ngf": 4, "ndf": 4, "data_workers": 0, "save_every": 1000, "validate_every": 1000}
TINY_FLAGS = ["--arch", "unet_64", "--size", "64", "--ngf", "4", "--ndf", "4", "--save-every", "2",
              "--validate-every", "2"]




def weights(net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def load(folder):
    return vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")


def levels(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def pose_clip(source, frames=4) -> np.ndarray:
    """Consecutive pose maps of the held-out dance."""
    return np.stack([pose for pose, _ in source.validation_sequences(frames)[0]])


@pytest.fixture(scope="module")
def temporal_run(source, tmp_path_factory):
    folder = tmp_path_factory.mktemp("temporal") / "m"
    trainer = Trainer(source, folder, TrainConfig(iterations=2, temporal=True, **{**TINY, "save_every": 2}), card(),
                      device="cpu")
    initial = weights(trainer.netG)
    trainer.fit()
    return folder, initial, trainer


def test_a_temporal_run_writes_a_model_that_runs_recurrently(source, temporal_run):
    folder, initial, trainer = temporal_run
    assert any(not torch.equal(initial[k], v) for k, v in trainer.netG.state_dict().items())
    saved = read_card(folder)
    assert saved.input_nc == 6 and saved.temporal == {"previous": "output", "first": "background"}
    assert saved.training["temporal"] is True and saved.training["iterations"] == 2
    model = load(folder)
    clip = pose_clip(source)
    whole = model.translate(clip)
    assert np.array_equal(whole[0], model.translate(clip[0]))
    assert not np.array_equal(whole[1], model.translate(clip[1]))  # the previous output matters
    # Training makes the second of two held-out frames as the translator does (the same first
    # image, the same previous output): its sample grid (pose | generated | real) shows it.
    sequences = source.validation_sequences(2)
    translated = np.concatenate([model.translate(np.stack([pose for pose, _ in frames]))[-1] for frames in sequences])
    grid = cv2.cvtColor(cv2.imread(str(folder / "samples" / "iter_0000002.png")), cv2.COLOR_BGR2RGB)
    assert len(sequences) == 2 and levels(grid[:, SIZE:2 * SIZE], translated) <= 1


def test_samples_are_consecutive_frames_of_one_dance(source):
    tracks = {seed: dance_keypoints(seed, source.frames_per_dance, SIZE, SIZE, source.look)
              for seed in source.train_seeds}
    rng = np.random.default_rng(5)
    for _ in range(3):
        (pose, image, keypoints), (_, _, following) = source.sample_sequence(rng, 2)
        seed, frame = next((s, f) for s, track in tracks.items() for f in range(len(track) - 1)
                           if np.array_equal(track[f], keypoints))
        assert np.array_equal(tracks[seed][frame + 1], following)
        assert all(np.array_equal(a, b) for a, b in zip((pose, image), source.pair(keypoints)))


def test_a_long_target_video_keeps_consecutive_frames(tmp_path):
    target = dancer_clip(tmp_path / "target.mp4", look_name="target", frames=24, size=(128, 128), seed=3)
    # Eight frames of 24: spread alone they would be every third frame, none with its neighbour.
    spread = VideoPairs(target.path, size=SIZE, max_frames=8)
    with pytest.raises(VidtransError, match="seen in no 2 consecutive frames"):
        spread.sample_sequence(np.random.default_rng(0), 2)
    pairs = VideoPairs(target.path, size=SIZE, max_frames=8, sequence_length=2)
    assert len(pairs.frames) <= 8
    rng = np.random.default_rng(0)
    for _ in range(4):
        first, second = pairs.sample_sequence(rng, 2)
        i = next(i for i, keypoints in enumerate(pairs.poses) if np.array_equal(keypoints, first[2]))
        assert i + 1 < pairs.split and pairs.indices[i + 1] == pairs.indices[i] + 1
        assert np.array_equal(second[2], pairs.poses[i + 1]) and second[1] is pairs.frames[i + 1]


def test_train_temporal_on_a_target_video_then_run_and_resume(tmp_path):
    target = dancer_clip(tmp_path / "target.mp4", look_name="target", frames=24, size=(128, 128), seed=3)
    out = tmp_path / "alice"
    result = cli("train", target.path, "-o", out, "--temporal", "--iterations", "2", *TINY_FLAGS)
    assert result.returncode == 0, result.stderr
    card_json = json.loads((out / "card.json").read_text())
    assert card_json["input_nc"] == 6 and card_json["temporal"] == {"previous": "output", "first": "background"}
    dancer = dancer_clip(tmp_path / "dancer.mp4", frames=6, size=(64, 64))
    run = cli("run", dancer.path, "-o", tmp_path / "out.mp4", "--model", out, "--device", "cpu", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["recurrent"] is True and summary["frames"] == 6

    # --resume keeps the checkpoint's temporal setting; asking for the other one is refused.
    resumed = cli("train", target.path, "-o", out, "--resume", "--iterations", "3", *TINY_FLAGS)
    assert resumed.returncode == 0, resumed.stderr
    assert read_card(out).training["iterations"] == 3 and read_card(out).input_nc == 6
    refused = cli("train", target.path, "-o", out, "--resume", "--no-temporal", "--iterations", "4", *TINY_FLAGS)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--no-temporal differs from the checkpoint, trained with --temporal; drop it or use --temporal" in refused.stderr


def test_a_frame_by_frame_run_does_not_resume_as_temporal(source, tmp_path):
    folder = tmp_path / "m"
    Trainer(source, folder, TrainConfig(iterations=1, **{**TINY, "save_every": 1}), card(), device="cpu").fit()
    with pytest.raises(VidtransError, match="temporal=True differs from the checkpoint, trained with temporal=False; use temporal=False"):
        Trainer(source, folder, TrainConfig(iterations=2, temporal=True, **TINY), card(), device="cpu", resume=True)


def test_a_temporal_run_from_a_frame_by_frame_model_starts_out_as_that_model(source, tmp_path):
    original = tmp_path / "frame_by_frame"
    save_checkpoint(original, random_generator("unet_64", 3, 3, 4, "instance", seed=2),
                    ModelCard(architecture="unet_64", ngf=4, norm="instance", native_size=(SIZE, SIZE),
                              input_kind="pose"))
    config = TrainConfig(iterations=2, temporal=True, init_from=str(original), **TINY)
    trainer = Trainer(source, tmp_path / "m", config, card(), device="cpu")
    trainer.save({})  # the fine-tuned model before its first step
    clip = pose_clip(source)
    before, after = load(original), load(tmp_path / "m")
    assert after.temporal and np.array_equal(after.translate(clip), before.translate(clip))
    state = RecurrentState()
    state.previous = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert np.array_equal(after.translate_clip(clip, state), before.translate(clip))
    # Its first step starts using the previous output.
    trainer.step()
    trainer.close()
    assert trainer.netG.state_dict()["model.model.0.weight"][:, 3:].abs().sum() > 0


def test_what_a_temporal_run_cannot_do_is_refused_in_one_line(source, temporal_run, tmp_path):
    refused = cli("train", "--data", tmp_path, "-o", tmp_path / "m", "--temporal", "--iterations", "2")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--temporal trains on consecutive frames, which a paired folder (--data) does not have" in refused.stderr

    class Unrelated:  # a source of unrelated pairs, as a paired folder is
        sample, validation, background = source.sample, source.validation, source.background

    with pytest.raises(VidtransError, match="trains on consecutive frames"):
        Trainer(Unrelated(), tmp_path / "n", TrainConfig(iterations=2, temporal=True, **TINY), card(), device="cpu")
    # A temporal model fine-tunes into a temporal model only.
    folder = temporal_run[0]
    with pytest.raises(VidtransError, match=r"is a temporal generator \(it also sees its previous output\), which cannot "
                                            r"start a frame-by-frame one: drop --no-temporal"):
        with spelled({"init_from": "--init-from", "temporal=False": "--no-temporal"}):  # as `vidtrans train` does
            prepare_training(tmp_path / "o", TrainOptions(init_from=str(folder), temporal=False), synthetic=True)
