"""The README and `--help` as a new user reads them, against what the command line does."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme() -> str:
    """The README with every run of white space as one space, as its sentences wrap anywhere."""
    return " ".join(README.read_text().split())


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    make_clip(path, frames=4)
    return path


def test_debug_adds_the_traceback_and_keeps_the_exit_status_and_line(cli, tmp_path, clip, rgb_model_dir):
    # README: "`vidtrans --debug COMMAND ...` shows the traceback"; it also turned every usage error
    # (exit 2) into an uncaught exception (exit 1), so a script's check of the status changed with it.
    out = tmp_path / "out.mp4"
    result = cli("--debug", "run", clip, "-m", rgb_model_dir, "-o", out, "--start", "9")
    assert result.returncode == 2 and result.exception is None, result.stderr
    assert "Traceback" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("vidtrans: error: ") and "--start" in last, result.stderr
    assert not out.exists()
    failed = cli("--debug", "run", tmp_path / "missing.mp4", "-m", rgb_model_dir, "-o", out)
    assert failed.returncode == 1 and failed.exception is None and "Traceback" in failed.stderr


def _entry(help_text: str, flag: str) -> str:
    """The help of option `flag` in a command's --help, as one line of text."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith((f"{flag} ", f"{flag},"))
                 or f", {flag} " in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("-")), len(lines))
    return " ".join(" ".join(lines[start:end]).split())


