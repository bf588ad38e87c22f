"""QA round 23 on live mode: a file camera cut short while it plays, `--serve` on all interfaces, and
hostile camera specs, serve hosts and flags (a URL's password, --no-normalize for an RGB model)."""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import one_line, run_cli
from tests.media import decode_all, make_clip
from tests.test_cut_short import with_index_first
from tests.test_live import FakeModel
from vidtrans.errors import UsageError, VidtransError
from vidtrans.live import run_live
from vidtrans.live.process import FrameProcessor
from vidtrans.video.camera import Camera


def cut_short(path, share=0.6) -> None:
    os.truncate(path, int(path.stat().st_size * share))


@pytest.fixture
def clip(tmp_path):
    """A camera file with its index first (as downloads are): cut short, it still opens."""
    whole = make_clip(tmp_path / "whole.mp4", frames=12, size=(64, 48), fps=30, audio=False).path
    return with_index_first(whole, tmp_path / "cam.mp4")


def test_a_file_camera_cut_short_while_it_plays_fails_naming_it_and_keeps_what_was_shown(tmp_path, clip,
                                                                                        rgb_model_dir, monkeypatch):
    """Another program cuts the camera's file short (or rewrites it) after live opened it: its frames
    ended early, silently, as the file's end (exit 0, 'end of file'). It is a camera that failed:
    one line naming the file, exit 1, the recording and stats of what was shown kept."""
    warm_up = FrameProcessor.warm_up

    def cut_then_warm_up(self):
        cut_short(clip)  # the camera is open: this is the file changing under it
        warm_up(self)

    monkeypatch.setattr(FrameProcessor, "warm_up", cut_then_warm_up)
    record, stats = tmp_path / "rec.mp4", tmp_path / "stats.json"
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", clip, "--no-window",
                     "--record", record, "--stats", stats)
    assert result.returncode == 1 and result.exception is None, result.stderr
    started, line = result.stderr.strip().splitlines()  # the session's first line, then its error
    assert started.startswith("live: ") and line.startswith(f"vidtrans: error: {clip}: changed while live played it")
    shown = json.loads(stats.read_text())["frames"]
    assert shown == len(decode_all(record)[0])
    assert json.loads(stats.read_text())["ended"].startswith("camera failed: ")


def test_a_file_camera_cut_short_between_loops_fails_too(clip):
    def on_frame(frame, stats):
        if stats.frames == 14:  # in the second pass
            cut_short(clip, 0.9)

    with pytest.raises(VidtransError, match=rf"^{clip}: changed while live played it"):
        run_live(FakeModel(), Camera(clip, loop=True), window=False, max_frames=60, on_frame=on_frame)


def test_a_file_camera_cut_short_before_live_opens_it_ends_as_its_file_ends(clip):
    """What is there when live opens the file is what it plays, as `run` translates it."""
    cut_short(clip)
    stats = run_live(FakeModel(), clip, window=False)
    assert stats.ended == "end of file" and 0 < stats.frames < 12


def test_serve_on_all_interfaces_tells_a_url_that_opens_and_that_it_listens_on_all(clip, caplog):
    urls = []

    def on_start(info):
        urls.append(info["url"])
        with urllib.request.urlopen(info["url"], timeout=10) as page:
            assert b"stream.mjpg" in page.read()

    with caplog.at_level("WARNING", logger="vidtrans"):
        run_live(FakeModel(), clip, window=False, serve="0.0.0.0:0", max_frames=1, on_start=on_start)
    [url] = urls
    assert url.startswith("http://127.0.0.1:")
    port = url.rstrip("/").rpartition(":")[2]
    [said] = [r.getMessage() for r in caplog.records if "all" in r.getMessage()]
    assert f"serve 0.0.0.0:{port} listens on all this machine's networks" in said
    assert f"http://{os.uname().nodename}:{port}/" in said


def test_serve_on_all_interfaces_through_the_cli_says_so_in_one_warning(clip, rgb_model_dir):
    result = run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", clip, "--no-window",
                     "--max-frames", "1", "--serve", "0:0")
    assert result.returncode == 0, result.stderr
    assert "watch at http://127.0.0.1:" in result.stderr and "http://0:" not in result.stderr
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning:")]
    assert "--serve 0:" in warning and "listens on all this machine's networks" in warning


