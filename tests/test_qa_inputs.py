"""Inputs from the QA run of 2026-12-01: keypoint files (alignment with --start, frame counts, frame
size, the numbers in them), eval's seed and frame count, and live's file cameras (rotation, a
one-frame loop, failures in the capture thread, FFmpeg's own log lines)."""

import json
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import run_cli
from tests.media import dancer_clip, make_clip
from vidtrans.errors import VidtransError
from vidtrans.evaluate import Material, max_frames, score
from vidtrans.live import loop as live_loop
from vidtrans.live import run_live
from vidtrans.pipeline import translate_video
from vidtrans.pose import read_keypoints, write_keypoints_npz
from vidtrans.pose.smoothing import smooth_track
from vidtrans.pose.track import keypoints_for
from vidtrans.video import VideoReader

FPS = 10  # frames of the clips are 0.1 s apart: --start 1.0 is frame 10


@pytest.fixture(scope="module")
def dancer(tmp_path_factory):
    # Large enough for the detector to find the dancer in every frame.
    return dancer_clip(tmp_path_factory.mktemp("clips") / "dancer.mp4", frames=20, size=(160, 120), fps=FPS)


def one_line_error(call, *args, **kwargs) -> str:
    """The message of the VidtransError `call` raises; no warning may come with it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(VidtransError) as info:
            call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- keypoint files: which frames

def test_a_whole_clip_file_gives_the_trimmed_span_its_own_frames(tmp_path, pose_model, dancer):
    # The dancer is in the file's frames from 1 s on only: the span from 1 s must find them all.
    track = dancer.keypoints.copy()
    track[:10] = 0.0
    npz = tmp_path / "kp.npz"
    write_keypoints_npz(npz, track, 160, 120)
    summary = translate_video(dancer.path, tmp_path / "out.mp4", pose_model, keypoints=npz, start=1.0)
    assert summary.frames == 10 and summary.frames_without_person == 0
    # Exactly the file's frames of the span, frame for frame, filtered as in a run of the whole clip.
    with VideoReader(dancer.path, start=1.0, end=1.5) as reader:
        np.testing.assert_array_equal(keypoints_for(npz, dancer.path, reader).keypoints, smooth_track(track)[10:15])


def test_a_file_written_for_a_span_aligns_with_the_same_span(tmp_path, pose_model, dancer):
    npz = tmp_path / "kp.npz"
    result = run_cli("pose", dancer.path, "-o", tmp_path / "pose.mp4", "--start", "1.0", "--end", "1.6",
                     "--keypoints", npz)
    assert result.returncode == 0, result.stderr
    written = read_keypoints(npz)
    assert len(written.keypoints) == 6 and written.first_frame == 10
    summary = translate_video(dancer.path, tmp_path / "out.mp4", pose_model, keypoints=npz, start=1.0, end=1.6)
    assert summary.frames == 6 and summary.frames_without_person == 0
    with VideoReader(dancer.path, start=1.2, end=1.4) as reader:  # inside the file's span: its frames 2 and 3
        np.testing.assert_array_equal(keypoints_for(npz, dancer.path, reader).keypoints, written.keypoints[2:4])
    # The whole clip needs frames the file does not have.
    message = one_line_error(translate_video, dancer.path, tmp_path / "out2.mp4", pose_model, keypoints=npz)
    assert "frames 10 to 15 of the clip" in message and "frames 0 to 19" in message


@pytest.mark.parametrize("frames, expected", [(21, "has only 20"), (19, "frames 0 to 19 of")])
def test_a_file_must_have_one_pose_per_frame(tmp_path, pose_model, dancer, frames, expected):
    track = np.concatenate([dancer.keypoints, dancer.keypoints])[:frames]
    npz = tmp_path / "kp.npz"
    write_keypoints_npz(npz, track, 160, 120)
    message = one_line_error(translate_video, dancer.path, tmp_path / "out.mp4", pose_model, keypoints=npz)
    assert f"{frames} frames of keypoints" in message and expected in message
    assert not (tmp_path / "out.mp4").exists()


def test_a_file_of_another_frame_size_is_refused(tmp_path, pose_model, dancer):
    npz = tmp_path / "kp.npz"
    write_keypoints_npz(npz, dancer.keypoints * [12, 9, 1], 1920, 1080)
    message = one_line_error(translate_video, dancer.path, tmp_path / "out.mp4", pose_model, keypoints=npz)
    assert "1920x1080" in message and "160x120" in message


# ---------------------------------------------------------------- keypoint files: their numbers

def _npz(path: Path, keypoints, width=128, height=128) -> Path:
    np.savez(path, keypoints=keypoints, width=width, height=height)
    return path


def _track(x=40.0, y=50.0, confidence=0.9) -> np.ndarray:
    """Four frames of five points, point 1 of frame 2 at (x, y, confidence): float64, as other tools write."""
    track = np.zeros((4, 18, 3))
    track[:, :5] = (40.0, 50.0, 0.9)
    track[2, 1] = (x, y, confidence)
    return track


@pytest.mark.parametrize("keypoints, expected", [
    (_track(x=1e30), "far outside the 128x128 frame"),
    (_track(x=-1e6, y=-1e6), "far outside"),
    (_track(x=3e39), "is (inf"),  # beyond float32
    (_track(y=np.inf), "is (40, inf"),
    (_track(x=np.nan), "is (nan"),
    (_track(confidence=50), "confidence 50"),
    (_track(confidence=-0.5), "confidence -0.5"),
    (_track().astype(np.float64) * 1e300, "is (inf"),
    (_track().astype(np.complex64), "complex64"),
])
def test_keypoint_numbers_no_detector_gives_are_refused_in_one_line(tmp_path, keypoints, expected):
    message = one_line_error(read_keypoints, _npz(tmp_path / "kp.npz", keypoints))
    assert expected in message
    if "complex" not in expected:
        assert "keypoint 1 of frame 2" in message or "keypoint 0 of frame 0" in message


@pytest.mark.parametrize("width, height", [(0, 0), (-5, 128), (128, 0)])
def test_a_frame_size_of_nothing_is_refused(tmp_path, width, height):
    message = one_line_error(read_keypoints, _npz(tmp_path / "kp.npz", _track(), width, height))
    assert f"{width}x{height}" in message


def test_what_detectors_legitimately_write_is_read(tmp_path):
    # OpenPose's confidences overshoot 1 a little; points just off the frame are a reaching hand.
    track = _track(x=-6.5, y=130.0, confidence=1.3)
    loaded = read_keypoints(_npz(tmp_path / "kp.npz", track.astype(np.float16)))
    np.testing.assert_allclose(loaded.keypoints, track, rtol=1e-3)
    person = {"pose_keypoints_2d": [1e300, 5, 0.9] + [10, 20, 1.41] * 17}
    (tmp_path / "big.json").write_text(json.dumps({"people": [person], "canvas_width": 64, "canvas_height": 48}))
    assert "is (inf" in one_line_error(read_keypoints, tmp_path / "big.json")
    person["pose_keypoints_2d"][:3] = [None, None, None]  # DWPose's missing point
    (tmp_path / "ok.json").write_text(json.dumps({"people": [person], "canvas_width": 64, "canvas_height": 48}))
    pose = read_keypoints(tmp_path / "ok.json").keypoints[0]
    assert (pose[0] == 0).all() and pose[1].tolist() == pytest.approx([10, 20, 1.41])


def test_run_refuses_a_file_far_outside_the_video(tmp_path, pose_model, dancer):
    # A JSON file says no frame size: the video's decides.
    track = dancer.keypoints * [10, 10, 1]
    (tmp_path / "kp.json").write_text(json.dumps([pose.tolist() for pose in track]))
    message = one_line_error(translate_video, dancer.path, tmp_path / "out.mp4", pose_model,
                             keypoints=tmp_path / "kp.json")
    assert "far outside the 160x120 frame" in message


# ---------------------------------------------------------------- eval

def _pose_model_stub(size=(256, 256)):
    # What score checks before any work; `translate` makes it pass as a model, which it could not run.
    return SimpleNamespace(name="stub", native_size=size, input_kind="pose", card=SimpleNamespace(training={}),
                           translate=lambda frames: frames)


def test_eval_refuses_a_negative_seed_and_more_frames_than_memory_holds(pose_model_dir):
    model = _pose_model_stub()
    assert "seed" in one_line_error(score, model, Material(synthetic=True, seed=-1))
    limit = max_frames(model)
    assert 2 < limit < 100_000
    # Refused before any work: the stub could not be scored.
    message = one_line_error(score, model, Material(synthetic=True, frames=100_000, size=(16, 16)))
    assert f"give frames {limit} or fewer" in message
    assert max_frames(_pose_model_stub((512, 512))) == limit // 4
    # The command says so in one line.
    result = run_cli("eval", "--model", pose_model_dir, "--device", "cpu", "--synthetic", "--seed", "-1")
    assert result.returncode == 2 and result.exception is None
    assert result.stderr.startswith("vidtrans: error: --seed must be") and result.stderr.count("\n") == 1, result.stderr


# ---------------------------------------------------------------- live

class FakeModel:
    """An RGB model that inverts frames."""

    name, device, precision, input_kind, card, native_size = "fake", torch.device("cpu"), "fp32", "rgb", None, (48, 64)

    def translate(self, frames):
        return 255 - frames


def test_a_rotated_file_camera_is_shown_upright_as_run_decodes_it(tmp_path):
    clip = make_clip(tmp_path / "rot.mp4", frames=4, size=(64, 48), rotation=90, fps=FPS, audio=False)
    seen: list[np.ndarray] = []
    run_live(FakeModel(), clip.path, window=False, max_frames=1, on_frame=lambda frame, stats: seen.append(frame.input))
    with VideoReader(clip.path) as reader:
        upright = next(iter(reader)).image
    assert upright.shape == (64, 48, 3) and seen[0].shape == upright.shape
    assert np.abs(seen[0].astype(int) - upright).mean() < 1


def test_a_one_frame_file_loops(tmp_path):
    clip = make_clip(tmp_path / "one.mp4", frames=1, size=(64, 48), fps=30, audio=False)
    stats = run_live(FakeModel(), clip.path, window=False, loop=True, max_frames=3)
    assert stats.frames == 3 and "3 frames shown" in stats.ended


def test_a_capture_failure_ends_live_at_once_with_its_error(tmp_path, monkeypatch):
    """The file camera's file goes away while it plays: playing it again fails in the capture thread,
    and that failure ends live by itself, not the wait for a stalled camera (made endless here)."""
    monkeypatch.setattr(live_loop, "STALL_S", float("inf"))
    clip = make_clip(tmp_path / "gone.mp4", frames=10, size=(64, 48), fps=25, audio=False)
    raised: list[BaseException] = []

    def play():
        try:
            run_live(FakeModel(), clip.path, window=False, loop=True, max_frames=40,
                     on_frame=lambda frame, stats: clip.path.unlink(True))
        except BaseException as error:
            raised.append(error)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    player.join(120)  # a bound for a broken build only: the loop ends on the capture's error
    assert not player.is_alive(), "live kept waiting after its camera failed"
    assert len(raised) == 1 and isinstance(raised[0], VidtransError)
    assert str(raised[0]).startswith(f"{clip.path}: file not found")


@pytest.mark.parametrize("content", [b"", b"not a video\n" * 20])
def test_a_file_camera_that_is_no_video_prints_one_line_and_no_ffmpeg_log(tmp_path, rgb_model_dir, capfd, content):
    camera = tmp_path / "clip.mp4"
    camera.write_bytes(content)
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--no-window")
    assert result.returncode == 1 and result.exception is None
    why = ("is empty (0 bytes), not a video; pass the video once it is copied whole" if not content else
           "not a readable video file (Invalid data found when processing input); the .mp4 file is damaged or cut "
           "short, or not what its name says; re-export or re-download it")
    assert result.stderr == f"vidtrans: error: {camera}: {why}\n"
    assert capfd.readouterr().err == ""  # nothing from FFmpeg, which writes to the process's stderr itself


def test_an_unreachable_url_camera_prints_one_line_and_no_ffmpeg_log(tmp_path, rgb_model_dir):
    """In a process of its own: OpenCV sets up its FFmpeg's log once, when a process first opens something with it."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/clip.mp4"
    result = subprocess.run([sys.executable, "-m", "vidtrans", "live", "--model", str(rgb_model_dir), "--device", "cpu",
                             "--camera", url, "--no-window"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith(f"vidtrans: error: {url}: cannot open it;") and result.stderr.count("\n") == 1, \
        result.stderr
