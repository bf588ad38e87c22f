"""QA pass 13, `batch --ray` on a two-node cluster started here (skipped where Ray is not
installed): a lost worker fails none of the clips it never had, the output folder is locked before
the cluster is asked for workers, a wait for the cluster's CPUs is told, messages read as in local
mode; and an address that does not answer ends in one line, interruptible, in bounded time."""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.media import decode_all, make_clip, two_node_ray_cluster
from vidtrans.batch import BatchListener, _lock_folder, translate_folder
from vidtrans.errors import VidtransError

ray = pytest.importorskip("ray")
FAST = dict(preset="ultrafast", batch_size=1)
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node, one CPU each (as in test_batch_ray): two workers on two nodes."""
    with two_node_ray_cluster("vt-ray13-") as started:
        yield started


class Listen(BatchListener):
    """The notices, and `act` called once at the first translated frame of any clip."""

    def __init__(self, act=None):
        self.notices, self._act, self._lock = [], act, threading.Lock()

    def clip_progress(self, worker, clip, done, total, phase):
        with self._lock:
            act, self._act = (self._act, None) if phase == "translating" and done >= 1 else (None, self._act)
        if act:
            act()

    def notice(self, text, worker=""):
        self.notices.append(text)


def clips(src, count, frames=30):
    src.mkdir()
    return [make_clip(src / f"c{i}.mp4", frames=frames, size=(64, 48), audio=False).path for i in range(count)]


def actor_processes(ancestor: int = os.getpid()) -> list[int]:
    """The batch's Ray actors among the descendants of `ancestor`: this process, whose children are
    the cluster's raylets, or a node's raylet, whose children are that node's workers."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [ancestor]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            try:
                if Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"ray::_ClipActor"):
                    found.append(child)
            except OSError:
                continue
    return found


def assert_all_translated(report, sources, frames):
    assert [c.status for c in report.clips] == ["done"] * len(sources), [c.error for c in report.failed]
    for clip in report.clips:
        assert len(decode_all(clip.output)[0]) == frames


def test_a_killed_worker_fails_no_clip_it_never_had(cluster, tmp_path, rgb_model_dir):
    """One actor killed (out of memory, say) mid-clip: its clip goes to another worker, Ray restarts
    it, and no other clip fails (they failed at once, "died while translating", never sent)."""
    sources = clips(tmp_path / "in", 5)

    def kill_one_actor():
        os.kill(actor_processes()[0], signal.SIGKILL)

    listen = Listen(kill_one_actor)
    report = translate_folder(tmp_path / "in", tmp_path / "out", rgb_model_dir, ray=cluster.address, listener=listen,
                              **FAST)
    assert_all_translated(report, sources, 30)
    assert len(listen.notices) == 1 and " was lost while translating " in listen.notices[0], listen.notices
    assert listen.notices[0].endswith("; the clip goes to another worker")


def test_a_lost_node_leaves_its_clips_to_the_other_worker(cluster, tmp_path, rgb_model_dir):
    """The second node gone with its actor (a machine lost): the actor cannot come back (the head's
    CPU is held by the other one), which translates every clip, the lost one's too; the batch ends."""
    sources = clips(tmp_path / "in", 4)
    second = cluster.list_all_nodes()[1]

    def lose_the_second_node():
        actors = actor_processes(second.all_processes["raylet"][0].process.pid)
        cluster.remove_node(second, allow_graceful=False)
        for pid in actors:
            os.kill(pid, signal.SIGKILL)

    listen = Listen(lose_the_second_node)
    try:
        report = translate_folder(tmp_path / "in", tmp_path / "out", rgb_model_dir, ray=cluster.address,
                                  listener=listen, **FAST)
    finally:
        cluster.add_node(num_cpus=1)  # for the tests after this one
        cluster.wait_for_nodes()
    assert_all_translated(report, sources, 30)
    assert len(listen.notices) == 1 and " was lost while translating " in listen.notices[0], listen.notices


class Holder:
    def ready(self):
        return True


