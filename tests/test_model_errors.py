"""Bad model cards, checkpoints, training and eval options: one clear line each, never a traceback;
native and working sizes of models; the translator's memory for large frames."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import vidtrans
from tests.conftest import run_cli
from vidtrans.cli import app
from vidtrans.errors import VidtransError
from vidtrans.models import translator as translator_module
from vidtrans.models.checkpoint import ModelCard, import_pix2pix, save_checkpoint
from tests.media import assert_same_frames, random_generator


def invoke(*args, env=None):
    """`vidtrans ARGS` in this process; VidtransError is what the CLI prints as its one-line error."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def error_of(result) -> str:
    assert isinstance(result.exception, VidtransError), (result.exception, result.output)
    message = str(result.exception)
    assert "\n" not in message and "\x1b" not in message
    return message


def tiny_net(arch="resnet_6blocks", ngf=4, norm="instance", seed=0):
    return random_generator(arch, 3, 3, ngf, norm, seed=seed)


class Payload:
    """A pickled object that would run code (create a file) if unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# --- 1. model cards -------------------------------------------------------------------------------

GOOD_CARD = ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64)).to_dict()
BAD_CARDS = {
    "a-list": ([GOOD_CARD], "a JSON object expected"),
    "newer": ({**GOOD_CARD, "format_version": 2}, "made by a newer vidtrans"),
    "not-ours": ({**GOOD_CARD, "format": "something-else"}, "not a vidtrans model card"),
    "arch": ({**GOOD_CARD, "architecture": "unet_100"}, "field 'architecture'"),
    "norm": ({**GOOD_CARD, "norm": "group"}, "field 'norm' must be one of batch, instance, none"),
    "size-text": ({**GOOD_CARD, "native_size": "big"}, "field 'native_size' must be [height, width]"),
    "size-zero": ({**GOOD_CARD, "native_size": [0, 256]}, "field 'native_size' must be [height, width]"),
    "ngf-text": ({**GOOD_CARD, "ngf": "wide"}, "field 'ngf' must be a whole number"),
    "channels": ({**GOOD_CARD, "input_nc": 3.5}, "field 'input_nc' must be 1 or 3"),
    "kind": ({**GOOD_CARD, "input_kind": "depth"}, "field 'input_kind' must be one of rgb, pose"),
}


@pytest.mark.parametrize("name", sorted(BAD_CARDS))
def test_bad_card_fields_are_named_with_the_file_and_the_fix(name):
    data, expected = BAD_CARDS[name]
    with pytest.raises(VidtransError) as info:
        ModelCard.from_dict(data, "models/x/card.json")
    message = str(info.value)
    assert message.startswith("models/x/card.json: ") and expected in message and "\n" not in message
    assert "upgrade vidtrans" in message if name == "newer" else "re-export the checkpoint" in message


def test_models_lists_good_models_and_reports_each_bad_card(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "good", tiny_net(), ModelCard.from_dict(GOOD_CARD))
    for name, (data, _) in BAD_CARDS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text(json.dumps(data))
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "card.json").write_text("{not json")
    monkeypatch.setenv("VIDTRANS_MODELS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "250")
    result = invoke("models")
    assert result.exit_code == 0 and result.exception is None, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert "resnet_6blocks ngf 4" in rows["good"] and "64x64" in rows["good"]
    for name in [*BAD_CARDS, "garbled"]:
        assert "unusable card" in rows[name], name
    warnings = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning: ")]
    assert len(warnings) == len(BAD_CARDS) + 1
    assert any("newer" in w and "upgrade vidtrans" in w and str(tmp_path / "newer" / "card.json") in w
               for w in warnings)


# --- 2. training options, outputs and resume -------------------------------------------------------

TINY = ["--arch", "unet_128", "--size", "128", "--ngf", "4", "--ndf", "4", "--save-every", "1", "--validate-every", "1",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint folder from one iteration of training (unet_128, ngf 4, size 128)."""
    out = tmp_path_factory.mktemp("trained") / "ck"
    result = invoke("train", "--synthetic", "-o", out, "--iterations", "1", *TINY)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def checkpoint_copy(trained, tmp_path):
    import shutil

    return shutil.copytree(trained, tmp_path / "ck")


@pytest.fixture
def no_data(monkeypatch):
    """Training data that fails if it is loaded: the checks under test must come before it."""
    from vidtrans.train import data

    def load(*args, **kwargs):
        raise AssertionError("training data was loaded before the options were checked")

    for source in ("SyntheticPairs", "VideoPairs", "PairedFolder"):
        monkeypatch.setattr(data, source, load)


