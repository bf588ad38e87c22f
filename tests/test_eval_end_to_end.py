"""`vidtrans eval` end to end: held-out material through everything `run` does, scored where viewers look."""

import dataclasses
import json
import re
import tempfile

import numpy as np
import pytest

import vidtrans
from tests.conftest import run_cli as cli
from tests.media import dancer_clip, random_generator
from vidtrans.evaluate import dance_truth, video_held_out
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.pipeline import TranslateStage
from vidtrans.pose.render import PoseStyle

SIZE = 128  # the stand-in model's frame: the smallest whose face and hand squares SSIM can score
DANCE = ["--size", "256", "256", "--frames", "6", "--seed", "20000001"]
FIGURES = {"person_ssim", "face_ssim", "hands_ssim", "pose_error_px", "pose_missed", "detector_pose_error_px",
           "detector_pose_missed", "flicker_ratio", "flicker_ratio_unsmoothed", "ssim", "psnr"}


def _model(folder, training, smoothing=None):
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(SIZE, SIZE),
                     input_kind="pose", pose_style=PoseStyle().to_dict(), training=training, smoothing=smoothing)
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"), card)
    return folder


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory):
    """A stand-in for pose2person: trained (so its card says) on the synthetic dances 0..9999."""
    return _model(tmp_path_factory.mktemp("models") / "dancer", {"train_seeds": [0, 10_000]},
                  smoothing={"method": "ema", "strength": 0.5})


def _perfect(monkeypatch, truth):
    """Make the translation stage give the true frame for every frame it gets: a perfect model,
    with everything around it (detection, normalization, encode, decode, scoring) as it is."""
    def process(self, batch):
        batch.output = truth[batch.indices].copy()
        yield batch

    monkeypatch.setattr(TranslateStage, "process", process)


