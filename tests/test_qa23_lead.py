"""Session 19 (lead): long values a caller passes by mistake are quoted briefly in the one-line
errors (cut with "...", as `options.shown` does everywhere else), never whole or cut silently."""

from __future__ import annotations

import pytest

import vidtrans
from tests.media import make_clip
from vidtrans.batch import translate_folder
from vidtrans.options import SHOWN_CHARACTERS


def _quoted_briefly(message: str, value: str) -> bool:
    return value not in message and "..." in message and len(message) < 300


@pytest.mark.parametrize("call", ["src", "dst", "overwrite", "progress", "input_dir", "model"])
def test_a_long_wrong_value_is_quoted_briefly(call, rgb_model_dir, tmp_path):
    long = 7 ** 400  # an int of 339 digits where a path (or a flag, or a function) belongs
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 32)).path
    calls = {
        "src": lambda: vidtrans.translate_video(long, tmp_path / "out.mp4", rgb_model_dir),
        "dst": lambda: vidtrans.translate_video(clip, long, rgb_model_dir),
        "overwrite": lambda: vidtrans.translate_video(clip, tmp_path / "out.mp4", rgb_model_dir, overwrite=long),
        "progress": lambda: vidtrans.translate_video(clip, tmp_path / "out.mp4", rgb_model_dir, progress=long),
        "input_dir": lambda: translate_folder(long, tmp_path / "out", rgb_model_dir),
        "model": lambda: translate_folder(tmp_path, tmp_path / "out", long),
    }
    with pytest.raises(vidtrans.VidtransError) as caught:
        calls[call]()
    message = str(caught.value)
    assert "\n" not in message
    assert _quoted_briefly(message, str(long)), message
    assert str(long)[:SHOWN_CHARACTERS - 3] in message  # its beginning is shown, so the caller knows it


def test_paths_given_to_live_and_batch_expand_a_leading_tilde_as_the_readme_says(tmp_path, rgb_model_dir,
                                                                                 monkeypatch):
    # As typed in quotes, or after `=`, the shell leaves ~ alone: `--stats "~/s.json"` was told that
    # folder ~ does not exist (live's --camera, --record, --stats; batch --report; train --init-from).
    import json

    from tests.conftest import run_cli

    monkeypatch.setenv("HOME", str(tmp_path))
    make_clip(tmp_path / "cam.mp4", frames=4, size=(64, 48), fps=30, audio=False)
    live = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", "~/cam.mp4", "--no-window",
                   "--record=~/rec.mp4", "--stats", "~/s.json")
    assert live.returncode == 0, live.stderr
    # A file camera plays in real time: a loaded machine drops frames, so every frame is either shown or dropped.
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] >= 1 and stats["frames"] + stats["dropped"] == 4 and (tmp_path / "rec.mp4").stat().st_size
    (tmp_path / "in").mkdir()
    make_clip(tmp_path / "in" / "a.mp4", frames=3, size=(32, 32), audio=False)
    batch = run_cli("batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", rgb_model_dir,
                    "--devices", "cpu", "--report", "~/report.json")
    assert batch.returncode == 0, batch.stderr
    assert json.loads((tmp_path / "report.json").read_text())["clips"][0]["status"] == "done"


def test_a_stats_folder_removed_during_a_live_session_fails_the_session_not_its_options(tmp_path, rgb_model_dir,
                                                                                        monkeypatch):
    # The options were right when live started; that the folder went away meanwhile is exit 1, not 2.
    import shutil

    from tests.conftest import run_cli
    from vidtrans.live.process import FrameProcessor

    make_clip(tmp_path / "cam.mp4", frames=4, size=(64, 48), fps=30, audio=False)
    (tmp_path / "out").mkdir()
    warm_up = FrameProcessor.warm_up

    def remove_then_warm_up(self):
        shutil.rmtree(tmp_path / "out")
        warm_up(self)

    monkeypatch.setattr(FrameProcessor, "warm_up", remove_then_warm_up)
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", tmp_path / "cam.mp4",
                     "--no-window", "--stats", tmp_path / "out" / "s.json")
    assert result.returncode == 1 and result.exception is None, result.stderr
    started, line = result.stderr.strip().splitlines()  # the session's first line, then its error
    assert line.startswith("vidtrans: error: ") and "out does not exist" in line


def test_live_stats_say_what_precision_and_backend_ran(tmp_path, rgb_model_dir):
    # `--precision auto` now means bf16 on more CPUs: the stats of a session say which it was.
    import json

    from tests.conftest import run_cli

    make_clip(tmp_path / "cam.mp4", frames=3, size=(64, 48), fps=30, audio=False)
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--precision", "bf16", "--camera",
                     tmp_path / "cam.mp4", "--no-window", "--stats", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert (stats["precision"], stats["backend"], stats["frames"]) == ("bf16", "torch", 3)


def test_eval_scores_say_what_precision_ran(tmp_path, rgb_model_dir):
    # Scores move a little between fp32 and bf16 ("auto" on CPUs with AVX-512 BF16 or AMX).
    import json

    from tests.conftest import run_cli
    from tests.media import paired_folder

    data = paired_folder(tmp_path / "pairs", 3)
    result = run_cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu", "--precision", "bf16",
                     "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert (scores["device"], scores["precision"], scores["backend"], scores["frames"]) == ("cpu", "bf16", "torch", 3)


@pytest.mark.parametrize("compile, compiled_before", [("on", False), ("off", True), ("off", False)])
def test_a_compiled_model_gets_no_tail_cut_into_small_batches(tmp_path, compile, compiled_before):
    # A compiled model pads each batch to its first one's size: two small tail batches would cost two
    # whole ones (and a first small batch would make every full one compile again). Compiled now, or
    # by an earlier clip (batch shares one translator across clips; so may a Python caller).
    from tests.test_run import FakeModel

    clip = make_clip(tmp_path / "in.mp4", frames=20, size=(64, 48), audio=False)
    sizes = []
    model = FakeModel(lambda frames: sizes.append(len(frames)) or 255 - frames)
    model.compiled = compiled_before
    model.compile = lambda: setattr(model, "compiled", True)
    assert vidtrans.translate_video(clip.path, tmp_path / "out.mp4", model, batch_size=8, compile=compile).frames == 20
    assert sorted(sizes) == ([4, 8, 8] if compile == "on" or compiled_before else [2, 2, 8, 8])


def test_a_stop_noted_inside_an_import_stops_export_before_it_writes(tmp_path, rgb_model_dir, monkeypatch):
    # Ctrl-C inside an import (torch's, onnx's) is only noted, not raised (cli._stop): export went on
    # and replaced the file given with --overwrite, exit 0, as if never stopped.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import vidtrans.cli
    import vidtrans.models.checkpoint as checkpoint_module
    from tests.conftest import run_cli

    loaded = checkpoint_module.load_checkpoint

    def load_then_noted(*args, **kwargs):  # a signal arriving inside an import on the way
        checkpoint = loaded(*args, **kwargs)
        vidtrans.cli._stopped_by.append(2)
        vidtrans.cli._stop_asked.set()
        return checkpoint

    monkeypatch.setattr(checkpoint_module, "load_checkpoint", load_then_noted)
    existing = tmp_path / "out.onnx"
    existing.write_bytes(b"the user's file")
    try:
        result = run_cli("export", rgb_model_dir, "-o", existing, "--overwrite")
    finally:
        vidtrans.cli._stop_asked.clear()
    assert result.returncode == 130, result.stderr
    assert existing.read_bytes() == b"the user's file" and sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]
