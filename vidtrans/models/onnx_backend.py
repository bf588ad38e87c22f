"""ONNX export of a generator, and ONNX Runtime running it in place of PyTorch.

The graph is the generator alone, as `Translator` calls it: float32 (N, C, H, W) in [-1, 1] in,
the same out, with batch, height and width dynamic (H and W multiples of what the network needs,
`input_multiple`, and at least `smallest_input`). Normalization is baked in as the translator applies it: with per-sample
statistics ("sample", pix2pix's test-time default) each batch norm becomes an
InstanceNormalization with its learned scale and shift, so a batch gives the frames of
one-at-a-time calls; each norm's maps are first shifted by their first value
(`networks.shifted_statistics`), which near-flat frames need in ONNX Runtime. Resizing, padding,
scaling to [-1, 1] and back stay in the translator, so both backends see the same tensors; so
does a temporal model's recurrence (its graph takes C = 6: the frame, then the previous output the
translator hands it).

Needs the optional extra: pip install 'vidtrans[onnx]' (onnxruntime, and onnx for the exporter).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import importlib
import io
import json
import logging
import math
import os
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from vidtrans.atomic import TEMPORARY_PATTERN, check_destination, write_atomically
from vidtrans.errors import UsageError, VidtransError, first_line
from vidtrans.models.checkpoint import Checkpoint, user_cache
from vidtrans.models.networks import input_multiple, shifted_statistics, use_per_sample_stats
from vidtrans.options import plain, shown_path, spell_setting
from vidtrans.runner import half_the_cores

log = logging.getLogger(__name__)

# ONNX Runtime, when imported, keeps a device id and a telemetry database in the user's cache
# folder (Microsoft/DeveloperTools/.onnxruntime), and prints a warning of its own, in terminal
# colours, where that folder cannot be written. vidtrans writes only its outputs and its own
# cache; a user who wants ONNX Runtime's telemetry sets the variable to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

INSTALL = "pip install 'vidtrans[onnx]'"
_EXPORTING = threading.Lock()
# Largest difference from PyTorch's fp32 output, in [-1, 1] space, an exported graph may show
# (1/255 of that range is half a grey level); exports measure about 1e-6.
TOLERANCE = 1e-3
# The longest side a graph is exported and checked at: the native size's, up to this. The graph is
# the same at every size, and checking it at a native size of 8192x8192 (resnet_6blocks, ngf 8)
# took some 30 GB; at 2048x2048, 2 GB and half a minute.
_CHECK_SIDE = 512
# Part of every cached graph's name: bump it when the exported graph changes, so caches refill.
_GRAPH_VERSION = 2
# ONNX Runtime's sessions log only what is fatal: an error they log is raised too, and said in one
# line (`_run_session`); theirs came before it on stderr, in terminal colours.
_QUIET = 4
# The metadata entry holding a graph's `graph_key`.
_KEY_NAME = "vidtrans_graph"
# The metadata entry holding the sha256 of the whole file, this entry's value read as _NO_SUM: a
# cached graph damaged after it was written (a bit flipped in its weights, a partial overwrite)
# still loads and still carries its key, and would run with wrong weights.
_SUM_NAME = "vidtrans_sha256"
_NO_SUM = "0" * 64


def require(module: str, purpose: str) -> ModuleType:
    """`module`, or a one-line VidtransError saying why it cannot be imported and how to install it."""
    try:
        return importlib.import_module(module)
    except Exception as e:  # not only ImportError: see _broken
        broken = _broken(module, e)
        if broken is None:
            raise VidtransError(f"{purpose} needs {module}, which is not installed; {INSTALL}") from None
        raise VidtransError(f"{purpose} needs {module}, which {broken}; reinstall it: {INSTALL}") from None


def _broken(module: str, error: Exception) -> str | None:
    """How an installed `module` fails to import with `error` (onnx beside a protobuf it was not
    built for raises TypeError in its import; a wheel built for another NumPy, ImportError or
    AttributeError; a dependency of its own may be missing); None where `module` is not installed."""
    if isinstance(error, ModuleNotFoundError) and error.name == module:
        return None
    return f"fails to import ({type(error).__name__}: {first_line(error)})"


# The modules whose broken install `available` told of (once per process: each of a batch's workers loads).
_broken_told: set[str] = set()


def available() -> bool:
    """Whether ONNX Runtime and the onnx package (which exports the graph) can be imported: what
    `backend="auto"` asks. With onnxruntime alone (`pip install onnxruntime`), auto stays on torch
    rather than failing where the user never asked for ONNX; so it does where one is installed but
    fails to import, with a warning, since its user meant it to run."""
    for module in ("onnxruntime", "onnx"):
        try:
            importlib.import_module(module)
        except Exception as e:
            broken = _broken(module, e)
            if broken is not None and module not in _broken_told:
                _broken_told.add(module)
                log.warning("%s %s, so %s runs torch; reinstall it: %s", module, broken,
                            spell_setting("backend", "auto"), INSTALL)
            return False
    return True


def generator(checkpoint: Checkpoint, normalization: str) -> torch.nn.Module:
    """The fp32 CPU generator the translator runs, normalization applied as it applies it, ready
    to export (`shifted_statistics`)."""
    net = shifted_statistics(checkpoint.build().eval())
    use_per_sample_stats(net, normalization == "sample")
    return net


def export_model(checkpoint: Checkpoint, dst: str | os.PathLike, normalization: str, overwrite: bool = False) -> float:
    """Write `checkpoint`'s generator to `dst` as ONNX, atomically; returns the largest difference
    from PyTorch's fp32 output on random input. A graph that differs by more than TOLERANCE is not
    published (VidtransError)."""
    # The destination first: a path that must not be written is wrong with or without the extra (as
    # given: a trailing slash, naming a folder, is refused before a Path drops it).
    check_destination(dst, checkpoint.files, overwrite)
    dst = Path(dst)
    if dst.suffix.lower() != ".onnx":
        # model.pt -> model.onnx, x.onnx.tmp -> x.onnx, x. -> x.onnx; ".onnx" is a hidden name without a suffix.
        stem = "" if dst.name.lower() == ".onnx" else dst.stem.rstrip(".")
        meant = stem if stem.lower().endswith(".onnx") else f"{stem or 'model'}.onnx"
        raise UsageError(f"{shown_path(dst)}: an ONNX model is written as a .onnx file; name it {plain(meant)}")
    graph, difference = exported_graph(checkpoint, normalization)
    write_atomically(dst, lambda f: f.write(graph), overwrite=overwrite, inputs=checkpoint.files, what="ONNX model")
    return difference


def exported_graph(checkpoint: Checkpoint, normalization: str) -> tuple[bytes, float]:
    """`checkpoint`'s generator as an ONNX graph (the bytes of a .onnx file) and its largest
    difference from PyTorch's fp32 output on random input; VidtransError where that is more than
    TOLERANCE."""
    onnx = require("onnx", "ONNX export")
    ort = require("onnxruntime", "checking the exported model")
    net = generator(checkpoint, normalization)
    multiple = input_multiple(checkpoint.card.architecture)
    height, width = (math.ceil(min(side, _CHECK_SIDE) / multiple) * multiple for side in checkpoint.card.native_size)
    sample = torch.zeros(1, checkpoint.card.input_nc, height, width)
    buffer = io.BytesIO()
    try:
        # The exporter keeps its state in globals: two threads exporting at once (two models loaded
        # at once on a fresh cache) failed with its internal AssertionError.
        with _EXPORTING, torch.inference_mode(), warnings.catch_warnings():
            # The TorchScript exporter (dynamo=False) needs only the `onnx` package, where the
            # newer one needs onnxscript too; it announces its deprecation on every call.
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (sample,), buffer, dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={name: {0: "batch", 2: "height", 3: "width"} for name in ("input", "output")},
                              opset_version=17)
    except RuntimeError as e:  # the exporter's errors (OnnxExporterError is one)
        raise VidtransError(f"{checkpoint.path}: ONNX export failed ({first_line(e)}); try another torch or onnx "
                            "version, or run the model with the torch backend") from e
    # Stamped with what it is, so that a cached file is known to be this model's graph.
    stamped = onnx.load_model_from_string(buffer.getvalue())
    entry = stamped.metadata_props.add()
    entry.key, entry.value = _KEY_NAME, graph_key(checkpoint, normalization)
    entry = stamped.metadata_props.add()
    entry.key, entry.value = _SUM_NAME, _NO_SUM
    graph = _with_sum(stamped.SerializeToString())
    # Another batch size and width than the export's, so the dynamic axes are checked too.
    rng = torch.Generator().manual_seed(0)
    probe = torch.rand(2, checkpoint.card.input_nc, height, width + multiple, generator=rng) * 2 - 1
    with torch.inference_mode():
        expected = net(probe).numpy()
    if not np.isfinite(expected).all():
        # Nothing to check against, and no fault of the exporter's: the weights, as the translator
        # tells of them when torch runs them.
        raise VidtransError(f"{checkpoint.path}: the network's output holds NaN or infinite values, its arithmetic "
                            "overflowing in fp32; use another checkpoint (training makes no weights that overflow)")
    options = ort.SessionOptions()
    options.log_severity_level = _QUIET
    try:
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        difference = float(abs(_run_session(session, probe) - expected).max())
    except Exception as e:  # onnxruntime raises its own exception types for graphs it cannot load or run
        raise VidtransError(f"{checkpoint.path}: ONNX Runtime cannot run its exported graph ({first_line(e)}); try "
                            "another onnxruntime version, or run the model with the torch backend") from e
    if not difference <= TOLERANCE:
        raise VidtransError(f"{checkpoint.path}: its ONNX export differs from PyTorch's by {difference:.2g} (more "
                            f"than {TOLERANCE:g}); try another torch or onnx version, or run the model with the torch "
                            "backend")
    return graph, difference


def _run_session(session: Any, x: torch.Tensor) -> np.ndarray:
    """ONNX Runtime's `session` run on `x` (float32 N x C x H x W, CPU); VidtransError in one line
    for what it cannot do: its exceptions (none of them a RuntimeError) would escape as a traceback."""
    try:
        return session.run(None, {"input": x.contiguous().numpy()})[0]
    except Exception as e:  # onnxruntime's own types: Fail, RuntimeException, ...
        frames = f"{x.shape[0]} frame(s) of {x.shape[3]}x{x.shape[2]}"
        if "allocate memory" in str(e) or "bad_alloc" in str(e):
            raise VidtransError(f"out of CPU memory running the ONNX graph on {frames}; pass a smaller model size or "
                                "batch size") from None
        raise VidtransError(f"ONNX Runtime failed running the graph on {frames} ({first_line(e)}); run the model with "
                            "the torch backend") from e


def _sum_entry(value: str) -> bytes:
    """The serialized metadata entry (onnx StringStringEntryProto) `_SUM_NAME`: `value`."""
    key = _SUM_NAME.encode()
    return bytes([0x0A, len(key)]) + key + bytes([0x12, len(value)]) + value.encode()


def _file_sum(graph: bytes | memoryview, at: int) -> str:
    """The sha256 of `graph` with the 64 characters at `at` read as _NO_SUM."""
    view = memoryview(graph)
    digest = hashlib.sha256(view[:at])
    digest.update(_NO_SUM.encode())
    digest.update(view[at + len(_NO_SUM):])
    return digest.hexdigest()


def _sum_at(graph: bytes) -> int | None:
    """Where the value of `graph`'s `_SUM_NAME` entry starts; None when it has none."""
    prefix = _sum_entry(_NO_SUM)[:-len(_NO_SUM)]
    found = graph.rfind(prefix)
    return None if found < 0 else found + len(prefix)


