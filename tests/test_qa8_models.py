"""QA pass 8, models: a card that does not match its weights is refused before the network is built;
very wide and very tall frames translate with ResNets; options that make no sense for the device,
precision or backend are usage errors (exit 2); what `vidtrans models` offers is what loads."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import vidtrans
from tests.conftest import one_line
from tests.media import assert_same_frames, decode_all, make_clip, random_generator
from vidtrans.errors import UsageError, VidtransError
from vidtrans.models import checkpoint as checkpoint_module
from vidtrans.models.checkpoint import (BACKGROUND_NAME, CARD_NAME, WEIGHTS_NAME, ModelCard, check_folder,
                                        import_pix2pix, load_checkpoint, save_checkpoint)


def grey_model(folder, **card_changes):
    """A tiny one-channel ResNet checkpoint (ngf 8) whose card.json then says `card_changes`."""
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=1, output_nc=1,
                     native_size=(64, 64))
    save_checkpoint(folder, random_generator("resnet_6blocks", 1, 1, 8, "instance"), card)
    if card_changes:
        data = json.loads((folder / CARD_NAME).read_text())
        (folder / CARD_NAME).write_text(json.dumps({**data, **card_changes}))
    return folder


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(VidtransError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- 1. a card that does not match its weights ----------------------------------------------------


def test_a_card_asking_for_a_huge_network_is_refused_before_any_network_is_built(tmp_path, monkeypatch):
    folder = grey_model(tmp_path / "huge", ngf=4096)  # resnet_6blocks at ngf 4096: 128 GB of weights
    built = []
    monkeypatch.setattr(checkpoint_module, "build_generator", lambda *args, **kwargs: built.append(args))
    message = error_of(vidtrans.load_model, folder, device="cpu")
    assert not built
    assert message == (f"{folder}: card.json does not match the weights: it describes resnet_6blocks (ngf 4096, "
                       'instance norm, 1->1 channels), but the weights have ngf 8; set "ngf": 8 in card.json or '
                       "re-export the checkpoint")


def test_a_card_with_the_wrong_input_channels_says_which_value_the_weights_have(tmp_path, cli):
    folder = grey_model(tmp_path / "nc", input_nc=3)
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    line = one_line(cli("run", clip.path, "-m", folder, "-o", tmp_path / "out.mp4"), 1)
    assert 'but the weights have input_nc 1; set "input_nc": 1 in card.json' in line
    assert "size mismatch" not in line and not (tmp_path / "out.mp4").exists()


def test_weights_with_a_damaged_tensor_name_the_tensor_and_both_shapes(tmp_path):
    folder = grey_model(tmp_path / "damaged", weights_sha256="")
    weights = load_file(folder / WEIGHTS_NAME)
    save_file({**weights, "model.1.weight": torch.zeros(1, 1, 1, 1)}, folder / WEIGHTS_NAME)
    message = error_of(load_checkpoint, folder)
    # Not "set ngf 1": no card fits these weights.
    assert message == (f"{folder}: the weights do not fit resnet_6blocks (ngf 8, instance norm, 1->1 channels): "
                       "tensor 'model.1.weight' is 1x1x1x1, the network's is 8x1x7x7; re-export the checkpoint")


def test_a_pth_holding_something_else_than_tensors_names_the_entry(tmp_path):
    path = tmp_path / "intval.pth"
    torch.save({"a": 1}, path)
    assert error_of(import_pix2pix, path) == (
        f"{path}: entry 'a' holds a value of type int, not a tensor, so this is no generator's state_dict; "
        "re-save the generator with torch.save(net.state_dict(), path)")


def test_a_card_version_given_as_a_string_says_so(tmp_path):
    folder = grey_model(tmp_path / "version", format_version="1")
    assert error_of(load_checkpoint, folder) == (f"{folder / CARD_NAME}: field 'format_version' must be the "
                                                 'number 1, got "1"; fix the card or re-export the checkpoint')


# --- 3. frames of any aspect ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "rgb"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=3),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)))
    return vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")


@pytest.mark.parametrize("shape", [(2, 300), (300, 2), (16, 1000), (1, 1), (3, 1)])
def test_very_wide_and_tall_frames_translate_at_their_size(resnet, shape):
    frames = np.random.default_rng(0).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    out = resnet.translate(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    # Frames of a batch come out as they do one at a time, padding and all.
    assert_same_frames(out[1], resnet.translate(frames[1]))


@pytest.mark.parametrize("axis", [0, 1])
def test_a_one_pixel_strip_is_translated_as_if_repeated_to_the_smallest_input(resnet, axis):
    """A 1x64 frame is at its working size, padded to 8x64 by repeating its row: the network sees
    what it sees for the row repeated 8 times, whose row 3 (the padding is 3 above, 4 below) is the
    strip's translation."""
    strip = np.random.default_rng(1).integers(0, 256, (1, 64, 3) if axis == 0 else (64, 1, 3), dtype=np.uint8)
    repeated = resnet.translate(np.repeat(strip, 8, axis=axis))
    expected = repeated[3:4] if axis == 0 else repeated[:, 3:4]
    assert np.abs(resnet.translate(strip).astype(int) - expected).max() <= 1