def test_resume_keeps_the_checkpoints_settings_and_names_a_conflicting_option(checkpoint_copy, monkeypatch):
    with monkeypatch.context() as patch:
        from vidtrans.train import data

        patch.setattr(data, "VideoPairs", lambda *a, **k: pytest.fail("pose detection ran before the check"))
        conflict = invoke("train", "target.mp4", "-o", checkpoint_copy, "--resume", "--ngf", "8", "--iterations", "2")
        assert error_of(conflict) == "--ngf 8 differs from the checkpoint's 4; drop it or use --ngf 4"
        size = invoke("train", "target.mp4", "-o", checkpoint_copy, "--resume", "--size", "256", "--iterations", "2")
        assert "--size 256 differs from the checkpoint's 128" in error_of(size)
    # Without the network options, --resume takes the checkpoint's (not the defaults, ngf 64 etc.).
    resumed = invoke("train", "--synthetic", "-o", checkpoint_copy, "--resume", "--iterations", "2", "--device", "cpu")
    assert resumed.exit_code == 0, (resumed.exception, resumed.output)
    card = json.loads((checkpoint_copy / "card.json").read_text())
    assert (card["architecture"], card["ngf"], card["native_size"]) == ("unet_128", 4, [128, 128])
    assert card["training"]["iterations"] == 2


def test_resume_refuses_foreign_training_states(checkpoint_copy, tmp_path, no_data):
    state = checkpoint_copy / "train_state.pt"
    marker = tmp_path / "pwned"
    cases = {
        "holds pickled Python objects": lambda: torch.save({"iteration": 1, "netD": Payload(marker)}, state),
        "not a vidtrans training state": lambda: torch.save({"iteration": 1}, state),
        "not a readable PyTorch file": lambda: state.write_text("hello"),
    }
    for expected, write in cases.items():
        write()
        message = error_of(invoke("train", "--synthetic", "-o", checkpoint_copy, "--resume", "--iterations", "2"))
        assert message.startswith(f"{state}: {expected}") and "--overwrite" in message, message
    assert not marker.exists()


def test_train_output_is_checked_before_loading_data(checkpoint_copy, tmp_path, no_data):
    before = {p.name: p.read_bytes() for p in checkpoint_copy.iterdir() if p.is_file()}
    existing = invoke("train", "--synthetic", "-o", checkpoint_copy, *TINY)
    assert "already holds a checkpoint; pass --resume" in error_of(existing) and "--overwrite" in error_of(existing)
    assert {p.name: p.read_bytes() for p in checkpoint_copy.iterdir() if p.is_file()} == before
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert "is a file" in error_of(invoke("train", "--synthetic", "-o", a_file, *TINY))
    assert "is a file" in error_of(invoke("train", "--synthetic", "-o", a_file / "sub", *TINY))
    assert a_file.read_text() == "keep me"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert "permission denied" in error_of(invoke("train", "--synthetic", "-o", locked / "new", *TINY))


def test_overwrite_starts_over_and_replaces_the_old_run(checkpoint_copy):
    old_grid = checkpoint_copy / "samples" / "iter_0000500.png"
    old_grid.write_bytes(b"a grid of the old run")
    result = invoke("train", "--synthetic", "-o", checkpoint_copy, "--overwrite", "--iterations", "1",
                    *TINY[:4], "--ngf", "8", *TINY[6:])
    assert result.exit_code == 0, (result.exception, result.output)
    assert json.loads((checkpoint_copy / "card.json").read_text())["ngf"] == 8
    assert not old_grid.exists()
    assert vidtrans.load_model(checkpoint_copy, device="cpu").card.ngf == 8


BAD_TRAIN_OPTIONS = {
    "--arch 'nonsense' is unknown; use one of unet_128": ["--arch", "nonsense"],
    "--size 8 does not fit unet_256: use a multiple of 256 from 256": ["--size", "8"],
    "--size 200 does not fit unet_128: use a multiple of 128 from 128": ["--arch", "unet_128", "--size", "200"],
    "--size 30 does not fit resnet_6blocks: use a multiple of 4 from 32": ["--arch", "resnet_6blocks", "--size", "30",
                                                                           "--d-scales", "1"],
    "--size 32 does not fit resnet_6blocks with --d-scales 2: use a multiple of 4 from 64": ["--arch", "resnet_6blocks",
                                                                                            "--size", "32"],
    "--lr must be a positive learning rate": ["--lr", "0"],
    "--lr must be a positive": ["--lr", "-1e-4"],
    "--ngf must be a whole number from 1": ["--ngf", "0"],
    "--ndf must be a whole number from 1": ["--ndf", "-3"],
    "--save-every must be at least 1": ["--save-every", "0"],
}


