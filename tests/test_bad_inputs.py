"""A corpus of broken, odd and hostile command lines, tried as a new user would.

Every case must end with one plain `vidtrans: error: ...` line naming the problem (no traceback),
the documented exit code (2 for option values that make no sense, 1 for failures of the work), every protected file byte for byte as it was, and nothing new left in
the work folder (no partial file, no lock). The cases run in this process (`python -m vidtrans`
costs seconds of imports each), each through the CLI's real entry point, `vidtrans.cli.main`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from tests.media import make_clip
from vidtrans.models.networks import build_generator

# (id, arguments, exit code, words the error line must contain). In the arguments, {d} is the
# work folder and {tiny} the tiny RGB test model.
RUN = ["run", "{d}/clip.mp4", "--model", "{tiny}", "--device", "cpu"]
CASES = [
    ("run-missing", ["run", "{d}/missing.mp4", "--model", "{tiny}"], 1, ["missing.mp4"]),
    ("run-text", ["run", "{d}/notes.txt", "--model", "{tiny}", "-o", "{d}/o.mp4"], 1, ["notes.txt"]),
    ("run-folder", ["run", "{d}/clips", "--model", "{tiny}", "-o", "{d}/o.mp4"], 1, ["clips"]),
    ("run-onto-input", RUN + ["-o", "{d}/clip.mp4", "--overwrite"], 2, ["input"]),
    ("run-onto-existing", RUN + ["-o", "{d}/existing.mp4"], 2, ["already exists", "--overwrite"]),
    ("run-no-folder", RUN + ["-o", "{d}/nowhere/o.mp4"], 2, ["does not exist"]),
    ("run-onto-folder", RUN + ["-o", "{d}/clips"], 2, ["folder"]),
    ("run-codec-aac", RUN + ["-o", "{d}/o.mp4", "--codec", "aac"], 2, ["codec"]),
    ("run-codec-unknown", RUN + ["-o", "{d}/o.mp4", "--codec", "h267"], 2, ["codec"]),
    ("run-crf-999", RUN + ["-o", "{d}/o.mp4", "--crf", "999"], 2, ["crf"]),
    ("run-crf-negative", RUN + ["-o", "{d}/o.mp4", "--crf", "-1"], 2, ["crf"]),
    ("run-pix-fmt", RUN + ["-o", "{d}/o.mp4", "--pix-fmt", "yuv9000p"], 2, ["--pix-fmt"]),
    ("run-preset", RUN + ["-o", "{d}/o.mp4", "--preset", "warp"], 2, ["preset"]),
    ("run-start-nan", RUN + ["-o", "{d}/o.mp4", "--start", "nan"], 2, ["start"]),
    ("run-start-negative", RUN + ["-o", "{d}/o.mp4", "--start", "-3"], 2, ["start"]),
    ("run-end-before-start", RUN + ["-o", "{d}/o.mp4", "--start", "2", "--end", "1"], 2, ["end"]),
    ("run-start-past-end", RUN + ["-o", "{d}/o.mp4", "--start", "500"], 2, ["start", "0.20 s"]),
    ("run-batch-0", RUN + ["-o", "{d}/o.mp4", "--batch-size", "0"], 2, ["batch"]),
    ("run-smooth", RUN + ["-o", "{d}/o.mp4", "--smooth", "wobble"], 2, ["smooth"]),
    ("run-smooth-strength", RUN + ["-o", "{d}/o.mp4", "--smooth", "ema", "--smooth-strength", "2"], 2, ["strength"]),
    ("run-compile", RUN + ["-o", "{d}/o.mp4", "--compile", "maybe"], 2, ["compile"]),
    ("run-precision", RUN + ["-o", "{d}/o.mp4", "--precision", "fp8"], 2, ["precision"]),
    ("run-device", RUN + ["-o", "{d}/o.mp4", "--device", "tpu"], 2, ["device"]),
    ("run-model-missing", ["run", "{d}/clip.mp4", "--model", "no-such-model"], 1, ["no-such-model"]),
    ("run-model-list-card", ["run", "{d}/clip.mp4", "--model", "{d}/models/listcard"], 1, ["card"]),
    ("run-model-bad-arch", ["run", "{d}/clip.mp4", "--model", "{d}/models/badarch"], 1, ["architecture"]),
    ("run-model-newer-card", ["run", "{d}/clip.mp4", "--model", "{d}/models/newer"], 1, ["newer"]),
    ("run-model-bad-size", ["run", "{d}/clip.mp4", "--model", "{d}/models/badsize"], 1, ["native_size"]),
    ("run-model-pickle", ["run", "{d}/clip.mp4", "--model", "{d}/pickled.pth"], 1, ["pickled"]),
    ("run-model-text-pth", ["run", "{d}/clip.mp4", "--model", "{d}/text.pth"], 1, ["text.pth"]),
    ("run-model-size-0", RUN + ["-o", "{d}/o.mp4", "--model-size", "0"], 2, ["size"]),
    ("run-long-name", RUN + ["-o", "{d}/" + "x" * 300 + ".mp4"], 2, ["too long"]),
    ("run-pose-mode", ["run", "{d}/clip.mp4", "-o", "{d}/o.mp4", "--pose", "maybe"], 2, ["pose"]),
    ("run-keypoints-missing", ["run", "{d}/clip.mp4", "-o", "{d}/o.mp4", "--keypoints", "{d}/none.npz"], 1,
     ["none.npz"]),
    ("run-keypoints-text", ["run", "{d}/clip.mp4", "-o", "{d}/o.mp4", "--keypoints", "{d}/notes.txt"], 1,
     ["notes.txt"]),
    ("run-keypoints-garbage-npz", ["run", "{d}/clip.mp4", "-o", "{d}/o.mp4", "--keypoints", "{d}/garbage.npz"], 1,
     ["garbage.npz"]),
    ("pose-onto-existing", ["pose", "{d}/clip.mp4", "-o", "{d}/existing.mp4"], 2, ["already exists"]),
    ("pose-keypoints-onto-input", ["pose", "{d}/clip.mp4", "-o", "{d}/o.mp4", "--keypoints", "{d}/clip.mp4"], 2,
     ["input"]),
    ("pose-keypoints-onto-existing", ["pose", "{d}/clip.mp4", "-o", "{d}/o.mp4", "--keypoints", "{d}/kp.npz"], 2,
     ["already exists"]),
    ("import-missing", ["import-pix2pix", "{d}/missing.pth", "-o", "{d}/imported"], 1, ["missing.pth"]),
    ("import-pickle", ["import-pix2pix", "{d}/pickled.pth", "-o", "{d}/imported"], 1, ["pickled"]),
    ("import-empty-output", ["import-pix2pix", "{d}/good.pth", "-o", ""], 2, ["empty"]),
    ("import-size-0", ["import-pix2pix", "{d}/good.pth", "-o", "{d}/imported", "--size", "0"], 2, ["size"]),
    ("import-onto-file", ["import-pix2pix", "{d}/good.pth", "-o", "{d}/existing.mp4"], 2, ["existing.mp4"]),
    ("import-onto-checkpoint", ["import-pix2pix", "{d}/good.pth", "-o", "{d}/models/good"], 2, ["--overwrite"]),
    ("train-onto-file", ["train", "--synthetic", "-o", "{d}/existing.mp4"], 2, ["existing.mp4"]),
    ("train-onto-checkpoint", ["train", "--synthetic", "-o", "{d}/models/good"], 2, ["--overwrite"]),
    ("train-arch", ["train", "--synthetic", "-o", "{d}/t", "--arch", "nonsense"], 2, ["arch"]),
    ("train-size-8", ["train", "--synthetic", "-o", "{d}/t", "--size", "8"], 2, ["size"]),
    ("train-cuda", ["train", "--synthetic", "-o", "{d}/t", "--device", "cuda"], 2, ["cuda"]),
    ("train-two-sources", ["train", "{d}/clip.mp4", "--synthetic", "-o", "{d}/t"], 2, ["one"]),
    ("train-resume-nothing", ["train", "--synthetic", "-o", "{d}/t", "--resume"], 2, ["resume"]),
    ("eval-frames-0", ["eval", "--synthetic", "--frames", "0"], 2, ["frames"]),
    ("eval-batch-0", ["eval", "--synthetic", "--batch-size", "0"], 2, ["batch"]),
    ("batch-missing", ["batch", "{d}/nowhere", "-o", "{d}/out", "--model", "{tiny}"], 2, ["nowhere"]),
    ("batch-into-itself", ["batch", "{d}/clips", "-o", "{d}/clips", "--model", "{tiny}"], 2, ["clips"]),
    ("batch-report-onto-clip", ["batch", "{d}/clips", "-o", "{d}/out", "--model", "{tiny}", "--report",
                                "{d}/clips/a.mp4"], 2, ["report"]),
    ("batch-report-onto-existing", ["batch", "{d}/clips", "-o", "{d}/out", "--model", "{tiny}", "--report",
                                    "{d}/existing.json"], 2, ["report"]),
    ("batch-model-size-0", ["batch", "{d}/clips", "-o", "{d}/out", "--model", "{tiny}", "--model-size", "0"], 2,
     ["--model-size"]),
    ("batch-bad-model", ["batch", "{d}/clips", "-o", "{d}/out", "--model", "{d}/models/badarch"], 1, ["architecture"]),
    ("live-record-onto-camera", ["live", "--model", "{tiny}", "--camera", "{d}/clip.mp4", "--no-window",
                                 "--record", "{d}/clip.mp4", "--overwrite"], 2, ["input"]),
    ("live-stats-onto-existing", ["live", "--model", "{tiny}", "--camera", "{d}/clip.mp4", "--no-window",
                                  "--stats", "{d}/existing.json"], 2, ["already exists"]),
    ("live-camera-missing", ["live", "--model", "{tiny}", "--camera", "{d}/missing.mp4", "--no-window"], 1,
     ["missing.mp4"]),
    ("live-size", ["live", "--model", "{tiny}", "--camera", "{d}/clip.mp4", "--no-window", "--size", "0x0"], 2,
     ["size"]),
]
# Files no case may change, and the only new entries a case may leave in the work folder.
PROTECTED = ["clip.mp4", "existing.mp4", "existing.json", "kp.npz", "notes.txt", "clips/a.mp4", "models/good/card.json"]

def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, rgb_model_dir, cli):
    d = tmp_path_factory.mktemp("corpus")
    make_clip(d / "clip.mp4", frames=6, size=(64, 48))
    (d / "clips").mkdir()
    make_clip(d / "clips" / "a.mp4", frames=4, size=(64, 48), audio=False)
    (d / "existing.mp4").write_bytes(b"an existing file that must survive")
    (d / "existing.json").write_text('{"keep": true}\n')
    (d / "notes.txt").write_text("not a video\n")
    (d / "text.pth").write_text("not a checkpoint\n")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (d / "kp.npz").write_bytes(b"existing keypoints")
    good = build_generator("unet_128", 3, 3, 4, "batch").state_dict()
    torch.save(good, d / "good.pth")
    torch.save({"model": _Pickled()}, d / "pickled.pth")
    models = d / "models"
    cards = {
        "listcard": [1, 2, 3],
        "badarch": {"format": "vidtrans-model", "format_version": 1, "architecture": "unet_9000"},
        "newer": {"format": "vidtrans-model", "format_version": 2, "architecture": "unet_256"},
        "badsize": {"format": "vidtrans-model", "format_version": 1, "architecture": "unet_256",
                    "native_size": ["big", "tall"]},
    }
    for name, card in cards.items():
        (models / name).mkdir(parents=True)
        (models / name / "card.json").write_text(json.dumps(card))
        (models / name / "model.safetensors").write_bytes((rgb_model_dir / "model.safetensors").read_bytes())
    (models / "good").mkdir()
    for f in rgb_model_dir.iterdir():
        (models / "good" / f.name).write_bytes(f.read_bytes())
    before = {name: _digest(d / name) for name in PROTECTED}
    listing = _listing(d)
    env = {**os.environ, "VIDTRANS_MODELS": str(models), "COLUMNS": "200"}
    with contextlib.chdir(d):
        results = {name: cli(*[a.format(d=d, tiny=rgb_model_dir) for a in args], env=env)
                   for name, args, _, _ in CASES}
    return d, results, before, listing


class _Pickled:
    """Any object that is not a tensor: loading it would mean running pickled code."""


@pytest.mark.parametrize("name,code,words", [(c[0], c[2], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_changes_nothing(corpus, name, code, words):
    d, results, _, _ = corpus
    result = results[name]
    assert "Traceback" not in result.stderr and result.exception is None, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: error:")]
    assert result.returncode == code, result.stderr
    assert len(errors) == 1, result.stderr
    assert "\x1b[" not in errors[0]
    for word in words:
        assert word.lower() in errors[0].lower(), errors[0]


def test_no_case_changed_a_file_or_left_one_behind(corpus):
    d, _, before, listing = corpus
    assert {name: _digest(d / name) for name in PROTECTED} == before
    assert _listing(d) == listing
