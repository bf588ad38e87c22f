"""QA pass 22 follow-ups from fuzzing the command line: eval refuses what needs no model before loading
one, a reader that goes away from standard output ends every command alike, an output file named with
a trailing slash, and the wording of float options given inf/nan or very long values."""

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import one_line
from tests.media import make_clip


# --- eval: what needs no model is refused before the model loads ---

@pytest.fixture
def no_loading(monkeypatch):
    """vidtrans.load_model, recording that it was called instead of loading (seconds; on a CPU an ONNX
    export into the user's cache)."""
    import vidtrans

    calls = []
    monkeypatch.setattr(vidtrans, "load_model", lambda *args, **kwargs: calls.append(args) or pytest.fail("loaded"))
    return calls


@pytest.mark.parametrize("args, words", [
    (["--video", "CLIP", "--data", "DIR"], ("--video", "--data")),
    (["--synthetic", "--frames", "1"], ("--frames 1",)),
    (["--data", "DIR"], ("DIR",)),  # a folder without images
    (["--synthetic", "--seed", "-1"], ("--seed",)),
    (["--synthetic", "--size", "15", "15"], ("--size",)),
])
def test_eval_refuses_what_needs_no_model_before_loading_it(cli, tmp_path, pose_model_dir, no_loading, args, words):
    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False).path
    folder = tmp_path / "pairs"
    folder.mkdir()
    args = [str(clip) if a == "CLIP" else str(folder) if a == "DIR" else a for a in args]
    line = one_line(cli("eval", "-m", pose_model_dir, *args), 2)
    assert all(word.replace("DIR", str(folder)) in line for word in words), line
    assert no_loading == []


# --- a reader that goes away from standard output ---

def _with_stdout_closed(*args, **kwargs) -> subprocess.CompletedProcess:
    """`vidtrans ARGS` whose standard output is a pipe nobody reads any more (`vidtrans ... | true`
    where `true` has already ended)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "vidtrans", *map(str, args)], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120, **kwargs)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [["--help"], ["models"], ["--version"], [], ["eval", "--help"]])
def test_a_reader_gone_away_ends_any_command_quietly(args):
    # `vidtrans models | true` and `vidtrans --help | true` exited 1, silently (rich's and click's
    # own handling), while `run --json` told a one-line error: every command now ends as a Unix
    # tool that a closed pipe stops does, quietly with 128 + SIGPIPE.
    result = _with_stdout_closed(*args)
    assert (result.returncode, result.stderr) == (128 + signal.SIGPIPE, "")


def test_a_reader_gone_away_from_a_json_summary_keeps_the_video(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    out = tmp_path / "out.mp4"
    result = _with_stdout_closed("run", clip.path, "-o", out, "--model", rgb_model_dir, "--backend", "torch", "--json")
    assert (result.returncode, result.stderr) == (128 + signal.SIGPIPE, "")
    assert out.stat().st_size > 0


# --- an output file named with a trailing slash names a folder ---

@pytest.mark.parametrize("command", [
    ["export", "MODEL", "-o", "OUT/m.onnx/"],
    ["run", "CLIP", "-m", "MODEL", "-o", "OUT/o.mp4/"],
    ["pose", "CLIP", "-o", "OUT/o.mp4/"],
    ["pose", "CLIP", "-o", "OUT/o.mp4", "--keypoints", "OUT/k.npz/"],
])
def test_an_output_file_named_as_a_folder_is_refused(cli, tmp_path, rgb_model_dir, command):
    # `export MODEL -o m.onnx/` wrote a file m.onnx: pathlib drops the slash.
    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False).path
    out = tmp_path / "out"
    out.mkdir()
    args = [a.replace("OUT", str(out)).replace("MODEL", str(rgb_model_dir)).replace("CLIP", str(clip)) for a in command]
    line = one_line(cli(*args), 2)
    slashed = next(a for a in args if a.endswith("/"))
    assert f"{slashed}:" in line and "without the trailing slash" in line, line
    assert list(out.iterdir()) == []


def test_the_api_refuses_an_output_file_named_as_a_folder(tmp_path, rgb_model_dir):
    import vidtrans
    from vidtrans.atomic import check_destination
    from vidtrans.errors import UsageError
    from vidtrans.models.checkpoint import load_checkpoint
    from vidtrans.models.onnx_backend import export_model

    with pytest.raises(UsageError, match="trailing slash"):
        check_destination(f"{tmp_path}/out.mp4/", None, overwrite=False)
    # translate_video and export_model made a Path of it first, which drops the slash.
    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False).path
    with pytest.raises(UsageError, match=r"out\.mp4/: ends with a slash"):
        vidtrans.translate_video(clip, f"{tmp_path}/out.mp4/", rgb_model_dir)
    with pytest.raises(UsageError, match=r"m\.onnx/: ends with a slash"):
        export_model(load_checkpoint(rgb_model_dir), f"{tmp_path}/m.onnx/", "sample")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


# --- wording of refused values ---

@pytest.mark.parametrize("flag", ["--lambda-feat", "--lambda-l1", "--lambda-face", "--lambda-face-gan", "--lr"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_float_option_that_is_no_finite_number_is_told_so(cli, tmp_path, flag, value):
    line = one_line(cli("train", "--synthetic", "-o", tmp_path / "ck", flag, value), 2)
    assert f"{flag} must be a finite number" in line and "0 or more" not in line, line
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("args", [["live", "--serve"], ["run", "clip.mp4", "--smooth"]])
def test_a_long_value_is_shortened_in_the_error_line(cli, args):
    # Told by vidtrans' options (--serve) and by the parser (a choice); both echoed all 5000 characters.
    line = one_line(cli(*args, "x" * 5000), 2)
    assert "x" * 60 in line and "x" * 61 not in line and "..." in line and len(line) < 300, line


def test_a_batch_report_named_as_a_folder_is_refused(cli, tmp_path, rgb_model_dir):
    # `batch IN -o OUT --report rep.json/` translated the folder and wrote a file rep.json.
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "clip.mp4", frames=2, audio=False)
    report = f"{tmp_path}/rep.json/"
    line = one_line(cli("batch", tmp_path / "in", "-o", tmp_path / "out", "-m", rgb_model_dir, "--report", report), 2)
    assert f"{report}:" in line and "without the trailing slash" in line, line
    assert not (tmp_path / "out").exists() and not (tmp_path / "rep.json").exists()
