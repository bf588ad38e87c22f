"""vidtrans: translate video frame by frame with pix2pix-style generators.

    import vidtrans
    model = vidtrans.load_model("pose2person", device="cuda")
    vidtrans.translate_video("in.mp4", "out.mp4", model, smoothing="flow")
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

__version__ = "0.1.0"

# The rest of the public API, imported on first use so that `import vidtrans` stays cheap (no
# torch, no OpenCV) for the CLI's --help and for tools that only want the version.
_LAZY = {
    "translate_video": "vidtrans.pipeline",
    "render_pose_video": "vidtrans.pipeline",
    "Summary": "vidtrans.pipeline",
    "Translator": "vidtrans.models.translator",
    "VidtransError": "vidtrans.errors",
    "UsageError": "vidtrans.errors",
    "RunOptions": "vidtrans.options",
    "EncodeOptions": "vidtrans.options",
    "BatchOptions": "vidtrans.options",
}
__all__ = ["__version__", "load_model", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        # A submodule too (vidtrans.batch.translate_folder, as the README writes it) is imported on first
        # use; not one whose import does something (__main__ runs the command line).
        if name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
            return importlib.import_module(f"{__name__}.{name}")  # which sets it here as well
        raise AttributeError(f"module 'vidtrans' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_model(name_or_path: str | os.PathLike, device: str | None = "auto", precision: str = "auto",
               normalization: str | None = None, size: int | None = None, backend: str = "auto", **unknown: Any):
    """A ready-to-use `Translator` for a model name, checkpoint folder or upstream pix2pix `.pth`.

    device: "auto" or None (CUDA when available), "cpu", "cuda" or "cuda:N".
    precision: "auto" (fp16 on CUDA, bf16 on CPUs with AMX or AVX-512 BF16, where the model card allows
    it and the model is no ResNet normalizing each frame by its own statistics; else fp32),
    "fp32", "fp16" (CUDA only), "bf16" (emulated, slower than fp32, on CPUs without AMX or AVX-512 BF16).
    normalization: "sample" (pix2pix's test-time default, batch-invariant) or "running" (eval-mode
    batch norm; refused for a generator without batch norm, where it would change nothing); default
    from the model card.
    size: the longer side, in pixels, frames are scaled to for translation (16 to 8192; the models
    are fully convolutional); None: the model's native size. Pose models draw pose maps at it.
    Batches too large for the device's free memory at that size are translated in smaller passes
    (the same frames); a size where not even one frame fits is refused when frames come.
    A raw `.pth` has the native size of its architecture (unet_128: 128, others 256).
    backend: what runs the generator: "torch", "onnxruntime" (CPU, fp32; the graph is exported once
    and cached in ~/.cache/vidtrans/onnx; needs `pip install 'vidtrans[onnx]'`) or "auto"
    (onnxruntime on CPUs without bf16 in hardware when it is installed, else torch).
    Any other keyword is refused in one line (UsageError), naming the parameter meant, or where a
    run's setting (smoothing=, crf=) goes.
    """
    from vidtrans.models.checkpoint import load_checkpoint
    from vidtrans.models.translator import Translator
    from vidtrans.options import check_path_text

    if unknown:
        _refuse_unknown(unknown)

    if isinstance(name_or_path, (str, os.PathLike)):
        check_path_text(name_or_path, "name_or_path")
    return Translator(load_checkpoint(name_or_path), device=device, precision=precision, normalization=normalization,
                      size=size, backend=backend)


def _refuse_unknown(unknown: dict[str, Any]) -> None:
    """UsageError for keywords `load_model` does not take, where Python's TypeError would point nowhere:
    a run's setting is told where it goes, a near miss the parameter meant."""
    import inspect

    from vidtrans.errors import UsageError
    from vidtrans.options import RunOptions, option_names, refuse_misspelt, shown

    for name, value in unknown.items():
        if name in option_names(RunOptions):
            raise UsageError(f"{name} is a setting of each run, not of the model: pass it to "
                             f"vidtrans.translate_video(src, dst, model, {name}={shown(value)})")
    refuse_misspelt(load_model, unknown, [])
    parameters = [name for name, p in inspect.signature(load_model).parameters.items() if p.kind != p.VAR_KEYWORD]
    raise UsageError(f"load_model has no parameter {', '.join(unknown)}; it takes {', '.join(parameters)}")
