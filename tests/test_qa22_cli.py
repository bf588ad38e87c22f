"""The command line under fuzzing: values left out (the next word taken in their place), odd names."""

import os

import pytest

from tests.conftest import one_line
from tests.media import make_clip


# An option whose value was left out took the next option as its value: `-o --overwrite` wrote a
# batch's outputs (exit 0), or an imported model, into a folder named --overwrite, and `train -o
# --resume` trained into one. Each is refused as the missing value it is, and nothing is written.
@pytest.mark.parametrize("args, option, taken", [
    (["batch", "clips", "-m", "MODEL", "--devices", "cpu", "-o", "--overwrite"], "-o", "--overwrite"),
    (["import-pix2pix", "good.pth", "-o", "--overwrite"], "-o", "--overwrite"),
    (["train", "--synthetic", "--iterations", "1", "-o", "--resume"], "-o", "--resume"),
    (["run", "clip.mp4", "-m", "MODEL", "--output", "--json"], "--output", "--json"),
    (["run", "clip.mp4", "-m", "--device", "cpu"], "-m", "--device"),
    (["live", "-m", "MODEL", "--camera", "--no-window", "--max-frames", "1"], "--camera", "--no-window"),
    (["run", "clip.mp4", "-m", "MODEL", "-o", "--"], "-o", "--"),
    (["batch", "clips", "-m", "MODEL", "--devices", "cpu", "-o", "--debug"], "-o", "--debug"),
])
def test_an_option_missing_its_value_does_not_take_the_next_option(cli, tmp_path, monkeypatch, rgb_model_dir, args,
                                                                   option, taken):
    import torch

    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "clip.mp4", frames=2)
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "a.mp4", frames=2)
    torch.save({}, tmp_path / "good.pth")
    before = set(tmp_path.rglob("*"))
    line = one_line(cli(*[str(rgb_model_dir) if a == "MODEL" else a for a in args]), 2)
    assert f"{option} needs a value, and {taken} " in line, line
    assert set(tmp_path.rglob("*")) == before


def test_a_value_that_starts_with_a_dash_can_still_be_given(cli, tmp_path, monkeypatch, rgb_model_dir):
    # Attached with =, the value is the user's own: here a file named --json.mp4.
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "clip.mp4", frames=2)
    result = cli("run", "clip.mp4", "-m", rgb_model_dir, "--device", "cpu", "--output=--json.mp4")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "--json.mp4").is_file()


def test_models_lists_a_name_with_a_newline_on_one_line(cli, tmp_path, rgb_model_dir):
    # Piped, `models` prints one line per model for grep and scripts: a folder name holding a
    # newline split its row in two, the second half a row of its own.
    import shutil

    shutil.copytree(rgb_model_dir, tmp_path / "two\nlines")
    result = cli("models", env={**os.environ, "VIDTRANS_MODELS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "two" in line or "lines" in line]
    assert len(rows) == 1 and "two\\nlines" in rows[0], result.stdout
