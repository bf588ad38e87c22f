"""QA pass 22, `batch`: which clip an output shared by two clips belongs to (--ext: a.mp4 and a.mov,
or x.mov and a folder x.mp4), a clip renamed to another extension, messages from Python spelled as
Python spells settings, a --report that cannot be written at the end of a batch (which lost the
batch's summary), and folders that are links leading nowhere."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import one_line
from tests.media import decode_all, make_clip
from tests.test_batch import FAST
from tests.test_qa20_batch import two_clips  # noqa: F401 (a fixture)
from vidtrans.batch import (MANIFEST_NAME, BatchListener, BatchUsageError, ReportNotWritten, read_manifest,
                            translate_folder)
from vidtrans.cli_batch_ui import RichDisplay
from vidtrans.errors import VidtransError


def _frames(path: Path) -> int:
    return len(decode_all(path)[0])


def _statuses(report) -> dict[str, tuple[str, str | None]]:
    return {Path(c.input).name: (c.status, c.error) for c in report.clips}


# --- two clips, one output ------------------------------------------------------------------------

def test_a_clip_added_beside_the_one_whose_output_it_would_share_does_not_take_it(tmp_path, rgb_model_dir):
    """a.mp4 translated with --ext mkv, then a.mov added: a.mov (first by name) claimed a.mkv, which
    the manifest records as a.mp4's, so both failed, and --overwrite gave a.mp4's output to a.mov."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=4, audio=False)
    out = tmp_path / "out"
    assert [c.status for c in translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST).clips] == ["done"]
    make_clip(src / "a.mov", frames=6, audio=False)
    loser = (f"{src / 'a.mov'}: same output as a.mp4 beside it ({out / 'a.mkv'}); rename one of the two clips, "
             "or leave out ext")
    again = translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST)
    assert _statuses(again) == {"a.mov": ("failed", loser), "a.mp4": ("skipped", None)}
    redone = translate_folder(src, out, rgb_model_dir, ext="mkv", overwrite=True, **FAST)
    assert _statuses(redone) == {"a.mov": ("failed", loser), "a.mp4": ("done", None)}
    assert _frames(out / "a.mkv") == 4  # a.mp4's, every time
    assert read_manifest(out)["a.mp4"]["status"] == "done"
    # Also after a run with another --ext (a.mkv is then among the outputs a.mp4 wrote before).
    assert _statuses(translate_folder(src, out, rgb_model_dir, **FAST)) == {"a.mov": ("done", None),
                                                                           "a.mp4": ("done", None)}
    assert _statuses(translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST)) == {
        "a.mov": ("failed", loser), "a.mp4": ("done", None)}
    assert _frames(out / "a.mkv") == 4


def test_a_clip_that_cannot_be_read_does_not_take_a_shared_output_from_one_that_can(tmp_path, rgb_model_dir):
    """A FIFO a.mov (first by name) claimed a.mkv and failed as a FIFO; the good a.mp4 failed for
    sharing its output with a clip that never writes it."""
    src = tmp_path / "in"
    src.mkdir()
    os.mkfifo(src / "a.mov")
    make_clip(src / "a.mp4", frames=4, audio=False)
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, ext="mkv", **FAST)
    statuses = _statuses(report)
    assert statuses["a.mp4"] == ("done", None)
    assert statuses["a.mov"][0] == "failed" and "not a regular file (a FIFO)" in statuses["a.mov"][1]
    assert _frames(tmp_path / "out" / "a.mkv") == 4


def test_the_clip_that_loses_a_shared_output_is_named_with_the_fix_on_the_command_line(tmp_path, rgb_model_dir,
                                                                                         cli):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "b.mp4", frames=4, audio=False)
    make_clip(src / "b.avi", frames=6, audio=False)
    out = tmp_path / "out"
    result = cli("batch", src, "-o", out, "--model", rgb_model_dir, "--ext", "mkv", "--preset", "ultrafast")
    assert result.returncode == 1, result.stderr
    # The first by name keeps it, whatever order the file system lists them in.
    assert _frames(out / "b.mkv") == 6
    lines = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert lines == [f"failed {src / 'b.mp4'}: same output as b.avi beside it ({out / 'b.mkv'}); rename one of the "
                     "two clips, or leave out --ext"]


