"""The command line as a user types it: flags that make no sense together, `~` the shell left
unexpanded, root options typed after the command, `-o -`."""
import json

import pytest

from tests.conftest import one_line
from tests.media import make_clip


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    make_clip(path, frames=4)
    return path


# --- flags that change nothing together are refused, naming both, not silently ignored ---

@pytest.mark.parametrize("model, args, flags", [
    # --smooth none smooths nothing, at any strength.
    ("rgb", ["--smooth", "none", "--smooth-strength", "0.3"], ("--smooth none", "--smooth-strength")),
    # Under the default --smooth auto, a card that recommends no smoothing (pose2person's) smooths
    # nothing either: the strength was dropped without a word.
    ("pose", ["--smooth-strength", "0.9"], ("--smooth", "--smooth-strength")),
    # Normalization fits a detected dancer to a pose model's target: an RGB model has neither.
    ("rgb", ["--no-normalize"], ("--no-normalize",)),
])
def test_run_refuses_a_flag_that_would_be_ignored(cli, tmp_path, clip, rgb_model_dir, pose_model_dir, model, args,
                                                  flags):
    out = tmp_path / "out.mp4"
    model_dir = rgb_model_dir if model == "rgb" else pose_model_dir
    line = one_line(cli("run", clip, "-m", model_dir, "-o", out, *args), 2)
    assert all(flag in line for flag in flags), line
    assert not out.exists()


def test_live_refuses_a_smoothing_strength_without_smoothing(cli, clip, rgb_model_dir):
    # live's --smooth defaults to none: a strength alone smooths nothing.
    line = one_line(cli("live", "-m", rgb_model_dir, "--camera", clip, "--no-window", "--max-frames", "1",
                        "--smooth-strength", "0.3"), 2)
    assert "--smooth-strength" in line and "--smooth" in line.replace("--smooth-strength", "")


def test_live_refuses_loop_for_a_device_camera(cli, rgb_model_dir):
    # --loop plays a video file again; a device camera has no end to play again from. Refused before
    # the camera is opened (here, with no camera, that is told as "cannot open it", exit 1).
    line = one_line(cli("live", "-m", rgb_model_dir, "--camera", "0", "--loop", "--no-window", "--max-frames", "1"), 2)
    assert "--loop" in line and "--camera" in line


def test_eval_refuses_a_smoothing_strength_without_smoothing(cli, pose_model_dir):
    line = one_line(cli("eval", "-m", pose_model_dir, "--synthetic", "--model-only", "--frames", "2",
                        "--smooth", "none", "--smooth-strength", "0.3"), 2)
    assert "--smooth none" in line and "--smooth-strength" in line


# --- combinations that are refused already (guards) ---

@pytest.mark.parametrize("args, words", [
    (["eval", "--data", "DIR", "--synthetic"], ("--synthetic", "--data")),
    (["eval", "--data", "DIR", "--video", "CLIP"], ("--video", "--data")),
    (["train", "--synthetic", "-o", "DIR/ck", "--resume", "--overwrite"], ("--resume", "--overwrite")),
    (["run", "CLIP", "-m", "RGB", "--pose", "detect", "-o", "DIR/o.mp4"], ("--pose detect",)),
    (["run", "CLIP", "-m", "RGB", "-b", "1025", "-o", "DIR/o.mp4"], ("--batch-size", "1024")),
    (["run", "CLIP", "-m", "RGB", "--crf", "52", "-o", "DIR/o.mp4"], ("--crf 52", "0 to 51")),
    (["run", "CLIP", "-m", "RGB", "--start", "0.16", "-o", "DIR/o.mp4"], ("--start/--end",)),
])
def test_combinations_refused_with_both_named(cli, tmp_path, clip, rgb_model_dir, args, words):
    args = [str(clip) if a == "CLIP" else str(rgb_model_dir) if a == "RGB" else a.replace("DIR", str(tmp_path))
            for a in args]
    line = one_line(cli(*args), 2)
    assert all(word in line for word in words), line
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "ck").exists()


