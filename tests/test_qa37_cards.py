"""What a user reading the README found of model cards, precision, pose input, `vidtrans models` and the
Python API (QA round 37)."""

import json
import logging
import re
from pathlib import Path

import pytest

import vidtrans
from tests.media import make_clip, random_generator
from vidtrans.models import translator as translator_module
from vidtrans.models.checkpoint import CARD_NAME, ModelCard, save_checkpoint

REPO = Path(__file__).resolve().parent.parent


def test_a_card_that_does_not_say_half_precision_runs_fp32_under_auto(tmp_path, monkeypatch):
    """README: half precision is used "only where a card says it was checked". A hand-written card
    without `half_precision` ran in bf16 under auto, where the CPU multiplies it (the field's default was true)."""
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: True)
    folder = tmp_path / "unet"
    save_checkpoint(folder, random_generator("unet_128", 3, 3, 8, "batch", seed=0),
                    ModelCard(architecture="unet_128", ngf=8, norm="batch", native_size=(128, 128),
                              half_precision=True))
    card = json.loads((folder / CARD_NAME).read_text())
    assert vidtrans.load_model(folder, device="cpu", backend="torch").precision == "bf16"  # checked: allowed
    (folder / CARD_NAME).write_text(json.dumps({k: v for k, v in card.items() if k != "half_precision"}))
    assert vidtrans.load_model(folder, device="cpu", backend="torch").precision == "fp32"


def test_the_shipped_model_says_it_was_checked_in_half_precision():
    card = json.loads((REPO / "checkpoints" / "pose2person" / CARD_NAME).read_text())
    assert card["half_precision"] is True and card["metrics"]["half_precision"]["bf16"]["psnr"] >= 45


@pytest.mark.parametrize("precision, told", [("bf16", True), ("auto", False), ("fp32", False)])
def test_bf16_asked_for_a_resnet_normalizing_each_frame_is_honoured_and_told(rgb_model_dir, monkeypatch, caplog,
                                                                            precision, told):
    """README: bf16 "turns near-flat frames into noise" for ResNets whose norms use each frame's own
    statistics, which auto avoids; asked for by name it ran so without a word."""
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: True)
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        model = vidtrans.load_model(rgb_model_dir, device="cpu", precision=precision, backend="torch")
    assert model.precision == ("bf16" if precision == "bf16" else "fp32")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ([] if not told else [
        "resnet_6blocks takes each frame's own statistics in its norms (instance norm), where bf16 turns near-flat "
        "frames (fades, dark scenes) into noise; running bf16 as asked; use precision='fp32'"])


def test_run_with_bf16_for_such_a_resnet_prints_one_warning_naming_fp32(cli, tmp_path, rgb_model_dir, monkeypatch):
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: True)
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--precision", "bf16")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning: ")]
    assert len(warnings) == 1 and "near-flat frames" in warnings[0], result.stderr
    assert warnings[0].endswith("running bf16 as asked; use --precision fp32")


@pytest.fixture(scope="module")
def dances(tmp_path_factory):
    """The same dance as camera footage and as pose maps (6 frames of 160x120), and a black clip."""
    from tests.media import dancer_clip, solid
    from vidtrans.pose import render_pose
    from vidtrans.pose.track import is_pose_video

    folder = tmp_path_factory.mktemp("dances")
    footage = dancer_clip(folder / "footage.mp4", frames=6, size=(160, 120))
    maps = make_clip(folder / "maps.mp4", frames=6, size=(160, 120), audio=False,
                     frame_fn=lambda i, w, h: render_pose(footage.keypoints[i], h, w))
    black = make_clip(folder / "black.mp4", frames=6, size=(160, 120), audio=False, frame_fn=solid((0, 0, 0)))
    assert is_pose_video(maps.path) and not is_pose_video(footage.path)  # as --pose auto tells them
    return {"footage": footage.path, "maps": maps.path, "black": black.path}


def test_run_pose_none_on_footage_warns_and_still_feeds_the_frames(cli, tmp_path, pose_model_dir, dances):
    """`--pose none` on ordinary video was taken silently ("pose: input is pose maps"), and the
    output was garbage: it is still done as asked, with a warning naming what detects the dancer."""
    clip = dances["footage"]
    result = cli("run", clip, "-o", tmp_path / "out.mp4", "--model", pose_model_dir, "--pose", "none", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pose"] == "input is pose maps"
    assert [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning: ")] == [
        f"vidtrans: warning: {clip} does not look like pose maps, yet --pose none feeds tinypose its frames as pose "
        "maps; --pose detect (or auto) detects the dancer"]


@pytest.mark.parametrize("clip, told", [("footage", True), ("maps", False), ("black", False)])
def test_translate_video_pose_none_warns_only_for_what_is_not_pose_maps(tmp_path, pose_model_dir, dances, caplog,
                                                                       clip, told):
    """Pose maps are not told, nor a black clip (a pose video of nobody says nothing either way)."""
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        summary = vidtrans.translate_video(dances[clip], tmp_path / "out.mp4", pose_model_dir, pose="none")
    assert summary.frames == 6
    warnings = [r.getMessage() for r in caplog.records if "pose maps" in r.getMessage()]
    assert warnings == ([f"{dances[clip]} does not look like pose maps, yet pose='none' feeds tinypose its frames as "
                         "pose maps; pose='detect' (or auto) detects the dancer"] if told else [])


def test_models_shows_grey_for_one_channel_models(cli, tmp_path, monkeypatch):
    """`vidtrans models` said `rgb` for models that see grey (input_nc 1), 1->1 and 1->3 alike."""
    for name, (input_nc, output_nc) in {"grey1": (1, 1), "grey3": (1, 3), "colour": (3, 3)}.items():
        save_checkpoint(tmp_path / name, random_generator("unet_128", input_nc, output_nc, 8, "batch"),
                        ModelCard(architecture="unet_128", ngf=8, input_nc=input_nc, output_nc=output_nc,
                                  native_size=(128, 128)))
    monkeypatch.setenv("VIDTRANS_MODELS", str(tmp_path))
    result = cli("models")
    assert result.returncode == 0, result.stderr
    rows = {cells[1].strip(): cells[4].strip() for cells in
            (line.split("│") for line in result.stdout.splitlines() if line.startswith("│"))}
    assert (rows["grey1"], rows["grey3"], rows["colour"]) == ("grey", "grey", "rgb")


def test_the_readme_python_api_gives_camera_frames_to_no_pose_model():
    """The README's Python API loaded pose2person as `model` and called model.translate on camera
    frames ("any uint8 RGB frames"): translate feeds a pose model's network as they are, so they must
    be pose maps, and the README must say so and name what detects."""
    from tests.test_install import readme_python_api

    snippet = readme_python_api()
    pose_models = re.findall(r'^(\w+) = vidtrans\.load_model\("pose2person"', snippet, re.M)
    assert not [name for name in pose_models if f"{name}.translate(" in snippet], snippet
    comment = " ".join(line.partition("#")[2].strip() for line in snippet.splitlines())
    assert "pose model (pose2person) takes pose maps here" in comment and "translate_video detects" in comment
