"""QA pass 21, `batch`: a --report folder that cannot be written (found only after every clip was
translated), a user's hidden file in the output folder taken for a killed run's temporary file, and
report errors that named a clip with its white space changed (another file's name) or broke a line."""

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import one_line
from tests.media import make_clip
from tests.test_batch import FAST
from tests.test_qa20_batch import two_clips  # noqa: F401 - a fixture
from vidtrans.batch import MANIFEST_NAME, BatchUsageError, translate_folder
from vidtrans.cli_batch_ui import RichDisplay


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc as a folder nobody can write to")
def test_a_report_folder_that_cannot_be_written_is_refused_before_any_work(two_clips, tmp_path, rgb_model_dir, cli):
    """The report was first written after every clip: all the work done, then exit 2, no summary."""
    out = tmp_path / "out"
    result = cli("batch", two_clips, "-o", out, "--model", rgb_model_dir, "--report", "/proc/report.json")
    assert one_line(result, 2).startswith("vidtrans: error: --report /proc/report.json: cannot write to /proc (")
    assert not out.exists()  # refused before the output folder was made, or any clip translated


def test_a_users_hidden_file_named_like_a_partial_one_is_kept(two_clips, tmp_path, rgb_model_dir):
    """Only the temporary files vidtrans names (.NAME.partial-8 hex digits) are a killed run's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".todo.partial-list.txt").write_text("mine")
    (out / ".a.partial-0badcafe.mp4").write_bytes(b"left by a killed run")
    translate_folder(two_clips, out, rgb_model_dir, **FAST)
    assert (out / ".todo.partial-list.txt").read_text() == "mine"
    assert not (out / ".a.partial-0badcafe.mp4").exists()


def test_report_errors_name_clips_exactly_and_stay_one_line(tmp_path, rgb_model_dir):
    """'my  clip.mp4' (two spaces) failed as 'my clip.mp4', another file's name; a FIFO named with a
    newline put the newline into its report row. Names are given as the display gives them."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "my  clip.mp4").write_text("not a video")
    (src / "tab\tclip.mp4").write_text("not a video")
    os.mkfifo(src / "new\nline.mp4")
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, **FAST)
    errors = {Path(c.input).name: c.error for c in report.clips}
    assert errors["my  clip.mp4"].startswith(f"{src / 'my  clip.mp4'}: not a readable video file")
    assert errors["tab\tclip.mp4"].startswith(f"{src}/tab\\tclip.mp4: not a readable video file")
    assert errors["new\nline.mp4"] == (f"{src}/new\\nline.mp4: not a regular file (a FIFO); move it out of the input "
                                       "folder or narrow patterns")
    text = io.StringIO()
    console = Console(file=text, force_terminal=False, markup=False, highlight=False, soft_wrap=True)
    with RichDisplay(console) as display:
        for clip in report.clips:
            display.clip_finished("", clip)
    assert sorted(text.getvalue().splitlines()) == [
        f"failed {src}/my  clip.mp4: not a readable video file (Invalid data found when processing input); the .mp4 "
        "file is damaged or cut short, or not what its name says; re-export or re-download it",
        f"failed {src}/new\\nline.mp4: not a regular file (a FIFO); move it out of the input folder or narrow patterns",
        f"failed {src}/tab\\tclip.mp4: not a readable video file (Invalid data found when processing input); the "
        ".mp4 file is damaged or cut short, or not what its name says; re-export or re-download it"]


