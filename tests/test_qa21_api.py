"""QA round 21 on the Python API: a misspelt parameter of translate_video or render_pose_video is
named with the one meant, not taken for an unknown option; a model named to translate_video with
compile="on" is loaded to run in torch, as `run --compile on` loads it, and only once the input and
the output have been checked, as `run` checks them; render_pose_video's progress says it detects
poses, not that it translates; a temporal pose model's clip in parts, given the whole clip's
keypoints, is the whole clip."""

from __future__ import annotations

import numpy as np
import pytest

import vidtrans
from tests.media import dancer_clip, decode_all, make_clip, random_generator
from vidtrans.errors import UsageError
from vidtrans.models import translator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.models.translator import RecurrentState
from vidtrans.pose import PoseStyle
from vidtrans.pose.files import write_keypoints_npz

# RGB stored as RGB, losslessly: equal translated frames decode to equal pictures.
LOSSLESS = dict(codec="libx264rgb", pix_fmt="rgb24", crf=0, preset="ultrafast")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=6, size=(64, 48), audio=False).path


@pytest.mark.parametrize("typo, meant", [("overwite", "overwrite"), ("progres", "progress"),
                                         ("keypoint", "keypoints"), ("option", "options"), ("smothing", "smoothing"),
                                         ("strat", "state or start")])
def test_a_misspelt_parameter_of_translate_video_is_named_with_the_one_meant(tmp_path, clip, rgb_model_dir, typo,
                                                                              meant):
    # Taken as an option, it was told RunOptions' options, among which the parameter meant is not.
    dst = tmp_path / "out.mp4"
    with pytest.raises(UsageError, match=rf"^translate_video has no parameter {typo}; did you mean {meant}\?$"):
        vidtrans.translate_video(clip, dst, rgb_model_dir, **{typo: None})
    assert not dst.exists()


@pytest.mark.parametrize("typo, meant", [("keypoint_out", "keypoints_out"), ("wholebody", "whole_body"),
                                         ("overwrite_", "overwrite"), ("strat", "start")])
def test_a_misspelt_parameter_of_render_pose_video_is_named_with_the_one_meant(tmp_path, clip, typo, meant):
    # Its message said it draws poses with no model to run, and listed its options without the parameter meant.
    with pytest.raises(UsageError, match=rf"^render_pose_video has no parameter {typo}; did you mean {meant}\?$"):
        vidtrans.render_pose_video(clip, tmp_path / "pose.mp4", **{typo: True})


def test_a_model_setting_given_to_translate_video_still_points_to_load_model(tmp_path, clip, rgb_model_dir):
    with pytest.raises(UsageError, match=r"pass vidtrans\.load_model\(model, size=128\) as the model$"):
        vidtrans.translate_video(clip, tmp_path / "out.mp4", rgb_model_dir, model_size=128)


def test_a_model_named_to_translate_video_with_compile_on_is_loaded_to_run_in_torch(tmp_path, clip, rgb_model_dir,
                                                                                   monkeypatch):
    # Where auto means onnxruntime (a CPU without AMX, onnx installed), a model loaded with its
    # defaults was refused: "use backend='torch'", which translate_video does not take.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: False)
    compiled = []
    monkeypatch.setattr(translator.Translator, "compile", lambda model: compiled.append(model.backend))  # 15-20 s
    summary = vidtrans.translate_video(clip, tmp_path / "out.mp4", rgb_model_dir, compile="on")
    assert summary.backend == "torch" and compiled == ["torch"] and summary.frames == 6
    assert vidtrans.translate_video(clip, tmp_path / "auto.mp4", rgb_model_dir).backend == "onnxruntime"


@pytest.mark.parametrize("src, dst, message", [
    ("clip", "existing", r"already exists; choose another name or pass overwrite=True$"),
    ("missing", "new", r"missing\.mp4"),
    ("clip", "model card", r"card\.json"),
])
def test_what_translate_video_refuses_anyway_is_refused_before_a_named_model_loads(tmp_path, clip, rgb_model_dir,
                                                                                  monkeypatch, src, dst, message):
    # Loading takes seconds (the first use on onnxruntime exports the graph, 17 s for pose2person).
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"kept")
    paths = {"clip": clip, "missing": tmp_path / "missing.mp4", "existing": existing, "new": tmp_path / "new.mp4",
             "model card": rgb_model_dir / "card.json"}
    monkeypatch.setattr(vidtrans, "load_model", lambda *args, **kwargs: pytest.fail("the model was loaded"))
    with pytest.raises(vidtrans.VidtransError, match=message):
        vidtrans.translate_video(paths[src], paths[dst], rgb_model_dir, overwrite=dst == "model card")
    assert existing.read_bytes() == b"kept" and not paths["new"].exists()


def test_render_pose_video_reports_progress_as_detecting_poses(tmp_path, clip):
    # `vidtrans pose` showed "clip.mp4 -> pose translating" in its progress bar, with no model to run.
    told = []
    vidtrans.render_pose_video(clip, tmp_path / "pose.mp4", end=0.12, progress=lambda *call: told.append(call))
    assert told == [(3, 3, "detecting poses")]


def test_a_temporal_pose_models_clip_in_parts_with_the_whole_clips_keypoints_is_the_whole_clip(tmp_path):
    folder = tmp_path / "temporal-pose"
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=6, native_size=(64, 64),
                     input_kind="pose", pose_style=PoseStyle().to_dict(),
                     temporal={"previous": "output", "first": "black"})
    save_checkpoint(folder, random_generator("resnet_6blocks", 6, 3, 8, "instance", seed=2), card)
    model = vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")
    dancer = dancer_clip(tmp_path / "dancer.mp4", frames=8, size=(96, 72))
    keypoints = tmp_path / "kp.npz"
    write_keypoints_npz(keypoints, dancer.keypoints, 96, 72, smoothed=True)  # filtered per part otherwise
    vidtrans.translate_video(dancer.path, tmp_path / "whole.mkv", model, keypoints=keypoints, smoothing="ema",
                             **LOSSLESS)
    state, parts = RecurrentState(), [tmp_path / "a.mkv", tmp_path / "b.mkv"]
    vidtrans.translate_video(dancer.path, parts[0], model, keypoints=keypoints, end=0.12, state=state, smoothing="ema",
                             **LOSSLESS)
    vidtrans.translate_video(dancer.path, parts[1], model, keypoints=keypoints, start=0.12, state=state,
                             smoothing="ema", **LOSSLESS)
    joined = np.concatenate([np.stack(decode_all(part)[0]) for part in parts])
    np.testing.assert_array_equal(joined, np.stack(decode_all(tmp_path / "whole.mkv")[0]))
