"""QA pass 16, training and eval: a stop that surfaces as another error is an interruption; sample
grids written whole, with the first save (so a run stopped before it, or an --overwrite run,
leaves the folder as it was); a missing card.json called what it is; images of one name in A/;
training from a video where the person is not always found; eval given a video that is not there."""

from __future__ import annotations

import hashlib
import signal

import numpy as np
import pytest

import vidtrans
import vidtrans.cli
from tests.conftest import one_line
from tests.media import make_clip, paired_folder
from vidtrans.train import trainer as trainer_module

TINY = ["--size", "64", "--arch", "resnet_6blocks", "--ngf", "8", "--ndf", "8"]


def test_a_stop_that_surfaces_as_another_error_is_an_interruption(tmp_path, cli, monkeypatch, rgb_model_dir):
    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)

    def load(*args, **kwargs):
        try:
            vidtrans.cli._stop(signal.SIGTERM, None)
        except KeyboardInterrupt:
            # What torch.save's zip writer raises when a stop cuts it short.
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 2665856 vs 2665808")

    monkeypatch.setattr(vidtrans, "load_model", load)
    result = cli("run", clip.path, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4")
    assert result.returncode == 143 and result.stderr.strip().splitlines() == ["vidtrans: interrupted"]


def digests(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_a_run_stopped_before_its_first_save_leaves_nothing(tmp_path, cli, monkeypatch):
    data = paired_folder(tmp_path / "pairs", pairs=6)
    out = tmp_path / "run"

    def stopped(self, metrics, final=False):
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(trainer_module.Trainer, "save", stopped)
    result = cli("train", "--data", data, "-o", out, *TINY, "--iterations", "4", "--validate-every", "1",
                 "--save-every", "3")
    assert result.returncode == 130
    assert not out.exists()


def test_an_overwrite_run_replaces_no_grid_before_its_first_save(tmp_path, cli, monkeypatch):
    data = paired_folder(tmp_path / "pairs", pairs=6)
    out = tmp_path / "run"
    first = cli("train", "--data", data, "-o", out, *TINY, "--iterations", "4", "--validate-every", "1",
                "--save-every", "4")
    assert first.returncode == 0, first.stderr
    before = digests(out)
    assert len([p for p in before if p.parts[0] == "samples"]) == 4
    real_save = trainer_module.Trainer.save

    def stop_at_the_first_save(self, metrics, final=False):
        raise KeyboardInterrupt("Ctrl-C")

    monkeypatch.setattr(trainer_module.Trainer, "save", stop_at_the_first_save)
    stopped = cli("train", "--data", data, "-o", out, *TINY, "--iterations", "8", "--validate-every", "1",
                  "--save-every", "6", "--overwrite", "--seed", "7")
    assert stopped.returncode == 130
    assert digests(out) == before
    monkeypatch.setattr(trainer_module.Trainer, "save", real_save)
    again = cli("train", "--data", data, "-o", out, *TINY, "--iterations", "6", "--validate-every", "1",
                "--save-every", "6", "--overwrite", "--seed", "7")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"iter_{i:07d}.png" for i in range(1, 7)]


def test_a_grid_that_cannot_be_written_is_one_line(tmp_path, cli, monkeypatch):
    data = paired_folder(tmp_path / "pairs", pairs=6)
    out = tmp_path / "run"
    monkeypatch.setattr(trainer_module, "write_atomically", _full_disk)
    # Iteration 1's grid goes with the save at 2; iteration 3's is written alone, onto a full disk.
    failed = cli("train", "--data", data, "-o", out, *TINY, "--iterations", "4", "--validate-every", "1",
                 "--save-every", "2")
    # (after the progress lines)
    assert failed.returncode == 1 and failed.exception is None
    line = failed.stderr.strip().splitlines()[-1]
    assert line.startswith("vidtrans: error: ") and "iter_0000003.png: cannot write the sample grid (No space" in line
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter_0000001.png", "iter_0000002.png"]


def _full_disk(dst, write, **kwargs):
    raise vidtrans.errors.VidtransError(f"{dst}: cannot write the sample grid (No space left on device); check "
                                        "free disk space and that the folder is writable")


def test_a_folder_without_card_json_is_called_no_checkpoint(tmp_path, cli):
    data = paired_folder(tmp_path / "pairs", pairs=4)
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "run", *TINY, "--iterations", "1",
                        "--init-from", data), 1)
    assert f"{data}: not a checkpoint folder (card.json missing)" in line and "permissions" not in line


def test_images_of_one_name_in_a_side_are_refused(tmp_path, cli):
    data = tmp_path / "pairs"
    for side in ("A", "B"):
        (data / side).mkdir(parents=True)
    import cv2

    image = np.full((32, 32, 3), 128, np.uint8)
    for name in ("1.png", "2.png", "3.png", "3.jpg"):
        cv2.imwrite(str(data / "A" / name), image)
    for name in ("1.png", "2.png", "3.png"):
        cv2.imwrite(str(data / "B" / name), image)
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "run", *TINY, "--iterations", "1"), 2)
    assert f"{data / 'A'}: 3.jpg and 3.png have the same name, which pairs an image of A/ with one of B/" in line


@pytest.mark.parametrize("given", ["missing.mp4", "folder"])
def test_eval_of_a_video_that_is_not_there_says_so(tmp_path, cli, given):
    from tests.media import random_generator
    from vidtrans.models.checkpoint import ModelCard, save_checkpoint
    from vidtrans.pose.render import PoseStyle

    checkpoint = tmp_path / "ck"
    save_checkpoint(checkpoint, random_generator("resnet_6blocks", 3, 3, 8, "instance"),
                    ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64),
                              input_kind="pose", pose_style=PoseStyle().to_dict(),
                              training={"video": "dance.mp4", "crop": [0, 0, 64, 64], "held_out": {"from_frame": 36}}))
    (tmp_path / "folder").mkdir()
    line = one_line(cli("eval", "-m", checkpoint, "--video", tmp_path / given), 1)  # as run fails on a missing input
    what = "is a folder, not a video file" if given == "folder" else "no such video file"
    assert f"{tmp_path / given}: {what}; pass the video ck was trained on, dance.mp4" in line
