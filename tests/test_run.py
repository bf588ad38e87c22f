"""`vidtrans run` and `translate_video`: frames, timestamps, audio, odd inputs, bad inputs, smoothing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import vidtrans
from tests.media import audio_durations, corrupt_middle, decode_all, make_clip, moving_square
from vidtrans.errors import VidtransError
from vidtrans.pipeline import smoothing_stages, translate_video
from vidtrans.runner import Batch, run_stages
from vidtrans.temporal import Smoother



@pytest.fixture(scope="module")
def model(rgb_model_dir):
    return vidtrans.load_model(rgb_model_dir, device="cpu")


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-10))


class FakeModel:
    """Stands in for a Translator where the test needs to know exactly what the model does."""

    name, device, precision, input_kind = "fake", torch.device("cpu"), "fp32", "rgb"

    def __init__(self, fn):
        self.fn = fn

    def translate(self, frames):
        return np.ascontiguousarray(self.fn(frames))


def test_frames_timestamps_audio_and_pixels(tmp_path):
    """Each output frame is the model's translation of the input frame with the same timestamp."""
    clip = make_clip(tmp_path / "in.mp4", frames=24, size=(96, 64), audio=True)
    out = tmp_path / "out.mp4"
    model = FakeModel(lambda frames: 255 - frames[:, :, ::-1])  # inverted and mirrored: smooth, but unlike the input
    summary = translate_video(clip.path, out, model, batch_size=5)
    assert summary.frames == 24
    in_images, in_times = decode_all(clip.path)
    out_images, out_times = decode_all(out)
    assert len(out_images) == len(in_images) == 24
    assert out_times == pytest.approx(in_times, abs=1e-6)
    assert audio_durations(out) == pytest.approx(audio_durations(clip.path), abs=0.1)
    expected = model.translate(np.stack(in_images))
    assert min(psnr(o, e) for o, e in zip(out_images, expected)) >= 30
    assert max(psnr(o, e) for o, e in zip(out_images[1:], expected)) < 30  # one frame off would show


def test_the_clips_last_frames_are_shared_by_both_translation_workers(tmp_path):
    """A 20-frame clip at batch 8: 8 and 8 at once, then 2 and 2 at once, not 8, 8 and a batch of 4
    that runs alone while the other worker waits; every frame still written once, in order."""
    clip = make_clip(tmp_path / "in.mp4", frames=20, size=(64, 48), audio=False)
    sizes = []
    model = FakeModel(lambda frames: sizes.append(len(frames)) or 255 - frames)
    assert translate_video(clip.path, tmp_path / "out.mp4", model, batch_size=8).frames == 20
    assert sorted(sizes) == [2, 2, 8, 8]
    in_images, in_times = decode_all(clip.path)
    out_images, out_times = decode_all(tmp_path / "out.mp4")
    assert out_times == pytest.approx(in_times, abs=1e-6)
    assert min(psnr(o, 255 - i) for o, i in zip(out_images, in_images)) >= 30


def test_real_model_output_matches_translate(tmp_path, model):
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(64, 48), audio=False)
    out = tmp_path / "out.mp4"
    translate_video(clip.path, out, model, batch_size=4, pix_fmt="yuv444p", crf=0)
    in_images, _ = decode_all(clip.path)
    out_images, _ = decode_all(out)
    expected = model.translate(np.stack(in_images))
    assert min(psnr(o, e) for o, e in zip(out_images, expected)) >= 30


def test_variable_frame_rate_survives(tmp_path, model):
    clip = make_clip(tmp_path / "vfr.mp4", frames=15, size=(64, 48), vfr=True, audio=False)
    out = tmp_path / "out.mp4"
    translate_video(clip.path, out, model)
    _, in_times = decode_all(clip.path)
    _, out_times = decode_all(out)
    assert len(set(np.round(np.diff(in_times), 3))) > 2  # really irregular
    assert out_times == pytest.approx(in_times, abs=1e-6)


