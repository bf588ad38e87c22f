"""ONNX export (`vidtrans export`) and the onnxruntime backend (`--backend`, `load_model(backend=)`)."""

import sys

import numpy as np
import pytest
import torch

import vidtrans
from tests.media import assert_same_frames, decode_all, make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.models import onnx_backend
from vidtrans.models.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from vidtrans.pipeline import translate_video

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test exports into its own cache, so none relies on another's graph."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "vidtrans" / "onnx"


@pytest.fixture(scope="module")
def batch_norm_model_dir(tmp_path_factory):
    """A tiny U-Net with batch norm: per-sample statistics must become ONNX instance norms."""
    net = random_generator("unet_32", 3, 3, 4, "batch", seed=0)
    folder = tmp_path_factory.mktemp("models") / "unet"
    save_checkpoint(folder, net, ModelCard(architecture="unet_32", ngf=4, norm="batch", native_size=(32, 32)))
    return folder


class Recorder:
    """A translator whose outputs are kept, as translate_video hands them on (before encoding), by
    input frame (the pipeline's translation threads finish batches in any order)."""

    def __init__(self, translator):
        self._translator = translator
        self.outputs = {}

    def __getattr__(self, name):
        return getattr(self._translator, name)

    def translate(self, frames):
        out = self._translator.translate(frames)
        self.outputs.update((frame.tobytes(), result) for frame, result in zip(frames, out))
        return out


