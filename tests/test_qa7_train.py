"""QA pass 7, training and eval: a resume must continue the same run (same data, more iterations),
the output folder is checked for real before any work, running out of memory is one line, option
conflicts exit 2 and name real flags, and figures scored on training data say so."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, paired_folder, train_tiny



def one_line_error(result, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint trained 1 iteration on the paired folder `pairs` (4 pairs, RGB, no face D)."""
    return train_tiny(tmp_path_factory.mktemp("qa7"), 1, cli)


@pytest.fixture
def checkpoint(trained, tmp_path):
    data, out = trained
    return data, Path(shutil.copytree(out, tmp_path / "ck"))


@pytest.fixture
def no_data(monkeypatch):
    refuse_loading(monkeypatch)


def refuse_loading(monkeypatch):
    """Training data that fails if it is loaded: the checks under test must come before it."""
    from vidtrans.train import data

    def load(*args, **kwargs):
        raise AssertionError("training data was loaded before the options were checked")

    for source in ("SyntheticPairs", "VideoPairs", "PairedFolder"):
        monkeypatch.setattr(data, source, load)


# --- 1, 14: what --resume continues ----------------------------------------------------------------


def test_resume_refuses_other_data_naming_the_checkpoints_source(checkpoint, tmp_path, no_data):
    data, out = checkpoint
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    other_folder = paired_folder(tmp_path / "other", 2)
    for source in (["--synthetic"], [tmp_path / "dancer.mp4"], ["--data", other_folder]):
        message = one_line_error(cli("train", *source, "-o", out, "--resume", "--iterations", "3", *TINY_TRAINING))
        assert f"{out} was trained on paired folder pairs, not " in message, message
        assert "into another folder" in message and "--overwrite" in message, message
    pose = one_line_error(cli("train", "--data", data, "--input-kind", "pose", "-o", out, "--resume",
                              "--iterations", "3", *TINY_TRAINING))
    assert "with --input-kind rgb, not pose" in pose, pose
    swapped = one_line_error(cli("train", "--data", data, "--direction", "BtoA", "-o", out, "--resume",
                                 "--iterations", "3", *TINY_TRAINING))
    assert "with --direction AtoB, not BtoA" in swapped, swapped
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_with_the_same_data_continues(checkpoint):
    data, out = checkpoint
    # The same folder by another spelling of its path.
    resumed = cli("train", "--data", f"{data}/", "-o", out, "--resume", "--iterations", "2", *TINY_TRAINING)
    assert resumed.returncode == 0, resumed.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["iterations"] == 2 and card["training"]["data"] == "paired folder pairs"


def test_resume_asking_for_no_more_iterations_is_a_usage_error(checkpoint, no_data):
    data, out = checkpoint
    for iterations in ("1", "0"):
        message = one_line_error(cli("train", "--data", data, "-o", out, "--resume", "--iterations", iterations,
                                     *TINY_TRAINING))
        assert "has already trained to iteration 1" in message and "pass --iterations larger than 1" in message, message


# --- 4: memory ------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("[enforce fail at alloc_cpu.cpp:119] . DefaultCPUAllocator: "
                                                "can't allocate memory: you tried to allocate 98304000000 bytes."),
                                   MemoryError("Unable to allocate 1.1 GiB for an array")])
def test_training_out_of_memory_is_one_line(trained, tmp_path, monkeypatch, error):
    from vidtrans.train.trainer import Trainer

    def step(self):
        raise error

    monkeypatch.setattr(Trainer, "step", step)
    data, _ = trained
    result = cli("train", "--data", data, "-o", tmp_path / "m", "--iterations", "2", "--batch-size", "100", *TINY_TRAINING)
    message = one_line_error(result, code=1)
    assert "out of CPU memory training on batches of 100 samples of 64x64; pass a smaller batch size" in message


def test_a_batch_far_too_large_for_the_memory_is_refused_before_any_step(trained, tmp_path, monkeypatch):
    from vidtrans.train import trainer

    monkeypatch.setattr(trainer, "available_memory", lambda device: 2**30)
    monkeypatch.setattr(trainer.Trainer, "step", lambda self: pytest.fail("a step ran"))
    data, _ = trained
    result = cli("train", "--data", data, "-o", tmp_path / "m", "--iterations", "2", "--batch-size", "100000", *TINY_TRAINING)
    message = one_line_error(result, code=2)
    assert "batches of 100000 samples need more than" in message and "1.0 GiB is available" in message, message
    assert "pass a batch size under" in message and not (tmp_path / "m").exists()
    # A batch that fits the same memory trains.
    monkeypatch.undo()
    monkeypatch.setattr(trainer, "available_memory", lambda device: 2**30)
    assert cli("train", "--data", data, "-o", tmp_path / "m", "--iterations", "1", "--batch-size", "4",
               *TINY_TRAINING).returncode == 0


