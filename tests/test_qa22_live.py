"""QA pass 22 on live mode: a stop signal while a session that showed frames is being finished."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.conftest import run_cli
from tests.media import decode_all, make_clip
from vidtrans.live.sinks import Recorder


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_recording_is_finished_keeps_it_and_the_stats(tmp_path, rgb_model_dir, monkeypatch, signum):
    """A session that ended by itself (--max-frames) is finishing its recording when a signal comes
    (the encoder's flush takes a while for a long session): the recording was deleted, no stats
    were written and live exited 128+N, throwing away frames shown, where a signal a moment earlier
    ends the session with both (exit 0)."""
    camera = make_clip(tmp_path / "cam.mp4", frames=8, size=(64, 48), fps=30, audio=False).path
    out = tmp_path / "out"
    out.mkdir()
    close = Recorder.close

    def signal_then_close(self, completed):
        os.kill(os.getpid(), signum)  # arrives as the recording is being finished
        close(self, completed)

    monkeypatch.setattr(Recorder, "close", signal_then_close)
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--no-window",
                     "--max-frames", "3", "--record", out / "rec.mp4", "--stats", out / "stats.json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert len(decode_all(out / "rec.mp4")[0]) == 3
    assert json.loads((out / "stats.json").read_text())["frames"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["rec.mp4", "stats.json"]  # no partial file, no lock


def test_a_stats_file_that_cannot_be_written_is_told_also_when_a_signal_came_meanwhile(tmp_path, rgb_model_dir,
                                                                                       monkeypatch):
    """The signal deferred while the session is finished must not hide why its stats are missing."""
    from vidtrans.errors import VidtransError
    from vidtrans.live import loop

    camera = make_clip(tmp_path / "cam.mp4", frames=8, size=(64, 48), fps=30, audio=False).path

    def signal_then_fail(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise VidtransError("stats: no space left on device")

    monkeypatch.setattr(loop, "write_atomically", signal_then_fail)
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--no-window",
                     "--max-frames", "2", "--stats", tmp_path / "stats.json")
    assert result.returncode != 0
    assert "no space left on device" in result.stderr and "Traceback" not in result.stderr
