"""Defects found in the seventeenth QA pass (thirteenth session), each a user-visible behaviour."""
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from unittest import mock

import av
import cv2
import numpy as np
import pytest

import vidtrans
from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import dancer_clip, decode_all, make_clip, paired_folder
from tests.test_run import FakeModel
from tests.test_signals import HANG_S, start, wait_for
from vidtrans.atomic import OutputClaim, lock_path
from vidtrans.errors import UsageError, VidtransError
from vidtrans.live.loop import STALL_S, run_live
from vidtrans.pipeline import translate_video
from vidtrans.pose import PoseStats
from vidtrans.train.data import PairedFolder, VideoPairs
from vidtrans.video.camera import Camera

REPO = Path(__file__).resolve().parents[1]


def test_an_empty_held_out_folder_is_named_with_its_own_fix(tmp_path):
    data = paired_folder(tmp_path / "data", 3)
    (data / "val").mkdir()
    with pytest.raises(UsageError) as caught:
        PairedFolder(data)
    message = str(caught.value)
    assert str(data / "val") in message and "no images found" in message, message
    # Not the advice for a wrong training folder: the training pairs are fine.
    assert "put held-out pairs in it" in message and "or remove it" in message, message
    assert "pass a folder of side-by-side AB images" not in message, message


# --- an output is claimed when the command starts, not at its first encoded frame ------------------------------


