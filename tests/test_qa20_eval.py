"""QA-20: eval and ONNX export/backend findings (the ONNX graph cache)."""

import numpy as np
import pytest

import vidtrans
from vidtrans.models import onnx_backend
from vidtrans.models.checkpoint import load_checkpoint

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test exports into its own cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "vidtrans" / "onnx"


def levels(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def damage_weights(path) -> None:
    """Flip bits inside the largest weight tensor of the graph at `path`: the file still parses,
    loads in ONNX Runtime and carries its stamp, but its weights are wrong (bit rot, a partial
    overwrite)."""
    data = bytearray(path.read_bytes())
    largest = max(onnx.load(str(path)).graph.initializer, key=lambda t: len(t.raw_data))
    start = bytes(data).find(largest.raw_data)
    assert start > 0
    for i in range(start + 100, start + len(largest.raw_data) - 100, 50):
        data[i] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_damaged_cached_graph_is_exported_again_not_run(rgb_model_dir, cache):
    frames = np.random.default_rng(5).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    expected = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime").translate(frames)
    [path] = cache.iterdir()
    written = path.read_bytes()
    damage_weights(path)
    # It still loads and still says it is this model's graph: only its contents tell.
    assert onnx_backend.OnnxGenerator(path).key == onnx_backend.graph_key(load_checkpoint(rgb_model_dir), "sample")
    again = vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime").translate(frames)
    assert levels(again, expected) == 0  # it ran 16 grey levels off
    assert path.read_bytes() == written  # the cache holds the graph as it was exported


def test_exported_graphs_carry_their_sum(rgb_model_dir, tmp_path):
    out = tmp_path / "tiny.onnx"
    onnx_backend.export_model(load_checkpoint(rgb_model_dir), out, "sample")
    graph = out.read_bytes()
    assert onnx_backend.intact(graph)
    onnx.checker.check_model(onnx.load_model_from_string(graph))
    damaged = bytearray(graph)
    damaged[len(graph) // 2] ^= 1
    assert not onnx_backend.intact(bytes(damaged))
    assert not onnx_backend.intact(b"not a graph")


def test_trimming_the_cache_leaves_another_process_s_graph_being_written(rgb_model_dir, cache, monkeypatch):
    """The cache's graphs are written under temporary names (.KEY.partial-XXXX.onnx) that match
    *.onnx: a trim must not delete the file another process is writing (its graph would not be
    kept), but a temporary file a killed process left long ago goes."""
    import os
    import time

    cache.mkdir(parents=True)
    writing = cache / ".0123abcd-feed.partial-1a2b3c4d.onnx"
    writing.write_bytes(b"\0" * 4096)  # another process's export, being written now
    left = cache / ".4567abcd-feed.partial-5e6f7a8b.onnx"
    left.write_bytes(b"\0" * 4096)  # a killed process's, a day old
    day_ago = time.time() - 86400
    os.utime(left, (day_ago, day_ago))
    monkeypatch.setattr(onnx_backend, "CACHE_LIMIT", 1)  # every other file would go
    vidtrans.load_model(rgb_model_dir, device="cpu", backend="onnxruntime")
    names = sorted(p.name for p in cache.iterdir())
    assert writing.name in names and left.name not in names
    assert len([n for n in names if not n.startswith(".")]) == 1  # the graph just exported stays


def test_eval_without_material_offers_only_what_the_model_can_be_scored_on(pose_model, tmp_path):
    """A pose model not made by vidtrans train VIDEO (imported, hand-made) was offered --video,
    which then refused it ('was not trained from a video'); one made from a video is told which."""
    from tests.media import random_generator
    from vidtrans.errors import UsageError
    from vidtrans.evaluate import Material, score
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint
    from vidtrans.pose import PoseStyle

    with pytest.raises(UsageError) as refused:
        score(pose_model, Material())
    assert "--video" not in str(refused.value) and "--data DIR" in str(refused.value)
    folder = tmp_path / "alice"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 4, "instance"),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64),
                              input_kind="pose", pose_style=PoseStyle().to_dict(),
                              training={"data": "target video alice.mp4", "video": "alice.mp4"}))
    with pytest.raises(UsageError) as refused:
        score(vidtrans.load_model(folder, device="cpu"), Material())
    assert "give --video alice.mp4 " in str(refused.value)



def test_eval_where_run_finds_nobody_is_one_line_not_a_score(pose_model, tmp_path, monkeypatch):
    """In a 16x16 dance video the detector finds nobody: the output was the empty scene throughout,
    and eval printed its 'scores' (flicker 0.0x the truth's, person SSIM 0.33), exit 0. (`vidtrans
    eval --model M --synthetic --frames 2 --size 16 16` does it for real, in 10 s: here run's
    result stands in.)"""
    from vidtrans import evaluate
    from vidtrans.errors import VidtransError
    from vidtrans.options import RunOptions
    from vidtrans.pipeline import Summary

    truth = np.zeros((2, 64, 64, 3), np.uint8)
    nobody = Summary(input="dance.mp4", output="output.mp4", model="tinypose", device="cpu", precision="fp32",
                     frames=2, frames_without_person=2)
    monkeypatch.setattr(evaluate, "_through_run", lambda *args, **kwargs: (truth.copy(), nobody))
    tail = evaluate.HeldOut(tmp_path / "alice.mp4", 3.0, None, truth, np.zeros((2, 18, 3), np.float32))
    with pytest.raises(VidtransError, match=r"alice.mp4: vidtrans run found no person in any of the 2 frames of its "
                                            "held-out tail"):
        evaluate.end_to_end_scores(pose_model, tail, tmp_path, RunOptions())
    dance = evaluate.HeldOut(tmp_path / "dance.mp4", None, None, truth, np.zeros((2, 18, 3), np.float32), (16, 16))
    with pytest.raises(VidtransError, match=r"found no person in any of the 2 frames of the dance video \(16x16\).*"
                                            r"give a larger --size"):
        evaluate.end_to_end_scores(pose_model, dance, tmp_path, RunOptions())
