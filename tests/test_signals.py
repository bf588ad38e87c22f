"""Ctrl-C, SIGTERM and SIGHUP stop every command cleanly, and live/batch never replace files they must not.

The three signals go through one handler (vidtrans.cli._stop). A real `python -m vidtrans` gets one of
them in each kind of work (an encode with the encoder's threads busy, the detection pass, a batch, a
live session) at a moment recognised from the outside (a temporary output file grown; the input
opened by the detection pass), never after a sleep. Every command is also stopped by each of the
three in this process, the signal sent just before a chosen frame is encoded (right after the output
is opened, mid-write, near the end): the handler is in place for each, and each gives its exit
status and message.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.media import dancer_clip, decode_all, make_clip, random_generator
from tests.test_batch import cli as batch_cli
from tests.test_live import FakeModel
from tests.test_live import cli as live_cli
from vidtrans.batch import MANIFEST_NAME, BatchUsageError, read_manifest, translate_folder
from vidtrans import errors
from vidtrans.errors import UsageError, VidtransError
from vidtrans.live import run_live
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.video import VideoWriter

# A bound on a hang, not a speed requirement: a clean stop takes well under a second here.
HANG_S = 20
FRAMES = 150
STOP_SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                                       ids=lambda s: signal.Signals(s).name)
# Every signal that ends a process by default and that a user or the system sends to stop one.
EVERY_STOP_SIGNAL = pytest.mark.parametrize("signum", errors.STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidtrans", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(process: subprocess.Popen, condition, what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"vidtrans ended before {what}: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} within 120 s")
        time.sleep(0.01)


def stop(process: subprocess.Popen, signum: int) -> str:
    """Send `signum`, wait for the exit (failing on a hang); returns stderr."""
    process.send_signal(signum)
    try:
        return process.communicate(timeout=HANG_S)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"still running {HANG_S} s after {signal.Signals(signum).name}")


def temporaries(folder: Path) -> list[Path]:
    """Partial outputs and lock files, anywhere under `folder` (they are hidden files)."""
    return sorted(p for p in folder.rglob(".*") if ".partial-" in p.name or p.name.endswith(".vidtrans-lock"))


def grown(folder: Path, at_least: int = 1):
    """A condition: a partial file under `folder` holds `at_least` bytes."""
    def check() -> bool:
        for path in temporaries(folder):
            try:
                if ".partial-" in path.name and path.stat().st_size >= at_least:
                    return True
            except FileNotFoundError:  # renamed or deleted since listed
                pass
        return False
    return check


def assert_interrupted(returncode: int, stderr: str, signum: int) -> None:
    assert returncode == 128 + signum, stderr
    assert stderr.splitlines()[-1] == "vidtrans: interrupted", stderr
    assert "Traceback" not in stderr


@pytest.fixture
def signal_before_frame(monkeypatch):
    """signal_before_frame(signum, n): this process sends itself `signum`, as `kill` would, when
    the command's video writers, in whichever thread, are about to encode their frame n + 1 in all
    (n = 0: the first output file is open, nothing encoded yet). Only to vidtrans's own handler: the
    default one of SIGTERM or SIGHUP would end this test session."""
    def arm(signum: int, frames: int) -> None:
        if signal.getsignal(signum) == signal.SIG_IGN:  # nohup: vidtrans keeps an ignored signal ignored
            pytest.skip(f"{signal.Signals(signum).name} is ignored in this session")
        encoded = itertools.count()
        write = VideoWriter.write

        def signal_then_write(self, image, pts):
            if next(encoded) == frames:
                # vidtrans's handler, or what defers it for a step (a live frame recorded and counted)
                assert callable(signal.getsignal(signum)), "vidtrans's handler is not in place"
                os.kill(os.getpid(), signum)
            write(self, image, pts)

        monkeypatch.setattr(VideoWriter, "write", signal_then_write)
    return arm


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Long enough to be caught mid-write; frames this large keep x264's threads busy."""
    return make_clip(tmp_path_factory.mktemp("media") / "in.mp4", frames=FRAMES, size=(640, 480), audio=True).path


