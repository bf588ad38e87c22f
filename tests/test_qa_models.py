"""QA findings on models: upstream ResNets of every norm and dropout layout, replacing a checkpoint
folder, broken and old model cards, memory for large working sizes, and option checks."""

import json
import math

import numpy as np
import pytest
import torch

import vidtrans
from tests.media import assert_same_frames, make_clip, upstream_frames
from vidtrans.errors import UsageError, VidtransError
from vidtrans.models import translator as translator_module
from vidtrans.models.checkpoint import (CARD_NAME, ModelCard, import_pix2pix, read_card, save_background,
                                        save_checkpoint)
from vidtrans.models.networks import build_generator, init_weights
from vidtrans.options import EncodeOptions, TrainOptions
from vidtrans.pose.normalize import PoseStats
from vidtrans.pose.render import PoseStyle


def upstream_resnet(norm, dropout, ngf=8, seed=0):
    """A resnet_6blocks in pix2pix's layout with pix2pix's initial weights, and batch norm scales and
    shifts that matter."""
    torch.manual_seed(seed)
    net = build_generator("resnet_6blocks", 3, 3, ngf, norm, dropout)
    init_weights(net)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net


def random_frames(count, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def one_line_error(result, code=1):
    """The message of a CLI call that failed as vidtrans should: one error line, no traceback, exit
    status `code` (2 for options that make no sense, 1 for failures of the work)."""
    assert result.exception is None and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: error:")]
    assert result.returncode == code and len(errors) == 1, result.stderr
    return errors[0].removeprefix("vidtrans: error: ")


# --- 7. upstream ResNets: batch norm without dropout -------------------------------------------------


@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_upstream_resnets_of_every_norm_and_dropout_layout_translate_like_upstream(tmp_path, norm, dropout):
    net = upstream_resnet(norm, dropout)
    pth = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), pth)
    card = import_pix2pix(pth).card
    assert (card.architecture, card.norm, card.dropout, card.ngf) == ("resnet_6blocks", norm, dropout, 8)
    frames = random_frames(2, 64, 64, seed=1)
    model = vidtrans.load_model(pth, device="cpu", precision="fp32", size=64, backend="torch")
    assert np.abs(model.translate(frames).astype(int) - upstream_frames(net, frames).astype(int)).max() <= 1


# --- 8. import --overwrite replaces the old model's files ---------------------------------------------


def test_import_overwrite_replaces_every_file_of_the_old_model_and_keeps_the_users(tmp_path, cli):
    folder = tmp_path / "model"
    old = build_generator("resnet_6blocks", 3, 3, 4, "instance")
    save_checkpoint(folder, old, ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance",
                                           native_size=(64, 64)))
    save_background(folder, np.full((64, 64, 3), 200, np.uint8))
    (folder / "train_state.pt").write_bytes(b"the old run's optimizer state")
    (folder / "samples").mkdir()
    (folder / "samples" / "iter_0000500.png").write_bytes(b"a grid of the old run")
    users = {"notes.txt": b"my notes", "samples/favourite.png": b"kept by hand", "exports/clip.mp4": b"a video"}
    for name, data in users.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
    pth = tmp_path / "latest_net_G.pth"
    torch.save(upstream_resnet("instance", False).state_dict(), pth)

    result = cli("import-pix2pix", pth, "-o", folder, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert not (folder / "background.png").exists() and not (folder / "train_state.pt").exists()
    assert not (folder / "samples" / "iter_0000500.png").exists()
    assert {name: (folder / name).read_bytes() for name in users} == users
    model = vidtrans.load_model(folder, device="cpu")
    assert model.background is None and model.native_size == (256, 256) and model.card.ngf == 8
    assert model.translate(random_frames(1, 48, 64)).shape == (1, 48, 64, 3)


def test_import_without_overwrite_changes_nothing(tmp_path, cli, rgb_model_dir):
    import shutil

    folder = shutil.copytree(rgb_model_dir, tmp_path / "model")
    save_background(folder, np.full((64, 64, 3), 200, np.uint8))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    pth = tmp_path / "latest_net_G.pth"
    torch.save(upstream_resnet("batch", False).state_dict(), pth)
    assert "--overwrite" in one_line_error(cli("import-pix2pix", pth, "-o", folder), 2)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# --- 16/5. model cards ------------------------------------------------------------------------------

STATS = {"frame_width": 64, "frame_height": 64, "far": 0.8, "near": 0.9, "height_far": 0.5, "height_near": 0.6,
         "version": 1}
STYLE = PoseStyle(version=2).to_dict()
POSE_CARD = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64), input_kind="pose",
                      pose_style=STYLE, target_pose_stats=STATS).to_dict()
RGB_CARD = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)).to_dict()
NAN = float("nan")


def without(card, name):
    return {k: v for k, v in card.items() if k != name}


TINY_SHOULDERS = {"version": 4, "centre_x": 0.0, "shoulder_width": 1e-300, "neck_x": 0.0, "neck_y": 0.4,
                  "head_length": None}
