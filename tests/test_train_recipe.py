"""The training recipe (multi-scale discriminator with feature matching, face refinement) and the
training loop around it: determinism with sample-preparing workers, frozen discriminators during the
generator's step, resume of every network and the AMP scaler, old training states."""

import pytest
import torch

from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, read_card
from vidtrans.options import TrainOptions, spelled
from vidtrans.train import trainer as trainer_module
from vidtrans.train.data import Dances, SyntheticPairs
from vidtrans.train.setup import prepare_training
from vidtrans.train.trainer import RECIPE_OFF, STATE_NAME, TrainConfig, Trainer

SIZE = 64
TINY = {"architecture": "unet_64", "ngf": 4, "ndf": 4, "data_workers": 0, "save_every": 1000, "validate_every": 1000}


class Faceless:
    """A source whose samples come without keypoints (like paired folders)."""

    def __init__(self, source):
        self.source = source

    def sample(self, rng):
        a, b, _ = self.source.sample(rng)
        return a, b, None

    def validation(self):
        return self.source.validation()

    def background(self):
        return None


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: two threads only wait for each other, very long when other work shares the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def source():
    return SyntheticPairs(size=SIZE, dances=Dances(train_seeds=range(0, 3), validation_frames=2))


def card():
    return ModelCard(architecture="unet_64", native_size=(SIZE, SIZE), input_kind="pose")


def trained(source, folder, steps=2, **settings) -> Trainer:
    trainer = Trainer(source, folder, TrainConfig(iterations=100, **{**TINY, **settings}), card(), device="cpu")
    for _ in range(steps):
        trainer.step()
    trainer.close()
    return trainer


def weights(net) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def pix2pix(source, tmp_path_factory):
    """The generator after two steps of pix2pix's objective (every recipe part off)."""
    return weights(trained(source, tmp_path_factory.mktemp("pix2pix") / "m", **RECIPE_OFF).netG)


@pytest.mark.parametrize("part, loss", [
    ({"d_scales": 2}, "g_gan"),
    ({"lambda_feat": 10.0}, "g_feat"),
    ({"face_d": True, "lambda_face_gan": 2.0}, "g_face_gan"),
    ({"lambda_face": 100.0}, "g_face"),
])
def test_each_recipe_part_changes_what_the_generator_learns(source, pix2pix, tmp_path, part, loss):
    trainer = Trainer(source, tmp_path / "m", TrainConfig(iterations=100, **{**TINY, **RECIPE_OFF, **part}), card(),
                      device="cpu")
    initial = weights(trainer.netG)
    losses = [trainer.step() for _ in range(2)][-1]
    assert float(losses[loss]) > 0
    assert not same(weights(trainer.netG), initial)
    # Same seed, same samples, same initial weights: only the recipe part can make the difference.
    assert not same(weights(trainer.netG), pix2pix)


def test_a_seed_gives_the_same_weights_however_samples_are_prepared(source, tmp_path):
    inline = trained(source, tmp_path / "a", steps=3, data_workers=0)
    workers = trained(source, tmp_path / "b", steps=3, data_workers=2)
    for net in ("netG", "netD", "netD_face"):
        assert same(weights(getattr(inline, net)), weights(getattr(workers, net)))
    other_seed = trained(source, tmp_path / "c", steps=3, seed=1)
    assert not same(weights(inline.netG), weights(other_seed.netG))


def test_the_generator_step_leaves_the_discriminators_alone(source, tmp_path):
    trainer = Trainer(source, tmp_path / "m", TrainConfig(iterations=100, **TINY), card(), device="cpu")
    trainer.step()
    params = [p.requires_grad_(True) for net in trainer.discriminators for p in net.parameters()]
    computed = [0] * len(params)
    for i, p in enumerate(params):
        p.register_hook(lambda grad, i=i: computed.__setitem__(i, computed[i] + 1))
    after_their_step = {}
    step_d = trainer.optD.step

    def remember(*args, **kwargs):
        result = step_d(*args, **kwargs)
        after_their_step.update({i: p.detach().clone() for i, p in enumerate(params)})
        return result

    trainer.optD.step = remember
    generator = weights(trainer.netG)
    trainer.step()
    # Each discriminator weight got a gradient once (their own step), none from the generator's step,
    # which still changed the generator, and left the weights as their own step made them.
    assert computed == [1] * len(params)
    assert not same(weights(trainer.netG), generator)
    assert all(torch.equal(p, after_their_step[i]) for i, p in enumerate(params))


def test_face_refinement_is_skipped_without_keypoints(source, tmp_path):
    faceless = Faceless(source)
    trainer = Trainer(faceless, tmp_path / "a", TrainConfig(iterations=100, **TINY), card(), device="cpu")
    face_d = weights(trainer.netD_face)
    losses = [trainer.step() for _ in range(2)][-1]
    trainer.close()
    assert float(losses["g_face"]) == 0 and float(losses["g_face_gan"]) == 0 and "d_face" not in losses
    assert same(weights(trainer.netD_face), face_d)
    # The generator learns exactly what it learns with face refinement off.
    off = trained(faceless, tmp_path / "b", face_d=False, lambda_face=0.0)
    assert same(weights(trainer.netG), weights(off.netG))