def levels(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_export_matches_torch_with_dynamic_batch_and_size(cli, rgb_model_dir, tmp_path):
    out = tmp_path / "tiny.onnx"
    result = cli("export", rgb_model_dir, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "largest difference from PyTorch" in result.stderr
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    net = onnx_backend.generator(load_checkpoint(rgb_model_dir), "sample")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (3, 3, 48, 96)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
        with torch.inference_mode():
            expected = net(x).numpy()
        assert np.abs(session.run(None, {"input": x.numpy()})[0] - expected).max() < 1e-3


def test_export_refuses_an_existing_file_without_overwrite(cli, rgb_model_dir, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"keep me")
    result = cli("export", rgb_model_dir, "-o", out)
    assert result.returncode == 2  # the path given is the mistake: a usage error, as everywhere
    assert result.stderr.strip().splitlines() == [f"vidtrans: error: {out}: already exists; choose another name "
                                                  "or pass --overwrite"]
    assert out.read_bytes() == b"keep me"
    assert cli("export", rgb_model_dir, "-o", out, "--overwrite").returncode == 0
    assert out.read_bytes() != b"keep me"


def test_export_into_a_missing_folder_is_one_line(cli, rgb_model_dir, tmp_path):
    result = cli("export", rgb_model_dir, "-o", tmp_path / "nowhere" / "model.onnx")
    assert result.returncode == 2 and result.exception is None
    assert len(result.stderr.strip().splitlines()) == 1 and "does not exist" in result.stderr


def test_export_without_onnx_is_one_line(cli, rgb_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import fails as if not installed
    result = cli("export", rgb_model_dir, "-o", tmp_path / "model.onnx")
    assert result.returncode == 1 and result.exception is None
    assert result.stderr.strip().splitlines() == ["vidtrans: error: ONNX export needs onnx, which is not installed; "
                                                  "pip install 'vidtrans[onnx]'"]
    assert list(tmp_path.iterdir()) == []


def test_a_graph_that_does_not_match_is_not_published(rgb_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_backend, "TOLERANCE", -1.0)  # nothing matches
    with pytest.raises(VidtransError, match="differs from PyTorch"):
        onnx_backend.export_model(load_checkpoint(rgb_model_dir), tmp_path / "model.onnx", "sample")
    assert list(tmp_path.iterdir()) == []


def test_onnxruntime_frames_equal_torch_fp32_frames(rgb_model_dir, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=10, size=(80, 48), audio=False)
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        model = Recorder(vidtrans.load_model(rgb_model_dir, device="cpu", precision="fp32", backend=backend))
        assert model.backend == backend and model.precision == "fp32"
        translate_video(clip.path, tmp_path / f"{backend}.mp4", model, batch_size=4, smoothing="none")
        outputs[backend] = model.outputs
    assert len(outputs["torch"]) == 10 and outputs["torch"].keys() == outputs["onnxruntime"].keys()
    assert max(levels(outputs["onnxruntime"][k], outputs["torch"][k]) for k in outputs["torch"]) <= 1
    assert len(decode_all(tmp_path / "onnxruntime.mp4")[0]) == 10


@pytest.mark.parametrize("which", ["rgb_model_dir", "batch_norm_model_dir"])
def test_batch_invariance_holds_on_onnxruntime(request, which):
    folder = request.getfixturevalue(which)
    model = vidtrans.load_model(folder, device="cpu", backend="onnxruntime")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 50, 70, 3), dtype=np.uint8)
    batched = model.translate(frames)
    one_by_one = np.stack([model.translate(frame) for frame in frames])
    assert_same_frames(batched, one_by_one)
    torch_fp32 = vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")
    assert levels(batched, torch_fp32.translate(frames)) <= 1


def test_the_graph_is_exported_once_and_cached(batch_norm_model_dir, cache, monkeypatch):
    exports = []
    real = onnx_backend.exported_graph
    monkeypatch.setattr(onnx_backend, "exported_graph", lambda *a, **k: exports.append(a) or real(*a, **k))
    vidtrans.load_model(batch_norm_model_dir, device="cpu", backend="onnxruntime")
    vidtrans.load_model(batch_norm_model_dir, device="cpu", backend="onnxruntime")
    assert len(exports) == 1
    assert [p.suffix for p in cache.iterdir()] == [".onnx"]
    # Another normalization is another graph (batch norm's running statistics: only it keeps them).
    vidtrans.load_model(batch_norm_model_dir, device="cpu", backend="onnxruntime", normalization="running")
    assert len(exports) == 2 and len(list(cache.iterdir())) == 2


def test_the_cache_keeps_the_graphs_used_last_within_its_limit(batch_norm_model_dir, cache, monkeypatch):
    # Every epoch's checkpoint of a sweep adds a graph (217 MB at ngf 64): the cache must not grow forever.
    import os

    vidtrans.load_model(batch_norm_model_dir, device="cpu", backend="onnxruntime")
    (graph,) = cache.iterdir()
    monkeypatch.setattr(onnx_backend, "CACHE_LIMIT", 3 * graph.stat().st_size)
    old, older = cache / "old.onnx", cache / "older.onnx"
    for i, stale in enumerate((older, old)):
        stale.write_bytes(graph.read_bytes())
        os.utime(stale, (1000 + i, 1000 + i))
    os.utime(graph, (500, 500))
    vidtrans.load_model(batch_norm_model_dir, device="cpu", backend="onnxruntime")  # used again: the newest now
    vidtrans.load_model(batch_norm_model_dir, device="cpu", backend="onnxruntime", normalization="running")  # a 4th
    assert len(list(cache.iterdir())) == 3 and not older.exists() and old.exists() and graph.exists()


def test_auto_picks_onnxruntime_only_on_cpus_without_amx(rgb_model_dir, monkeypatch):
    from vidtrans.models import translator

    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: False)
    assert vidtrans.load_model(rgb_model_dir, device="cpu").backend == "onnxruntime"
    assert vidtrans.load_model(rgb_model_dir, device="cpu", precision="bf16").backend == "torch"
    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: True)
    assert vidtrans.load_model(rgb_model_dir, device="cpu").backend == "torch"


def test_backend_onnxruntime_without_onnxruntime_is_one_line(cli, rgb_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--backend", "onnxruntime")
    assert result.returncode == 1 and result.exception is None
    assert result.stderr.strip().splitlines() == ["vidtrans: error: --backend onnxruntime needs onnxruntime, which is "
                                                  "not installed; pip install 'vidtrans[onnx]'"]
    # auto quietly stays with torch.
    from vidtrans.models import translator

    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: False)
    assert vidtrans.load_model(rgb_model_dir, device="cpu").backend == "torch"


def test_onnxruntime_refuses_what_it_cannot_do(rgb_model_dir):
    with pytest.raises(VidtransError, match="fp32 only"):
        vidtrans.load_model(rgb_model_dir, device="cpu", precision="bf16", backend="onnxruntime")
    with pytest.raises(VidtransError, match="backend must be one of auto, torch, onnxruntime"):
        vidtrans.load_model(rgb_model_dir, device="cpu", backend="tensorrt")


