"""QA round 30: CPU passes sized by the memory available, when several run at once (the pipeline's
two translation workers, a batch's clips). Each measured the memory free and took it all: `run
--backend onnxruntime --model-size 8192` was killed by the kernel with no message."""

from __future__ import annotations

import threading
import time

import numpy as np

import vidtrans
from tests.media import random_generator
from vidtrans.models import translator as translator_module
from vidtrans.models.checkpoint import ModelCard, save_checkpoint


def test_concurrent_cpu_passes_share_the_memory_available(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "m", random_generator("resnet_6blocks", 3, 3, 4, "instance"),
                    ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(32, 32),
                              input_kind="rgb"))
    model = vidtrans.load_model(tmp_path / "m", device="cpu", precision="fp32", backend="torch")
    per_frame = model.frame_memory(24, 32)
    # Room for 5 frames in all, whichever thread asks.
    monkeypatch.setattr(translator_module, "available_memory", lambda device: 5 * per_frame + per_frame // 2)
    running, most, lock = [0], [0], threading.Lock()
    call = model._call

    def counting(frames, previous):
        with lock:
            running[0] += len(frames)
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for the other thread's pass to overlap
        try:
            return call(frames, previous)
        finally:
            with lock:
                running[0] -= len(frames)

    monkeypatch.setattr(model, "_call", counting)
    frames = np.random.default_rng(0).integers(0, 256, (8, 24, 32, 3), dtype=np.uint8)
    outputs = [None, None]

    def translate(i):
        outputs[i] = model.translate(frames)

    threads = [threading.Thread(target=translate, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] <= 5, f"{most[0]} frames in passes at once, where memory holds 5"
    # Smaller passes give the same frames.
    assert np.array_equal(outputs[0], outputs[1])