def _with_sum(graph: bytes) -> bytes:
    """`graph` (serialized with its `_SUM_NAME` entry holding _NO_SUM) with the entry holding the file's sum."""
    at = _sum_at(graph)
    return graph[:at] + _file_sum(graph, at).encode() + graph[at + len(_NO_SUM):]


def intact(graph: bytes) -> bool:
    """Whether `graph` (the bytes of a .onnx file vidtrans exported) is as it was written: its
    `_SUM_NAME` entry holds the sha256 of the file. False for a damaged file, and for graphs
    written without one."""
    at = _sum_at(graph)
    return at is not None and graph[at:at + len(_NO_SUM)] == _file_sum(graph, at).encode()


def graph_key(checkpoint: Checkpoint, normalization: str) -> str:
    """What names `checkpoint`'s graph with `normalization`: the sha256 of the weights it holds
    (not the file's, which can change after they were read: a training run saving into the folder
    a run loads from had the old weights' graph cached under the new ones' name, for every later
    run; nor the card's record, which an edit could leave stale) and a hash of everything else that
    shapes the graph. A graph carries it in its metadata, and the cache names files by it."""
    card = checkpoint.card
    shape = json.dumps([card.architecture, card.ngf, card.norm, card.input_nc, card.output_nc, normalization,
                        _GRAPH_VERSION, torch.__version__])
    return f"{_weights_sha256(checkpoint.state_dict)}-{hashlib.sha256(shape.encode()).hexdigest()[:16]}"