@pytest.mark.parametrize("kind", ["odd", "rotated", "10bit", "fullrange", "two_audio", "mkv_no_audio"])
def test_awkward_inputs_work(tmp_path, model, kind):
    options = {
        "odd": dict(size=(81, 61), pix_fmt="yuv444p"),
        "rotated": dict(size=(64, 48), rotation=90),
        "10bit": dict(pix_fmt="yuv420p10le"),
        "fullrange": dict(pix_fmt="yuvj420p"),
        "two_audio": dict(audio_streams=2),
        "mkv_no_audio": dict(audio=False),
    }[kind]
    suffix = ".mkv" if kind == "mkv_no_audio" else ".mp4"
    clip = make_clip(tmp_path / f"in{suffix}", frames=10, **options)
    out = tmp_path / f"out{suffix}"
    summary = translate_video(clip.path, out, model)
    images, times = decode_all(out)
    assert summary.frames == len(images) == 10
    if kind == "rotated":
        assert images[0].shape[:2] == (64, 48)  # upright portrait: height > width
    if kind == "odd":
        assert images[0].shape[:2] in ((61, 81), (62, 82))  # 4:2:0 needs even sizes: padded by one pixel
    durations = audio_durations(out)
    assert len(durations) == {"two_audio": 2, "mkv_no_audio": 0}.get(kind, 1)


def test_trim_start_end(tmp_path, model):
    clip = make_clip(tmp_path / "in.mp4", frames=50, fps=25, audio=True)
    out = tmp_path / "cut.mp4"
    summary = translate_video(clip.path, out, model, start=0.4, end=1.2)
    _, times = decode_all(out)
    assert summary.frames == len(times) == 20
    assert times[0] == pytest.approx(0.0, abs=1e-6)
    assert audio_durations(out)[0] == pytest.approx(0.8, abs=0.1)


def test_side_by_side_and_json_summary(tmp_path, rgb_model_dir, cli):
    """Through the entry point in this process: real `python -m vidtrans run` processes are in
    test_signals.py, and the installed `vidtrans run --json` in test_install.py."""
    clip = make_clip(tmp_path / "in.mp4", frames=8, size=(64, 48))
    out = tmp_path / "sbs.mp4"
    result = cli("run", clip.path, "-o", out, "--model", rgb_model_dir, "--device", "cpu", "--side-by-side", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == 8 and summary["output"] == str(out) and summary["fps"] > 0
    images, _ = decode_all(out)
    assert images[0].shape[:2] == (48, 128)  # input | output
    assert "8 frames" in result.stderr


def test_default_output_name_and_no_silent_overwrite(tmp_path, rgb_model_dir, cli):
    clip = make_clip(tmp_path / "dance.mp4", frames=5)
    first = cli("run", clip.path, "--model", rgb_model_dir, "--device", "cpu")
    assert first.returncode == 0, first.stderr
    expected = tmp_path / "dance.tiny.mp4"
    assert expected.is_file()
    mtime = expected.stat().st_mtime_ns
    second = cli("run", clip.path, "--model", rgb_model_dir, "--device", "cpu")
    assert second.returncode != 0 and "--overwrite" in second.stderr
    assert expected.stat().st_mtime_ns == mtime
    third = cli("run", clip.path, "--model", rgb_model_dir, "--device", "cpu", "--overwrite")
    assert third.returncode == 0, third.stderr


def _bad_inputs(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    real = make_clip(tmp_path / "real.mp4", frames=10)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(real.path.read_bytes()[:2048])
    audio_only = make_clip(tmp_path / "audio.m4a", video=False, audio=True).path
    return {"missing": tmp_path / "missing.mp4", "text": text, "truncated": truncated, "audio only": audio_only}


def test_bad_inputs_fail_cleanly(tmp_path, rgb_model_dir, cli):
    for what, path in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{path.stem}.mp4"
        result = cli("run", path, "-o", out, "--model", rgb_model_dir, "--device", "cpu")
        assert result.returncode == 1, what
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vidtrans: error:") and str(path.name) in lines[0], (what, lines)
        assert "Traceback" not in result.stderr
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))) == []


def test_output_equal_to_input_and_unwritable_folder(tmp_path, model):
    clip = make_clip(tmp_path / "in.mp4", frames=5)
    before = clip.path.read_bytes()
    with pytest.raises(VidtransError, match="overwrite the input"):
        translate_video(clip.path, clip.path, model, overwrite=True)
    assert clip.path.read_bytes() == before
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(VidtransError, match="writable"):
            translate_video(clip.path, locked / "out.mp4", model)
    finally:
        locked.chmod(0o700)


