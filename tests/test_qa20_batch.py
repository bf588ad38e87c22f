"""QA pass 20, `batch` with real users' folders: links that lead back to themselves, manifest lines
of the wrong shape, an input folder inside the output folder, names with newlines on the display,
and a stop whose KeyboardInterrupt was lost on its way (the CLI's `_stop_asked`)."""

import io
import json
import os
import threading

import pytest
from rich.console import Console

from tests.media import make_clip
from tests.test_batch import FAST, cli
from vidtrans.batch import MANIFEST_NAME, BatchListener, BatchReport, ClipResult, read_manifest, translate_folder
from vidtrans.cli_batch_ui import RichDisplay, summary_tables


@pytest.fixture
def two_clips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_clip(src / name, frames=4, audio=False)
    return src


def test_a_link_that_leads_back_to_itself_fails_its_clip_in_one_line(two_clips, tmp_path, rgb_model_dir):
    """`ln -s self.mp4 self.mp4` among the clips, and one where an output belongs: Path.resolve()
    raised RuntimeError (a traceback, nothing translated); now those clips fail, the rest are done."""
    (two_clips / "self.mp4").symlink_to("self.mp4")
    (two_clips / "c.mp4").symlink_to("a.mp4")
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.mp4").symlink_to("c.mp4")
    report = translate_folder(two_clips, out, rgb_model_dir, report=tmp_path / "report.json", **FAST)
    status = {os.path.basename(c.input): (c.status, c.error) for c in report.clips}
    assert status["a.mp4"][0] == status["b.mp4"][0] == "done"
    assert status["self.mp4"] == ("failed", f"{two_clips / 'self.mp4'}: is a link that leads back to itself; remove it "
                                            "or point it at a clip")
    assert status["c.mp4"] == ("failed", f"{out / 'c.mp4'}: is a link that leads back to itself, where the clip's "
                                         "output belongs; remove it")
    assert (out / "c.mp4").is_symlink()  # left as it was
    (tmp_path / "loop.json").symlink_to("loop.json")
    result = cli(two_clips, "-o", out, "--model", rgb_model_dir, "--report", tmp_path / "loop.json")
    assert result.returncode == 2
    assert result.stderr == (f"vidtrans: error: --report {tmp_path / 'loop.json'}: is a link that leads back to "
                             "itself; give a report file name such as report.json\n")


def test_a_link_to_nowhere_says_so(two_clips, tmp_path, rgb_model_dir):
    (two_clips / "gone.mp4").symlink_to("moved-away.mp4")
    report = translate_folder(two_clips, tmp_path / "out", rgb_model_dir, **FAST)
    assert report.failed[0].error == (f"{two_clips / 'gone.mp4'}: is a link to moved-away.mp4, which does not exist; "
                                      "remove it or point it at a clip")


@pytest.mark.parametrize("line", [
    {"clip": "a.mp4", "status": "done", "output": "a.mp4", "owned": True, "owned_before": 5},
    {"clip": "a.mp4", "status": "done", "output": "a.mp4", "owned": True, "frames": "many"},
    {"clip": ["a.mp4"], "status": "done"},
])
def test_a_manifest_line_with_fields_of_another_shape_is_damaged_not_a_crash(two_clips, tmp_path, rgb_model_dir,
                                                                            line):
    """Valid JSON, but not what a batch writes (edited by hand, another program): a TypeError in a
    worker thread (a traceback) or in the totals; now skipped like a torn line."""
    out = tmp_path / "out"
    translate_folder(two_clips, out, rgb_model_dir, **FAST)
    records = read_manifest(out)
    if "frames" in line:  # a finished record the rerun would skip, with frames it cannot add up
        line = {**records["a.mp4"], **line}
    (out / MANIFEST_NAME).write_text(json.dumps({"format": "vidtrans-batch-manifest", "version": 2}) + "\n"
                                     + json.dumps(line) + "\n")
    report = translate_folder(two_clips, out, rgb_model_dir, **FAST)
    assert report.totals()["clips"] == 2
    # The line is forgotten: its output is taken for someone else's, as after a torn line.
    assert "does not record it as this batch's output" in report.clips[0].error


def test_an_output_that_would_land_in_the_input_folder_is_refused(tmp_path, rgb_model_dir):
    """IN inside OUT: IN/in/a.mp4's output is OUT/in/a.mp4 = IN/a.mp4, a new file among the inputs that
    the next run took for a clip (translating an output again, and failing the real clip)."""
    out = tmp_path / "out"
    src = out / "in"
    (src / "in").mkdir(parents=True)
    make_clip(src / "in" / "a.mp4", frames=4, audio=False)
    make_clip(src / "b.mp4", frames=4, audio=False)
    for _ in range(2):
        report = translate_folder(src, out, rgb_model_dir, **FAST)
        assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.mp4")) == ["b.mp4", "in/a.mp4"]
    assert [(c.status, c.error) for c in report.clips] == [
        ("skipped", None),
        ("failed", f"{src / 'a.mp4'}: the output would go into the input folder {src}, where the next run would take "
                   "it for a clip; choose an output folder that does not hold the input folder")]
    assert (out / "b.mp4").is_file()


def test_an_output_folder_inside_the_input_folder_stays_fine(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=4, audio=False)
    report = translate_folder(src, src / "out", rgb_model_dir, **FAST)
    assert [c.status for c in report.clips] == ["done"]


