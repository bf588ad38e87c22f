"""QA round 27, spelling: training's refusals name settings as the caller wrote them, the
command line's flags (`vidtrans train --resume`) or the Python parameters (TrainOptions(resume=True)),
word for word as before training spelled them through `options.spell` alone."""

import shutil

import pytest
import torch

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from vidtrans.errors import UsageError, VidtransError
from vidtrans.models.checkpoint import MAX_SIZE, ModelCard
from vidtrans.options import TrainOptions
from vidtrans.pose.render import PoseStyle
from vidtrans.train import data as data_module
from vidtrans.train.data import SYNTHETIC_DATA
from vidtrans.train.setup import prepare_training
from vidtrans.train.trainer import STATE_NAME, TrainConfig, Trainer


class _NoPairs:  # a checkpoint whose card and state alone are under test
    def background(self):
        return None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A synthetic checkpoint at iteration 3 of a run planned for 3: resnet_6blocks, ngf 4, one
    discriminator scale, no face discriminator, body-only pose maps."""
    folder = tmp_path_factory.mktemp("spelling") / "trained"
    card = ModelCard(architecture="resnet_6blocks", ngf=4, native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle().to_dict(), training={"data": SYNTHETIC_DATA, "train_pose": "exact"})
    config = TrainConfig(iterations=3, architecture="resnet_6blocks", ngf=4, ndf=4, d_scales=1, face_d=False)
    trainer = Trainer(_NoPairs(), folder, config, card, device="cpu")
    trainer.iteration = 3
    trainer.save({})
    return folder


@pytest.fixture(autouse=True)
def no_data(monkeypatch):
    """Training data that fails if it is loaded: every refusal here comes before it."""
    def load(*args, **kwargs):
        raise AssertionError("training data was loaded before the options were checked")

    for source in ("SyntheticPairs", "VideoPairs", "PairedFolder"):
        monkeypatch.setattr(data_module, source, load)


def _edit_state(out, **changes):
    state = torch.load(out / STATE_NAME, weights_only=True)
    config = changes.pop("config", {})
    state.update(changes)
    state["config"].update(config)
    torch.save(state, out / STATE_NAME)


# (id, the folder: None (none there; "model": none, and the trained one is {model}), "trained" or a
# change to its state, flags, TrainOptions, exit status,
# the message from the command line, the message from Python); {out} is the output folder.
CASES = [
    ("resume-without-checkpoint", None, ["--resume"], {"resume": True}, 2,
     "{out}: nothing to resume (train_state.pt missing); drop --resume to start fresh",
     "{out}: nothing to resume (train_state.pt missing); drop resume=True to start fresh"),
    ("resume-and-overwrite", "trained", ["--resume", "--overwrite"], {"resume": True, "overwrite": True}, 2,
     "--resume continues the checkpoint in {out} and --overwrite replaces it; pass one of them",
     "resume=True continues the checkpoint in {out} and overwrite=True replaces it; pass one of them"),
    ("overwrite-needed", "trained", [], {}, 2,
     "{out}: already holds a checkpoint; pass --resume to continue training it or --overwrite to start over "
     "(replacing it)",
     "{out}: already holds a checkpoint; pass resume=True to continue training it or overwrite=True to start "
     "over (replacing it)"),
    ("ngf-differs", "trained", ["--resume", "--ngf", "8"], {"resume": True, "ngf": 8}, 2,
     "--ngf 8 differs from the checkpoint's 4; drop it or use --ngf 4",
     "ngf 8 differs from the checkpoint's 4; drop it or use ngf 4"),
    ("switch-differs", "trained", ["--resume", "--face-d"], {"resume": True, "face_d": True}, 2,
     "--face-d differs from the checkpoint, trained with --no-face-d; drop it or use --no-face-d",
     "face_d=True differs from the checkpoint, trained with face_d=False; drop it or use face_d=False"),
    ("iterations-not-above", "trained", ["--resume", "--iterations", "3"], {"resume": True, "iterations": 3}, 2,
     "{out} has already trained to iteration 3, and --iterations 3 asks for no more; pass --iterations larger "
     "than 3 to train it further",
     "{out} has already trained to iteration 3, and iterations 3 asks for no more; pass iterations larger "
     "than 3 to train it further"),
    ("plan-done", "trained", ["--resume"], {"resume": True}, 2,
     "{out} has already trained to iteration 3, the end of its planned 3 iterations; pass --iterations larger "
     "than 3 to train it further",
     "{out} has already trained to iteration 3, the end of its planned 3 iterations; pass iterations larger "
     "than 3 to train it further"),
    ("init-from-with-resume", "trained", ["--resume", "--init-from", "pose2person"],
     {"resume": True, "init_from": "pose2person"}, 2,
     "--init-from starts a new run from a model and --resume continues the one in the output folder; pass one "
     "of them",
     "init_from starts a new run from a model and resume=True continues the one in the output folder; pass one "
     "of them"),
    ("recipe-kept", "trained", ["--resume", "--iterations", "9", "--lr", "0.01"],
     {"resume": True, "iterations": 9, "lr": 0.01}, 2,
     "{out} was trained with --lr 0.0002, which --resume keeps; drop --lr 0.01, or start a new stage from this "
     "model with --init-from {out} and another output folder",
     "{out} was trained with lr 0.0002, which resume=True keeps; drop lr 0.01, or start a new stage from this "
     "model with init_from {out} and another output folder"),
    ("pose-maps-kept", "trained", ["--resume", "--iterations", "9", "--whole-body"],
     {"resume": True, "iterations": 9, "whole_body": True}, 2,
     "{out} holds a model trained on body-only pose maps, which --resume keeps; leave out --whole-body",
     "{out} holds a model trained on body-only pose maps, which resume=True keeps; leave out whole_body=True"),
    ("size-for-arch", None, ["--arch", "unet_256", "--size", "100"], {"architecture": "unet_256", "size": 100}, 2,
     f"--size 100 does not fit unet_256: use a multiple of 256 from 256 to {MAX_SIZE}",
     f"size 100 does not fit unet_256: use a multiple of 256 from 256 to {MAX_SIZE}"),
    ("size-for-scales", None, ["--arch", "resnet_6blocks", "--size", "64", "--d-scales", "3"],
     {"architecture": "resnet_6blocks", "size": 64, "d_scales": 3}, 2,
     f"--size 64 does not fit resnet_6blocks with --d-scales 3: use a multiple of 4 from 128 to {MAX_SIZE}",
     f"size 64 does not fit resnet_6blocks with d_scales 3: use a multiple of 4 from 128 to {MAX_SIZE}"),
    ("init-from-shape", "model", ["--init-from", "{model}", "--ngf", "8"], {"init_from": "{model}", "ngf": 8}, 2,
     "--init-from {model} starts from its generator as it is (resnet_6blocks, --ngf 4, --size 64): drop --ngf 8",
     "init_from {model} starts from its generator as it is (resnet_6blocks, ngf 4, size 64): drop ngf 8"),
    # The training state's own settings are the file's, named as Python names them either way.
    ("state-setting-bad", {"config": {"ngf": 0}}, ["--resume", "--iterations", "9"],
     {"resume": True, "iterations": 9}, 1,
     "{out}/train_state.pt: not a vidtrans training state (ngf must be a whole number from 1 to 1024, got 0); "
     "start over with --overwrite",
     "{out}/train_state.pt: not a vidtrans training state (ngf must be a whole number from 1 to 1024, got 0); "
     "start over with overwrite=True"),
    ("state-of-another-iteration", {"iteration": 5}, ["--resume", "--iterations", "9"],
     {"resume": True, "iterations": 9}, 1,
     "{out}/train_state.pt: is from iteration 5, but the model beside it (card.json) from iteration 3, so they "
     "cannot resume together (a save was cut short, or the files come from different runs); start over with "
     "--overwrite",
     "{out}/train_state.pt: is from iteration 5, but the model beside it (card.json) from iteration 3, so they "
     "cannot resume together (a save was cut short, or the files come from different runs); start over with "
     "overwrite=True"),
    ("state-of-another-run", {"config": {"seed": 7}}, ["--resume", "--iterations", "9"],
     {"resume": True, "iterations": 9}, 1,
     "{out}/train_state.pt: is of a run with --seed 7, but the model beside it (card.json) has 0, so they "
     "cannot resume together (a save was cut short, or the files come from different runs); start over with "
     "--overwrite",
     "{out}/train_state.pt: is of a run with seed 7, but the model beside it (card.json) has 0, so they "
     "cannot resume together (a save was cut short, or the files come from different runs); start over with "
     "overwrite=True"),
]


@pytest.mark.parametrize("folder,flags,options,status,from_cli,from_python",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_training_refusals_spell_settings_as_the_caller_wrote_them(tmp_path, trained, folder, flags, options,
                                                                   status, from_cli, from_python):
    out = tmp_path / "out"
    flags = [flag.format(model=trained) for flag in flags]
    options = {k: v.format(model=trained) if isinstance(v, str) else v for k, v in options.items()}
    if folder not in (None, "model"):
        shutil.copytree(trained, out)
        if isinstance(folder, dict):
            _edit_state(out, **folder)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} if out.exists() else None
    assert one_line(cli("train", "--synthetic", "-o", out, *flags), status) == \
        "vidtrans: error: " + from_cli.format(out=out, model=trained)
    with pytest.raises(UsageError if status == 2 else VidtransError) as refused:
        prepare_training(out, TrainOptions(**options), synthetic=True)
    assert str(refused.value) == from_python.format(out=out, model=trained)
    assert ({p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} if out.exists() else None) == before