def _weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """The sha256 of each tensor's name, type, shape and bytes, in the order of their names."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where exported graphs are kept: $XDG_CACHE_HOME/vidtrans/onnx, by default ~/.cache/vidtrans/onnx."""
    return user_cache() / "onnx"


# The most the cached graphs may take together (a unet_256 ngf 64 graph is 217 MB): every epoch's
# checkpoint of a training run would otherwise add one, and nothing would ever remove them.
CACHE_LIMIT = 2 * 2**30


# A temporary file in the cache (an export being written) untouched for this long was left by a
# process that is gone; a graph is written in seconds, and each write moves the file's time.
_STALE_TEMPORARY = 3600


def _trim_cache(kept: Path) -> None:
    """Remove the least recently used graphs beside `kept` (just written) until the cache holds
    no more than CACHE_LIMIT; `kept` stays, whatever its size. Temporary files (other processes'
    graphs being written, which glob's *.onnx also matches) are left alone, unless a killed
    process left them long ago."""
    graphs = []
    now = time.time()
    for graph in kept.parent.glob("*.onnx"):
        with contextlib.suppress(OSError):
            info = graph.stat()
            if fnmatch.fnmatchcase(graph.name, TEMPORARY_PATTERN):
                if now - info.st_mtime > _STALE_TEMPORARY:
                    graph.unlink()
                continue
            graphs.append((info.st_mtime, info.st_size, graph))
    total = sum(size for _, size, _ in graphs)
    for _, size, graph in sorted(graphs, key=lambda g: g[0]):
        if total <= CACHE_LIMIT:
            break
        if graph != kept:
            with contextlib.suppress(OSError):  # another process may have removed it already
                graph.unlink()
                total -= size