def run_in_thread(call):
    """Start `call` on a thread; (the thread, [its result or error])."""
    outcome = []

    def run():
        try:
            outcome.append(call())
        except Exception as e:  # noqa: BLE001 - looked at by the test
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_the_folder_lock_comes_before_the_cluster_and_a_wait_for_cpus_is_told(cluster, tmp_path, rgb_model_dir):
    """With every CPU of the cluster held by another job: a batch into a folder another batch holds is
    refused at once (it waited silently for the CPUs, then was refused or skipped everything); a
    batch into a free folder says it waits, and goes on once the CPUs are free."""
    src, taken = tmp_path / "in", tmp_path / "taken"
    sources = clips(src, 2, frames=4)
    taken.mkdir()
    held = _lock_folder(taken)  # as another batch holds it
    ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
    holders = [ray.remote(num_cpus=1)(Holder).remote() for _ in range(2)]  # a CPU on each node
    threads = []
    try:
        ray.get([holder.ready.remote() for holder in holders])
        refused, outcome = run_in_thread(lambda: translate_folder(src, taken, rgb_model_dir, ray=cluster.address,
                                                                  **FAST))
        threads.append(refused)
        refused.join(15)
        assert not refused.is_alive(), "the batch waited for the cluster instead of being refused"
        assert isinstance(outcome[0], VidtransError) and "another vidtrans batch is writing there" in str(outcome[0])

        listen = Listen()
        waiting, outcome = run_in_thread(lambda: translate_folder(src, tmp_path / "free", rgb_model_dir,
                                                                  ray=cluster.address, listener=listen, **FAST))
        threads.append(waiting)
        deadline = time.monotonic() + 15
        while not listen.notices and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listen.notices == ["waiting for 2 CPUs of the Ray cluster for the workers (0 free now; other jobs "
                                  "hold the rest)"]
        for holder in holders:
            ray.kill(holder)
        waiting.join(120)
        assert_all_translated(outcome[0], sources, 4)
    finally:
        for holder in holders:  # lets a batch that waits for the CPUs go on, to its end
            ray.kill(holder)
        os.close(held)
        for thread in threads:
            thread.join(120)
        ray.shutdown()


def test_messages_read_as_in_local_mode(cluster, tmp_path, rgb_model_dir, monkeypatch, caplog):
    """Relative paths stay relative (the actors work in this folder), as local mode gives them; Ray's
    notice that token authentication is on is left out, its other warnings are not."""
    monkeypatch.chdir(tmp_path)
    Path("in").mkdir()
    make_clip(Path("in", "a.mp4"), frames=2, audio=False)
    Path("in", "broken.mp4").write_bytes(os.urandom(2048))
    local = translate_folder("in", "local", rgb_model_dir, devices="cpu", **FAST)
    remote = translate_folder("in", "remote", rgb_model_dir, ray=cluster.address, **FAST)
    assert [(c.status, c.error) for c in remote.clips] == [(c.status, c.error) for c in local.clips]
    assert remote.failed[0].error.startswith("in/broken.mp4: not a readable video file")

    token_setup = logging.getLogger("ray._private.authentication.authentication_token_setup")
    caplog.clear()
    token_setup.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.")
    token_setup.warning("Token authentication is disabled for this Ray cluster. Anyone with network access ...")
    assert [m.split(" for ")[0] for m in caplog.messages] == ["Token authentication is disabled"]


def test_a_model_name_the_nodes_cannot_resolve_says_vidtrans_models_counts_there(cluster, tmp_path, rgb_model_dir,
                                                                                 monkeypatch):
    """Resolved here through VIDTRANS_MODELS, which the nodes' raylets were started without."""
    monkeypatch.setenv("VIDTRANS_MODELS", str(rgb_model_dir.parent))
    src = tmp_path / "in"
    src.mkdir()
    make_clip(src / "a.mp4", frames=2, audio=False)
    with pytest.raises(VidtransError) as refused:
        translate_folder(src, tmp_path / "out", rgb_model_dir.name, ray=cluster.address, **FAST)
    assert f"model '{rgb_model_dir.name}' not found" in str(refused.value)
    assert "set VIDTRANS_MODELS in the environment ray start runs in on every node" in str(refused.value)
    assert not (tmp_path / "out").exists()


# --- addresses that do not answer: the vidtrans command in a process of its own, no cluster -------------------


@pytest.fixture
def mute_server():
    """A port that takes TCP connections and never answers (something other than a Ray head), on
    every interface: Ray connects to 127.0.0.1 by this machine's address. (port, connections taken)."""
    server = socket.create_server(("0.0.0.0", 0))
    taken = []

    def accept():
        while True:
            try:
                taken.append(server.accept()[0])
            except OSError:  # closed
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], taken
    server.close()
    for connection in taken:
        connection.close()


