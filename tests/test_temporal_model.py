"""Temporal models (the generator also sees its own previous output): run recurrently by
`translate`, `run`, `batch`, `live` and ONNX Runtime; resumable; cards checked."""

import json

import numpy as np
import pytest

import vidtrans
from tests.media import assert_same_frames, decode_all, make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.live.process import FrameProcessor
from vidtrans.models.checkpoint import (CARD_NAME, SHIPPED_CHECKPOINTS, ModelCard, read_card, save_background,
                                        save_checkpoint)
from vidtrans.models.translator import RecurrentState
from vidtrans.pipeline import TranslateStage, translate_video
from vidtrans.runner import Batch
from vidtrans.video.camera import CapturedFrame

# Lossless output, so that equal translated frames decode to equal pictures.
LOSSLESS = dict(crf=0, pix_fmt="yuv444p", preset="ultrafast", smoothing="none")


def temporal_card(first="black", **changes) -> ModelCard:
    fields = dict(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=6, native_size=(64, 64),
                  temporal={"previous": "output", "first": first})
    return ModelCard(**{**fields, **changes})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny temporal RGB model, starting clips from black."""
    folder = tmp_path_factory.mktemp("models") / "temporal"
    save_checkpoint(folder, random_generator("resnet_6blocks", 6, 3, 8, "instance", seed=1), temporal_card())
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    return vidtrans.load_model(model_dir, device="cpu", precision="fp32", backend="torch")


def frames(n, seed=0, size=(48, 64)):
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def levels(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_the_previous_output_matters_and_a_clip_resumed_mid_way_is_one_piece(model):
    clip = frames(7)
    whole = model.translate(clip)
    alone = np.stack([model.translate(frame) for frame in clip])  # each frame as a clip's first
    assert np.array_equal(whole[0], alone[0])
    assert min(levels(whole[i], alone[i]) for i in range(1, 7)) > 10
    state = RecurrentState()
    parts = [model.translate_clip(clip[:3], state), model.translate_clip(clip[3], state)[None],
             model.translate_clip(clip[4:], state)]
    assert np.array_equal(np.concatenate(parts), whole)
    with pytest.raises(VidtransError, match="start a new state for each clip"):
        model.translate_clip(frames(1, size=(64, 64)), state)


def test_run_batch_size_and_resuming_do_not_change_the_frames(tmp_path, model):
    clip = make_clip(tmp_path / "in.mp4", frames=10, size=(64, 48), audio=False)
    outputs = {}
    for batch_size in (1, 8):
        summary = translate_video(clip.path, tmp_path / f"b{batch_size}.mp4", model, batch_size=batch_size, **LOSSLESS)
        assert summary.recurrent and summary.to_dict()["recurrent"] is True
        outputs[batch_size] = np.stack(decode_all(tmp_path / f"b{batch_size}.mp4")[0])
    assert np.array_equal(outputs[1], outputs[8])
    # What the model makes of the clip's frames in order (colour conversion aside), not frame by frame.
    decoded = np.stack(decode_all(clip.path)[0])
    assert levels(outputs[8], model.translate(decoded)) <= 3
    assert levels(outputs[8][5], model.translate(decoded[5])) > 10
    # Frames 0-4 (times up to 0.16 s), then from 0.18 s on, carrying the state across.
    state = RecurrentState()
    translate_video(clip.path, tmp_path / "first.mp4", model, end=0.18, batch_size=3, state=state, **LOSSLESS)
    translate_video(clip.path, tmp_path / "rest.mp4", model, start=0.18, batch_size=3, state=state, **LOSSLESS)
    resumed = decode_all(tmp_path / "first.mp4")[0] + decode_all(tmp_path / "rest.mp4")[0]
    assert np.array_equal(np.stack(resumed), outputs[1])


def test_a_part_that_fails_leaves_the_state_where_it_was(tmp_path, model):
    clip = make_clip(tmp_path / "in.mp4", frames=10, size=(64, 48), audio=False)
    state = RecurrentState()
    translate_video(clip.path, tmp_path / "first.mp4", model, end=0.18, batch_size=3, state=state, **LOSSLESS)
    before = state.previous

    def stop_after_some(done, total, what):
        if done >= 3:
            raise RuntimeError("stopped by the caller")

    with pytest.raises(RuntimeError, match="stopped by the caller"):
        translate_video(clip.path, tmp_path / "rest.mp4", model, start=0.18, batch_size=1, state=state,
                        progress=stop_after_some, **LOSSLESS)
    assert state.previous is before and not (tmp_path / "rest.mp4").exists()
    # Tried again, the part is what it would have been the first time.
    translate_video(clip.path, tmp_path / "rest.mp4", model, start=0.18, batch_size=3, state=state, **LOSSLESS)
    whole = translate_video(clip.path, tmp_path / "whole.mp4", model, batch_size=1, **LOSSLESS)
    assert whole.frames == 10
    resumed = decode_all(tmp_path / "first.mp4")[0] + decode_all(tmp_path / "rest.mp4")[0]
    assert np.array_equal(np.stack(resumed), np.stack(decode_all(tmp_path / "whole.mp4")[0]))


def test_clips_of_one_batch_keep_their_own_state(tmp_path, model_dir, model, cli):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, seed in (("a", 0), ("b", 5)):
        make_clip(src / f"{name}.mp4", frames=12, size=(64, 48), audio=False,
                  frame_fn=lambda i, w, h, seed=seed: frames(1, seed * 100 + i, (h, w))[0])
    result = cli("batch", src, "-o", out, "--model", model_dir, "--devices", "cpu", "--workers", 2,
                 "--batch-size", 2, "--precision", "fp32", "--backend", "torch", "--crf", 0, "--pix-fmt", "yuv444p",
                 "--preset", "ultrafast")
    assert result.returncode == 0, result.stderr
    for name in ("a", "b"):
        translate_video(src / f"{name}.mp4", tmp_path / f"{name}.mp4", model, batch_size=2, **LOSSLESS)
        assert np.array_equal(np.stack(decode_all(out / f"{name}.mp4")[0]),
                              np.stack(decode_all(tmp_path / f"{name}.mp4")[0])), name


def test_a_frame_without_a_person_shows_the_background_and_starts_the_model_afresh(tmp_path):
    folder = tmp_path / "pose_model"
    save_checkpoint(folder, random_generator("resnet_6blocks", 6, 3, 8, "instance", seed=2),
                    temporal_card("background", input_kind="pose"))
    background = frames(1, seed=9, size=(64, 64))[0]
    save_background(folder, background)
    model = vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")
    pose_maps = frames(6, seed=3, size=(64, 64))
    keypoints = np.ones((6, 18, 3), np.float32)
    keypoints[2, :, 2] = 0  # nobody in frame 2
    stage = TranslateStage.for_model(model)
    batch = Batch(list(pose_maps), list(range(6)), list(range(6)), keypoints=keypoints, model_input=pose_maps)
    output = next(iter(stage.process(batch))).output
    assert np.array_equal(output[:2], model.translate(pose_maps[:2]))
    assert np.array_equal(output[2], background)
    assert np.array_equal(output[3:], model.translate(pose_maps[3:]))  # as a clip starting at frame 3
    # A clip's first frame sees the background as its previous output, not black.
    black = dict(read_card(folder).to_dict(), temporal={"previous": "output", "first": "black"})
    (folder / CARD_NAME).write_text(json.dumps(black))
    from_black = vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")
    assert levels(from_black.translate(pose_maps[0]), output[0]) > 10


def test_live_runs_the_model_recurrently(model):
    clip = frames(5, seed=4)
    processor = FrameProcessor(model)
    processor.warm_up()
    shown = [processor(CapturedFrame(image, float(i), i)).output for i, image in enumerate(clip)]
    assert np.array_equal(np.stack(shown), model.translate(clip))


def test_onnxruntime_runs_the_six_channel_model(model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    onnx = vidtrans.load_model(model_dir, device="cpu", backend="onnxruntime")
    clip = frames(6, seed=6)
    torch_frames = vidtrans.load_model(model_dir, device="cpu", precision="fp32", backend="torch").translate(clip)
    assert levels(onnx.translate(clip), torch_frames) <= 1


def test_cards_without_the_field_load_as_before(tmp_path, rgb_model_dir):
    card = json.loads((rgb_model_dir / CARD_NAME).read_text())
    card.pop("temporal")  # as a card written before the field existed
    old = tmp_path / "old"
    old.mkdir()
    (old / CARD_NAME).write_text(json.dumps(card))
    (old / "model.safetensors").write_bytes((rgb_model_dir / "model.safetensors").read_bytes())
    model = vidtrans.load_model(old, device="cpu", precision="fp32", backend="torch")
    assert model.temporal is None
    clip = frames(4, seed=7)
    assert_same_frames(model.translate(clip), np.stack([model.translate(frame) for frame in clip]))
    assert read_card(SHIPPED_CHECKPOINTS / "pose2person").temporal is None
    assert ModelCard.from_dict(temporal_card().to_dict()).temporal == {"previous": "output", "first": "black"}


@pytest.mark.parametrize("changes,message", [
    (dict(temporal={"previous": "output"}), "field 'temporal' must be null or {\"previous\": \"output\", "
                                             "\"first\": \"background\" or \"black\"}"),
    (dict(temporal={"previous": "truth", "first": "black"}), "field 'temporal' must be null"),
    (dict(temporal="yes"), "field 'temporal' must be null"),
    (dict(input_nc=3), "field 'input_nc' must be 6 for a temporal model"),
    (dict(output_nc=1), "field 'output_nc' must be 3 for a temporal model"),
    (dict(temporal=None), "field 'input_nc' must be 1 or 3 (6 with a 'temporal' field)"),
])
def test_bad_temporal_cards_are_refused_in_one_line(tmp_path, changes, message):
    folder = tmp_path / "bad"
    save_checkpoint(folder, random_generator("resnet_6blocks", 6, 3, 8, "instance"), temporal_card())
    (folder / CARD_NAME).write_text(json.dumps({**read_card(folder).to_dict(), **changes}))
    with pytest.raises(VidtransError) as error:
        vidtrans.load_model(folder, device="cpu")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_card_starting_from_a_missing_background_is_refused(tmp_path):
    folder = tmp_path / "nobg"
    save_checkpoint(folder, random_generator("resnet_6blocks", 6, 3, 8, "instance"), temporal_card("background"))
    with pytest.raises(VidtransError, match=r"starts clips from background.png, which is missing"):
        vidtrans.load_model(folder, device="cpu")


def test_auto_runs_a_temporal_model_in_pytorch_where_it_takes_onnxruntime_for_others(model_dir, monkeypatch):
    """Fed back frame after frame, the backends' 1e-6 differences grow to tens of grey levels along a clip."""
    import torch

    from vidtrans.models import onnx_backend, translator

    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: False)
    monkeypatch.setattr(onnx_backend, "available", lambda: True)
    assert translator.resolve_backend("auto", torch.device("cpu"), "auto") == "onnxruntime"
    assert vidtrans.load_model(model_dir, device="cpu", backend="auto").backend == "torch"
