"""`vidtrans train` (synthetic, target video, paired folders), resume, DDP on CPU, `vidtrans eval`."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import vidtrans
from tests.conftest import run_cli as cli
from tests.media import dancer_clip, make_clip

TINY = ["--ngf", "8", "--ndf", "8", "--arch", "unet_128", "--size", "128", "--save-every", "2", "--validate-every", "2"]


def test_synthetic_training_writes_a_usable_checkpoint_and_resumes(tmp_path):
    out = tmp_path / "alice"
    first = cli("train", "--synthetic", "-o", out, "--iterations", "3", *TINY)
    assert first.returncode == 0, first.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["input_kind"] == "pose" and card["training"]["iterations"] == 3
    assert card["target_pose_stats"]["frame_height"] == 128 and "ssim" in card["metrics"]["validation"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter_0000002.png", "iter_0000003.png"]
    grid = cv2.imread(str(out / "samples" / "iter_0000003.png"))
    assert grid.shape[1] == 3 * 128  # pose | generated | real
    before = (out / "model.safetensors").read_bytes()

    resumed = cli("train", "--synthetic", "-o", out, "--iterations", "5", "--resume", *TINY)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "card.json").read_text())["training"]["iterations"] == 5
    assert (out / "model.safetensors").read_bytes() != before

    model = vidtrans.load_model(out, device="cpu")
    poses = dancer_clip(tmp_path / "dancer.mp4", frames=6, size=(128, 128))
    result = cli("run", poses.path, "-o", tmp_path / "out.mp4", "--model", out, "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 6
    assert model.native_size == (128, 128)


def test_resume_without_state_is_a_clear_error(tmp_path):
    result = cli("train", "--synthetic", "-o", tmp_path / "new", "--iterations", "2", "--resume", *TINY)
    assert result.returncode == 2 and "nothing to resume" in result.stderr and "Traceback" not in result.stderr


def test_training_from_a_target_video_stores_pose_statistics(tmp_path):
    target = dancer_clip(tmp_path / "target.mp4", look_name="target", frames=30, size=(160, 128), seed=3)
    out = tmp_path / "bob"
    result = cli("train", target.path, "-o", out, "--iterations", "2", *TINY)
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "card.json").read_text())
    stats = card["target_pose_stats"]
    assert stats and stats["frame_height"] == 128 and 0.3 < stats["height_near"] < 1.0
    # run --normalize uses them: the source dancer is fitted to this target's body.
    source = dancer_clip(tmp_path / "source.mp4", frames=12, size=(160, 120), seed=5)
    run = cli("run", source.path, "-o", tmp_path / "out.mp4", "--model", out, "--device", "cpu", "--json")
    assert run.returncode == 0, run.stderr
    assert "normalized to the target" in json.loads(run.stdout)["pose"]


def test_paired_folders_side_by_side_and_a_b(tmp_path):
    rng = np.random.default_rng(0)
    ab = tmp_path / "ab"
    ab.mkdir()
    for i in range(12):
        cv2.imwrite(str(ab / f"{i:03d}.png"), rng.integers(0, 256, (64, 128, 3), dtype=np.uint8))
    result = cli("train", "--data", ab, "-o", tmp_path / "m1", "--iterations", "2", *TINY)
    assert result.returncode == 0, result.stderr
    folders = tmp_path / "split"
    for side in ("A", "B"):
        (folders / side).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(folders / side / f"{i}.jpg"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    result = cli("train", "--data", folders, "-o", tmp_path / "m2", "--iterations", "2", *TINY)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "m2" / "card.json").read_text())["input_kind"] == "rgb"


def test_bad_training_data_gives_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    unpaired = tmp_path / "unpaired"
    (unpaired / "A").mkdir(parents=True)
    (unpaired / "B").mkdir(parents=True)
    cv2.imwrite(str(unpaired / "A" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(unpaired / "B" / "y.png"), np.zeros((8, 8, 3), np.uint8))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for i in range(3):
        (corrupt / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    nobody = make_clip(tmp_path / "nobody.mp4", frames=15, size=(96, 64), audio=False)
    cases = {  # the message, and the exit status: 1 a failure of the data, 2 a usage error
        "no images found": (["--data", empty], 2),
        "share no file names": (["--data", unpaired], 2),
        "not a readable image": (["--data", corrupt], 1),
        "person was found in none of its": ([nobody.path], 1),
        "exactly one data source": (["--synthetic", "--data", empty], 2),
    }
    for expected, (args, code) in cases.items():
        result = cli("train", *args, "-o", tmp_path / "out", "--iterations", "2", *TINY)
        assert result.returncode == code, (expected, result.stderr)
        assert expected in result.stderr and result.stderr.count("\n") == 1, (expected, result.stderr)


def test_ddp_with_two_gloo_processes(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this python")
    out = tmp_path / "ddp"
    # Paired images rather than --synthetic: a child process would measure the synthetic target's
    # statistics on twenty detected dances (the test session's shortcut does not reach it).
    ab = tmp_path / "ab"
    ab.mkdir()
    for i in range(4):
        cv2.imwrite(str(ab / f"{i}.png"), np.random.default_rng(i).integers(0, 256, (128, 256, 3), dtype=np.uint8))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port: a fixed one fails when anything else holds it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", str(port), "-m", "vidtrans",
                             "train", "--data", str(ab), "-o", str(out), "--iterations", "2", "--device", "cpu", *TINY],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["world_size"] == 2 and card["training"]["iterations"] == 2
    assert vidtrans.load_model(out, device="cpu").translate(np.zeros((1, 128, 128, 3), np.uint8)).shape == (1, 128, 128, 3)


def test_eval_reports_metrics_as_json(tmp_path):
    out = tmp_path / "m"
    assert cli("train", "--synthetic", "-o", out, "--iterations", "2", *TINY).returncode == 0
    result = cli("eval", "--model", out, "--synthetic", "--seed", "20000001", "--frames", "6", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) >= {"ssim", "psnr", "flicker_ratio"} and metrics["frames"] == 6
    assert 0 < metrics["ssim"] < 1 and metrics["psnr"] > 5
    used = cli("eval", "--model", out, "--synthetic", "--seed", "5", "--frames", "6")
    assert used.returncode == 2 and "used in training" in used.stderr


def test_fine_tuning_starts_from_a_models_generator(tmp_path):
    from safetensors.numpy import load_file

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert cli("train", "--synthetic", "-o", base, "--iterations", "2", *TINY).returncode == 0
    # A learning rate too small to move any weight: what the run saves is what it started from.
    result = cli("train", "--synthetic", "--init-from", base, "-o", tuned, "--iterations", "1", "--lr", "1e-30",
                 "--ndf", "4", "--save-every", "1", "--validate-every", "1")
    assert result.returncode == 0, result.stderr
    before, after = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert before.keys() == after.keys() and all(np.allclose(before[k], after[k], rtol=0, atol=1e-20) for k in before)
    card = json.loads((tuned / "card.json").read_text())
    assert card["training"]["init_from"]["model"] == str(base) and card["ngf"] == 8 and card["native_size"] == [128, 128]

    wider = cli("train", "--synthetic", "--init-from", base, "-o", tmp_path / "wider", "--ngf", "16")
    assert wider.returncode == 2 and (f"--init-from {base} starts from its generator as it is (unet_128, --ngf 8, "
                                      "--size 128): drop --ngf 16") in wider.stderr
    both = cli("train", "--synthetic", "--init-from", base, "-o", tuned, "--resume")
    assert both.returncode == 2 and "--init-from" in both.stderr and "--resume" in both.stderr
    assert not (tmp_path / "wider").exists()
    # The model to start from is never the folder the run replaces.
    before = (base / "model.safetensors").read_bytes()
    onto = cli("train", "--synthetic", "--init-from", base, "-o", base, "--overwrite")
    assert onto.returncode == 2 and "same folder" in onto.stderr and (base / "model.safetensors").read_bytes() == before
    # Resuming keeps the record of where the run started.
    assert cli("train", "--synthetic", "-o", tuned, "--iterations", "2", "--resume").returncode == 0
    card = json.loads((tuned / "card.json").read_text())
    assert card["training"]["init_from"]["model"] == str(base) and card["training"]["iterations"] == 2
