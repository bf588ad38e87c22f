"""QA pass 9, batch: the clean-up spares other live vidtrans processes' files and removes stale
locks, an interrupted --overwrite keeps the manifest usable, output folders inside the input
folder, symlinked folders, hidden files, clips that change while translated, and messages."""

import os

import pytest
import torch

from tests.conftest import one_line
from tests.media import make_clip
from vidtrans.atomic import LOCK_SUFFIX, OutputClaim, temp_path
from vidtrans.batch import (MANIFEST_NAME, BatchListener, BatchUsageError, _exclusive, find_clips, read_manifest,
                            translate_folder)

FAST = dict(devices=["cpu"], preset="ultrafast", batch_size=4)


def clips_in(folder, *names, frames=3):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        make_clip(folder / name, frames=frames, audio=False)
    return folder


def statuses(report, root):
    return {os.path.relpath(c.input, root): c.status for c in report.clips}


def names(paths, root):
    return [p.relative_to(root).as_posix() for p in paths]


# --- 4 and 10. The clean-up deletes only what no live process holds ---------------------------------


def test_clean_up_spares_files_of_live_writers_and_removes_stale_locks(tmp_path, rgb_model_dir):
    src, out = clips_in(tmp_path / "in", "a.mp4"), tmp_path / "out"
    (out / "stale").mkdir(parents=True)
    (out / "inner").mkdir()
    # A killed run's leftovers, whose clips have left the input folder since.
    stale_lock = out / "stale" / f".gone.mp4{LOCK_SUFFIX}"
    stale_lock.touch()
    stale_partial = out / "stale" / ".gone.partial-0123abcd.mp4"
    stale_partial.write_bytes(b"half a video")
    old_root_lock = out / f".old.mp4{LOCK_SUFFIX}"
    old_root_lock.touch()
    # A `vidtrans run` writing out/live.mp4 (it locks its output, then makes its temporary file),
    # and another batch writing into out/inner.
    with OutputClaim(out / "live.mp4") as claim, _exclusive(out / "inner"):
        live_partial = temp_path(out / "live.mp4")
        inner_partial = temp_path(out / "inner" / "b.mp4")
        report = translate_folder(src, out, rgb_model_dir, **FAST)
        assert statuses(report, src) == {"a.mp4": "done"}
        assert live_partial.exists() and claim.path.exists() and inner_partial.exists()
        assert not stale_lock.exists() and not stale_partial.exists() and not old_root_lock.exists()
    live_partial.unlink()
    inner_partial.unlink()

    # What a killed `run` leaves: its temporary file and its lock file, which the next batch removes.
    with OutputClaim(out / "live.mp4"):
        temp_path(out / "live.mp4")
    (out / f".live.mp4{LOCK_SUFFIX}").touch()
    translate_folder(src, out, rgb_model_dir, **FAST)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [MANIFEST_NAME]


# --- 5. An interrupted --overwrite ----------------------------------------------------------------


class StopAt(BatchListener):
    """Ctrl-C at the first progress report of clip `clip` (what the CLI's signal handler raises)."""

    def __init__(self, clip):
        self.clip = clip

    def clip_progress(self, worker, clip, done, total, phase):
        if clip == self.clip:
            raise KeyboardInterrupt


def test_an_interrupted_overwrite_leaves_the_finished_clips_recorded(tmp_path, rgb_model_dir):
    src, out = clips_in(tmp_path / "in", "a.mp4", "b.mp4", "c.mp4"), tmp_path / "out"
    translate_folder(src, out, rgb_model_dir, **FAST)
    finished = {p: p.stat().st_mtime_ns for p in (out / "b.mp4", out / "c.mp4")}

    with pytest.raises(KeyboardInterrupt):
        translate_folder(src, out, rgb_model_dir, workers=1, overwrite=True, listener=StopAt("b.mp4"), **FAST)
    assert {clip: r["status"] for clip, r in read_manifest(out).items()} == {"a.mp4": "done", "b.mp4": "running",
                                                                            "c.mp4": "done"}

    again = translate_folder(src, out, rgb_model_dir, **FAST)
    assert statuses(again, src) == {"a.mp4": "skipped", "b.mp4": "done", "c.mp4": "skipped"}
    assert (out / "c.mp4").stat().st_mtime_ns == finished[out / "c.mp4"]


# --- 6. Output folders inside the input folder; symlinked folders -----------------------------------


def test_an_output_folder_holding_input_clips_is_refused(tmp_path, rgb_model_dir, cli):
    src = tmp_path / "in"
    for name in ("a.mp4", "sub/b.mkv", "sub/deep/c.mp4"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"")  # never opened: refused before any work
    result = cli("batch", src, "-o", src / "sub", "--model", rgb_model_dir, "--devices", "cpu")
    assert one_line(result, 2) == (f"vidtrans: error: {src / 'sub'}: the output folder is inside the input folder "
                                   f"and holds 2 clip(s) that are not this batch's outputs ({src / 'sub' / 'b.mkv'}, "
                                   "...), which the batch would leave out; choose an output folder outside the input "
                                   "folder")
    assert not (src / "sub" / MANIFEST_NAME).exists()


