"""The Python API as a notebook uses it: NumPy scalars as settings (what indexing an array gives),
a loaded model or None where a folder or name is expected, frames of the wrong layout: each is
taken as the number it is, or refused in one line naming the problem and the fix."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import vidtrans
from tests.media import decode_all, make_clip
from vidtrans.batch import MANIFEST_NAME, BatchListener, BatchUsageError, translate_folder
from vidtrans.errors import UsageError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=12, audio=False)


def test_numpy_scalars_are_taken_as_the_numbers_they_are(tmp_path, clip, rgb_model_dir):
    vidtrans.translate_video(clip.path, tmp_path / "a.mp4", rgb_model_dir, start=np.float32(0.2), crf=np.int64(20))
    vidtrans.translate_video(clip.path, tmp_path / "b.mp4", rgb_model_dir, start=0.2, crf=20)
    assert len(decode_all(tmp_path / "a.mp4")[0]) == len(decode_all(tmp_path / "b.mp4")[0]) == 7
    model = vidtrans.load_model(rgb_model_dir, device="cpu", size=np.int64(48))
    assert model.size == 48 and type(model.size) is int
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(clip.path.read_bytes())
    report = translate_folder(folder, tmp_path / "out", rgb_model_dir, model_size=np.int64(48), start=np.float32(0.2))
    assert [row.status for row in report.clips] == ["done"]
    for line in (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines():
        json.loads(line)


@pytest.mark.parametrize("call, message", [
    (lambda m, f: translate_folder(f, None, m), "output_dir must be a folder path (a str or os.PathLike), not None"),
    (lambda m, f: translate_folder(None, f, m), "input_dir must be a folder path (a str or os.PathLike), not None"),
    (lambda m, f: translate_folder(f, f / "out", m, listener=5),
     "listener must be a BatchListener (override the calls you need), not 5"),
    (lambda m, f: translate_folder(f, f / "out", vidtrans.load_model(m, device="cpu")),
     "model must be a model name, checkpoint folder or .pth file, which each worker loads for its device"),
], ids=["no output", "no input", "listener", "loaded model"])
def test_translate_folder_refuses_what_is_no_folder_model_or_listener(tmp_path, rgb_model_dir, call, message):
    with pytest.raises(BatchUsageError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call(rgb_model_dir, tmp_path)
    assert BatchListener  # the type the message names is the one to subclass


def test_render_pose_video_takes_its_fields_by_name(tmp_path, clip):
    summary = vidtrans.render_pose_video(clip.path, tmp_path / "pose.mp4", start=0.2, crf=30)
    assert summary.frames == 7
    with pytest.raises(UsageError, match=r"render_pose_video has no option smoothing \(it draws poses"):
        vidtrans.render_pose_video(clip.path, tmp_path / "pose2.mp4", smoothing="ema")


def test_run_options_point_at_the_encoding_options():
    with pytest.raises(UsageError, match=r"crf is an option of RunOptions's encode: pass encode=EncodeOptions\(crf=20\)"):
        vidtrans.RunOptions(crf=20)


@pytest.mark.parametrize("frames, fix", [
    (np.zeros((4, 48, 64), np.uint8), "np.repeat(x[..., None], 3, axis=-1)"),
    (np.zeros((2, 48, 64, 1), np.uint8), "np.repeat(x, 3, axis=-1)"),
    (np.zeros((2, 3, 48, 64), np.uint8), "x.transpose(0, 2, 3, 1)"),
    (np.zeros((2, 48, 64, 3), np.float32), "(x * 255).round().astype(np.uint8)"),
    ([np.zeros((48, 64, 3), np.uint8), np.zeros((96, 128, 3), np.uint8)], "translate each size in a call of its own"),
], ids=["grey", "grey channel", "channels first", "floats", "mixed sizes"])
def test_frames_of_another_layout_are_refused_with_the_fix(rgb_model_dir, frames, fix):
    model = vidtrans.load_model(rgb_model_dir, device="cpu")
    with pytest.raises(UsageError) as error:
        model.translate(frames)
    assert fix in str(error.value) and "\n" not in str(error.value)
    if isinstance(frames, np.ndarray):
        assert str(frames.shape) in str(error.value)  # the caller's own shape


def test_translate_tensor_refuses_what_is_no_uint8_tensor(rgb_model_dir):
    model = vidtrans.load_model(rgb_model_dir, device="cpu")
    for frames in (np.zeros((1, 48, 64, 3), np.uint8), torch.zeros((1, 48, 64, 3))):
        with pytest.raises(UsageError, match="translate_tensor expects a uint8 tensor of RGB frames"):
            model.translate_tensor(frames)


def test_read_only_frames_translate_without_warnings(rgb_model_dir):
    model = vidtrans.load_model(rgb_model_dir, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), np.uint8)
    expected = model.translate(frames)
    frames.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(model.translate(frames), expected)


def test_a_missing_pth_file_is_called_missing_not_an_unknown_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(vidtrans.errors.VidtransError, match=r"^facades\.pth: no such file or folder"):
        vidtrans.load_model("facades.pth")


def test_no_frames_are_called_none(rgb_model_dir):
    model = vidtrans.load_model(rgb_model_dir, device="cpu")
    with pytest.raises(UsageError, match=r"translate got no frames \(\[\]\)"):
        model.translate([])
    assert model.translate(np.zeros((0, 48, 64, 3), np.uint8)).shape == (0, 48, 64, 3)
