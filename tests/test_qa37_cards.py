"""What model cards say, and what vidtrans makes of it (QA round 37)."""

import json
from pathlib import Path

import vidtrans
from tests.media import random_generator
from vidtrans.models import translator as translator_module
from vidtrans.models.checkpoint import CARD_NAME, ModelCard, save_checkpoint

REPO = Path(__file__).resolve().parent.parent


def test_a_card_that_does_not_say_half_precision_runs_fp32_under_auto(tmp_path, monkeypatch):
    """README: half precision is used "only where a card says it was checked". A hand-written card
    without `half_precision` ran in bf16 under auto, where the CPU multiplies it (the field's default was true)."""
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: True)
    folder = tmp_path / "unet"
    save_checkpoint(folder, random_generator("unet_128", 3, 3, 8, "batch", seed=0),
                    ModelCard(architecture="unet_128", ngf=8, norm="batch", native_size=(128, 128), half_precision=True))
    card = json.loads((folder / CARD_NAME).read_text())
    assert vidtrans.load_model(folder, device="cpu", backend="torch").precision == "bf16"  # checked: allowed
    (folder / CARD_NAME).write_text(json.dumps({k: v for k, v in card.items() if k != "half_precision"}))
    assert vidtrans.load_model(folder, device="cpu", backend="torch").precision == "fp32"


def test_the_shipped_model_says_it_was_checked_in_half_precision():
    card = json.loads((REPO / "checkpoints" / "pose2person" / CARD_NAME).read_text())
    assert card["half_precision"] is True and card["metrics"]["half_precision"]["bf16"]["psnr"] >= 45
