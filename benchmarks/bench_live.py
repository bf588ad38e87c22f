"""Live mode speed: a synthetic dancer clip plays as the camera (in real time) through `run_live`.

Pose detection (MediaPipe, tracking mode), One Euro filter, pose mapping, drawing and the model
all run at batch 1 on the newest frame, exactly as with a webcam; the clip is paced to its frame
rate by the capture thread, so frames the pipeline cannot keep up with are dropped, not queued.
A second pass with an instant model (it inverts the frame) measures what the loop itself costs:
capture, composition and the sinks should show at least 90 % of the camera's frames.

The model is `--model` (default pose2person); when it cannot be loaded a stand-in is used: a
unet_256 with ngf 16 and pix2pix's random initial weights, input kind pose (same cost per frame
as a trained model of that shape). The output says which model ran.

    .venv/bin/python benchmarks/bench_live.py [--model pose2person] [--size 256] [--seconds 6] [--device cpu] [--precision auto]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vidtrans  # noqa: E402
from tests.media import make_clip, random_generator  # noqa: E402
from vidtrans.errors import VidtransError  # noqa: E402
from vidtrans.live import run_live  # noqa: E402
from vidtrans.models.checkpoint import ModelCard, save_checkpoint  # noqa: E402
from vidtrans.pose import PoseStyle, estimate_pose_stats  # noqa: E402
from vidtrans.train.synth import SOURCE_LOOK, TARGET_LOOK, dance_keypoints, render_person  # noqa: E402

TARGET_FPS, TARGET_P95_MS, TARGET_SHOWN = 15.0, 150.0, 0.9


class TimedModel:
    """Forwards to the model and keeps the time each translate call took."""

    def __init__(self, model):
        self.model = model
        self.times_ms: list[float] = []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def translate(self, frames):
        start = time.perf_counter()
        out = self.model.translate(frames)
        self.times_ms.append((time.perf_counter() - start) * 1000)
        return out


class InstantModel:
    """The model's interface at no cost: the loop's own overhead is what remains."""

    name, precision, input_kind, card, native_size = "instant", "fp32", "rgb", None, (64, 64)

    def __init__(self, device):
        self.device = device

    def translate(self, frames):
        return 255 - frames


def stand_in(folder: Path, size: int, device: str, precision: str):
    net = random_generator("unet_256", 3, 3, 16, "batch", seed=0)
    target = estimate_pose_stats(dance_keypoints(0, 300, size, size, TARGET_LOOK), size, size)
    save_checkpoint(folder, net, ModelCard(architecture="unet_256", ngf=16, native_size=(size, size), input_kind="pose",
                                           pose_style=PoseStyle().to_dict(), target_pose_stats=target.to_dict()))
    return vidtrans.load_model(folder, device=device, precision=precision)


def dancer_camera(path: Path, width: int, height: int, frames: int, fps: float):
    """A synthetic dancer clip (no audio) to play as the camera."""
    track = dance_keypoints(1, frames, height, width, SOURCE_LOOK, fps=fps)
    return make_clip(path, frames=frames, size=(width, height), fps=fps, audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, SOURCE_LOOK))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="pose2person")
    parser.add_argument("--size", default="256", help="camera frame size: 256 (256x256) or WxH, e.g. 640x480")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto", help="auto (bf16 on CPUs with AMX or AVX-512 BF16), fp32, fp16, bf16")
    args = parser.parse_args()
    width, height = (int(v) for v in (args.size.split("x") if "x" in args.size else (args.size, args.size)))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            model = vidtrans.load_model(args.model, device=args.device, precision=args.precision)
            which = f"{args.model} (trained checkpoint)"
        except VidtransError as e:
            model = stand_in(tmp / "stand-in", 256, args.device, args.precision)
            which = f"stand-in unet_256 ngf 16, random weights, pose input ({args.model}: {e})"
        frames = round(args.seconds * args.fps)
        clip = dancer_camera(tmp / "dancer.mp4", width, height, frames, args.fps)
        timed = TimedModel(model)
        stats = run_live(timed, clip.path, window=False, view="side")
        loop_only = run_live(InstantModel(model.device), clip.path, window=False, view="side")

    load = os.getloadavg()[0]
    print(f"model: {which}")
    print(f"camera: synthetic dancer {width}x{height} at {args.fps:g} fps, {frames} frames, played in real time")
    print(f"device: {stats.device}, precision {model.precision}, torch threads while live: {max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) // 2))}"
          f" of {os.cpu_count()} cores, load average {load:.2f}; pose mapping: {stats.pose}")
    print(f"model alone: {np.median(timed.times_ms[1:]):.1f} ms per frame (median)")
    fps, p50, p95 = stats.fps, stats.latency(50), stats.latency(95)  # None: not measured (under two frames)

    def shown(value, form):
        return "n/a" if value is None else format(value, form)

    rows = [("fps", shown(fps, ".1f"), f">= {TARGET_FPS:g}", None if fps is None else fps >= TARGET_FPS),
            ("latency p50 (ms)", shown(p50, ".0f"), "", None),
            ("latency p95 (ms)", shown(p95, ".0f"), f"<= {TARGET_P95_MS:g}", None if p95 is None else p95 <= TARGET_P95_MS),
            ("dropped", f"{stats.dropped} of {stats.captured}", "", None),
            ("shown, instant model", f"{loop_only.frames} of {loop_only.captured}", f">= {TARGET_SHOWN:.0%}",
             loop_only.frames >= TARGET_SHOWN * loop_only.captured)]
    print(f"\n{'':18} {'measured':>12} {'target':>10}  ")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        print(f"{name:18} {value:>12} {target:>10}  {verdict}")


if __name__ == "__main__":
    main()
