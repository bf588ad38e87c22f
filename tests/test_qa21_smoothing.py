"""A strength given with --smooth-strength is applied under --smooth auto too (it was replaced by
the card's recommendation, silently), and batch manifests stay valid for what did not change."""

import numpy as np
import pytest

import vidtrans
from tests.media import decode_all, make_clip, random_generator
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.options import RunOptions, output_settings
from vidtrans.temporal import smoothing_for


class _Card:
    def __init__(self, smoothing):
        self.card = type("card", (), {"smoothing": smoothing})()


@pytest.mark.parametrize("method, strength, card, expected", [
    ("auto", None, {"method": "ema", "strength": 0.9}, ("ema", 0.9)),
    ("auto", 0.2, {"method": "ema", "strength": 0.9}, ("ema", 0.2)),
    ("auto", 0.0, {"method": "flow", "strength": 0.9}, ("flow", 0.0)),
    ("auto", None, {"method": "ema"}, ("ema", 0.5)),
    ("ema", None, {"method": "flow", "strength": 0.9}, ("ema", 0.5)),
    ("flow", 0.7, {"method": "ema", "strength": 0.9}, ("flow", 0.7)),
])
def test_a_given_strength_is_kept_and_none_means_the_cards_or_the_default(method, strength, card, expected):
    assert smoothing_for(_Card(card), method, strength) == expected


@pytest.mark.parametrize("method, card, says", [
    ("none", {"method": "ema"}, "smoothing_strength 0.3 would do nothing with smoothing none; choose smoothing ema"),
    ("auto", None, "smoothing auto applies what the model card recommends, and the model's recommends no smoothing"),
])
def test_a_strength_that_would_do_nothing_is_refused(method, card, says):
    with pytest.raises(vidtrans.UsageError, match=says):
        smoothing_for(_Card(card), method, 0.3)


@pytest.fixture(scope="module")
def ema_card_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "ema09"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=3),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                              smoothing={"method": "ema", "strength": 0.9}))
    return folder


def test_run_applies_the_strength_given_under_auto(cli, tmp_path, ema_card_model):
    clip = make_clip(tmp_path / "in.mp4", frames=8, size=(64, 64), audio=False).path
    outputs = {}
    for name, flags in (("card", []), ("given", ["--smooth-strength", "0.1"]),
                        ("ema01", ["--smooth", "ema", "--smooth-strength", "0.1"])):
        out = tmp_path / f"{name}.mp4"
        result = cli("run", clip, "-o", out, "-m", ema_card_model, "--device", "cpu", *flags)
        assert result.returncode == 0, result.stderr
        outputs[name] = np.stack(decode_all(out)[0]).astype(int)
    # The given strength under auto is ema at 0.1 exactly; the card's 0.9 gives other frames.
    assert np.array_equal(outputs["given"], outputs["ema01"])
    assert np.abs(outputs["given"][1:] - outputs["card"][1:]).max() > 10


def test_the_python_api_keeps_the_given_strength_under_auto(tmp_path, ema_card_model):
    model = vidtrans.load_model(ema_card_model, device="cpu")
    clip = make_clip(tmp_path / "in.mp4", frames=6, size=(64, 64), audio=False).path
    given = vidtrans.translate_video(clip, tmp_path / "a.mp4", model, smoothing_strength=0.1)
    vidtrans.translate_video(clip, tmp_path / "b.mp4", model, smoothing="ema", smoothing_strength=0.1)
    assert given.smoothing == "ema"
    assert np.array_equal(np.stack(decode_all(tmp_path / "a.mp4")[0]), np.stack(decode_all(tmp_path / "b.mp4")[0]))


def test_batch_manifests_record_the_default_as_before_and_mark_a_strength_given_over_the_card():
    # What manifests written before held for the defaults: ("auto", 0.5) meant the card's strength.
    assert output_settings(RunOptions())["smoothing_strength"] == 0.5
    assert "smoothing_strength_over_card" not in output_settings(RunOptions())
    assert output_settings(RunOptions(smoothing="ema")) == output_settings(RunOptions(smoothing="ema",
                                                                                       smoothing_strength=0.5))
    # Under auto a given strength now overrides the card's: a clip made without it is redone.
    assert output_settings(RunOptions(smoothing_strength=0.5)) != output_settings(RunOptions())


def test_live_options_take_no_strength_by_default():
    from vidtrans.options import LiveOptions

    assert LiveOptions().smoothing_strength is None
    with pytest.raises(vidtrans.UsageError, match="smoothing_strength must be from 0"):
        LiveOptions(smoothing_strength=1.5)


# --- misspelt option names (options objects and translate_folder) ----------------------------------

@pytest.mark.parametrize("make, typo, meant", [
    (lambda **kw: RunOptions(**kw), "smothing", "smoothing"),
    (lambda **kw: RunOptions().replace(**kw), "crff", "crf"),
])
def test_an_option_misspelt_is_named_with_the_one_meant(make, typo, meant):
    with pytest.raises(vidtrans.UsageError, match=rf"has no option {typo}; did you mean {meant}\?$"):
        make(**{typo: 1})


def test_translate_folder_names_the_parameter_meant(tmp_path):
    from vidtrans.batch import BatchUsageError, translate_folder

    with pytest.raises(BatchUsageError, match=r"^translate_folder has no parameter overwite; did you mean overwrite\?$"):
        translate_folder(tmp_path, tmp_path / "out", "pose2person", overwite=True)
    with pytest.raises(BatchUsageError, match=r"did you mean workers\?$"):
        translate_folder(tmp_path, tmp_path / "out", "pose2person", worker=2)
