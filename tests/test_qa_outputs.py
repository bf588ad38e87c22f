"""Outputs never replace what a command reads, and outputs written together appear together.

Defects from the QA run of 2026-12-01: `export` onto the model's own files, `pose` losing the old
keypoints when interrupted or failing at the end, `pose` writing its video and keypoints to one
file or NPZ bytes into a .json, `batch --report` naming the output folder or the manifest, and
`translate_video` given a model name or a dict of options.
"""

import os
import signal
import shutil

import numpy as np
import pytest
import torch

import vidtrans.cli
from tests.conftest import run_cli
from tests.media import make_clip, random_generator
from vidtrans.atomic import publish_together, temp_path
from vidtrans.batch import MANIFEST_NAME, BatchUsageError, translate_folder
from vidtrans.errors import VidtransError
from vidtrans.pipeline import render_pose_video, translate_video
from vidtrans.pose import stages
from vidtrans.video import VideoWriter


def one_line_error(result) -> str:
    """The error line of a failed command, checked to be the only thing it said."""
    assert result.returncode != 0 and result.exception is None, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vidtrans: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "in.mp4", frames=6, size=(64, 48)).path


@pytest.fixture
def detections(monkeypatch):
    """Pose detection replaced by "nobody in any frame": these tests are about files, and MediaPipe
    would cost seconds. Returns the list of detection stages made (empty: no work was done)."""
    made = []

    class NoPerson:
        def __init__(self, frame_size=None, whole_body=False, **_):
            made.append(self)
            self.points = 128 if whole_body else 18

        def process(self, batch):
            batch.keypoints = np.zeros((len(batch.frames), self.points, 3), np.float32)
            yield batch

        def flush(self):
            return ()

    monkeypatch.setattr(stages, "KeypointStage", NoPerson)
    return made


# --- 1. export onto the model's own files ----------------------------------------------------------


@pytest.fixture
def model_copy(tmp_path, rgb_model_dir):
    folder = tmp_path / "model"
    shutil.copytree(rgb_model_dir, folder)
    return folder


@pytest.mark.parametrize("name", ["model.safetensors", "card.json", "background.png"])
def test_export_refuses_the_files_of_the_model_it_reads(cli, model_copy, name):
    before = {p.name: p.read_bytes() for p in model_copy.iterdir()}
    line = one_line_error(cli("export", model_copy, "-o", model_copy / name, "--overwrite"))
    assert "would overwrite the input" in line and "choose another output path" in line
    assert {p.name: p.read_bytes() for p in model_copy.iterdir()} == before


def test_export_refuses_the_pth_it_reads(cli, tmp_path, monkeypatch):
    pth = tmp_path / "net_G.pth"
    torch.save(random_generator("resnet_6blocks", 3, 3, 8, "instance").state_dict(), pth)
    before = pth.read_bytes()
    monkeypatch.chdir(tmp_path)  # as `vidtrans export net_G.pth -o net_G.pth` from its folder
    line = one_line_error(cli("export", pth, "-o", "net_G.pth", "--overwrite"))
    assert "would overwrite the input" in line
    assert pth.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["net_G.pth"]


@pytest.mark.parametrize("name", ["model.safetensors", "card.json", "background.png"])
def test_run_refuses_to_write_over_the_files_of_its_model(cli, clip, model_copy, name):
    before = {p.name: p.read_bytes() for p in model_copy.iterdir()}
    line = one_line_error(cli("run", clip, "-m", model_copy, "-o", model_copy / name, "--overwrite"))
    assert "would overwrite the input" in line
    assert {p.name: p.read_bytes() for p in model_copy.iterdir()} == before


# --- 2. pose: both outputs or neither --------------------------------------------------------------


def stop_in_close(how):
    """VideoWriter.close, made to be stopped at the last moment: by SIGINT (through vidtrans's own
    handler, as from the terminal) or by a failure (a full disk, say)."""
    close = VideoWriter.close

    def stopped_close(self):
        if how == "signal":
            assert signal.getsignal(signal.SIGINT) is vidtrans.cli._stop
            os.kill(os.getpid(), signal.SIGINT)
        else:
            raise VidtransError(f"{self.dst}: could not finish the video (No space left on device)")
        close(self)

    return stopped_close


@pytest.mark.parametrize("how", ["signal", "failure"])
def test_pose_stopped_at_the_end_keeps_both_old_files(tmp_path, clip, detections, monkeypatch, how):
    video, keypoints = tmp_path / "pose.mp4", tmp_path / "kp.npz"
    video.write_bytes(b"the old pose video")
    keypoints.write_bytes(b"the old keypoints")
    monkeypatch.setattr(VideoWriter, "close", stop_in_close(how))
    result = run_cli("pose", clip, "-o", video, "--keypoints", keypoints, "--overwrite")
    if how == "signal":
        assert result.returncode == 128 + signal.SIGINT and result.stderr.splitlines()[-1] == "vidtrans: interrupted"
    else:
        assert "No space left on device" in one_line_error(result)
    assert video.read_bytes() == b"the old pose video"
    assert keypoints.read_bytes() == b"the old keypoints"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npz", "pose.mp4"]