@pytest.mark.parametrize("expected", sorted(BAD_TRAIN_OPTIONS))
def test_bad_training_options_are_one_line_before_any_work(tmp_path, no_data, expected):
    message = error_of(invoke("train", "--synthetic", "-o", tmp_path / "new", *BAD_TRAIN_OPTIONS[expected]))
    assert message.startswith(expected), message
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_training_on_cuda_without_cuda_is_one_line(tmp_path, no_data):
    assert "has no CUDA" in error_of(invoke("train", "--synthetic", "-o", tmp_path / "new", "--device", "cuda"))


# --- 3. pickles -----------------------------------------------------------------------------------


def test_pickled_generators_are_refused_in_one_clean_line(tmp_path):
    marker = tmp_path / "pwned"
    pth = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": Payload(marker)}, pth)
    messages = []
    for load in (import_pix2pix, lambda path: vidtrans.load_model(path, device="cpu")):
        with pytest.raises(VidtransError) as info:
            load(pth)
        messages.append(str(info.value))
    messages.append(error_of(invoke("import-pix2pix", pth, "-o", tmp_path / "out")))
    for message in messages:
        assert message == (f"{pth}: holds pickled Python objects, not just tensors; refused to unpickle them (that "
                           "could run code); re-save the generator with torch.save(net.state_dict(), path)")
    assert not marker.exists() and not (tmp_path / "out").exists()


# --- 4. native size of imported generators --------------------------------------------------------