@pytest.fixture
def held_elsewhere(tmp_path):
    """Holds the claim on a path from another process, as a second vidtrans run would: (hold(path))."""
    holders = []

    def hold(path):
        holder = subprocess.Popen([sys.executable, "-c", "import sys; from vidtrans.atomic import OutputClaim; "
                                   "claim = OutputClaim(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
                                   str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        holders.append(holder)
        assert holder.stdout.readline() == "held\n"

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


def test_a_run_onto_an_output_another_run_is_writing_is_refused_before_any_work(tmp_path, pose_model,
                                                                                 held_elsewhere):
    clip = dancer_clip(tmp_path / "dance.mp4", frames=6, size=(128, 128)).path
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"the other run's output, as it was")
    held_elsewhere(dst)
    told = []
    with pytest.raises(VidtransError, match="another vidtrans process is writing this file"):
        vidtrans.translate_video(clip, dst, pose_model, overwrite=True, progress=lambda *a: told.append(a))
    assert told == []  # refused before the detection pass, the first work a pose model's run does
    assert dst.read_bytes() == b"the other run's output, as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["dance.mp4", "out.mp4", lock_path(dst).name])


def test_a_shared_claim_is_shared_by_its_thread_and_refused_to_others(tmp_path):
    dst = tmp_path / "x.mp4"
    with pytest.raises(VidtransError, match="this process is already writing"):
        with OutputClaim(dst):
            OutputClaim(dst)  # two writers of one file in one thread
    outer = OutputClaim(dst, shared=True)
    inner = OutputClaim(dst)  # the writer a command makes after claiming its output

    def claim_elsewhere():
        try:
            OutputClaim(dst).release()
            return "claimed"
        except VidtransError as e:
            return str(e)

    with ThreadPoolExecutor(1) as pool:
        assert "this process is already writing" in pool.submit(claim_elsewhere).result()
        OutputClaim(dst).release()  # still shared with this thread after the other one was refused
        inner.release()
        assert lock_path(dst).exists()  # still the outer claim's
        assert "this process is already writing" in pool.submit(claim_elsewhere).result()
        outer.release()
        assert not lock_path(dst).exists()
        assert pool.submit(claim_elsewhere).result() == "claimed"


def test_live_outputs_another_process_holds_are_refused_before_the_model_loads(tmp_path, rgb_model_dir,
                                                                             held_elsewhere):
    """A recording another session is writing, a --serve port that is taken, --stats onto the model's
    card: each refused in the checks made before the model loads (they were found after it)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=15, size=(64, 48), fps=30, audio=False).path
    record = tmp_path / "r.mp4"
    held_elsewhere(record)
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    loads = []

    def load_model(*args, **kwargs):
        loads.append(args)
        raise AssertionError("the model was loaded")

    live = ["live", "--model", rgb_model_dir, "--camera", clip, "--no-window"]
    with mock.patch("vidtrans.load_model", load_model):
        assert "another vidtrans process is writing this file" in one_line(cli(*live, "--record", record), 1)
        message = one_line(cli(*live, "--serve", str(port)), 1)
        assert f"--serve 127.0.0.1:{port}: cannot listen there" in message, message
        message = one_line(cli(*live, "--stats", rgb_model_dir / "card.json", "--overwrite"), 2)
        assert "card.json" in message, message
    taken.close()
    assert loads == [] and not record.exists()


def test_a_live_recording_is_claimed_for_the_whole_session(tmp_path, rgb_model_dir):
    """From the session's start (before its first frame, when the writer is made) to its end, another
    process claiming the recording is refused."""
    clip = make_clip(tmp_path / "clip.mp4", frames=15, size=(64, 48), fps=30, audio=False).path
    record = tmp_path / "r.mp4"
    claim = [sys.executable, "-c", "import sys; from vidtrans.atomic import OutputClaim; OutputClaim(sys.argv[1])",
             str(record)]
    answers = []

    def claim_elsewhere(*_):
        answers.append(subprocess.run(claim, capture_output=True, text=True, cwd=REPO).stderr)

    run_live(vidtrans.load_model(rgb_model_dir, device="cpu"), clip, window=False, record=record, max_frames=3,
             on_start=claim_elsewhere, on_frame=lambda *a: None if len(answers) > 1 else claim_elsewhere())
    assert len(answers) == 2 and all("another vidtrans process is writing this file" in a for a in answers), answers
    assert record.is_file()


def test_a_second_ctrl_c_after_a_live_session_ended_does_not_turn_its_exit_into_an_interruption(tmp_path):
    """live ends normally on Ctrl-C (exit 0); a second Ctrl-C just after its summary landed in the
    interpreter's shutdown (seconds, with the pose detector's threads) and killed the completed session."""
    clip = make_clip(tmp_path / "clip.mp4", frames=30, size=(64, 48), fps=30, audio=False).path
    record = tmp_path / "r.mp4"
    process = start("live", "--device", "cpu", "--camera", clip, "--loop", "--no-window", "--record", record)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    wait_for(process, lambda: any("Ctrl-C to stop" in line for line in lines), "the session's start")
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + HANG_S
    while not any(" frames at " in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.005)
    # Before the fix the interpreter's shutdown took seconds after the summary, so the signal landed;
    # now the process may be gone already, which is the point.
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    assert process.wait(timeout=HANG_S) == 0, lines
    reader.join(timeout=HANG_S)
    assert "vidtrans: interrupted\n" not in lines and record.is_file(), lines


@pytest.mark.parametrize("camera", ["", "-1"])
def test_a_camera_that_cannot_be_one_is_a_usage_error(camera, rgb_model_dir):
    with mock.patch("vidtrans.load_model", side_effect=AssertionError("the model was loaded")):
        message = one_line(cli("live", "--model", rgb_model_dir, "--camera", camera, "--no-window"), 2)
    assert message == (f"vidtrans: error: camera {camera!r}: give --camera a device index (0 is the first camera), "
                       "a video file or a URL")


def test_a_failed_clip_is_named_once_in_its_line(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.mp4").write_bytes(b"no video here")
    result = cli("batch", src, "-o", tmp_path / "out", "-m", rgb_model_dir, "--devices", "cpu")
    assert result.returncode == 1, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("failed "))
    assert line.startswith(f"failed {src / 'broken.mp4'}: not a readable video file ("), line


def _handed_over(clip, monkeypatch, loop=False, frames=10):
    """The perf_counter times a file camera hands its first `frames` pictures over at."""
    times = []
    put = Camera._put

    def timed(camera, image):
        times.append(time.perf_counter())
        put(camera, image)

    monkeypatch.setattr(Camera, "_put", timed)
    deadline = time.monotonic() + 60
    with Camera(clip, loop=loop) as camera:
        while len(times) < frames and not camera.ended and time.monotonic() < deadline:
            camera.get(timeout=0.1)
    assert len(times) >= frames, times
    return np.diff(times[:frames])


def test_a_file_camera_plays_its_frames_at_their_own_times(tmp_path, monkeypatch):
    """A clip with a pause (a phone's variable frame rate) keeps the pause when it stands in for a
    camera: frames were handed over evenly at the average rate, the pause spread over all of them."""
    pts = [i * 40 for i in range(5)] + [1600 + i * 40 for i in range(5)]  # ms: a 1.44 s pause after frame 4
    clip = make_clip(tmp_path / "pause.mp4", frames=10, pts=pts, time_base=Fraction(1, 1000), audio=False).path
    steps = _handed_over(clip, monkeypatch)
    # Waits are lower bounds (a busy machine only delays): the pause is at least its length, and the
    # frames around it come sooner than the even 0.2 s the average rate would space them at.
    assert steps[4] >= 1.3 and np.median(np.delete(steps, 4)) < 0.15, steps


def test_a_file_cameras_long_pause_is_cut_short_and_a_loop_starts_at_once(tmp_path, monkeypatch):
    """A picture held for 8 s would read as a camera gone (live ends after 5 s without a frame); a
    video starting 1 s after its audio paused 1 s at every loop."""
    pts = [i * 40 for i in range(3)] + [8000 + i * 40 for i in range(3)]
    held = make_clip(tmp_path / "held.mp4", frames=6, pts=pts, time_base=Fraction(1, 1000), audio=False).path
    steps = _handed_over(held, monkeypatch, frames=6)
    assert 1.9 <= steps[2] < STALL_S - 1, steps
    late = make_clip(tmp_path / "late.mp4", frames=3, pts=[1000 + i * 40 for i in range(3)],
                     time_base=Fraction(1, 1000), audio_seconds=1.2).path
    steps = _handed_over(late, monkeypatch, loop=True, frames=6)
    assert steps[2] < 0.5, steps  # from the first pass's last frame to the second's first: one frame
def test_training_on_upper_body_footage_says_runs_will_fit_other_dancers_by_their_upper_body(tmp_path, caplog):
    whole = dancer_clip(tmp_path / "whole.mp4", look_name="target", frames=24, size=(128, 128), seed=3)
    upper = [cv2.resize(image[:64], (128, 64)) for image in whole.images]  # head and torso, no ankles
    clip = make_clip(tmp_path / "upper.mp4", frames=len(upper), size=(128, 64), audio=False,
                     frame_fn=lambda i, w, h: upper[i])
    with caplog.at_level(logging.WARNING):
        stats = PoseStats.from_dict(VideoPairs(clip.path, size=64).target_pose_stats())
    # Statistics of the upper body alone (version 4), which run fits other dancers to.
    assert not stats.whole_body and stats.upper_body is not None and stats.far is None
    assert any(f"{clip.path}: too few training frames show the whole body (head and ankles) to measure it, so run "
               "and eval will fit other dancers to this person by their upper body" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert VideoPairs(whole.path, size=64).target_pose_stats() is not None
    assert not any("too few training frames" in r.getMessage() for r in caplog.records)


def test_a_pipe_as_input_is_refused_at_once_not_waited_on(tmp_path, rgb_model_dir):
    """A FIFO gives its data once; vidtrans opens a clip more than once, and waited forever on the second."""
    fifo = tmp_path / "in.mp4"
    os.mkfifo(fifo)
    unblock = threading.Timer(30, _end_of_data, [fifo])  # a reader waiting on it (before the fix) fails then
    unblock.daemon = True
    unblock.start()
    result = cli("run", fifo, "-o", tmp_path / "out.mp4", "-m", rgb_model_dir)
    unblock.cancel()
    assert one_line(result, 1) == (f"vidtrans: error: {fifo}: is a FIFO, not a video file, and vidtrans reads its "
                                   "input more than once; save the video to a file and pass that")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def _end_of_data(fifo):
    """Opens and closes the writing end of `fifo` where a reader waits (nothing happens where none does)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def _video_streams(path, streams):
    """A file of `streams`: (width, height, frames, colour, cover) each, written in that order."""
    with av.open(str(path), "w") as out:
        made = []
        for width, height, _, _, cover in streams:
            stream = out.add_stream("mjpeg" if cover else "libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p" if cover else "yuv420p"
            if cover:
                stream.disposition = av.stream.Disposition.attached_pic
            made.append(stream)
        for stream, (width, height, frames, colour, _) in zip(made, streams):
            for i in range(frames):
                frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), colour, np.uint8), format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame.reformat(format=stream.pix_fmt)))
            out.mux(stream.encode(None))


