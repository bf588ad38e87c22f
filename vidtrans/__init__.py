"""vidtrans: translate video frame by frame with pix2pix-style generators.

    import vidtrans
    model = vidtrans.load_model("pose2person", device="cuda")
    vidtrans.translate_video("in.mp4", "out.mp4", model, smoothing="flow")
"""

from __future__ import annotations

import os

__version__ = "0.1.0"


def load_model(name_or_path: str | os.PathLike, device: str = "auto", precision: str = "auto",
               normalization: str | None = None):
    """A ready-to-use `Translator` for a model name, checkpoint folder or upstream pix2pix `.pth`.

    device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    precision: "auto" (fp16 on CUDA where the model card allows it, else fp32), "fp32", "fp16", "bf16".
    normalization: "sample" (pix2pix's test-time default, batch-invariant) or "running" (eval-mode
    batch norm); default from the model card.
    """
    from vidtrans.models.checkpoint import load_checkpoint
    from vidtrans.models.translator import Translator

    return Translator(load_checkpoint(name_or_path), device=device, precision=precision, normalization=normalization)