def test_a_very_wide_clip_runs(tmp_path, cli, rgb_model_dir):
    clip = make_clip(tmp_path / "wide.mp4", frames=4, size=(300, 2))
    result = cli("run", clip.path, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4", "--backend", "torch")
    assert result.returncode == 0 and result.exception is None, result.stderr
    frames, _ = decode_all(tmp_path / "out.mp4")
    assert len(frames) == 4 and frames[0].shape == (2, 300, 3)


@pytest.mark.parametrize("shape", [(1, 0, 32, 3), (1, 32, 0, 3)])
def test_a_frame_without_pixels_is_one_line(resnet, shape):
    height, width = shape[1:3]
    assert error_of(resnet.translate, np.zeros(shape, np.uint8)) == (
        f"translate got frames of {width}x{height} pixels, which have no image to translate; pass frames at "
        "least 1x1")


# --- 10. options that make no sense are usage errors ----------------------------------------------

NONSENSE = {
    "bf16 in onnxruntime": (dict(precision="bf16", backend="onnxruntime"), ["--precision", "bf16", "--backend",
                            "onnxruntime"], "the onnxruntime backend runs fp32 only, not bf16"),
    "fp16 on a CPU": (dict(precision="fp16"), ["--precision", "fp16"], "fp16 is not supported on the CPU"),
    "CUDA without CUDA": (dict(device="cuda:0"), ["--device", "cuda:0"], "this torch has no CUDA"),
    "mps": (dict(device="mps"), ["--device", "mps"], "unsupported device 'mps'"),
}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("name", sorted(NONSENSE))
def test_options_that_make_no_sense_here_are_usage_errors(tmp_path, cli, rgb_model_dir, name):
    options, flags, expected = NONSENSE[name]
    with pytest.raises(UsageError, match=expected):
        vidtrans.load_model(rgb_model_dir, **{"device": "cpu", **options})
    clip = make_clip(tmp_path / "clip.mp4", frames=2)
    line = one_line(cli("run", clip.path, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4", *flags), 2)
    assert expected in line


# --- 14. what `vidtrans models` offers is what loads ----------------------------------------------


def unusable_models(root):
    """Checkpoint folders that load_checkpoint refuses, each with what its message says."""
    temporal = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=6, native_size=(64, 64),
                         temporal={"previous": "output", "first": "background"})
    save_checkpoint(root / "no_background", random_generator("resnet_6blocks", 6, 3, 8, "instance"), temporal)
    truncated = grey_model(root / "truncated") / WEIGHTS_NAME
    truncated.write_bytes(truncated.read_bytes()[:1000])
    wrong_shape = grey_model(root / "wrong_shape")
    save_file({**load_file(wrong_shape / WEIGHTS_NAME), "model.4.weight": torch.zeros(3)}, wrong_shape / WEIGHTS_NAME)
    return {"no_background": f"starts clips from {BACKGROUND_NAME}, which is missing",
            "truncated": "damaged or truncated weights", "wrong_shape": "tensor 'model.4.weight' is 3"}


def test_models_that_cannot_load_are_not_offered_and_say_why_without_reading_weights(tmp_path, monkeypatch):
    expected = unusable_models(tmp_path)
    grey_model(tmp_path / "good")
    monkeypatch.setenv("VIDTRANS_MODELS", str(tmp_path))
    for name, reason in expected.items():
        assert reason in error_of(load_checkpoint, name)
    # The listing's check reads headers only: a folder of large weights costs it nothing.
    monkeypatch.setattr(checkpoint_module, "load_file", None)
    for name, reason in expected.items():
        assert reason in error_of(check_folder, tmp_path / name)
    assert check_folder(tmp_path / "good").ngf == 8
    available = error_of(load_checkpoint, "missing").split("(available: ")[1].split(")")[0].split(", ")
    assert "good" in available and not set(expected) & set(available)


def test_models_lists_what_cannot_load_as_unusable_files_with_the_reason(tmp_path, monkeypatch, cli):
    expected = unusable_models(tmp_path)
    grey_model(tmp_path / "good")
    monkeypatch.setenv("VIDTRANS_MODELS", str(tmp_path))
    result = cli("models")
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "resnet_6blocks ngf 8" in rows["good"]
    warnings = result.stderr.strip().splitlines()
    for name, reason in expected.items():
        assert "unusable files" in rows[name], name
        assert any(line.startswith("vidtrans: warning: ") and reason in line for line in warnings), name


def test_a_one_channel_model_sees_the_grey_pix2pix_makes(tmp_path):
    # pix2pix's Grayscale is PIL's convert("L") on the uint8 frame: whole grey levels, then resized.
    image_module = pytest.importorskip("PIL.Image")
    model = vidtrans.load_model(grey_model(tmp_path / "grey"), device="cpu", backend="torch")
    frames = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    seen = []
    model.net.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    model.translate(frames)
    grey = np.stack([np.asarray(image_module.fromarray(f).convert("L")) for f in frames])
    expected = torch.from_numpy(grey).float()[:, None] / 127.5 - 1
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=1e-6)