def test_other_runtime_errors_are_not_taken_for_memory(trained, tmp_path, monkeypatch):
    from vidtrans.train.trainer import Trainer

    def step(self):
        raise RuntimeError("something else broke")

    monkeypatch.setattr(Trainer, "step", step)
    result = cli("train", "--data", trained[0], "-o", tmp_path / "m", "--iterations", "2", *TINY_TRAINING)
    assert isinstance(result.exception, RuntimeError) and "memory" not in result.stderr


# --- 5, 8: the output folder ----------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_folder_that_cannot_be_created_is_refused_before_any_work(no_data):
    message = one_line_error(cli("train", "--synthetic", "-o", "/proc/vidtrans-qa7/ck", "--iterations", "2"))
    assert message.startswith("vidtrans: error: /proc/vidtrans-qa7/ck: cannot write the checkpoint there"), message
    assert not Path("/proc/vidtrans-qa7").exists()


def test_checking_the_output_folder_leaves_nothing_behind(tmp_path, no_data):
    # --lr is checked after the output folder, which was created and removed again to check it.
    one_line_error(cli("train", "--synthetic", "-o", tmp_path / "a" / "b" / "ck", "--lr", "0"))
    assert list(tmp_path.iterdir()) == []


def test_an_empty_output_path_is_refused(tmp_path, monkeypatch, no_data):
    monkeypatch.chdir(tmp_path)
    message = one_line_error(cli("train", "--synthetic", "-o", "", "--iterations", "2"))
    assert "empty path" in message, message
    assert list(tmp_path.iterdir()) == []


def test_the_output_folder_may_not_be_in_the_training_data(tmp_path, no_data):
    data = paired_folder(tmp_path / "pairs", 2)
    (tmp_path / "link").symlink_to(data)
    for given, output in ((data, data), (data, data / "val"), (data, tmp_path / "pairs" / ".." / "pairs"),
                          (data, tmp_path / "link"), (tmp_path / "link", data / "sub")):
        message = one_line_error(cli("train", "--data", given, "-o", output, "--iterations", "2"))
        assert "would be in the training data" in message, message
    assert sorted(p.name for p in data.iterdir()) == ["000.png", "001.png"]
    video = tmp_path / "dancer.mp4"
    video.write_bytes(b"not looked at")
    assert "is a file" in one_line_error(cli("train", video, "-o", video, "--iterations", "2"))


# --- 11: a paired folder too small to hold a pair out -------------------------------------------