@pytest.mark.parametrize("command, flag, words", [
    # "auto, cpu, cuda or cuda:N." left auto, the default, unexplained.
    ("run", "--device", ("auto (", "else the CPU")),
    ("eval", "--device", ("auto (", "else the CPU")),
    # fp16 is refused on a CPU ("fp16 is not supported on the CPU"): --help offered it as any other.
    ("live", "--precision", ("fp16 (CUDA only)",)),
    # Sizes without their unit or range, which the refusals then gave.
    ("eval", "--size", ("pixels", "16 to 8192")),
    ("import-pix2pix", "--size", ("pixels", "16-8192")),
    # Where the names --model takes are listed.
    ("batch", "--model", ("vidtrans models",)),
    ("export", "model", ("vidtrans models",)),
])
def test_help_says_what_values_mean_and_their_units(cli, command, flag, words):
    text = _entry(cli(command, "--help", env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"}).stdout, flag)
    assert all(word in text for word in words), text


def test_batch_help_names_its_folders_as_its_usage_shows_them(cli):
    # The description spoke of INPUT_DIR and OUTPUT_DIR, which neither the usage line
    # ("batch [OPTIONS] {input_dir}") nor the options (-o, --output <path>) show.
    text = cli("batch", "--help", env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"}).stdout
    assert "INPUT_DIR" not in text and "OUTPUT_DIR" not in text, text
    assert "output folder's .vidtrans-batch.jsonl" in " ".join(text.split())


def test_live_help_says_where_a_snapshot_goes(cli):
    # "s snapshot" wrote a PNG into the current folder without a word, in --help, the README or on screen.
    text = " ".join(cli("live", "--help", env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"}).stdout.split())
    assert "vidtrans-live-DATE-TIME.png in the current folder" in text, text


def test_export_names_the_smallest_size_a_resnet_graph_takes(cli, tmp_path, rgb_model_dir):
    # "H and W multiples of 4" for a ResNet, whose graph fails on 4 x 4 (README: "ResNets 4, and for
    # ResNets at least 8"); ONNX Runtime then stops in its reflection padding.
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    graph = tmp_path / "tiny.onnx"
    result = cli("export", rgb_model_dir, "-o", graph)
    assert result.returncode == 0, result.stderr
    assert "H and W multiples of 4, at least 8," in result.stderr, result.stderr
    session = ort.InferenceSession(str(graph))
    assert session.run(None, {"input": np.zeros((1, 3, 8, 12), np.float32)})[0].shape == (1, 3, 8, 12)


def test_a_root_option_after_the_command_is_told_without_unrelated_guesses(cli, clip):
    # "No such option: --version (Possible options: --json, --overwrite, --precision); --version goes
    # before the command": none of the three was meant, and the hint says what was.
    line = one_line(cli("run", clip, "--version"), 2)
    # (click names the program after `python -m pytest` when the tests run so: "... pytest.vidtrans --version")
    assert "--version goes before the command: " in line and "vidtrans --version" in line, line
    assert "Possible options" not in line, line


def test_the_readme_says_where_a_live_snapshot_goes_as_live_writes_it(tmp_path, monkeypatch):
    from vidtrans.live.loop import _snapshot

    monkeypatch.chdir(tmp_path)
    written = _snapshot(np.zeros((4, 4, 3), np.uint8))
    assert re.fullmatch(r"vidtrans-live-\d{8}-\d{6}-\d+\.png", written.name) and (tmp_path / written.name).is_file()
    assert "s snapshot: the view as `vidtrans-live-DATE-TIME.png` in the current folder" in _readme()


def test_side_by_side_of_an_rgb_model_is_input_and_output_as_the_readme_says(cli, tmp_path, clip, rgb_model_dir):
    out = tmp_path / "sbs.mp4"
    assert cli("run", clip, "-m", rgb_model_dir, "-o", out, "--side-by-side").returncode == 0
    with av.open(str(out)) as video:
        assert video.streams.video[0].codec_context.width == 2 * 64  # the clip is 64x48: two panels
    assert "input | pose map | output panels (input | output for models of RGB frames)" in _readme()


def test_the_readme_gives_the_shipped_models_flicker_as_its_card_measures_it():
    # It said pose2person's output "changes less from frame to frame than a true video would", while
    # its card (and the README's own table) measures 0.95-1.02 times the truth's.
    card = json.loads((README.parent / "checkpoints" / "pose2person" / "card.json").read_text())
    ratios = [v["flicker_ratio_unsmoothed"] for k, v in card["metrics"]["end_to_end_10s"].items() if k.startswith("seed")]
    claim = f"about as much as a true video does, {min(ratios):.2f}-{max(ratios):.2f} times"
    assert claim in _readme(), claim


def test_the_readme_names_which_commands_make_a_missing_output_folder(cli, tmp_path, rgb_model_dir):
    # import-pix2pix makes its folder's parents, export refuses a missing folder: the README named neither.
    onnx_out = tmp_path / "missing" / "x.onnx"
    assert "folder" in one_line(cli("export", rgb_model_dir, "-o", onnx_out), 2) and not onnx_out.parent.exists()
    text = _readme()
    assert "a missing folder (`run`, `pose`, `export`," in text and "`train` and `import-pix2pix` make theirs" in text


def test_models_are_found_by_name_in_the_cache_folder_the_readme_names(cli, tmp_path, rgb_model_dir):
    # The README named ~/.cache/vidtrans/ alone; with XDG_CACHE_HOME set, names are looked up there.
    shutil.copytree(rgb_model_dir, tmp_path / "cache" / "vidtrans" / "mine")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    listing = cli("models", env=env)
    assert listing.returncode == 0 and any(line.split()[1:2] == ["mine"] for line in listing.stdout.splitlines()), \
        listing.stdout
    assert "`~/.cache/vidtrans/` (`$XDG_CACHE_HOME/vidtrans/` where that is set)" in _readme()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, a standard output that is always full")
@pytest.mark.parametrize("args", [["--version"], ["--help"], [], ["models"]])
def test_a_full_standard_output_is_one_line_for_every_command_not_a_traceback(args):
    # `vidtrans models > /dev/full` (as --help and --version) ended in a traceback, exit 1; only
    # the JSON and scores of run, pose and eval were told in one line.
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "vidtrans", *args], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=60, cwd=README.parent)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1:] == [
        "vidtrans: error: cannot write to standard output (No space left on device); check where it is redirected"
    ] and "Traceback" not in result.stderr, result.stderr
