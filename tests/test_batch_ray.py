"""`vidtrans batch --ray`: the same batch on a real two-node Ray cluster started here (skipped where
Ray is not installed), and the one-line install hint where it is not."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.media import decode_all, make_clip, two_node_ray_cluster
from vidtrans.batch import MANIFEST_NAME, BatchListener, BatchUsageError, read_manifest, translate_folder
from tests.test_batch import cli

FAST = dict(preset="ultrafast", batch_size=4)


@pytest.fixture(scope="module")
def cluster():
    """The address of a head and a second node, one CPU each, started once for the module (about
    6 s on 2 cores) and always stopped."""
    pytest.importorskip("ray.cluster_utils")
    with two_node_ray_cluster("vt-ray-") as started:
        yield started.address


def good_and_broken(src):
    (src / "sub").mkdir(parents=True)
    good = [make_clip(src / "a.mp4", frames=8, audio=True).path,
            make_clip(src / "sub" / "b.mkv", frames=6, audio=False).path,
            make_clip(src / "c.mp4", frames=5, audio=True).path]
    (src / "text.mp4").write_text("this is not a video\n")
    (src / "sub" / "truncated.mp4").write_bytes(good[0].read_bytes()[:2048])
    return good


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name)


class Watch(BatchListener):
    """The workers that started clips, and each clip's last count of translated frames."""

    def __init__(self):
        self.workers, self.translated = set(), {}

    def clip_started(self, worker, clip):
        self.workers.add(worker)

    def clip_progress(self, worker, clip, done, total, phase):
        if phase == "translating":
            self.translated[clip] = done


def test_good_and_broken_clips_on_two_nodes_match_local_mode(cluster, tmp_path, rgb_model_dir):
    """Good clips come out with exactly local mode's frames, frame count and timestamps (the
    same model on the same kind of CPU); broken ones fail with local mode's reasons; both nodes work."""
    src = tmp_path / "in"
    good = good_and_broken(src)
    local = translate_folder(src, tmp_path / "local", rgb_model_dir, devices=["cpu"], **FAST)
    watch = Watch()
    remote = translate_folder(src, tmp_path / "ray", rgb_model_dir, ray=cluster, listener=watch, **FAST)

    assert [(c.input, c.status, c.error) for c in remote.clips] == [(c.input, c.status, c.error) for c in local.clips]
    assert sorted(os.path.basename(c.input) for c in remote.failed) == ["text.mp4", "truncated.mp4"]
    assert all(c.error for c in remote.failed) and remote.model == local.model
    for clip in good:
        rel = clip.relative_to(src)
        local_frames, local_times = decode_all(tmp_path / "local" / rel)
        frames, times = decode_all(tmp_path / "ray" / rel)
        assert len(frames) == len(local_frames) == len(decode_all(clip)[0])
        assert times == local_times
        assert all((a == b).all() for a, b in zip(frames, local_frames))
    # One worker per CPU slot, one slot per node: each clip went to a worker on one of two nodes.
    assert len(watch.workers) == 2 and all("cpu on" in name for name in watch.workers), watch.workers
    # The display counted every frame, as in local mode.
    assert watch.translated == {c.relative_to(src).as_posix(): len(decode_all(c)[0]) for c in good}
    # The manifests agree, so either mode resumes the other's batch.
    local_records, remote_records = read_manifest(tmp_path / "local"), read_manifest(tmp_path / "ray")
    assert {k: (r["status"], r["options"], r["model_sha256"]) for k, r in remote_records.items()} == \
        {k: (r["status"], r["options"], r["model_sha256"]) for k, r in local_records.items()}
    resumed = translate_folder(src, tmp_path / "ray", rgb_model_dir, devices=["cpu"], **FAST)
    assert [c.status for c in resumed.clips] == [c.status.replace("done", "skipped") for c in local.clips]


