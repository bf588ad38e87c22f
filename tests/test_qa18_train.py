"""Training defects a video creator's use found (eighteenth QA round): a resumed run keeps its plan
(iterations, so the learning rate decays as planned; how often it saves and scores); the card says
which iteration its validation figures belong to; options for paired folders are refused elsewhere."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import one_line
from tests.media import TINY_TRAINING, make_clip, paired_folder
from vidtrans.options import TrainOptions
from vidtrans.train import trainer as trainer_module
from vidtrans.train.setup import prepare_training


def stop_at(iteration: int, monkeypatch) -> list[tuple[int, dict]]:
    """Saves go through until `iteration`'s, where the run is stopped as Ctrl-C stops it; returns
    (iteration, validation figures) of each save."""
    real_save, saves = trainer_module.Trainer.save, []

    def save(self, metrics, final=False):
        if self.iteration == iteration:
            raise KeyboardInterrupt("Ctrl-C")
        saves.append((self.iteration, dict(metrics)))
        real_save(self, metrics, final)

    monkeypatch.setattr(trainer_module.Trainer, "save", save)
    return saves


def tiny(**changes) -> list[str]:
    flags = dict(zip(TINY_TRAINING[::2], TINY_TRAINING[1::2]))
    flags.update({f"--{k.replace('_', '-')}": str(v) for k, v in changes.items()})
    return [item for pair in flags.items() for item in pair]


def test_a_resumed_run_keeps_its_plan(tmp_path, cli, monkeypatch, caplog):
    data, out = paired_folder(tmp_path / "pairs", 4), tmp_path / "ck"
    stop_at(4, monkeypatch)
    stopped = cli("train", "--data", data, "-o", out, "--iterations", "6", *tiny(save_every=2, validate_every=3))
    assert stopped.returncode == 130
    assert json.loads((out / "card.json").read_text())["training"]["iterations"] == 2

    _, config, _ = prepare_training(out, TrainOptions(resume=True), data=data)
    assert (config.iterations, config.save_every, config.validate_every) == (6, 2, 3)
    with caplog.at_level(logging.WARNING, logger="vidtrans"):
        _, config, _ = prepare_training(out, TrainOptions(resume=True, iterations=10, save_every=5), data=data)
    assert (config.iterations, config.save_every, config.validate_every) == (10, 5, 3)
    assert "was planned for 6 iterations; iterations 10 moves the learning rate's linear decay to iterations 5-10 " \
           "(it was 3-6)" in caplog.text

    monkeypatch.undo()
    resumed = cli("train", "--data", data, "-o", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "card.json").read_text())["training"]["iterations"] == 6


def test_the_cards_validation_figures_say_when_they_were_measured(tmp_path, cli, monkeypatch):
    data, out = paired_folder(tmp_path / "pairs", 4), tmp_path / "ck"
    saves = stop_at(-1, monkeypatch)
    result = cli("train", "--data", data, "-o", out, "--iterations", "7", *tiny(save_every=5, validate_every=3))
    assert result.returncode == 0, result.stderr
    assert [(done, figures["iteration"]) for done, figures in saves] == [(5, 3), (7, 7)]
    validation = json.loads((out / "card.json").read_text())["metrics"]["validation"]
    assert validation["iteration"] == 7 and set(validation) == {"ssim", "psnr", "iteration"}


@pytest.mark.parametrize("flags", [["--direction", "BtoA"], ["--input-kind", "pose"]])
@pytest.mark.parametrize("source", ["video", "synthetic"])
def test_paired_folder_options_are_refused_for_other_data(tmp_path, cli, flags, source):
    given = [make_clip(tmp_path / "target.mp4", frames=4, audio=False).path] if source == "video" else ["--synthetic"]
    line = one_line(cli("train", *given, "-o", tmp_path / "ck", *flags, *TINY_TRAINING), 2)
    assert f"{flags[0]} {flags[1]} is for a paired folder (--data)" in line and line.endswith("drop it")
    assert not (tmp_path / "ck").exists()
