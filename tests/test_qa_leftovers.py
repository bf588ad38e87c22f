"""Defects left over from the QA run: a card's weights_sha256 never checked, NaN or whole-number
weights loading, `.pth` model names keeping their extension in output names, misleading messages
for a video or a folder given to `import-pix2pix`, and unusable models offered as available.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import vidtrans
from tests.media import make_clip, random_generator
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import CARD_NAME, WEIGHTS_NAME, import_pix2pix, load_checkpoint


def one_line_error(result) -> str:
    """The error line of a failed command, checked to be the only thing it said."""
    assert result.returncode == 1 and result.exception is None, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidtrans: error: "), result.stderr
    return lines[0].removeprefix("vidtrans: error: ")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "in.mp4", frames=3, size=(64, 48)).path


@pytest.fixture
def model_copy(tmp_path, rgb_model_dir):
    folder = tmp_path / "copy"
    shutil.copytree(rgb_model_dir, folder)
    return folder


def upstream_pth(path, **changes):
    """An upstream-style generator file, with the tensors in `changes` replaced."""
    state = random_generator("resnet_6blocks", 3, 3, 8, "instance").state_dict()
    torch.save({**state, **changes}, path)
    return path


# --- 1. the card's weights_sha256 ----------------------------------------------------------------


def test_weights_that_do_not_match_the_cards_hash_are_refused(cli, clip, model_copy, tmp_path):
    weights = load_file(model_copy / WEIGHTS_NAME)
    first = next(iter(weights))
    weights[first] = weights[first] + 0.01  # other weights of the same layout: they would load
    save_file(weights, model_copy / WEIGHTS_NAME)
    with pytest.raises(VidtransError) as info:
        load_checkpoint(model_copy)
    assert str(info.value) == (f"{model_copy}: the weights are not the ones the card describes ({WEIGHTS_NAME}'s "
                               "sha256 differs from the card's weights_sha256); re-export or fix weights_sha256")
    output = tmp_path / "out.mp4"
    assert "re-export or fix weights_sha256" in one_line_error(cli("run", clip, "-m", model_copy, "-o", output,
                                                                  "--device", "cpu"))
    assert not output.exists()


def test_cards_without_a_hash_and_matching_hashes_keep_loading(model_copy):
    assert load_checkpoint(model_copy).card.weights_sha256  # save_checkpoint records it
    card = json.loads((model_copy / CARD_NAME).read_text())
    card.pop("weights_sha256")
    (model_copy / CARD_NAME).write_text(json.dumps(card))
    model = vidtrans.load_model(model_copy, device="cpu")
    assert model.translate(np.zeros((1, 48, 64, 3), np.uint8)).shape == (1, 48, 64, 3)


# --- 2. weights no generator can compute with ----------------------------------------------------


@pytest.mark.parametrize("value, words", [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite")])
def test_non_finite_weights_are_refused_naming_the_file_and_tensor(cli, clip, model_copy, tmp_path, value, words):
    weights = load_file(model_copy / WEIGHTS_NAME)
    name = sorted(weights)[3]
    weights[name].view(-1)[0] = value
    save_file(weights, model_copy / WEIGHTS_NAME)
    card = json.loads((model_copy / CARD_NAME).read_text())
    card.pop("weights_sha256")  # only the values are wrong, not the record of them
    (model_copy / CARD_NAME).write_text(json.dumps(card))
    output = tmp_path / "out.mp4"
    message = one_line_error(cli("run", clip, "-m", model_copy, "-o", output, "--device", "cpu"))
    assert message.startswith(f"{model_copy / WEIGHTS_NAME}: tensor {name!r} holds {words}"), message
    assert not output.exists()

    pth = upstream_pth(tmp_path / "net_G.pth", **{"model.1.weight": torch.full((8, 3, 7, 7), value)})
    message = one_line_error(cli("run", clip, "-m", pth, "-o", output, "--device", "cpu"))
    assert message.startswith(f"{pth}: tensor 'model.1.weight' holds {words}"), message
    assert not output.exists()


def test_whole_number_weights_are_refused_and_batch_norm_step_counts_are_not(tmp_path):
    pth = upstream_pth(tmp_path / "int8.pth", **{"model.1.weight": torch.ones((8, 3, 7, 7), dtype=torch.int8)})
    with pytest.raises(VidtransError) as info:
        import_pix2pix(pth)
    assert str(info.value).startswith(f"{pth}: tensor 'model.1.weight' holds int8 values, not floating point")
    batch = tmp_path / "batch.pth"
    torch.save(random_generator("resnet_6blocks", 3, 3, 8, "batch").state_dict(), batch)  # int64 step counts
    assert import_pix2pix(batch).card.norm == "batch"


# --- 3. output names of .pth models ------------------------------------------------------------


def test_a_pth_models_output_is_named_without_its_extension(cli, tmp_path):
    src = make_clip(tmp_path / "x.mp4", frames=2, size=(64, 48)).path
    pth = upstream_pth(tmp_path / "dp.pth")
    result = cli("run", src, "-m", pth, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.dp.mp4").is_file() and not (tmp_path / "x.dp.pth.mp4").exists()
    assert vidtrans.load_model(pth, device="cpu").name == "dp"


def test_a_folder_models_name_keeps_its_dots(tmp_path, rgb_model_dir):
    folder = tmp_path / "faces.v2"
    shutil.copytree(rgb_model_dir, folder)
    assert vidtrans.load_model(folder, device="cpu").name == "faces.v2"


# --- 4. import-pix2pix messages -----------------------------------------------------------------


def test_import_of_a_video_says_it_is_not_a_pytorch_checkpoint(cli, clip, tmp_path):
    message = one_line_error(cli("import-pix2pix", clip, "-o", tmp_path / "out"))
    assert message.startswith(f"{clip}: not a readable PyTorch file (not a PyTorch checkpoint"), message
    assert "pickled" not in message and not (tmp_path / "out").exists()


def test_import_of_a_folder_says_a_pth_file_is_expected(cli, model_copy, tmp_path):
    message = one_line_error(cli("import-pix2pix", model_copy, "-o", tmp_path / "out"))
    assert message.startswith(f"{model_copy}: is a folder; a .pth file is expected"), message
    assert not (tmp_path / "out").exists()


# --- 5. models offered when a name is not found ---------------------------------------------------


def test_a_model_not_found_lists_only_usable_models(cli, clip, tmp_path, rgb_model_dir):
    models = tmp_path / "models"
    shutil.copytree(rgb_model_dir, models / "good")
    (models / "badcard").mkdir()
    (models / "badcard" / CARD_NAME).write_text("[1, 2, 3]")
    (models / "badcard" / WEIGHTS_NAME).write_bytes((rgb_model_dir / WEIGHTS_NAME).read_bytes())
    (models / "noweights").mkdir()
    (models / "noweights" / CARD_NAME).write_text((rgb_model_dir / CARD_NAME).read_text())
    result = cli("run", clip, "-m", "nosuchmodel", "--device", "cpu", env={"VIDTRANS_MODELS": str(models),
                                                                          "XDG_CACHE_HOME": str(tmp_path / "cache")})
    message = one_line_error(result)
    available = message.split("(available: ")[1].split(")")[0].split(", ")
    assert "good" in available and "badcard" not in available and "noweights" not in available, message
