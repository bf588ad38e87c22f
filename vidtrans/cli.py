"""The `vidtrans` command: parsing and printing only; the work happens in the Python API."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import vidtrans
from vidtrans.errors import VidtransError

# Options shared by several commands, so each is defined and explained once.
ModelOpt = Annotated[str, typer.Option("-m", "--model", help="Model name, checkpoint folder or pix2pix .pth file.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Frames per forward pass.")]
PrecisionOpt = Annotated[str, typer.Option(help="auto (fp16 on CUDA, bf16 on CPUs with AMX, where the model allows; else fp32), fp32, fp16, bf16.")]
StartOpt = Annotated[Optional[float], typer.Option(help="Start time in seconds.")]
EndOpt = Annotated[Optional[float], typer.Option(help="End time in seconds.")]
SideBySideOpt = Annotated[bool, typer.Option("--side-by-side", help="Write input | pose map | output panels for comparison.")]
SmoothOpt = Annotated[str, typer.Option(help="Output smoothing: auto (what the model card recommends, else none), none, ema (blend with the previous frame) or flow (motion-compensated).")]
SmoothStrengthOpt = Annotated[float, typer.Option(help="Smoothing strength in [0, 1).")]
PoseOpt = Annotated[str, typer.Option(help="Pose models: auto (detect unless the input is already a pose-map video), detect, or none (input is pose maps).")]
NormalizeOpt = Annotated[bool, typer.Option("--normalize/--no-normalize", help="Fit the dancer's height and floor line to the target's (pose models).")]
CodecOpt = Annotated[str, typer.Option(help="Video encoder.")]
CrfOpt = Annotated[int, typer.Option(help="Constant rate factor (lower is better quality).")]
PresetOpt = Annotated[str, typer.Option(help="Encoder preset (ultrafast ... veryslow).")]
PixFmtOpt = Annotated[str, typer.Option("--pix-fmt", help="Output pixel format.")]
CompileOpt = Annotated[str, typer.Option(help="torch.compile the model: auto (long clips on CPU), on, off.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]

app = typer.Typer(
    help="Translate video frame by frame with pix2pix-style GANs (pose -> person motion transfer).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
_debug = False


def _version(value: bool) -> None:
    if value:
        print(f"vidtrans {vidtrans.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    global _debug
    _debug = debug


@app.command()
def models() -> None:
    """List the models found by name: architecture, native size, input kind, size on disk, path."""
    from vidtrans.models.checkpoint import CARD_NAME, ModelCard, available_models, model_search_path
    import json

    table = Table("name", "architecture", "native size", "input", "size", "path")
    for folder in available_models():
        card = ModelCard.from_dict(json.loads((folder / CARD_NAME).read_text()))
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        height, width = card.native_size
        table.add_row(folder.name, f"{card.architecture} ngf {card.ngf}", f"{width}x{height}", card.input_kind,
                      f"{size / 2**20:.1f} MiB", str(folder))
    Console().print(table)
    console.print("searched: " + ", ".join(str(p) for p in model_search_path()), style="dim")


@app.command("import-pix2pix")
def import_pix2pix(
    pth: Path = typer.Argument(..., help="An upstream pytorch-CycleGAN-and-pix2pix generator, e.g. latest_net_G.pth."),
    output: Path = typer.Option(..., "-o", "--output", help="Checkpoint folder to write, e.g. checkpoints/facades."),
    input_kind: str = typer.Option("rgb", help="What the model expects: rgb (images) or pose (OpenPose-style maps)."),
    size: int = typer.Option(256, help="Native square size the model was trained at."),
    normalization: str = typer.Option("sample", help="sample: batch norm with each frame's statistics (pix2pix's "
                                      "test default); running: eval-mode running statistics (pix2pix --eval)."),
    overwrite: bool = typer.Option(False, help="Replace an existing checkpoint folder."),
) -> None:
    """Convert an upstream pix2pix/CycleGAN generator (.pth) into a vidtrans checkpoint folder."""
    from vidtrans.models.checkpoint import CARD_NAME, describe, import_pix2pix as do_import, save_checkpoint

    if input_kind not in ("rgb", "pose"):
        raise VidtransError(f"--input-kind must be rgb or pose, not {input_kind!r}")
    if normalization not in ("sample", "running"):
        raise VidtransError(f"--normalization must be sample or running, not {normalization!r}")
    if (output / CARD_NAME).exists() and not overwrite:
        raise VidtransError(f"{output} already holds a checkpoint; pass --overwrite to replace it")
    checkpoint = do_import(pth, input_kind=input_kind)
    card = checkpoint.card
    card.native_size = (size, size)
    card.normalization = normalization
    save_checkpoint(output, checkpoint.build(), card)
    console.print(f"wrote {output} ({describe(card)})")


@app.command()
def run(
    input: Path = typer.Argument(..., help="Video to translate (any format FFmpeg reads).", show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output video (default: INPUT_STEM.MODEL.mp4 beside the input)."),
    model: ModelOpt = "pose2person",
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 8,
    precision: PrecisionOpt = "auto",
    start: StartOpt = None,
    end: EndOpt = None,
    side_by_side: SideBySideOpt = False,
    smooth: SmoothOpt = "auto",
    smooth_strength: SmoothStrengthOpt = 0.5,
    pose: PoseOpt = "auto",
    keypoints: Optional[Path] = typer.Option(None, help="Use these keypoints (NPZ, or OpenPose/DWPose JSON) instead of detecting."),
    normalize: NormalizeOpt = True,
    codec: CodecOpt = "libx264",
    crf: CrfOpt = 18,
    preset: PresetOpt = "medium",
    pix_fmt: PixFmtOpt = "yuv420p",
    compile: CompileOpt = "auto",
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    json_summary: JsonOpt = False,
) -> None:
    """Translate a video with a model: same frames, same timestamps, audio kept."""
    import json

    from vidtrans.pipeline import translate_video

    translator = vidtrans.load_model(model, device=device, precision=precision)
    with _progress(f"{input.name} -> {translator.name}") as update:
        summary = translate_video(
            input, output, translator, batch_size=batch_size, start=start, end=end, smoothing=smooth,
            smoothing_strength=smooth_strength, side_by_side_view=side_by_side, pose=pose, keypoints=keypoints,
            normalize=normalize, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, overwrite=overwrite,
            compile=compile, progress=update)
    if json_summary:
        print(json.dumps(summary.to_dict()))
    notes = [f"pose: {summary.pose}"] if summary.pose else []
    if summary.corrupt_frames:
        notes.append(f"{summary.corrupt_frames} corrupt frame(s) replaced by the previous good frame")
    if summary.smoothing != "none":
        notes.append(f"flicker {summary.flicker_ratio:.2f}x the input's")
    console.print(f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps) -> {summary.output}"
                  + "".join(f"; {n}" for n in notes))


@app.command()
def pose(
    input: Path = typer.Argument(..., help="Video of a person.", show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Pose-map video (default: INPUT_STEM.pose.mp4 beside the input)."),
    keypoints: Optional[Path] = typer.Option(None, "--keypoints", help="Also save the keypoints as NPZ (array 'keypoints', frames x 18 x 3, input pixels)."),
    start: StartOpt = None,
    end: EndOpt = None,
    codec: CodecOpt = "libx264",
    crf: CrfOpt = 18,
    preset: str = typer.Option("superfast", help="Encoder preset (ultrafast ... veryslow). Pose maps are flat graphics: superfast loses nothing visible at the same CRF and keeps 720p above 35 fps; files are about 1 Mbit/s at 720p."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    json_summary: JsonOpt = False,
) -> None:
    """Detect the body pose in every frame and write OpenPose-style pose maps (same frames and timestamps)."""
    import json

    from vidtrans.pipeline import default_output_path, render_pose_video

    output = output or default_output_path(input, "pose")
    with _progress(f"{input.name} -> pose") as update:
        summary = render_pose_video(input, output, keypoints_out=keypoints, start=start, end=end, codec=codec,
                                    crf=crf, preset=preset, overwrite=overwrite, progress=update)
    if json_summary:
        print(json.dumps(summary.to_dict()))
    console.print(f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} fps), person found in "
                  f"{summary.extra['frames_with_person']} -> {summary.output}"
                  + (f" and {keypoints}" if keypoints else ""))


@app.command()
def train(
    target: Optional[Path] = typer.Argument(None, help="Video of the target person (their whole body, a few minutes).", show_default=False),
    output: Path = typer.Option(..., "-o", "--output", help="Checkpoint folder to write (and resume from)."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Train on our procedural character instead of a video."),
    data: Optional[Path] = typer.Option(None, "--data", help="Paired folder: side-by-side AB images, or A/ and B/ subfolders."),
    input_kind: str = typer.Option("rgb", help="With --data: rgb, or pose when A images are pose maps."),
    direction: str = typer.Option("AtoB", help="With --data: AtoB or BtoA."),
    iterations: int = typer.Option(2000, help="Training iterations (each one batch)."),
    batch_size: int = typer.Option(1, help="Samples per iteration (per process under torchrun)."),
    architecture: str = typer.Option("unet_256", "--arch", help="unet_256, unet_128, resnet_9blocks or resnet_6blocks."),
    ngf: int = typer.Option(64, help="Generator width."),
    ndf: int = typer.Option(64, help="Discriminator width."),
    size: int = typer.Option(256, help="Training resolution (square)."),
    lr: float = typer.Option(2e-4, help="Adam learning rate (decays linearly to 0 over the second half)."),
    lambda_l1: float = typer.Option(100.0, "--lambda-l1", help="Weight of the L1 loss against the GAN loss."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (torchrun picks cuda:LOCAL_RANK)."),
    resume: bool = typer.Option(False, help="Continue from the checkpoint in --output."),
    save_every: int = typer.Option(500, help="Write the checkpoint every N iterations."),
    validate_every: int = typer.Option(500, help="Score the held-out split (SSIM/PSNR) and save a sample grid every N iterations."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train a pix2pix model (conditional GAN + L1) on a target video, a paired folder, or synthetic data.

    Several GPUs: torchrun --nproc_per_node N -m vidtrans train ...
    """
    from vidtrans.models.checkpoint import ModelCard
    from vidtrans.pose.render import PoseStyle
    from vidtrans.train.data import PairedFolder, SyntheticPairs, VideoPairs
    from vidtrans.train.trainer import TrainConfig, Trainer

    if sum(x is not None and x is not False for x in (target, data, synthetic or None)) != 1:
        raise VidtransError("give exactly one data source: a target video, --data DIR or --synthetic")
    if iterations < 1 or batch_size < 1:
        raise VidtransError("--iterations and --batch-size must be at least 1")
    style = PoseStyle()
    card = ModelCard(architecture=architecture, native_size=(size, size), input_kind="pose",
                     pose_style=style.to_dict(), normalization="sample")
    if synthetic:
        source = SyntheticPairs(size=size, style=style)
        card.target_pose_stats = source.target_pose_stats()
        card.description = "pose map -> our procedural target character (vidtrans.train.synth.TARGET_LOOK)"
        card.training = {"data": "synthetic (procedural character and dances rendered by vidtrans)",
                         "train_seeds": [source.train_seeds.start, source.train_seeds.stop],
                         "validation_seed": source.validation_seed}
    elif data is not None:
        if input_kind not in ("rgb", "pose"):
            raise VidtransError(f"--input-kind must be rgb or pose, not {input_kind!r}")
        source = PairedFolder(data, size=size, direction=direction, flip=input_kind == "rgb")
        card.input_kind = input_kind
        card.pose_style = style.to_dict() if input_kind == "pose" else None
        card.training = {"data": f"paired folder {data.name}", "pairs": len(source.pairs)}
    else:
        with _progress(f"{target.name} poses") as update:
            source = VideoPairs(target, size=size, style=style, progress=update)
        card.target_pose_stats = source.target_pose_stats()
        card.description = f"pose map -> the person in {target.name}"
        card.training = {"data": f"target video {target.name}", "frames": len(source.frames)}
    config = TrainConfig(iterations=iterations, batch_size=batch_size, architecture=architecture, ngf=ngf, ndf=ndf,
                         lr=lr, lambda_l1=lambda_l1, save_every=save_every, validate_every=validate_every, seed=seed)
    columns = [TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("train", total=iterations, stats="")
        last_metrics: dict[str, float] = {}

        def on_step(iteration: int, losses: dict[str, float]) -> None:
            last_metrics.update({k: v for k, v in losses.items() if k in ("ssim", "psnr")})
            stats = (f"{losses['it_s']:.2f} it/s  G {losses['g_gan']:.3f}+{losses['g_l1']:.3f}·λ  D {losses['d']:.3f}"
                     + "".join(f"  {k} {v}" for k, v in last_metrics.items()))
            bar.update(task, completed=iteration, stats=stats)
            if not console.is_terminal and (iteration % validate_every == 0 or iteration == iterations):
                console.print(f"iteration {iteration}/{iterations}: {stats}")

        trainer = Trainer(source, output, config, card, device=device, resume=resume, on_step=on_step)
        bar.update(task, completed=trainer.iteration)
        metrics = trainer.fit()
    console.print(f"wrote {output} after {trainer.iteration} iterations" +
                  (f": held-out ssim {metrics['ssim']}, psnr {metrics['psnr']} dB" if metrics else ""))


@app.command()
def live(
    model: ModelOpt = "pose2person",
    camera: str = typer.Option("0", "--camera", help="Camera index, or a video file or URL standing in for one (played at its own frame rate)."),
    size: Optional[str] = typer.Option(None, "--size", help="WIDTHxHEIGHT: capture at this size (frames are resized to it)."),
    view: str = typer.Option("side", help="side (camera | pose | output), output or pose; v cycles them in the window."),
    no_window: bool = typer.Option(False, "--no-window", help="No preview window (headless)."),
    virtual_cam: bool = typer.Option(False, "--virtual-cam", help="Send the view to a virtual webcam (pip install 'vidtrans[live]')."),
    record: Optional[Path] = typer.Option(None, "--record", help="Record the view (without the HUD) to this video, at capture times."),
    serve: Optional[str] = typer.Option(None, "--serve", help="Serve a page with the view as MJPEG at [HOST:]PORT (host 127.0.0.1 unless given)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after N frames shown."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Write frames, fps, latency p50/p95, dropped, device as JSON."),
    loop: bool = typer.Option(False, "--loop", help="Play a video file camera again from the start when it ends."),
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    smooth: str = typer.Option("none", help="Output smoothing: none, auto (what the model card recommends), ema or flow (causal; costs a few ms a frame)."),
    smooth_strength: SmoothStrengthOpt = 0.5,
    normalize: bool = typer.Option(True, "--normalize/--no-normalize", help="Pose models: fit the dancer to the target's body once ~2 s of poses are seen."),
    overwrite: bool = typer.Option(False, help="Replace an existing --record file."),
) -> None:
    """Translate a webcam live: preview window (q quit, space pause, v view, s snapshot), recording, MJPEG, virtual camera."""
    from vidtrans.live import parse_size, run_live

    translator = vidtrans.load_model(model, device=device, precision=precision)

    def started(info: dict) -> None:
        console.print(f"live: {info['camera']} {info['size']} at {info['fps']:.0f} fps -> {translator.name} "
                      f"({translator.device}); Ctrl-C to stop" + (f"; watch at {info['url']}" if info["url"] else ""),
                      markup=False, highlight=False, soft_wrap=True)

    result = run_live(translator, camera, size=parse_size(size), view=view, window=not no_window, record=record,
                      serve=serve, virtual_cam=virtual_cam, max_frames=max_frames, stats_path=stats, smoothing=smooth,
                      smoothing_strength=smooth_strength, normalize=normalize, loop=loop, overwrite=overwrite,
                      on_start=started)
    console.print(f"{result.summary()}; {result.ended}" + (f"; pose {result.pose}" if result.pose else "")
                  + (f" -> {record}" if record and result.frames else ""), markup=False, highlight=False, soft_wrap=True)


@app.command()
def batch(
    input_dir: Path = typer.Argument(..., help="Folder of clips (searched recursively).", show_default=False),
    output_dir: Path = typer.Option(..., "-o", "--output", help="Folder for the outputs; mirrors the input tree, same file names."),
    model: ModelOpt = ...,
    pattern: Optional[list[str]] = typer.Option(None, "--pattern", help="File name pattern to translate (repeatable; default: common video extensions)."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Look in subfolders."),
    workers: Optional[int] = typer.Option(None, help="Clips translated at once (default: 2 per device)."),
    devices: str = typer.Option("auto", help="Comma-separated devices the workers take turns on, e.g. cuda:0,cuda:1."),
    ext: Optional[str] = typer.Option(None, help="Output container extension, e.g. mp4 (default: the input's)."),
    overwrite: bool = typer.Option(False, help="Redo every clip, even finished ones, and replace existing files."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a JSON report: per clip input, output, status, frames, seconds, fps, error; and totals."),
    batch_size: BatchSizeOpt = 8,
    precision: PrecisionOpt = "auto",
    start: Optional[float] = typer.Option(None, help="Start time in seconds (every clip)."),
    end: Optional[float] = typer.Option(None, help="End time in seconds (every clip)."),
    side_by_side: SideBySideOpt = False,
    smooth: SmoothOpt = "auto",
    smooth_strength: SmoothStrengthOpt = 0.5,
    pose: PoseOpt = "auto",
    normalize: NormalizeOpt = True,
    codec: CodecOpt = "libx264",
    crf: CrfOpt = 18,
    preset: PresetOpt = "medium",
    pix_fmt: PixFmtOpt = "yuv420p",
    compile: CompileOpt = "auto",
) -> None:
    """Translate every clip in a folder; a rerun skips finished clips and redoes changed or failed ones.

    A broken clip is reported with its reason and the batch goes on. Progress is kept in OUTPUT_DIR/.vidtrans-batch.json.

    Exit status: 0 every clip translated or skipped; 1 a clip failed (or the model could not be loaded); 2 usage error (bad option, INPUT_DIR missing or without clips, OUTPUT_DIR = INPUT_DIR).
    """
    from vidtrans.batch import BatchUsageError, RichDisplay, summary_tables, translate_folder

    try:
        with RichDisplay(console) as display:
            result = translate_folder(
                input_dir, output_dir, model, patterns=pattern, recursive=recursive, workers=workers,
                devices=[d.strip() for d in devices.split(",") if d.strip()], precision=precision, ext=ext,
                overwrite=overwrite, compile=compile, listener=display, batch_size=batch_size, start=start, end=end,
                smoothing=smooth, smoothing_strength=smooth_strength, side_by_side_view=side_by_side, pose=pose,
                normalize=normalize, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt)
    except BatchUsageError as e:
        print(f"vidtrans: error: {e}", file=sys.stderr)
        raise typer.Exit(2)
    if report:
        result.save(report)
    for table in summary_tables(result):
        console.print(table)
    if result.failed:
        raise typer.Exit(1)


@app.command("eval")
def evaluate(
    model: ModelOpt = "pose2person",
    synthetic: bool = typer.Option(False, "--synthetic", help="Score on a held-out procedural dance with exact ground truth."),
    seed: int = typer.Option(20_000_000, help="Dance seed for --synthetic (must not be a training seed)."),
    frames: int = typer.Option(64, help="Frames of the dance for --synthetic."),
    data: Optional[Path] = typer.Option(None, "--data", help="Paired folder (AB images, or A/ and B/) to score instead."),
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    batch_size: BatchSizeOpt = 8,
    smooth: SmoothOpt = "auto",
    json_summary: bool = typer.Option(False, "--json", help="Print one JSON object (ssim, psnr, flicker_ratio, ...)."),
) -> None:
    """Score a model against ground truth: SSIM, PSNR (dB) and flicker ratio (output vs truth)."""
    import json

    from vidtrans.evaluate import evaluate as score, folder_ground_truth, synthetic_ground_truth

    if synthetic == (data is not None):
        raise VidtransError("give exactly one of --synthetic or --data DIR")
    translator = vidtrans.load_model(model, device=device, precision=precision)
    if synthetic:
        inputs, truth = synthetic_ground_truth(translator, seed, frames)
    else:
        inputs, truth = folder_ground_truth(translator, data)
    result = {"model": translator.name, **({"seed": seed} if synthetic else {"data": str(data)}),
              **score(translator, inputs, truth, batch_size=batch_size, smoothing=smooth)}
    if json_summary:
        print(json.dumps(result))
    else:
        console.print(f"{result['model']}: ssim {result['ssim']}, psnr {result['psnr']} dB, "
                      f"flicker ratio {result['flicker_ratio']} over {result['frames']} frames")


@contextlib.contextmanager
def _progress(label: str):
    """A rich progress bar (frames, fps, ETA) fed by `update(done, total)`; silent when not a terminal."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]} fps"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(label, total=None, fps="-")
        started = time.perf_counter()

        phase = [""]

        def update(done: int, total: int, what: str = "") -> None:
            nonlocal started
            if what != phase[0]:  # a new pass (e.g. pose detection, then translation) restarts the bar
                phase[0], started = what, time.perf_counter()
            fps = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, description=f"{label} {what}".rstrip(), completed=done,
                       total=max(total, done) or None, fps=f"{fps:.1f}")

        yield update


def main() -> None:
    import av.logging
    import cv2

    # FFmpeg's and OpenCV's own messages (x264 statistics, "error while decoding", libpng
    # warnings) would bury our one-line errors and summaries; what matters reaches the user
    # through VidtransError and the summary.
    av.logging.set_level(av.logging.PANIC)
    cv2.setLogLevel(0)  # 0: silent
    try:
        app()
    except VidtransError as e:
        if _debug:
            raise
        print(f"vidtrans: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("vidtrans: interrupted", file=sys.stderr)
        sys.exit(130)