def test_batch_takes_the_backend(cli, rgb_model_dir, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "a.mp4", frames=4, size=(64, 48), audio=False)
    result = cli("batch", clips, "-o", tmp_path / "out", "--model", rgb_model_dir, "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    from vidtrans.batch import read_manifest, translate_folder

    assert read_manifest(tmp_path / "out")["a.mp4"]["options"]["backend"] == "onnxruntime"
    # A rerun on the same backend skips the clip; the other backend's frames may differ by a level: redone.
    statuses = [translate_folder(clips, tmp_path / "out", rgb_model_dir, backend=backend).clips[0].status
                for backend in ("onnxruntime", "torch")]
    assert statuses == ["skipped", "done"]


def cached_file(cache):
    [path] = cache.iterdir()
    return path


def test_a_cached_graph_that_is_not_this_models_is_exported_again(rgb_model_dir, cache, tmp_path):
    frames = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    expected = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime").translate(frames)
    # Another model's graph copied over this one's (a grey model, then one of the same shape), then a damaged file.
    grey = tmp_path / "grey"
    save_checkpoint(grey, random_generator("resnet_6blocks", 1, 1, 8, "instance", seed=1),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=1, output_nc=1,
                              native_size=(64, 64)))
    path = cached_file(cache)
    onnx_backend.export_model(load_checkpoint(grey), tmp_path / "grey.onnx", "sample")
    # Another model of the same shape: channels alone would not tell it apart.
    other = tmp_path / "other"
    save_checkpoint(other, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=7),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)))
    onnx_backend.export_model(load_checkpoint(other), tmp_path / "other.onnx", "sample")
    for wrong in ((tmp_path / "grey.onnx").read_bytes(), (tmp_path / "other.onnx").read_bytes(), b"not a graph"):
        path.write_bytes(wrong)
        again = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime").translate(frames)
        assert levels(again, expected) == 0
        # The cache holds the right graph again.
        assert onnx_backend.OnnxGenerator(path).key == path.stem == onnx_backend.graph_key(
            load_checkpoint(rgb_model_dir), "sample")


def test_an_unwritable_cache_exports_for_the_process_alone(rgb_model_dir, tmp_path, monkeypatch, caplog):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")  # no folder can be made under it, even as root
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    frames = np.random.default_rng(4).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with caplog.at_level("WARNING", logger="vidtrans"):
        model = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime")
    torch_fp32 = vidtrans.load_model(rgb_model_dir, device="cpu", precision="fp32", backend="torch")
    assert levels(model.translate(frames), torch_fp32.translate(frames)) <= 1
    [warning] = [r.getMessage() for r in caplog.records]
    assert "cannot keep the exported ONNX graph there" in warning and "XDG_CACHE_HOME" in warning
    assert blocked.read_text() == "a file where the cache folder would be"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


def test_export_names_its_output_onnx(cli, rgb_model_dir, tmp_path):
    for name in ("model.txt", "model"):
        result = cli("export", rgb_model_dir, "-o", tmp_path / name)
        assert result.returncode == 2 and result.exception is None
        assert result.stderr.strip().splitlines() == [f"vidtrans: error: {tmp_path / name}: an ONNX model is written "
                                                      "as a .onnx file; name it model.onnx"]
    assert list(tmp_path.iterdir()) == []


def test_calls_at_once_each_have_a_session_and_later_threads_reuse_them(rgb_model_dir):
    import threading

    from vidtrans.runner import usable_cores

    model = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime")
    frames = np.random.default_rng(5).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    alone = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime").translate(frames)
    made_later, used = [], []
    make = model.net._new_session
    model.net._new_session = lambda: made_later.append(1) or make()
    both_running = threading.Barrier(2, timeout=30)

    class Watched:  # a session that waits, inside its run, until the other call runs too
        def __init__(self, session):
            self.session = session

        def run(self, *args):
            used.append(self.session)
            both_running.wait()
            return self.session.run(*args)

    model.net._idle = [Watched(s) for s in model.net._idle]
    results = {}

    def work(k):
        results[k] = model.translate(frames[k::2])

    def in_threads(*calls):
        threads = [threading.Thread(target=work, args=(k,)) for k in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    in_threads(0, 1)  # a pipeline's two translation threads
    assert levels(results[0], alone[0::2]) == 0 and levels(results[1], alone[1::2]) == 0
    assert len(used) == 2 and used[0] is not used[1]
    assert made_later == []  # found made at load
    both_running = threading.Barrier(1)
    in_threads(1, 0)  # the next clip's new pipeline threads find them made
    assert made_later == [] and results[0].shape == (4, 64, 64, 3)
    threads = {int(s.get_session_options().intra_op_num_threads) for s in used}
    assert threads == {max(1, usable_cores() // 2)}