def test_an_output_that_is_where_another_clips_output_folder_goes_is_given_to_one_clip(tmp_path, rgb_model_dir):
    """--ext mp4 with a clip x.mov and a folder x.mp4 of clips: both wanted OUT/x.mp4, one as a file,
    the other as its folder; whichever worker came first won, the other failed with a file-system error."""
    src = tmp_path / "in"
    (src / "x.mp4").mkdir(parents=True)
    make_clip(src / "x.mp4" / "inner.mp4", frames=4, audio=False)
    out = tmp_path / "out"
    first = translate_folder(src, out, rgb_model_dir, ext="mp4", workers=1, **FAST)
    assert _statuses(first) == {"inner.mp4": ("done", None)}
    make_clip(src / "x.mov", frames=6, audio=False)
    # The clip that wrote its output keeps it, a clip added since is told why not, on every run.
    for workers in (1, 2):
        again = translate_folder(src, out, rgb_model_dir, ext="mp4", workers=workers, **FAST)
        assert _statuses(again) == {
            "inner.mp4": ("skipped", None),
            "x.mov": ("failed", f"{src / 'x.mov'}: its output {out / 'x.mp4'} would be the folder of "
                                f"{out / 'x.mp4' / 'inner.mp4'}, the output of x.mp4/inner.mp4; rename one of the two "
                                "clips, or leave out ext")}
    # In a new output folder the first by path keeps it (x.mov before x.mp4/), whatever the workers do.
    for workers in (1, 2):
        fresh = tmp_path / f"fresh{workers}"
        report = translate_folder(src, fresh, rgb_model_dir, ext="mp4", workers=workers, **FAST)
        assert _statuses(report) == {
            "inner.mp4": ("failed", f"{src / 'x.mp4' / 'inner.mp4'}: its output {fresh / 'x.mp4' / 'inner.mp4'} would "
                                    f"be inside {fresh / 'x.mp4'}, the output of x.mov; rename one of the two clips, "
                                    "or leave out ext"),
            "x.mov": ("done", None)}
        assert _frames(fresh / "x.mp4") == 6


def test_a_clip_renamed_to_another_extension_takes_over_the_output_its_old_name_made(tmp_path, rgb_model_dir):
    """a.mp4 renamed a.mov, with --ext mkv: a.mkv, written by the batch, was refused as someone else's
    file, and only --overwrite (every clip again) went on."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=4, audio=False)
    make_clip(src / "b.mp4", frames=4, audio=False)
    out = tmp_path / "out"
    translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST)
    (src / "a.mp4").rename(src / "a.mov")
    again = translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST)
    assert _statuses(again) == {"a.mov": ("done", None), "b.mp4": ("skipped", None)}
    # A clip still there but left out this time (--pattern) keeps its output.
    make_clip(src / "b.mov", frames=6, audio=False)
    narrowed = translate_folder(src, out, rgb_model_dir, ext="mkv", patterns="*.mov", **FAST)
    assert _statuses(narrowed)["b.mov"][1].startswith(f"{out / 'b.mkv'}: already exists and the batch manifest does "
                                                      "not record it")
    assert _frames(out / "b.mkv") == 4
    # Gone, its output edited since the batch wrote it: the user's again.
    (src / "b.mp4").unlink()
    (out / "b.mkv").write_bytes(b"edited")
    edited = translate_folder(src, out, rgb_model_dir, ext="mkv", **FAST)
    assert _statuses(edited)["b.mov"] == ("failed", f"{out / 'b.mkv'}: has changed since this batch wrote it; pass "
                                                    "overwrite=True to translate the clip again, replacing it")
    assert (out / "b.mkv").read_bytes() == b"edited"


# --- messages from Python -------------------------------------------------------------------------

def test_messages_from_python_spell_settings_as_python_does(tmp_path, rgb_model_dir):
    """They said --overwrite, --no-recursive and --ext mp4, flags a Python caller has no use for."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "sub" / "a.mp4", frames=4, audio=False)
    with pytest.raises(BatchUsageError, match=r"; subfolders are not searched \(recursive=False\)\); check the folder"):
        translate_folder(src, tmp_path / "out", rgb_model_dir, recursive=False)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "a.mp4").write_bytes(b"mine")
    report = translate_folder(src, out, rgb_model_dir, **FAST)
    assert report.clips[0].error.endswith("; pass overwrite=True to translate the clip again, replacing it")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(BatchUsageError, match=r"is not a batch report; choose another path or pass overwrite=True$"):
        translate_folder(src, out, rgb_model_dir, report=tmp_path / "notes.json")
    (out / MANIFEST_NAME).write_text('{"format": "something-else", "version": 9}\n')
    with pytest.raises(VidtransError, match=r"; delete it or pass overwrite=True$"):
        translate_folder(src, out, rgb_model_dir, **FAST)
    (src / "sub" / "a.mp4").rename(src / "sub" / "clip")
    with pytest.raises(BatchUsageError, match=r"\(for batch: ext='mp4'\)$"):
        translate_folder(src, tmp_path / "other", rgb_model_dir, patterns="clip")
    with pytest.raises(BatchUsageError, match=r"not a folder; translate a single clip on its own \(vidtrans run, or "
                                              r"translate_video from Python\)$"):
        translate_folder(src / "sub" / "clip", tmp_path / "other", rgb_model_dir)