def test_pose_replaces_both_files_when_it_completes(tmp_path, clip, detections):
    video, keypoints = tmp_path / "pose.mp4", tmp_path / "kp.npz"
    video.write_bytes(b"the old pose video")
    keypoints.write_bytes(b"the old keypoints")
    summary = render_pose_video(clip, video, keypoints_out=keypoints, overwrite=True)
    assert summary.frames == 6
    assert np.load(keypoints)["keypoints"].shape == (6, 18, 3)
    assert video.read_bytes()[4:8] == b"ftyp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kp.npz", "pose.mp4"]


def test_publish_together_puts_back_what_it_replaced_when_one_fails(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"old first")
    (second / "in the way").mkdir(parents=True)  # a folder no file can replace
    new_first, new_second = temp_path(first), temp_path(second)
    new_first.write_bytes(b"new first")
    with pytest.raises(VidtransError, match="second"):
        publish_together([(new_first, first), (new_second, second)], overwrite=True)
    assert first.read_bytes() == b"old first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second"]


def test_publish_together_without_overwrite_removes_what_it_published_when_one_fails(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    new_first, new_second = temp_path(first), temp_path(second)
    second.write_bytes(b"someone else's")  # appeared while we worked
    with pytest.raises(VidtransError, match="second: appeared while"):
        publish_together([(new_first, first), (new_second, second)], overwrite=False)
    assert second.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second"]


# --- 3 and 15. pose: one file for both outputs, keypoints in another format ------------------------


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_pose_video_and_keypoints_on_one_path_refused_before_any_work(tmp_path, clip, detections, overwrite):
    both = tmp_path / "pose.mp4"
    both.write_bytes(b"an existing file")
    line = one_line_error(run_cli("pose", clip, "-o", both, "--keypoints", both, *overwrite))
    assert f"{both}" in line and "same file" in line and "another name" in line
    assert detections == [] and both.read_bytes() == b"an existing file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pose.mp4"]


@pytest.mark.parametrize("name", ["kp.json", "kp", "kp.npz.txt"])
def test_pose_keypoints_other_than_npz_refused_before_any_work(tmp_path, clip, detections, name):
    line = one_line_error(run_cli("pose", clip, "-o", tmp_path / "pose.mp4", "--keypoints", tmp_path / name))
    assert name in line and ".npz" in line
    assert detections == [] and list(tmp_path.iterdir()) == []


# --- 9. batch --report ----------------------------------------------------------------------------


@pytest.fixture
def clips(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_clip(src / "sub" / "a.mp4", frames=4, size=(64, 48))
    return src


@pytest.mark.parametrize("report", [".", "sub"])
def test_batch_report_on_a_folder_it_will_create_is_refused_before_any_work(tmp_path, clips, rgb_model_dir,
                                                                             monkeypatch, report):
    monkeypatch.setattr("vidtrans.batch._local_workers", lambda *a: pytest.fail("the batch started"))
    out = tmp_path / "out"
    line = one_line_error(run_cli("batch", clips, "-o", out, "-m", rgb_model_dir, "--report", out / report))
    assert "folder" in line and "report file name" in line
    assert not out.exists()


def test_batch_report_on_the_manifest_says_so(tmp_path, clips, rgb_model_dir):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BatchUsageError, match=f"{MANIFEST_NAME}: is the batch's own manifest; choose another"):
        translate_folder(clips, out, rgb_model_dir, report=out / MANIFEST_NAME)
    assert list(out.iterdir()) == []


# --- 19. translate_video's model and options -------------------------------------------------------


def test_translate_video_takes_a_model_path(tmp_path, clip, rgb_model_dir):
    summary = translate_video(clip, tmp_path / "out.mp4", str(rgb_model_dir), preset="ultrafast")
    assert summary.frames == 6 and summary.model == rgb_model_dir.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.parametrize("model", [None, 3])
def test_translate_video_refuses_what_is_not_a_model_in_one_line(tmp_path, clip, model):
    with pytest.raises(VidtransError, match="^model must be .*load_model.*, not") as error:
        translate_video(clip, tmp_path / "out.mp4", model)
    assert "\n" not in str(error.value) and list(tmp_path.iterdir()) == []


def test_options_of_the_wrong_type_are_one_line_naming_the_parameter(tmp_path, clip, rgb_model_dir):
    with pytest.raises(VidtransError, match=r"^options must be a RunOptions, not dict; .*smoothing='ema'"):
        translate_video(clip, tmp_path / "out.mp4", str(rgb_model_dir), {"smoothing": "ema"})
    with pytest.raises(VidtransError, match=r"^options must be a RunOptions, not dict"):
        render_pose_video(clip, tmp_path / "pose.mp4", {"start": 1})
    with pytest.raises(VidtransError, match=r"^batch must be a BatchOptions, not dict"):
        translate_folder(clip.parent, tmp_path / "out", rgb_model_dir, batch={"workers": 1})
    assert list(tmp_path.iterdir()) == []
