"""QA pass 23, `batch`: what sits at the manifest's names in the output folder (the old
.vidtrans-batch.json as a FIFO or a folder, the manifest as a folder with --overwrite), outputs an
earlier --ext wrote (inside the input folder; of a clip renamed since), cuda and cuda:0 as one
device, a model name with a newline in the summary, and a link to nowhere where an output goes."""

import os

import pytest

from tests.media import make_clip
from tests.test_qa7_batch import FAST, fifo_watched, one_line_error, two_clips  # noqa: F401 (a fixture)
from vidtrans.batch import (LEGACY_MANIFEST_NAME, MANIFEST_NAME, BatchListener, BatchUsageError, read_manifest,
                            translate_folder)


# --- what sits at the manifest's names ------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_as_the_old_manifest_is_never_opened(two_clips, tmp_path, rgb_model_dir):
    """A FIFO at OUT/.vidtrans-batch.json (the manifest's name before version 2) was read as an
    earlier manifest: the batch waited for a writer forever, before it even locked the folder."""
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / LEGACY_MANIFEST_NAME)
    with fifo_watched(out / LEGACY_MANIFEST_NAME) as readers:
        report = translate_folder(two_clips, out, rgb_model_dir, **FAST)
    assert readers == []
    assert [c.status for c in report.clips] == ["done", "done"]
    assert (out / LEGACY_MANIFEST_NAME).is_fifo()  # not ours: left as it was


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_named_as_the_old_manifest_is_left_alone(two_clips, tmp_path, rgb_model_dir, overwrite):
    """A folder at OUT/.vidtrans-batch.json failed the batch as an unreadable manifest, and with
    --overwrite ended it in a traceback (IsADirectoryError), after the new manifest was written."""
    out = tmp_path / "out"
    (out / LEGACY_MANIFEST_NAME).mkdir(parents=True)
    (out / LEGACY_MANIFEST_NAME / "notes.txt").write_text("mine")
    report = translate_folder(two_clips, out, rgb_model_dir, overwrite=overwrite, **FAST)
    assert [c.status for c in report.clips] == ["done", "done"]
    assert (out / LEGACY_MANIFEST_NAME / "notes.txt").read_text() == "mine"
    assert set(read_manifest(out)) == {"a.mp4", "b.mp4"}


def test_a_folder_where_the_manifest_belongs_is_told_alike_with_overwrite(two_clips, tmp_path, rgb_model_dir, cli):
    """Without --overwrite: exit 1, "not a file, where the batch keeps its manifest; move it away".
    With it: exit 2 and "is a folder; give an output file name", a name the user never gave."""
    out = tmp_path / "out"
    (out / MANIFEST_NAME).mkdir(parents=True)
    args = ["batch", two_clips, "-o", out, "-m", rgb_model_dir, "--devices", "cpu"]
    for extra in ([], ["--overwrite"]):
        result = cli(*args, *extra)
        assert result.returncode == 1
        assert one_line_error(result) == f"{out / MANIFEST_NAME}: not a file, where the batch keeps its manifest; " \
                                         "move it away"
    assert sorted(os.listdir(out)) == [MANIFEST_NAME]  # no output written


# --- an output folder inside the input folder -----------------------------------------------------

def translated_with_ext_then_without(src, out, model) -> None:
    """SRC/a.mov translated into OUT with --ext mp4 (a.mp4), then without (a.mov): the manifest
    records a.mp4 as the clip's earlier output."""
    src.mkdir()
    make_clip(src / "a.mov", frames=4, audio=False)
    assert [c.status for c in translate_folder(src, out, model, ext="mp4", **FAST).clips] == ["done"]
    assert [c.status for c in translate_folder(src, out, model, **FAST).clips] == ["done"]


def test_outputs_an_earlier_ext_wrote_inside_the_input_folder_stay_the_batchs(tmp_path, rgb_model_dir):
    """IN/a.mov into IN/out with --ext mp4, then twice without: the third run refused the batch (exit
    2), taking OUT/a.mp4, which the manifest records as this clip's earlier output, for a user's clip."""
    src = tmp_path / "in"
    out = src / "out"
    translated_with_ext_then_without(src, out, rgb_model_dir)
    assert [c.status for c in translate_folder(src, out, rgb_model_dir, **FAST).clips] == ["skipped"]
    assert sorted(os.listdir(out)) == [MANIFEST_NAME, "a.mov", "a.mp4"]
    # A user's clip there is still refused.
    make_clip(out / "b.mp4", frames=4, audio=False)
    with pytest.raises(BatchUsageError, match=r"holds 1 clip\(s\) that are not this batch's outputs \(.*b\.mp4\)"):
        translate_folder(src, out, rgb_model_dir, **FAST)


