"""QA pass 9, `live` and CLI messages: what live can record to, --record/--stats clashes as usage
errors, a folder as camera, the pose mapping as it happened, a session stopped before its first
frame, and `run` naming --no-normalize. A synthetic clip file stands in for the camera, headless.
"""

import threading

import numpy as np
import pytest

import vidtrans.pipeline
from tests.conftest import one_line, run_cli
from tests.media import make_clip, random_generator
from tests.test_live import FakeModel
from tests.test_signals import STOP_SIGNALS, assert_interrupted, signal_before_frame  # noqa: F401 (a fixture)
from vidtrans.errors import UsageError, VidtransError
from vidtrans.live import run_live
from vidtrans.live.process import WARMUP_S, LivePoseMapper
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.options import spell
from vidtrans.pose import PoseStats
from vidtrans.pose.keypoints import KEYPOINT_INDEX


@pytest.fixture
def camera(tmp_path):
    return make_clip(tmp_path / "cam.mp4", frames=8, size=(64, 48), fps=30, audio=False).path


def live(camera, model, *args):
    return run_cli("live", "--model", model, "--device", "cpu", "--camera", camera, "--no-window", *args)


def test_record_into_a_container_without_h264_names_the_extensions_live_can_write(tmp_path, camera, rgb_model_dir):
    # live has no --codec: the fix it offers is another extension, not another codec.
    line = one_line(live(camera, rgb_model_dir, "--record", tmp_path / "rec.webm"), 2)
    assert "rec.webm" in line and ".mp4, .mkv or .mov" in line
    assert "--codec" not in line and "libvpx" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4"]


def test_record_and_stats_on_one_file_is_a_usage_error_naming_both_flags(tmp_path, camera, rgb_model_dir):
    line = one_line(live(camera, rgb_model_dir, "--record", tmp_path / "o.mp4", "--stats", tmp_path / "o.mp4"), 2)
    assert "--record and --stats both name" in line and "different files" in line
    # The library names its parameters.
    with pytest.raises(UsageError, match="^record and stats both name"):
        run_live(FakeModel(), camera, window=False, record=tmp_path / "o.mp4", stats=tmp_path / "o.mp4")


def test_a_folder_as_camera_is_called_a_folder(tmp_path, rgb_model_dir):
    line = one_line(live(tmp_path, rgb_model_dir), 1)
    assert f"{tmp_path}: is a folder, not a video file" in line and "no such" not in line


# --- the pose mapping as it happened ----------------------------------------------------------------


def standing(frames: int, ankles: bool = True) -> np.ndarray:
    """A person standing in a 64x48 frame, swaying a little: head and (optionally) ankles visible."""
    poses = np.zeros((frames, 18, 3), np.float32)
    for i in range(frames):
        sway = i % 4
        points = {"nose": (30 + sway, 6), "neck": (30 + sway, 12), "r_hip": (28, 26), "l_hip": (34, 26),
                  "r_knee": (28, 34), "l_knee": (34, 34)}
        if ankles:
            points |= {"r_ankle": (28, 42 + sway % 2), "l_ankle": (34, 42)}
        for name, (x, y) in points.items():
            poses[i, KEYPOINT_INDEX[name]] = (x, y, 0.9)
    return poses


TARGET = PoseStats(frame_width=64, frame_height=64, far=0.7, near=0.9, height_far=0.5, height_near=0.7,
                   centre_x=0.0).to_dict()


def map_poses(poses: np.ndarray, seconds: float) -> LivePoseMapper:
    """A mapper fed `poses` at even times over `seconds`: the clock is the frames' capture times."""
    mapper = LivePoseMapper((48, 64), (64, 64), TARGET)
    for pose, t in zip(poses, np.linspace(0.0, seconds, len(poses))):
        mapper(pose, 100.0 + t)
    return mapper


def test_a_session_shorter_than_the_warm_up_says_it_was_not_normalized():
    # 0.64 s at 25 fps, as the QA's clip.
    how = map_poses(standing(16), 0.64).how
    assert how.startswith("fitted to the frame (not normalized") and f"first {WARMUP_S:g} s" in how
    assert "then normalized" not in how