def test_imported_unet_128_runs_at_128_in_fp32_without_resampling(tmp_path, monkeypatch):
    net = tiny_net("unet_128", ngf=8, seed=1)
    pth = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), pth)
    result = invoke("import-pix2pix", pth, "-o", tmp_path / "facades")
    assert result.exit_code == 0, (result.exception, result.output)
    card = json.loads((tmp_path / "facades" / "card.json").read_text())
    assert card["native_size"] == [128, 128] and card["half_precision"] is False
    monkeypatch.setattr(translator_module, "_cpu_multiplies_bf16", lambda: True)  # where auto would pick bf16
    x = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    with torch.no_grad():
        raw = net.eval()(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1)
    expected = ((raw + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for model in (vidtrans.load_model(tmp_path / "facades", device="cpu"), vidtrans.load_model(pth, device="cpu")):
        assert model.native_size == (128, 128) and model.precision == "fp32"
        assert np.abs(model.translate(x).astype(int) - expected).max() <= 1


@pytest.mark.parametrize("size", ["0", "-5", "100000"])
def test_import_refuses_impossible_sizes(tmp_path, size):
    pth = tmp_path / "latest_net_G.pth"
    torch.save(tiny_net().state_dict(), pth)
    message = error_of(invoke("import-pix2pix", pth, "-o", tmp_path / "out", "--size", size))
    assert message == f"--size must be a whole number of pixels from 16 to 8192, got {size}"
    assert not (tmp_path / "out").exists()


# --- 5. working size ------------------------------------------------------------------------------


def test_size_sets_the_working_resolution_like_a_native_size(tmp_path):
    net = tiny_net()
    save_checkpoint(tmp_path / "at64", net, ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance",
                                                      native_size=(64, 64)))
    save_checkpoint(tmp_path / "at128", net, ModelCard(architecture="resnet_6blocks", ngf=4, norm="instance",
                                                       native_size=(128, 128)))
    sized = vidtrans.load_model(tmp_path / "at64", device="cpu", size=128)
    assert sized.native_size == (128, 128) and sized.working_size(288, 512) == (72, 128)
    assert vidtrans.load_model(tmp_path / "at64", device="cpu").working_size(288, 512) == (36, 64)
    x = np.random.default_rng(1).integers(0, 256, (2, 288, 512, 3), dtype=np.uint8)
    native128 = vidtrans.load_model(tmp_path / "at128", device="cpu").translate(x)
    assert np.array_equal(sized.translate(x), native128)
    for bad in (0, 8, 10_000, 2.5, "big"):
        with pytest.raises(VidtransError, match=f"^size must be a whole number of pixels from 16 to 8192, got {bad!r}$"):
            vidtrans.load_model(tmp_path / "at64", device="cpu", size=bad)


def test_size_scales_pose_maps_and_the_targets_pose_statistics(tmp_path):
    from vidtrans.pose import PoseNormalizer, PoseStats

    stats = {"frame_width": 64, "frame_height": 64, "far": 0.7, "near": 0.9, "height_far": 0.5, "height_near": 0.7,
             "version": 1}
    save_checkpoint(tmp_path / "dancer", tiny_net(), ModelCard(
        architecture="resnet_6blocks", ngf=4, norm="instance", native_size=(64, 64), input_kind="pose",
        target_pose_stats=stats))
    native = vidtrans.load_model(tmp_path / "dancer", device="cpu")
    sized = vidtrans.load_model(tmp_path / "dancer", device="cpu", size=160)
    assert sized.native_size == (160, 160)
    source = PoseStats(frame_width=320, frame_height=240, far=0.6, near=0.95, height_far=0.4, height_near=0.8, version=2)
    pose = np.random.default_rng(2).uniform([0, 0, 1], [320, 240, 1], (18, 3)).astype(np.float32)
    at_native = PoseNormalizer(source, PoseStats.from_dict(native.card.target_pose_stats))(pose)
    at_160 = PoseNormalizer(source, PoseStats.from_dict(sized.card.target_pose_stats))(pose)
    # Scaled as pixels are: pixel i of the 64 px frame covers 2.5 i .. 2.5 (i + 1) at 160 px.
    np.testing.assert_allclose(at_160[:, :2], (at_native[:, :2] + 0.5) * 2.5 - 0.5, rtol=1e-5)


def test_run_and_live_take_model_size(tmp_path, rgb_model_dir):
    from tests.media import make_clip

    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    for command in (["run", clip.path, "-o", tmp_path / "out.mp4", "--device", "cpu"],
                    ["live", "--camera", clip.path, "--no-window", "--device", "cpu"],
                    ["batch", tmp_path, "-o", tmp_path / "out", "--devices", "cpu"]):
        result = run_cli(*command, "--model", rgb_model_dir, "--model-size", "4")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("vidtrans: error: Invalid value for '--model-size'") and "16" in result.stderr
    with pytest.raises(VidtransError, match="size must be a whole number of pixels from 16 to 8192, got 4"):
        vidtrans.load_model(rgb_model_dir, device="cpu", size=4)  # the library names its parameter


# --- 6. memory for large frames -------------------------------------------------------------------


def test_large_frames_are_resampled_in_chunks_with_the_same_result(tmp_path, monkeypatch, rgb_model_dir):
    model = vidtrans.load_model(rgb_model_dir, device="cpu", precision="fp32")
    x = np.random.default_rng(3).integers(0, 256, (3, 150, 200, 3), dtype=np.uint8)
    whole = model.translate(x)
    monkeypatch.setattr(translator_module, "_RESAMPLE_CHUNK", 150 * 200 * 3)  # one frame per chunk
    assert np.array_equal(model.translate(x), whole)
    assert_same_frames(np.concatenate([model.translate(f[None]) for f in x]), whole)


def test_translating_large_frames_does_not_hold_the_batch_in_float32(rgb_model_dir):
    """Peak memory of translating 8 frames of 2048x2048 (96 MiB as uint8): in float32 at full size
    the batch takes 384 MiB, twice per call (measured peak growth 486 MiB in a child process, 576
    here); resampled frame by frame the growth is 245 MiB, mostly the result itself.

    Measured in this process, on one thread as before in a child (more threads need less here):
    blocks this large are mapped from the system and given back when freed, so memory that earlier
    tests freed cannot hide them."""
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux /proc/self/clear_refs to measure peak memory")

    def mib(field: str) -> int:
        return int(re.search(field + r":\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) // 1024

    model = vidtrans.load_model(rgb_model_dir, device="cpu", precision="fp32")
    model.translate(np.zeros((1, 64, 64, 3), np.uint8))
    frames = np.full((8, 2048, 2048, 3), 90, np.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS from now on
        before = mib("VmRSS")
        model.translate(frames)
        growth = mib("VmHWM") - before
    finally:
        torch.set_num_threads(threads)
    assert growth < 350


# --- 7. eval options ------------------------------------------------------------------------------


@pytest.mark.parametrize("option,value,expected", [
    ("--frames", "0", "--frames 0: evaluation needs at least 2 frames (flicker compares consecutive frames)"),
    ("--frames", "-4", "--frames -4: evaluation needs at least 2 frames (flicker compares consecutive frames)"),
    ("--batch-size", "0", "--batch-size must be a whole number from 1 to 1024, got 0"),
    ("--batch-size", "-1", "--batch-size must be a whole number from 1 to 1024, got -1"),
    ("--batch-size", "100000", "--batch-size must be a whole number from 1 to 1024, got 100000"),
])
def test_bad_eval_options_are_one_line(rgb_model_dir, option, value, expected):
    args = ["eval", "--model", rgb_model_dir, "--synthetic", "--device", "cpu", "--frames", "4", option, value]
    assert error_of(invoke(*args)) == expected