# name: (card, the field named, what the message says)
BROKEN_CARDS = {
    "stats-text": ({**POSE_CARD, "target_pose_stats": {**STATS, "far": "x"}}, "target_pose_stats", "far must be"),
    "stats-nan": ({**POSE_CARD, "target_pose_stats": {**STATS, "near": NAN}}, "target_pose_stats", "near must be"),
    "stats-zero-height": ({**POSE_CARD, "target_pose_stats": {**STATS, "height_far": 0.0}}, "target_pose_stats",
                          "height_far must be"),
    # Finite but absurd: the mappings overflowed (a NumPy warning, and garbage poses drawn).
    "stats-huge-height": ({**POSE_CARD, "target_pose_stats": {**STATS, "height_near": 1e300}}, "target_pose_stats",
                          "height_near must be a finite number above 0, from 1/1048576 to 1048576 (frame heights)"),
    "stats-tiny-shoulders": ({**POSE_CARD, "target_pose_stats": {**STATS, **TINY_SHOULDERS}}, "target_pose_stats",
                             "shoulder_width must be a finite number above 0, from 1/1048576"),
    "stats-zero-frame": ({**POSE_CARD, "target_pose_stats": {**STATS, "frame_height": 0}}, "target_pose_stats",
                         "frame_height must be"),
    "stats-version": ({**POSE_CARD, "target_pose_stats": {**STATS, "version": 9}}, "target_pose_stats",
                      "upgrade vidtrans"),
    "style-nan": ({**POSE_CARD, "pose_style": {**STYLE, "limb_width": NAN}}, "pose_style", "limb_width must be"),
    "style-negative": ({**POSE_CARD, "pose_style": {**STYLE, "limb_width": -4.0}}, "pose_style", "limb_width must be"),
    "style-alpha": ({**POSE_CARD, "pose_style": {**STYLE, "limb_alpha": 3}}, "pose_style", "limb_alpha must be"),
    "style-background": ({**POSE_CARD, "pose_style": {**STYLE, "background": ["black"]}}, "pose_style",
                         "background must be"),
    "style-version-9": ({**POSE_CARD, "pose_style": {**STYLE, "version": 9}}, "pose_style", "upgrade vidtrans"),
    # Damage, not a newer vidtrans's card: upgrading would not help.
    "stats-no-version": ({**POSE_CARD, "target_pose_stats": without(STATS, "version")}, "target_pose_stats",
                         "version must be one of 1, 2, 3, 4, got None; fix the model card"),
    "style-version-text": ({**POSE_CARD, "pose_style": {**STYLE, "version": "2"}}, "pose_style",
                           "version must be one of 1, 2, got '2'; fix the model card"),
    "smoothing-method": ({**RGB_CARD, "smoothing": {"method": "blur", "strength": 0.5}}, "smoothing", "flow"),
    "smoothing-strength": ({**RGB_CARD, "smoothing": {"method": "ema", "strength": "strong"}}, "smoothing",
                           "strength"),
    "no-input-kind": (without(POSE_CARD, "input_kind"), "input_kind", "missing"),
    "no-ngf": (without(RGB_CARD, "ngf"), "ngf", "missing"),
    "no-norm": (without(RGB_CARD, "norm"), "norm", "missing"),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", frames=2, size=(64, 48), audio=False).path


@pytest.mark.parametrize("name", sorted(BROKEN_CARDS))
def test_broken_cards_are_refused_when_read_naming_the_file_and_field(tmp_path, cli, clip, rgb_model_dir,
                                                                      monkeypatch, name):
    from vidtrans.pose import detector

    monkeypatch.setattr(detector.PoseDetector, "__init__",
                        lambda *a, **k: pytest.fail("detection ran before the check"))
    card, field, words = BROKEN_CARDS[name]
    folder = tmp_path / name
    folder.mkdir()
    (folder / CARD_NAME).write_text(json.dumps(card))
    (folder / "model.safetensors").write_bytes((rgb_model_dir / "model.safetensors").read_bytes())
    output = tmp_path / "out.mp4"
    message = one_line_error(cli("run", clip, "--model", folder, "-o", output, "--device", "cpu"))
    assert message.startswith(f"{folder / CARD_NAME}: field {field!r}") and words in message, message
    assert "upgrade vidtrans" in message or "re-export the checkpoint" in message, message
    assert not output.exists()


def test_old_cards_keep_loading(tmp_path, rgb_model_dir):
    """Cards from before `smoothing`, `temporal` and `weights_sha256`, with version-1 pose styles and
    statistics, minimal pose styles, and the ones vidtrans writes today."""
    style_v1 = PoseStyle().to_dict()
    cards = {
        "first-format": without(without(without({**POSE_CARD, "pose_style": style_v1}, "smoothing"), "temporal"),
                                "weights_sha256"),
        "style-version-only": {**POSE_CARD, "pose_style": {"version": 1}},
        "stats-version-2": {**POSE_CARD, "target_pose_stats": {**STATS, "version": 2, "centre_x": -0.1}},
        "stats-no-centre": {**POSE_CARD, "target_pose_stats": {**STATS, "version": 2, "centre_x": None}},
        "empty-parts": {**RGB_CARD, "pose_style": {}, "target_pose_stats": {}, "smoothing": {}},
        "recommends-flow": {**RGB_CARD, "smoothing": {"method": "flow", "strength": 0.5}},
        "no-size-or-precision": without(without(without(RGB_CARD, "native_size"), "half_precision"), "normalization"),
    }
    for name, card in cards.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / CARD_NAME).write_text(json.dumps(card))
        (folder / "model.safetensors").write_bytes((rgb_model_dir / "model.safetensors").read_bytes())
        model = vidtrans.load_model(folder, device="cpu")
        assert model.translate(random_frames(1, 48, 64)).shape == (1, 48, 64, 3), name
    assert vidtrans.load_model("pose2person", device="cpu").card.input_kind == "pose"