def cached_generator(checkpoint: Checkpoint, normalization: str, sessions: int = 1) -> OnnxGenerator:
    """ONNX Runtime running `checkpoint`'s generator with `normalization` (on `sessions` threads
    at once, see OnnxGenerator), from the graph cached on first use, named by `graph_key`.

    The cache is only a saving: a cached file that does not load, that is damaged (its sum, see
    `intact`, differs), or that is not this model's graph (its stamp differs: a file copied over
    another), is exported again, and where the cache
    cannot be written the graph is exported for this process alone (a warning says so)."""
    key = graph_key(checkpoint, normalization)
    path = cache_dir() / f"{key}.onnx"
    try:
        # A damaged file can still load, with its stamp, and give wrong frames: its sum tells.
        cached = OnnxGenerator(path, sessions) if path.is_file() and intact(path.read_bytes()) else None
    except (OSError, VidtransError):  # a cache folder that cannot be entered, a graph that does not load
        cached = None
    if cached is not None and cached.key == key:
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: the last to go when the cache is trimmed
        return cached
    graph, _ = exported_graph(checkpoint, normalization)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Two processes exporting at once write the same graph: the later one replacing it is harmless.
        write_atomically(path, lambda f: f.write(graph), overwrite=True, what="ONNX graph")
        _trim_cache(path)
    except OSError as e:  # the cache folder cannot be made or entered
        log.warning("%s: cannot keep the exported ONNX graph there (%s), so each run exports it again; fix the "
                    "folder's permissions or set XDG_CACHE_HOME to a writable folder", path.parent, first_line(e))
    except VidtransError as e:  # what is at the graph's path, or the write, refused: the message says which
        log.warning("%s, so the exported ONNX graph is not kept and each run exports it again; set XDG_CACHE_HOME "
                    "to a folder where it can be", str(e).partition("; ")[0])
    return OnnxGenerator(graph, sessions)


class OnnxGenerator:
    """Called like the PyTorch generator: float32 (N, C, H, W) CPU tensor in, the same out.

    `graph`: a .onnx file, or its bytes. Each call runs on a session no other call is using, with
    half the cores (at least one) and idle threads that sleep rather than spin: `run` translates on two
    threads at once beside decoding and encoding, and spinning threads take the cores those need
    (with other work on the machine, one shared session with all the cores ran `run` at 12.3
    frames/s against 15.5 for these; on a quiet machine both ran at 15 frames/s: unet_256 ngf 64 at
    256x256, 2-core Xeon with oneDNN capped at AVX2; benchmarks/README.md). `sessions` of them are
    made now, for the threads to come: a session takes about 0.6 s to make (ngf 64), which in
    the first clip's first batches cost `run` a tenth of its speed on a 120-frame clip. Sessions
    outlive the threads that used them, so each clip's new pipeline threads (`translate_video`
    called again, a batch's next clip) find them made.
    """

    def __init__(self, graph: str | os.PathLike | bytes, sessions: int = 1):
        self._ort = require("onnxruntime", spell_setting("backend", "onnxruntime"))
        self._graph = graph if isinstance(graph, bytes) else str(graph)
        self._threads = half_the_cores()
        self._idle = [self._new_session() for _ in range(max(1, sessions))]
        # Which model's graph this is (`graph_key`); None for a graph vidtrans did not export.
        self.key = self._idle[0].get_modelmeta().custom_metadata_map.get(_KEY_NAME)

    def _new_session(self):
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = _QUIET
        name = "the exported graph" if isinstance(self._graph, bytes) else self._graph
        try:
            return self._ort.InferenceSession(self._graph, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            raise VidtransError(f"{name}: ONNX Runtime cannot load this graph ({first_line(e)}); "
                                "delete it to export it again") from e

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        try:
            session = self._idle.pop()  # atomic: no two calls get the same session
        except IndexError:  # more calls at once than sessions made
            session = self._new_session()
        try:
            return torch.from_numpy(_run_session(session, x))
        finally:
            self._idle.append(session)
