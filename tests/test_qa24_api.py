"""QA round 24 on the Python API: a model loaded by a relative path keeps its files safe after the
caller changes folder, and the current folder loaded as "." is named by its folder; a path as
bytes given as the model, a NUL character in a path or a model name, a number too large for a
float, a progress callback that cannot take (done, total, what) and settings given twice or too
many by position are each one line of the project's error type, before any work, with no output
left behind; a Fraction of a second, a tuple of NumPy ints and NumPy bools are taken as the
numbers and switches they stand for."""

from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction

import numpy as np
import pytest
import torch

import vidtrans
from tests.media import make_clip, random_generator
from vidtrans.batch import MANIFEST_NAME, translate_folder
from vidtrans.errors import UsageError
from vidtrans.options import LiveOptions, TrainOptions


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=6, size=(64, 48), audio=False).path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_loaded_by_a_relative_path_is_not_overwritten_after_a_change_of_folder(tmp_path, clip, monkeypatch):
    # Upstream weights are told by their content whatever their name, a video's included; the
    # model's files were kept relative, so from another folder the output check missed them.
    folder = tmp_path / "weights"
    folder.mkdir()
    weights = folder / "gen.mkv"
    torch.save(random_generator("unet_128", 3, 3, 8, "batch").state_dict(), weights)
    before = _digest(weights)
    monkeypatch.chdir(folder)
    model = vidtrans.load_model("gen.mkv", device="cpu")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"gen\.mkv: output would overwrite the input"):
        vidtrans.translate_video(clip, "weights/gen.mkv", model, overwrite=True)
    assert _digest(weights) == before


def test_the_current_folder_loaded_as_a_model_is_named_by_the_folder(tmp_path, clip, rgb_model_dir, monkeypatch):
    # "." has no name of its own: the default output was clip..mp4.
    monkeypatch.chdir(rgb_model_dir)
    model = vidtrans.load_model(".", device="cpu")
    assert model.name == rgb_model_dir.name
    source = tmp_path / "in.mp4"
    source.write_bytes(clip.read_bytes())
    summary = vidtrans.translate_video(source, None, model)
    assert summary.output == str(tmp_path / f"in.{rgb_model_dir.name}.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", f"in.{rgb_model_dir.name}.mp4"]


@pytest.mark.parametrize("model, shown", [(b"/tmp/a model", "b'/tmp/a model'"),
                                          (bytearray(b"/tmp/a model"), "bytearray(b'/tmp/a model')"),
                                          (vidtrans.Translator, "<class 'vidtrans.models.translator.Translator'>")],
                         ids=["bytes", "bytearray", "the class"])
def test_a_model_path_given_as_bytes_or_the_translator_class_is_refused_in_one_line(tmp_path, clip, model, shown):
    # Both have a translate method, so they passed for a loaded model: AttributeError on .name.
    dst = tmp_path / "out.mp4"
    with pytest.raises(UsageError, match=r"^model must be a model name or path, or what vidtrans\.load_model returns, "
                                         rf"not {re.escape(shown)}$"):
        vidtrans.translate_video(clip, dst, model)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argument", ["src", "dst", "keypoints_out"])
def test_a_nul_character_in_a_path_is_refused_in_one_line(tmp_path, clip, rgb_model_dir, argument):
    # Python's file functions refuse it with ValueError, which escaped as a traceback.
    paths = {"src": clip, "dst": tmp_path / "out.mp4", "keypoints_out": tmp_path / "k.npz"}
    paths[argument] = tmp_path / "a\x00b.mp4"
    pattern = rf"^{argument} /.*/a\\x00b\.mp4: a file path cannot hold a NUL character \(\\x00\)$"
    with pytest.raises(UsageError, match=pattern):
        vidtrans.translate_video(paths["src"], paths["dst"], rgb_model_dir) if argument != "keypoints_out" else \
            vidtrans.render_pose_video(paths["src"], paths["dst"], keypoints_out=paths["keypoints_out"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, name", [
    (lambda: vidtrans.BatchOptions(report="r\x00.json"), "report"),
    (lambda: LiveOptions(record="r\x00.mp4"), "record"),
    (lambda: LiveOptions(stats="s\x00.json"), "stats"),
])
def test_option_paths_with_a_nul_character_are_refused_when_made(make, name):
    with pytest.raises(UsageError, match=rf"^{name} .\\x00\.\w+: a file path cannot hold a NUL character"):
        make()


