"""A temporal model's state after a call stopped part way (left as it was, so the call again gives
the same frames), a clip of read-only frames translated in parts (one clip, not one per part),
frames of mixed types in one list (refused, not cast), and ONNX exports from two threads at once."""

import threading

import numpy as np
import pytest

import vidtrans
from tests.test_qa13_api import temporal_model  # noqa: F401 - a fixture
from vidtrans.errors import UsageError
from vidtrans.models import translator as translator_module
from vidtrans.models.translator import RecurrentState


def clip(frames: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, 48, 64, 3), dtype=np.uint8)


def test_a_call_stopped_part_way_leaves_the_state_as_it_was(temporal_model, monkeypatch):
    frames, state = clip(), RecurrentState()
    temporal_model.translate_clip(frames[:2], state)
    before = state.previous.clone()
    expected = temporal_model.translate_clip(frames[2:], state.copy())
    calls, original = [], temporal_model._call

    def stopped_on_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(temporal_model, "_call", stopped_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        temporal_model.translate_clip(frames[2:], state)
    monkeypatch.undo()
    assert state.previous.equal(before)
    assert np.array_equal(temporal_model.translate_clip(frames[2:], state), expected)


def test_read_only_frames_translated_in_parts_are_one_clip(temporal_model, monkeypatch):
    frames = clip(6)
    whole = temporal_model.translate(frames)
    read_only = frames.copy()
    read_only.flags.writeable = False
    monkeypatch.setattr(translator_module, "_COPY_CHUNK", frames[0].nbytes * 2)  # parts of 2 frames
    assert np.array_equal(temporal_model.translate(read_only), whole)
    state = RecurrentState()
    parts = [temporal_model.translate_clip(read_only[:3], state), temporal_model.translate_clip(read_only[3:], state)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_frames_of_mixed_types_in_one_list_are_refused(rgb_model_dir):
    model = vidtrans.load_model(rgb_model_dir, device="cpu")
    frame = clip(1)[0]
    for other in (frame > 127, frame.astype(np.float32)):
        with pytest.raises(UsageError, match=r"^translate got frames of different types \(.*\); pass them all as "):
            model.translate([frame, other])
    assert model.translate([frame, frame.copy()]).shape == (2, 48, 64, 3)


def test_two_threads_exporting_to_onnx_at_once_both_load(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from tests.media import random_generator
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a fresh cache: both export
    folders = []
    for seed in (1, 2):
        folder = tmp_path / f"m{seed}"
        save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=seed),
                        ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)))
        folders.append(folder)
    # The exporter's globals: two exports at once each meet the other here (the meeting's
    # wait runs out when one export waits for the other).
    import torch

    exporting, met, export = threading.Barrier(2), [], torch.onnx.export

    def export_meeting_the_other(*args, **kwargs):
        try:
            exporting.wait(timeout=3)
            met.append(True)
        except threading.BrokenBarrierError:
            pass
        return export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export_meeting_the_other)
    results, errors = {}, []
    start = threading.Barrier(2)

    def load(folder):
        try:
            start.wait()
            results[folder] = vidtrans.load_model(folder, device="cpu", backend="onnxruntime")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=load, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not met  # one export at a time
    assert all(results[f].backend == "onnxruntime" for f in folders)
