"""QA pass 26, training as a user: a folder (or another non-file) named as a file a save writes or
replaces (train_state.pt, background.png, a sample grid) inside a checkpoint folder is refused
before any work, not found by the first save after training up to it; and a save that meets one
anyway changes nothing (it used to put the new set in place, then fail removing the old model's);
torchrun's variables left in the environment without torchrun are one line, not a traceback or a
rendezvous waiting for processes that never come."""

import os
import shutil

import pytest

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, train_tiny


def _contents(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(pairs folder, checkpoint folder) of a one-iteration run, to copy."""
    return train_tiny(tmp_path_factory.mktemp("trained"), 1, cli)


@pytest.mark.parametrize("name", ["background.png", "train_state.pt", "samples/iter_0000001.png",
                                  "samples/iter_0000007.png"])
@pytest.mark.parametrize("mode", ["--overwrite", "--resume"])
def test_a_folder_named_as_a_checkpoint_file_is_refused_before_training(tmp_path, trained, name, mode):
    data, trained_ck = trained
    out = shutil.copytree(trained_ck, tmp_path / "ck")
    (out / name).unlink(missing_ok=True)
    (out / name).mkdir()
    (out / name / "theirs.txt").write_text("kept")
    before = _contents(out)
    line = one_line(cli("train", "--data", data, "-o", out, mode, "--iterations", "2", *TINY_TRAINING), 2)
    assert line == (f"vidtrans: error: {out / name}: a folder, where training writes or replaces its checkpoint's "
                    f"{name}; move it away or write the checkpoint to another folder")
    assert _contents(out) == before


def test_a_save_meeting_a_folder_named_as_the_old_models_file_changes_nothing(tmp_path, trained):
    from vidtrans.errors import VidtransError
    from vidtrans.models.checkpoint import load_checkpoint, save_checkpoint

    out = shutil.copytree(trained[1], tmp_path / "ck")
    checkpoint = load_checkpoint(out)
    (out / "background.png").mkdir()
    before = _contents(out)
    with pytest.raises(VidtransError) as error:
        save_checkpoint(out, checkpoint.build(), checkpoint.card, replaces=True)
    assert str(error.value) == (f"{out / 'background.png'}: a folder, where the checkpoint's files go; move it away "
                                "or write the checkpoint to another folder")
    assert _contents(out) == before


def _environment(**changes):
    """This process's environment without torchrun's variables, with `changes`."""
    launch = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    return {**{k: v for k, v in os.environ.items() if k not in launch}, **changes}


@pytest.mark.parametrize("changes, told", [
    ({"WORLD_SIZE": "2", "RANK": "0"}, "WORLD_SIZE=2 in the environment asks for 2 processes, but MASTER_ADDR, "
                                       "MASTER_PORT are not set; "),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' in the environment is not a whole number; "),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
     "RANK=2 in the environment is not below WORLD_SIZE=2; "),
])
def test_torchruns_variables_left_in_the_environment_are_one_line(tmp_path, trained, changes, told):
    # A job script's WORLD_SIZE without torchrun: PyTorch's rendezvous failed with a traceback
    # (after the data was read), and a value that is no number failed with one at once.
    out = tmp_path / "ck"
    result = cli("train", "--data", trained[0], "-o", out, "--iterations", "1", *TINY_TRAINING,
                 env=_environment(**changes))
    line = one_line(result, 2)
    assert line.startswith(f"vidtrans: error: {told}torchrun sets these variables for each process it starts: "
                           "torchrun --nproc_per_node N -m vidtrans train ..., or unset "), line
    assert not out.exists()
