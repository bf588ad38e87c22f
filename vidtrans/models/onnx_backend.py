"""ONNX export of a generator, and ONNX Runtime running it in place of PyTorch.

The graph is the generator alone, as `Translator` calls it: float32 (N, C, H, W) in [-1, 1] in,
the same out, with batch, height and width dynamic (H and W multiples of what the network needs,
`size_multiple`). Normalization is baked in as the translator applies it: with per-sample
statistics ("sample", pix2pix's test-time default) each batch norm becomes an
InstanceNormalization with its learned scale and shift, so a batch gives the frames of
one-at-a-time calls. Resizing, padding, scaling to [-1, 1] and back stay in the translator, so both
backends see the same tensors; so does a temporal model's recurrence (its graph takes C = 6: the
frame, then the previous output the translator hands it).

Needs the optional extra: pip install 'vidtrans[onnx]' (onnxruntime, and onnx for the exporter).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import warnings
from pathlib import Path
from types import ModuleType

import torch

from vidtrans.atomic import check_destination, discard, publish, temp_path
from vidtrans.errors import VidtransError, first_line
from vidtrans.models.checkpoint import WEIGHTS_NAME, Checkpoint, sha256_of, user_cache
from vidtrans.models.networks import input_multiple, use_per_sample_stats

INSTALL = "pip install 'vidtrans[onnx]'"
# Largest difference from PyTorch's fp32 output, in [-1, 1] space, an exported graph may show
# (1/255 of that range is half a grey level); exports measure about 1e-6.
TOLERANCE = 1e-3
# Part of every cached graph's name: bump it when the exported graph changes, so caches refill.
_GRAPH_VERSION = 1


def require(module: str, purpose: str) -> ModuleType:
    """`module`, or a one-line VidtransError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise VidtransError(f"{purpose} needs {module}, which is not installed; {INSTALL}") from None


def available() -> bool:
    """Whether ONNX Runtime can be imported (what `backend="auto"` asks)."""
    try:
        importlib.import_module("onnxruntime")
    except ImportError:
        return False
    return True


def generator(checkpoint: Checkpoint, normalization: str) -> torch.nn.Module:
    """The fp32 CPU generator the translator runs, normalization applied as it applies it."""
    net = checkpoint.build().eval()
    use_per_sample_stats(net, normalization == "sample")
    return net


def export_model(checkpoint: Checkpoint, dst: str | os.PathLike, normalization: str, overwrite: bool = False) -> float:
    """Write `checkpoint`'s generator to `dst` as ONNX, atomically; returns the largest difference
    from PyTorch's fp32 output on random input. A graph that differs by more than TOLERANCE is not
    published (VidtransError)."""
    dst = Path(dst)
    # The destination first: a path that must not be written is wrong with or without the extra.
    check_destination(dst, checkpoint.files, overwrite)
    require("onnx", "ONNX export")
    ort = require("onnxruntime", "checking the exported model")
    net = generator(checkpoint, normalization)
    multiple = input_multiple(checkpoint.card.architecture)
    height, width = (math.ceil(side / multiple) * multiple for side in checkpoint.card.native_size)
    tmp = temp_path(dst)
    try:
        sample = torch.zeros(1, checkpoint.card.input_nc, height, width)
        with torch.inference_mode(), warnings.catch_warnings():
            # The TorchScript exporter (dynamo=False) needs only the `onnx` package, where the
            # newer one needs onnxscript too; it announces its deprecation on every call.
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (sample,), str(tmp), dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={name: {0: "batch", 2: "height", 3: "width"} for name in ("input", "output")},
                              opset_version=17)
        # Another batch size and width than the export's, so the dynamic axes are checked too.
        rng = torch.Generator().manual_seed(0)
        probe = torch.rand(2, checkpoint.card.input_nc, height, width + multiple, generator=rng) * 2 - 1
        with torch.inference_mode():
            expected = net(probe).numpy()
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        difference = float(abs(session.run(None, {"input": probe.numpy()})[0] - expected).max())
        if not difference <= TOLERANCE:
            raise VidtransError(f"{dst}: the exported model differs from PyTorch's by {difference:.2g} (more than "
                                f"{TOLERANCE:g}); not written. Try another torch or onnx version")
        publish(tmp, dst, overwrite)
    except OSError as e:
        raise VidtransError(f"{dst}: cannot write the ONNX model ({e.strerror or first_line(e)}); "
                            "check free disk space and that the folder is writable") from e
    except RuntimeError as e:  # the exporter's errors (OnnxExporterError is one)
        raise VidtransError(f"{checkpoint.path}: ONNX export failed ({first_line(e)})") from e
    finally:
        discard(tmp)
    return difference


def cache_dir() -> Path:
    """Where exported graphs are kept: $XDG_CACHE_HOME/vidtrans/onnx, by default ~/.cache/vidtrans/onnx."""
    return user_cache() / "onnx"


def cached_graph(checkpoint: Checkpoint, normalization: str) -> Path:
    """The exported graph of `checkpoint` with `normalization`, exported on first use only. Named by
    the weights' sha256 (the file's own, not the card's record, which an edit could leave stale)
    and by everything else that shapes the graph."""
    weights = checkpoint.path / WEIGHTS_NAME if checkpoint.path.is_dir() else checkpoint.path
    card = checkpoint.card
    shape = json.dumps([card.architecture, card.ngf, card.norm, card.input_nc, card.output_nc, normalization,
                        _GRAPH_VERSION, torch.__version__])
    path = cache_dir() / f"{sha256_of(weights)}-{hashlib.sha256(shape.encode()).hexdigest()[:16]}.onnx"
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VidtransError(f"{path.parent}: cannot create the ONNX cache folder ({e.strerror}); "
                                "set XDG_CACHE_HOME to a writable folder") from e
        # Two processes exporting at once write the same graph: the later one replacing it is harmless.
        export_model(checkpoint, path, normalization, overwrite=True)
    return path


class OnnxGenerator:
    """Called like the PyTorch generator: float32 (N, C, H, W) CPU tensor in, the same out."""

    def __init__(self, path: str | os.PathLike):
        ort = require("onnxruntime", "--backend onnxruntime")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            raise VidtransError(f"{path}: ONNX Runtime cannot load this graph ({first_line(e)}); "
                                "delete it to export it again") from e

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Sessions may be run from several threads at once (batch workers share one).
        return torch.from_numpy(self.session.run(None, {"input": x.contiguous().numpy()})[0])
