"""Fixtures shared by the test modules."""

import contextlib
import io
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from unittest import mock

import pytest

from tests.media import random_generator
from vidtrans.errors import STOP_SIGNALS
from vidtrans.models.checkpoint import ModelCard, save_checkpoint


@pytest.fixture(scope="session", autouse=True)
def own_cache_and_small_synthetic_statistics(tmp_path_factory):
    """Tests never read or fill the user's cache (detected dances, ONNX graphs). Synthetic training
    measures the target's statistics on one short detected dance (48 frames of 256x256) instead of
    twenty of 240 frames of 512x512 (which take a minute and a half to detect on a fresh machine,
    and one still 5 s; what they measure is tested in test_normalize_identity.py), and validates
    on 4 frames instead of 32. Child processes inherit the cache folder."""
    import functools

    from vidtrans.train import data

    short = data.Dances(stats_dances=1, frames=48, validation_frames=4, video_size=256)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(data, "SyntheticPairs", functools.partial(data.SyntheticPairs, dances=short))
        yield


@pytest.fixture(scope="session")
def pose_model_dir(tmp_path_factory):
    """A tiny pose -> person model (a ResNet with pix2pix's initial weights, native 64x64, body-only
    pose maps, no target statistics)."""
    from vidtrans.pose import PoseStyle

    net = random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0)
    folder = tmp_path_factory.mktemp("models") / "tinypose"
    save_checkpoint(folder, net, ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                                           input_kind="pose", pose_style=PoseStyle().to_dict()))
    return folder


@pytest.fixture(scope="session")
def pose_model(pose_model_dir):
    import vidtrans

    return vidtrans.load_model(pose_model_dir, device="cpu")


@pytest.fixture(scope="session")
def rgb_model_dir(tmp_path_factory):
    """A tiny, fast RGB model (a ResNet with pix2pix's initial weights, a few ms per small frame)
    with a native size near the test clips'."""
    net = random_generator("resnet_6blocks", 3, 3, 8, "instance", seed=0)
    folder = tmp_path_factory.mktemp("models") / "tiny"
    save_checkpoint(folder, net, ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64)))
    return folder


def pytest_configure(config):
    # A shell starts background jobs with SIGINT ignored, and child processes inherit that, so the
    # Ctrl-C tests would see a vidtrans that cannot be interrupted. A handler (unlike "ignore")
    # resets to the default in each child, which then behaves as it would in a terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class CliResult:
    """What a `vidtrans` process would have given: exit status, stdout and stderr; and the error
    that escaped the entry point (the one a process would print a traceback for), if any."""

    returncode: int
    stdout: str
    stderr: str
    exception: Exception | None = None


def run_cli(*args, env: dict[str, str] | None = None) -> CliResult:
    """`vidtrans ARGS` through the real entry point, `vidtrans.cli.main`, in this process.

    A `python -m vidtrans` child pays seconds of torch and MediaPipe imports that tell a test
    nothing; the tests that need a real process (the entry point, signals, the installed wheel)
    start one themselves. env, if given, replaces the environment for the call, as for a child.
    """
    import vidtrans.cli

    argv = ["vidtrans", *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    # main() installs its own handlers and leaves the default ones behind, right for a process about
    # to exit; this one goes on, and pytest's Ctrl-C and the SIGINT handler of pytest_configure
    # (inherited as "default" by the signal tests' children) must still be in place.
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    environment = mock.patch.dict(os.environ, env, clear=True) if env is not None else contextlib.nullcontext()
    vidtrans.cli._stopped_by.clear()
    vidtrans.cli._debug = False
    try:
        # A stopped command ends the process at once (os._exit); here it is the end of the call.
        with environment, mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err), mock.patch.object(vidtrans.cli, "_exit_now", sys.exit):
            escaped = None
            try:
                vidtrans.cli.main()
                code = 0
            except SystemExit as e:  # as the interpreter turns it into an exit status
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            except Exception as e:  # an uncaught error: the interpreter's traceback and status 1
                traceback.print_exc()
                escaped, code = e, 1
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        vidtrans.cli._stopped_by.clear()
        vidtrans.cli._debug = False
    return CliResult(code, out.getvalue(), err.getvalue(), escaped)


def one_line(result, code: int) -> str:
    """The error line of a CLI call that failed as vidtrans should: exit status `code`, one
    `vidtrans: error:` line on stderr and nothing else, no exception escaping."""
    assert result.returncode == code and result.exception is None, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidtrans: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="session")
def cli():
    """run_cli: `cli("run", clip, "--model", model)` gives returncode, stdout and stderr."""
    return run_cli
