"""Everything a lent GPU should tell us, in one command: figures to JSON after each section.

On a fresh GPU machine holding only the repository (H100/H200-class, 16 cores, no NVENC), from the
repository root, one command line installs and runs it:

    python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[test]" && OUT=$OUT .venv/bin/python benchmarks/gpu_check.py

Sections, each timed and written to $OUT/gpu_check.json (default ./gpu_check_out) as soon as it
ends, so a time-out keeps what was measured; a failing section records its one-line error and the
check goes on; once --budget seconds (default 450) are used, the remaining sections are recorded
as skipped (with pip's install, about 2-3 minutes for CUDA torch, that keeps within 8 minutes):

    environment  GPU, torch/CUDA versions, CPU model and cores
    cuda_tests   pytest tests/test_models.py -k cuda and every test skipped as "needs CUDA"
    precision    fp16/bf16 against fp32 on the shipped pose2person and a random unet_256 (PSNR, max/mean difference)
    model_alone  frames/s at batch 1/8/32/64, eager / torch.compile / CUDA graphs, 256x256 and 512x512
    run          `vidtrans run` against the naive script and the decode->encode floor (bench_run.py's rows)
    in_flight    `vidtrans run` with two batches in flight on the GPU (the default) against one
    encode       the decode->encode floor and the writer alone with one x264 against the segments the
                 host's cores call for (bench_encode.py's rows)
    batch        a folder of short clips against one long clip of the same frames (bench_batch.py's idea)
    live         live latency at 512x512: fps, p50, p95 (bench_live.py's dancer played as a camera)
    train        one training step (unet_256, batch 1, synthetic pairs)

    --dry        every section on the CPU at tiny sizes (compile skipped): checks the code paths in
                 well under a minute (tests/test_gpu_check.py runs it)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

INSTALL = 'python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[test]"'
MODULES = {"torch": "torch", "numpy": "numpy", "cv2": "opencv-python", "av": "av", "mediapipe": "mediapipe",
           "safetensors": "safetensors", "pytest": "pytest", "vidtrans": "vidtrans (pip install -e .)"}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What each section measures: the GPU plan, or tiny CPU sizes for --dry."""

    dry: bool
    device: str
    sizes: tuple[int, ...]
    ngf: int  # the random unet_256's width
    batches: tuple[int, ...]  # model alone
    sweep: tuple[int, ...]  # model alone inside the run comparison (its best is reported)
    seconds: float  # per model-alone figure
    frames: int  # clip length for run
    precision_frames: int
    encode_frames: int
    clips: int
    clip_frames: int
    batch_ngf: int
    live_size: int
    live_frames: int
    train: dict[str, Any]  # TrainOptions fields
    train_steps: int
    model_alone_cap: float  # seconds for the model-alone section (compilation is what costs)
    tests_cap: float

    @classmethod
    def for_mode(cls, dry: bool) -> Plan:
        if dry:
            # unet_256 needs 256 pixels: at less, the naive script's innermost layer has no pixel left.
            return cls(dry=True, device="cpu", sizes=(256, 512), ngf=8, batches=(1, 2), sweep=(1, 2), seconds=0.01,
                       frames=2, precision_frames=1, encode_frames=4, clips=2, clip_frames=2, batch_ngf=8, live_size=128,
                       live_frames=8, train={"architecture": "unet_128", "size": 128, "ngf": 8, "ndf": 8},
                       train_steps=1, model_alone_cap=30, tests_cap=60)
        return cls(dry=False, device="cuda", sizes=(256, 512), ngf=64, batches=(1, 8, 32, 64), sweep=(8, 32, 64),
                   seconds=1.5, frames=240, precision_frames=16, encode_frames=300, clips=8, clip_frames=30, batch_ngf=16,
                   live_size=512, live_frames=180, train={"architecture": "unet_256", "size": 256, "ngf": 64, "ndf": 64},
                   train_steps=10, model_alone_cap=170, tests_cap=120)


# --- helpers --------------------------------------------------------------------------------------


def random_checkpoint(folder: Path, ngf: int) -> Path:
    """A unet_256 with pix2pix's random initial weights, saved as a checkpoint (as the other benchmarks do)."""
    from tests.media import random_generator
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint

    net = random_generator("unet_256", 3, 3, ngf, "batch", seed=0)
    save_checkpoint(folder, net, ModelCard(architecture="unet_256", ngf=ngf))
    return folder