@pytest.fixture(scope="module")
def dance(tmp_path_factory):
    """Our procedural dancer: a person for the pose detector to find in every frame."""
    return dancer_clip(tmp_path_factory.mktemp("media") / "dance.mp4", frames=100, size=(256, 256)).path


@pytest.fixture(scope="module")
def tiny_pose_model(tmp_path_factory):
    net = random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0)
    folder = tmp_path_factory.mktemp("models") / "tiny-pose"
    save_checkpoint(folder, net, ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                                           input_kind="pose"))
    return folder


def run_args(clip, out, model, *extra):
    return ["run", clip, "-o", out, "--model", model, "--device", "cpu", *extra]


# --- run -------------------------------------------------------------------------------------------


def test_sigterm_mid_encode_leaves_existing_output_untouched(tmp_path, clip, rgb_model_dir):
    """Mid-write with the encoder's threads busy, replacing an existing file (--overwrite)."""
    out = tmp_path / "out.mp4"
    out.write_bytes(clip.read_bytes())
    before = out.read_bytes()
    process = start(*run_args(clip, out, rgb_model_dir, "--overwrite"))
    wait_for(process, grown(tmp_path), "growing partial file")
    stderr = stop(process, signal.SIGTERM)
    assert_interrupted(process.returncode, stderr, signal.SIGTERM)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGXCPU, signal.SIGUSR1], ids=lambda s: signal.Signals(s).name)
def test_signals_that_end_a_process_by_default_stop_it_cleanly(tmp_path, rgb_model_dir, signum):
    """Ctrl-\\ (SIGQUIT), a CPU-time limit (SIGXCPU), `kill -USR1`: by default each ends the process
    at once, leaving its partial output and lock file."""
    if signal.getsignal(signum) == signal.SIG_IGN:  # a background job's SIGQUIT: the child keeps it ignored
        pytest.skip(f"{signal.Signals(signum).name} is ignored in this session")
    small = make_clip(tmp_path / "in.mp4", frames=FRAMES, size=(320, 240), audio=False).path
    out = tmp_path / "out.mp4"
    process = start(*run_args(small, out, rgb_model_dir))
    wait_for(process, grown(tmp_path), "growing partial file")
    stderr = stop(process, signum)
    assert_interrupted(process.returncode, stderr, signum)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_stop_does_not_wait_for_a_forward_pass_in_flight(tmp_path, rgb_model_dir):
    """A forward pass cannot be cut short (tens of seconds at a large --model-size): a stop must
    wait for it neither in the pipeline nor at the interpreter's exit. Here the pass never ends."""
    small = make_clip(tmp_path / "in.mp4", frames=24, size=(64, 48), audio=False).path
    out, started = tmp_path / "out.mp4", tmp_path / "pass-started"
    args = [str(a) for a in run_args(small, out, rgb_model_dir)]
    script = f"""
import sys, threading
from pathlib import Path
from vidtrans.models.translator import Translator
def endless_pass(self, frames, state):
    Path({str(started)!r}).touch()
    threading.Event().wait()  # releases the GIL, as a pass in native code does
Translator.translate_clip = endless_pass
sys.argv = ["vidtrans", *{args!r}]
from vidtrans.__main__ import entry
entry()
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for(process, started.exists, "forward pass")
    stderr = stop(process, signal.SIGINT)  # fails if the process is still there HANG_S later
    assert_interrupted(process.returncode, stderr, signal.SIGINT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "pass-started"]


@EVERY_STOP_SIGNAL
def test_each_signal_mid_write_leaves_existing_output_untouched(tmp_path, rgb_model_dir, signal_before_frame, signum):
    small = make_clip(tmp_path / "in.mp4", frames=24, size=(64, 48)).path
    out = tmp_path / "out.mp4"
    out.write_bytes(small.read_bytes())
    before = out.read_bytes()
    signal_before_frame(signum, 12)
    result = run_cli(*run_args(small, out, rgb_model_dir, "--overwrite"))
    assert_interrupted(result.returncode, result.stderr, signum)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_ctrl_c_right_after_the_output_is_opened(tmp_path, rgb_model_dir, signal_before_frame):
    small = make_clip(tmp_path / "in.mp4", frames=8, size=(64, 48)).path
    (tmp_path / "out").mkdir()
    signal_before_frame(signal.SIGINT, 0)
    result = run_cli(*run_args(small, tmp_path / "out" / "out.mp4", rgb_model_dir))
    assert_interrupted(result.returncode, result.stderr, signal.SIGINT)
    assert list((tmp_path / "out").iterdir()) == []


def test_ctrl_c_near_the_end(tmp_path, rgb_model_dir, signal_before_frame):
    """At frame 33 of 40: x264 veryfast holds its 10 frames of look-ahead, the last batches are in flight."""
    small = make_clip(tmp_path / "in.mp4", frames=40, size=(160, 120)).path
    (tmp_path / "out").mkdir()
    signal_before_frame(signal.SIGINT, 32)
    result = run_cli(*run_args(small, tmp_path / "out" / "out.mp4", rgb_model_dir, "--preset", "veryfast"))
    assert_interrupted(result.returncode, result.stderr, signal.SIGINT)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="recognises the detection pass in Linux's /proc")
def test_ctrl_c_during_pose_detection(tmp_path, dance, tiny_pose_model):
    """The detection pass (nothing written yet) stops too, and the message is not lost to the
    detectors' silenced stderr."""
    out = tmp_path / "out" / "out.mp4"
    out.parent.mkdir()
    process = start(*run_args(dance, out, tiny_pose_model, "--pose", "detect"))

    def detecting() -> bool:
        """The detection pass's own reader of the input (a second one) is past a quarter of the
        file: decoding runs only a few batches ahead of the detectors, so they are at work, with
        three quarters of the clip to go. The translation pass's writer, which opens the input too
        (for the audio), does not exist yet."""
        proc = Path(f"/proc/{process.pid}")
        try:
            positions = [int((proc / "fdinfo" / fd.name).read_text().split()[1])
                         for fd in (proc / "fd").iterdir() if os.readlink(fd) == str(dance)]
        except (OSError, IndexError, ValueError):  # a descriptor closed while we looked
            return False
        # The output is claimed from the start (a lock file); no partial output is there yet.
        partial = [p for p in temporaries(out.parent) if ".partial-" in p.name]
        return len(positions) == 2 and 4 * max(positions) >= dance.stat().st_size and not partial

    wait_for(process, detecting, "detection pass")
    stderr = stop(process, signal.SIGINT)
    assert_interrupted(process.returncode, stderr, signal.SIGINT)
    assert list(out.parent.iterdir()) == []


