"""QA pass 7, batch and model listing: FIFOs and devices among the clips, empty or damaged manifests,
models listed but not loadable by name, an empty output path, messages about reports and blocked
folders, report totals, help metavars."""

import contextlib
import errno
import json
import os
import shutil
import threading

import pytest

from tests.media import make_clip
from vidtrans.batch import MANIFEST_NAME, Manifest, translate_folder
from vidtrans.models.checkpoint import CARD_NAME, WEIGHTS_NAME, load_checkpoint

FAST = dict(devices=["cpu"], preset="ultrafast", batch_size=4)


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exception is None and len(lines) == 1 and lines[0].startswith("vidtrans: error: "), result.stderr
    return lines[0].removeprefix("vidtrans: error: ")


@pytest.fixture
def two_clips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        make_clip(src / f"{name}.mp4", frames=5, audio=False)
    return src


# --- 3. FIFOs, sockets and devices among the clips -------------------------------------------------


@contextlib.contextmanager
def fifo_watched(fifo):
    """Yields a list that gets an entry each time someone was found waiting to read `fifo`: a batch
    opening it would wait for a writer forever, so each is set free (it reads end of file) and the
    test fails instead of hanging the suite."""
    readers, finished = [], threading.Event()

    def unblock_readers():
        while not finished.wait(0.2):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as e:
                assert e.errno == errno.ENXIO  # nobody is reading
            else:
                readers.append(fifo)

    watchdog = threading.Thread(target=unblock_readers, daemon=True)
    watchdog.start()
    try:
        yield readers
    finally:
        finished.set()
        watchdog.join()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_device_among_the_clips_fails_in_one_line_without_being_opened(two_clips, tmp_path,
                                                                                rgb_model_dir):
    fifo = two_clips / "fifo.mp4"
    os.mkfifo(fifo)
    device = two_clips / "null.mp4"
    os.symlink(os.devnull, device)
    with fifo_watched(fifo) as readers:
        report = translate_folder(two_clips, tmp_path / "out", rgb_model_dir, **FAST)
    assert readers == []
    clips = {os.path.basename(c.input): c for c in report.clips}
    assert clips["a.mp4"].status == clips["b.mp4"].status == "done"
    assert clips["fifo.mp4"].status == "failed"
    assert clips["fifo.mp4"].error == f"{fifo}: not a regular file (a FIFO); move it out of the input folder or " \
                                      "narrow patterns"
    assert clips["null.mp4"].status == "failed" and "not a regular file (a character device)" in clips["null.mp4"].error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST_NAME, "a.mp4", "b.mp4"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_manifest_or_report_is_refused_without_being_opened(two_clips, tmp_path, rgb_model_dir, cli):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / MANIFEST_NAME)
    report = tmp_path / "report.json"
    os.mkfifo(report)
    args = ["batch", two_clips, "-o", out, "-m", rgb_model_dir, "--devices", "cpu"]
    with fifo_watched(report) as readers:
        refused = cli(*args, "--report", report)
    assert readers == [] and refused.returncode == 2
    assert one_line_error(refused) == f"--report {report}: is a FIFO, which vidtrans never replaces (outputs are " \
                                      "renamed into place whole); give the name of a regular file"
    with fifo_watched(out / MANIFEST_NAME) as readers:
        result = cli(*args)
    assert readers == [] and result.returncode == 1
    assert one_line_error(result) == f"{out / MANIFEST_NAME}: not a file, where the batch keeps its manifest; " \
                                     "move it away"


# --- 6. empty or damaged manifests ------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b" ", b" \n", b"\x00\xff garbled\n"])
def test_an_empty_or_headless_manifest_records_nothing(tmp_path, content):
    (tmp_path / MANIFEST_NAME).write_bytes(content)
    with Manifest(tmp_path) as manifest:
        assert manifest.clips == {}
        manifest.record("a.mp4", status="done", output="a.mp4")
    with Manifest(tmp_path) as manifest:  # rewritten with a header: the next run reads it back
        assert manifest.clips == {"a.mp4": {"status": "done", "output": "a.mp4"}}


def test_a_garbled_first_line_is_skipped_like_any_damaged_line(two_clips, tmp_path, rgb_model_dir):
    out = tmp_path / "out"
    translate_folder(two_clips, out, rgb_model_dir, **FAST)
    lines = (out / MANIFEST_NAME).read_bytes().split(b"\n")
    (out / MANIFEST_NAME).write_bytes(b"\n".join([b'{"format": "vidtrans-batch-man', *lines[1:]]))
    again = translate_folder(two_clips, out, rgb_model_dir, **FAST)
    assert [c.status for c in again.clips] == ["skipped", "skipped"]