# --- several devices ------------------------------------------------------------------------------

def test_cuda_and_the_cuda_device_it_means_share_one_model(two_clips, tmp_path, rgb_model_dir, monkeypatch):
    """--devices cuda,cuda:0 (or auto,cuda:0 on a GPU machine) loaded the model twice onto one GPU:
    `cuda` and `cuda:0` were two devices, each with a model and its own batches in flight."""
    import torch

    import vidtrans

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    cpu_model = vidtrans.load_model(rgb_model_dir, device="cpu")
    loaded = []

    def load(model, device, **kwargs):
        loaded.append(str(device))
        return cpu_model

    class StopAtOnce(BatchListener):
        def stop_asked(self) -> bool:  # the models are loaded by then; no clip is translated on a CPU as "cuda"
            return True

    monkeypatch.setattr(vidtrans, "load_model", load)
    for devices, expected in (("cuda,cuda:0", ["cuda:0"]), ("auto,cuda:1,cuda:0", ["cuda:0", "cuda:1"])):
        loaded.clear()
        with pytest.raises(KeyboardInterrupt):
            translate_folder(two_clips, tmp_path / "out", rgb_model_dir, devices=devices, listener=StopAtOnce())
        assert loaded == expected


# --- the display ----------------------------------------------------------------------------------

def test_the_summary_names_a_model_with_a_newline_on_one_line():
    """A model folder named "ti<newline>ny" split the summary table's title over two lines; clip names
    were already escaped (\\n) everywhere on the display."""
    import io

    from rich.console import Console

    from vidtrans.batch import BatchReport, ClipResult
    from vidtrans.cli_batch_ui import summary_tables

    report = BatchReport("in", "out", "ti\nny", [ClipResult("in/a.mp4", "out/a.mp4", "failed", error="bad")])
    shown = io.StringIO()
    console = Console(file=shown, width=120, markup=False, highlight=False)
    for table in summary_tables(report):
        console.print(table)
    assert "vidtrans batch: ti\\nny" in shown.getvalue().splitlines()[0]


# --- links ----------------------------------------------------------------------------------------

def test_a_link_to_nowhere_where_an_output_goes_is_replaced_only_with_overwrite(two_clips, tmp_path, rgb_model_dir):
    """OUT/a.mp4 a link to nowhere: the first run failed a.mp4 ("already exists"), but recorded the
    output as the batch's own (the file's existence was asked through the link), so the second run
    replaced the link without --overwrite."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").symlink_to(tmp_path / "nowhere.mp4")
    for b in ("done", "skipped"):
        report = translate_folder(two_clips, out, rgb_model_dir, **FAST)
        assert [c.status for c in report.clips] == ["failed", b]
        assert report.clips[0].error.startswith(f"{out / 'a.mp4'}: already exists")
        assert (out / "a.mp4").is_symlink()
    redone = translate_folder(two_clips, out, rgb_model_dir, overwrite=True, **FAST)
    assert [c.status for c in redone.clips] == ["done", "done"]
    assert (out / "a.mp4").is_file() and not (out / "a.mp4").is_symlink()


def test_a_renamed_clip_takes_over_the_output_an_earlier_ext_of_its_old_name_wrote(tmp_path, rgb_model_dir):
    """a.mov with --ext mp4 (a.mp4), then without (a.mov), renamed a.mkv and run with --ext mp4: a.mp4,
    which the manifest records as the batch's, was refused as someone else's file."""
    src, out = tmp_path / "in", tmp_path / "out"
    translated_with_ext_then_without(src, out, rgb_model_dir)
    (src / "a.mov").rename(src / "a.mkv")
    report = translate_folder(src, out, rgb_model_dir, ext="mp4", **FAST)
    assert [(c.status, c.error) for c in report.clips] == [("done", None)]