def test_pose_command_sighup_mid_write(tmp_path, signal_before_frame):
    short_dance = dancer_clip(tmp_path / "dance.mp4", frames=12, size=(128, 128)).path
    out = tmp_path / "out"
    out.mkdir()
    signal_before_frame(signal.SIGHUP, 6)
    result = run_cli("pose", short_dance, "-o", out / "pose.mp4", "--keypoints", out / "kp.npz")
    assert_interrupted(result.returncode, result.stderr, signal.SIGHUP)
    assert list(out.iterdir()) == []


def test_cli_installs_no_python_log_callback_and_runs_without_cv2_setloglevel():
    """Any PyAV log level installs a Python callback that FFmpeg's threads call with the GIL: an x264
    thread logging while the interrupted main thread frees the encoder deadlocked (PyAV #751).
    OpenCV 5 has setLogLevel only in cv2.utils.logging; vidtrans must not crash there."""
    script = "\n".join([
        "import sys, av.logging, cv2",
        "del cv2.setLogLevel",
        "from vidtrans.cli import main",
        "sys.argv = ['vidtrans', '--version']",
        "try:",
        "    main()",
        "except SystemExit as e:",
        "    print('exit', e.code, 'log level', av.logging.get_level())",
    ])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.stdout.splitlines()[-1] == "exit 0 log level None", result.stdout + result.stderr


# --- batch -----------------------------------------------------------------------------------------


def batch_inputs(tmp_path: Path, frames: int, size: tuple[int, int]) -> tuple[Path, Path, list[Path]]:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    return src, out, [make_clip(src / f"{i}.mp4", frames=frames, size=size, audio=True).path for i in range(3)]


