"""Fixtures shared by the test modules."""

import signal

import pytest
import torch

from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.models.networks import build_generator, init_weights


@pytest.fixture(scope="session")
def rgb_model_dir(tmp_path_factory):
    """A tiny, fast RGB model (a ResNet with pix2pix's initial weights, a few ms per small frame)
    with a native size near the test clips'."""
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", 3, 3, 8, "instance")
    init_weights(net)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_checkpoint(folder, net, ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)))
    return folder


def pytest_configure(config):
    # A shell starts background jobs with SIGINT ignored, and child processes inherit that, so the
    # Ctrl-C tests would see a vidtrans that cannot be interrupted. A handler (unlike "ignore")
    # resets to the default in each child, which then behaves as it would in a terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
