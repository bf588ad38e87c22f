"""ONNX export and the onnxruntime backend as a user meets them (twenty-sixth QA round)."""

import sys

import pytest
import torch

import vidtrans
from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.models import onnx_backend, translator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")  # which exports the graphs


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "vidtrans" / "onnx"


@pytest.fixture
def cuda_machine(monkeypatch):
    """A machine whose torch sees a GPU (device "auto" means CUDA there); nothing may run on it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_onnxruntime_with_device_auto_runs_on_the_cpu_of_a_cuda_machine(cuda_machine, rgb_model_dir, cli, tmp_path):
    # ONNX Runtime runs on the CPU only, and "auto" is every command's default device: on a machine
    # with a GPU, `--backend onnxruntime` alone was refused ("runs on the CPU only, not cuda").
    model = vidtrans.load_model(rgb_model_dir, backend="onnxruntime")
    assert (model.backend, str(model.device), model.precision) == ("onnxruntime", "cpu", "fp32")
    assert vidtrans.load_model(rgb_model_dir, device=None, backend="onnxruntime").device.type == "cpu"
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--backend", "onnxruntime",
                 "--json")
    assert result.returncode == 0, result.stderr
    assert '"device": "cpu", "precision": "fp32", "backend": "onnxruntime"' in result.stdout
    # A GPU asked for by name is still refused in one line.
    result = cli("run", clip.path, "-o", tmp_path / "cuda.mp4", "--model", rgb_model_dir, "--backend", "onnxruntime",
                 "--device", "cuda")
    assert result.returncode == 2 and result.exception is None, result.stderr
    assert result.stderr.strip() == ("vidtrans: error: the onnxruntime backend runs on the CPU only, not cuda; use "
                                     "--device cpu or --backend torch")
    assert not (tmp_path / "cuda.mp4").exists()


@pytest.fixture(params=["onnx", "onnxruntime"])
def broken_install(request, tmp_path, monkeypatch):
    """`module` installed but failing when imported, as onnx does beside a protobuf it was not built
    for (mediapipe pins its own), or a wheel built for another NumPy."""
    module = request.param
    fake = tmp_path / "site" / module
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise TypeError("Descriptors cannot be created directly. If this call came '
                                      'from a _pb2.py file, your generated code is out of date")\n')
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(onnx_backend, "_broken_told", set(), raising=False)  # told once per process
    return module



def _run_auto(cli, tmp_path, model_dir):
    """`run --json` of a small clip with --backend auto: the clip, the result (exit 0 checked) and its warnings."""
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "auto.mp4", "--model", model_dir, "--json")
    assert result.returncode == 0 and result.exception is None, result.stderr
    return clip, result, [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning: ")]


def test_a_broken_onnx_install_is_one_line_and_auto_runs_torch(broken_install, rgb_model_dir, cli, tmp_path,
                                                               monkeypatch):
    # Only ImportError was caught: the default `run` (auto picks ONNX Runtime on CPUs without bf16
    # in hardware) and `export` ended in the TypeError's traceback.
    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: False)
    clip, result, warnings = _run_auto(cli, tmp_path, rgb_model_dir)
    assert '"backend": "torch"' in result.stdout
    assert warnings == [f"vidtrans: warning: {broken_install} fails to import (TypeError: Descriptors cannot be "
                        "created directly. If this call came from a _pb2.py file, your generated code is out of "
                        "date), so --backend auto runs torch; reinstall it: pip install 'vidtrans[onnx]'"]
    assert (tmp_path / "auto.mp4").exists()
    for args in (["export", rgb_model_dir, "-o", tmp_path / "m.onnx"],
                 ["run", clip.path, "-o", tmp_path / "ort.mp4", "--model", rgb_model_dir, "--backend", "onnxruntime"]):
        result = cli(*args)
        assert result.returncode == 1 and result.exception is None, result.stderr
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith("vidtrans: error: ")
        assert f"needs {broken_install}, which fails to import (TypeError: Descriptors cannot" in line
        assert line.endswith("; reinstall it: pip install 'vidtrans[onnx]'")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "ort.mp4").exists()


def test_weights_that_overflow_are_told_as_such_not_as_an_onnx_version_problem(tmp_path, cli):
    # PyTorch's own output was NaN, so the check said "its ONNX export differs from PyTorch's by nan;
    # try another torch or onnx version", for `export` and for --backend onnxruntime alike.
    net = random_generator("unet_32", 3, 3, 4, "none", seed=1)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(1e6)  # finite weights whose products overflow float32
    folder = tmp_path / "overflowing"
    save_checkpoint(folder, net, ModelCard(architecture="unet_32", ngf=4, norm="none", native_size=(32, 32)))
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    expected = (f"vidtrans: error: {folder}: the network's output holds NaN or infinite values, its arithmetic "
                "overflowing in fp32; use another checkpoint (training makes no weights that overflow)")
    for args in (["export", folder, "-o", tmp_path / "m.onnx"],
                 ["run", clip.path, "-o", tmp_path / "out.mp4", "--model", folder, "--backend", "onnxruntime"]):
        result = cli(*args)
        assert result.returncode == 1 and result.exception is None, result.stderr
        assert result.stderr.strip() == expected
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("name,meant", [("x.onnx.tmp", "x.onnx"), (".onnx", "model.onnx"), ("x.", "x.onnx"),
                                        ("model.pt", "model.onnx")])
def test_export_names_the_onnx_file_meant(cli, rgb_model_dir, tmp_path, monkeypatch, name, meant):
    # It suggested "x.onnx.onnx", ".onnx.onnx" and "x..onnx".
    monkeypatch.chdir(tmp_path)
    line = one_line(cli("export", rgb_model_dir, "-o", name), 2)
    assert line == f"vidtrans: error: {name}: an ONNX model is written as a .onnx file; name it {meant}"
    assert not any(tmp_path.glob("*.onnx"))


def test_export_echoes_a_long_output_name_cut(cli, rgb_model_dir, tmp_path):
    # Both the name given and the name meant were echoed whole (over 600 characters here).
    folder = tmp_path / ("d" * 120)
    folder.mkdir()
    line = one_line(cli("export", rgb_model_dir, "-o", folder / ("e" * 200 + ".pt")), 2)
    given, _, meant = line.removeprefix("vidtrans: error: ").partition(": an ONNX model is written as a .onnx file; "
                                                                        "name it ")
    assert given.endswith("..." + "e" * 27 + ".pt") and len(given) < 70, line
    assert meant == repr("e" * 60) + "...", line
    assert not any(folder.iterdir())


def test_auto_runs_torch_where_the_graph_cannot_be_exported(rgb_model_dir, cli, tmp_path, monkeypatch):
    # auto takes ONNX Runtime on CPUs without bf16 in hardware, and an export that failed (this
    # torch's exporter refusing an operator, the check against PyTorch) failed the default `run`,
    # for a backend its user never asked for. Asked for by name, it is still an error.
    monkeypatch.setattr(translator, "_cpu_multiplies_bf16", lambda: False)

    def refuse(*args, **kwargs):
        raise torch.onnx.errors.OnnxExporterError("Unsupported: ONNX export of operator reflection_pad2d")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    clip, result, warnings = _run_auto(cli, tmp_path, rgb_model_dir)
    assert '"precision": "fp32", "backend": "torch"' in result.stdout
    assert warnings == [f"vidtrans: warning: {rgb_model_dir}: ONNX export failed (Unsupported: ONNX export of operator "
                        "reflection_pad2d), so --backend auto runs torch"]
    line = one_line(cli("run", clip.path, "-o", tmp_path / "ort.mp4", "--model", rgb_model_dir, "--backend",
                        "onnxruntime"), 1)
    assert line == (f"vidtrans: error: {rgb_model_dir}: ONNX export failed (Unsupported: ONNX export of operator "
                    "reflection_pad2d); try another torch or onnx version, or run the model with the torch backend")
    assert not (tmp_path / "ort.mp4").exists()
