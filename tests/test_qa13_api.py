"""QA pass 13, the Python API and printed lines: a state that is not a RecurrentState is one line;
messages name settings as Python callers write them (`device='cpu'`, `overwrite=True`) and as
flags on the command line; `Summary.smoothing` is a plain string however it was chosen; piped
(log files, CI), summaries and training progress are one line each; paths are printed as they
are, brackets included."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vidtrans
from tests.conftest import one_line
from tests.media import TINY_TRAINING, make_clip, paired_folder, random_generator
from vidtrans.errors import UsageError
from vidtrans.models.checkpoint import ModelCard, convert_pix2pix, save_checkpoint
from vidtrans.models.translator import RecurrentState

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def temporal_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "temporal"
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", input_nc=6, native_size=(64, 64),
                     temporal={"previous": "output", "first": "black"})
    save_checkpoint(folder, random_generator("resnet_6blocks", 6, 3, 8, "instance", seed=1), card)
    return vidtrans.load_model(folder, device="cpu", precision="fp32", backend="torch")


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --- a state that is not a RecurrentState -------------------------------------------------------

@pytest.mark.parametrize("state", [{}, 5, "previous"])
def test_translate_clip_refuses_a_state_that_is_not_a_recurrent_state(temporal_model, rgb_model_dir, state):
    frames = np.zeros((2, 48, 64, 3), np.uint8)
    for model in (temporal_model, vidtrans.load_model(rgb_model_dir, device="cpu")):
        with pytest.raises(UsageError, match=f"^state must be a RecurrentState .*; not {type(state).__name__}$"):
            model.translate_clip(frames, state)


def test_translate_clip_goes_on_from_a_recurrent_state_or_starts_a_clip_from_none(temporal_model):
    clip = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    state = RecurrentState()
    parts = [temporal_model.translate_clip(clip[:2], state), temporal_model.translate_clip(clip[2:], state)]
    assert np.array_equal(np.concatenate(parts), temporal_model.translate(clip))
    assert np.array_equal(temporal_model.translate_clip(clip, None), temporal_model.translate(clip))


# --- settings named as the caller writes them ---------------------------------------------------

def test_python_callers_are_told_parameters_and_values_not_flags(rgb_model_dir, no_cuda):
    with pytest.raises(UsageError, match=r"; use device='cpu'$"):
        vidtrans.load_model(rgb_model_dir, device="cuda")
    with pytest.raises(UsageError, match=r"^fp16 is not supported on the CPU; use precision='fp32' or 'bf16'$"):
        vidtrans.load_model(rgb_model_dir, device="cpu", precision="fp16")
    with pytest.raises(UsageError, match=r"runs fp32 only, not bf16; use precision='fp32' or backend='torch'$"):
        vidtrans.load_model(rgb_model_dir, device="cpu", precision="bf16", backend="onnxruntime")


def test_the_command_line_is_told_its_flags(cli, tmp_path, rgb_model_dir, no_cuda):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    assert one_line(cli("run", clip, "-m", rgb_model_dir, "--device", "cuda"), 2).endswith("; use --device cpu")
    assert one_line(cli("run", clip, "-m", rgb_model_dir, "--device", "cpu", "--precision", "fp16"), 2).endswith(
        "; use --precision fp32 or bf16")
    assert one_line(cli("run", clip, "-m", rgb_model_dir, "--device", "cpu", "--precision", "bf16", "--backend",
                        "onnxruntime"), 2).endswith("; use --precision fp32 or --backend torch")


def test_an_existing_output_asks_python_callers_for_overwrite_true(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"mine")
    fix = r": already exists; choose another name or pass overwrite=True$"
    with pytest.raises(UsageError, match=fix):
        vidtrans.translate_video(clip, existing, rgb_model_dir)
    with pytest.raises(UsageError, match=fix):
        vidtrans.render_pose_video(clip, existing)
    assert existing.read_bytes() == b"mine"


def test_an_existing_checkpoint_asks_python_callers_for_overwrite_true_and_the_command_for_the_flag(cli, tmp_path):
    pth = tmp_path / "latest_net_G.pth"
    torch.save(random_generator("resnet_6blocks", 3, 3, 8, "instance").state_dict(), pth)
    convert_pix2pix(pth, tmp_path / "ck")
    with pytest.raises(UsageError, match=r"already holds a checkpoint; pass overwrite=True to replace it$"):
        convert_pix2pix(pth, tmp_path / "ck")
    assert one_line(cli("import-pix2pix", pth, "-o", tmp_path / "ck"), 2).endswith(
        "already holds a checkpoint; pass --overwrite to replace it")


@pytest.mark.parametrize("command", ["run", "live"])
def test_an_existing_output_asks_the_command_for_overwrite(cli, tmp_path, rgb_model_dir, command):
    """`run`'s --overwrite is a switch (--overwrite/--no-overwrite), `live`'s a lone flag."""
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"mine")
    args = [clip, "-o", existing] if command == "run" else ["--camera", clip, "--no-window", "--record", existing]
    line = one_line(cli(command, *args, "-m", rgb_model_dir, "--device", "cpu"), 2)
    assert line.endswith(": already exists; choose another name or pass --overwrite")
    assert existing.read_bytes() == b"mine"


# --- Summary.smoothing --------------------------------------------------------------------------

def test_summary_smoothing_is_a_plain_string_chosen_or_from_the_card(tmp_path):
    folder = tmp_path / "ema"
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                              smoothing={"method": "ema", "strength": 0.5}))
    model = vidtrans.load_model(folder, device="cpu")
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    for asked, applied in (("auto", "ema"), ("flow", "flow"), ("none", "none")):
        summary = vidtrans.translate_video(clip, tmp_path / f"{asked}.mp4", model, smoothing=asked)
        assert type(summary.smoothing) is str and summary.smoothing == applied
        assert repr(summary.smoothing) == repr(applied)


# --- piped output -------------------------------------------------------------------------------

def vidtrans_piped(*args, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m vidtrans ARGS` with stdout and stderr to pipes, as in a log file or CI; COLUMNS=40
    is the width rich would wrap lines at there. `env`: more environment variables."""
    env = {**os.environ, "COLUMNS": "40", "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "vidtrans", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_a_piped_run_prints_its_summary_on_one_line_with_the_path_as_it_is(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False).path
    output = tmp_path / ("a folder with a rather long name " * 3).strip() / "take [final] of the dance.mp4"
    output.parent.mkdir()
    result = vidtrans_piped("run", clip, "-o", output, "-m", rgb_model_dir, "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert output.is_file()
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("3 frames in ") and lines[0].endswith(f"-> {output}"), lines


def test_piped_training_prints_each_progress_line_whole(tmp_path):
    data = paired_folder(tmp_path / "pairs", 2)
    out = tmp_path / "ck"
    result = vidtrans_piped("train", "--data", data, "-o", out, "--iterations", "2", *TINY_TRAINING, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["iteration 1/2", "iteration 2/2",
                                                      f"wrote {out} after 2 iterations"]
    assert all(re.search(r" ssim [\d.]+,? +psnr [\d.]+( dB)?$", line) for line in lines), lines


def test_a_terminal_shows_the_file_name_in_the_progress_bar_as_it_is(tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "take [final].mp4", frames=3, size=(64, 48), audio=False).path
    result = vidtrans_piped("run", clip.name, "-o", "out.mp4", "-m", rgb_model_dir, "--device", "cpu", cwd=tmp_path,
                            FORCE_COLOR="1", COLUMNS="120")  # rich draws its progress bar as on a terminal
    assert result.returncode == 0, result.stderr
    assert "take [final].mp4 -> tiny translating" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)


def test_a_live_session_ended_by_max_frames_names_the_setting_as_the_caller_does(cli, tmp_path, rgb_model_dir):
    from vidtrans.live import run_live

    camera = make_clip(tmp_path / "cam.mp4", frames=3, size=(64, 48), audio=False).path
    model = vidtrans.load_model(rgb_model_dir, device="cpu")
    assert run_live(model, camera, window=False, max_frames=2).ended == "2 frames shown (max_frames)"
    result = cli("live", "--camera", camera, "--no-window", "--max-frames", "2", "-m", rgb_model_dir, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "; 2 frames shown (--max-frames)" in result.stderr.splitlines()[-1]