def test_a_perfect_model_scores_near_one_and_a_random_one_low(synthetic_model, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    random = cli("eval", "--model", synthetic_model, *DANCE, "--json")
    assert random.returncode == 0, random.stderr
    scores = json.loads(random.stdout)
    assert FIGURES <= set(scores) and scores["mode"] == "end-to-end" and scores["frames"] == 6
    assert scores["seed"] == 20000001 and scores["video_size"] == [256, 256] and scores["smoothing"] == "ema"
    assert all(0 <= scores[k] <= 1 for k in ("person_ssim", "face_ssim", "hands_ssim", "ssim", "pose_missed"))
    assert scores["person_ssim"] < 0.3 and scores["face_ssim"] < 0.3
    # The model's own smoothing (ema) calms its output; the figure without it comes from a run without it.
    assert scores["flicker_ratio"] < scores["flicker_ratio_unsmoothed"]
    # The detector reads the truth well at this size: the reference every model is held to.
    assert scores["detector_pose_error_px"] < 3 and scores["detector_pose_missed"] < 0.1
    assert list(tmp_path.iterdir()) == []  # the dance video and the outputs are gone

    model = vidtrans.load_model(synthetic_model, device="cpu")
    _, _, truth = dance_truth(model, 20000001, 6, (256, 256))
    _perfect(monkeypatch, truth)
    perfect = json.loads(cli("eval", "--model", synthetic_model, *DANCE, "--smooth", "none", "--json").stdout)
    # Only the encode stands between this output and the truth.
    assert min(perfect["person_ssim"], perfect["face_ssim"], perfect["hands_ssim"], perfect["ssim"]) > 0.9
    assert perfect["pose_error_px"] < scores["detector_pose_error_px"] + 0.5 and perfect["pose_missed"] < 0.1
    assert 0.9 < perfect["flicker_ratio"] == perfect["flicker_ratio_unsmoothed"] < 1.1


def test_human_output_leads_with_the_person(synthetic_model):
    result = cli("eval", "--model", synthetic_model, "--size", "256", "256", "--frames", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5 and "SSIM" not in result.stderr, (result.stdout, result.stderr)
    assert "end to end on the held-out dance 20000000: 3 frames of 256x256 through vidtrans run" in lines[0]
    assert re.fullmatch(r"  SSIM  person 0\.\d+  face (0\.\d+|n/a)  hands (0\.\d+|n/a)", lines[1]), lines[1]
    assert re.match(r"  pose error ([\d.]+ px|n/a), [\d.]+ % missed \(the detector on the truth: [\d.]+ px", lines[2])
    assert re.fullmatch(r"  flicker [\d.]+x the truth's \([\d.]+x without smoothing\)", lines[3]), lines[3]
    assert re.fullmatch(r"full frame: SSIM 0\.\d+, PSNR [\d.]+ dB", lines[4]), lines[4]


def test_model_only_keeps_scoring_the_network_alone(synthetic_model):
    result = cli("eval", "--model", synthetic_model, "--model-only", "--frames", "4", "--json")
    scores = json.loads(result.stdout)
    assert scores["mode"] == "model-only" and scores["frames"] == 4 and 0 < scores["ssim"] < 1


@pytest.mark.parametrize("args,expected", [
    (["--seed", "5"], "--seed 5 was used in training (seeds 0..9999); pick a held-out seed such as 20000000"),
    (["--size", "255", "256"], "--size 255 256: the dance video's WIDTH HEIGHT, even numbers from 16 to 8192"),
    (["--synthetic", "--data", "."], "give one of --synthetic, --video VIDEO or --data DIR, not --synthetic and "
                                     "--data"),
    (["--model-only", "--size", "256", "256"], "--size is the size of the synthetic dance video, which only "
                                               "end-to-end evaluation of the synthetic dances writes; drop it"),
    (["--video", "dance.mp4"], "was not trained from a video, and --video scores a model made by vidtrans train VIDEO on that video; drop --video"),
])
def test_refusals_are_one_line(synthetic_model, args, expected):
    result = cli("eval", "--model", synthetic_model, *args)
    assert result.returncode == 2 and expected in result.stderr and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("model_only", [[], ["--model-only"]])
def test_an_rgb_model_is_scored_on_pairs_only(rgb_model_dir, model_only):
    """Also model alone: pose maps scored against the target mean nothing for an RGB model."""
    result = cli("eval", "--model", rgb_model_dir, "--synthetic", *model_only)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "translates rgb frames, and the synthetic dances and a target video's held-out tail are pose material; " \
           "score it on a paired folder with --data DIR" in result.stderr


def test_a_model_trained_from_a_video_is_scored_on_its_held_out_tail(tmp_path, monkeypatch):
    from vidtrans.options import TrainOptions
    from vidtrans.train.setup import prepare_training

    clip = dancer_clip(tmp_path / "target.mp4", look_name="target", frames=30, size=(320, 256), seed=3)
    # What `vidtrans train target.mp4` decides and records, without the training itself.
    source, _, card = prepare_training(tmp_path / "m", TrainOptions(size=SIZE, architecture="resnet_6blocks"),
                                       target=clip.path)
    save_checkpoint(tmp_path / "m", random_generator("resnet_6blocks", 3, 3, 8, "instance"),
                    dataclasses.replace(card, ngf=8, norm="instance"))
    model = vidtrans.load_model(tmp_path / "m", device="cpu")
    held_out = video_held_out(model, clip.path)
    # The truth is what training would have seen of the frames it never saw: the last tenth.
    assert len(held_out.truth) == 30 - source.split == 3
    assert np.array_equal(held_out.truth, np.stack(source.frames[source.split:]))
    visible = held_out.keypoints[..., 2] > 0
    assert visible.mean() > 0.8
    assert np.abs(held_out.keypoints - source.poses[source.split:])[..., :2][visible].mean() < 1.0

    _perfect(monkeypatch, held_out.truth)
    result = cli("eval", "--model", tmp_path / "m", "--video", clip.path, "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["mode"] == "end-to-end" and scores["frames"] == 3 and "video_size" not in scores
    assert scores["person_ssim"] > 0.9 and scores["ssim"] > 0.9

    other = dancer_clip(tmp_path / "other.mp4", frames=2)
    refused = cli("eval", "--model", tmp_path / "m", "--video", other.path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "was trained on target.mp4, not other.mp4; pass that video" in refused.stderr
    # Another clip under the training video's name is told apart by its contents.
    (tmp_path / "elsewhere").mkdir()
    impostor = dancer_clip(tmp_path / "elsewhere" / "target.mp4", look_name="target", frames=30, size=(320, 256), seed=4)
    refused = cli("eval", "--model", tmp_path / "m", "--video", impostor.path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "was trained on target.mp4, not another target.mp4 (the files differ)" in refused.stderr
    # A copy of the training video elsewhere is the same video.
    copy = tmp_path / "elsewhere" / "copy" / "target.mp4"
    copy.parent.mkdir()
    copy.write_bytes(clip.path.read_bytes())
    assert len(video_held_out(model, copy).truth) == 3
    # So is a renamed copy: the contents decide.
    renamed = copy.rename(copy.with_name("renamed.mp4"))
    assert len(video_held_out(model, renamed).truth) == 3
