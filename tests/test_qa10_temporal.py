"""QA 10b #2: the same command on the same input gave another video now and then (up to ~40 grey
levels, a few recurring variants) with a temporal model, through torch and ONNX Runtime alike.

The translated frames were the same every time; the encoder was not. With mb-tree and B-frames
(x264's defaults), libx264's AVX-512 code reads memory it never wrote, so the file depended on what
the heap held before: another run, another thread's allocations, another process beside it. Which
pictures trigger it depends on their content (the QA's temporal model's output did, its frame
model's did not).

The tests make that memory differ on purpose: glibc's MALLOC_PERTURB_ fills every allocation with a
chosen byte, a different one in each of two child processes, which must write the same file. (Where
malloc ignores it, or the CPU has no AVX-512, nothing differs and they pass.)
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.media import decode_all, make_clip, random_generator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
# Two fill bytes for fresh allocations: any two that differ.
HEAP_FILLS = (85, 170)

# Writes 16 frames of 64x64 random coloured 8x8 blocks (a new picture each frame, as noisy as a
# barely trained generator's output) to argv[1] with the pipeline's writer at its default settings.
_WRITE_FRAMES = """
import sys
from fractions import Fraction
import cv2, numpy as np
from vidtrans.options import EncodeOptions
from vidtrans.video import SourceMedia, VideoWriter
rng = np.random.default_rng(0)
writer = VideoWriter(sys.argv[1], 64, 64, Fraction(1, 25), 25.0, EncodeOptions(), SourceMedia(None), True)
for i in range(16):
    blocks = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    writer.write(cv2.resize(blocks, (64, 64), interpolation=cv2.INTER_NEAREST), i)
writer.close()
"""


def run_with_heap_fill(command: list[str], fill: int) -> None:
    env = {**os.environ, "MALLOC_PERTURB_": str(fill)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def assert_same_pictures(first: Path, second: Path) -> None:
    """The two files decode to the same pictures; else the grey levels between them, frame by frame."""
    a, b = (np.stack(decode_all(path)[0]).astype(int) for path in (first, second))
    assert a.shape == b.shape
    assert np.array_equal(a, b), f"grey levels apart per frame: {np.abs(a - b).max(axis=(1, 2, 3)).tolist()}"


def test_the_same_frames_make_the_same_file_whatever_memory_held_before(tmp_path):
    outputs = [tmp_path / f"fill{fill}.mp4" for fill in HEAP_FILLS]
    for fill, out in zip(HEAP_FILLS, outputs):
        run_with_heap_fill([sys.executable, "-c", _WRITE_FRAMES, str(out)], fill)
    assert_same_pictures(*outputs)


def test_a_temporal_model_gives_the_same_video_for_the_same_command(tmp_path):
    model = tmp_path / "temporal"
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=6, native_size=(64, 64),
                     temporal={"previous": "output", "first": "black"})
    save_checkpoint(model, random_generator("resnet_6blocks", 6, 3, 8, "instance", seed=1), card)
    clip = make_clip(tmp_path / "in.mp4", frames=16, size=(64, 64), audio=False)
    outputs = [tmp_path / f"fill{fill}.mp4" for fill in HEAP_FILLS]
    for fill, out in zip(HEAP_FILLS, outputs):
        # The default encoding (libx264, crf 18, medium): what `run` writes unless told otherwise.
        run_with_heap_fill([sys.executable, "-m", "vidtrans", "run", str(clip.path), "-m", str(model), "-o", str(out),
                            "--backend", "torch"], fill)
    assert_same_pictures(*outputs)