def test_resume_restores_every_discriminator_and_the_amp_scaler(source, tmp_path, monkeypatch):
    # A CPU has no AMP; scalers as on a GPU (growing every step) stand in for it.
    scaler = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler",
                        lambda device, enabled: scaler("cpu", init_scale=1024.0, growth_interval=1))
    folder = tmp_path / "m"
    first = Trainer(source, folder, TrainConfig(iterations=2, **{**TINY, "save_every": 2}), card(), device="cpu")
    first.fit()
    assert first.scaler.get_scale() == 4096.0
    saved = trainer_module.read_train_state(folder)
    assert {"netD", "netD_face", "optD", "scaler"} <= saved.keys()

    resumed = Trainer(source, folder, TrainConfig(iterations=4, **TINY), card(), device="cpu", resume=True)
    assert resumed.iteration == 2 and resumed.scaler.state_dict() == first.scaler.state_dict()
    for net in ("netD", "netD_face"):
        assert same(weights(getattr(resumed, net)), weights(getattr(first, net)))
    assert torch.equal(resumed.optD.state_dict()["state"][0]["exp_avg"], first.optD.state_dict()["state"][0]["exp_avg"])
    training = read_card(folder).training
    assert {k: training[k] for k in RECIPE_OFF} == {k: getattr(TrainConfig(), k) for k in RECIPE_OFF}


def test_a_training_state_from_before_the_recipe_resumes_as_it_was(source, tmp_path):
    folder = tmp_path / "old"
    old_run = Trainer(source, folder, TrainConfig(iterations=1, **{**TINY, **RECIPE_OFF, "save_every": 1}), card(),
                      device="cpu")
    old_run.fit()
    # What the trainer wrote before the recipe: one PatchGAN's keys, no scaler, no recipe settings.
    state = trainer_module.read_train_state(folder)
    state["netD"] = {k.removeprefix("scales.0."): v for k, v in state["netD"].items()}
    state["config"] = {k: v for k, v in state["config"].items() if k not in {*RECIPE_OFF, "data_workers"}}
    del state["scaler"]
    torch.save(state, folder / STATE_NAME)

    refusal = "^--d-scales 2 differs from the checkpoint's 1; drop it or use --d-scales 1$"
    with pytest.raises(VidtransError, match=refusal), spelled({"d_scales": "--d-scales"}):
        prepare_training(folder, TrainOptions(resume=True, d_scales=2), synthetic=True)
    with pytest.raises(VidtransError, match="face_d=True differs from the checkpoint, trained with face_d=False; use face_d=False"):
        Trainer(source, folder, TrainConfig(iterations=2, **{**TINY, "d_scales": 1}), card(), device="cpu", resume=True)
    # Nor may the objective: the state recorded none of the recipe's terms, so they were off.
    with pytest.raises(VidtransError, match="lambda_feat 10.0 differs from the checkpoint's 0.0; use lambda_feat 0.0"):
        Trainer(source, folder, TrainConfig(iterations=2, **{**TINY, **RECIPE_OFF, "lambda_feat": 10.0}), card(),
                device="cpu", resume=True)
    config = TrainConfig(iterations=2, **{**TINY, **RECIPE_OFF})
    resumed = Trainer(source, folder, config, card(), device="cpu", resume=True)
    assert resumed.iteration == 1 and resumed.netD_face is None and len(resumed.netD.scales) == 1
    assert same(weights(resumed.netD), weights(old_run.netD))
    resumed.fit()
    assert resumed.iteration == 2


def test_distributed_backend_follows_the_device(monkeypatch):
    chosen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine told to train on its CPU
    monkeypatch.setattr(trainer_module.dist, "is_initialized", lambda: False)

    def init(backend):
        chosen.append(backend)
        raise RuntimeError("stop here")

    monkeypatch.setattr(trainer_module.dist, "init_process_group", init)
    with pytest.raises(RuntimeError, match="stop here"):
        trainer_module._distributed(torch.device("cpu"))
    assert chosen == ["gloo"]


class Unreadable(Faceless):
    def sample(self, rng):
        raise VidtransError("pairs/007.png: not a readable image (corrupt or unsupported); remove or replace it")


def test_a_sample_workers_error_is_the_sources_own_one_line(source, tmp_path):
    trainer = Trainer(Unreadable(source), tmp_path / "m", TrainConfig(iterations=2, **{**TINY, "data_workers": 1}),
                      card(), device="cpu")
    with pytest.raises(VidtransError) as error:
        trainer.fit()
    assert str(error.value) == "pairs/007.png: not a readable image (corrupt or unsupported); remove or replace it"
