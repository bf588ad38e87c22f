"""`vidtrans batch` and `translate_folder`: discovery, isolated failures, resume after a kill, skips, redo."""

import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest
import torch

import vidtrans.batch
from tests.media import audio_durations, decode_all, make_clip, random_generator
from vidtrans.batch import (LEGACY_MANIFEST_NAME, MANIFEST_NAME, BatchListener, BatchUsageError, Manifest, find_clips,
                            read_manifest, translate_folder)
from vidtrans.cli import main
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, save_checkpoint, weights_sha256
from vidtrans.models.networks import build_generator

FAST = dict(preset="ultrafast", batch_size=4)


def cli(*args) -> subprocess.CompletedProcess:
    """`vidtrans batch ARGS` through the command's entry point, in this process (a new process
    would add only its imports: the entry point itself is tested in test_signals and test_install)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (mock.patch.object(sys, "argv", ["vidtrans", "batch", *map(str, args)]), contextlib.redirect_stdout(stdout),
          contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit):
        main()
    return subprocess.CompletedProcess(args, exit.value.code, stdout.getvalue(), stderr.getvalue())


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name)


def by_name(report):
    return {os.path.basename(c["input"]): c for c in report["clips"]}


def assert_same_video(src, out):
    in_images, in_times = decode_all(src)
    out_images, out_times = decode_all(out)
    assert len(out_images) == len(in_images) > 0
    assert out_times == pytest.approx(in_times, abs=1e-6)
    assert audio_durations(out) == pytest.approx(audio_durations(src), abs=0.1)


def test_folder_with_good_and_broken_clips(tmp_path, rgb_model_dir):
    """Good clips come out complete; broken ones are reported with a reason; exit 1, no traceback."""
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    good = [make_clip(src / "a.mp4", frames=8, audio=True).path,
            make_clip(src / "sub" / "b.mkv", frames=6, audio=False).path,
            make_clip(src / "sub" / "deeper" / "c.mkv", frames=5, audio=True).path]
    (src / "text.mp4").write_text("this is not a video\n")
    (src / "sub" / "noise.mov").write_bytes(os.urandom(4096))
    (src / "truncated.mp4").write_bytes(good[0].read_bytes()[:2048])
    (src / "notes.txt").write_text("not matched by the patterns\n")
    out = src / "out"  # inside the input folder: must never be scanned as input
    report_path = tmp_path / "report.json"

    result = cli(src, "-o", out, "--model", rgb_model_dir, "--devices", "cpu", "--preset", "ultrafast",
                 "--report", report_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(report_path.read_text())
    clips = by_name(report)
    assert sorted(clips) == ["a.mp4", "b.mkv", "c.mkv", "noise.mov", "text.mp4", "truncated.mp4"]
    for path in good:
        clip = clips[path.name]
        output = out / path.relative_to(src)
        assert clip["status"] == "done" and clip["output"] == str(output) and clip["error"] is None
        assert clip["frames"] == len(decode_all(path)[0]) and clip["fps"] > 0
        assert_same_video(path, output)
    for name in ("text.mp4", "noise.mov", "truncated.mp4"):
        assert clips[name]["status"] == "failed"
        error = clips[name]["error"]
        assert name in error and "\n" not in error
        assert error in " ".join(result.stderr.split()) or name in result.stderr
    assert report["totals"] == {**report["totals"], "clips": 6, "done": 3, "skipped": 0, "failed": 3,
                                "frames": 19}
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [MANIFEST_NAME, "a.mp4", "b.mkv", "c.mkv"]

    # A second run scans the same six inputs (not the outputs inside the input folder), skips the
    # good ones and retries the broken ones.
    again = cli(src, "-o", out, "--model", rgb_model_dir, "--devices", "cpu", "--preset", "ultrafast",
                "--report", report_path)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    statuses = {name: c["status"] for name, c in by_name(json.loads(report_path.read_text())).items()}
    assert statuses == {"a.mp4": "skipped", "b.mkv": "skipped", "c.mkv": "skipped", "noise.mov": "failed",
                        "text.mp4": "failed", "truncated.mp4": "failed"}


def test_kill_resume_skip_and_redo_changed(tmp_path, rgb_model_dir, monkeypatch):
    """SIGKILL mid-batch, rerun: finished outputs untouched, no temporary files, the rest done;
    a third run translates nothing; touching one input redoes only that clip."""
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    clips = [make_clip(src / ("sub" if i % 2 else "") / f"clip{i}.mp4", frames=40, size=(64, 48), audio=True).path
             for i in range(4)]
    args = [src, "-o", out, "--model", rgb_model_dir, "--devices", "cpu", "--preset", "ultrafast"]

    process = subprocess.Popen([sys.executable, "-m", "vidtrans", "batch", *map(str, args), "--workers", "1",
                                "--batch-size", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_at_kill: dict = {}
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (out / MANIFEST_NAME).exists():
            done_at_kill = {k: v for k, v in read_manifest(out).items() if v["status"] == "done"}
            if done_at_kill:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert 1 <= len(done_at_kill) < len(clips), "the first run should be killed mid-way"
    finished = {out / rel: (out / rel).stat().st_mtime_ns for rel in done_at_kill}

    report_path = tmp_path / "report.json"
    second = cli(*args, "--report", report_path)
    assert second.returncode == 0, second.stderr
    assert leftovers(out) == []
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    statuses = {c["output"]: c["status"] for c in json.loads(report_path.read_text())["clips"]}
    assert all(statuses[str(p)] == "skipped" for p in finished)
    for clip in clips:
        assert_same_video(clip, out / clip.relative_to(src))

    translated = []
    with monkeypatch.context() as patch:
        patch.setattr(vidtrans.batch, "translate_video", lambda src, *args, **kwargs: translated.append(src))
        third = cli(*args, "--report", report_path)
    assert third.returncode == 0, third.stderr
    assert translated == []
    report = json.loads(report_path.read_text())
    assert [c["status"] for c in report["clips"]] == ["skipped"] * 4
    assert report["totals"]["frames"] == 0

    changed = clips[1]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    mtimes = {clip: (out / clip.relative_to(src)).stat().st_mtime_ns for clip in clips}
    fourth = cli(*args, "--report", report_path)
    assert fourth.returncode == 0, fourth.stderr
    statuses = {os.path.basename(c["input"]): c["status"] for c in json.loads(report_path.read_text())["clips"]}
    assert statuses == {"clip0.mp4": "skipped", "clip1.mp4": "done", "clip2.mp4": "skipped", "clip3.mp4": "skipped"}
    for clip in clips:
        now = (out / clip.relative_to(src)).stat().st_mtime_ns
        assert (now != mtimes[clip]) == (clip == changed)


def test_options_and_model_decide_what_is_redone(tmp_path, rgb_model_dir):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a", "b"):
        make_clip(src / f"{name}.mp4", frames=5, audio=False)
    first = translate_folder(src, out, rgb_model_dir, devices=["cpu"], **FAST)
    assert [c.status for c in first.clips] == ["done", "done"]
    # Batch size and worker count change only the speed.
    same = translate_folder(src, out, rgb_model_dir, devices=["cpu"], workers=1, preset="ultrafast", batch_size=2)
    assert [c.status for c in same.clips] == ["skipped", "skipped"]
    other_crf = translate_folder(src, out, rgb_model_dir, devices=["cpu"], crf=30, **FAST)
    assert [c.status for c in other_crf.clips] == ["done", "done"]

    net = random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=1)
    retrained = save_checkpoint(tmp_path / "retrained", net,
                                ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)))
    new_model = translate_folder(src, out, retrained, devices=["cpu"], crf=30, **FAST)
    assert [c.status for c in new_model.clips] == ["done", "done"]

    (out / "a.mp4").unlink()  # a deleted output is made again
    deleted = translate_folder(src, out, retrained, devices=["cpu"], crf=30, **FAST)
    assert [c.status for c in deleted.clips] == ["done", "skipped"]
    forced = translate_folder(src, out, retrained, devices=["cpu"], crf=30, overwrite=True, **FAST)
    assert [c.status for c in forced.clips] == ["done", "done"]


def test_failed_clip_is_retried_and_foreign_files_kept(tmp_path, rgb_model_dir):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "broken.mp4").write_bytes(b"\x00" * 1000)
    make_clip(src / "theirs.mp4", frames=5, audio=False)
    (out / "theirs.mp4").write_bytes(b"someone else's file")
    first = translate_folder(src, out, rgb_model_dir, devices=["cpu"], **FAST)
    assert [(c.status, bool(c.error)) for c in first.clips] == [("failed", True), ("failed", True)]
    assert "overwrite=True" in first.clips[1].error
    assert (out / "theirs.mp4").read_bytes() == b"someone else's file"

    make_clip(src / "broken.mp4", frames=5, audio=False)  # fixed
    second = translate_folder(src, out, rgb_model_dir, devices=["cpu"], **FAST)
    assert [c.status for c in second.clips] == ["done", "failed"]


def test_unexpected_errors_are_one_line_and_the_batch_goes_on(tmp_path, rgb_model_dir, monkeypatch):
    import vidtrans.batch as batch

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c"):
        make_clip(src / f"{name}.mp4", frames=5, audio=False)
    real = batch.translate_video

    def flaky(src_path, dst, model, *args, **options):
        if src_path.name == "b.mp4":
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
        return real(src_path, dst, model, *args, **options)

    monkeypatch.setattr(batch, "translate_video", flaky)
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, devices=["cpu"], **FAST)
    assert [c.status for c in report.clips] == ["done", "failed", "done"]
    assert report.clips[1].error == "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    manifest = read_manifest(tmp_path / "out")
    assert manifest["b.mp4"]["status"] == "failed"
    assert manifest["b.mp4"]["error"] == report.clips[1].error


def test_clips_run_in_parallel_with_one_model_per_device(tmp_path, rgb_model_dir, monkeypatch):
    import vidtrans.models.translator as translator

    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        make_clip(src / f"{i}.mp4", frames=8, audio=False)
    built = []
    original_init = translator.Translator.__init__

    def counting_init(self, *args, **kwargs):
        built.append(kwargs.get("device"))
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(translator.Translator, "__init__", counting_init)

    class Watch(BatchListener):
        def __init__(self):
            self.in_flight, self.most, self.workers = 0, 0, set()

        def clip_started(self, worker, clip):
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.workers.add(worker)

        def clip_finished(self, worker, result):
            if worker:
                self.in_flight -= 1

    watch = Watch()
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, devices=["cpu"], workers=3, listener=watch,
                              **FAST)
    assert [c.status for c in report.clips] == ["done"] * 4
    assert len(built) == 1  # one model for the one device, shared by three workers
    assert watch.most >= 2 and len(watch.workers) >= 2


def test_discovery_patterns_ext_and_collisions(tmp_path, rgb_model_dir):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / ".hidden").mkdir()
    for name in ("a.mov", "a.mkv", "sub/B.MP4", ".hidden/x.mp4", "._a.mov", "notes.txt"):
        (src / name).write_bytes(b"")
    names = lambda paths: [p.relative_to(src).as_posix() for p in paths]  # noqa: E731
    assert names(find_clips(src)) == ["a.mkv", "a.mov", "sub/B.MP4"]
    assert names(find_clips(src, recursive=False)) == ["a.mkv", "a.mov"]
    assert names(find_clips(src, patterns=["*.mov"])) == ["a.mov"]
    assert names(find_clips(src, exclude=[src / "sub"])) == ["a.mkv", "a.mov"]

    make_clip(src / "a.mov", frames=5, audio=True)
    make_clip(src / "a.mkv", frames=5, audio=False)
    make_clip(src / "sub" / "B.MP4", frames=5, audio=False)
    report = translate_folder(src, tmp_path / "out", rgb_model_dir, devices=["cpu"], ext="mp4", **FAST)
    results = {os.path.relpath(c.input, src): c for c in report.clips}
    assert results["a.mkv"].status == "done" and results["a.mkv"].output == str(tmp_path / "out" / "a.mp4")
    assert results["a.mov"].status == "failed" and "same output as a.mkv" in results["a.mov"].error
    assert results["sub/B.MP4"].status == "done"
    assert_same_video(src / "a.mkv", tmp_path / "out" / "a.mp4")


def test_usage_errors_exit_2(tmp_path, rgb_model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no clips here")
    cases = {
        "missing": [tmp_path / "missing", "-o", tmp_path / "out"],
        "empty": [empty, "-o", tmp_path / "out"],
        "same folder": [empty, "-o", empty],
        "bad option": [empty, "-o", tmp_path / "out", "--workers", "many"],
    }
    for what, args in cases.items():
        result = cli(*args, "--model", rgb_model_dir, "--devices", "cpu")
        assert result.returncode == 2, (what, result.stderr)
        assert "Traceback" not in result.stderr
    with pytest.raises(BatchUsageError, match="workers"):
        make_clip(empty / "a.mp4", frames=3, audio=False)
        translate_folder(empty, tmp_path / "out", rgb_model_dir, workers=0)
    help_text = " ".join(cli("--help").stdout.split())
    assert "Exit status: 0" in help_text and "1 a clip failed" in help_text and "2 usage error" in help_text


def test_manifest_is_an_append_only_log(tmp_path):
    """One line per update; the last record of a clip wins; a torn last line (a write cut short) is
    ignored and rewritten away before the next record is appended."""
    path = tmp_path / MANIFEST_NAME
    with Manifest(tmp_path) as manifest:
        manifest.record("a.mp4", status="running", output="a.mp4")
        manifest.record("a.mp4", status="done", output="a.mp4", frames=5)
        manifest.record("sub/b.mp4", status="running", output="sub/b.mp4")
    expected = {"a.mp4": {"status": "done", "output": "a.mp4", "frames": 5},
                "sub/b.mp4": {"status": "running", "output": "sub/b.mp4"}}
    assert len(path.read_bytes().splitlines()) == 4  # the format line and three updates
    assert read_manifest(tmp_path) == expected

    with open(path, "ab") as f:
        f.write(b'{"clip":"sub/b.mp4","status":"do')
    assert read_manifest(tmp_path) == expected
    with Manifest(tmp_path) as manifest:
        assert manifest.clips == expected
        manifest.record("sub/b.mp4", status="done", output="sub/b.mp4", frames=3)
    assert read_manifest(tmp_path)["sub/b.mp4"] == {"status": "done", "output": "sub/b.mp4", "frames": 3}


def test_manifest_of_replaced_records_is_compacted_on_opening(tmp_path):
    path = tmp_path / MANIFEST_NAME
    with Manifest(tmp_path) as manifest:
        for attempt in range(200):  # a clip failing run after run
            manifest.record("a.mp4", status="failed", error=f"attempt {attempt}")
    assert len(path.read_bytes().splitlines()) == 201
    with Manifest(tmp_path) as manifest:
        assert manifest.clips == {"a.mp4": {"status": "failed", "error": "attempt 199"}}
    assert len(path.read_bytes().splitlines()) == 2
    assert read_manifest(tmp_path) == {"a.mp4": {"status": "failed", "error": "attempt 199"}}


def test_manifest_of_earlier_versions_is_taken_over(tmp_path):
    """The whole-JSON manifest of vidtrans before the log is read once, then replaced by the log."""
    clips = {"a.mp4": {"status": "done", "output": "a.mp4", "frames": 5}}
    legacy = tmp_path / LEGACY_MANIFEST_NAME
    legacy.write_text(json.dumps({"format": "vidtrans-batch-manifest", "version": 1, "clips": clips}))
    with Manifest(tmp_path) as manifest:
        assert manifest.clips == clips
    assert not legacy.exists()
    assert read_manifest(tmp_path) == clips


def test_unreadable_manifest_is_refused(tmp_path):
    # Another format (a newer vidtrans's): rewriting it would lose what it records. A damaged or
    # missing header is skipped like any damaged line (test_qa7_batch.py).
    (tmp_path / MANIFEST_NAME).write_text('{"format": "vidtrans-batch-manifest", "version": 3}\n')
    with pytest.raises(VidtransError, match="unreadable batch manifest.*version 3.*overwrite=True"):
        Manifest(tmp_path)
    with Manifest(tmp_path, fresh=True) as manifest:  # --overwrite starts a new one
        assert manifest.clips == {}
    assert read_manifest(tmp_path) == {}


def test_a_model_is_known_by_the_hash_of_its_weights(tmp_path, rgb_model_dir):
    """What a resumed batch compares: the card's record for a checkpoint folder, the file's own hash
    for an upstream .pth (whose card is inferred and holds none)."""
    weights = (rgb_model_dir / "model.safetensors").read_bytes()
    assert weights_sha256(rgb_model_dir) == hashlib.sha256(weights).hexdigest()
    assert weights_sha256(rgb_model_dir / "card.json") == weights_sha256(rgb_model_dir)
    pth = tmp_path / "latest_net_G.pth"
    torch.save(build_generator("resnet_6blocks", 3, 3, 8, "instance").state_dict(), pth)
    assert weights_sha256(pth) == hashlib.sha256(pth.read_bytes()).hexdigest()



class FirstAttemptLost:
    """Stands in for a Ray worker: the batch's first attempt at a clip writes its output where it
    may (as translate_video would publish it) and then the worker is lost before answering;
    later attempts translate, refusing an existing output without overwrite, as translate_video does."""

    def __init__(self, name, attempts: list[bool]):
        self.name, self.lost = name, None
        self.attempts = attempts  # each attempt's overwrite, shared by the workers of one batch

    def back(self, timeout):
        self.lost = None
        return True

    def translate(self, job, progress):
        self.attempts.append(job.overwrite)
        may_write = job.overwrite or not job.dst.exists()
        if len(self.attempts) == 1:
            if may_write:
                job.dst.write_bytes(b"output of the lost attempt")
            self.lost = "its node was lost"
            raise vidtrans.batch._WorkerLost(f"{self.name} died while translating the clip", self.lost)
        if not may_write:
            raise VidtransError(f"{job.dst}: already exists; choose another name or pass overwrite=True")
        job.dst.write_bytes(b"output of the retry")
        return {"frames": 3, "seconds": 0.1, "frames_without_person": None, "warning": None}


@pytest.mark.parametrize("someone_elses_file", [False, True])
def test_a_clip_whose_worker_was_lost_after_publishing_it_is_retried_onto_its_own_output(tmp_path, someone_elses_file):
    """A Ray worker can publish a clip's output and be lost before its answer arrives: the retry on
    another worker replaces that output (this batch's own) instead of failing on "already exists";
    a file that was someone else's before the clip began stays refused and untouched."""
    from vidtrans.batch import _Job, _Runner, fingerprint

    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    src = tmp_path / "in" / "a.mp4"
    src.write_bytes(b"a clip")
    if someone_elses_file:
        (out / "a.mp4").write_bytes(b"someone else's")
    job = _Job("a.mp4", src, out / "a.mp4", "a.mp4", fingerprint(src), overwrite=False)
    attempts = []
    with Manifest(out, fresh=True) as manifest:
        workers = [FirstAttemptLost("w1", attempts), FirstAttemptLost("w2", attempts)]
        results = _Runner(workers, manifest, BatchListener(), {}, "sha").run([job])
    if someone_elses_file:
        assert attempts == [False, False] and results["a.mp4"].status == "failed"
        assert (out / "a.mp4").read_bytes() == b"someone else's"
    else:
        assert attempts == [False, True] and results["a.mp4"].status == "done", results["a.mp4"].error
        assert (out / "a.mp4").read_bytes() == b"output of the retry"
        assert read_manifest(out)["a.mp4"]["status"] == "done"
