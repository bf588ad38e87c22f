"""The command line where its own output cannot go: standard output on a full disk."""

import os
import subprocess
import sys

import pytest

from tests.media import make_clip


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_summary_that_cannot_be_written_is_one_line_and_the_video_stays(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "vidtrans", "run", clip.path, "-o", tmp_path / "out.mp4",
                                 "--model", rgb_model_dir, "--json"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["vidtrans: error: cannot write to standard output (No space left "
                                                  "on device); check where it is redirected"]
    assert (tmp_path / "out.mp4").stat().st_size > 0


def _no_file_bytes() -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_a_disk_that_refuses_the_output_is_named_not_the_container(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    result = subprocess.run([sys.executable, "-m", "vidtrans", "run", clip.path, "-o", tmp_path / "out.mp4",
                             "--model", rgb_model_dir, "--backend", "torch"], stderr=subprocess.PIPE, text=True,
                            preexec_fn=_no_file_bytes)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"vidtrans: error: {tmp_path / 'out.mp4'}: cannot start the output "
                                                  "(File too large); check free disk space and that the output "
                                                  "folder is writable"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_newline_in_a_file_name_keeps_the_error_on_one_line(tmp_path, rgb_model_dir, cli):
    from tests.conftest import one_line

    clip = make_clip(tmp_path / "in.mp4", frames=2, audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "a\nb.txt", "--model", rgb_model_dir), 2)
    assert line.startswith(f"vidtrans: error: {tmp_path}/a\\nb.txt: FFmpeg cannot tell from the name")


def test_a_failed_clip_is_named_as_it_is_in_the_batch_summary(tmp_path, rgb_model_dir):
    import io

    from rich.console import Console

    from vidtrans.batch import translate_folder
    from vidtrans.cli import console
    from vidtrans.cli_batch_ui import summary_tables

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x[v2].mp4").write_bytes(b"not a video")
    report = translate_folder(tmp_path / "in", tmp_path / "out", rgb_model_dir)
    shown = Console(file=io.StringIO(), width=1000, markup=console._markup, highlight=False)
    for table in summary_tables(report):
        shown.print(table)
    failures = [line for line in shown.file.getvalue().splitlines() if "x[" in line or "x\\[" in line]
    assert len(failures) == 1 and f"{tmp_path}/in/x[v2].mp4 " in failures[0]


def test_eval_of_an_rgb_model_without_material_names_only_what_it_takes(rgb_model_dir, cli):
    from tests.conftest import one_line

    line = one_line(cli("eval", "--model", rgb_model_dir), 2)
    # It offered --video and --synthetic, then refused them for an RGB model.
    assert line.endswith("score it on a paired folder with --data DIR")


def losing_the_interrupt(monkeypatch, owner, name: str, at_call: int = 3) -> list:
    """Patch `owner.name` (a method) to send SIGTERM at its `at_call`-th call and drop the
    KeyboardInterrupt that raises, as the code that lost one did; returns the calls made."""
    import signal

    real, calls = getattr(owner, name), []

    def patched(self, *args):
        calls.append(args)
        if len(calls) == at_call:
            try:
                signal.raise_signal(signal.SIGTERM)
            except KeyboardInterrupt:
                pass
        return real(self, *args)

    monkeypatch.setattr(owner, name, patched)
    return calls


def test_a_live_session_ends_on_a_stop_signal_whose_interrupt_was_lost(tmp_path, rgb_model_dir, cli, monkeypatch):
    # Seen once under load: the KeyboardInterrupt of a stop signal was dropped inside the session, which then
    # ran on ignoring every further signal. The signal itself must end it.
    from vidtrans.live import process

    calls = losing_the_interrupt(monkeypatch, process.FrameProcessor, "__call__")
    clip = make_clip(tmp_path / "cam.mp4", frames=30, size=(64, 48), fps=30, audio=False)
    result = cli("live", "--model", rgb_model_dir, "--device", "cpu", "--camera", clip.path, "--no-window", "--loop",
                 "--max-frames", 150)
    assert result.returncode == 0, result.stderr
    assert len(calls) < 10 and result.stderr.rstrip().endswith("; stopped")


def test_a_run_stops_on_a_stop_signal_whose_interrupt_was_lost(tmp_path, rgb_model_dir, cli, monkeypatch):
    from vidtrans.video import writer

    frames = losing_the_interrupt(monkeypatch, writer.VideoWriter, "write")
    clip = make_clip(tmp_path / "in.mp4", frames=40, audio=False)
    result = cli("run", clip.path, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--batch-size", 1)
    # Stopped at its next frame, as by the signal itself: nothing published, 128 + SIGTERM.
    assert result.returncode == 143 and len(frames) < 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