def test_without_its_manifest_a_batch_says_how_to_redo_the_existing_outputs(two_clips, tmp_path, rgb_model_dir,
                                                                             cli):
    out = tmp_path / "out"
    translate_folder(two_clips, out, rgb_model_dir, **FAST)
    outputs = {p: p.read_bytes() for p in out.glob("*.mp4")}
    (out / MANIFEST_NAME).write_bytes(b"")
    result = cli("batch", two_clips, "-o", out, "-m", rgb_model_dir, "--devices", "cpu", "--preset", "ultrafast")
    assert result.returncode == 1 and result.exception is None, result.stderr
    assert "unreadable batch manifest" not in result.stderr and "Traceback" not in result.stderr
    for dst in outputs:  # one line per clip when stderr is not a terminal
        assert (f"failed {two_clips / dst.name}: {dst}: already exists and the batch manifest does not record it "
                "as this batch's output; pass --overwrite to translate the clip again, replacing it"
                in result.stderr.splitlines())
    assert {p: p.read_bytes() for p in outputs} == outputs  # nothing replaced without --overwrite
    redo = translate_folder(two_clips, out, rgb_model_dir, overwrite=True, **FAST)
    assert [c.status for c in redo.clips] == ["done", "done"]


# --- 7 and 12. `vidtrans models` lists what --model NAME loads, in full ----------------------------


@pytest.fixture
def search_path(tmp_path, rgb_model_dir):
    """A search-path folder holding a good model under a name with a space, and a card without weights."""
    models = tmp_path / "a rather long folder name for the models, to be cut at eighty columns"
    shutil.copytree(rgb_model_dir, models / "sp ace")
    (models / "noweights").mkdir(parents=True)
    (models / "noweights" / CARD_NAME).write_text((rgb_model_dir / CARD_NAME).read_text())
    return models


def test_a_model_name_with_a_space_loads_by_name(search_path, monkeypatch):
    monkeypatch.setenv("VIDTRANS_MODELS", str(search_path))
    assert load_checkpoint("sp ace").path == search_path / "sp ace"


def test_models_lists_paths_in_full_and_a_folder_without_weights_as_unusable(search_path, cli):
    env = {**os.environ, "VIDTRANS_MODELS": str(search_path), "COLUMNS": "80"}
    result = cli("models", env=env)
    assert result.returncode == 0 and result.exception is None, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "resnet_6blocks ngf 8" in rows["sp ace"] and str(search_path / "sp ace") in rows["sp ace"]
    assert "unusable: no weights" in rows["noweights"] and str(search_path / "noweights") in rows["noweights"]
    assert result.stderr.splitlines()[0] == (f"vidtrans: warning: {search_path / 'noweights'}: not a checkpoint "
                                             f"folder ({WEIGHTS_NAME} missing); copy the weights there or remove "
                                             "the folder")
    missing = cli("run", search_path / "clip.mp4", "-m", "nosuchmodel", env=env)
    available = one_line_error(missing).split("(available: ")[1].split(")")[0].split(", ")
    assert "sp ace" in available and "noweights" not in available


# --- 8. an empty output path ----------------------------------------------------------------------


def test_an_empty_output_folder_is_refused(two_clips, tmp_path, rgb_model_dir, cli, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = cli("batch", two_clips, "-o", "", "-m", rgb_model_dir, "--devices", "cpu")
    assert result.returncode == 2
    assert one_line_error(result) == "the output folder is empty (''); give a folder for the outputs, such as out/"
    assert list(here.iterdir()) == []


# --- 13. what is wrong, said plainly --------------------------------------------------------------


def test_a_report_on_an_output_clip_is_named_as_such(two_clips, tmp_path, rgb_model_dir, cli):
    out = tmp_path / "out"
    result = cli("batch", two_clips, "-o", out, "-m", rgb_model_dir, "--devices", "cpu", "--report", out / "a.mp4")
    assert result.returncode == 2
    assert one_line_error(result) == (f"--report {out / 'a.mp4'}: is one of the batch's output clips; choose "
                                      "another report path")


def test_a_file_where_an_output_folder_belongs_fails_those_clips_in_one_line(two_clips, tmp_path, rgb_model_dir):
    (two_clips / "sub").mkdir()
    make_clip(two_clips / "sub" / "c.mp4", frames=5, audio=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file, not a folder")
    report = translate_folder(two_clips, out, rgb_model_dir, **FAST)
    assert [c.status for c in report.clips] == ["done", "done", "failed"]
    assert report.clips[2].error == f"{out / 'sub'}: is a file where the output folder of this clip belongs; move it away"
    assert (out / "sub").read_text() == "a file, not a folder"


# --- 17. report totals agree with the rows ----------------------------------------------------------


def test_totals_count_the_frames_of_skipped_clips_apart(two_clips, tmp_path, rgb_model_dir):
    out = tmp_path / "out"
    first = translate_folder(two_clips, out, rgb_model_dir, **FAST).to_dict()
    assert first["totals"]["frames"] == 10 and first["totals"]["frames_skipped"] == 0
    again = translate_folder(two_clips, out, rgb_model_dir, report=tmp_path / "report.json", **FAST)
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["status"] for c in report["clips"]] == ["skipped", "skipped"] and again.totals() == report["totals"]
    assert [c["frames"] for c in report["clips"]] == [5, 5]
    assert report["totals"]["frames"] == 0 and report["totals"]["frames_skipped"] == 10


# --- 18. help and warnings ------------------------------------------------------------------------


def test_batch_help_names_what_pattern_and_report_take(cli):
    result = cli("batch", "--help", env={**os.environ, "COLUMNS": "200"})
    assert "--pattern <glob>" in result.stdout and "--report <path>" in result.stdout
    assert "-o, --output <path>" in result.stdout
    assert "list[str]" not in result.stdout and "--report <str>" not in result.stdout
