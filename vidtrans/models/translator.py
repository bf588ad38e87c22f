"""Inference: uint8 RGB frames in, uint8 RGB frames out, all pre/post-processing on the device."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidtrans.errors import UsageError, VidtransError
from vidtrans.models.checkpoint import (MIN_SIZE, NORMALIZATIONS, Checkpoint, ModelCard, check_normalization,
                                       check_size)
from vidtrans.models.networks import (flat_frame_degenerate, flat_frame_output, flat_maps_exact, input_multiple,
                                     peak_activations, smallest_input, use_per_sample_stats)
from vidtrans.options import Backend, CompileMode, Precision, shown, spell, spell_setting

PRECISIONS = Precision.values()
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Frames are resampled to and from the working size in chunks of at most this many values
# (64 MB in float32), so a batch of large frames never exists in float32 at full size: eight
# 4096x4096 frames would take 1.6 GB at once, twice per batch.
_RESAMPLE_CHUNK = 1 << 24
# Frames that torch cannot take as they are (read-only, not contiguous) are copied in parts of at
# most this many bytes (or one frame), so such a clip never exists twice in memory.
_COPY_CHUNK = 1 << 28
# Float copies of a frame's input and output a pass holds at the working size besides the network's
# activations: the scaled input, its normalized and padded copies, the channels-last one; the output,
# its scaled copy. Counted in float32 also under autocast, which keeps norms in float32.
_IO_COPIES = 4
_FLOAT_BYTES = 4
# ONNX Runtime's CPU graph holds more at its peak than PyTorch eager, whose activations the estimate
# counts: measured 1.10-1.35x it for resnet_6blocks at 2048-4096 px, batches of 1-4 (PyTorch: 0.93x).
# Counted as PyTorch's, passes sized to the memory available ran out of it.
_ORT_MEMORY = 1.5
# Batches a GPU works on at once, each on its own CUDA stream: one batch's copies to and from the
# host overlap another's kernels, where on one stream every batch is a round trip the GPU idles
# through. More would only queue on the device and hold its memory.
CUDA_IN_FLIGHT = 2
_thread_streams = threading.local()
# Outputs for flat frames kept per translator (each a frame's float32 output at the working size).
_FLAT_CACHED = 16
log = logging.getLogger(__name__)
# Whether the slowness of bf16 on a CPU that does not multiply it in hardware was told (once per process: batch workers each load).
_emulated_bf16_told = False


def resolve_device(device: str | torch.device | None = "auto", setting: str = "device") -> torch.device:
    """The torch device asked for (None: auto, as in whisper's load_model); UsageError for one this
    machine does not have, as for one vidtrans does not run on: the option makes no sense here
    either way. `setting`: the option the messages tell to change (a parameter name, spelled as
    the caller does)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as e:
        raise UsageError(f"unknown device {shown(device)}; use auto, cpu, cuda or cuda:N") from e
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {shown(device)} asked for, but this torch has no CUDA "
                             f"(torch {torch.__version__}); use {spell_setting(setting, 'cpu')}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UsageError(f"device {shown(device)} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                             f"visible; use {spell_setting(setting, 'cuda')} or one of those")
    elif resolved.type != "cpu":
        raise UsageError(f"unsupported device {shown(device)}; use auto, cpu, cuda or cuda:N")
    return resolved


