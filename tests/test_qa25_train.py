"""QA pass 25, training as a user: a folder holding a model without its training state (a shipped
or imported model, or a run whose train_state.pt was deleted to save space) is told what can be
done with it, not sent round between --resume and dropping it; the training data is never among
the files a run writes or replaces (a target video named as a checkpoint's file, even with
--overwrite; a paired folder that is the checkpoint's samples/ folder); a target video's frames
are kept in memory only as many as fit in a bound (at --size 2048 a few minutes of video took
tens of GiB, and the process was killed without a word)."""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING, make_clip, paired_folder
from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person


@pytest.fixture
def exact_detection(monkeypatch):
    """dance(frames): the keypoints of a dance that target videos' poses are then detected as,
    without MediaPipe (`dancer_video` renders it)."""
    import vidtrans.pose.track as track_module

    def dance(frames: int = 12) -> np.ndarray:
        track = dance_keypoints(3, frames, 64, 64, TARGET_LOOK)
        monkeypatch.setattr(track_module, "detect_keypoints", lambda *args, **kwargs: track.copy())
        return track

    return dance


def dancer_video(path, track: np.ndarray):
    """An MP4 of the dance at `path`, whatever its name says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    made = make_clip(path.parent / "dance.mp4", frames=len(track), size=(64, 64), audio=False,
                     frame_fn=lambda i, w, h: render_person(track[i], h, w, TARGET_LOOK)).path
    return made.rename(path)


def test_a_model_without_training_state_is_not_sent_between_resume_and_dropping_it(tmp_path, rgb_model_dir):
    data = paired_folder(tmp_path / "pairs", 4)
    model = shutil.copytree(rgb_model_dir, tmp_path / "model")
    before = {p.name: p.read_bytes() for p in model.iterdir()}

    resumed = one_line(cli("train", "--data", data, "-o", model, "--resume", "--iterations", "2", *TINY_TRAINING), 2)
    assert resumed == (f"vidtrans: error: {model}: holds a model but no training state (train_state.pt) to resume; "
                       f"fine-tune it with --init-from {model} and another output folder, or start over there with "
                       "--overwrite instead of --resume")
    fresh = one_line(cli("train", "--data", data, "-o", model, "--iterations", "2", *TINY_TRAINING), 2)
    assert fresh == (f"vidtrans: error: {model}: already holds a model, without the training state (train_state.pt) "
                     f"--resume needs; fine-tune it with --init-from {model} and another output folder, or pass "
                     "--overwrite to start over (replacing it)")
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before

    # Both ways out work as told.
    tuned = cli("train", "--data", data, "-o", tmp_path / "tuned", "--init-from", model, "--iterations", "1",
                "--device", "cpu", "--save-every", "1", "--validate-every", "1", "--d-scales", "1", "--ndf", "4")
    assert tuned.returncode == 0, tuned.stderr
    assert cli("train", "--data", data, "-o", model, "--overwrite", "--iterations", "1", *TINY_TRAINING).returncode == 0
    assert (model / "train_state.pt").is_file()


def test_an_empty_folder_given_to_resume_is_told_to_start_fresh(tmp_path):
    data = paired_folder(tmp_path / "pairs", 4)
    (tmp_path / "new").mkdir()
    line = one_line(cli("train", "--data", data, "-o", tmp_path / "new", "--resume", *TINY_TRAINING), 2)
    assert line == f"vidtrans: error: {tmp_path / 'new'}: nothing to resume (train_state.pt missing); drop --resume " \
                   "to start fresh"


@pytest.mark.parametrize("name", ["background.png", "train_state.pt", "samples/iter_0000001.png"])
def test_a_target_video_named_as_a_file_training_writes_is_never_replaced(tmp_path, exact_detection, name):
    out = tmp_path / "ck"
    video = dancer_video(out / name, exact_detection())
    before = video.read_bytes()
    line = one_line(cli("train", video, "-o", out, "--overwrite", "--iterations", "1", *TINY_TRAINING), 2)
    assert line == (f"vidtrans: error: {video}: the target video is where training writes its checkpoint's "
                    f"{name}; move the video out of {out}, or write the checkpoint to another folder")
    assert video.read_bytes() == before and sorted(p.name for p in out.rglob("*")) == sorted(name.split("/"))

    # Through a link too: the file it leads to is what training would replace.
    link = tmp_path / "target.mp4"
    link.symlink_to(video)
    line = one_line(cli("train", link, "-o", out, "--overwrite", "--iterations", "1", *TINY_TRAINING), 2)
    assert line.startswith(f"vidtrans: error: {link}: the target video is where training writes")
    assert video.read_bytes() == before


def test_a_target_video_beside_its_checkpoint_under_another_name_trains(tmp_path, exact_detection):
    out = tmp_path / "ck"
    video = dancer_video(out / "target.mp4", exact_detection())
    before = video.read_bytes()
    assert cli("train", video, "-o", out, "--iterations", "1", *TINY_TRAINING).returncode == 0
    assert cli("train", video, "-o", out, "--overwrite", "--iterations", "1", *TINY_TRAINING).returncode == 0
    assert video.read_bytes() == before and (out / "model.safetensors").is_file()


def test_a_paired_folder_that_is_the_checkpoints_samples_folder_is_refused(tmp_path):
    out = tmp_path / "ck"
    data = paired_folder(out / "samples", 4)
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    for extra in ([], ["--overwrite"]):
        line = one_line(cli("train", "--data", data, "-o", out, "--iterations", "1", *TINY_TRAINING, *extra), 2)
        assert line == (f"vidtrans: error: {data}: the training data is the folder where training writes its "
                        "sample grids; move the pairs to another folder, or write the checkpoint to another folder")
    # One named as a grid is the folder's own at first: --overwrite would delete it.
    (data / "iter_0000001.png").write_bytes((data / "000.png").read_bytes())
    before["iter_0000001.png"] = (data / "000.png").read_bytes()
    one_line(cli("train", "--data", data, "-o", out, "--overwrite", "--iterations", "1", *TINY_TRAINING), 2)
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before and sorted(p.name for p in out.iterdir()) == [
        "samples"]


def test_a_target_videos_frames_are_kept_as_many_as_fit_in_memory(tmp_path, exact_detection, monkeypatch):
    from vidtrans.train import data as data_module

    monkeypatch.setattr(data_module, "FRAME_MEMORY", 20 * 64 * 64 * 3, raising=False)  # 20 frames at --size 64
    video = dancer_video(tmp_path / "target.mp4", exact_detection(40))
    out = tmp_path / "ck"
    trained = cli("train", video, "-o", out, "--iterations", "1", *TINY_TRAINING)
    assert trained.returncode == 0, trained.stderr
    warnings = [line for line in trained.stderr.splitlines() if line.startswith("vidtrans: warning: ")]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"vidtrans: warning: {video}: training keeps 20 of the 40 frames showing the person, spread over the clip, as "
        "it holds them in memory and at --size 64 no more fit in ")
    assert warnings[0].endswith(" GiB; train at a smaller --size to keep more")
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["frames"] == 20
    # The held-out tail is the last tenth of the frames kept: from the 19th kept one, frame 36 of 40.
    assert card["training"]["held_out"]["from_frame"] == 36
    # A temporal run keeps 10 runs of two consecutive frames (the last, at the clip's end, one alone).
    temporal = cli("train", video, "-o", tmp_path / "temporal", "--temporal", "--iterations", "1", *TINY_TRAINING)
    assert temporal.returncode == 0, temporal.stderr
    assert json.loads((tmp_path / "temporal" / "card.json").read_text())["training"]["frames"] == 19
    assert "training keeps 19 of the 40 frames showing the person" in temporal.stderr