def batch_process(tmp_path, address, *python):
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    make_clip(src / "a.mp4", frames=2, audio=False)
    argv = ["vidtrans", "batch", str(src), "-o", str(tmp_path / "out"), "--model", "pose2person", "--ray", address]
    code = ";".join(["import runpy, sys", *python, f"sys.argv = {argv!r}", "runpy.run_module('vidtrans', "
                     "run_name='__main__')"])

    def default_signals():  # a shell's background job ignores SIGINT: as in a terminal instead
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)

    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_signals, cwd=REPO)


def batch_finished(tmp_path, address, *python) -> tuple[int, str]:
    """`batch_process` run to its end (a minute at most): its exit code and stderr."""
    process = batch_process(tmp_path, address, *python)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stderr


def test_a_closed_port_is_one_line_at_once(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    started = time.monotonic()
    returncode, stderr = batch_finished(tmp_path, f"127.0.0.1:{port}")
    assert returncode == 1 and time.monotonic() - started < 30, stderr
    assert stderr == (f"vidtrans: error: --ray 127.0.0.1:{port}: cannot use this Ray cluster (127.0.0.1:{port}: "
                      "Connection refused); give the head's HOST:PORT, port 6379 unless ray start --head --port said "
                      "otherwise, or start a cluster with ray start --head\n")
    assert not (tmp_path / "out").exists()


def test_an_address_where_something_else_answers_is_refused_before_ray_connects(tmp_path, mute_server):
    """A port that takes connections but is no Ray head (no gRPC handshake) is one line, the last: Ray's
    native client, once started, went on printing "Failed to connect to GCS" after vidtrans's error."""
    port, _ = mute_server
    started = time.monotonic()
    returncode, stderr = batch_finished(tmp_path, f"127.0.0.1:{port}", "import vidtrans.batch",
                                        "vidtrans.batch.RAY_CONNECT_SECONDS = 2")
    assert returncode == 1 and time.monotonic() - started < 40, stderr
    assert stderr == (f"vidtrans: error: --ray 127.0.0.1:{port}: cannot use this Ray cluster (something answers at "
                      f"127.0.0.1:{port}, but not as a Ray head does (no gRPC handshake within 2 s)); give the "
                      "head's HOST:PORT, port 6379 unless ray start --head --port said otherwise, or start a cluster "
                      "with ray start --head\n")
    assert not (tmp_path / "out").exists()


def test_ray_init_that_never_connects_gives_up_in_bounded_time(tmp_path, mute_server):
    """Where the handshake passes but ray.init still waits (the check cannot be made with Ray's TLS),
    vidtrans gives up after RAY_INIT_SECONDS with its one line (Ray's native client, still trying,
    may print after it)."""
    port, _ = mute_server
    returncode, stderr = batch_finished(tmp_path, f"127.0.0.1:{port}", "import vidtrans.batch",
                                        "vidtrans.batch.RAY_INIT_SECONDS = 3",
                                        "vidtrans.batch._speaks_grpc = lambda endpoint, seconds: True")
    assert returncode == 1, stderr
    ours = [line for line in stderr.splitlines() if line.startswith("vidtrans:")]
    assert ours == [f"vidtrans: error: --ray 127.0.0.1:{port}: cannot use this Ray cluster (no Ray cluster answered "
                    f"at 127.0.0.1:{port} within 3 s); give the head's HOST:PORT, port 6379 unless ray start --head "
                    "--port said otherwise"], stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_ray_connects_stops_as_everywhere(tmp_path, mute_server, signum, code):
    """Sent once ray.init is trying the address (its second connection, after vidtrans's own check):
    the command stops at once, as any other does (SIGTERM was Ray's: exit 15, ~30 s later)."""
    port, taken = mute_server
    process = batch_process(tmp_path, f"127.0.0.1:{port}", "import vidtrans.batch",
                            "vidtrans.batch._speaks_grpc = lambda endpoint, seconds: True")
    try:
        deadline = time.monotonic() + 60
        while len(taken) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signum)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code and time.monotonic() - sent < 10, stderr
    assert stderr.splitlines()[-1] == "vidtrans: interrupted"
    assert not (tmp_path / "out").exists()