def check_precision(precision: str) -> None:
    """UsageError for a precision that is none of PRECISIONS."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise UsageError(f"unknown precision {shown(precision)}; use one of {', '.join(PRECISIONS)}")


def resolve_precision(precision: str, device: torch.device, card: ModelCard, per_sample: bool) -> str:
    """The precision to run in, for a model whose norms use each frame's own statistics or not
    (`per_sample`: normalization "sample"); UsageError for one that makes no sense (unknown, fp16 on a CPU)."""
    check_precision(precision)
    degenerate = flat_frame_degenerate(card.architecture, card.norm, per_sample)
    if precision == "auto":
        # The card's check measures held-out frames and one step of a temporal model's recurrence.
        # Where a ResNet normalizes a map by its own statistics (flat_frame_degenerate), a frame of
        # one colour but for a few pixels a grey level off (a fade, a dark scene) has maps varying
        # below half precision's resolution, which each norm amplifies: a trained resnet_6blocks
        # whose card allows bf16 (55 dB held out), given black with a 2x2 patch at grey 1, came out
        # 153 grey levels from exact arithmetic in bf16 (PSNR 24 dB), 32 in fp16, within 1 in fp32; and a
        # temporal ResNet, its output fed back, drifted from fp32 by 4 grey levels on its first
        # frame, 49 by its twelfth.
        if not card.half_precision or degenerate:
            return "fp32"
        if device.type == "cuda":
            return "fp16"
        # CPUs with AMX or AVX-512 BF16 multiply bf16 in hardware: about twice the fp32 speed, and
        # the shipped model's frames stay within PSNR 56 dB of fp32. Elsewhere bf16 is emulated and slower.
        return "bf16" if _cpu_multiplies_bf16() else "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise UsageError(f"fp16 is not supported on the CPU; use {spell_setting('precision', 'fp32', 'bf16')}")
    if precision == "bf16" and device.type == "cpu" and not _cpu_multiplies_bf16():
        global _emulated_bf16_told
        if not _emulated_bf16_told:
            _emulated_bf16_told = True
            log.warning("bf16 runs emulated on this CPU (no AMX or AVX-512 BF16, or oneDNN capped below them): slower "
                        "than fp32, which it does not beat in quality either; use %s",
                        spell_setting("precision", "fp32"))
    if degenerate and precision != "fp32":
        # Asked for by name, so honoured; but unlike auto, which avoids it, it spoils fades and dark scenes.
        norms = "instance norm" if card.norm == "instance" else "batch norm with normalization sample"
        log.warning("%s takes each frame's own statistics in its norms (%s), where %s turns near-flat frames (fades, "
                    "dark scenes) into noise; running %s as asked; use %s", card.architecture, norms, precision,
                    precision, spell_setting("precision", "fp32"))
    return precision


def resolve_backend(backend: str, device: torch.device, precision: str, temporal: bool = False) -> str:
    """What runs the generator, for the device and the precision asked for (before "auto" is
    resolved) and a model that is `temporal` or not; UsageError for a backend that cannot run them."""
    from vidtrans.models import onnx_backend

    backend = Backend.parse(backend, "backend")
    if backend == Backend.AUTO:
        # Where the CPU multiplies bf16 in hardware (about twice fp32's speed), torch wins; elsewhere
        # ONNX Runtime's fp32 beats torch's (about 1.3-1.6x on an AVX2-only EPYC). Not for a temporal model: each output
        # is fed back in, so the backends' 1e-6 differences grow along a clip (to tens of grey levels),
        # and its frames, translated one at a time, gain less from ONNX Runtime's batches.
        faster = device.type == "cpu" and precision in ("auto", "fp32") and not _cpu_multiplies_bf16() and not temporal
        return "onnxruntime" if faster and onnx_backend.available() else "torch"
    if backend == Backend.ONNXRUNTIME:
        torch_backend = spell_setting("backend", "torch")
        if device.type != "cpu":
            raise UsageError(f"the onnxruntime backend runs on the CPU only, not {device}; use "
                             f"{spell_setting('device', 'cpu')} or {torch_backend}")
        if precision not in ("auto", "fp32"):
            raise UsageError(f"the onnxruntime backend runs fp32 only, not {precision}; use "
                             f"{spell_setting('precision', 'fp32')} or {torch_backend}")
        onnx_backend.require("onnxruntime", spell_setting("backend", "onnxruntime"))
    return backend.value


def device_for_backend(device: str | torch.device | None, backend: str) -> str | torch.device | None:
    """The device to resolve for `backend`: ONNX Runtime runs on the CPU only, so with it the default
    device ("auto", None) is the CPU, not a GPU it would refuse (every command's --backend onnxruntime
    failed on a CUDA machine); a device named is kept, for `resolve_backend` to refuse."""
    if (device is None or str(device) == "auto") and Backend.parse(backend, "backend") == Backend.ONNXRUNTIME:
        return "cpu"
    return device


def backend_for_compile(backend: str, compile: str) -> str:
    """The backend to load a model with for a run compiling as `compile` says: torch.compile needs
    torch, so `auto` means torch under compile on, and onnxruntime with compile on is a UsageError."""
    backend = Backend.parse(backend, "backend")
    if CompileMode.parse(compile, "compile") != CompileMode.ON:
        return backend.value
    if backend == Backend.ONNXRUNTIME:
        raise UsageError(f"{spell_setting('compile', 'on')} compiles with torch, not onnxruntime (which optimizes its "
                         f"graph itself); use {spell_setting('backend', 'torch')} or drop {spell('compile')}")
    return Backend.TORCH.value


class RecurrentState:
    """What a temporal model carries from one frame of a clip to the next: the network's previous
    output as it made it (float (1, 3, h, w) in [-1, 1] at the working size, on the device), or
    None before the clip's first frame, which then sees the card's "first" image.

    Kept by whoever translates the clip (a pipeline stage, live's frame processor), never by the
    Translator, which several clips may share at once (`vidtrans batch`). Hand it to the next
    `translate_clip` call to go on with the clip: the frames are those of one call over the whole.
    `smoothed`: where output smoothing goes on from in the clip's next part (`translate_video`):
    the last frame (unrounded, float32, when smoothed: `Smoother.carried`) and what the model saw
    for it, or None.
    """

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None
        self.smoothed: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Start again, as at a clip's first frame."""
        self.previous = self.smoothed = None

    def copy(self) -> RecurrentState:
        """A state going on from here on its own (translating replaces `previous` and `smoothed`,
        never changes them)."""
        other = RecurrentState()
        other.previous, other.smoothed = self.previous, self.smoothed
        return other


def check_state(state: object) -> None:
    """UsageError for a `state` that is neither a RecurrentState nor None (a clip's start)."""
    if state is not None and not isinstance(state, RecurrentState):
        raise UsageError(f"state must be a RecurrentState (what translating an earlier part of the clip left), "
                         f"or None; not {type(state).__name__}")


# A container's memory limit, use, and the page cache within that use that the kernel reclaims
# (cgroup v2, then v1; as `docker stats` counts): the host's MemAvailable does not see the limit.
_CGROUP_MEMORY = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
                   "inactive_file"),
                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                   "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"))


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: torch.OutOfMemoryError on a GPU, a plain
    RuntimeError from the CPU allocator, MemoryError from NumPy."""
    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or \
        (isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def memory_name(device: torch.device) -> str:
    """Whose memory a device's tensors take, for messages: "CPU" or "cuda:0"."""
    return "CPU" if device.type == "cpu" else str(device)


