"""QA pass 25, `batch`: names shown as they are (rich turned ':x:' into an emoji), an output folder
that cannot be opened, and the outputs of an earlier batch inside the input folder taken for clips."""

import errno
import io
import logging
import os
import shutil

from rich.console import Console

from tests.conftest import one_line
from tests.media import make_clip
from tests.test_batch import FAST
from vidtrans.batch import ClipResult, find_clips, translate_folder
from vidtrans.cli_batch_ui import RichDisplay

# Names holding rich's emoji codes: shown as typed, never as the pictures the codes stand for.
EMOJI_CODES = {":x:": "\u274c", ":smile:": "\U0001f604", ":tada:": "\U0001f389"}


def test_names_with_emoji_codes_are_shown_as_they_are(tmp_path, rgb_model_dir, cli):
    """`:x: take.mp4` was shown as '❌ take.mp4' in the log lines, the failures table and the title
    (the model's folder name): a name nobody could find on disk or grep for. And a failed clip's
    path longer than its column was cut short ('.../test_…'): on a terminal, where the table is the
    only place that names the failed clips, which one failed could not be told; it is folded now."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / ":x: take.mp4", frames=4, audio=False)
    (src / ":smile:broken.mp4").write_bytes(b"not a video")
    model = tmp_path / ":tada:model"
    shutil.copytree(rgb_model_dir, model)
    result = cli("batch", src, "-o", tmp_path / "out", "--model", model, "--preset", "ultrafast")
    assert result.returncode == 1 and result.exception is None, result.stderr
    assert not any(picture in result.stderr for picture in EMOJI_CODES.values()), result.stderr
    assert f"done {src}/:x: take.mp4: 4 frames" in result.stderr
    assert f"failed {src}/:smile:broken.mp4: " in result.stderr
    assert "vidtrans batch: :tada:model" in result.stderr
    failures = result.stderr.split("failed clip")[1].splitlines()
    assert "".join(line.split("│")[1].strip() for line in failures if line.startswith("│")) == \
        f"{src}/:smile:broken.mp4"


def test_a_terminal_shows_clips_and_warnings_with_emoji_codes_as_they_are():
    """The workers' lines on a terminal (and a notice, a warning) turned the codes into pictures too."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None, markup=False, highlight=False)
    clip, worker = ":x: take [a].mp4", "worker 1 (cpu)"
    with RichDisplay(console) as display:
        display.begin(1, 1)
        display.clip_started(worker, clip)
        display.clip_progress(worker, clip, 2, 4, "translating")
        display.bar.refresh()
        display.notice(f"{worker} was lost while translating in/{clip}", worker)
        display.clip_finished(worker, ClipResult(f"in/{clip}", f"out/{clip}", "done", 4, 0.1, warning="nobody :smile:"))
    shown = out.getvalue()
    assert f"{clip}: translating" in shown
    assert f"vidtrans: warning: {worker} was lost while translating in/{clip}" in shown
    assert f"vidtrans: warning: in/{clip}: nobody :smile:" in shown
    assert not any(picture in shown for picture in EMOJI_CODES.values()), shown


def test_an_output_folder_that_cannot_be_opened_is_one_line(tmp_path, rgb_model_dir, cli, monkeypatch):
    """An output folder the user may write into but not list (chmod 733, a drop box) could not be
    opened for the batch's lock: a PermissionError traceback. (Simulated: root opens any folder.)"""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_clip(src / "a.mp4", frames=4, audio=False)
    out.mkdir()
    real_open = os.open

    def unlistable(path, flags, *args, **kwargs):
        if os.fspath(path) == str(out) and not flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", unlistable)
    line = one_line(cli("batch", src, "-o", out, "--model", rgb_model_dir), 2)
    assert line == (f"vidtrans: error: {out}: cannot open the output folder (Permission denied); choose an output "
                    "folder you can read and write")
    assert os.listdir(out) == []


def test_the_outputs_of_an_earlier_batch_inside_the_input_folder_are_not_clips(tmp_path, rgb_model_dir, caplog):
    """`batch in -o in/out`, then `batch in -o in/out2` (a new output folder, other settings) took
    in/out's translated outputs for clips and translated them again, into in/out2/out/; each further
    output folder took all the earlier ones. A folder holding a batch's manifest is left out, with a
    warning; given as the input folder itself, its clips are translated as asked."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "a.mp4", frames=4, audio=False)
    make_clip(src / "sub" / "b.mp4", frames=4, audio=False)
    first = translate_folder(src, src / "out", rgb_model_dir, **FAST)
    assert first.totals()["done"] == 2
    with caplog.at_level(logging.WARNING):
        second = translate_folder(src, src / "out2", rgb_model_dir, **FAST)
    assert sorted(os.path.relpath(c.input, src) for c in second.clips) == ["a.mp4", os.path.join("sub", "b.mp4")]
    assert not (src / "out2" / "out").exists()
    assert [r.getMessage() for r in caplog.records if "out" in r.getMessage()] == [
        f"{src / 'out'}: is the output folder of a vidtrans batch (it holds .vidtrans-batch.jsonl); its clips are "
        "left out"]
    # Asked for by name, an output folder is a folder of clips like any other.
    assert [p.relative_to(src).as_posix() for p in find_clips(src / "out")] == ["out/a.mp4", "out/sub/b.mp4"]
    third = translate_folder(src / "out", tmp_path / "again", rgb_model_dir, **FAST)
    assert third.totals()["done"] == 2