def test_a_camera_file_name_too_long_for_the_file_system_is_one_line(tmp_path, rgb_model_dir):
    name = tmp_path / ("a" * 300 + ".mp4")
    line = one_line(run_cli("live", "--model", rgb_model_dir, "--camera", name, "--no-window"), 1)
    assert "file name too long" in line.lower() and "Traceback" not in line and len(line) < 300


def test_a_long_serve_host_is_shortened_in_its_message(clip, rgb_model_dir):
    host = "h" * 300
    line = one_line(run_cli("live", "--model", rgb_model_dir, "--camera", clip, "--no-window", "--serve",
                            f"{host}:8000"), 2)
    assert "cannot listen on host" in line and host not in line and len(line) < 400


def test_no_normalize_for_an_rgb_model_is_refused_as_run_refuses_it(clip, rgb_model_dir, tmp_path):
    """A flag that would do nothing is a usage error (README); live took it silently."""
    stats = tmp_path / "stats.json"
    line = one_line(run_cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", clip, "--no-window",
                            "--no-normalize", "--stats", stats), 2)
    assert "--no-normalize turns off fitting the dancer to a pose model's target" in line
    assert "drop --no-normalize" in line and not stats.exists()


def test_a_stream_url_password_is_not_printed(rgb_model_dir):
    """What live prints ends up in terminals, logs and bug reports: the URL without its password."""
    with socket.socket() as closed:  # a port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    line = one_line(run_cli("live", "--model", rgb_model_dir, "--camera", f"http://cam:s3cret@127.0.0.1:{port}/x",
                            "--no-window"), 1)
    assert f"http://cam:***@127.0.0.1:{port}/x: cannot open it" in line and "s3cret" not in line


@pytest.mark.parametrize("source", [True, None, 1.0, b"0"])
def test_a_camera_that_is_no_index_path_or_url_is_refused_naming_it(source):
    """True was taken for device 1, None and 1.0 for files named so."""
    with pytest.raises(UsageError, match=rf"^camera {re.escape(repr(source))}: give a device index"):
        Camera(source)


def test_a_numpy_integer_is_a_device_index():
    assert Camera(np.int64(2)).name == "camera 2"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="open files listed in /proc")
def test_an_opened_camera_whose_session_is_refused_is_closed(clip, rgb_model_dir):
    """run_live closes the camera it is given; also when its checks refuse the session (the CLI
    opens the camera before the model loads, and the model decides what is refused)."""
    import vidtrans

    model = vidtrans.load_model(rgb_model_dir, device="cpu")
    camera = Camera(clip).open()
    with pytest.raises(UsageError, match="drop normalize=False"):
        run_live(model, camera, window=False, normalize=False)
    assert [fd for fd in Path("/proc/self/fd").iterdir() if fd.resolve() == clip.resolve()] == []


def test_a_session_that_showed_every_frame_asked_for_ends_normally_though_the_file_changed(tmp_path):
    """The camera failed just after the last frame asked for was shown: the stats said the session
    ended at --max-frames and the call raised the camera's error all the same (the CLI exit 1).
    Frames 0.5 s apart: the loop takes each before the next (none dropped, even on a busy machine)."""
    whole = make_clip(tmp_path / "whole.mp4", frames=3, size=(64, 48), fps=2, audio=False).path
    clip = with_index_first(whole, tmp_path / "cam.mp4")
    camera = Camera(clip).open()
    cut_short(clip, 0.9)  # read whole at opening (the file is small): all 3 frames play, then the change is found
    stats = run_live(FakeModel(), camera, window=False, max_frames=3, stats=tmp_path / "s.json")
    assert stats.frames == 3 and stats.ended == "3 frames shown (max_frames)"
    assert json.loads((tmp_path / "s.json").read_text())["ended"] == stats.ended


def test_a_file_camera_replaced_by_a_new_version_while_playing_plays_to_its_end(tmp_path):
    """A program saving a new version writes it elsewhere and renames it over the old: the open file
    is still read whole, so the session ends at its end as usual (it failed as "changed while live
    played it")."""
    whole = make_clip(tmp_path / "whole.mp4", frames=3, size=(64, 48), fps=10, audio=False).path
    clip = with_index_first(whole, tmp_path / "cam.mp4")
    camera = Camera(clip).open()
    newer = make_clip(tmp_path / "newer.mp4", frames=5, size=(64, 48), fps=10, audio=False).path
    os.replace(newer, clip)
    stats = run_live(FakeModel(), camera, window=False)
    assert stats.ended == "end of file" and camera.error is None
