"""The Python API as a researcher's notebook uses it (QA round 20): frames of odd types get the fix
that fits them, read-only clips are not copied whole, options given together are not lost, options
hash, and a slow precision asked for is told."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import vidtrans
from vidtrans.errors import UsageError
from vidtrans.models import translator as translator_module
from vidtrans.options import BatchOptions, EncodeOptions, LiveOptions, RunOptions


@pytest.fixture(scope="module")
def model(rgb_model_dir):
    return vidtrans.load_model(rgb_model_dir, device="cpu", backend="torch")


FRAMES = np.random.default_rng(0).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("frames, fix", [
    (FRAMES.astype(np.float32), "floats from 0 to 255 become uint8 as x.round().clip(0, 255).astype(np.uint8)"),
    (FRAMES.astype(np.float32) / 255, "floats from 0 to 1 become uint8 as (x * 255).round().astype(np.uint8)"),
    (FRAMES.astype(np.uint16) * 257, "(x >> 8).astype(np.uint8) for 16-bit frames"),
    (FRAMES > 128, "x.astype(np.uint8) * 255"),
    (FRAMES.astype(np.int16) - 128, "values run from -128 to 127: scale them to 0-255"),
    (FRAMES.astype(np.int64), "convert with .astype(np.uint8)"),
    (np.concatenate([FRAMES, FRAMES[..., :1]], -1), "RGBA frames become RGB as x[..., :3]"),
    (np.concatenate([FRAMES, FRAMES[..., :1]], -1)[0], "RGBA frames become RGB as x[..., :3]"),
    (torch.from_numpy(FRAMES).to(torch.bfloat16), "got bfloat16 (2, 24, 32, 3); floats from 0 to 255"),
    (torch.from_numpy(FRAMES).float().to_sparse(), "pass x.to_dense()"),
], ids=["float 0-255", "float 0-1", "uint16", "bool", "negative ints", "ints in range", "RGBA", "one RGBA",
        "bf16 tensor", "sparse tensor"])
def test_frames_of_another_type_get_the_fix_that_fits_them(model, frames, fix):
    with pytest.raises(UsageError) as error:
        model.translate(frames)
    message = str(error.value)
    assert fix in message and "\n" not in message
    assert "grey" not in message and not ("0 to 1" in message and "0 to 255" in fix)


def test_the_fixes_given_make_frames_that_translate(model):
    for converted in ((FRAMES.astype(np.float32)).round().clip(0, 255).astype(np.uint8),
                      ((FRAMES.astype(np.uint16) * 257) >> 8).astype(np.uint8),
                      np.concatenate([FRAMES, FRAMES[..., :1]], -1)[..., :3]):
        np.testing.assert_array_equal(converted, FRAMES)
    assert model.translate(FRAMES).shape == FRAMES.shape


@pytest.mark.parametrize("make", [
    lambda frames: _read_only(frames),
    lambda frames: np.ascontiguousarray(frames[..., ::-1])[..., ::-1],  # a reversed view: not contiguous
], ids=["read-only", "not contiguous"])
def test_frames_torch_cannot_take_are_copied_a_part_at_a_time(model, monkeypatch, make):
    frames = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    expected = model.translate(frames.copy())
    parts = []
    translate_tensor = model.translate_tensor

    def recording(part, state=None):
        parts.append(len(part))
        return translate_tensor(part, state)

    monkeypatch.setattr(translator_module, "_COPY_CHUNK", 2 * frames[0].nbytes, raising=False)
    monkeypatch.setattr(model, "translate_tensor", recording)
    given = make(frames)
    out = model.translate(given)
    assert max(parts) <= 2 and sum(parts) == 5  # never the whole clip copied at once
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(given, frames)  # untouched
    assert out.flags.writeable and not np.shares_memory(out, given)


def _read_only(frames):
    frames = frames.copy()
    frames.setflags(write=False)
    return frames


def test_a_read_only_memory_mapped_clip_translates(model, tmp_path):
    np.save(tmp_path / "clip.npy", FRAMES)
    mapped = np.load(tmp_path / "clip.npy", mmap_mode="r")
    np.testing.assert_array_equal(model.translate(mapped), model.translate(FRAMES))


def test_nested_options_given_whole_keep_their_fields_when_one_is_changed_beside_them():
    changed = RunOptions().replace(encode=EncodeOptions(codec="libx265", preset="fast"), crf=30)
    assert changed.encode == EncodeOptions(codec="libx265", preset="fast", crf=30)
    with pytest.raises(UsageError, match=r"encode must be EncodeOptions, not \{'crf': 3\}"):
        RunOptions().replace(encode={"crf": 3}, crf=30)


def test_translate_video_encodes_with_the_encode_options_given_beside_crf(rgb_model_dir, tmp_path):
    from tests.media import make_clip

    clip = make_clip(tmp_path / "in.mp4", frames=4, audio=False)
    summary = vidtrans.translate_video(clip.path, tmp_path / "out.mkv", rgb_model_dir,
                                       encode=EncodeOptions(codec="mpeg4"), crf=20)
    import av

    with av.open(summary.output) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"


def test_options_given_lists_hash_as_frozen_objects_do():
    for made in (lambda: BatchOptions(patterns=["*.mp4", "*.mov"], devices=["cpu"]),
                 lambda: LiveOptions(size=[640, 480])):
        assert hash(made()) == hash(made()) and made() == made()
        assert len({made(), made()}) == 1
    assert BatchOptions(patterns=["*.mp4"]) != BatchOptions(patterns=["*.mov"])
    assert len({RunOptions(), RunOptions(batch_size=4), RunOptions()}) == 2


def test_bf16_asked_for_on_a_cpu_without_amx_is_told_once(rgb_model_dir, monkeypatch, caplog):
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: False)
    monkeypatch.setattr(translator_module, "_emulated_bf16_told", False, raising=False)
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        vidtrans.load_model(rgb_model_dir, device="cpu", precision="bf16")
        vidtrans.load_model(rgb_model_dir, device="cpu", precision="bf16")
    # The model, an instance-norm ResNet, is also told about bf16 each load (test_qa37_cards): not counted here.
    told = [r.getMessage() for r in caplog.records if "emulated" in r.getMessage()]
    assert len(told) == 1 and "precision='fp32'" in told[0]


def test_bf16_on_a_cpu_with_amx_is_not_told(rgb_model_dir, monkeypatch, caplog):
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: True)
    monkeypatch.setattr(translator_module, "_emulated_bf16_told", False, raising=False)
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        vidtrans.load_model(rgb_model_dir, device="cpu", precision="bf16")
    assert not [r for r in caplog.records if "emulated" in r.getMessage()]


def test_usage_error_is_at_the_top_and_is_a_vidtrans_error():
    assert vidtrans.UsageError is UsageError and issubclass(vidtrans.UsageError, vidtrans.VidtransError)
    assert "UsageError" in vidtrans.__all__
