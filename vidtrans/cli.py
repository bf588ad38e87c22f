"""The `vidtrans` command: parsing and printing only; the work happens in the Python API."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import itertools
import os
import re
import signal
import sys
import threading
import time
import traceback
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer._click import exceptions as click_exceptions
from typer._click import globals as click_globals
from typer._click.core import ParameterSource
from typer.core import TyperGroup, TyperOption
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import vidtrans
from vidtrans.errors import STOP_SIGNALS, UsageError, VidtransError, count, one_line
from vidtrans.options import (BACKEND_HELP, MAX_SIZE, MIN_SIZE, POSE_VIDEO_ENCODE, SHOWN_CHARACTERS, Backend,
                              BatchOptions, InputKind, LiveOptions, Normalization, PathText, Precision, RunOptions,
                              TrainOptions, shown, spelled)

def _path(value: str) -> Path:
    # Typer reads an empty path as ".": `batch ""` would translate every clip below the current
    # folder, `run x.mp4 -o ""` would blame a folder nobody named.
    if not value:
        raise typer.BadParameter("an empty path; give a file or folder name")
    return Path(_local(value))


def _expanded(value: str) -> str:
    """`~` and `~user` at a path's start as the shell expands them: it does not in `--output=~/x`,
    which would make a folder named ~ in the current one (that a later `rm -r ~` aims at home)."""
    return os.path.expanduser(value)


def _local(value: str) -> str:
    """A local file's or folder's name, as _expanded reads it; a URL is refused, which a Path would
    make a name nobody typed (https://host/a.mp4 as https:/host/a.mp4, "not found")."""
    if "://" in value:  # only then: the check imports the reader (PyAV, OpenCV)
        from vidtrans.video.reader import check_input_name

        check_input_name(value)
    return _expanded(value)


def _output_file(value: str) -> Path:
    """An output file's path, as _path reads it; a trailing slash, which names a folder, is refused
    here, where it is still there to see."""
    from vidtrans.atomic import check_file_name

    check_file_name(_local(value))
    return _path(value)


def _input_file(value: str) -> Path:
    """An input video's path, as _path reads it; what a Path would hide (a URL's "//", a file's
    name ending in a slash) is refused here, where the text is still there to see."""
    from vidtrans.video.reader import check_input_name

    check_input_name(_expanded(value))
    return _path(value)


# How every path option is read (see _path); path arguments take `parser=_path` alone, since a
# metavar would replace their name in --help and in messages. Options naming a file to write take
# AS_OUTPUT_FILE, options naming a file to read AS_INPUT_FILE.
AS_PATH = {"parser": _path, "metavar": "<path>"}
AS_OUTPUT_FILE = {"parser": _output_file, "metavar": "<path>"}
AS_INPUT_FILE = {"parser": _input_file, "metavar": "<path>"}

# Options shared by several commands, so each is defined and explained once. The options of
# translation and encoding are fields of vidtrans.options' objects, made into flags by `takes`.
MODEL_HELP = "Model name (vidtrans models lists them), checkpoint folder or pix2pix .pth file."
ModelOpt = Annotated[str, typer.Option("-m", "--model", parser=_local, help=MODEL_HELP)]
DeviceOpt = Annotated[str, typer.Option(help="auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda or cuda:N (GPU number N, from 0).")]
PrecisionOpt = Annotated[Precision, typer.Option(help="auto (fp16 on CUDA, bf16 on CPUs with AMX or AVX-512 BF16, where the model allows, except ResNets with per-frame norms; else fp32), fp32, fp16 (CUDA only) or bf16.")]
# `batch` takes it as a field of BatchOptions (same help), since it says how its models are loaded.
BackendOpt = Annotated[Backend, typer.Option(help=BACKEND_HELP)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]
ModelSizeOpt = Annotated[Optional[int], typer.Option("--model-size", min=MIN_SIZE, max=MAX_SIZE, help=f"Translate frames scaled to this longer side in pixels ({MIN_SIZE}-{MAX_SIZE}; pose maps are drawn at it); default: the model's native size.", show_default=False)]


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _flags_of_command() -> dict[str, str]:
    """The running command's flags by parameter name: {"pix_fmt": "--pix-fmt", "keypoints": "--keypoints", ...};
    a switch also as each of its values is asked for: {"normalize=False": "--no-normalize"},
    and a lone flag as the value it asks for: {"overwrite=True": "--overwrite"}."""
    ctx = click_globals.get_current_context(silent=True)
    if ctx is None:  # called directly, not by the command line
        return {}
    names = {}
    for p in ctx.command.params:
        if isinstance(p, TyperOption) and p.name:
            names[p.name] = max(p.opts, key=len)
            if p.secondary_opts:
                names[f"{p.name}=True"], names[f"{p.name}=False"] = names[p.name], max(p.secondary_opts, key=len)
            elif p.is_bool_flag:  # given, it asks for the value its default is not
                names[f"{p.name}={not p.default}"] = names[p.name]
    return names


def flags_in_messages(command):
    """`command` with the library's messages naming settings by its flags (see options.spell);
    `takes` does the same for the commands it gives options to."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with spelled(_flags_of_command()):
            return command(*args, **kwargs)

    return wrapper


def takes(options_type: type, *, param: str = "options", only: tuple[str, ...] | None = None,
          metavars: dict[str, str] | None = None, **defaults: Any):
    """Give a command one flag per field of `options_type` (a vidtrans.options object, nested
    options included), and hand the command the values as one object in its parameter `param`.

    only: the fields to offer (a nested object's name offers all of its fields); metavars: what
    --help shows for a field's value where its type says too little (a field whose cli_type is
    PathText, a path held in a str, shows `<path>`, and a leading ~ in it is expanded);
    defaults: different defaults for this command (also for fields that are not flags).
    """
    def flags(cls: type) -> list[tuple[dataclasses.Field, Any]]:
        hints = typing.get_type_hints(cls)
        found = []
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                if only is None or f.name in only:
                    found += flags(hints[f.name])
            elif f.metadata.get("cli", True) and (only is None or f.name in only or cls is not options_type):
                found.append((f, f.metadata.get("cli_type") or hints[f.name]))
        return found

    def build(cls: type, values: dict[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                kwargs[f.name] = build(hints[f.name], values)
            elif f.name in values:
                kwargs[f.name] = values[f.name]
        return cls(**kwargs)

    generated = []
    for f, hint in flags(options_type):
        decls = [_flag(f)] + ([f.metadata["short"]] if f.metadata.get("short") else [])
        default = defaults.get(f.name, f.default)
        path = hint is PathText
        info = typer.Option(*decls, help=f.metadata["help"], show_default=default is not None,
                            metavar="<path>" if path else (metavars or {}).get(f.name),
                            parser=_local if path else None)
        generated.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                           annotation=Annotated[str if path else hint, info]))
    names = {p.name for p in generated}

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != param]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {**defaults, **{name: kwargs.pop(name) for name in names}}
            # The library names parameters (pix_fmt); here the user typed flags (--pix-fmt).
            with spelled(_flags_of_command()):
                return command(*args, **{param: build(options_type, values)}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + generated)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + generated}
        return wrapper

    return decorate


class _Commands(TyperGroup):
    """The commands: `vidtrans --help` lists them as the README introduces them, the main job first
    (typer lists them as they are defined); each command's words are looked over for an option
    missing its value before the command parses them (`_refuse_options_as_values`)."""

    ORDER = ("run", "pose", "batch", "live", "train", "eval", "models", "import-pix2pix", "export")

    def list_commands(self, ctx) -> list[str]:
        return sorted(super().list_commands(ctx), key=lambda name: (name not in self.ORDER,
                                                                    self.ORDER.index(name) if name in self.ORDER else 0))

    def resolve_command(self, ctx, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            _refuse_options_as_values(command.context_class(command, info_name=name, parent=ctx), rest)
        return name, command, rest


def _refuse_options_as_values(ctx, args: list[str]) -> None:
    """A usage error for an option whose value was left out: the parser takes the next word as its
    value whatever it is, so `-o --overwrite` wrote a batch into a folder named --overwrite and
    `train -o --resume` trained into one. A value that is one of the command's options, or the `--`
    that ends them, is refused; one meant to start so is given attached (`--output=--json.mp4`). The
    root's options count too: `--debug` typed after the command is a misplaced option, not a name."""
    options = [p for p in ctx.command.get_params(ctx) if isinstance(p, TyperOption)]
    root = [p for p in ctx.parent.command.get_params(ctx.parent) if isinstance(p, TyperOption)] if ctx.parent else []
    names = {name for p in options + root for name in (*p.opts, *p.secondary_opts)}
    takes_values = {name: p for p in options if not p.is_flag for name in p.opts}
    words = iter(args)
    for word in words:
        if word == "--":  # what follows is arguments, as the user said
            return
        if (option := takes_values.get(word)) is None:
            continue
        for value in itertools.islice(words, option.nargs):
            if value == "--" or value in names or (value.startswith("--") and value.partition("=")[0] in names):
                what = "ends the options" if value == "--" else "is an option"
                hint = (f" (a value that starts with a dash goes attached: {max(option.opts, key=len)}={value})"
                        if option.nargs == 1 else "")
                raise click_exceptions.BadOptionUsage(
                    word, f"{word} needs {count(option.nargs, 'value') if option.nargs > 1 else 'a value'}, and "
                          f"{value} {what}{hint}", ctx)


app = typer.Typer(
    cls=_Commands,
    help="Translate video frame by frame with pix2pix-style GANs (pose -> person motion transfer).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help texts are plain text: as rich markup, "pip install 'vidtrans[live]'" would lose "[live]".
    rich_markup_mode=None,
)
class _Terminal(Console):
    """Rich's console, minus its exit on a closed stream: rich ends the process with status 1 (and
    points standard output, where --json goes, at /dev/null). A terminal that went away (SIGHUP)
    takes the rest of the messages with it; the command still finishes as it would have."""

    def on_broken_pipe(self) -> None:
        self.quiet = True


# Plain text, never markup or emoji codes: a path such as "take [final].mp4" would lose its "[final]",
# and ":x: take.mp4" would read "❌ take.mp4".
console = _Terminal(stderr=True, markup=False, highlight=False, emoji=False)
_debug = False
# The command being run, as usage errors name it ("vidtrans run", "python -m vidtrans run"): some
# (an option missing its values) come from its parser before its own context exists.
_invoked = "vidtrans"


def _version(value: bool) -> None:
    if value:
        print(f"vidtrans {vidtrans.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    global _debug, _invoked
    _debug = debug
    _invoked = " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))


@app.command(short_help="List the models found by name.")
def models() -> None:
    """List the models found by name: architecture, native size, what they take (rgb or grey frames, or body or whole-body pose maps; temporal: also their own previous output), the size of their own files (not training state or samples), path."""
    from rich.markup import escape

    from vidtrans.models.checkpoint import (available_models, check_has_weights, check_model_files, model_files,
                                            model_search_path, read_card)
    from vidtrans.pose import PoseStyle

    table = Table("name", "architecture", "native size", "input", "temporal", "size", "path")
    for column in table.columns:
        column.overflow = "fold"  # wrapped on a narrow terminal, never cut short: a cut path is no use
    problems = []
    for folder in available_models():
        # What loading reads: a folder may also hold training state (train_state.pt, several times
        # the weights) and samples, which the model does not need.
        try:
            size = f"{sum(f.stat().st_size for f in model_files(folder) if f.is_file()) / 2**20:.1f} MiB"
        except OSError:  # a folder that cannot be looked into: reading its card says why below
            size = "-"
        # Names and paths as they are: the table's console would take "[v2]" in "facades [v2]" for markup;
        # control characters escaped (one_line), so that a newline in a name does not split its row.
        name, shown = escape(one_line(folder.name)), escape(one_line(str(folder)))
        what = "unusable card"
        try:
            card = read_card(folder)
            what = "unusable: no weights"
            check_has_weights(folder)
            what = "unusable files"
            check_model_files(folder, card)
        except VidtransError as e:  # one unusable model must not hide the good ones
            problems.append(str(e))
            table.add_row(name, what, "-", "-", "-", size, shown)
            continue
        height, width = card.native_size
        expects = card.input_kind
        if card.input_kind == "pose":
            expects += " (whole body)" if PoseStyle.for_card(card).whole_body else " (body)"
        if card.input_nc == 1:  # the frames are made grey for it, whatever their colours
            expects = "grey" if card.input_kind == "rgb" else f"{expects} in grey"
        table.add_row(name, f"{card.architecture} ngf {card.ngf}", f"{width}x{height}", expects,
                      "yes" if card.temporal else "no", size, shown)
    out = Console()
    if not out.is_terminal:
        out.width = 1 << 16  # piped: one line per model, whatever the lengths, for grep and scripts
    out.print(table)
    for problem in problems:
        print(one_line(f"vidtrans: warning: {problem}"), file=sys.stderr)
    console.print("searched: " + ", ".join(str(p) for p in model_search_path()), style="dim")


@app.command(short_help="Export a model's generator to ONNX.")
@flags_in_messages
def export(
    model: str = typer.Argument(..., help=MODEL_HELP, show_default=False),
    output: Path = typer.Option(..., "-o", "--output", **AS_OUTPUT_FILE, help="ONNX file to write, e.g. model.onnx."),
    overwrite: bool = typer.Option(False, help="Replace an existing file."),
) -> None:
    """Export a model's generator to ONNX (needs the onnx extra), checked against PyTorch's output.

    The graph takes float32 N x C x H x W in [-1, 1] (C: 3; 1 for grey models; 6 for temporal models: the frame, then the previous output), H and W any multiple of what the network needs (a U-Net's halvings: unet_256 256; a ResNet 4, from 8 up), and gives N x 3 (or 1) x H x W; normalization is the model card's (per-sample statistics by default), as vidtrans applies it. Resizing and padding frames is the caller's.
    """
    from vidtrans.models.checkpoint import load_checkpoint
    from vidtrans.models.networks import input_multiple, smallest_input
    from vidtrans.models.onnx_backend import export_model, require

    checkpoint = load_checkpoint(model)
    normalization = checkpoint.card.normalization
    # A stop inside an import (torch's, onnx's) is only noted (see _stop): taken before the file is
    # written, not after. The imports export_model makes are made now; a missing extra is told there.
    with contextlib.suppress(VidtransError):
        for module in ("onnx", "onnxruntime"):
            require(module, "ONNX export")
    _stop_if_asked()
    difference = export_model(checkpoint, output, normalization, overwrite=overwrite)
    architecture = checkpoint.card.architecture
    multiple, smallest = input_multiple(architecture), smallest_input(architecture)
    # A ResNet takes multiples of 4 from 8 up: its graph fails on 4 x 4 (reflection padding).
    sizes = f"multiples of {multiple}" + (f", at least {smallest}" if smallest > multiple else "")
    console.print(f"wrote {output}: input 'input' float32 N x {checkpoint.card.input_nc} x H x W in [-1, 1], H and W "
                  f"{sizes}, {normalization} normalization; largest difference from PyTorch "
                  f"{difference:.1g}", soft_wrap=True)


@app.command("import-pix2pix", short_help="Convert an upstream pix2pix .pth generator.")
@flags_in_messages
def import_pix2pix(
    pth: Path = typer.Argument(..., parser=_input_file, help="An upstream pytorch-CycleGAN-and-pix2pix generator, e.g. latest_net_G.pth."),
    # A str: typer would make '' the current folder, which convert_pix2pix refuses only as ''.
    output: str = typer.Option(..., "-o", "--output", metavar="<path>", parser=_local, help="Checkpoint folder to write, e.g. checkpoints/facades."),
    input_kind: InputKind = typer.Option(InputKind.RGB, help="What the model expects: rgb (images) or pose (OpenPose-style maps)."),
    size: Optional[int] = typer.Option(None, help="Native square size in pixels the model was trained at (pix2pix's --crop_size; 16-8192); default: unet_128 128, others 256.", show_default=False),
    normalization: Normalization = typer.Option(Normalization.SAMPLE, help="sample: batch norm with each frame's statistics (pix2pix's "
                                                "test default); running: eval-mode running statistics (pix2pix --eval)."),
    overwrite: bool = typer.Option(False, help="Replace an existing checkpoint folder."),
) -> None:
    """Convert an upstream pix2pix/CycleGAN generator (.pth) into a vidtrans checkpoint folder."""
    from vidtrans.models.checkpoint import convert_pix2pix, describe

    _stop_if_asked()  # one noted inside torch's import (see _stop), before the folder is written
    card = convert_pix2pix(pth, output, input_kind=input_kind, size=size, normalization=normalization,
                           overwrite=overwrite)
    console.print(f"wrote {output} ({describe(card)})")


@app.command(short_help="Translate a video with a model.")
@takes(RunOptions)
def run(
    input: Path = typer.Argument(..., parser=_input_file, help="Video to translate (any format FFmpeg reads).", show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", **AS_OUTPUT_FILE, help="Output video (default: INPUT_STEM.MODEL.mp4 beside the input)."),
    model: ModelOpt = "pose2person",
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.AUTO,
    backend: BackendOpt = Backend.AUTO,
    model_size: ModelSizeOpt = None,
    keypoints: Optional[Path] = typer.Option(None, **AS_INPUT_FILE, help="Use these keypoints (NPZ, or OpenPose/DWPose JSON) instead of detecting."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    json_summary: JsonOpt = False,
    options: RunOptions = RunOptions(),
) -> None:
    """Translate a video with a model: same frames, same timestamps, audio kept."""
    import json

    from vidtrans.atomic import OutputClaim
    from vidtrans.models.translator import backend_for_compile
    from vidtrans.pipeline import check_before_loading, no_person_shows, translate_video
    from vidtrans.video.reader import corrupt_frames_note

    check_before_loading(model, input, output, overwrite, options.encode, keypoints)
    with contextlib.ExitStack() as claimed:
        if output is not None:
            # An output another process is writing is refused now, not once the model has loaded.
            claimed.enter_context(OutputClaim(output, shared=True))
        translator = vidtrans.load_model(model, device=device, precision=precision, size=model_size,
                                         backend=backend_for_compile(backend, options.compile))
        _stop_if_asked()
        with _progress(f"{input.name} -> {translator.name}") as update:
            summary = translate_video(input, output, translator, options, keypoints=keypoints, overwrite=overwrite,
                                      progress=update)
    if json_summary:
        _product(json.dumps(summary.to_dict()))
    notes = [f"pose: {summary.pose}"] if summary.pose else []
    if summary.frames_without_person:
        notes.append(f"no person in {summary.frames_without_person} of {summary.frames} frames")
    if summary.corrupt_frames:
        notes.append(corrupt_frames_note(summary.corrupt_frames))
    if summary.smoothing != "none":
        ratio = summary.flicker_ratio
        why = "one frame" if summary.flicker_input is None else "the input does not move"
        notes.append(f"flicker n/a ({why})" if ratio is None else f"flicker {_times(ratio)} the input's")
    console.print(f"{count(summary.frames, 'frame')} in {summary.seconds:.1f} s ({summary.fps:.1f} fps) -> {summary.output}"
                  + "".join(f"; {n}" for n in notes))
    _warn_if_no_person(summary, no_person_shows(translator))


def _or_na(value: float | None) -> str:
    """A figure that may not exist (an SSIM of a region nowhere seen) as text."""
    return "n/a" if value is None else str(value)


def _times(ratio: float | None) -> str:
    """A ratio that may not exist (flicker against a still reference) as text, as run's summary
    gives it: "0.93x" (--json keeps its precision)."""
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _warn_if_no_person(summary, consequence: str) -> None:
    """One plain line on stderr when most frames had nobody in them: the run worked (exit 0), but
    its output is probably not what was wanted."""
    if warning := summary.no_person_warning(consequence):
        print(one_line(f"vidtrans: warning: {warning}"), file=sys.stderr)


@app.command(short_help="Detect poses and draw a pose-map video.")
@takes(RunOptions, only=("start", "end", "encode"), preset=POSE_VIDEO_ENCODE.preset, threads=POSE_VIDEO_ENCODE.threads)
def pose(
    input: Path = typer.Argument(..., parser=_input_file, help="Video of a person.", show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", **AS_OUTPUT_FILE, help="Pose-map video (default: INPUT_STEM.pose.mp4 beside the input)."),
    keypoints: Optional[Path] = typer.Option(None, "--keypoints", **AS_OUTPUT_FILE, help="Also save the keypoints as NPZ (array 'keypoints', frames x K x 3 in input pixels; K = 18 body keypoints, or 128 with --whole-body), filtered over time as the pose maps show them."),
    whole_body: bool = typer.Option(False, "--whole-body", help="Also find and draw the face's 68 points and both hands (ControlNet's openpose_full look; found every other frame, at about 1.5x the detection time)."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    json_summary: JsonOpt = False,
    options: RunOptions = RunOptions(),
) -> None:
    """Detect the body pose in every frame and write OpenPose-style pose maps (same frames and timestamps)."""
    import json

    from vidtrans.pipeline import default_output_path, render_pose_video
    from vidtrans.video.reader import corrupt_frames_note

    output = output or default_output_path(input, "pose")
    with _progress(f"{input.name} -> pose") as update:
        summary = render_pose_video(input, output, options, keypoints_out=keypoints, whole_body=whole_body,
                                    overwrite=overwrite, progress=update)
    if json_summary:
        _product(json.dumps(summary.to_dict()))
    corrupt = f"; {corrupt_frames_note(summary.corrupt_frames)}" if summary.corrupt_frames else ""
    console.print(f"{count(summary.frames, 'frame')} in {summary.seconds:.1f} s ({summary.fps:.1f} fps), person found in "
                  f"{summary.extra['frames_with_person']} of {summary.frames} -> {summary.output}"
                  + (f" and {keypoints}" if keypoints else "") + corrupt)
    _warn_if_no_person(summary, "their pose maps are blank")


@app.command(short_help="Train a model on a video or image pairs.")
@takes(TrainOptions)
def train(
    target: Optional[Path] = typer.Argument(None, parser=_input_file, help="Video of the target person (their whole body, a few minutes).", show_default=False),
    # A str: typer would make '' the current folder, which prepare_training refuses only as ''.
    output: str = typer.Option(..., "-o", "--output", metavar="<path>", parser=_local, help="Checkpoint folder to write (and resume from)."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Train on our procedural character instead of a video."),
    data: Optional[Path] = typer.Option(None, "--data", **AS_PATH, help="Paired folder: side-by-side AB images, or A/ and B/ subfolders."),
    options: TrainOptions = TrainOptions(),
) -> None:
    """Train a pix2pix model (conditional GAN + L1) on a target video, a paired folder, or synthetic data.

    Several GPUs: torchrun --nproc_per_node N -m vidtrans train ...
    """
    from vidtrans.train.setup import prepare_training
    from vidtrans.train.trainer import Trainer, launched

    # Under torchrun every process refuses alike and trains alike: rank 0 speaks for them all.
    quiet = launched()[0] > 0
    # A flag left out is taken from the checkpoint --resume continues; one given must agree with it.
    context = click_globals.get_current_context()
    given = {name for name in context.params if context.get_parameter_source(name) != ParameterSource.DEFAULT}
    try:
        with _progress(f"{target.name} poses" if target else "training data", quiet) as update:
            source, config, card = prepare_training(output, options, target=target, data=data, synthetic=synthetic,
                                                    progress=update, given=given)
    except VidtransError as e:
        if quiet:
            raise typer.Exit(2 if isinstance(e, UsageError) else 1) from None
        raise
    # What the run was planned for: a resumed one's plan comes from its checkpoint unless given.
    iterations, validate_every = config.iterations, config.validate_every
    columns = [TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task("train", total=iterations, stats="")
        last_metrics: dict[str, float] = {}

        def on_step(iteration: int, losses: dict[str, float]) -> None:
            _stop_if_asked()
            last_metrics.update({k: v for k, v in losses.items() if k in ("ssim", "psnr")})
            stats = (f"{losses['it_s']:.2f} it/s  G gan {losses['g_gan']:.3f} + L1 {losses['g_l1']:.3f}·λ  "
                     f"D {losses['d']:.3f}"
                     + "".join(f"  {k} {v}" for k, v in last_metrics.items()))
            bar.update(task, completed=iteration, stats=stats)
            if not (quiet or console.is_terminal) and (iteration % validate_every == 0 or iteration == iterations):
                console.print(f"iteration {iteration}/{iterations}: {stats}")

        trainer = Trainer(source, output, config, card, device=options.device, resume=options.resume,
                          on_step=on_step, overwrite=options.overwrite)
        bar.update(task, completed=trainer.iteration)
        metrics = trainer.fit()
    if quiet:
        return
    scored_on = "training-pair" if card.training.get("validated_on") == "training pairs" else "held-out"
    plural = "" if trainer.iteration == 1 else "s"
    console.print(f"wrote {output} after {trainer.iteration} iteration{plural}" +
                  (f": {scored_on} ssim {metrics['ssim']}, psnr {metrics['psnr']} dB" if metrics else ""), soft_wrap=True)


@app.command(short_help="Translate a webcam live.")
@takes(LiveOptions)
def live(
    model: ModelOpt = "pose2person",
    camera: str = typer.Option("0", "--camera", parser=_expanded, help="Camera index, or a video file or URL standing in for one (played at its own frame rate)."),
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.AUTO,
    backend: BackendOpt = Backend.AUTO,
    model_size: ModelSizeOpt = None,
    options: LiveOptions = LiveOptions(),
) -> None:
    """Translate a webcam live: preview window (q or Esc quit, space pause, v view, s snapshot: the view as vidtrans-live-DATE-TIME.png in the current folder), recording, MJPEG, virtual camera."""
    from vidtrans.live import Camera, check_live, run_live

    # What would fail the session is found before the model loads (seconds): its outputs, the
    # display, and the camera itself (opened now, capturing once the model is ready).
    source = Camera(camera, size=options.capture_size, loop=options.loop)
    check_live(options, source, model)
    with contextlib.ExitStack() as stack:
        stack.callback(source.close)
        source.open()
        translator = vidtrans.load_model(model, device=device, precision=precision, size=model_size, backend=backend)
        _stop_if_asked()
        stack.pop_all()

    def started(info: dict) -> None:
        console.print(f"live: {info['camera']} {info['size']} at {info['fps']:.0f} fps -> {translator.name} "
                      f"({translator.device}); Ctrl-C to stop" + (f"; watch at {info['url']}" if info["url"] else ""),
                      soft_wrap=True)

    result = run_live(translator, source, options, on_start=started, stop=_stop_asked)
    asked = [flag for flag, path in (("--record", options.record), ("--stats", options.stats)) if path]
    unwritten = f"; no frame was shown: nothing written to {' or '.join(asked)}" if asked and not result.frames else ""
    console.print(f"{result.summary()}; {result.ended}" + (f"; pose {result.pose}" if result.pose else "")
                  + (f" -> {options.record}" if options.record and result.frames else "") + unwritten, soft_wrap=True)


@app.command(short_help="Translate every clip in a folder.")
@takes(BatchOptions, param="batch_options", metavars={"patterns": "<glob>"})
@takes(RunOptions)
def batch(
    input_dir: Path = typer.Argument(..., parser=_path, help="Folder of clips (searched recursively).", show_default=False),
    # A str: typer would make '' the current folder, which translate_folder refuses only as ''.
    output_dir: str = typer.Option(..., "-o", "--output", metavar="<path>", parser=_local, help="Folder for the outputs; mirrors the input tree, same file names."),
    model: ModelOpt = "pose2person",
    precision: PrecisionOpt = Precision.AUTO,
    model_size: ModelSizeOpt = None,
    options: RunOptions = RunOptions(),
    batch_options: BatchOptions = BatchOptions(),
) -> None:
    """Translate every clip in a folder; a rerun skips finished clips and redoes changed or failed ones.

    A broken clip is reported with its reason and the batch goes on. Progress is kept in the output folder's .vidtrans-batch.jsonl.

    With --ray, every node of the Ray cluster must reach the input and output folders at the same paths (a shared file system) and the model; the manifest, the report and the display stay on this machine.

    Exit status: 0 every clip translated or skipped; 1 a clip failed (or the model could not be loaded, or the report could not be written at the end); 2 usage error (bad option, input_dir missing or without clips, --output the input folder itself, --report naming a clip or an existing file that is not a report); 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), finished clips kept.
    """
    from vidtrans.batch import ReportNotWritten, translate_folder
    from vidtrans.cli_batch_ui import RichDisplay, summary_tables

    unwritten = None
    with RichDisplay(console, stop=_stop_asked) as display:
        try:
            result = translate_folder(input_dir, output_dir, model, options, batch=batch_options,
                                      precision=precision, model_size=model_size, listener=display)
        except ReportNotWritten as e:  # the batch ran: its summary first, then why the report is missing
            result, unwritten = e.report, e
    for table in summary_tables(result):
        console.print(table)
    if unwritten is not None:
        raise unwritten
    if result.failed:
        raise typer.Exit(1)


@app.command("eval", short_help="Score a model against ground truth.")
@takes(RunOptions, only=("batch_size", "smoothing", "smoothing_strength", "normalize"))
def evaluate(
    model: ModelOpt = "pose2person",
    video: Optional[Path] = typer.Option(None, "--video", parser=_input_file, metavar="<path>", help="The target video the model was trained on (vidtrans train VIDEO): score on its held-out last tenth."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Score on a held-out procedural dance (the default for models trained on vidtrans' synthetic data)."),
    seed: Optional[int] = typer.Option(None, help="Dance seed, not one of the model's training seeds (default 20000000).", show_default=False),
    frames: Optional[int] = typer.Option(None, help="Frames to score (default: 300 of the dance, ten seconds, all of --video's held-out tail, every --data pair).", show_default=False),
    size: Optional[tuple[int, int]] = typer.Option(None, "--size", metavar="WIDTH HEIGHT", help="Width and height of the dance video in pixels, even numbers from 16 to 8192 (default 512 512).", show_default=False),
    data: Optional[Path] = typer.Option(None, "--data", **AS_PATH, help="Paired folder (AB images, or A/ and B/) to score instead (model only); one holding train/ and val/ (or test/) is scored on val/ (or test/)."),
    model_only: bool = typer.Option(False, "--model-only", help="Score the model alone: pose maps drawn from the true keypoints, without detection, normalization or encode."),
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.AUTO,
    json_summary: bool = typer.Option(False, "--json", help="Print one JSON object with every figure."),
    options: RunOptions = RunOptions(),
) -> None:
    """Score a model against ground truth, by default end to end: held-out material of the target, given to vidtrans run as a video, against the truth at the model's size.

    Headline: SSIM of the person's box, face and hands, pose error (keypoints detected on the output against the true ones, in pixels at the model's size, and the share missed; the detector's own error on the truth for reference) and flicker against the truth's. Then full-frame SSIM and PSNR (dB), which the static background flatters. The scores go to stdout (progress and warnings to stderr).
    """
    import json

    from vidtrans.evaluate import Material, check_material, score

    # What no model could be scored on is refused before one loads (seconds, and an ONNX export on a CPU).
    material = check_material(Material(synthetic=synthetic, seed=seed, video=video, data=data, frames=frames,
                                       size=size), options, model_only)
    translator = vidtrans.load_model(model, device=device, precision=precision)
    _stop_if_asked()
    with _progress(f"eval {translator.name}") as update:
        result = score(translator, material, options, model_only=model_only, progress=update)
    if json_summary:
        _product(json.dumps(result))
        return
    ran_on = f"{result['device']} {result['precision']} {result['backend']}"  # scores move a little with them
    source = (f"held-out dance {result['seed']}" if "seed" in result else
              f"held-out tail of {video.name}" if video else
              f"pairs of {result['data']}" + (" it held out in training" if result["held_out_in_training"] else ""))
    # The scores are the command's product, as the table is `models`': on stdout, so that
    # `vidtrans eval ... > scores.txt` keeps them; progress and warnings stay on stderr.
    if result["mode"] == "model-only":
        smoothed = f" (smoothing {result['smoothing']})" if result.get("smoothing") not in (None, "none") else ""
        _product(f"{translator.name} ({ran_on}), model only on the {source}: ssim {result['ssim']}, psnr {result['psnr']} dB, "
                 f"flicker {_times(result['flicker_ratio'])} the truth's over {result['frames']} frames{smoothed}")
        return
    shown = "x".join(map(str, result.get("video_size", []))) or "the video"

    def percent(share: float | None) -> str:
        return "n/a" if share is None else f"{100 * share:.1f} %"

    def pixels(error: float | None) -> str:
        return "n/a" if error is None else f"{error} px"

    lines = [f"{translator.name} ({ran_on}) end to end on the {source}: {result['frames']} frames of {shown} through vidtrans run "
             f"(smoothing {result['smoothing']}; pose {result['pose']})"
             + (f"; no person in {result['frames_without_person']} of them" if result.get("frames_without_person")
                else ""),
             f"  SSIM  person {_or_na(result['person_ssim'])}  face {_or_na(result['face_ssim'])}  "
             f"hands {_or_na(result['hands_ssim'])}",
             f"  pose error {pixels(result['pose_error_px'])}, {percent(result['pose_missed'])} missed (the detector "
             f"on the truth: {pixels(result['detector_pose_error_px'])}, {percent(result['detector_pose_missed'])})",
             f"  flicker {_times(result['flicker_ratio'])} the truth's "
             f"({_times(result['flicker_ratio_unsmoothed'])} without smoothing)",
             f"full frame: SSIM {result['ssim']}, PSNR {result['psnr']} dB"]
    _product("\n".join(lines))


@contextlib.contextmanager
def _progress(label: str, quiet: bool = False):
    """A rich progress bar (frames, fps, ETA) fed by `update(done, total)`; silent when not a
    terminal, or `quiet`."""
    # The label names a file: plain text, as everything the console prints.
    columns = [TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]} fps"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task(label, total=None, fps="-")
        started, done_before = time.perf_counter(), 0

        phase = [""]

        def update(done: int, total: int, what: str = "") -> None:
            nonlocal started, done_before
            _stop_if_asked()
            if what != phase[0]:  # a new pass (e.g. pose detection, then translation) restarts the bar
                # Its first report already counts frames done since the last: they time from then on.
                phase[0], started, done_before = what, time.perf_counter(), done
            fps = (done - done_before) / max(time.perf_counter() - started, 1e-9)
            bar.update(task, description=f"{label} {what}".rstrip(), completed=done,
                       total=max(total, done) or None, fps=f"{fps:.1f}")

        yield update


_stopped_by: list[int] = []  # the signal that stopped the command, if one did
# Set with the first stop signal: live's loop, batch's wait and the progress of run, pose and train look at it, so a
# command stops even where the KeyboardInterrupt was lost (seen once in a loaded test run of live:
# raised inside code that drops it), after which every further signal is ignored.
_stop_asked = threading.Event()


def _stop(signum: int, frame) -> None:
    """Raise KeyboardInterrupt in the main thread, so every command cleans up as for Ctrl-C (partial
    files deleted, live recordings finished). A second signal is ignored: the clean-up takes at most
    a batch's time, and cutting it short would leave the partial files behind."""
    if _stopped_by:
        return
    _stopped_by.append(signum)
    _stop_asked.set()
    if _importing(frame):
        # A native extension running Python code in its own import (onnx's, when a model loads)
        # cannot pass an exception on and aborts the process; the stop is raised at the command's
        # next look at `_stop_asked` instead (after loading the model, at its first progress).
        return
    raise KeyboardInterrupt(_stop_name(signum))


def _importing(frame) -> bool:
    """Whether the interrupted code runs inside an import (importlib's frames below it)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _stop_if_asked() -> None:
    """Raise again, in the main thread, a stop signal's KeyboardInterrupt that was lost on its way
    (see _stop_asked): a command that reports progress stops at its next report (a frame, a
    training step) instead of finishing as if never stopped."""
    if _stop_asked.is_set() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt(_stop_name(_stopped_by[0] if _stopped_by else signal.SIGINT))


def _stop_name(signum: int) -> str:
    """How a stop signal is named where a stopped command says why: Ctrl-C, SIGTERM, SIGHUP."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def _quiet_native_logs() -> None:
    """FFmpeg's and OpenCV's own messages (x264 statistics, "error while decoding", libpng warnings)
    would bury our one-line errors and summaries; what matters reaches the user through
    VidtransError and the summary."""
    import av.logging

    from vidtrans.video.camera import set_opencv_log_level

    # None, not a level: any level installs PyAV's Python log callback, which takes the GIL from
    # FFmpeg's own threads. An x264 thread logging while the main thread frees the encoder under
    # the GIL (an interrupted encode) then deadlocks (PyAV issue #751). None installs a C callback
    # that prints nothing and never needs the GIL.
    av.logging.set_level(level=None)
    set_opencv_log_level(0)  # silent
    # SVT-AV1 (--codec libsvtav1) prints its banner and settings itself, 20 lines per encoder it
    # opens, and its own error lines beside ours when it refuses a frame size or rate (which reach
    # the user as our one line); fatal errors only (level 0), unless the user asked for its log.
    os.environ.setdefault("SVT_LOG", "0")


@contextlib.contextmanager
def _warnings_shown():
    """The library's warnings (subtitles left out, a damaged part, unpaired training images) as
    lines like our errors, on this command's stderr. Other libraries' logging without a handler of
    their own is dropped: Python would print their warnings as bare lines,
    such as matplotlib's (which mediapipe imports) about a cache folder it cannot write, on every
    run where HOME is read-only (containers), which the user can do nothing about."""
    import logging

    class OneLine(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return one_line(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine("vidtrans: warning: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("vidtrans")
    logger.addHandler(handler)
    others = logging.NullHandler()
    logging.getLogger().addHandler(others)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logging.getLogger().removeHandler(others)


class _ReaderGone(Exception):
    """Standard output's reader went away: a closed pipe (`vidtrans models | head -1`)."""


class _Unwritable(VidtransError):
    """Standard output cannot be written (a full disk): the command's error, told in one line."""


class _Stdout:
    """Standard output as the commands write to it, with a reader gone away (EPIPE) raised as
    _ReaderGone and any other failure to write (a full disk) as _Unwritable. As OSErrors they were
    taken over by whoever wrote: click (--help) and rich (`models`' table) exited 1 without a word,
    or with a traceback."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise _ReaderGone from None
        except OSError as e:
            raise _unwritable(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise _ReaderGone from None
        except OSError as e:
            raise _unwritable(e) from None

    def drop(self) -> None:
        """Send what is still buffered, and anything later, to /dev/null: once the failure is told,
        the interpreter's last flush must not fail on it again. Not done when the failure is raised:
        click tries writes whose failure it ignores."""
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _unwritable(error: OSError) -> _Unwritable:
    return _Unwritable(f"cannot write to standard output ({error.strerror or error}); check where it is redirected")


def main() -> None:
    """Run the command line. A reader of standard output that goes away ends any command as it ends
    a Unix tool (`ls | true`): quietly, with 128 + SIGPIPE; the command's files are complete by
    then (what it prints comes last). Another failure to write there is an error (_Unwritable)."""
    stdout = sys.stdout
    if stdout is not None:  # None: started with standard output closed, where print writes nothing
        sys.stdout = _Stdout(stdout)
    try:
        try:
            _main()
        finally:
            # What is still buffered (--help, --version, `models`' table) goes now, where its
            # failure is told as above.
            if sys.stdout is not None:
                with contextlib.suppress(ValueError):
                    sys.stdout.flush()
    except (_ReaderGone, _Unwritable) as e:
        sys.stdout.drop()
        if isinstance(e, _ReaderGone):
            sys.exit(128 + signal.SIGPIPE)
        _say_error(str(e))
        sys.exit(1)
    finally:
        sys.stdout = stdout


def _main() -> None:
    _quiet_native_logs()
    # Without a terminal (a log file, CI, a pipe) rich would break lines at the 80 columns it
    # assumes; there each message stays one line.
    console.soft_wrap = not console.is_terminal
    _stop_asked.clear()
    for signum in STOP_SIGNALS:
        # An ignored signal stays ignored: nohup (SIGHUP) and shells' background jobs (SIGINT) rely on it.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _stop)
    try:
        try:
            # Not standalone: errors come back here, to be told in one line like ours.
            with _warnings_shown():
                code = app(standalone_mode=False)
        finally:
            # The command has cleaned up; a signal from now on ends the process at once (and what
            # called main in this process, as the tests do, runs on unstopped).
            _stop_asked.clear()
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is _stop:
                    signal.signal(signum, signal.SIG_DFL)
    except VidtransError as e:
        if isinstance(e, _Unwritable):  # told now: what is buffered must not fail again at the exit
            sys.stdout.drop()
        if not _the_stop(e):
            if _debug:  # the traceback too; the line and the exit status stay those scripts check
                traceback.print_exc()
            _say_error(str(e))
            sys.exit(2 if isinstance(e, UsageError) else 1)
    except click_exceptions.NoArgsIsHelpError as e:
        print(e.ctx.get_help())
        sys.exit(0)
    except click_exceptions.UsageError as e:
        command = e.ctx.command_path if e.ctx else _invoked
        if hint := _usage_hint(e):  # what was meant is known: the parser's guesses at similar names go
            e.possibilities = None
        message = " ".join(e.format_message().replace("Value error, ", "").split()).rstrip(".") + hint
        # The parser quotes the value it refused whole: a long one is cut as the options' messages cut theirs.
        message = re.sub(rf"'([^']{{{SHOWN_CHARACTERS + 1},}})'", lambda quoted: shown(quoted[1]), message)
        see = f" See {command} --help" if message.endswith("?") else f"; see {command} --help"  # "Did you mean 'run'?"
        _say_error(message + see)
        sys.exit(e.exit_code)
    except (KeyboardInterrupt, typer.Abort):  # before typer took over
        if not _stopped_by:
            _stopped_by.append(signal.SIGINT)
    except Exception as e:
        if not _the_stop(e):
            raise
    else:
        # typer returns 130 for an interrupted command; live ends normally on a signal (0), and then
        # as fast as a stopped command: a second Ctrl-C during the interpreter's shutdown (seconds)
        # would end a session that completed with 130.
        if not _stopped_by:
            sys.exit(code or 0)
        if code in (0, None):
            _exit_now(0)
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        print("vidtrans: interrupted", file=sys.stderr)
    _exit_now(128 + _stopped_by[0])


def _say_error(message: str) -> None:
    print(one_line(f"vidtrans: error: {message}"), file=sys.stderr)


def _usage_hint(error: click_exceptions.UsageError) -> str:
    """What an unknown option most likely was: a root option typed after the command (`vidtrans run
    x.mp4 --debug`), or a file or folder whose name starts with a dash (`-dance.mp4`, read as option -d)."""
    if not isinstance(error, click_exceptions.NoSuchOption) or error.ctx is None:
        return ""
    name = error.option_name
    if name in ("--debug", "--version") and " " in error.ctx.command_path:
        root, command = error.ctx.command_path.rsplit(" ", 1)
        return f"; {name} goes before the command: {root} {name}" + (f" {command} ..." if name == "--debug" else "")
    if typed := next((word for word in sys.argv[1:] if word.startswith(name) and os.path.exists(word)), None):
        return f"; {typed} is a {'folder' if os.path.isdir(typed) else 'file'}: give it as ./{typed}"
    return ""


def _the_stop(error: BaseException) -> bool:
    """Whether `error` is how a stop signal surfaced: raised while the KeyboardInterrupt `_stop`
    raised was being handled (torch.save's zip writer, cut short, fails to finish its file and
    says that instead; a clean-up refused). An error after a stop was handled (live ends its
    session on one, then writes its stats) is an error of its own."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return bool(_stopped_by)
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _product(text: str) -> None:
    """Print what a command produces (scores, a JSON summary) on standard output, now, while a
    failure to write it is the command's error (_Unwritable): the files are written by then."""
    print(text, flush=True)


def _exit_now(code: int) -> None:
    """End a stopped command without the interpreter's shutdown, which would wait for the worker
    pools' threads: one may be inside a forward pass that cannot be cut short (tens of seconds at a
    large --model-size). The command has cleaned up; what is still unfinished is removed here, as
    the exit handler would, also what those threads are making meanwhile."""
    from vidtrans.atomic import remove_unfinished

    remove_unfinished(final=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, _ReaderGone, _Unwritable):
            stream.flush()
    os._exit(code)