def test_style_and_statistics_check_their_values_when_made():
    with pytest.raises(VidtransError, match=r"^limb_width must be a finite number, 0 or more, got -1"):
        PoseStyle(limb_width=-1)
    with pytest.raises(VidtransError, match=r"^height_near must be a finite number above 0, from 1/1048576 to 1048576 "
                                            r"\(frame heights\), got nan"):
        PoseStats(frame_width=64, frame_height=64, far=0.8, near=0.9, height_far=0.5, height_near=NAN)
    with pytest.raises(VidtransError, match=r"^near \(0.7\) must be at least far \(0.8\)"):
        PoseStats(frame_width=64, frame_height=64, far=0.8, near=0.7, height_far=0.5, height_near=0.6)
    assert PoseStyle.from_dict({**STYLE, "background": [1, 2, 3]}).background == (1, 2, 3)


# --- 6. memory for large working sizes --------------------------------------------------------------


def test_batches_are_split_to_fit_the_memory_available(monkeypatch, rgb_model_dir):
    model = vidtrans.load_model(rgb_model_dir, device="cpu", precision="fp32", backend="torch")
    frames = random_frames(5, 48, 64, seed=2)
    whole = model.translate(frames)
    passes = []
    model.net.register_forward_pre_hook(lambda module, args: passes.append(len(args[0])))
    monkeypatch.setattr(translator_module, "available_memory", lambda device: int(2.5 * model.frame_memory(48, 64)))
    assert_same_frames(model.translate(frames), whole)
    assert passes == [2, 2, 1]


def test_a_working_size_too_large_for_memory_is_refused_in_one_line(monkeypatch, tmp_path, cli, clip,
                                                                      rgb_model_dir):
    monkeypatch.setattr(translator_module, "available_memory", lambda device: 8 << 30)
    model = vidtrans.load_model(rgb_model_dir, device="cpu", size=8192)
    need = model.frame_memory(48, 64)
    assert need > 8 << 30
    with pytest.raises(VidtransError) as info:
        model.translate(random_frames(1, 48, 64))
    message = str(info.value)
    fits = int(8192 * math.sqrt((8 << 30) / need)) // 16 * 16
    assert "8192x6144" in message and f"pass a smaller size (at most about {fits})" in message, message
    assert vidtrans.load_model(rgb_model_dir, device="cpu", size=fits).frame_memory(48, 64) <= 8 << 30
    output = tmp_path / "out.mp4"
    cli_message = one_line_error(cli("run", clip, "--model", rgb_model_dir, "-o", output, "--device", "cpu",
                                     "--model-size", "8192"))
    assert "8192x6144" in cli_message and "smaller size" in cli_message
    assert not output.exists()


def test_memory_available_is_measured():
    assert translator_module.available_memory(torch.device("cpu")) > 0


# --- 5, 19. options and load_model ------------------------------------------------------------------


def test_negative_seed_is_refused_before_any_work(tmp_path, cli, monkeypatch):
    from vidtrans.train import data

    for source in ("SyntheticPairs", "VideoPairs", "PairedFolder"):
        monkeypatch.setattr(data, source, lambda *a, **k: pytest.fail("training data was loaded before the check"))
    with pytest.raises(VidtransError, match=r"^seed must be a whole number from 0 to 2\*\*63 - 1, got -1$"):
        TrainOptions(seed=-1)
    message = one_line_error(cli("train", "--synthetic", "-o", tmp_path / "new", "--seed", "-1"), code=2)
    assert message.startswith("--seed must be a whole number from 0") and not (tmp_path / "new").exists()


@pytest.mark.parametrize("crf", [-5, 2.5, "18"])
def test_encode_options_refuse_an_impossible_crf_when_made(crf):
    with pytest.raises(VidtransError, match=r"^crf must be a whole number, 0 or more"):
        EncodeOptions(crf=crf)


@pytest.mark.parametrize("name_or_path", [None, ""])
def test_load_model_without_a_model_is_one_line(name_or_path):
    with pytest.raises(UsageError, match=r"^no model given \(.*\); name a model, a checkpoint folder or a \.pth"):
        vidtrans.load_model(name_or_path, device="cpu")


def test_read_card_names_missing_fields_after_wrong_values(tmp_path):
    (tmp_path / CARD_NAME).write_text(json.dumps({**without(RGB_CARD, "ngf"), "native_size": ["big", "tall"]}))
    with pytest.raises(VidtransError, match="field 'native_size'"):
        read_card(tmp_path)
