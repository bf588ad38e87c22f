"""Outputs appear complete or not at all, and never replace a file nobody allowed them to replace."""

import os
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from vidtrans import atomic
from vidtrans.atomic import OutputClaim, check_destination, publish, temp_path, write_atomically
from vidtrans.errors import VidtransError, first_line
from vidtrans.video import VideoWriter


def _writer(dst, overwrite=False):
    return VideoWriter(dst, 32, 32, time_base=Fraction(1, 25), fps=25, overwrite=overwrite)


def test_second_writer_of_the_same_output_is_refused_and_the_first_completes(tmp_path):
    dst = tmp_path / "out.mp4"
    first = _writer(dst)
    first.write(np.full((32, 32, 3), 200, np.uint8), 0)
    with pytest.raises(VidtransError, match="this process is already writing this file"):
        _writer(dst, overwrite=True)  # even --overwrite does not let two writers share one output
    first.close()
    assert dst.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    with pytest.raises(VidtransError, match="already exists"):
        _writer(dst)


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path):
    dst = tmp_path / "out.mp4"
    writer = _writer(dst)
    writer.write(np.zeros((32, 32, 3), np.uint8), 0)
    dst.write_bytes(b"somebody else's file")  # e.g. another program, or a vidtrans without the lock
    with pytest.raises(VidtransError, match="appeared while"):
        writer.close()
    assert dst.read_bytes() == b"somebody else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial file, no lock


def test_publish_with_overwrite_replaces_and_without_refuses(tmp_path):
    dst = tmp_path / "a.json"
    dst.write_text("old")
    tmp = temp_path(dst)
    tmp.write_text("new")
    with pytest.raises(VidtransError):
        publish(tmp, dst)
    assert dst.read_text() == "old" and not tmp.exists()
    tmp = temp_path(dst)
    tmp.write_text("new")
    publish(tmp, dst, overwrite=True)
    assert dst.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


@pytest.mark.parametrize("mode", [0o600, 0o444, 0o640])
def test_a_replaced_file_keeps_its_permissions_and_a_new_one_gets_the_usual(tmp_path, mode):
    # A private (or read-only) output replaced with --overwrite must not become readable by all.
    dst, new = tmp_path / "a.mp4", tmp_path / "b.mp4"
    dst.write_text("old")
    dst.chmod(mode)
    for path in (dst, new):
        tmp = temp_path(path)
        tmp.write_text("new")
        publish(tmp, path, overwrite=True)
    umask = os.umask(0)
    os.umask(umask)
    assert dst.read_text() == "new" and dst.stat().st_mode & 0o777 == mode
    assert new.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_atomically_leaves_nothing_when_the_writer_fails(tmp_path):
    dst = tmp_path / "stats.json"

    def fails(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(dst, fails, overwrite=False)
    assert list(tmp_path.iterdir()) == []
    write_atomically(dst, lambda f: f.write(b"{}"), overwrite=False)
    assert dst.read_bytes() == b"{}"
    with pytest.raises(VidtransError, match="already exists"):
        write_atomically(dst, lambda f: f.write(b"[]"), overwrite=False)
    with pytest.raises(VidtransError, match="overwrite the input"):
        write_atomically(dst, lambda f: f.write(b"[]"), overwrite=True, inputs=[tmp_path / "x", dst])
    assert dst.read_bytes() == b"{}"


def test_claims_are_released_and_can_be_taken_again(tmp_path):
    dst = tmp_path / "out.mp4"
    with OutputClaim(dst):
        with pytest.raises(VidtransError):
            OutputClaim(dst)
    assert list(tmp_path.iterdir()) == []
    with OutputClaim(dst):
        pass


def test_long_output_names_fit_the_temporary_name(tmp_path):
    check_destination(tmp_path / ("x" * 240 + ".mp4"), None, overwrite=False)
    tmp = temp_path(tmp_path / ("x" * 240 + ".mp4"))
    assert len(tmp.name) < 255 and tmp.suffix == ".mp4"


def test_first_line_is_one_clean_line():
    assert first_line(RuntimeError("\x1b[1mWeights only load failed.\x1b[0m\n\nMore advice")) == "Weights only load failed."
    assert first_line(ValueError("")) == "ValueError"
    assert len(first_line(ValueError("y" * 1000))) == 300


def test_an_interrupt_anywhere_in_making_the_files_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C can land between creating a file and remembering it (right after os.open returns):
    what the process made is still removed, and a lock another process holds is not."""

    real_open, interrupts = os.open, []

    def interrupted_open(*args, **kwargs):
        fd = real_open(*args, **kwargs)
        if interrupts:  # one signal, as the CLI turns only the first into KeyboardInterrupt
            interrupts.pop()
            raise KeyboardInterrupt  # the file exists, its descriptor is lost with the interrupt
        return fd

    dst = tmp_path / "out.mp4"
    monkeypatch.setattr(atomic.os, "open", interrupted_open)
    for make in (temp_path, OutputClaim):
        interrupts.append(1)
        with pytest.raises(KeyboardInterrupt):
            make(dst)
    monkeypatch.setattr(atomic.os, "open", real_open)
    atomic.remove_unfinished()
    assert list(tmp_path.iterdir()) == []
    with OutputClaim(dst):  # held: removing what is unfinished leaves another holder's lock alone
        lock = next(tmp_path.iterdir())
        atomic.remove_if_unheld(lock)
        assert lock.exists()
    writer = VideoWriter(dst, 32, 32, time_base=Fraction(1, 25), fps=25)
    atomic.remove_unfinished()  # what cli.main runs at exit, e.g. after an interrupt mid-write
    assert list(tmp_path.iterdir()) == []
    writer.abort()


@pytest.fixture
def ending_process(monkeypatch):
    """The final clean-up's state as a fresh process has it, restored after the test (it refuses
    every new file for good)."""
    monkeypatch.setattr(atomic, "_closed", threading.Event())
    monkeypatch.setattr(atomic, "_making", threading.RLock())


def test_no_file_is_made_after_the_final_clean_up(tmp_path, ending_process):
    # A stopped batch exits while its clips' threads still run: one reaching its first frame after
    # the clean-up made its output's temporary and lock files, which nothing removed any more.
    atomic.remove_unfinished(final=True)
    dst = tmp_path / "out.mp4"
    for make in (temp_path, OutputClaim, lambda d: VideoWriter(d, 32, 32, time_base=Fraction(1, 25), fps=25),
                 lambda d: write_atomically(d.with_suffix(".json"), lambda f: f.write(b"{}"), overwrite=False)):
        with pytest.raises(VidtransError, match="stopping"):
            make(dst)
    assert list(tmp_path.iterdir()) == []


def test_the_final_clean_up_waits_for_a_file_being_made_and_opened_by_name(tmp_path, ending_process):
    # A muxer opens its temporary file by name, creating it again if the clean-up removed it between.
    dst = tmp_path / "out.mp4"
    inside, cleaned, errors = threading.Event(), threading.Event(), []

    def make_and_open():
        with atomic.making_files():
            tmp = temp_path(dst)
            inside.set()
            time.sleep(0.3)
            tmp.write_bytes(b"data")

    def worker():
        try:
            make_and_open()
            cleaned.wait()
            make_and_open()  # the next clip's, after the clean-up
        except VidtransError as e:
            errors.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait()
    atomic.remove_unfinished(final=True)
    cleaned.set()
    thread.join()
    assert list(tmp_path.iterdir()) == []
    assert len(errors) == 1 and "stopping" in str(errors[0])
