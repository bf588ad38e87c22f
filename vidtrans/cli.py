"""The `vidtrans` command: parsing and printing only; the work happens in the Python API."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

import vidtrans
from vidtrans.errors import VidtransError

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


def main() -> None:
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