def test_kill_the_driver_and_rerun(cluster, tmp_path, rgb_model_dir):
    """SIGKILL the driver once a clip is recorded done; the rerun skips what was finished (same
    mtimes), translates the rest, leaves no temporary files, reports the broken clip: exit 1."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    clips = [make_clip(src / f"clip{i}.mp4", frames=40, size=(64, 48), audio=True).path for i in range(6)]
    (src / "broken.mp4").write_bytes(os.urandom(4096))
    args = [src, "-o", out, "--model", rgb_model_dir, "--ray", cluster, "--preset", "ultrafast"]

    def done() -> list[str]:
        manifest = read_manifest(out) if (out / MANIFEST_NAME).exists() else {}
        return [rel for rel, record in manifest.items() if record["status"] == "done"]

    process = subprocess.Popen([sys.executable, "-m", "vidtrans", "batch", *map(str, args), "--batch-size", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240  # a bound for a broken setup only: the loop ends on the manifest
        while time.time() < deadline and process.poll() is None and not done():
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # Read once the driver is dead: another clip may have been recorded done since the last look.
    done_at_kill = done()
    assert 1 <= len(done_at_kill) < len(clips), "the first run should be killed mid-way"
    finished = {out / rel: (out / rel).stat().st_mtime_ns for rel in done_at_kill}

    report_path = tmp_path / "report.json"
    rerun = cli(*args, "--report", report_path)  # the entry point in this process: only the killed run needs its own
    assert rerun.returncode == 1, rerun.stderr
    assert "Traceback" not in rerun.stderr and "broken.mp4" in rerun.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST_NAME, *(c.name for c in clips)])
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    statuses = {os.path.basename(c["input"]): c["status"] for c in json.loads(report_path.read_text())["clips"]}
    assert statuses == {"broken.mp4": "failed", **{c.name: "skipped" if out / c.name in finished else "done"
                                                   for c in clips}}
    for clip in clips:
        frames, times = decode_all(out / clip.name)
        assert len(frames) == 40 and times == decode_all(clip)[1]


def test_sigterm_stops_cleanly_as_without_ray(cluster, tmp_path, rgb_model_dir):
    """ray.init replaces the SIGTERM handler; the batch's own is kept: exit 143, clips in flight
    stopped on their workers and their temporary files deleted."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    first = make_clip(src / "0.mp4", frames=300, size=(64, 48), audio=False).path
    for i in (1, 2):  # the same clip under three names: each is still a clip of its own to translate
        shutil.copy(first, src / f"{i}.mp4")
    process = subprocess.Popen([sys.executable, "-m", "vidtrans", "batch", str(src), "-o", str(out), "--model",
                                str(rgb_model_dir), "--ray", cluster, "--batch-size", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None and not (out.is_dir() and leftovers(out)):
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "SIGTERM received" not in stderr
    assert leftovers(out) == []


def test_more_workers_than_the_cluster_has_is_refused(cluster, tmp_path, rgb_model_dir):
    """Two CPUs, so a third worker would wait forever (with its clip): refused before any work."""
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=3, audio=False)
    with pytest.raises(BatchUsageError, match="workers 3: the Ray cluster has 2 CPUs"):
        translate_folder(src, tmp_path / "out", rgb_model_dir, ray=cluster, workers=3)
    assert not (tmp_path / "out").exists()


def test_ray_not_installed_says_how_to_install_it(tmp_path, rgb_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as without the extra
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=3, audio=False)
    result = cli(src, "-o", tmp_path / "out", "--model", rgb_model_dir, "--ray", "auto")
    assert result.returncode == 2
    assert result.stderr == "vidtrans: error: --ray needs Ray, which is not installed; pip install 'vidtrans[ray]'\n"
    assert not (tmp_path / "out").exists()


def test_devices_with_ray_are_whole_gpus_or_cpus(tmp_path, rgb_model_dir):
    result = cli(tmp_path, "-o", tmp_path / "out", "--model", rgb_model_dir, "--ray", "auto", "--devices",
                 "cuda:0,cuda:1")
    if "not installed" in result.stderr:
        pytest.skip("Ray is not installed")
    assert result.returncode == 2
    assert "--devices must be auto, cpu or cuda with --ray" in result.stderr