def available_memory(device: torch.device) -> int | None:
    """Bytes a forward pass on `device` can still take; None where this is not known."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # What torch's caching allocator holds without using it is this process's to take too.
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    host = _host_available_memory()
    for limit_file, usage_file, stat_file, cache_key in _CGROUP_MEMORY:
        try:
            limit, usage = (int(Path(f).read_text().strip()) for f in (limit_file, usage_file))
            stats = dict(line.split() for line in Path(stat_file).read_text().splitlines())
        except (OSError, ValueError):  # absent, or "max": no limit there
            continue
        free = max(0, limit - usage + int(stats.get(cache_key, 0)))
        return free if host is None else min(host, free)
    return host


def _host_available_memory() -> int | None:
    # Linux's MemAvailable counts the page cache the kernel hands back when asked; free pages
    # (SC_AVPHYS_PAGES) leave it out, and on a machine that has read many files are a small part.
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # names this system does not have
        return None


# oneDNN's instruction sets, oldest first (`ONEDNN_MAX_CPU_ISA` names, with their aliases).
_ONEDNN_ISAS = (("SSE41",), ("AVX",), ("AVX2",), ("AVX2_VNNI",), ("AVX2_VNNI_2",), ("AVX512_CORE",),
                ("AVX512_CORE_VNNI",), ("AVX512_CORE_BF16",), ("AVX10_1_512", "AVX512_CORE_FP16"),
                ("AVX10_1_512_AMX", "AVX512_CORE_AMX"), ("AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16"),
                ("AVX10_2_512",), ("AVX10_2_512_AMX_2",))
# What multiplies bf16 in hardware, fastest first: each as torch's capability and the instruction
# set oneDNN must be allowed for it.
_BF16_UNITS = (("amx_bf16", "AVX512_CORE_AMX"), ("avx512_bf16", "AVX512_CORE_BF16"))


def _cpu_multiplies_bf16() -> bool:
    """Whether torch's convolutions multiply bf16 in hardware here: the CPU has AMX or AVX-512 BF16
    (Intel since Cooper Lake, AMD since Zen 4) and oneDNN may use it. There bf16 runs at about twice
    fp32's speed (1.6-1.9x on an AMD EPYC with AVX-512 BF16, 2x on a Xeon with AMX).

    ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA), set by users and containers to keep
    oneDNN off newer instructions, caps what oneDNN uses whatever the CPU has; capped below them,
    bf16 is emulated and 2-40x slower than fp32 (a 4x4 convolution at AVX2: 428 against 63 ms).
    """
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # absent in older torch
    capabilities = get_capabilities() if get_capabilities else {}
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    allowed = _onednn_isa_rank(cap)
    return any(capabilities.get(unit) and _onednn_isa_rank(isa) <= allowed for unit, isa in _BF16_UNITS)


def _onednn_isa_rank(name: str) -> int:
    """Where an instruction set stands in _ONEDNN_ISAS; no cap (empty, ALL, DEFAULT) or a name oneDNN
    does not know (which it ignores) ranks above them all."""
    return next((rank for rank, names in enumerate(_ONEDNN_ISAS) if name in names), len(_ONEDNN_ISAS))


class Translator:
    """A generator ready for frames. Build it with `vidtrans.load_model`.

    `translate(frames)` takes uint8 RGB (N, H, W, 3) and returns the same shape: the frames the
    network sees, so for a pose model (input_kind "pose") pose maps, which it does not detect
    (`vidtrans.translate_video` detects the dancer and draws them). Frames are scaled
    (aspect ratio kept) so their longer side matches the model's native size, or `size` when given,
    padded up to the size the network accepts, translated, cropped and scaled back. Frames at that
    size are not resampled. With `normalization="sample"` every frame is normalized with its own
    statistics, so a batch gives the same frames as one-at-a-time translation.

    `backend` "onnxruntime" runs the generator, exported to ONNX, in ONNX Runtime (CPU, fp32)
    instead of PyTorch; everything around it is the same code ("auto": see `resolve_backend`).

    `card` is the checkpoint's card as this translator applies it: with `size`, its native size
    (aspect kept; pose maps are drawn at it) and the target's pose statistics are scaled to `size`.

    A temporal model (`temporal`, from the card) also sees its own previous output, so the frames
    given are consecutive frames of one clip, translated in order one at a time: `translate` starts
    a clip afresh, `translate_clip` goes on from a `RecurrentState`.
    """

    def __init__(self, checkpoint: Checkpoint, device: str | torch.device = "auto", precision: str = "auto",
                 normalization: str | None = None, size: int | None = None, backend: str = "auto"):
        if not isinstance(checkpoint, Checkpoint):
            raise UsageError(f"Translator takes a loaded Checkpoint, not {type(checkpoint).__name__}; for a model "
                             "name or path use vidtrans.load_model(...)")
        self.size = None if size is None else check_size(size)
        self.card = checkpoint.card if size is None else _card_at(checkpoint.card, size)
        self.name = checkpoint.name
        self.files = checkpoint.files  # what outputs must never replace
        # The target's empty scene (RGB, native size) or None.
        self.background = _fit_image(checkpoint.background, self.native_size)
        self.device = resolve_device(device_for_backend(device, backend))
        self.normalization = self.card.normalization if normalization is None else normalization
        if self.normalization not in NORMALIZATIONS:
            raise UsageError(f"unknown normalization {shown(self.normalization)}; use sample or running")
        if normalization is not None:  # what the card says stands; one asked for must do something
            check_normalization(self.card, normalization, self.name)
        per_sample = self.normalization == "sample"
        self.backend = resolve_backend(backend, self.device, precision, bool(self.card.temporal))
        onnx_net = self._onnx_generator(checkpoint, backend) if self.backend == "onnxruntime" else None
        self.precision = "fp32" if self.backend == "onnxruntime" else \
            resolve_precision(precision, self.device, self.card, per_sample)
        # A temporal card that starts clips from background.png comes with it: loading checks that.
        self.temporal = self.card.temporal
        net = checkpoint.build().eval()
        use_per_sample_stats(net, per_sample)
        # Flat frames (black, at a fade) through a ResNet come out as the picture exact arithmetic
        # gives, computed once per size on a copy of the network (see flat_frame_degenerate).
        degenerate = flat_frame_degenerate(self.card.architecture, self.card.norm, per_sample)
        self._flat_net = flat_maps_exact(copy.deepcopy(net)) if degenerate and not self.temporal else None
        # Other networks in half precision take flat frames in float32, once per colour and size: a
        # flat frame's maps vary only by what zero padding gives at their edges, tiny beside the maps'
        # own values, which half precision rounds away. The shipped pose2person in bf16 gave black 15
        # grey levels from float32 (1 % of pixels over 4) and a fade's grey 30 up to 20, against at
        # most 5 on pose maps with a person. Frames that are nearly flat are left as they are: there
        # one grey level of noise moves this model's float32 output by up to 136 levels itself.
        self._flat_in_fp32 = not degenerate and not self.temporal and self.precision != "fp32"
        self._flat_outputs: dict[tuple[Any, ...], torch.Tensor] = {}
        self._flat_lock = threading.Lock()
        self.multiple = input_multiple(self.card.architecture)
        self.smallest_side = smallest_input(self.card.architecture)
        # oneDNN's convolutions are fastest channels-last; ONNX Runtime takes plain NCHW arrays.
        cpu_torch = self.device.type == "cpu" and self.backend == "torch"
        memory_format = torch.channels_last if cpu_torch else torch.contiguous_format
        # Only the generator call changes: the same tensors go in and come out.
        self.net = onnx_net if onnx_net is not None else net.to(self.device, memory_format=memory_format)
        self.memory_format = memory_format
        self.in_flight = CUDA_IN_FLIGHT if self.device.type == "cuda" else 1
        self._in_flight = threading.BoundedSemaphore(self.in_flight)
        if self.device.type == "cuda":
            # The weights were copied on the default stream; batches run on streams of their own.
            torch.cuda.synchronize(self.device)
        self._compiled = None
        self._compiled_shape: tuple[int, ...] | None = None
        self._compile_lock = threading.Lock()
        # Bytes the CPU passes running now were sized to take (`_cpu_memory_for`): the pipeline's two
        # translation workers, and a batch's clips, each size a pass by the memory available, and
        # measured at once each took it all (two passes of 15 GB on a 23 GB machine, killed).
        self._cpu_memory = threading.Condition()
        self._cpu_reserved = 0

    def _onnx_generator(self, checkpoint: Checkpoint, backend: str):
        """ONNX Runtime running `checkpoint`'s generator (see `onnx_backend.cached_generator`); None,
        with a warning and the backend set to torch, where `backend` is auto and the graph cannot be
        exported or loaded: auto must not fail where its user never asked for ONNX."""
        from vidtrans.models.onnx_backend import cached_generator
        from vidtrans.runner import TRANSLATION_THREADS

        try:
            return cached_generator(checkpoint, self.normalization, sessions=TRANSLATION_THREADS)
        except VidtransError as e:
            if Backend.parse(backend, "backend") != Backend.AUTO:
                raise
            log.warning("%s, so %s runs torch", str(e).partition("; ")[0], spell_setting("backend", "auto"))
            self.backend = Backend.TORCH.value
            return None

    @property
    def native_size(self) -> tuple[int, int]:
        return tuple(self.card.native_size)

    @property
    def input_kind(self) -> str:
        return self.card.input_kind

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """Size the network runs at for frames of this size (before padding)."""
        box_h, box_w = (self.size, self.size) if self.size else self.native_size
        scale = min(box_h / height, box_w / width)
        if math.isclose(scale, 1.0):
            return height, width
        return max(1, round(height * scale)), max(1, round(width * scale))

    def padded_side(self, side: int) -> int:
        """A working height or width padded up to what the network takes: a multiple of what it
        halves by, and its smallest input where the frame is very wide or tall (300x2 at 64 is
        working 64x1)."""
        return max(self.smallest_side, side + -side % self.multiple)

    def frame_memory(self, height: int, width: int) -> int:
        """About how many bytes translating one frame of height x width takes at its peak (on the device)."""
        work_h, work_w = self.working_size(height, width)
        padded_h, padded_w = self.padded_side(work_h), self.padded_side(work_w)
        # The input has 3 channels before a one-channel model's grey; the output 3 after it.
        channels = max(self.card.input_nc, 3) + 3
        values = peak_activations(self.card.architecture, self.card.ngf, padded_h, padded_w)
        values += _IO_COPIES * channels * padded_h * padded_w
        if self.backend == "onnxruntime":
            values = int(values * _ORT_MEMORY)
        return values * _FLOAT_BYTES + height * width * 3  # and the uint8 output frame

    def frames_per_pass(self, count: int, height: int, width: int, taken: int = 0) -> int:
        """How many of `count` frames of height x width one forward pass can take in the memory
        available, less `taken` bytes other passes are about to use: all of them, or fewer;
        VidtransError naming the size when not even one fits."""
        available = available_memory(self.device)
        per_frame = self.frame_memory(height, width)
        if available is None:
            return count
        available = max(0, available - taken)
        share = available // self.in_flight  # the other batches in flight may need as much
        if per_frame * count <= share:
            return count
        if per_frame <= available:
            return max(1, share // per_frame)
        work_h, work_w = self.working_size(height, width)
        # Memory grows with the working area, so this size is about the largest that fits.
        fits = int(max(work_h, work_w) * math.sqrt(available / per_frame)) // 16 * 16
        fix = f"pass a smaller size (at most about {fits})" if fits >= MIN_SIZE else "free memory or use another device"
        raise VidtransError(f"translating {width}x{height} frames at {work_w}x{work_h} needs about "
                            f"{per_frame / 2**30:.1f} GiB of {memory_name(self.device)} memory per frame, but "
                            f"{available / 2**30:.1f} GiB "
                            f"is available; {fix}")

    @contextlib.contextmanager
    def _cpu_memory_for(self, count: int, height: int, width: int) -> Iterator[int]:
        """`frames_per_pass` for a pass on the CPU that runs beside others (held until it ends):
        sized by what the passes already running leave, and, where not one frame fits beside them,
        waiting for them to end. A GPU bounds its passes by `in_flight` instead."""
        if self.device.type == "cuda":
            yield self.frames_per_pass(count, height, width)
            return
        per_frame = self.frame_memory(height, width)
        with self._cpu_memory:
            while True:
                try:
                    step = self.frames_per_pass(count, height, width, taken=self._cpu_reserved)
                    break
                except VidtransError:
                    if not self._cpu_reserved:  # not even alone: refused, naming the size
                        raise
                    self._cpu_memory.wait()
            self._cpu_reserved += step * per_frame
        try:
            yield step
        finally:
            with self._cpu_memory:
                self._cpu_reserved -= step * per_frame
                self._cpu_memory.notify_all()

    def compile(self) -> None:
        """Use torch.compile for the whole device-side step (pays off on long clips only).

        Every new input shape costs a full compilation (10-20 s on a CPU), so batches smaller than
        the first one are padded up to it, and the first call compiles alone: concurrent first
        calls from parallel workers would each compile. Does nothing with the onnxruntime backend,
        which optimizes its graph when it loads it (and which torch.compile cannot trace).
        """
        if self.backend == "onnxruntime":
            return
        self._compiled = torch.compile(self._run, dynamic=False)

    @property
    def compiled(self) -> bool:
        """Whether `compile` made the step compiled (which pads batches smaller than its first)."""
        return self._compiled is not None

    def translate(self, frames: np.ndarray) -> np.ndarray:
        return self.translate_clip(frames, RecurrentState())

    @torch.inference_mode()
    def translate_clip(self, frames: np.ndarray, state: RecurrentState | None) -> np.ndarray:
        """`translate` for consecutive frames of one clip: a temporal model goes on from `state`
        (updated, so that the next call continues the clip; None: the clip's start); other models
        do not use it."""
        check_state(state)
        frames = _frames_array(frames)
        if frames.ndim == 3:
            return self.translate_clip(frames[None], state)[0]
        if 0 in frames.shape[1:3]:
            raise VidtransError(f"translate got frames of {frames.shape[2]}x{frames.shape[1]} pixels, which have no "
                                "image to translate; pass frames at least 1x1")
        if len(frames) == 0:
            return frames.copy()
        if self.device.type != "cuda":
            if frames.flags.writeable and frames.flags.c_contiguous:
                return self.translate_tensor(torch.from_numpy(frames), state).numpy()
            # torch takes contiguous arrays only, and warns about arrays it may not write to (it does
            # not write to these): a copy, made a part at a time, so that a read-only memory-mapped
            # clip (np.load(..., mmap_mode="r")) is never held in memory whole a second time.
            step = min(self.frames_per_pass(*frames.shape[:3]), max(1, _COPY_CHUNK // frames[0].nbytes))
            if step >= len(frames):
                return self.translate_tensor(torch.from_numpy(np.array(frames, order="C")), state).numpy()
            out = np.empty(frames.shape, dtype=np.uint8)
            # One clip through all the parts (a temporal model's state goes on from part to part),
            # given back to the caller's state only when all are done, as one call's is.
            going_on = RecurrentState() if state is None else state.copy()
            for i in range(0, len(frames), step):
                part = torch.from_numpy(np.array(frames[i:i + step], order="C"))
                out[i:i + step] = self.translate_tensor(part, going_on).numpy()
            if state is not None:
                state.previous = going_on.previous
            return out
        # Pinned staging buffers make both copies asynchronous, so each batch costs one sync.
        # PyTorch's caching host allocator recycles them once the GPU is done: a small ring of
        # pinned buffers without bookkeeping here, and results stay valid while callers hold them.
        # Callers on several threads (the pipeline's translation workers, clips of a batch) each
        # get their thread's stream, at most `in_flight` at once.
        stream = _thread_stream(self.device)
        with self._in_flight, torch.cuda.stream(stream):
            upload = torch.empty(frames.shape, dtype=torch.uint8, pin_memory=True)
            upload.numpy()[...] = frames
            result = self.translate_tensor(upload.to(self.device, non_blocking=True), state)
            download = torch.empty(result.shape, dtype=torch.uint8, pin_memory=True)
            download.copy_(result, non_blocking=True)
            stream.synchronize()
        return download.numpy()

    @torch.inference_mode()
    def translate_tensor(self, frames: torch.Tensor, state: RecurrentState | None = None) -> torch.Tensor:
        """Device-side version of `translate_clip`: uint8 (N, H, W, 3) tensor in, same out, on
        self.device (`state` None: a clip's start)."""
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4 \
                or frames.shape[-1] != 3:
            got = f"a {frames.dtype} tensor of shape {tuple(frames.shape)}" if isinstance(frames, torch.Tensor) else \
                type(frames).__name__
            raise UsageError(f"translate_tensor expects a uint8 tensor of RGB frames, shape (N, H, W, 3), got {got}; "
                             "translate takes NumPy arrays")
        if not self.temporal:
            with self._cpu_memory_for(*frames.shape[:3]) as step:
                if step >= len(frames):
                    return self._call(frames, None)[0]
                # Frames come out the same in a batch of any size, so smaller passes change nothing.
                return torch.cat([self._call(part, None)[0] for part in frames.split(step)])
        self.frames_per_pass(1, *frames.shape[1:3])  # refuses a size where not even one frame fits
        state = RecurrentState() if state is None else state
        work_size = self.working_size(*frames.shape[1:3])
        if state.previous is not None and tuple(state.previous.shape[2:]) != work_size:
            raise VidtransError(f"a temporal model's state is for frames translated at {state.previous.shape[3]}x"
                                f"{state.previous.shape[2]}, these are at {work_size[1]}x{work_size[0]}; "
                                "start a new state for each clip")
        outputs, previous = [], state.previous
        for frame in frames.split(1):
            if previous is None:
                previous = self._first_previous(*work_size, frames.device)
            output, previous = self._call(frame, previous)
            outputs.append(output)
        # Only now: a call stopped part way (Ctrl-C, an error) leaves the state as it was, so that
        # the same call again gives the same frames.
        state.previous = previous
        return torch.cat(outputs)

    def _first_previous(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """What a temporal model sees as its previous output before a clip's first frame."""
        if self.temporal["first"] == "black":
            return torch.full((1, 3, height, width), -1.0, device=device)
        background = torch.from_numpy(self.background).to(device).permute(2, 0, 1)[None].float()
        if tuple(background.shape[2:]) != (height, width):
            background = _resize(background, height, width)
        return background / 127.5 - 1.0

    def _call(self, frames: torch.Tensor, previous: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`_run`, compiled once `compile` was called; see `_run` for what it returns. Running out of
        memory despite `frames_per_pass` (a limit it could not see) is one line, not a traceback, and
        so is an output that is not finite."""
        try:
            output, generated = self._call_network(frames, previous)
        except RuntimeError as e:
            if not out_of_memory(e):
                raise
            height, width = frames.shape[1:3]
            raise VidtransError(f"out of {memory_name(self.device)} memory translating {len(frames)} frame(s) of "
                                f"{width}x{height}; "
                                "pass a smaller model size or batch size") from None
        # Rounding to uint8 makes NaN a flat grey or black frame: a video of them, told as done.
        if not bool(torch.isfinite(generated).all()):
            fix = f"use {spell_setting('precision', 'fp32')}" if self.precision != "fp32" else \
                "use another checkpoint (training makes no weights that overflow)"
            raise VidtransError(f"{self.name}: the network's output holds NaN or infinite values, its arithmetic "
                                f"overflowing in {self.precision}; {fix}")
        return output, generated

    def _call_network(self, frames: torch.Tensor, previous: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self._compiled is None:
            return self._run(frames, previous, self._flat_output(frames))
        if self._compiled_shape is None:
            with self._compile_lock:
                if self._compiled_shape is None:
                    result = self._run_compiled(frames, previous, self._compiled_flat_output(frames))
                    self._compiled_shape = tuple(frames.shape)
                    return result
        count = len(frames)
        short = self._compiled_shape[0] - count
        # Temporal models translate one frame at a time, so only other models' batches are short.
        if short > 0 and tuple(frames.shape[1:]) == self._compiled_shape[1:]:
            frames = torch.cat([frames, frames[-1:].expand(short, -1, -1, -1)])
        output, generated = self._run_compiled(frames, previous, self._compiled_flat_output(frames))
        return output[:count], generated[:count]

    def _compiled_flat_output(self, frames: torch.Tensor) -> torch.Tensor | None:
        """`_flat_output` as the compiled graph takes it: a tensor of one shape whether or not a
        frame is flat (zeros, which no frame takes, when none is), since None, then a tensor, compiled
        the graph a second time at a clip's first flat frame (15-20 s for pose2person)."""
        output = self._flat_output(frames)
        if output is not None or (self._flat_net is None and not self._flat_in_fp32):
            return output
        work_h, work_w = self.working_size(*frames.shape[1:3])
        rows = 1 if self._flat_net is not None else len(frames)  # one for all of a ResNet's, one per frame otherwise
        return torch.zeros((rows, self.card.output_nc, self.padded_side(work_h), self.padded_side(work_w)),
                           device=frames.device)

    def _flat_output(self, frames: torch.Tensor) -> torch.Tensor | None:
        """What the network gives the flat frames among `frames` where it cannot compute it itself
        (float32 at the padded working size: one for all of a ResNet's, one per frame otherwise), or
        None where no frame is flat or the network needs no help. Computed once per size (and colour)."""
        if self._flat_net is None and not self._flat_in_fp32:
            return None
        flat = _flat(frames)
        if not bool(flat.any()):
            return None
        height, width = frames.shape[1:3]
        if self._flat_net is not None:
            return self._flat_cached((height, width), lambda: self._flat_exact(height, width))
        outputs = [self._flat_cached((height, width, *frames[i, 0, 0].tolist()), lambda i=i: self._fp32(frames[i:i + 1]))
                   for i in torch.nonzero(flat).flatten().tolist()]
        # Frames that are not flat keep the network's own output: any values do beside them.
        output = outputs[0].new_zeros((len(frames), *outputs[0].shape[1:]))
        output[flat] = torch.cat(outputs)
        return output

    def _flat_cached(self, key: tuple[Any, ...], compute) -> torch.Tensor:
        with self._flat_lock:
            if key not in self._flat_outputs:
                if len(self._flat_outputs) >= _FLAT_CACHED:
                    # A fade brings a colour per frame that never comes back: the oldest goes.
                    del self._flat_outputs[next(iter(self._flat_outputs))]
                self._flat_outputs[key] = compute()
            return self._flat_outputs[key]

    def _flat_exact(self, height: int, width: int) -> torch.Tensor:
        """A ResNet's output for a flat frame (see `networks.flat_frame_output`), on the CPU copy."""
        work_h, work_w = self.working_size(height, width)
        padded = self.padded_side(work_h), self.padded_side(work_w)
        return flat_frame_output(self._flat_net, self.card.input_nc, *padded).to(self.device)

    def _fp32(self, frames: torch.Tensor) -> torch.Tensor:
        """The network's float32 output for frames (N, H, W, 3) at the padded working size: weights
        stay float32 under autocast, so this is the network without it."""
        return self.net(self._network_input(frames, None)).float()

    def _run_compiled(self, frames: torch.Tensor, previous: torch.Tensor | None, flat_output: torch.Tensor | None):
        # Freezing folds the weights into the graph as constants, so oneDNN keeps them prepacked:
        # most of compilation's gain on a CPU (3.5x over eager for bf16 on AMX). Compilation
        # happens on a call, so the setting is scoped to calls rather than set process-wide
        # (torch.compile's `options` does not reach it).
        with torch._inductor.config.patch(freezing=True):
            return self._compiled(frames, previous, flat_output)

    def _run(self, frames: torch.Tensor, previous: torch.Tensor | None,
             flat_output: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames (N, H, W, 3) -> (uint8 output frames, the network's float output at the
        working size); `previous`: a temporal model's previous output, beside the frames;
        `flat_output`: what the network's output is for a flat frame, where it cannot compute it."""
        n, height, width, _ = frames.shape
        work_h, work_w = self.working_size(height, width)
        resample = (work_h, work_w) != (height, width)
        chunks = _chunks(frames)
        pad_h = self.padded_side(work_h) - work_h
        pad_w = self.padded_side(work_w) - work_w
        x = self._network_input(frames, previous)
        if self.precision == "fp32":
            y = self.net(x)
        else:
            with torch.autocast(self.device.type, dtype=_DTYPES[self.precision]):
                y = self.net(x)
        y = y.float()
        if flat_output is not None:
            y = torch.where(_flat(frames)[:, None, None, None], flat_output, y)
        generated = y[:, :, pad_h // 2: pad_h // 2 + work_h, pad_w // 2: pad_w // 2 + work_w]
        y = generated.expand(-1, 3, -1, -1) if generated.shape[1] == 1 else generated
        y = (y + 1.0) * 127.5
        out = torch.empty((n, height, width, 3), dtype=torch.uint8, device=frames.device)
        for chunk in chunks:
            part = _resize(y[chunk], height, width) if resample else y[chunk]
            out[chunk] = part.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return out, generated

    def _network_input(self, frames: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """uint8 frames (N, H, W, 3) as the network takes them: at the padded working size, in
        [-1, 1], beside `previous` (a temporal model's previous output)."""
        height, width = frames.shape[1:3]
        work_h, work_w = self.working_size(height, width)
        resample = (work_h, work_w) != (height, width)

        def model_input(chunk: slice) -> torch.Tensor:
            x = _as_float(_grey(frames[chunk]) if self.card.input_nc == 1 else frames[chunk])
            return _resize(x, work_h, work_w) if resample else x

        x = torch.cat([model_input(chunk) for chunk in _chunks(frames)])
        pad_h = self.padded_side(work_h) - work_h
        pad_w = self.padded_side(work_w) - work_w
        x = x / 127.5 - 1.0
        if previous is not None:
            x = torch.cat([x, previous], dim=1)
        if pad_h or pad_w:
            # Replicate keeps borders natural for photos and black for pose maps, at any pad size.
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="replicate")
        return x.contiguous(memory_format=self.memory_format)


def _chunks(frames: torch.Tensor) -> list[slice]:
    """Slices of frames (N, H, W, 3) resampled at once: resampling is per frame, so chunks give
    exactly the frames of one pass over the batch."""
    step = max(1, _RESAMPLE_CHUNK // (frames.shape[1] * frames.shape[2] * 3))
    return [slice(i, i + step) for i in range(0, len(frames), step)]


def _flat(frames: torch.Tensor) -> torch.Tensor:
    """(N,) bool: which of uint8 frames (N, H, W, 3) have every pixel alike."""
    return (frames == frames[:, :1, :1]).flatten(1).all(1)


def _frames_array(frames: Any) -> np.ndarray:
    """`frames` (what `translate` was given) as a uint8 array (N, H, W, 3) or (H, W, 3), or a
    UsageError naming what it is and how to make it one."""
    dtype = None  # the element type as the caller made it, where NumPy cannot hold it (bfloat16)
    if isinstance(frames, torch.Tensor):
        if frames.device.type != "cpu":
            raise UsageError(f"translate takes frames in host memory (NumPy); frames on {frames.device} go to "
                             "translate_tensor")
        if frames.layout != torch.strided:
            raise UsageError(f"translate takes dense frames, not a {frames.layout} tensor; pass x.to_dense()")
        if frames.is_quantized or frames.dtype.is_floating_point and \
                frames.dtype not in (torch.float16, torch.float32, torch.float64):
            # NumPy has no bfloat16, float8 or quantized types: read as floats for the message below.
            dtype = str(frames.dtype).removeprefix("torch.")
            frames = frames.dequantize() if frames.is_quantized else frames.detach().float()
    if isinstance(frames, (list, tuple)) and len({np.asarray(f).dtype for f in frames}) > 1:
        # NumPy would make them one type: a uint8 frame with a mask gives 0/1 pixels, with floats 0-255 floats.
        kinds = sorted({str(np.asarray(f).dtype) for f in frames})
        raise UsageError(f"translate got frames of different types ({', '.join(kinds)}); pass them all as uint8 RGB")
    try:
        array = np.asarray(frames)
    except ValueError:  # a list of arrays that NumPy cannot stack
        raise UsageError("translate got frames of different sizes; translate each size in a call of its own") from None
    except TypeError:  # what NumPy cannot read as an array at all
        raise UsageError(f"translate expects uint8 RGB frames of shape (N, H, W, 3); pass a NumPy uint8 array, "
                         f"not {type(frames).__name__}") from None
    if array.size == 0 and array.ndim < 3:
        raise UsageError(f"translate got no frames ({shown(frames)}); pass uint8 RGB frames, (N, H, W, 3)")
    shape, fix = array.shape, ""
    if array.dtype != np.uint8 and array.dtype.kind == "f":
        # fmax skips NaN without a warning; the range tells 0-1 floats from 0-255 ones.
        top = float(np.fmax.reduce(array, axis=None)) if array.size else 1.0
        fix = "; floats from 0 to 1 become uint8 as (x * 255).round().astype(np.uint8)" if not top > 1 else \
            "; floats from 0 to 255 become uint8 as x.round().clip(0, 255).astype(np.uint8)"
    elif array.dtype.kind == "b":
        fix = "; a mask becomes black and white frames as x.astype(np.uint8) * 255"
    elif array.dtype.kind in "OUSVcmM":  # None, a string, a generator: nothing NumPy reads as pixels
        fix = f"; pass a NumPy uint8 array, not {type(frames).__name__}"
    elif array.dtype != np.uint8:  # integers
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if 0 <= low and high <= 255:
            fix = "; convert with .astype(np.uint8)"
        elif array.dtype == np.uint16:
            fix = f"; values run up to {high}: scale them to 0-255, e.g. (x >> 8).astype(np.uint8) for 16-bit frames"
        else:
            fix = f"; values run from {low} to {high}: scale them to 0-255, then .astype(np.uint8)"
    elif array.ndim in (3, 4) and shape[-1] != 3 and shape[-3] == 3:
        fix = "; channels come last: x.transpose(0, 2, 3, 1) for (N, 3, H, W), x.transpose(1, 2, 0) for (3, H, W)"
    elif array.ndim in (3, 4) and shape[-1] == 4:
        fix = "; RGBA frames become RGB as x[..., :3]"
    elif array.ndim in (3, 4) and shape[-1] == 1:
        fix = "; grey frames become RGB as np.repeat(x, 3, axis=-1)"
    elif array.ndim in (2, 3) and shape[-1] != 3:
        fix = "; grey frames become RGB as np.repeat(x[..., None], 3, axis=-1)"
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or shape[-1] != 3:
        raise UsageError(f"translate expects uint8 RGB frames of shape (N, H, W, 3) or one (H, W, 3), got "
                         f"{dtype or array.dtype} {shape}{fix}")
    return array


def _thread_stream(device: torch.device) -> torch.cuda.Stream:
    """This thread's own CUDA stream on `device`: work on one stream runs in order, so threads
    sharing one would wait for each other's batches."""
    streams = getattr(_thread_streams, "by_device", None)
    if streams is None:
        streams = _thread_streams.by_device = {}
    if device not in streams:
        streams[device] = torch.cuda.Stream(device)
    return streams[device]


def _grey(frames: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (N, H, W, 3) as uint8 grey (N, H, W, 1), as pix2pix's Grayscale makes a one-channel
    model's input before resizing it: PIL's convert("L"), ITU-R 601 luma in 16-bit fixed point."""
    rgb = frames.to(torch.int32)
    return ((rgb[..., 0:1] * 19595 + rgb[..., 1:2] * 38470 + rgb[..., 2:3] * 7471 + 0x8000) >> 16).to(torch.uint8)


def _as_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) as float (N, C, H, W), channels-last in memory with strides of its own: a
    frame given alone (frame[None]) has a batch stride of 0, which .float() keeps and torch's
    antialiased resampling misreads (a 300x2 frame came out unlike the same frame in a batch)."""
    return frames.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.channels_last)


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of float (N, C, H, W), antialiased when shrinking."""
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=height < x.shape[2])


def _fit_image(image: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    """`image` (uint8 RGB) at `size` (height, width)."""
    if image is None or image.shape[:2] == tuple(size):
        return image
    import cv2

    height, width = size
    shrink = height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _card_at(card: ModelCard, size: int) -> ModelCard:
    """`card` for a translator running at `size` (longer side): native size with its aspect ratio,
    and the target's pose statistics, whose frame is the native one, scaled alike."""
    height, width = card.native_size
    scale = size / max(height, width)
    stats = card.target_pose_stats
    if stats and all(isinstance(stats.get(k), (int, float)) for k in ("frame_width", "frame_height")):
        stats = {**stats, "frame_width": max(1, round(stats["frame_width"] * scale)),
                 "frame_height": max(1, round(stats["frame_height"] * scale))}
    return dataclasses.replace(card, native_size=(max(1, round(height * scale)), max(1, round(width * scale))),
                               target_pose_stats=stats)
