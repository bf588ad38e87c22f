"""QA pass 24b, pipeline: `--pose none` refused for an RGB model as `--pose detect` is; live's
snapshot says where it went, or that it failed, and the session goes on; batch's folders and model
holding a NUL refused in one line; normalization's "no frame shows a whole body"."""

import logging
import os
import re

import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip
from tests.test_live import FakeModel
from tests.test_qa9_live import standing
from vidtrans.errors import UsageError, VidtransError


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", frames=4, size=(64, 48), audio=False).path


# --- 1. --pose none with an RGB model -----------------------------------------------------------


@pytest.mark.parametrize("pose", ["detect", "none"])
def test_a_pose_source_for_an_rgb_model_is_refused_whichever_it_is(cli, tmp_path, clip, rgb_model_dir, pose):
    """`--pose detect` and `--no-normalize` exited 2 for an RGB model; `--pose none`, as meaningless
    for it, translated the clip and exited 0."""
    out = tmp_path / "out.mp4"
    line = one_line(cli("run", clip, "-m", rgb_model_dir, "-o", out, "--device", "cpu", "--pose", pose), 2)
    assert f"--pose {pose} " in line and "translates rgb frames; drop --pose or use a pose model" in line, line
    assert not out.exists()


def test_pose_none_from_python_with_an_rgb_model_is_a_usage_error(tmp_path, clip, rgb_model_dir):
    from vidtrans import translate_video

    out = tmp_path / "out.mp4"
    with pytest.raises(UsageError, match=r"^pose='none' .* translates rgb frames; drop pose or use a pose model$"):
        translate_video(clip, out, rgb_model_dir, pose="none")
    assert not out.exists()


@pytest.mark.parametrize("flags", [("--pose", "none"), ("--pose", "detect"), ("--no-normalize",)])
def test_batch_refuses_pose_settings_for_an_rgb_model_once_before_any_clip(cli, tmp_path, clip, rgb_model_dir,
                                                                              flags):
    """batch failed every clip with the same usage error (exit 1), after making the output folder
    and its manifest."""
    out = tmp_path / "out"
    line = one_line(cli("batch", tmp_path, "-o", out, "-m", rgb_model_dir, "--devices", "cpu", *flags), 2)
    assert f"{flags[0]} " in line and "translates rgb frames; drop" in line, line
    assert not out.exists()


# --- 2. live's snapshot ---------------------------------------------------------------------------


class _Snapping:
    """A sink that presses `s` at the first new picture and keeps the HUD lines of every picture."""

    def __init__(self):
        self.huds: list[tuple[str, ...]] = []

    def show(self, shown):
        self.huds.append(shown.hud)
        return "snapshot" if len(self.huds) == 1 else None

    def close(self, completed):
        pass


def _live_with_a_snapshot(tmp_path, monkeypatch) -> tuple[_Snapping, object]:
    from vidtrans.live import loop, run_live

    sink = _Snapping()
    monkeypatch.setattr(loop, "open_sinks", lambda options, stack: [sink])
    monkeypatch.setattr(loop, "SNAPSHOT_TOLD_S", 1e9)  # told for as long as the test looks
    camera = make_clip(tmp_path / "cam.mp4", frames=4, size=(64, 48), fps=50, audio=False).path
    stats = run_live(FakeModel(), camera, window=False, max_frames=3)
    return sink, stats


def test_a_live_snapshot_tells_where_it_went(tmp_path, monkeypatch):
    """`s` wrote vidtrans-live-DATE-TIME.png into the current folder without a word."""
    shots = tmp_path / "shots"
    shots.mkdir()
    monkeypatch.chdir(shots)
    sink, stats = _live_with_a_snapshot(tmp_path, monkeypatch)
    [written] = os.listdir(shots)
    assert re.fullmatch(r"vidtrans-live-\d{8}-\d{6}-\d+\.png", written)
    assert stats.frames == 3
    assert not any(written in line for line in sink.huds[0])
    assert all(f"saved {written}" in hud for hud in sink.huds[1:]), sink.huds


def test_a_live_snapshot_that_cannot_be_written_is_one_warning_and_the_session_goes_on(tmp_path, monkeypatch,
                                                                                         caplog):
    """cv2.imwrite's False (a folder that cannot be written) was ignored: no file, no word."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # the current folder, removed: nothing can be written there, not even by root
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        sink, stats = _live_with_a_snapshot(tmp_path, monkeypatch)
    assert stats.frames == 3
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "\n" not in warning and re.match(r"snapshot not saved: vidtrans-live-\S+\.png: cannot ", warning), warning
    assert all("snapshot not saved" in " ".join(hud) for hud in sink.huds[1:]), sink.huds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4"]


# --- 3. batch's paths holding a NUL ---------------------------------------------------------------


@pytest.mark.parametrize("setting", ["input_dir", "output_dir", "model"])
def test_a_batch_path_holding_a_nul_is_a_usage_error_naming_it(tmp_path, clip, rgb_model_dir, setting):
    """input_dir and output_dir raised ValueError ("embedded null byte"), a traceback; the model
    failed in each worker as "name_or_path ...", a name the caller never used."""
    from vidtrans.batch import BatchUsageError, translate_folder

    paths = {"input_dir": tmp_path, "output_dir": tmp_path / "out", "model": rgb_model_dir}
    paths[setting] = f"{paths[setting]}\0x"
    with pytest.raises(BatchUsageError, match=rf"^{setting} .*x: a file path cannot hold a NUL character"):
        translate_folder(paths["input_dir"], paths["output_dir"], paths["model"], devices="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# --- 4. normalization's count of whole bodies -----------------------------------------------------


@pytest.mark.parametrize("whole, told", [(0, "no frame shows a whole body"), (1, "only 1 frame shows a whole body"),
                                         (3, "only 3 frames show a whole body")])
def test_too_few_whole_bodies_are_counted_in_words(whole, told):
    from vidtrans.pose.normalize import estimate_pose_stats

    track = np.concatenate([standing(whole), standing(8 - whole, ankles=False)])
    with pytest.raises(VidtransError, match=rf"^{told}, head to ankles, and pose normalization needs at least 5"):
        estimate_pose_stats(track, 48, 64)