def models_of(plan: Plan, work: Path) -> dict[str, Path | str]:
    return {"pose2person": "pose2person", f"unet_256 ngf {plan.ngf}": random_checkpoint(work / "random", plan.ngf)}


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def finite(value: Any) -> Any:
    """JSON without NaN or infinity (strict parsers refuse them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)  # None: not measured (live's fps of one frame)


# --- sections -------------------------------------------------------------------------------------


def environment(plan: Plan, work: Path) -> dict:
    import torch

    import vidtrans

    cpu = next((line.split(":", 1)[1].strip() for line in _lscpu().splitlines() if line.startswith("Model name")),
               platform.processor() or "unknown")
    cuda = torch.cuda.is_available()
    return {"gpu": torch.cuda.get_device_name() if cuda else None, "gpu_count": torch.cuda.device_count(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
            "python": platform.python_version(), "vidtrans": vidtrans.__version__, "cpu": cpu,
            "cores": os.cpu_count(), "device": plan.device}


def _lscpu() -> str:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def needs_cuda_tests() -> tuple[list[str], list[str]]:
    """Test files and test names marked as skipped with reason "needs CUDA"."""
    files, names = [], []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        text = path.read_text()
        found = re.findall(r'reason="needs CUDA"\)\s*\n(?:@.*\n)*def (test_\w+)', text)
        if found:
            files.append(str(path.relative_to(ROOT)))
            names += found
    return files, names


def cuda_tests(plan: Plan, work: Path) -> dict:
    files, names = needs_cuda_tests()
    files = sorted({"tests/test_models.py", *files})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, "-k", " or ".join(["cuda", *names])]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=plan.tests_cap)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else result.stderr.strip()[-300:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?)", summary)}
    figures = {"command": " ".join(command[1:]), "needs_cuda": names, "returncode": result.returncode,
               "summary": summary, **{k: counts.get(k, 0) for k in ("passed", "failed", "skipped", "deselected")}}
    if result.returncode != 0:
        failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
        figures["failures"] = failures[:20]
        raise SectionError(f"pytest exit {result.returncode}: {summary}", figures)
    return figures


def precision(plan: Plan, work: Path) -> dict:
    import numpy as np

    import vidtrans
    from vidtrans.metrics import psnr
    from vidtrans.train.data import SyntheticPairs

    # Pose maps of the synthetic dancer: what the shipped model is trained on.
    pairs, rng = SyntheticPairs(size=plan.sizes[0]), np.random.default_rng(0)
    frames = np.stack([pairs.sample(rng)[0] for _ in range(plan.precision_frames)])
    halves = ("fp16", "bf16") if plan.device.startswith("cuda") else ("bf16",)  # fp16 is refused on the CPU
    rows = []
    for name, path in models_of(plan, work).items():
        reference = vidtrans.load_model(path, device=plan.device, precision="fp32").translate(frames)
        for half in halves:
            out = vidtrans.load_model(path, device=plan.device, precision=half).translate(frames)
            diff = np.abs(out.astype(np.int16) - reference.astype(np.int16))
            rows.append({"model": name, "precision": half, "psnr_db": rounded(psnr(out, reference)),
                         "max_abs_diff": int(diff.max()), "mean_abs_diff": rounded(diff.mean(), 4)})
    return {"frames": f"{len(frames)} pose maps of {plan.sizes[0]}x{plan.sizes[0]}", "rows": rows}


def use_cuda_graphs(model) -> None:
    """The translator's compiled step, with CUDA graphs (torch.compile's "reduce-overhead").

    Only this check asks for it, so it sets the translator's compiled step itself instead of adding a
    mode to `Translator.compile`; `translate` copies each result out before the next call, as CUDA
    graphs require (they reuse their output memory)."""
    import torch

    model._compiled = torch.compile(model._run, dynamic=False, mode="reduce-overhead")


def model_alone(plan: Plan, work: Path) -> dict:
    import torch

    import vidtrans
    from bench_translate import measure

    # One compiled graph per batch size and frame size: more than dynamo's default cache holds.
    for limit in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, limit):
            setattr(torch._dynamo.config, limit, 64)
    deadline = time.monotonic() + plan.model_alone_cap
    checkpoint = random_checkpoint(work / "random", plan.ngf)
    modes: dict[str, Callable | None | str] = {"eager": None, "compile": lambda m: m.compile(),
                                               "cuda_graphs": use_cuda_graphs}
    if plan.dry:
        modes["compile"] = "dry run (compilation takes minutes on this CPU)"
    if not plan.device.startswith("cuda"):
        modes["cuda_graphs"] = "needs CUDA"
    rows = []
    for mode, prepare in modes.items():
        for size in plan.sizes:
            model = None
            # Batch sizes go up: a compiled translator pads smaller batches to the first one it saw.
            for batch in plan.batches:
                row: dict[str, Any] = {"mode": mode, "size": size, "batch": batch}
                rows.append(row)
                if isinstance(prepare, str):
                    row["skipped"] = prepare
                    continue
                if time.monotonic() > deadline:
                    row["skipped"] = f"section cap of {plan.model_alone_cap:g} s reached"
                    continue
                try:
                    if model is None:
                        model = vidtrans.load_model(checkpoint, device=plan.device, size=size)
                        if prepare is not None:
                            prepare(model)
                    started = time.perf_counter()
                    row["fps"] = rounded(measure(model, batch, plan.seconds, size), 1)
                    row["seconds"] = rounded(time.perf_counter() - started)  # compilation included
                    row["precision"] = model.precision
                except Exception as e:  # noqa: BLE001 - one variant failing (CUDA graphs, say) is a figure too
                    row["error"] = one_line(e)
                    # Each retry would pay a compilation again.
                    modes[mode] = prepare = f"{mode} failed at {size}x{size}, batch {batch}"
            del model
    return {"model": f"unet_256 ngf {plan.ngf}, random weights", "rows": rows}


def run_vs_naive(plan: Plan, work: Path) -> dict:
    import vidtrans
    from bench_run import compare
    from tests.media import make_clip
    from vidtrans.models.checkpoint import load_checkpoint

    rows, models = [], models_of(plan, work)
    for size in plan.sizes:
        clip = make_clip(work / f"in{size}.mp4", frames=plan.frames, size=(size, size), fps=30, audio=True)
        for name, path in models.items():
            model = vidtrans.load_model(path, device=plan.device, size=size)
            # The clip's pictures stand in for pose maps: the same work per frame, no detection.
            changes = {"pose": "none"} if model.input_kind == "pose" else {}
            timings, best = compare(clip.path, work, model, load_checkpoint(path).build(), batches=plan.sweep, **changes)
            fps = {label[:3]: frames / seconds for label, (seconds, frames) in timings.items()}
            rows.append({"model": name, "size": size, "precision": model.precision,
                         "naive_fps": rounded(fps["(a)"], 1), "model_alone_fps": rounded(fps["(b)"], 1),
                         "model_alone_batch": best, "floor_fps": rounded(fps["(c)"], 1), "run_fps": rounded(fps["(d)"], 1),
                         "run_vs_naive": rounded(fps["(d)"] / fps["(a)"]), "run_vs_floor": rounded(fps["(d)"] / fps["(c)"]),
                         "run_vs_model": rounded(fps["(d)"] / fps["(b)"])})
    return {"frames": plan.frames, "run": "translate_video with its defaults (batch size, the card's smoothing)",
            "goals": "run_vs_naive >= 10 and run_vs_floor >= 0.8 on a GPU", "rows": rows}


def in_flight(plan: Plan, work: Path) -> dict:
    """`run` (pose maps given, no smoothing: the translation's share) with the translator's batches
    in flight at 2 (the CUDA default, each on its own stream) and at 1 (a round trip per batch)."""
    import threading

    import vidtrans
    from tests.media import make_clip
    from vidtrans.pipeline import translate_video

    rows = []
    for size in plan.sizes:
        clip = make_clip(work / f"in{size}.mp4", frames=plan.frames, size=(size, size), fps=30, audio=False)
        for name, path in models_of(plan, work).items():
            model = vidtrans.load_model(path, device=plan.device, size=size)
            changes = {"pose": "none"} if model.input_kind == "pose" else {}
            default = model.in_flight
            model.translate(clip.images[:8])  # warm-up outside the timings
            fps = {}
            for batches in sorted({default, 1}, reverse=True):
                # The translator's own bound (set at load time for its device), changed for this comparison.
                model.in_flight, model._in_flight = batches, threading.BoundedSemaphore(batches)
                fps[batches] = translate_video(clip.path, work / "out.mp4", model, overwrite=True, smoothing="none",
                                               compile="off", **changes).fps
            rows.append({"model": name, "size": size, "in_flight_default": default,
                         **{f"fps_in_flight_{k}": rounded(v, 1) for k, v in fps.items()},
                         "default_vs_one": rounded(fps[default] / fps[1])})
    return {"frames": plan.frames, "rows": rows}


def encode(plan: Plan, work: Path) -> dict:
    """One encoder against segments encoded at once (as many as `run` picks on this host, at least 2)."""
    from bench_encode import ZeroCostModel, decode_encode, frames_of_example, write_all
    from vidtrans.video.segments import segments_for

    parallel = max(2, segments_for("libx264", 0))
    rows = []
    for size in plan.sizes:
        frames = frames_of_example(size, plan.encode_frames)
        write_all(work / "in.mp4", frames, 1)
        fps = {}
        for n in (1, parallel):
            for kind, run in (("writer", lambda: write_all(work / "out.mp4", frames, n)),
                              ("floor", lambda: decode_encode(work / "in.mp4", work / "out.mp4", n, ZeroCostModel()))):
                began = time.perf_counter()
                fps[kind, n] = run() / (time.perf_counter() - began)
        rows.append({"size": size, "segments": parallel, **{f"{kind}_fps_{'one' if n == 1 else 'segments'}": rounded(v, 1)
                                                            for (kind, n), v in fps.items()},
                     "floor_segments_vs_one": rounded(fps["floor", parallel] / fps["floor", 1])})
    return {"frames": plan.encode_frames, "cores": os.cpu_count(), "rows": rows}


def batch_of_clips(plan: Plan, work: Path) -> dict:
    import vidtrans
    from tests.media import make_clip
    from vidtrans.batch import translate_folder
    from vidtrans.pipeline import translate_video

    size = (plan.sizes[0], plan.sizes[0])
    total = plan.clips * plan.clip_frames
    long_clip = make_clip(work / "long.mp4", frames=total, size=size, fps=30, audio=True)
    (work / "short").mkdir()
    for i in range(plan.clips):
        # Consecutive pieces of the long clip's content, so both sides translate the same pictures.
        make_clip(work / "short" / f"clip{i:02d}.mp4", frames=plan.clip_frames, size=size, fps=30, audio=True,
                  frame_fn=lambda k, w, h, i=i: long_clip.images[i * plan.clip_frames + k])
    checkpoint = random_checkpoint(work / "batch_model", plan.batch_ngf)
    model = vidtrans.load_model(checkpoint, device=plan.device)
    model.translate(long_clip.images[:8])  # warm-up outside the timings
    long = translate_video(long_clip.path, work / "long.out.mp4", model, compile="off")
    report = translate_folder(work / "short", work / "out", checkpoint, devices=[plan.device], workers=2, compile="off")
    if report.failed:
        raise RuntimeError(f"batch failed: {report.failed}")
    batch_fps = report.totals()["frames"] / report.seconds
    return {"model": f"unet_256 ngf {plan.batch_ngf}, random weights", "size": plan.sizes[0], "workers": 2,
            "rows": [{"run": "one long clip", "clips": 1, "frames": long.frames, "fps": rounded(long.fps, 1)},
                     {"run": "batch, 2 workers", "clips": plan.clips, "frames": report.totals()["frames"],
                      "fps": rounded(batch_fps, 1)}],
            "batch_vs_long": rounded(batch_fps / long.fps), "goal": "batch_vs_long >= 0.8"}


def live(plan: Plan, work: Path) -> dict:
    import numpy as np

    import vidtrans
    from bench_live import TimedModel, dancer_camera
    from vidtrans.live import run_live

    size = plan.live_size
    model = TimedModel(vidtrans.load_model("pose2person", device=plan.device, size=size))
    clip = dancer_camera(work / "dancer.mp4", size, size, plan.live_frames, 30.0)
    stats = run_live(model, clip.path, window=False, view="side")
    return {"model": f"pose2person at {size}x{size}", "camera": f"synthetic dancer {size}x{size} at 30 fps, {plan.live_frames} frames",
            "precision": model.precision, "pose": stats.pose, "fps": rounded(stats.fps, 1),
            "latency_p50_ms": rounded(stats.latency(50), 1), "latency_p95_ms": rounded(stats.latency(95), 1),
            "model_median_ms": rounded(np.median(model.times_ms), 1), "shown": stats.frames,
            "captured": stats.captured, "dropped": stats.dropped, "goal": "fps >= 30 and p95 <= 50 ms at 512x512"}


def train_step(plan: Plan, work: Path) -> dict:
    from vidtrans.models.checkpoint import ModelCard
    from vidtrans.train.data import SyntheticPairs
    from vidtrans.train.trainer import TrainConfig, Trainer

    # The synthetic source with exact poses and the default recipe, built directly: `train --synthetic`
    # would first detect twenty dances for the card's statistics (a minute), which the step does not use.
    size = plan.train["size"]
    config = TrainConfig(iterations=plan.train_steps + 1, batch_size=1, save_every=10_000, validate_every=10_000,
                         **{k: v for k, v in plan.train.items() if k != "size"})
    card = ModelCard(architecture=config.architecture, native_size=(size, size), input_kind="pose")
    trainer = Trainer(SyntheticPairs(size=size), work / "train", config, card, device=plan.device)
    started = time.perf_counter()
    trainer.step()  # warm-up: cuDNN picks its algorithms
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(plan.train_steps):
        losses = trainer.step()  # on the device: the step does not wait for it
    losses = {k: float(v) for k, v in losses.items()}  # reading them does
    step = (time.perf_counter() - started) / plan.train_steps
    trainer.close()
    return {**plan.train, "batch_size": 1, "amp": trainer.amp, "steps": plan.train_steps,
            "warmup_seconds": rounded(warmup), "step_ms": rounded(step * 1000, 1), "it_per_s": rounded(1 / step),
            "losses": {k: rounded(v, 4) for k, v in losses.items()}}


SECTIONS: dict[str, Callable[[Plan, Path], dict]] = {
    "environment": environment, "cuda_tests": cuda_tests, "precision": precision, "model_alone": model_alone,
    "run": run_vs_naive, "in_flight": in_flight, "encode": encode, "batch": batch_of_clips, "live": live, "train": train_step}


class SectionError(Exception):
    """A section that measured something and still failed (e.g. failing tests): its figures are kept."""

    def __init__(self, message: str, figures: dict):
        super().__init__(message)
        self.figures = figures


# --- report ---------------------------------------------------------------------------------------


class Report:
    """gpu_check.json, rewritten whole (under a temporary name, then renamed) after every section."""

    def __init__(self, path: Path, meta: dict):
        self.path = path
        self.data: dict[str, Any] = {"meta": meta, "sections": {}}

    def record(self, name: str, entry: dict, elapsed: float) -> None:
        self.data["sections"][name] = finite(entry)
        self.data["meta"]["seconds"] = rounded(elapsed)
        temporary = self.path.with_name(self.path.name + ".partial")
        temporary.write_text(json.dumps(self.data, indent=1) + "\n")
        os.replace(temporary, self.path)


def print_section(name: str, entry: dict) -> None:
    print(f"\n== {name}: {entry['status']} ({entry.get('seconds', 0):.1f} s)", flush=True)
    for key, value in entry.items():
        if key not in ("status", "seconds", "rows"):
            print(f"  {key}: {value}")
    rows = entry.get("rows") or []
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        cells = [[str(row.get(c, "")) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print("  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths)))
        for r in cells:
            print("  " + "  ".join(v.rjust(w) for v, w in zip(r, widths)))
    sys.stdout.flush()


def missing_modules() -> list[str]:
    return [package for module, package in MODULES.items() if importlib.util.find_spec(module) is None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry", action="store_true", help="every section on the CPU at tiny sizes")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds; later sections are skipped once used")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run only these sections")
    args = parser.parse_args()
    missing = missing_modules()
    if missing:
        print(f"gpu_check: missing {', '.join(missing)}; install with: {INSTALL}", file=sys.stderr)
        return 2
    import torch

    plan = Plan.for_mode(args.dry)
    if not args.dry and not torch.cuda.is_available():
        print(f"gpu_check: this torch ({torch.__version__}) sees no CUDA device; the GPU sections will record errors "
              "(--dry runs them on the CPU)", file=sys.stderr)
    out = Path(os.environ.get("OUT") or "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = Report(out / "gpu_check.json", {"dry": plan.dry, "budget_seconds": args.budget,
                                             "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                             "plan": dataclasses.asdict(plan)})
    print(f"gpu_check: writing {out / 'gpu_check.json'} ({'dry run on the CPU' if plan.dry else plan.device})", flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        for name, section in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            elapsed = time.monotonic() - started
            if elapsed > args.budget:
                entry = {"status": "skipped", "reason": f"budget of {args.budget:g} s used ({elapsed:.0f} s)"}
            else:
                (work / name).mkdir()
                began = time.perf_counter()
                try:
                    entry = {"status": "ok", **section(plan, work / name)}
                except SectionError as e:
                    entry = {"status": "error", "error": str(e), **e.figures}
                except Exception as e:  # noqa: BLE001 - the next sections still run
                    entry = {"status": "error", "error": one_line(e)}
                entry["seconds"] = rounded(time.perf_counter() - began, 3)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            report.record(name, entry, time.monotonic() - started)
            print_section(name, entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ngpu_check: {time.monotonic() - started:.0f} s, figures in {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
