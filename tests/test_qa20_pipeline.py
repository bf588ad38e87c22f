"""QA pass 20 on `run`'s pipeline: a temporal model, output smoothing and a clip in parts."""

import threading
import time

import numpy as np
import pytest

from tests.media import decode_all, make_clip
from tests.test_qa13_api import temporal_model  # noqa: F401 (a fixture: the same tiny temporal model)
from vidtrans.models.translator import RecurrentState
from vidtrans.pipeline import translate_video

# RGB stored as RGB, losslessly: equal translated frames decode to equal pictures.
LOSSLESS = dict(codec="libx264rgb", pix_fmt="rgb24", crf=0, preset="ultrafast")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=10, size=(64, 48), audio=False).path


def frames_of(path) -> np.ndarray:
    return np.stack(decode_all(path)[0]).astype(int)


@pytest.mark.parametrize("smoothing", ["ema", "flow"])
def test_a_clip_in_parts_with_its_state_is_the_whole_clip_with_smoothing_too(tmp_path, temporal_model, clip,
                                                                            smoothing):
    whole = tmp_path / "whole.mkv"
    translate_video(clip, whole, temporal_model, smoothing=smoothing, batch_size=3, **LOSSLESS)
    state = RecurrentState()
    parts = [tmp_path / "a.mkv", tmp_path / "b.mkv"]
    translate_video(clip, parts[0], temporal_model, end=0.2, state=state, smoothing=smoothing, batch_size=4,
                    **LOSSLESS)
    translate_video(clip, parts[1], temporal_model, start=0.2, state=state, smoothing=smoothing, batch_size=2,
                    **LOSSLESS)
    joined = np.concatenate([frames_of(part) for part in parts])
    assert joined.shape == frames_of(whole).shape
    assert np.abs(joined - frames_of(whole)).max() == 0


def test_a_stop_does_not_wait_for_a_temporal_models_forward_pass(tmp_path, temporal_model, clip, monkeypatch):
    """A forward pass cannot be cut short (tens of seconds at a large model size); a stop must not
    wait for it, for a temporal model as for the others (README: Ctrl-C)."""
    slow = threading.Event()
    translate_clip = temporal_model.translate_clip

    def slow_translate_clip(frames, state):
        if slow.is_set():
            time.sleep(2.5)
        return translate_clip(frames, state)

    monkeypatch.setattr(temporal_model, "translate_clip", slow_translate_clip)
    stopped = []

    def progress(done, total, what):
        if done >= 2:
            slow.set()
            time.sleep(0.2)  # the next batch's forward pass has begun
            stopped.append(time.perf_counter())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        translate_video(clip, tmp_path / "out.mp4", temporal_model, batch_size=2, smoothing="none",
                        progress=progress)
    assert time.perf_counter() - stopped[0] < 1.0
    assert list(tmp_path.iterdir()) == []