def test_pose_mapping_says_when_normalization_started_or_why_not_yet():
    assert map_poses(standing(80), 3.2).how == "fitted to the frame for the first 2.0 s, then normalized to the " \
                                               "target's body"
    # No ankles: the body cannot be measured; retried each second until GIVE_UP_S.
    how = map_poses(standing(80, ankles=False), 3.2).how
    assert how.startswith("fitted to the frame (not normalized yet, last tried at 3.0 s: no frame shows a whole body")


# --- a session stopped before its first frame ---------------------------------------------------------


@STOP_SIGNALS
def test_a_signal_before_the_first_frame_leaves_record_and_stats_as_they_were(tmp_path, camera, rgb_model_dir,
                                                                              signal_before_frame, signum):
    """The QA's case: the signal comes as the recording's temporary file is opened for the first frame."""
    record, stats = tmp_path / "rec.mp4", tmp_path / "stats.json"
    record.write_bytes(b"an earlier recording")
    stats.write_text('{"frames": 40}\n')
    signal_before_frame(signum, 0)
    result = live(camera, rgb_model_dir, "--record", record, "--stats", stats, "--overwrite")
    # No session was under way to end normally: stopped like any other command.
    assert_interrupted(result.returncode, result.stderr, signum)
    assert record.read_bytes() == b"an earlier recording" and stats.read_text() == '{"frames": 40}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4", "rec.mp4", "stats.json"]


def test_a_session_without_frames_writes_nothing_and_measures_no_latency(tmp_path, camera):
    record, stats_file = tmp_path / "rec.mp4", tmp_path / "stats.json"
    stats_file.write_text('{"frames": 40}\n')
    stop = threading.Event()
    stop.set()  # stopped before the camera delivered anything
    stats = run_live(FakeModel(), camera, window=False, record=record, stats=stats_file, overwrite=True, stop=stop)
    assert stats.ended == "stopped" and stats.frames == 0
    assert stats.to_dict()["latency_ms_p50"] is None and stats.to_dict()["latency_ms_p95"] is None
    assert "latency n/a" in stats.summary()
    assert stats_file.read_text() == '{"frames": 40}\n' and not record.exists()


# --- run names --no-normalize ---------------------------------------------------------------------------


def test_messages_of_a_running_command_spell_a_switch_value_as_its_flag(tmp_path, camera, rgb_model_dir,
                                                                        monkeypatch):
    def translate_video(*args, **kwargs):
        raise VidtransError(f"turn it off ({spell('normalize=False')}) or on ({spell('normalize=True')})")

    monkeypatch.setattr(vidtrans.pipeline, "translate_video", translate_video)
    line = one_line(run_cli("run", camera, "-m", rgb_model_dir, "--device", "cpu", "-o", tmp_path / "o.mp4"), 1)
    assert line.endswith("turn it off (--no-normalize) or on (--normalize)")


@pytest.fixture(scope="module")
def pose_model_dir(tmp_path_factory):
    """A tiny pose model whose card has the target's body statistics, so `run` normalizes by default."""
    net = random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0)
    folder = tmp_path_factory.mktemp("models") / "tinypose"
    save_checkpoint(folder, net, ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                                           input_kind="pose", target_pose_stats=TARGET))
    return folder


def test_run_summary_names_no_normalize_for_a_clip_without_whole_bodies(tmp_path, camera, pose_model_dir):
    keypoints = tmp_path / "kp.npz"
    # Heads without ankles: no frame shows a whole body.
    np.savez(keypoints, keypoints=standing(8, ankles=False), width=64, height=48)
    result = run_cli("run", camera, "-m", pose_model_dir, "--device", "cpu", "--keypoints", keypoints,
                     "-o", tmp_path / "o.mp4")
    assert result.returncode == 0, result.stderr
    summary = " ".join(result.stderr.split())  # as one line, however the console wrapped it
    assert "fitted to the frame (not normalized: no frame shows a whole body" in summary, summary
    assert "--no-normalize" not in summary  # nothing to turn off: it already was not normalized