def test_unwritable_output_folder_as_root(tmp_path, model):
    """Root ignores permissions; a path under a regular file is unwritable for everyone."""
    clip = make_clip(tmp_path / "in.mp4", frames=5)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(VidtransError) as info:
        translate_video(clip.path, blocker / "out.mp4", model)
    assert "\n" not in str(info.value)


def test_corrupt_middle_keeps_frame_count(tmp_path, model):
    clip = make_clip(tmp_path / "in.mp4", frames=60, size=(64, 48), audio=False)
    corrupt_middle(clip.path)
    out = tmp_path / "out.mp4"
    summary = translate_video(clip.path, out, model)
    images, times = decode_all(out)
    assert summary.frames == len(images) == 60
    assert summary.corrupt_frames > 0


def test_failure_mid_run_leaves_nothing(tmp_path, model, monkeypatch):
    clip = make_clip(tmp_path / "in.mp4", frames=30)
    calls = {"n": 0}
    original = model.translate

    def failing(frames):
        calls["n"] += 1
        if calls["n"] == 2:
            raise VidtransError("simulated failure")
        return original(frames)

    monkeypatch.setattr(model, "translate", failing)
    with pytest.raises(VidtransError, match="simulated"):
        translate_video(clip.path, tmp_path / "out.mp4", model, batch_size=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.parametrize("method", ["ema", "flow"])
def test_smoothing_reduces_flicker(tmp_path, method):
    """A model that flickers (noise on every frame) is steadied, and the figure says by how much."""

    rng = np.random.default_rng(0)

    def flickery(frames):
        return np.clip(frames.astype(int) + rng.integers(-30, 31, frames.shape), 0, 255).astype(np.uint8)

    clip = make_clip(tmp_path / "in.mp4", frames=20, size=(96, 64), audio=False)
    plain = translate_video(clip.path, tmp_path / "plain.mp4", FakeModel(flickery), smoothing="none")
    smooth = translate_video(clip.path, tmp_path / "smooth.mp4", FakeModel(flickery), smoothing=method,
                             smoothing_strength=0.6)
    assert smooth.flicker_ratio < 0.7 * plain.flicker_ratio
    assert plain.flicker_ratio > 1.5  # the noise really flickers, relative to the input


@pytest.mark.parametrize("size", [(96, 64), (400, 240)])  # the second is flowed at 320 x 192
def test_flow_smoothing_ahead_equals_in_order(size):
    """`run` computes flow ahead on a pool and blends in order; its frames are exactly those of one
    Smoother call per frame in order (the path `live` takes), across batch boundaries."""
    width, height = size
    rng = np.random.default_rng(1)
    frames = [moving_square(i, width, height) for i in range(23)]
    outputs = [np.clip(f.astype(int) + rng.integers(-30, 31, f.shape), 0, 255).astype(np.uint8) for f in frames]
    in_order = Smoother("flow", 0.6)
    expected = [in_order(output.copy(), frame) for output, frame in zip(outputs, frames)]

    def batches():
        for start in range(0, len(frames), 5):
            span = list(range(start, min(start + 5, len(frames))))
            yield Batch([frames[i] for i in span], span, span, output=np.stack([outputs[i] for i in span]))

    # The pool's threads are shared by every run of the process: let them see other sizes first,
    # as they would after other clips, which must not change this clip's frames.
    for other in ((64, 48), (160, 90)):
        warm_up = Smoother("flow", 0.6)
        for i in range(12):
            warm_up(moving_square(i, *other), moving_square(i, *other))
        list(run_stages(iter([Batch([moving_square(i, *other) for i in range(5)], list(range(5)), list(range(5)),
                                    output=np.stack([moving_square(i, *other) for i in range(5)]))] * 3),
                        smoothing_stages(Smoother("flow", 0.6))))
    stages = smoothing_stages(Smoother("flow", 0.6))
    assert len(stages) == 2  # flow ahead, then the in-order blend
    done = list(run_stages(batches(), stages))
    assert all(batch.motion is not None for batch in done)
    smoothed = [frame for batch in done for frame in batch.output]
    assert len(smoothed) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(smoothed, expected))
    assert not all(np.array_equal(a, b) for a, b in zip(smoothed, outputs))  # it did smooth