@pytest.mark.parametrize("name, streams, warning", [
    ("cover.mp4", [(32, 32, 1, (200, 200, 200), True), (64, 48, 10, (0, 0, 255), False)],
     "its 1 cover picture is left out"),
    ("preview.mkv", [(32, 32, 1, (200, 200, 200), False), (64, 48, 10, (0, 0, 255), False)],
     "its 1 other video stream is left out; only the one with the largest pictures is read"),
])
def test_the_video_translated_is_the_clip_not_its_cover_or_preview(tmp_path, name, streams, warning):
    """A cover picture (or a small track) stored first was what run translated: one 32x32 frame."""
    src = tmp_path / name
    _video_streams(src, streams)
    result = cli("run", src, "-o", tmp_path / "out.mp4", "-m", "pose2person", "--pose", "none", "--side-by-side")
    assert result.returncode == 0, result.stderr
    assert f"vidtrans: warning: {src}: {warning}" in result.stderr, result.stderr
    images, _ = decode_all(tmp_path / "out.mp4")
    assert len(images) == 10
    left = images[0][:, : images[0].shape[1] // 2]  # the input panel: the blue clip, not the grey cover
    assert left[..., 2].mean() > 150 and left[..., 0].mean() < 80, left.mean(axis=(0, 1))


def test_a_fifo_given_as_the_model_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "generator"
    os.mkfifo(fifo)
    unblock = threading.Timer(30, _end_of_data, [fifo])  # a reader waiting on it (before the fix) fails then
    unblock.daemon = True
    unblock.start()
    with pytest.raises(VidtransError, match=f"^{fifo}: is a FIFO, not a file; pass a pix2pix latest_net_G.pth$"):
        vidtrans.load_model(fifo, device="cpu")
    unblock.cancel()


def test_run_refuses_its_output_and_input_before_the_model_loads(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=2, audio=False).path
    (tmp_path / "out.mp4").write_bytes(b"kept")
    with mock.patch("vidtrans.load_model", side_effect=AssertionError("the model was loaded")):
        assert "already exists" in one_line(cli("run", clip, "-o", tmp_path / "out.mp4", "-m", rgb_model_dir), 2)
        assert "file not found" in one_line(cli("run", tmp_path / "gone.mp4", "-o", tmp_path / "o.mp4", "-m",
                                                rgb_model_dir), 1)
    assert (tmp_path / "out.mp4").read_bytes() == b"kept"


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_an_mp4_audio_tracks_title_is_kept(tmp_path, suffix):
    """MP4's demuxer gives a track's title as "name", which no muxer writes: the title was lost."""
    src = make_clip(tmp_path / "in.mp4", frames=5).path
    titled = tmp_path / "titled.mp4"
    with av.open(str(src)) as inp, av.open(str(titled), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        streams[inp.streams.audio[0].index].metadata["title"] = "commentary"
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    out_path = tmp_path / f"out{suffix}"
    translate_video(titled, out_path, FakeModel(lambda frames: frames))
    with av.open(str(out_path)) as result:
        tags = dict(result.streams.audio[0].metadata)
    assert tags.get("title", tags.get("name")) == "commentary" and "NAME" not in tags, tags