def assert_batch_stopped(tmp_path: Path, out: Path, clips: list[Path], before: list[bytes]) -> None:
    # A stopped batch does not wait for its clips (a forward pass cannot be cut short): a process
    # exits at once, removing their files; in this process (run_cli) each stops at its next batch
    # and removes its own.
    deadline = time.monotonic() + 60
    while any(t.name.startswith("vidtrans-batch") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the batch's clips did not stop"
        time.sleep(0.05)
    assert temporaries(out) == []
    assert [c.read_bytes() for c in clips] == before
    assert not (tmp_path / "report.json").exists()
    for record in read_manifest(out).values():
        assert record["status"] == "running" or (out / record["output"]).is_file()


def batch_args(src: Path, out: Path, model: Path, report: Path) -> list:
    return ["batch", src, "-o", out, "--model", model, "--devices", "cpu", "--batch-size", 1, "--report", report]


def test_batch_stops_on_sigterm(tmp_path, rgb_model_dir):
    src, out, clips = batch_inputs(tmp_path, frames=60, size=(320, 240))
    before = [c.read_bytes() for c in clips]
    process = start(*batch_args(src, out, rgb_model_dir, tmp_path / "report.json"))
    # Once the manifest is in place (it too is written as a partial file first), a growing partial file is a clip.
    video_grown = grown(out)
    wait_for(process, lambda: (out / MANIFEST_NAME).exists() and video_grown(), "growing partial file")
    stderr = stop(process, signal.SIGTERM)
    assert_interrupted(process.returncode, stderr, signal.SIGTERM)
    assert_batch_stopped(tmp_path, out, clips, before)


@STOP_SIGNALS
def test_batch_stops_on_each_signal(tmp_path, rgb_model_dir, signal_before_frame, signum):
    """The signal comes while a worker thread encodes, as it would from outside."""
    src, out, clips = batch_inputs(tmp_path, frames=12, size=(64, 48))
    before = [c.read_bytes() for c in clips]
    signal_before_frame(signum, 6)
    result = run_cli(*batch_args(src, out, rgb_model_dir, tmp_path / "report.json"))
    assert_interrupted(result.returncode, result.stderr, signum)
    assert_batch_stopped(tmp_path, out, clips, before)


# --- live ------------------------------------------------------------------------------------------


def live_args(camera: Path, out: Path, model: Path) -> list:
    return ["live", "--model", model, "--device", "cpu", "--camera", camera, "--loop", "--no-window",
            "--record", out / "rec.mp4", "--stats", out / "stats.json"]


def assert_live_ended_normally(returncode: int, stderr: str, out: Path, signum: int) -> None:
    assert returncode == 0, stderr
    assert "Ctrl-C to stop" in stderr.splitlines()[0], stderr
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    assert f"interrupted ({name})" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["rec.mp4", "stats.json"]
    assert len(decode_all(out / "rec.mp4")[0]) == json.loads((out / "stats.json").read_text())["frames"] > 0


def test_live_ends_normally_on_sighup(tmp_path, rgb_model_dir):
    """A signal is how a live session is stopped: the recording is finished and the stats written.
    The file camera loops (--loop), so the session lasts until the signal."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:  # nohup: the child would keep ignoring it
        pytest.skip("SIGHUP is ignored in this session")
    # Frames this large fill the muxer's buffer within a second, so a file grown past its header
    # (written as the first frame goes to the recorder, before that frame counts as shown: a stop
    # then ends the start-up, exit 129 and nothing written) shows frames recorded and counted.
    camera = make_clip(tmp_path / "cam.mp4", frames=30, size=(320, 240), fps=30, audio=False).path
    out = tmp_path / "out"
    out.mkdir()
    process = start(*live_args(camera, out, rgb_model_dir))
    wait_for(process, grown(out, 16384), "growing recording")
    stderr = stop(process, signal.SIGHUP)
    assert_live_ended_normally(process.returncode, stderr, out, signal.SIGHUP)


@STOP_SIGNALS
def test_live_ends_normally_on_each_signal(tmp_path, rgb_model_dir, signal_before_frame, signum):
    camera = make_clip(tmp_path / "cam.mp4", frames=4, size=(64, 48), fps=30, audio=False).path
    out = tmp_path / "out"
    out.mkdir()
    signal_before_frame(signum, 6)  # after the looping camera's first pass
    result = run_cli(*live_args(camera, out, rgb_model_dir))
    assert_live_ended_normally(result.returncode, result.stderr, out, signum)


# --- files live and batch must not replace --------------------------------------------------------


@pytest.fixture
def camera_and_file(tmp_path):
    camera = make_clip(tmp_path / "cam.mp4", frames=5, size=(64, 48), audio=False).path
    existing = tmp_path / "existing.json"
    existing.write_text('{"mine": true}\n')
    return camera, existing


@pytest.mark.parametrize("option", ["record", "stats"])
@pytest.mark.parametrize("target", ["camera", "existing"])
def test_live_outputs_refuse_the_camera_file_and_existing_files(tmp_path, camera_and_file, option, target):
    camera, existing = camera_and_file
    path = camera if target == "camera" else existing
    before = path.read_bytes()
    # Even --overwrite never lets an output replace the camera's file.
    with pytest.raises(VidtransError, match="input" if target == "camera" else "overwrite=True"):
        run_live(FakeModel(), camera, window=False, overwrite=target == "camera", **{option: path})
    assert path.read_bytes() == before
    assert temporaries(tmp_path) == []


def test_live_record_and_stats_must_differ(tmp_path, camera_and_file):
    camera, _ = camera_and_file
    with pytest.raises(VidtransError, match="different"):
        run_live(FakeModel(), camera, window=False, record=tmp_path / "o.mp4", stats=tmp_path / "o.mp4",
                 overwrite=True)
    assert not (tmp_path / "o.mp4").exists()


def test_live_stats_replace_a_file_with_overwrite(tmp_path, camera_and_file):
    camera, existing = camera_and_file
    stats = run_live(FakeModel(), camera, window=False, stats=existing, overwrite=True)
    assert json.loads(existing.read_text())["frames"] == stats.frames > 0


def test_live_cli_refuses_recording_onto_the_camera_file(tmp_path, camera_and_file, rgb_model_dir):
    camera, _ = camera_and_file
    before = camera.read_bytes()
    result = live_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", camera, "--no-window",
                      "--record", camera, "--overwrite")
    # vidtrans.cli.main prints the error as one line, exit 2: an output path that cannot be used is a
    # usage error, for every command alike.
    assert isinstance(result.exception, UsageError)
    assert len(str(result.exception).strip().splitlines()) == 1
    assert str(camera) in str(result.exception)
    assert camera.read_bytes() == before


@pytest.fixture
def clips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.mp4", "b.mp4"):
        make_clip(src / name, frames=3, size=(64, 48), audio=False)
    return src


@pytest.mark.parametrize("target", ["input", "output", "existing"])
def test_batch_report_refuses_clips_and_other_files(tmp_path, clips, rgb_model_dir, target):
    out = tmp_path / "out"
    path = {"input": clips / "a.mp4", "output": out / "b.mp4", "existing": tmp_path / "notes.json"}[target]
    if target == "existing":
        path.write_text('{"mine": true}\n')
    overwrite = target != "existing"  # even --overwrite never lets the report replace a clip
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(BatchUsageError, match="^report "):
        translate_folder(clips, out, rgb_model_dir, devices=["cpu"], overwrite=overwrite, report=path)
    assert (path.read_bytes() if path.exists() else None) == before
    assert not out.exists()  # refused before any work, even the output folder


def test_batch_rerun_replaces_its_own_report(tmp_path, clips, rgb_model_dir):
    report = tmp_path / "report.json"
    for _ in range(2):
        result = translate_folder(clips, tmp_path / "out", rgb_model_dir, devices=["cpu"], preset="ultrafast",
                                  report=report)
    assert [c["status"] for c in json.loads(report.read_text())["clips"]] == ["skipped", "skipped"]
    assert result.totals()["skipped"] == 2


def test_batch_cli_refuses_a_report_onto_an_input_clip(tmp_path, clips, rgb_model_dir):
    before = (clips / "a.mp4").read_bytes()
    result = batch_cli(clips, "-o", tmp_path / "out", "--model", rgb_model_dir, "--devices", "cpu", "--report",
                       clips / "a.mp4", "--overwrite")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and "--report" in result.stderr
    assert (clips / "a.mp4").read_bytes() == before
