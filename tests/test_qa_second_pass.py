"""Holes a second hostile-input pass found in the first pass's fixes: model files as inputs of every
output, keypoints that would be ignored, JSON nested too deep to parse."""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip
from vidtrans.pose import write_keypoints_npz

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", frames=4, size=(64, 48), audio=False).path


@pytest.fixture
def model_copy(tmp_path, rgb_model_dir):
    return shutil.copytree(rgb_model_dir, tmp_path / "model")


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("name", ["card.json", "model.safetensors", "background.png"])
def test_live_stats_never_replace_the_models_files(cli, clip, model_copy, name):
    before = contents(model_copy)
    line = one_line(cli("live", "--model", model_copy, "--camera", clip, "--no-window", "--max-frames", "2",
                        "--stats", model_copy / name, "--overwrite"), 2)
    assert "would overwrite the input" in line and contents(model_copy) == before


def test_batch_report_never_replaces_the_models_files(cli, tmp_path, clip, model_copy):
    before = contents(model_copy)
    line = one_line(cli("batch", tmp_path, "-o", tmp_path / "out", "--model", model_copy,
                        "--report", model_copy / "card.json", "--overwrite"), 2)
    assert "would overwrite the input" in line and contents(model_copy) == before
    assert not (tmp_path / "out").exists()


def test_keypoints_for_a_model_that_would_ignore_them_are_refused(cli, tmp_path, clip, rgb_model_dir):
    keypoints = tmp_path / "k.npz"
    write_keypoints_npz(keypoints, np.zeros((4, 18, 3), np.float32), 64, 48)
    line = one_line(cli("run", clip, "-o", tmp_path / "o.mp4", "--model", rgb_model_dir, "--keypoints", keypoints), 2)
    assert "not pose maps" in line and "drop --keypoints" in line
    line = one_line(cli("run", clip, "-o", tmp_path / "o.mp4", "--pose", "none", "--keypoints", keypoints), 2)
    assert "--pose none" in line
    assert not (tmp_path / "o.mp4").exists()


def test_json_nested_too_deep_is_bad_json_not_a_traceback(cli, tmp_path, clip, model_copy):
    (model_copy / "card.json").write_text(DEEP)
    assert "not valid JSON" in one_line(cli("run", clip, "-o", tmp_path / "o.mp4", "--model", model_copy), 1)
    keypoints = tmp_path / "k.json"
    keypoints.write_text(DEEP)
    line = one_line(cli("run", clip, "-o", tmp_path / "o.mp4", "--keypoints", keypoints), 1)
    assert "k.json" in line


def test_a_containers_memory_limit_bounds_the_memory_available(tmp_path, monkeypatch):
    import torch

    from vidtrans.models import translator

    limit, usage, stat = (tmp_path / name for name in ("limit", "usage", "stat"))
    limit.write_text(f"{4 * 2**30}\n")
    usage.write_text(f"{3 * 2**30}\n")
    stat.write_text(f"anon 100\ninactive_file {2**29}\n")  # half a GiB of page cache it can reclaim
    monkeypatch.setattr(translator, "_CGROUP_MEMORY", ((str(limit), str(usage), str(stat), "inactive_file"),))
    monkeypatch.setattr(translator, "_host_available_memory", lambda: 20 * 2**30)
    assert translator.available_memory(torch.device("cpu")) == 2**30 + 2**29
    limit.write_text("max\n")  # no limit: the host's figure
    assert translator.available_memory(torch.device("cpu")) == 20 * 2**30


def test_running_out_of_memory_anyway_is_one_line(cli, tmp_path, clip, rgb_model_dir, monkeypatch):
    from vidtrans.models.translator import Translator

    def no_memory(self, frames, previous):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1207959552 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(Translator, "_call_network", no_memory)
    line = one_line(cli("run", clip, "-o", tmp_path / "o.mp4", "--model", rgb_model_dir), 1)
    assert "out of CPU memory translating" in line and "smaller model size or batch size" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_camera_lost_mid_session_keeps_what_was_recorded(cli, tmp_path, rgb_model_dir, monkeypatch):
    """The file camera's file is deleted while it loops: live ends with the camera's error (exit 1),
    and the recording and stats of what was shown until then are kept."""
    import vidtrans.live.loop as loop
    from tests.media import decode_all

    camera = make_clip(tmp_path / "cam.mp4", frames=6, size=(64, 48), fps=25, audio=False).path
    record, stats = tmp_path / "rec.mp4", tmp_path / "stats.json"
    add = loop.LiveStats.add

    def add_then_lose_the_camera(self, *args):
        add(self, *args)
        camera.unlink(missing_ok=True)

    monkeypatch.setattr(loop.LiveStats, "add", add_then_lose_the_camera)
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--loop", "--no-window",
                 "--max-frames", "40", "--record", record, "--stats", stats)
    assert result.returncode == 1 and result.exception is None, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"vidtrans: error: {camera}: file not found")
    frames, _ = decode_all(record)
    assert 1 <= len(frames) < 40
    assert json.loads(stats.read_text())["frames"] == len(frames)
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


@pytest.mark.parametrize("command", ["run", "pose", "batch"])
def test_an_output_kind_ffmpeg_cannot_write_is_refused_before_any_work(cli, tmp_path, clip, rgb_model_dir, command):
    args = {"run": ["run", clip, "-o", tmp_path / "o.txt", "--model", rgb_model_dir],
            "pose": ["pose", clip, "-o", tmp_path / "o.txt"],
            "batch": ["batch", tmp_path, "-o", tmp_path / "out", "--model", rgb_model_dir, "--ext", "txt"]}[command]
    line = one_line(cli(*args), 2)
    assert "txt" in line and "mp4" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_while_the_cli_is_still_importing_is_one_line(signum):
    """The signal lands while `vidtrans.cli` is being imported (before its handlers exist)."""
    import subprocess
    import sys

    script = f"""
import builtins, os, signal, sys
sys.argv = ["vidtrans", "--help"]
real_import = builtins.__import__
def interrupting_import(name, *args, **kwargs):
    if name == "vidtrans.cli":
        os.kill(os.getpid(), signal.{signum})
    return real_import(name, *args, **kwargs)
builtins.__import__ = interrupting_import
from vidtrans.__main__ import entry
entry()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    number = {"SIGINT": 2, "SIGTERM": 15}[signum]
    assert (result.returncode, result.stderr, result.stdout) == (128 + number, "vidtrans: interrupted\n", "")