def test_an_output_folder_inside_the_input_holding_only_outputs_is_fine(tmp_path, rgb_model_dir):
    src = clips_in(tmp_path / "in", "a.mp4", "b.mp4")
    out = src / "out"
    translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST)
    (src / "b.mp4").unlink()  # its output stays, recorded in the manifest
    assert statuses(translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST), src) == {"a.mp4": "skipped"}
    make_clip(out / "new.mp4", frames=3, audio=False)  # a clip put among the outputs is an input left out
    with pytest.raises(BatchUsageError, match=r"holds 1 clip\(s\) that are not this batch's outputs \(.*new.mp4\)"):
        translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_users_clip_where_an_output_would_go_is_an_input_not_an_output(tmp_path, rgb_model_dir, overwrite):
    # in/a.mp4's output would be in/sub/a.mp4, a clip of the user's own: never replaced, even with --overwrite.
    src = clips_in(tmp_path / "in", "a.mp4")
    (src / "sub").mkdir()
    theirs = make_clip(src / "sub" / "a.mp4", frames=3, audio=False).path
    before = theirs.read_bytes()
    with pytest.raises(BatchUsageError, match=r"holds 1 clip\(s\) that are not this batch's outputs \(.*sub/a.mp4\)"):
        translate_folder(src, src / "sub", rgb_model_dir, overwrite=overwrite, **FAST)
    assert theirs.read_bytes() == before and not (src / "sub" / MANIFEST_NAME).exists()


def test_symlinked_folders_are_followed_and_loops_end(tmp_path, rgb_model_dir):
    src, other = tmp_path / "in", clips_in(tmp_path / "footage", "x.mp4")
    clips_in(src, "own.mp4")
    (other / "sub").mkdir()
    (other / "sub" / "y.mp4").write_bytes(b"")
    (src / "ext").symlink_to(other, target_is_directory=True)
    (src / "loop").symlink_to(src, target_is_directory=True)
    (other / "sub" / "up").symlink_to(other, target_is_directory=True)
    assert names(find_clips(src), src) == ["ext/sub/y.mp4", "ext/x.mp4", "own.mp4"]

    report = translate_folder(src, tmp_path / "out", rgb_model_dir, patterns=["x.mp4", "own.mp4"], **FAST)
    assert statuses(report, src) == {"ext/x.mp4": "done", "own.mp4": "done"}
    assert (tmp_path / "out" / "ext" / "x.mp4").is_file()


# --- 9. Hidden files ----------------------------------------------------------------------------------


def test_no_clips_says_hidden_files_are_skipped(tmp_path, rgb_model_dir, cli):
    src = tmp_path / "in"
    src.mkdir()
    (src / ".hidden.mp4").write_bytes(b"")
    result = cli("batch", src, "-o", tmp_path / "out", "--model", rgb_model_dir, "--pattern", ".hidden.mp4")
    assert one_line(result, 2) == (f"vidtrans: error: {src}: no clips matching .hidden.mp4 (hidden files and "
                                   "folders, named .*, are skipped); check the folder or pass --pattern")


# --- 13. A clip that changes while it is translated -----------------------------------------------------


class ChangeInput(BatchListener):
    """Changes the clip's file (a new modification time, as a copy still under way gives) at its
    first progress report."""

    def __init__(self, path):
        self.path, self.changed = path, False

    def clip_progress(self, worker, clip, done, total, phase):
        if not self.changed:
            self.changed = True
            info = self.path.stat()
            os.utime(self.path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def test_a_clip_changed_while_translated_fails_and_is_redone(tmp_path, rgb_model_dir):
    src, out = clips_in(tmp_path / "in", "a.mp4"), tmp_path / "out"
    report = translate_folder(src, out, rgb_model_dir, listener=ChangeInput(src / "a.mp4"), **FAST)
    assert [(c.status, c.error) for c in report.clips] == [
        ("failed", f"{src / 'a.mp4'}: changed while it was being translated, so its output was removed; run the "
                   "batch again once the file is complete")]
    assert not (out / "a.mp4").exists()
    assert statuses(translate_folder(src, out, rgb_model_dir, **FAST), src) == {"a.mp4": "done"}


# --- 14. Messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--pattern", ""], "--pattern '': an empty pattern matches no file; give one such as '*.mp4'"),
    (["--pattern", "sub/*.mkv"], "--pattern sub/*.mkv: patterns match file names, not paths, and subfolders are "
                                 "searched anyway; use --pattern '*.mkv', or give the subfolder as the input folder"),
    (["--pattern", "**/*.mp4"], "--pattern **/*.mp4: patterns match file names, not paths, and subfolders are "
                                "searched anyway; use --pattern '*.mp4', or give the subfolder as the input folder"),
    (["--report", ""], "--report is empty (''); give a report file name such as report.json"),
])
def test_pattern_and_report_messages(tmp_path, rgb_model_dir, cli, args, message):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_bytes(b"")
    result = cli("batch", src, "-o", tmp_path / "out", "--model", rgb_model_dir, "--devices", "cpu", *args)
    assert one_line(result, 2) == f"vidtrans: error: {message}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_devices_without_cuda_names_the_devices_flag(tmp_path, rgb_model_dir, cli):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.mp4").write_bytes(b"")
    result = cli("batch", src, "-o", tmp_path / "out", "--model", rgb_model_dir, "--devices", "cuda:0")
    assert one_line(result, 2).endswith("; use --devices cpu")
