"""QA pass 13, `batch` without a Ray cluster: encoder settings refused up front as `run` refuses them,
a pattern given as one string, the output folder locked before any model is loaded, messages
that spell Python's arguments, and Ray addresses or a broken Ray install told in one line."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import vidtrans
from tests.media import decode_all, make_clip
from tests.test_batch import FAST, cli
from vidtrans.batch import BatchUsageError, _lock_folder, translate_folder
from vidtrans.errors import UsageError, VidtransError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("flag, value, message", [
    ("--crf", "99", "--crf 99 is outside what libx264 takes"),
    ("--codec", "nope", "--codec 'nope' is unknown to this FFmpeg build"),
    ("--preset", "slowest", "--preset 'slowest' is not one libx264 knows"),
    ("--pix-fmt", "yuv999", "--pix-fmt 'yuv999' is not a pixel format FFmpeg knows"),
])
def test_encoder_settings_every_clip_would_fail_with_are_refused_before_any_work(tmp_path, flag, value, message):
    """Exit 2 before the model is even looked for (it does not exist here), and no output folder or
    manifest is made: as `run` refuses them."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    result = cli(src, "-o", tmp_path / "out", "--model", tmp_path / "no-such-model", flag, value)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"vidtrans: error: {message}") and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_encoder_settings_are_refused_from_python_too_spelled_as_arguments(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    with pytest.raises(BatchUsageError, match=r"^crf 99 is outside what libx264 takes"):
        translate_folder(src, tmp_path / "out", rgb_model_dir, crf=99)
    assert not (tmp_path / "out").exists()


def test_a_container_only_some_clips_have_fails_those_clips_alone(tmp_path, rgb_model_dir):
    """H.264 does not go into .webm: the .webm clip fails, the .mp4 one is translated."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    make_clip(src / "b.webm", frames=2, audio=False, codec="libvpx-vp9")
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, **FAST)
    assert {Path(c.input).name: c.status for c in report.clips} == {"a.mp4": "done", "b.webm": "failed"}
    assert "cannot hold libx264" in report.failed[0].error


def test_a_pattern_given_as_one_string_is_one_pattern(tmp_path, rgb_model_dir):
    """Not one pattern per character, of which "*" matched every file (notes.txt failed)."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    (src / "notes.txt").write_text("not a clip\n")
    assert vidtrans.BatchOptions(patterns="*.mp4").patterns == ["*.mp4"]
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, patterns="*.mp4", **FAST)
    assert [(Path(c.input).name, c.status) for c in report.clips] == [("a.mp4", "done")]


@pytest.mark.parametrize("patterns, message", [
    ([3], "patterns must be a file name pattern such as '*.mp4', or a list of them, not [3]"),
    ("", "patterns '': an empty pattern matches no file"),
    ("sub/*.mp4", "patterns sub/*.mp4: patterns match file names, not paths"),
])
def test_bad_patterns_are_refused_when_the_options_are_made(patterns, message):
    with pytest.raises(UsageError) as refused:
        vidtrans.BatchOptions(patterns=patterns)
    assert str(refused.value).startswith(message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_told_as_python_spells_it(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    with pytest.raises(UsageError) as refused:
        translate_folder(src, tmp_path / "out", rgb_model_dir, devices="cuda:0,cpu")
    assert "--devices" not in str(refused.value) and "devices='cpu'" in str(refused.value)


def test_a_folder_another_batch_writes_into_is_refused_before_the_model_is_loaded(tmp_path):
    """The lock comes first: here the model does not exist, and the refusal is still the lock's."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    held = _lock_folder(out)  # as another batch holds it
    try:
        with pytest.raises(VidtransError, match="another vidtrans batch is writing there"):
            translate_folder(src, out, tmp_path / "no-such-model")
    finally:
        os.close(held)
    assert list(out.iterdir()) == []


def test_a_refused_batch_leaves_no_output_folders_behind(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    result = cli(src, "-o", tmp_path / "new" / "out", "--model", tmp_path / "no-such-model")
    assert result.returncode == 1 and "no such file or folder" in result.stderr, result.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("address", ["garbage", "host:", "host:99999", ":6379"])
def test_a_malformed_ray_address_is_a_usage_error(tmp_path, address):
    """As `--ray ''` is: exit 2, where Ray's "Invalid address format" was a failure (exit 1)."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    result = cli(src, "-o", tmp_path / "out", "--model", "pose2person", "--ray", address)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"vidtrans: error: --ray {address!r}: give auto (the cluster this machine joined), "
                             "HOST:PORT of its head (e.g. 10.0.0.5:6379), ray://HOST:10001 or local\n")
    with pytest.raises(UsageError, match=rf"^ray {address!r}: give auto"):
        vidtrans.BatchOptions(ray=address)


def test_a_ray_install_that_cannot_be_imported_is_one_line(tmp_path):
    """A `ray` package whose import fails (a broken or mismatched install), in a process of its own."""
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('libray.so: cannot open shared object file')\n")
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    result = subprocess.run([sys.executable, "-m", "vidtrans", "batch", str(src), "-o", str(tmp_path / "out"),
                             "--model", "pose2person", "--ray", "auto"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ("vidtrans: error: --ray: Ray is installed but cannot be imported (ImportError: libray.so: "
                             "cannot open shared object file); reinstall it: pip install --force-reinstall "
                             "'vidtrans[ray]'\n")
    assert not (tmp_path / "out").exists()


def test_ray_local_starts_an_instance_that_lives_for_the_batch(tmp_path, rgb_model_dir):
    """ray.init waits for a cluster on a thread of its own, but `local` starts one: its processes
    must not end with that thread (they did, and the batch waited for a dead GCS)."""
    pytest.importorskip("ray")
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=4, audio=False)
    ray_files = tempfile.mkdtemp(prefix="vt-ray13l-", dir="/tmp")  # Ray's socket paths must be short
    env = {**os.environ, "RAY_TMPDIR": ray_files, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        result = subprocess.run([sys.executable, "-m", "vidtrans", "batch", str(src), "-o", str(tmp_path / "out"),
                                 "--model", str(rgb_model_dir), "--ray", "local", "--workers", "1", "--preset",
                                 "ultrafast"], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    finally:
        shutil.rmtree(ray_files, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert len(decode_all(tmp_path / "out" / "a.mp4")[0]) == 4