def test_edges_that_work(cli, tmp_path, clip, rgb_model_dir):
    # --end past the clip's end, the largest batch, the largest CRF, unicode and spaces in paths, JSON on
    # stdout alone.
    folder = tmp_path / "ü dir 😀"
    folder.mkdir()
    out = folder / "out ñ.mp4"
    result = cli("run", clip, "-m", rgb_model_dir, "-o", out, "--end", "60", "-b", "1024", "--crf", "51", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 4 and out.exists()


# --- `~`: the shell does not expand it after "=" (--output=~/x), nor quoted ---

def test_a_tilde_is_never_made_into_a_folder_named_tilde(cli, tmp_path, clip, rgb_model_dir, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    (work / "in").mkdir()
    clip.rename(work / "in" / "clip.mp4")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    result = cli("batch", "in", "--output=~/out", "-m", rgb_model_dir)
    # Either expanded as the shell would have, or refused naming the ~; never a folder "./~" (which
    # a later `rm -r ~` would aim at the home folder).
    assert not (work / "~").exists()
    if result.returncode == 0:
        assert (home / "out" / "clip.mp4").exists()
    else:
        assert "~" in one_line(result, 2)


def test_a_tilde_output_is_not_told_to_make_a_folder_named_tilde(cli, tmp_path, clip, rgb_model_dir, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = cli("run", clip, "-m", rgb_model_dir, "--output=~/x.mp4")
    assert "folder ~ does not exist; create it first" not in result.stderr
    assert not (tmp_path / "~").exists()


# --- root options typed after the command, and `-o -` ---

@pytest.mark.parametrize("option", ["--debug", "--version"])
def test_a_root_option_after_the_command_says_where_it_goes(cli, clip, option):
    # Was: "No such option: --version (Possible options: --json, --overwrite, --precision)".
    line = one_line(cli("run", clip, option), 2)
    assert f"{option} goes before the command: " in line and f"vidtrans {option}" in line, line


def test_output_to_standard_output_is_refused_as_such(cli, tmp_path, clip, rgb_model_dir):
    # Was: "-: FFmpeg cannot tell from the name which kind of video to write ...; use an extension".
    line = one_line(cli("run", clip, "-m", rgb_model_dir, "-o", "-"), 2)
    assert "standard output" in line


def test_an_input_named_like_an_option_is_told_how_to_give_it(cli, tmp_path, clip, monkeypatch):
    # Was: "No such option: -d", for a file named -dance.mp4.
    monkeypatch.chdir(tmp_path)
    clip.rename(tmp_path / "-dance.mp4")
    line = one_line(cli("run", "-dance.mp4"), 2)
    assert "./-dance.mp4" in line


# --- a stop signal while a model loads ---

# `vidtrans run`, with Ctrl-C arriving exactly while a nanobind extension (onnx, imported when a model
# loads with the auto backend) runs Python code in its own import: the moment is chosen by a profile
# hook, so nothing depends on timing.
_CTRL_C_IN_AN_EXTENSION_IMPORT = """
import os, signal, sys
import vidtrans.cli as cli
sent = []
def hook(frame, event, arg):
    back = frame.f_back
    if (not sent and event == "call" and frame.f_code.co_filename.endswith("enum.py") and back is not None
            and back.f_code.co_name == "_call_with_frames_removed" and signal.getsignal(signal.SIGINT) is cli._stop):
        sent.append(1)
        print("CTRL-C SENT", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGINT)
sys.setprofile(hook)
sys.argv = ["vidtrans", *sys.argv[1:]]
cli.main()
"""


def test_a_stop_while_a_model_loads_is_a_clean_stop_not_an_abort(tmp_path, clip, rgb_model_dir):
    import subprocess
    import sys

    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out.mp4"
    result = subprocess.run([sys.executable, "-c", _CTRL_C_IN_AN_EXTENSION_IMPORT, "run", str(clip), "-m",
                             str(rgb_model_dir), "-o", str(out), "--backend", "auto"],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if "CTRL-C SENT" not in result.stderr:
        pytest.skip("no extension imported Python code while the model loaded here")
    # Was: "terminate called after throwing an instance of 'nanobind::python_error'", SIGABRT (-6),
    # a traceback, and the output's lock file left behind.
    assert result.returncode == 130, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == "vidtrans: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_the_root_help_lists_the_main_job_first_with_whole_summaries(cli):
    # Was: models, export and import-pix2pix before run, each summary cut at 45 characters ("same...").
    help_text = cli("--help").stdout
    commands = help_text.split("Commands:", 1)[1].split("\n")
    listed = [line.split()[0] for line in commands if line.startswith("  ") and line.split()]
    assert listed[:3] == ["run", "pose", "batch"] and set(listed) >= {"live", "train", "eval", "models", "export"}
    assert not any(line.rstrip().endswith("...") for line in commands), help_text
