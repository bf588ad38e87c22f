"""Defects a researcher's use of the Python API and the backends found (eighteenth QA round)."""

import sys

import pytest
import torch

import vidtrans
from tests.media import make_clip, random_generator
from vidtrans.errors import UsageError
from vidtrans.models import translator
from vidtrans.pipeline import translate_video


def test_auto_stays_on_torch_when_onnx_cannot_export(rgb_model_dir, cli, tmp_path, monkeypatch):
    """onnxruntime alone (`pip install onnxruntime`) cannot export the graph: the default command
    must not fail for a backend the user never asked for."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: False)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails as if not installed
    assert vidtrans.load_model(rgb_model_dir, device="cpu").backend == "torch"
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.mp4").exists()


def test_compile_on_loads_torch_under_auto_and_is_refused_with_onnxruntime(rgb_model_dir, cli, tmp_path,
                                                                            monkeypatch):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    loaded = []
    real = vidtrans.load_model
    monkeypatch.setattr(vidtrans, "load_model", lambda *a, **k: loaded.append(k["backend"]) or real(*a, **k))
    monkeypatch.setattr(translator.Translator, "compile", lambda self: None)  # the backend is what is checked
    result = cli("run", clip.path, "-o", tmp_path / "a.mp4", "--model", rgb_model_dir, "--compile", "on")
    assert result.returncode == 0, result.stderr
    assert loaded == ["torch"]
    result = cli("run", clip.path, "-o", tmp_path / "b.mp4", "--model", rgb_model_dir, "--compile", "on",
                 "--backend", "onnxruntime")
    assert result.returncode == 2 and result.exception is None
    assert result.stderr.strip().splitlines() == [
        "vidtrans: error: --compile on compiles with torch, not onnxruntime (which optimizes its graph itself); "
        "use --backend torch or drop --compile"]
    assert not (tmp_path / "b.mp4").exists()


def test_compile_on_with_a_model_running_on_onnxruntime_is_refused(rgb_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime")
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    with pytest.raises(UsageError, match="compile='on' compiles with torch"):
        translate_video(clip.path, tmp_path / "out.mp4", model, compile="on")
    assert not (tmp_path / "out.mp4").exists()


def test_pose_detect_on_a_model_of_rgb_frames_is_refused(rgb_model_dir, cli, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--pose", "detect")
    assert result.returncode == 2 and result.exception is None
    line = result.stderr.strip().splitlines()
    assert len(line) == 1 and "--pose detect draws pose maps for a pose model" in line[0] and "rgb frames" in line[0]
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("name", ["latest_net_G.ckpt", "generator.bin", "G"])
def test_upstream_weights_are_told_by_content_whatever_their_name(tmp_path, name):
    net = random_generator("unet_128", 3, 3, 8, "batch", seed=1)
    torch.save(net.state_dict(), tmp_path / name)
    model = vidtrans.load_model(tmp_path / name, device="cpu", backend="torch")
    assert model.card.architecture == "unet_128"


def test_the_summary_names_the_backend(rgb_model_dir, cli, tmp_path):
    import json

    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--backend", "torch", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backend"] == "torch"


def test_batch_into_a_folder_whose_manifest_cannot_be_written_is_one_line(rgb_model_dir, cli, tmp_path, monkeypatch):
    import errno
    import os

    from vidtrans import batch

    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=2, size=(64, 48), audio=False)
    assert cli("batch", folder, "-o", tmp_path / "out", "--model", rgb_model_dir).returncode == 0
    real_open = os.open

    def read_only(path, flags, *args):  # as on a read-only mount: the manifest exists, appending fails
        if str(path).endswith(".vidtrans-batch.jsonl") and flags & os.O_APPEND:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(batch.os, "open", read_only)
    result = cli("batch", folder, "-o", tmp_path / "out", "--model", rgb_model_dir)
    assert result.returncode == 2 and result.exception is None
    line = result.stderr.strip().splitlines()
    assert len(line) == 1 and "Read-only file system" in line[0] and "choose a writable output folder" in line[0]


def test_a_batch_going_back_to_an_earlier_ext_still_owns_its_outputs(rgb_model_dir, cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=2, size=(64, 48), audio=False)
    out = tmp_path / "out"
    for ext in ([], ["--ext", "mkv"], []):
        result = cli("batch", folder, "-o", out, "--model", rgb_model_dir, *ext)
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mkv", "a.mp4"]
    someone_elses = folder / "b.mp4"
    make_clip(someone_elses, frames=2, size=(64, 48), audio=False)
    (out / "b.mp4").write_bytes(b"not ours")
    assert cli("batch", folder, "-o", out, "--model", rgb_model_dir).returncode == 1
    assert (out / "b.mp4").read_bytes() == b"not ours"


def test_a_stopped_batch_does_not_wait_for_a_forward_pass(rgb_model_dir, tmp_path, monkeypatch):
    """Under `docker stop` (SIGTERM, then SIGKILL after 10 s) a batch must stop as `run` does: a
    forward pass at a large size takes tens of seconds and cannot be cut short."""
    import signal
    import threading
    import time

    from vidtrans.batch import translate_folder

    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=4, size=(64, 48), audio=False)
    inside, release, forward_done = threading.Event(), threading.Event(), threading.Event()
    real = translator.Translator.translate_clip

    def slow(self, frames, state=None):
        inside.set()
        release.wait(10)
        forward_done.set()
        return real(self, frames, state)

    monkeypatch.setattr(translator.Translator, "translate_clip", slow)
    main = threading.main_thread().ident  # a real signal, as SIGTERM is delivered: it wakes a waiting thread
    threading.Thread(target=lambda: inside.wait(30) and signal.pthread_kill(main, signal.SIGINT), daemon=True).start()
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever earlier tests left
    try:
        with pytest.raises(KeyboardInterrupt):
            translate_folder(folder, tmp_path / "out", str(rgb_model_dir), workers=1, backend="torch")
    finally:
        signal.signal(signal.SIGINT, handler)
    stopped_during_the_pass = not forward_done.is_set()
    release.set()
    assert stopped_during_the_pass
    # The clip stops at its next batch and removes its temporary file; its record stays unfinished.
    deadline = time.monotonic() + 30
    while any(t.name.startswith("vidtrans-batch") for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".vidtrans-batch")] == []