class _LosesTheInterrupt(BatchListener):
    """What the CLI's handler leaves when its KeyboardInterrupt was lost: the event set, and further
    signals ignored. Set as the first clip starts, which then takes a while."""

    def __init__(self):
        self.stop, self.started = threading.Event(), []

    def stop_asked(self):
        return self.stop.is_set()

    def clip_started(self, worker, clip):
        self.started.append(clip)
        self.stop.set()

    def clip_progress(self, worker, clip, done, total, phase):
        threading.Event().wait(0.1)


def test_a_stop_whose_interrupt_was_lost_still_stops_the_batch(two_clips, tmp_path, rgb_model_dir):
    """Before, the batch ran every clip to its end (and the CLI exited 0): nothing looked at the event."""
    listener = _LosesTheInterrupt()
    with pytest.raises(KeyboardInterrupt):
        translate_folder(two_clips, tmp_path / "out", rgb_model_dir, workers=1, listener=listener, **FAST)
    # The stop does not wait for the worker's forward pass (the CLI then exits at once); in this process
    # it goes on to its next batch, where it stops and removes its files, still holding the clip's output.
    for thread in threading.enumerate():
        if thread.name.startswith("vidtrans-batch"):
            thread.join(30)
    assert listener.started == ["a.mp4"]
    # Stopped within the first clip (which keeps a "running" record, if it made one): redone next time.
    assert all(r["status"] == "running" for r in read_manifest(tmp_path / "out").values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST_NAME]
    report = translate_folder(two_clips, tmp_path / "out", rgb_model_dir, **FAST)
    assert [c.status for c in report.clips] == ["done", "done"]


def test_a_stop_asked_before_the_clips_start_translates_nothing(two_clips, tmp_path, rgb_model_dir):
    class Cancelled(BatchListener):
        def stop_asked(self):
            return True

    with pytest.raises(KeyboardInterrupt):
        translate_folder(two_clips, tmp_path / "out", rgb_model_dir, listener=Cancelled(), **FAST)
    assert read_manifest(tmp_path / "out") == {}


def test_the_cli_batch_stops_with_128_plus_n_when_the_interrupt_was_lost(two_clips, tmp_path, rgb_model_dir,
                                                                        monkeypatch):
    import signal

    import vidtrans.cli as cli_module

    def begin(self, clips, to_do):
        try:  # the handler's KeyboardInterrupt, dropped by code it was raised in
            cli_module._stop(signal.SIGTERM, None)
        except KeyboardInterrupt:
            pass

    monkeypatch.setattr(RichDisplay, "begin", begin)
    monkeypatch.setattr(cli_module, "_exit_now", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    monkeypatch.setattr(cli_module, "_stopped_by", [])
    result = cli(two_clips, "-o", tmp_path / "out", "--model", rgb_model_dir, "--workers", "1")
    assert result.returncode == 143
    assert not (tmp_path / "out" / "a.mp4").exists() and not (tmp_path / "out" / "b.mp4").exists()


def test_names_with_a_newline_stay_one_line_on_the_display(tmp_path):
    """A clip named 'nl<newline>bad.mp4' broke its log line in two, and its reason named it again
    (errors give it with a space)."""
    text = io.StringIO()
    console = Console(file=text, force_terminal=False, markup=False, highlight=False, soft_wrap=True)
    name = str(tmp_path / "nl\nbad.mp4")
    failed = ClipResult(name, "out/x.mp4", "failed", error=f"{' '.join(name.split())}: not a readable video file")
    done = ClipResult(str(tmp_path / "ok\n.mp4"), "out/y.mp4", "done", frames=3, seconds=1.0,
                      warning="no person\nfound")
    with RichDisplay(console) as display:
        display.begin(2, 2)
        display.clip_finished("", failed)
        display.clip_finished("", done)
        display.notice("worker 1 lost a\nclip")
    escaped = name.replace("\n", "\\n")
    assert text.getvalue().splitlines() == [
        f"failed {escaped}: not a readable video file",
        f"done {tmp_path}/ok\\n.mp4: 3 frames in 1.0 s",
        f"vidtrans: warning: {tmp_path}/ok\\n.mp4: no person\\nfound",
        "vidtrans: warning: worker 1 lost a\\nclip"]
    report = BatchReport("in", "out", "m", [failed])
    Console(file=(tables := io.StringIO()), width=300, markup=False).print(*summary_tables(report))
    assert f"{escaped} │ not a readable video file" in tables.getvalue()


def test_an_output_name_too_long_for_the_file_system_fails_its_clip_alone(two_clips, tmp_path, rgb_model_dir):
    """A clip name near the 255-byte limit and a longer --ext: Path.is_file() raised OSError
    (ENAMETOOLONG) while the batch was planned, a traceback before any clip was translated."""
    make_clip(two_clips / ("x" * 251 + ".mp4"), frames=4, audio=False)
    report = translate_folder(two_clips, tmp_path / "out", rgb_model_dir, ext="mpeg", **FAST)
    assert [c.status for c in report.clips] == ["done", "done", "failed"]
    assert report.clips[2].error == (f"{tmp_path / 'out' / ('x' * 251 + '.mpeg')}: cannot be the clip's output (File "
                                     "name too long); rename the clip or pass a shorter ext")
