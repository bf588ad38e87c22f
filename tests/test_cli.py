"""The command line skeleton: help, version, models, import-pix2pix, one-line errors."""

import json
import subprocess
import sys

import torch

from vidtrans.models.networks import build_generator


def test_help_and_version(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "pose", "models", "import-pix2pix", "train", "eval"):
        assert command in result.stdout
    # The entry point itself, in a process of its own.
    version = subprocess.run([sys.executable, "-m", "vidtrans", "--version"], capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    assert version.stdout.strip().startswith("vidtrans 0.")
    run_help = cli("run", "--help").stdout
    assert "--batch-size" in run_help and "--smooth" in run_help and "--overwrite" in run_help


def test_import_pix2pix_then_models_lists_it(tmp_path, cli):
    state = build_generator("resnet_9blocks", 3, 3, 8, "instance").state_dict()
    pth = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, pth)
    models_dir = tmp_path / "models"
    result = cli("import-pix2pix", pth, "-o", models_dir / "horse2zebra")
    assert result.returncode == 0, result.stderr
    card = json.loads((models_dir / "horse2zebra" / "card.json").read_text())
    assert (card["architecture"], card["ngf"], card["norm"]) == ("resnet_9blocks", 8, "instance")
    env = {"VIDTRANS_MODELS": str(models_dir), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "200"}
    listing = cli("models", env=env)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "horse2zebra" in line)
    assert "resnet_9blocks" in row and "256x256" in row and "rgb" in row and "MiB" in row
    again = cli("import-pix2pix", pth, "-o", models_dir / "horse2zebra")
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_errors_are_one_line_without_traceback(tmp_path, cli):
    result = cli("run", tmp_path / "missing.mp4", "--model", "no-such-model")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "no-such-model" in result.stderr
    debug = cli("--debug", "run", tmp_path / "missing.mp4", "--model", "no-such-model")
    assert "Traceback" in debug.stderr
