"""batch and the files around it: a clip changed before its turn came is translated as it is then
(only a change during its translation spoils its output), and the folders made for outputs that
failed are not left behind, empty."""

from __future__ import annotations

import os

from tests.media import make_clip
from vidtrans.batch import BatchListener, translate_folder


class TouchOnStart(BatchListener):
    """Changes `later` (its modification time, as a copy finishing would) when the first clip starts."""

    def __init__(self, later):
        self.later = later

    def clip_started(self, worker: str, clip: str) -> None:
        if clip != self.later.name:
            os.utime(self.later, ns=(0, os.stat(self.later).st_mtime_ns + 10**9))


def test_a_clip_changed_before_its_turn_is_translated_as_it_is_then(tmp_path, rgb_model_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=6, audio=False)
    make_clip(folder / "b.mp4", frames=6, audio=False)
    report = translate_folder(folder, tmp_path / "out", rgb_model_dir, workers=1,
                              listener=TouchOnStart(folder / "b.mp4"))
    assert [(row.status, row.error) for row in report.clips] == [("done", None), ("done", None)]
    # And the manifest knows the file as it was translated: a rerun has nothing to do.
    assert [row.status for row in translate_folder(folder, tmp_path / "out", rgb_model_dir).clips] == ["skipped"] * 2


def test_folders_made_for_failed_clips_are_removed(tmp_path, rgb_model_dir):
    folder = tmp_path / "in"
    (folder / "deep" / "er").mkdir(parents=True)
    make_clip(folder / "deep" / "er" / "short.mp4", frames=6, audio=False)
    make_clip(folder / "top.mp4", frames=60, audio=False)
    report = translate_folder(folder, tmp_path / "out", rgb_model_dir, start=1.0)
    assert sorted(row.status for row in report.clips) == ["done", "failed"]
    assert not (tmp_path / "out" / "deep").exists()
    assert (tmp_path / "out" / "top.mp4").is_file()


def test_the_report_may_go_into_the_output_folder_the_batch_makes(tmp_path, rgb_model_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "a.mp4", frames=4, audio=False)
    report = tmp_path / "out" / "report.json"
    translate_folder(folder, tmp_path / "out", rgb_model_dir, report=report)
    assert report.is_file() and (tmp_path / "out" / "a.mp4").is_file()


def test_clips_without_an_extension_are_told_to_take_ext(tmp_path, rgb_model_dir, cli):
    from tests.conftest import one_line

    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(tmp_path / "a.mp4", frames=4, audio=False).path.rename(folder / "clip")
    line = one_line(cli("batch", folder, "-o", tmp_path / "out", "--model", rgb_model_dir, "--pattern", "clip"), 2)
    assert line.endswith("use an extension such as .mp4, .mkv or .mov (for batch: --ext mp4)")
