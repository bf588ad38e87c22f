"""QA pass 19: checkpoint folders and foreign upstream files (import-pix2pix, --model) get the right one line."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tests.conftest import one_line
from tests.media import make_clip, random_generator
from vidtrans.models.checkpoint import CARD_NAME, WEIGHTS_NAME


def generator(input_nc=3, output_nc=3, arch="resnet_6blocks"):
    return random_generator(arch, input_nc, output_nc, 4, "instance")


def run_error(cli, tmp_path, model) -> str:
    """The one error line of `vidtrans run` with `model` as --model (nothing written)."""
    clip = make_clip(tmp_path / "in.mp4", frames=2)
    result = cli("run", clip.path, "--model", model, "-o", tmp_path / "out.mp4", "--pose", "none")
    line = one_line(result, 1)
    assert not (tmp_path / "out.mp4").exists()
    return line


# --- 1. import-pix2pix into a folder holding weights without a card -------------------------------------


@pytest.mark.parametrize("held", [WEIGHTS_NAME, CARD_NAME])
def test_import_does_not_replace_a_checkpoint_file_without_overwrite(tmp_path, cli, held):
    upstream = tmp_path / "G.pth"
    torch.save(generator().state_dict(), upstream)
    out = tmp_path / "out"
    out.mkdir()
    theirs = b"the user's own " + held.encode() + bytes(range(256))
    (out / held).write_bytes(theirs)
    line = one_line(cli("import-pix2pix", upstream, "-o", out), 2)
    assert "--overwrite" in line and str(out) in line
    assert (out / held).read_bytes() == theirs
    assert sorted(p.name for p in out.iterdir()) == [held]
    result = cli("import-pix2pix", upstream, "-o", out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert (out / CARD_NAME).is_file() and (out / WEIGHTS_NAME).read_bytes() != theirs


# --- 2. an output name longer than the file system allows ------------------------------------------------


@pytest.mark.parametrize("command", ["train", "import-pix2pix"])
def test_a_too_long_output_name_is_refused_in_one_line(tmp_path, cli, command):
    out = tmp_path / ("a" * 256)
    if command == "train":
        result = cli("train", "--synthetic", "--iterations", "1", "-o", out)
    else:
        upstream = tmp_path / "G.pth"
        torch.save(generator().state_dict(), upstream)
        result = cli("import-pix2pix", upstream, "-o", out)
    line = one_line(result, 2)
    assert line.endswith("file name too long; choose a shorter output name"), line


# --- 3. a TorchScript archive -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["traced generator", "scripted network"])
def test_a_torchscript_archive_is_named_with_the_fix(tmp_path, cli, how):
    net = generator().eval()
    if how == "traced generator":
        archive = torch.jit.trace(net, torch.zeros(1, 3, 64, 64))
    else:
        archive = torch.jit.script(nn.Sequential(nn.Conv2d(3, 3, 3)))
    path = tmp_path / "G.pt"
    torch.jit.save(archive, path)
    for line in (run_error(cli, tmp_path, path), one_line(cli("import-pix2pix", path, "-o", tmp_path / "out"), 1)):
        assert "TorchScript" in line and "damaged" not in line, line
        assert f"torch.save(torch.jit.load({str(path)!r}).state_dict(), 'G.pth')" in line, line
    assert not (tmp_path / "out").exists()
    if how == "traced generator":  # the fix given works
        torch.save(torch.jit.load(path).state_dict(), tmp_path / "G.pth")
        result = cli("import-pix2pix", tmp_path / "G.pth", "-o", tmp_path / "out")
        assert result.returncode == 0, result.stderr


# --- 4. an optimizer's state_dict ---------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True])
def test_an_optimizer_state_is_named(tmp_path, cli, nested):
    net = generator()
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.zeros(1, 3, 64, 64)).mean().backward()
    optimizer.step()
    path = tmp_path / "opt.pth"
    torch.save({"optimizer_G": optimizer.state_dict()} if nested else optimizer.state_dict(), path)
    for line in (run_error(cli, tmp_path, path), one_line(cli("import-pix2pix", path, "-o", tmp_path / "out"), 1)):
        assert "an optimizer's state" in line and "not a generator's weights" in line, line
        assert "latest_net_G.pth" in line and "named by" not in line, line


def test_a_key_of_another_type_is_named_with_the_right_article(tmp_path, cli):
    path = tmp_path / "G.pth"
    torch.save({**generator().state_dict(), 7: torch.zeros(3)}, path)
    line = run_error(cli, tmp_path, path)
    assert "entry '7' is named by an int, not a layer's name" in line, line


# --- 5. a truncated safetensors file ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["G.safetensors", "G.bin"])
@pytest.mark.parametrize("keep", ["half", "50 bytes"])
def test_a_truncated_safetensors_file_is_named_as_one(tmp_path, cli, name, keep):
    whole = tmp_path / "whole.safetensors"
    save_file(generator().state_dict(), whole)
    data = whole.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[:len(data) // 2] if keep == "half" else data[:50])
    for line in (run_error(cli, tmp_path, path), one_line(cli("import-pix2pix", path, "-o", tmp_path / "out"), 1)):
        assert f"{path}: a damaged or truncated safetensors file" in line and "PyTorch" not in line, line
        assert line.endswith("copy it again"), line


# --- 6. a whole generator with channel counts vidtrans does not use ---------------------------------------


@pytest.mark.parametrize("arch, input_nc, output_nc, said", [
    ("resnet_6blocks", 4, 3, "a whole resnet_6blocks generator with 4 input channels; vidtrans feeds 1 (grey) or 3 "
                             "(RGB) channels"),
    ("unet_256", 3, 2, "a whole unet_256 generator with 2 output channels; vidtrans takes back 1 (grey) or 3 (RGB) "
                       "channels"),
    ("resnet_6blocks", 2, 4, "a whole resnet_6blocks generator with 2 input channels and 4 output channels; "
                             "vidtrans feeds and takes back 1 (grey) or 3 (RGB) channels"),
])
def test_a_generator_of_other_channel_counts_is_named_whole(tmp_path, cli, arch, input_nc, output_nc, said):
    path = tmp_path / "G.pth"
    torch.save(generator(input_nc, output_nc, arch).state_dict(), path)
    for line in (run_error(cli, tmp_path, path), one_line(cli("import-pix2pix", path, "-o", tmp_path / "out"), 1)):
        assert f"{path}: {said}" in line and "do not make a whole" not in line, line


def test_a_generator_of_other_channel_counts_missing_a_layer_is_still_called_incomplete(tmp_path, cli):
    state = generator(4, 3).state_dict()
    del state["model.10.conv_block.1.weight"]
    path = tmp_path / "G.pth"
    torch.save(state, path)
    line = one_line(cli("import-pix2pix", path, "-o", tmp_path / "out"), 1)
    assert "do not make a whole pix2pix generator" in line and "vidtrans feeds" not in line, line
