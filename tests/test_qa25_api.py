"""QA round 25 on the Python API: progress ends at the frames written, with a total no smaller than
what is done, however far the container's estimate of the span's length was off (a start between
two frames, an end on a frame's time in a Matroska file); load_model given a misspelt parameter, or a
run's setting, answers in one line of the project's error type, naming what was meant and where it
goes; one model shared by two threads translating two clips at once makes the frames it makes one
clip after the other, also when one of the clips is stopped midway; a single frame has no flicker
figures; `import vidtrans` reaches vidtrans.batch and vidtrans.options as the README writes them; a
live port given as a number is taken."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import vidtrans
from tests.media import decode_all, make_clip
from vidtrans.errors import UsageError

# RGB stored as RGB, losslessly: equal translated frames decode to equal pictures.
LOSSLESS = dict(codec="libx264rgb", pix_fmt="rgb24", crf=0, preset="ultrafast")


@pytest.fixture(scope="module")
def model(rgb_model_dir):
    return vidtrans.load_model(rgb_model_dir, device="cpu")


def _checked_progress(calls: list[tuple[int, int, str]], frames: int, what: str) -> None:
    """`calls` tell a pass's frames as a progress bar needs them: done never goes back nor past the
    total, and the last call says the pass is complete at the frames it wrote."""
    done = [call[0] for call in calls]
    assert done == sorted(done), calls
    assert all(total == 0 or total >= count for count, total, _ in calls), calls
    assert calls[-1] == (frames, frames, what), calls


@pytest.mark.parametrize("name, span, frames", [
    ("start.mp4", dict(start=0.01), 19),  # 0.79 s of 25 fps: estimated 20 frames, 19 there
    ("end.mkv", dict(end=0.5), 13),  # frames at 0.00 to 0.48 s: estimated 12 (12.5 rounded to even)
])
def test_progress_ends_at_the_frames_written_when_the_estimate_was_off(tmp_path, model, name, span, frames):
    # The last call said 19 of 20 (a bar stopping short of its end), or 13 of 12 (past it).
    clip = make_clip(tmp_path / name, frames=20, audio=False).path
    calls: list[tuple[int, int, str]] = []
    summary = vidtrans.translate_video(clip, tmp_path / "out.mp4", model, progress=lambda *call: calls.append(call),
                                       **span)
    assert summary.frames == len(decode_all(tmp_path / "out.mp4")[0]) == frames
    _checked_progress(calls, frames, "translating")


def test_pose_video_progress_ends_at_the_frames_written(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=12, audio=False).path
    calls: list[tuple[int, int, str]] = []
    summary = vidtrans.render_pose_video(clip, tmp_path / "pose.mp4", start=0.01,
                                         progress=lambda *call: calls.append(call))
    assert summary.frames == len(decode_all(tmp_path / "pose.mp4")[0]) == 11
    _checked_progress(calls, 11, "detecting poses")


@pytest.mark.parametrize("given, message", [
    (dict(devcie="cpu"), r"^load_model has no parameter devcie; did you mean device\?$"),
    (dict(precison="fp32"), r"^load_model has no parameter precison; did you mean precision\?$"),
    (dict(smoothing="flow"), r"^smoothing is a setting of each run, not of the model: pass it to "
                             r"vidtrans\.translate_video\(src, dst, model, smoothing='flow'\)$"),
    (dict(crf=20), r"^crf is a setting of each run, not of the model: pass it to "
                   r"vidtrans\.translate_video\(src, dst, model, crf=20\)$"),
    (dict(colour=1, flavour=2), r"^load_model has no parameter colour, flavour; it takes name_or_path, device, "
                                r"precision, normalization, size, backend$"),
])
def test_load_model_refuses_what_it_does_not_take_in_one_line(rgb_model_dir, given, message):
    # Python's TypeError ("got an unexpected keyword argument"), which pointed nowhere.
    with pytest.raises(UsageError, match=message):
        vidtrans.load_model(rgb_model_dir, **given)


def _translate_at_once(model, jobs: list[tuple]) -> list[BaseException | None]:
    """translate_video(*job) for every job at once, one thread each; what each raised, or None."""
    raised: list[BaseException | None] = [None] * len(jobs)

    def translate(k: int) -> None:
        src, dst, changes = jobs[k]
        try:
            vidtrans.translate_video(src, dst, model, **changes)
        except BaseException as e:  # noqa: BLE001 - told to the test's thread
            raised[k] = e

    threads = [threading.Thread(target=translate, args=(k,)) for k in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


@pytest.mark.parametrize("smoothing", ["none", "flow"])
def test_one_model_translating_two_clips_at_once_makes_the_frames_it_makes_one_after_the_other(tmp_path, model,
                                                                                              smoothing):
    clips = [make_clip(tmp_path / "a.mp4", frames=19, size=(64, 48), audio=False).path,
             make_clip(tmp_path / "b.mp4", frames=13, size=(33, 17), pix_fmt="yuv444p", audio=False).path]
    settings = dict(smoothing=smoothing, batch_size=4, **LOSSLESS)
    for clip in clips:
        vidtrans.translate_video(clip, tmp_path / f"{clip.stem}.alone.mkv", model, **settings)
    assert _translate_at_once(model, [(clip, tmp_path / f"{clip.stem}.together.mkv", settings)
                                      for clip in clips]) == [None, None]
    for clip in clips:
        alone, together = decode_all(tmp_path / f"{clip.stem}.alone.mkv")[0], \
            decode_all(tmp_path / f"{clip.stem}.together.mkv")[0]
        assert len(alone) == len(together) == (19 if clip.stem == "a" else 13)
        assert all(np.array_equal(x, y) for x, y in zip(alone, together))


def test_a_clip_stopped_beside_another_leaves_the_other_and_the_model_as_they_were(tmp_path, model):
    clip = make_clip(tmp_path / "clip.mp4", frames=17, size=(64, 48), audio=False).path
    vidtrans.translate_video(clip, tmp_path / "alone.mkv", model, batch_size=2, **LOSSLESS)

    def stop(done, total, what):
        if done >= 4:
            raise KeyboardInterrupt

    raised = _translate_at_once(model, [(clip, tmp_path / "stopped.mkv", dict(progress=stop, batch_size=2)),
                                        (clip, tmp_path / "beside.mkv", dict(batch_size=2, **LOSSLESS))])
    assert isinstance(raised[0], KeyboardInterrupt) and raised[1] is None
    assert not (tmp_path / "stopped.mkv").exists()
    vidtrans.translate_video(clip, tmp_path / "after.mkv", model, batch_size=2, **LOSSLESS)
    alone = decode_all(tmp_path / "alone.mkv")[0]
    for name in ("beside.mkv", "after.mkv"):
        frames = decode_all(tmp_path / name)[0]
        assert len(frames) == len(alone) == 17
        assert all(np.array_equal(x, y) for x, y in zip(alone, frames))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["after.mkv", "alone.mkv", "beside.mkv", "clip.mp4"]


def test_a_single_frame_has_no_flicker_figures(tmp_path, model):
    # Flicker compares consecutive frames; one frame was told as 0.0 flicker in and out, a perfectly still output.
    clip = make_clip(tmp_path / "clip.mp4", frames=5, audio=False).path
    summary = vidtrans.translate_video(clip, tmp_path / "out.mp4", model, end=0.01, smoothing="ema")
    assert summary.frames == 1
    assert (summary.flicker_input, summary.flicker_output, summary.flicker_ratio) == (None, None, None)
    data = summary.to_dict()
    assert (data["flicker_input"], data["flicker_output"], data["flicker_ratio"]) == (None, None, None)


def test_the_modules_the_readme_names_are_reached_from_import_vidtrans():
    # `import vidtrans` then vidtrans.batch.translate_folder, as the README's Python API writes it, was an
    # AttributeError: no submodule was imported until something else imported it.
    script = ("import sys, vidtrans\n"
              "print(vidtrans.batch.translate_folder.__name__, vidtrans.options.RunOptions.__name__)\n"
              "print('vidtrans.cli' in sys.modules, hasattr(vidtrans, 'no_such_module'), "
              "hasattr(vidtrans, '__main__'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["translate_folder RunOptions", "False False False"]


def test_a_live_port_given_as_a_number_is_taken():
    # LiveOptions(serve=8000) was refused with "serve 8000: give PORT or HOST:PORT, e.g. 8000".
    from vidtrans.options import LiveOptions

    assert LiveOptions(serve=8000).serve_address == ("127.0.0.1", 8000)
    assert LiveOptions(serve=np.int64(0)).serve_address == ("127.0.0.1", 0)
    for refused in (True, 8000.0, 70000, -1):
        with pytest.raises(UsageError, match=rf"^serve {refused!r}: give PORT or HOST:PORT, e.g. 8000$"):
            LiveOptions(serve=refused)