def test_the_command_line_still_names_its_flags(tmp_path, rgb_model_dir, cli):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "sub" / "a.mp4", frames=4, audio=False)
    result = cli("batch", src, "-o", tmp_path / "out", "--model", rgb_model_dir, "--no-recursive")
    assert result.returncode == 2 and "subfolders are not searched (--no-recursive));" in result.stderr
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text('{"format": "something-else", "version": 9}\n')
    result = cli("batch", src, "-o", out, "--model", rgb_model_dir)
    assert result.returncode == 1 and result.stderr.rstrip().endswith("; delete it or pass --overwrite")


# --- a report that cannot be written at the end ---------------------------------------------------

class RemovesTheReportFolder(BatchListener):
    def __init__(self, folder: Path):
        self.folder = folder

    def clip_finished(self, worker, result):
        shutil.rmtree(self.folder, ignore_errors=True)


def test_a_report_that_cannot_be_written_at_the_end_keeps_the_batchs_results(two_clips_and_report, rgb_model_dir):
    """Its folder removed while the batch ran: a usage error (exit 2) and the results were lost."""
    src, out, report_path = two_clips_and_report
    with pytest.raises(ReportNotWritten) as raised:
        translate_folder(src, out, rgb_model_dir, report=report_path,
                         listener=RemovesTheReportFolder(report_path.parent), **FAST)
    assert not isinstance(raised.value, BatchUsageError)
    assert str(raised.value) == (f"report {report_path}: folder {report_path.parent} does not exist; create it first; "
                                 f"the batch itself ran (2 done), as {out / MANIFEST_NAME} records")
    assert [c.status for c in raised.value.report.clips] == ["done", "done"]
    assert {r["status"] for r in read_manifest(out).values()} == {"done"}
    again = translate_folder(src, out, rgb_model_dir, **FAST)
    assert [c.status for c in again.clips] == ["skipped", "skipped"]


def test_the_command_line_prints_the_summary_then_the_reports_error(two_clips_and_report, rgb_model_dir, cli,
                                                                    monkeypatch):
    src, out, report_path = two_clips_and_report

    def clip_finished(self, worker, result, original=RichDisplay.clip_finished):
        original(self, worker, result)
        shutil.rmtree(report_path.parent, ignore_errors=True)

    monkeypatch.setattr(RichDisplay, "clip_finished", clip_finished)
    result = cli("batch", src, "-o", out, "--model", rgb_model_dir, "--report", report_path, "--preset", "ultrafast")
    assert result.returncode == 1 and result.exception is None
    lines = result.stderr.splitlines()
    # The summary first, then the one error line, last.
    assert f"done {src / 'a.mp4'}: 4 frames in" in result.stderr and "all (wall clock)" in result.stderr
    assert [line for line in lines if "error" in line] == [lines[-1]]
    assert lines[-1] == (f"vidtrans: error: --report {report_path}: folder {report_path.parent} does not exist; create "
                         f"it first; the batch itself ran (2 done), as {out / MANIFEST_NAME} records")
    assert {r["status"] for r in read_manifest(out).values()} == {"done"}


@pytest.fixture
def two_clips_and_report(two_clips, tmp_path):
    (tmp_path / "reports").mkdir()
    return two_clips, tmp_path / "out", tmp_path / "reports" / "report.json"


# --- hostile folders ------------------------------------------------------------------------------

def test_folders_that_are_links_leading_nowhere_are_named_as_such(tmp_path, rgb_model_dir, cli):
    """An output folder that is a link to nowhere, or back to itself, was refused as 'cannot create
    the output folder (File exists)'; such an input folder as 'no such folder'."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=4, audio=False)
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "gone").symlink_to("nowhere")
    for folder, why in (("loop", "is a link that leads back to itself"),
                        ("gone", "is a link to nowhere, which does not exist")):
        line = one_line(cli("batch", src, "-o", tmp_path / folder, "--model", rgb_model_dir), 2)
        assert line == f"vidtrans: error: {tmp_path / folder}: {why}; remove it or choose another output folder"
        line = one_line(cli("batch", tmp_path / folder, "-o", tmp_path / "out", "--model", rgb_model_dir), 2)
        assert line == f"vidtrans: error: {tmp_path / folder}: {why}; give the folder of clips to translate"
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "out").exists()


def test_a_link_whose_target_cannot_be_reached_is_not_called_missing(tmp_path, monkeypatch):
    """A link into a folder the user may not enter was said to lead to something that does not
    exist, with the advice to remove it; it is a permission problem, said as such where it is read."""
    import errno

    from vidtrans import batch

    link = tmp_path / "a.mp4"
    link.symlink_to(tmp_path / "locked" / "a.mp4")
    assert batch._broken_link(link).endswith("which does not exist")
    real_stat = os.stat

    def locked(path, *args, **kwargs):
        if Path(path) == link:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(batch.os, "stat", locked)
    monkeypatch.setattr(batch.os.path, "exists", lambda path: False)  # as it answers for such a link
    assert batch._broken_link(link) is None