def test_a_single_pair_is_scored_as_training_data_and_says_so(tmp_path):
    data = paired_folder(tmp_path / "one", 1)
    result = cli("train", "--data", data, "-o", tmp_path / "m", "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    assert "vidtrans: warning: " in result.stderr and "one pair is too few to hold one out" in result.stderr
    assert "training-pair ssim" in result.stderr and "held-out" not in result.stderr.splitlines()[-1]
    assert json.loads((tmp_path / "m" / "card.json").read_text())["training"]["validated_on"] == "training pairs"


def test_two_pairs_hold_one_out(tmp_path):
    from vidtrans.train.data import PairedFolder

    folder = PairedFolder(paired_folder(tmp_path / "two", 2), size=64)
    assert folder.validation_held_out and not set(folder.pairs) & set(folder.held_out)


# --- 13, 15: messages and exit codes of option conflicts ------------------------------------------


def test_resume_conflicts_name_switches_as_the_command_line_spells_them(checkpoint, no_data):
    data, out = checkpoint
    message = one_line_error(cli("train", "--data", data, "-o", out, "--resume", "--face-d", "--iterations", "3"))
    assert "--face-d differs from the checkpoint, trained with --no-face-d; drop it or use --no-face-d" in message
    arch = one_line_error(cli("train", "--data", data, "-o", out, "--resume", "--arch", "unet_128",
                              "--iterations", "3"))
    assert "--arch unet_128 differs from the checkpoint's resnet_6blocks" in arch


def test_python_callers_get_parameter_names_for_switches():
    from vidtrans.train.trainer import describe_conflicts

    assert describe_conflicts([("temporal", True, False)]) == (
        "temporal=True differs from the checkpoint, trained with temporal=False; use temporal=False")


@pytest.mark.parametrize("args,expected", [
    (["--temporal"], "--temporal trains on consecutive frames"),
    (["--whole-body"], "--whole-body is about drawing pose maps"),
    (["--train-pose", "noisy"], "--train-pose noisy is for synthetic training only"),
])
def test_options_that_do_not_fit_a_paired_folder_exit_2(tmp_path, no_data, args, expected):
    assert expected in one_line_error(cli("train", "--data", tmp_path, "-o", tmp_path / "m", *args))


def test_too_few_frames_with_a_person_states_the_rule(tmp_path, monkeypatch):
    from vidtrans.pose import track

    monkeypatch.setattr(track, "detect_keypoints", lambda video, **kwargs: np.zeros((2, 18, 3), np.float32))
    message = one_line_error(cli("train", tmp_path / "two.mp4", "-o", tmp_path / "m", *TINY_TRAINING), code=1)
    assert "a person was found in none of its 2 frames, and training needs at least 10" in message, message


def test_eval_of_a_single_pair_names_the_pairs_not_frames(rgb_model_dir, tmp_path):
    data = paired_folder(tmp_path / "one", 1)
    message = one_line_error(cli("eval", "--model", rgb_model_dir, "--data", data, "--device", "cpu"))
    assert f"{data}: one pair, and evaluation needs at least 2" in message and "frames" in message, message


# --- 10: --overwrite keeps the old run until the new one writes ----------------------------------


def test_overwrite_stopped_before_its_first_write_leaves_the_old_run(checkpoint, monkeypatch):
    from vidtrans.train.trainer import Trainer

    data, out = checkpoint
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def step(self):
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(Trainer, "step", step)
    result = cli("train", "--data", data, "-o", out, "--overwrite", "--iterations", "2", *TINY_TRAINING)
    assert result.returncode == 130, result.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    monkeypatch.undo()
    # Once the new run writes, the old run's files go.
    old_grid = out / "samples" / "iter_0000500.png"
    old_grid.write_bytes(b"a grid of the old run")
    result = cli("train", "--data", data, "-o", out, "--overwrite", "--iterations", "1", *TINY_TRAINING)
    assert result.returncode == 0, result.stderr
    assert not old_grid.exists() and (out / "samples" / "iter_0000001.png").is_file()


def test_overwrite_stopped_between_its_first_grid_and_checkpoint_leaves_the_old_run(checkpoint, monkeypatch):
    from vidtrans.train.trainer import Trainer

    data, out = checkpoint
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_grid = Trainer._write_grid

    def grid_then_ctrl_c(self, *args, **kwargs):
        write_grid(self, *args, **kwargs)
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(Trainer, "_write_grid", grid_then_ctrl_c)
    result = cli("train", "--data", data, "-o", out, "--overwrite", "--iterations", "2", *TINY_TRAINING[:-4],
                 "--validate-every", "1", "--save-every", "2")
    assert result.returncode == 130, result.stderr
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # The new run's first grid (in place of the old run's of that iteration) beside the old run, whole.
    new_grid = Path("samples") / "iter_0000001.png"
    assert new_grid in after and (out / "card.json").is_file() and (out / "train_state.pt").is_file()
    assert {k: v for k, v in after.items() if k != new_grid} == {k: v for k, v in before.items() if k != new_grid}


def test_a_pose_map_conflict_on_resume_names_the_flag_given(tmp_path, no_data):
    from vidtrans.errors import UsageError
    from vidtrans.models.checkpoint import ModelCard
    from vidtrans.options import TrainOptions, spelled
    from vidtrans.pose.render import PoseStyle
    from vidtrans.train.data import SYNTHETIC_DATA
    from vidtrans.train.setup import prepare_training
    from vidtrans.train.trainer import TrainConfig, Trainer

    class Pairs:  # a whole-body checkpoint needs only its card and state here
        def background(self):
            return None

    card = ModelCard(architecture="resnet_6blocks", ngf=4, native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle(version=2).to_dict(), training={"data": SYNTHETIC_DATA})
    config = TrainConfig(iterations=1, architecture="resnet_6blocks", ngf=4, ndf=4, d_scales=1, face_d=False)
    Trainer(Pairs(), tmp_path / "m", config, card, device="cpu").save({})
    options = TrainOptions(resume=True, whole_body=False, iterations=5)
    flags = {"resume=True": "--resume", "whole_body=False": "--body-only"}  # as `vidtrans train` spells them
    with pytest.raises(UsageError, match="trained on whole-body pose maps, which --resume keeps; leave out "
                                         "--body-only$"), spelled(flags):
        prepare_training(tmp_path / "m", options, synthetic=True)


def test_resume_tells_a_target_video_from_another_of_the_same_name(tmp_path, monkeypatch):
    from tests.media import dancer_clip

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    clip = dancer_clip(tmp_path / "a" / "target.mp4", look_name="target", frames=24, size=(160, 128), seed=3)
    out = tmp_path / "m"
    first = cli("train", clip.path, "-o", out, "--iterations", "1", *TINY_TRAINING)
    assert first.returncode == 0, first.stderr
    assert json.loads((out / "card.json").read_text())["training"]["video_identity"]["size"] == clip.path.stat().st_size
    impostor = dancer_clip(tmp_path / "b" / "target.mp4", look_name="target", frames=24, size=(160, 128), seed=4)
    refuse_loading(monkeypatch)
    message = one_line_error(cli("train", impostor.path, "-o", out, "--resume", "--iterations", "2", *TINY_TRAINING))
    assert "was trained on another target video target.mp4 (the files differ)" in message, message
    monkeypatch.undo()
    renamed = tmp_path / "b" / "renamed.mp4"  # a copy under another name is the same video
    renamed.write_bytes(clip.path.read_bytes())
    resumed = cli("train", renamed, "-o", out, "--resume", "--iterations", "2", *TINY_TRAINING)
    assert resumed.returncode == 0, resumed.stderr