def test_memory_stays_flat_for_long_clips(tmp_path, rgb_model_dir):
    """Peak RSS grows by less than 37 kB a frame from a 100-frame run to a 600-frame one (bounded
    queues): the bound that 100 MB over 2700 frames gave, at a sixth of the frames. Without a leak
    the growth is 3-5 MB however long the second run (measured over 600 and 2700 more frames).

    torch.compile is off in both: on long CPU runs `compile="auto"` turns it on, and inductor's
    one-off ~130 MB would hide what this test is about, frames piling up. The translator's own
    memory does not depend on the clip's length (same batch shape every time).

    Both runs share one process (one start, one import): the peak after the short run is the
    baseline, and anything that grows with the clip shows as growth over it in the long run.
    The model works at the clip's own size (size=32, not its native 64): its arithmetic is not what
    is measured, and at 64 it would take most of the test's time."""
    script = (
        "import resource, sys, vidtrans\n"
        "from vidtrans.pipeline import translate_video\n"
        f"model = vidtrans.load_model({str(rgb_model_dir)!r}, device='cpu', size=32)\n"
        "for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    translate_video(src, dst, model, batch_size=8, compile='off')\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    counts, paths = (100, 600), []
    for frames in counts:
        clip = make_clip(tmp_path / f"in{frames}.mp4", frames=frames, size=(32, 24), fps=50, audio=True,
                         frame_fn=lambda i, w, h: np.full((h, w, 3), i % 256, np.uint8))
        paths += [str(clip.path), str(tmp_path / f"out{frames}.mp4")]
    result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    peaks = {frames: int(line) for frames, line in zip(counts, result.stdout.split())}  # kB
    for frames in counts:
        assert len(decode_all(tmp_path / f"out{frames}.mp4")[0]) == frames
    assert peaks[600] - peaks[100] < 37 * (600 - 100), peaks


@pytest.mark.parametrize("settings", [dict(codec="aac"), dict(codec="no-such-codec"), dict(crf=999),
                                      dict(pix_fmt="yuv9000p"), dict(preset="warp")])
def test_bad_encoder_settings_fail_before_any_work(tmp_path, model, settings):
    clip = make_clip(tmp_path / "in.mp4", frames=4, size=(64, 48))
    calls = []
    with pytest.raises(VidtransError) as refused:
        translate_video(clip.path, tmp_path / "out.mp4", model, progress=lambda *a: calls.append(a), **settings)
    assert "\n" not in str(refused.value) and next(iter(settings)) in str(refused.value)
    assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_bad_encoder_settings_are_refused_before_pose_detection(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=4, size=(64, 48))
    calls = []
    with pytest.raises(VidtransError, match="codec 'aac'"):
        translate_video(clip.path, tmp_path / "out.mp4", vidtrans.load_model("pose2person", device="cpu"),
                        pose="detect", codec="aac", progress=lambda *a: calls.append(a))
    assert calls == []  # not a single frame was decoded for detection


class _FineDetailModel:
    """The tiny model, except that what it "translates" is fine coloured detail (1-px stripes,
    checkerboard, noise): the output a 4:2:0 conversion that samples instead of averaging ruins."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def translate(self, frames):
        from tests.test_video_robust import fine_detail

        return np.stack([fine_detail(int(f[0, 0, 0]), f.shape[1], f.shape[0]) for f in frames])


def test_run_keeps_the_colours_of_fine_detail(tmp_path, model):
    from tests.test_video_robust import STRIPES, ffmpeg_encoded
    from tests.test_video_robust import psnr as psnr_all

    fine = _FineDetailModel(model)
    clip = make_clip(tmp_path / "in.mp4", frames=4, size=(96, 72), audio=False)
    translate_video(clip.path, tmp_path / "out.mp4", fine, smoothing="none")
    decoded, _ = decode_all(clip.path)
    expected = list(fine.translate(np.stack(decoded)))
    ours, _ = decode_all(tmp_path / "out.mp4")
    reference = ffmpeg_encoded(tmp_path / "ffmpeg.mp4", expected, "yuv420p")
    assert psnr_all(ours, expected) >= psnr_all(reference, expected) - 1.0
    stripes = np.mean([o[:24].reshape(-1, 3).mean(0) for o in ours], axis=0)
    assert np.abs(stripes - np.mean(STRIPES, axis=0)).max() <= 3  # purple, not red