@pytest.mark.parametrize("make, name", [
    (lambda: vidtrans.RunOptions(start=10**400), "start"),
    (lambda: vidtrans.RunOptions(end=Fraction(10**400, 3)), "end"),
    (lambda: vidtrans.RunOptions(smoothing="ema", smoothing_strength=10**400), "smoothing_strength"),
    (lambda: TrainOptions(lr=-10**400), "lr"),
], ids=["start", "end", "strength", "lr"])
def test_numbers_too_large_for_a_float_are_refused_naming_the_setting(make, name):
    # math.isfinite raised OverflowError on them.
    with pytest.raises(UsageError, match=rf"^{name} must be .*, got (Fraction\()?-?1000000"):
        make()


def _two_arguments(done, total):
    pass


@pytest.mark.parametrize("progress", [_two_arguments, lambda: None, lambda done, total, what, extra: None],
                         ids=["two", "none", "four"])
def test_a_progress_callback_that_cannot_take_done_total_what_is_refused_before_any_work(tmp_path, clip,
                                                                                          rgb_model_dir, progress):
    # It failed with Python's TypeError once the first batch was translated.
    dst = tmp_path / "out.mp4"
    with pytest.raises(UsageError, match=r"^progress must be None or a function called with \(done, total, what\)"):
        vidtrans.translate_video(clip, dst, rgb_model_dir, progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_progress_callbacks_that_take_done_total_what_in_any_form_run(tmp_path, clip, rgb_model_dir):
    calls = []

    class Counter:
        def __call__(self, *args):
            calls.append(args)

    vidtrans.translate_video(clip, tmp_path / "a.mp4", rgb_model_dir, progress=Counter())
    vidtrans.translate_video(clip, tmp_path / "b.mp4", rgb_model_dir, progress=lambda done, total, what="x", **kw: None)
    vidtrans.translate_video(clip, tmp_path / "c.mp4", rgb_model_dir, progress=print)
    assert calls and calls[-1][0] == 6


def test_a_fraction_of_a_second_is_taken_as_the_number_it_is_by_a_batch_too(tmp_path, rgb_model_dir):
    # RunOptions kept the Fraction, which the batch's manifest could not write (TypeError).
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mp4", frames=12, size=(64, 48), audio=False)
    report = translate_folder(folder, tmp_path / "out", rgb_model_dir, start=Fraction(1, 5), end=Fraction(2, 5))
    assert [(row.status, row.frames) for row in report.clips] == [("done", 5)]
    for line in (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines():
        json.loads(line)


def test_a_live_capture_size_of_numpy_numbers_is_taken():
    # A tuple of NumPy ints (what a frame's shape gives) was refused, while each alone was taken.
    assert LiveOptions(size=(np.int64(640), np.int32(480))).capture_size == (640, 480)


def test_numpy_bools_are_taken_as_the_switches_they_stand_for(tmp_path, clip, rgb_model_dir):
    # What comparing arrays gives was refused as "must be True or False, not True".
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"old")
    assert vidtrans.translate_video(clip, dst, rgb_model_dir, overwrite=np.bool_(True)).frames == 6
    with pytest.raises(UsageError, match=r"overwrite=True"):
        vidtrans.translate_video(clip, dst, rgb_model_dir, overwrite=np.bool_(False))
    pose = tmp_path / "pose.mp4"
    assert vidtrans.render_pose_video(clip, pose, whole_body=np.bool_(False), end=0.1).frames == 3


@pytest.mark.parametrize("call, name", [
    (lambda clip, dst: vidtrans.translate_video(clip, dst, "tiny\x00"), "model"),
    (lambda clip, dst: vidtrans.load_model("tiny\x00"), "name_or_path"),
], ids=["translate_video", "load_model"])
def test_a_model_name_with_a_nul_character_is_refused_in_one_line(tmp_path, clip, call, name):
    # Looked up on the search path, it failed with ValueError.
    with pytest.raises(UsageError, match=rf"^{name} tiny\\x00: a file path cannot hold a NUL character"):
        call(clip, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, message", [
    (lambda: vidtrans.EncodeOptions("libx264", 18, "medium", "yuv420p", 0, 0, 5),
     r"^EncodeOptions takes at most 6 settings by position \(codec, crf, preset, pix_fmt, threads, segments\), "
     r"got 7; give settings by name$"),
    (lambda: vidtrans.RunOptions(4, batch_size=8), r"^RunOptions got batch_size twice, by position and by name"),
], ids=["too many", "twice"])
def test_settings_given_by_position_wrongly_are_usage_errors(make, message):
    # Python's TypeError, where a name that is no setting is a UsageError.
    with pytest.raises(UsageError, match=message):
        make()