def test_two_clips_whose_outputs_are_one_file_through_a_link_do_not_take_turns(tmp_path, rgb_model_dir):
    """OUT/sub a link to OUT: sub/a.mp4's output is a.mp4's. The first run failed one of them (its lock
    was the other's), and each rerun replaced the other's output and called it done (exit 0)."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "a.mp4", frames=4, audio=False)
    make_clip(src / "sub" / "a.mp4", frames=6, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(".")
    first = translate_folder(src, out, rgb_model_dir, **FAST)
    output = (out / "a.mp4").read_bytes()
    again = translate_folder(src, out, rgb_model_dir, **FAST)
    assert [c.status for c in first.clips] == ["done", "failed"]
    assert [c.status for c in again.clips] == ["skipped", "failed"]
    assert again.clips[1].error == (f"{out / 'sub' / 'a.mp4'}: is {out / 'a.mp4'}, the output of a.mp4, through a "
                                    "link in the output folder; remove the link or rename one of the clips")
    assert (out / "a.mp4").read_bytes() == output


def test_the_input_folder_mounted_again_as_the_output_folder_is_refused(two_clips, tmp_path, rgb_model_dir, cli):
    """One folder at two paths (docker run -v DIR:/in -v DIR:/out): the outputs went among the clips,
    and the next run took them for clips."""
    out = tmp_path / "out"
    out.mkdir()
    if subprocess.run(["mount", "--bind", two_clips, out], capture_output=True).returncode != 0:
        pytest.skip("needs to bind-mount a folder (root)")
    try:
        result = cli("batch", two_clips, "-o", out, "--model", rgb_model_dir, "--ext", "mkv")
    finally:
        subprocess.run(["umount", out], check=True)
    assert one_line(result, 2) == (f"vidtrans: error: {out}: the output folder is the input folder; choose another one "
                                   "(outputs keep the input's names)")
    assert sorted(os.listdir(two_clips)) == ["a.mp4", "b.mp4"]


def test_a_link_to_nowhere_as_report_is_refused_before_any_work(two_clips, tmp_path, rgb_model_dir, cli):
    """Taken as no file when the batch started, and as an existing one when the report was written
    after every clip: all the work, then exit 2 and no summary."""
    report = tmp_path / "report.json"
    report.symlink_to("nowhere.json")
    out = tmp_path / "out"
    result = cli("batch", two_clips, "-o", out, "--model", rgb_model_dir, "--report", report)
    assert one_line(result, 2) == (f"vidtrans: error: --report {report}: already exists and is not a batch report; "
                                   "choose another path or pass --overwrite")
    assert not out.exists() and os.readlink(report) == "nowhere.json"
    assert cli("batch", two_clips, "-o", out, "--model", rgb_model_dir, "--report", report, "--overwrite",
               "--preset", "ultrafast").returncode == 0
    assert not report.is_symlink() and json.loads(report.read_text())["totals"]["done"] == 2


def test_an_empty_input_folder_name_is_refused_from_python_too(two_clips, tmp_path, rgb_model_dir, monkeypatch):
    """'' was the current folder: every clip below it translated (the CLI and output_dir refuse it)."""
    monkeypatch.chdir(two_clips)
    with pytest.raises(BatchUsageError, match=r"^the input folder is empty \(''\); give the folder of clips to "
                                              "translate$"):
        translate_folder("", tmp_path / "out", rgb_model_dir)
    assert not (tmp_path / "out").exists()


def test_clips_whose_outputs_differ_in_case_alone_collide_where_case_does_not_count(tmp_path, rgb_model_dir):
    """An output folder on a file system that does not tell capitals from small letters (macOS, exFAT,
    a Windows share), stood in for by a manifest also found under its name in capitals: A.mp4 and
    a.mp4 are one output there, which each rerun gave to the other clip."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "A.mp4", frames=4, audio=False)
    make_clip(src / "a.mp4", frames=6, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text('{"format": "vidtrans-batch-manifest", "version": 2}\n')
    (out / MANIFEST_NAME.upper()).symlink_to(MANIFEST_NAME)
    report = translate_folder(src, out, rgb_model_dir, **FAST)
    assert [c.status for c in report.clips] == ["done", "failed"]
    assert report.clips[1].error == (f"{out / 'a.mp4'}: is {out / 'A.mp4'}, the output of A.mp4, in an output folder "
                                     "that does not tell capitals from small letters; rename one of the clips")
    assert not (out / "a.mp4").exists()
    # Where case counts, they are two files, as ever.
    plain = translate_folder(src, tmp_path / "plain", rgb_model_dir, **FAST)
    assert [c.status for c in plain.clips] == ["done", "done"]


# --- an output edited since the batch wrote it ------------------------------------------------------

def _statuses(report) -> dict[str, tuple[str, str | None]]:
    return {Path(c.input).name: (c.status, c.error) for c in report.clips}


def test_an_output_edited_since_the_batch_wrote_it_is_not_replaced_without_overwrite(two_clips, tmp_path,
                                                                                     rgb_model_dir):
    """A rerun that had to redo the clip (other settings) replaced the user's edit: the manifest
    said the file was the batch's, though it was no longer what the batch wrote."""
    out = tmp_path / "out"
    translate_folder(two_clips, out, rgb_model_dir, **FAST)
    (out / "a.mp4").write_bytes(b"my edit")
    untouched = (out / "b.mp4").read_bytes()
    report = translate_folder(two_clips, out, rgb_model_dir, **FAST, crf=30)
    status, error = _statuses(report)["a.mp4"]
    assert status == "failed" and error.endswith("a.mp4: has changed since this batch wrote it; pass overwrite=True "
                                                 "to translate the clip again, replacing it")
    assert (out / "a.mp4").read_bytes() == b"my edit"
    assert _statuses(report)["b.mp4"][0] == "done" and (out / "b.mp4").read_bytes() != untouched  # its own: redone
    report = translate_folder(two_clips, out, rgb_model_dir, **FAST, crf=30, overwrite=True)
    assert _statuses(report)["a.mp4"][0] == "done" and (out / "a.mp4").read_bytes() != b"my edit"


def test_an_output_kept_through_a_failed_attempt_stays_the_batchs_until_edited(two_clips, tmp_path, rgb_model_dir):
    """A failed attempt leaves the earlier output in place; its record keeps that file's size, so a
    later run may still replace it, unless it was edited in between."""
    out = tmp_path / "out"
    translate_folder(two_clips, out, rgb_model_dir, **FAST)
    good = (two_clips / "a.mp4").read_bytes()
    (two_clips / "a.mp4").write_bytes(b"broken now")
    assert _statuses(translate_folder(two_clips, out, rgb_model_dir, **FAST))["a.mp4"][0] == "failed"
    (two_clips / "a.mp4").write_bytes(good)
    first = (out / "a.mp4").read_bytes()
    assert _statuses(translate_folder(two_clips, out, rgb_model_dir, **FAST, crf=30))["a.mp4"] == ("done", None)
    assert (out / "a.mp4").read_bytes() != first

    (two_clips / "a.mp4").write_bytes(b"broken again")
    assert _statuses(translate_folder(two_clips, out, rgb_model_dir, **FAST))["a.mp4"][0] == "failed"
    (two_clips / "a.mp4").write_bytes(good)
    (out / "a.mp4").write_bytes(b"edited after the failure")
    status, error = _statuses(translate_folder(two_clips, out, rgb_model_dir, **FAST))["a.mp4"]
    assert status == "failed" and "has changed since this batch wrote it" in error
    assert (out / "a.mp4").read_bytes() == b"edited after the failure"


def test_an_output_published_by_an_attempt_stopped_before_its_record_stays_the_batchs(two_clips, tmp_path,
                                                                                       rgb_model_dir):
    """Stopped between publishing an output and recording it done, the clip's record says running;
    the file there (of another size than the last done one's) is the batch's own to redo."""
    out = tmp_path / "out"
    translate_folder(two_clips, out, rgb_model_dir, **FAST)
    manifest = out / MANIFEST_NAME
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    last = [r for r in records if r.get("clip") == "a.mp4"][-1]
    running = {k: v for k, v in last.items() if k not in ("frames", "seconds", "finished")}
    with manifest.open("a") as f:
        f.write(json.dumps({**running, "status": "running"}) + "\n")
    (out / "a.mp4").write_bytes((out / "a.mp4").read_bytes() + b"\0" * 10)  # the stopped attempt's output
    status, error = _statuses(translate_folder(two_clips, out, rgb_model_dir, **FAST))["a.mp4"]
    assert (status, error) == ("done", None)


def test_a_smoothing_strength_that_would_do_nothing_is_refused_before_any_clip(two_clips, tmp_path, rgb_model_dir,
                                                                              cli):
    """Every clip failed alike (exit 1) where run refuses it at once."""
    out = tmp_path / "out"
    line = one_line(cli("batch", two_clips, "-o", out, "-m", rgb_model_dir, "--smooth-strength", "0.4"), 2)
    assert "--smooth-strength 0.4 would do nothing" in line and "--smooth ema or flow" in line
    assert not out.exists()
