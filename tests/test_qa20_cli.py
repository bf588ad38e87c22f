"""Empty paths and model names on the command line: typer reads "" as ".", the current folder."""
import os

import pytest

from tests.media import make_clip


@pytest.mark.parametrize("args, named", [
    (["run", "CLIP", "-o", ""], "'-o' / '--output'"),
    (["run", ""], "'input'"),
    (["run", "CLIP", "--keypoints", ""], "'--keypoints'"),
    (["pose", "CLIP", "-o", ""], "'-o' / '--output'"),
    (["pose", "CLIP", "--keypoints", ""], "'--keypoints'"),
    (["batch", "", "-m", "pose2person", "-o", "OUT"], "'input_dir'"),
    (["train", "", "-o", "OUT"], "'target'"),
    (["train", "--data", "", "-o", "OUT"], "'--data'"),
    (["eval", "pose2person", "--video", ""], "'--video'"),
    (["eval", "pose2person", "--data", ""], "'--data'"),
    (["export", "pose2person", "-o", ""], "'-o' / '--output'"),
    (["import-pix2pix", "", "-o", "OUT"], "'pth'"),
])
def test_an_empty_path_is_refused_by_name_and_nothing_is_written(cli, tmp_path, monkeypatch, args, named):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3)
    monkeypatch.chdir(tmp_path)  # where an empty path would have pointed
    before = sorted(os.listdir(tmp_path))
    args = [str(clip) if a == "CLIP" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert f"Invalid value for {named}: an empty path; give a file or folder name" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == before


def test_an_empty_model_name_says_none_was_given(cli, tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, frames=3)
    result = cli("run", clip, "-m", "", "-o", tmp_path / "out.mp4")
    assert result.returncode == 2
    assert "no model given (''); name a model, a checkpoint folder or a .pth file" in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_training_stops_on_a_stop_signal_whose_interrupt_was_lost(tmp_path, cli, monkeypatch):
    # As for run and live (tests/test_qa19_cli.py): the signal itself ends the command, at its next step.
    from tests.media import TINY_TRAINING, paired_folder
    from tests.test_qa19_cli import losing_the_interrupt
    from vidtrans.train.trainer import Trainer

    steps = losing_the_interrupt(monkeypatch, Trainer, "step")
    data = paired_folder(tmp_path / "pairs", 4)
    result = cli("train", "--data", data, "-o", tmp_path / "ck", "--iterations", 40, *TINY_TRAINING)
    # Stopped at its next step, as by the signal itself (the checkpoints saved so far are kept for --resume).
    assert result.returncode == 143 and len(steps) < 40, result.stderr


@pytest.mark.parametrize("command", ["run", "pose"])
def test_an_output_that_is_a_link_to_itself_is_refused_in_one_line(cli, tmp_path, rgb_model_dir, command):
    # Path.resolve() raised RuntimeError ("Symlink loop") through the whole command: a traceback.
    clip = make_clip(tmp_path / "in.mp4", frames=3).path
    loop = tmp_path / "loop.mp4"
    loop.symlink_to("loop.mp4")
    model = ["--model", rgb_model_dir] if command == "run" else []
    for overwrite in ([], ["--overwrite"]):
        result = cli(command, clip, "-o", loop, *model, *overwrite)
        assert result.returncode == 2
        assert result.stderr.strip() == (f"vidtrans: error: {loop}: is a link that leads back to itself; remove it or "
                                          "choose another output path")
    assert os.readlink(loop) == "loop.mp4" and sorted(os.listdir(tmp_path)) == ["in.mp4", "loop.mp4"]


def test_a_folder_that_stops_letting_files_go_does_not_hide_the_error(tmp_path, monkeypatch):
    # The folder made read-only (chattr +i) mid-way: removing the temporary and lock files raised
    # PermissionError from the clean-up, a page of chained tracebacks instead of the one-line error.
    from pathlib import Path

    from vidtrans.atomic import write_atomically
    from vidtrans.errors import VidtransError

    real_unlink = Path.unlink

    def refused(self, missing_ok=False):
        if self.parent == tmp_path:
            raise PermissionError(1, "Operation not permitted", str(self))
        real_unlink(self, missing_ok=missing_ok)

    def write(f):
        monkeypatch.setattr(Path, "unlink", refused)
        raise VidtransError("the write failed")

    with pytest.raises(VidtransError, match="^the write failed$"):
        write_atomically(tmp_path / "out.json", write, overwrite=False)


def test_a_terminal_gone_away_neither_ends_the_command_nor_silences_stdout(monkeypatch):
    # After SIGHUP the terminal may be gone: rich's console then raised SystemExit(1) (a live session
    # whose recording was written whole exited 1) and pointed standard output at /dev/null.
    import io

    import vidtrans.cli as cli_module

    class Gone(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    stdout = os.dup(1)
    try:
        terminal = cli_module._Terminal(file=Gone(), markup=False, highlight=False)
        terminal.print("live: 10 frames")  # no SystemExit
        terminal.print("more")
        assert os.path.samestat(os.fstat(1), os.fstat(stdout))
    finally:
        os.close(stdout)


def test_a_mistyped_command_reads_as_a_sentence(cli):
    result = cli("runn")
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("vidtrans: error: No such command 'runn'. Did you mean 'run'? See ") and "?;" not in line


def test_an_output_another_process_writes_is_refused_before_the_model_loads(cli, tmp_path, rgb_model_dir,
                                                                            monkeypatch):
    # It was refused only once the model had loaded (seconds; tens on a GPU host), by translate_video.
    import threading

    import vidtrans
    from vidtrans.atomic import OutputClaim

    clip = make_clip(tmp_path / "in.mp4", frames=3).path
    out = tmp_path / "out.mp4"
    held, done = threading.Event(), threading.Event()

    def writer_elsewhere():  # another thread claims as another process would (and is named as this process)
        with OutputClaim(out):
            held.set()
            done.wait(10)

    thread = threading.Thread(target=writer_elsewhere)
    thread.start()
    held.wait(10)
    monkeypatch.setattr(vidtrans, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    try:
        result = cli("run", clip, "-o", out, "--model", rgb_model_dir)
    finally:
        done.set()
        thread.join()
    assert result.returncode == 1
    assert "this process is already writing this file" in result.stderr
    assert not out.exists()
