"""Pose handling in `run` and `pose`: frames where nobody is found (counted, warned about, shown as
the target's empty scene), keypoint files written beside pose videos, and when `run` compiles."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import vidtrans
from tests.media import dancer_clip, decode_all, make_clip
from vidtrans.cli import app
from vidtrans.errors import VidtransError
from vidtrans.models.checkpoint import ModelCard, load_checkpoint
from vidtrans.pipeline import COMPILE_AUTO_EVIDENCE, render_pose_video, translate_video
from vidtrans.video import VideoReader
from vidtrans.train.synth import SOURCE_LOOK, TARGET_LOOK, render_person


def empty_room(height: int, width: int, look=SOURCE_LOOK) -> np.ndarray:
    return render_person(np.zeros((18, 3), np.float32), height, width, look)


@pytest.fixture(scope="module")
def empty_clip(tmp_path_factory):
    """A still of the source dancer's room with nobody in it."""
    room = empty_room(120, 160)
    return make_clip(tmp_path_factory.mktemp("clips") / "empty.mp4", frames=10, size=(160, 120), audio=False,
                     frame_fn=lambda i, w, h: room)


def test_run_without_a_person_shows_the_empty_scene_and_says_so(tmp_path, empty_clip):
    out = tmp_path / "out.mp4"
    # Smoothing on, so that the summary reports flicker (the shipped model recommends none).
    result = CliRunner().invoke(app, ["run", str(empty_clip.path), "-o", str(out), "--device", "cpu", "--json",
                                      "--smooth", "flow"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames"] == 10 and summary["frames_without_person"] == 10
    # A still input has no flicker to compare with: no "0.00x" figure.
    assert summary["flicker_ratio"] is None
    shown = " ".join(result.stderr.split())  # the summary wraps at the terminal's width
    assert "flicker n/a" in shown and "0.00x" not in shown
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == ["vidtrans: warning: no person found in 10 of 10 frames; the output shows the target's "
                        "empty scene there; use a clip where the whole body is visible"]
    # The output is the shipped model's empty scene (codec loss aside), not what the generator
    # makes of a blank pose map (10 grey levels off on average, up to 155).
    background = vidtrans.load_model("pose2person", device="cpu").background
    images, _ = decode_all(out)
    assert len(images) == 10
    for image in images:
        error = np.abs(image.astype(int) - background.astype(int))
        assert error.mean() < 3 and np.percentile(error, 99) < 20


def test_pose_command_warns_when_nobody_is_found(tmp_path, empty_clip):
    result = CliRunner().invoke(app, ["pose", str(empty_clip.path), "-o", str(tmp_path / "pose.mp4"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames_without_person"] == 10 and summary["frames_with_person"] == 0
    assert "vidtrans: warning: no person found in 10 of 10 frames; their pose maps are blank" in result.stderr


def test_a_dancer_is_not_replaced_by_the_background(tmp_path):
    dancer = dancer_clip(tmp_path / "dancer.mp4", frames=8, size=(160, 120))
    model = vidtrans.load_model("pose2person", device="cpu")
    summary = vidtrans.translate_video(dancer.path, tmp_path / "out.mp4", model)
    assert summary.frames == 8 and summary.frames_without_person == 0
    images, _ = decode_all(tmp_path / "out.mp4")
    assert all(np.abs(image.astype(int) - model.background.astype(int)).mean() > 5 for image in images)


def test_training_stores_the_empty_scene(tmp_path):
    from vidtrans.train.data import Dances, SyntheticPairs, VideoPairs
    from vidtrans.train.trainer import TrainConfig, Trainer

    source = SyntheticPairs(size=64, dances=Dances(validation_frames=2))
    config = TrainConfig(iterations=1, architecture="resnet_6blocks", ngf=4, ndf=4, save_every=1, validate_every=1)
    card = ModelCard(architecture="resnet_6blocks", native_size=(64, 64), input_kind="pose")
    Trainer(source, tmp_path / "synthetic", config, card, device="cpu").fit()
    assert np.array_equal(load_checkpoint(tmp_path / "synthetic").background, empty_room(64, 64, TARGET_LOOK))

    # From a target video: the per-pixel median of the training crops. This dancer hardly leaves
    # the centre in one second, so only the room around them is known to match.
    target = dancer_clip(tmp_path / "target.mp4", look_name="target", frames=24, size=(128, 128), seed=3)
    scene = VideoPairs(target.path, size=64).background()
    error = np.abs(scene.astype(int) - empty_room(64, 64, TARGET_LOOK).astype(int)).max(axis=2)
    assert scene.shape == (64, 64, 3) and (error <= 5).mean() > 0.8


def test_a_background_of_the_wrong_size_is_a_one_line_error(tmp_path, rgb_model_dir):
    folder = tmp_path / "tiny"
    shutil.copytree(rgb_model_dir, folder)
    cv2.imwrite(str(folder / "background.png"), np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(VidtransError, match=r"background.png: 12x10, but the model's native size is 64x64"):
        load_checkpoint(folder)
    (folder / "background.png").write_bytes(b"not a png")
    with pytest.raises(VidtransError, match="not a readable image"):
        load_checkpoint(folder)


@pytest.fixture(scope="module")
def dancer(tmp_path_factory):
    return dancer_clip(tmp_path_factory.mktemp("clips") / "dancer.mp4", frames=8, size=(160, 120))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc as a folder nobody can write to")
def test_unwritable_keypoints_path_fails_before_any_work(tmp_path, dancer):
    video = tmp_path / "pose.mp4"
    with pytest.raises(VidtransError, match="/proc"):
        render_pose_video(dancer.path, video, keypoints_out="/proc/kp.npz")
    assert list(tmp_path.iterdir()) == []  # no video, no temporary file


@pytest.mark.parametrize("intruder", ["keypoints", "video"])
def test_pose_video_and_keypoints_appear_together_or_not_at_all(tmp_path, dancer, intruder):
    """Another program creates one of the two outputs while the pose video is made: that file is
    kept as it is, and the other output is not left behind on its own."""
    video, keypoints = tmp_path / "pose.mp4", tmp_path / "kp.npz"
    taken = {"keypoints": keypoints, "video": video}[intruder]

    def progress(done, total, what):
        if not taken.exists():
            taken.write_bytes(b"someone else's")

    with pytest.raises(VidtransError, match=f"{taken.name}: .*overwrite=True"):
        render_pose_video(dancer.path, video, keypoints_out=keypoints, progress=progress)
    assert taken.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [taken.name]


class CompileSpy:
    def __init__(self, model, monkeypatch):
        self.calls = 0
        monkeypatch.setattr(model, "compile", self)

    def __call__(self):
        self.calls += 1


def test_auto_compile_waits_for_the_clip_to_prove_long(tmp_path, rgb_model_dir, monkeypatch):
    # The container claims a million frames (cover art, a bogus header, a huge start time...).
    monkeypatch.setattr(VideoReader, "frame_count", property(lambda self: 1_000_000))
    model = vidtrans.load_model(rgb_model_dir, device="cpu", backend="torch")  # compile="on" needs torch
    spy = CompileSpy(model, monkeypatch)
    short = make_clip(tmp_path / "short.mp4", frames=12, audio=False)
    translate_video(short.path, tmp_path / "auto.mp4", model, compile="auto")
    assert spy.calls == 0  # 15-20 s of compilation for 12 frames would be a loss
    translate_video(short.path, tmp_path / "on.mp4", model, compile="on")
    assert spy.calls == 1  # asked for: compiled
    long = make_clip(tmp_path / "long.mp4", frames=COMPILE_AUTO_EVIDENCE + 8, size=(32, 32), audio=False)
    translate_video(long.path, tmp_path / "long_out.mp4", model, compile="auto")
    assert spy.calls == 2  # a clip that really is long still compiles


def test_live_without_a_person_shows_the_empty_scene_as_run_does(empty_clip):
    """Someone stepping out of the webcam's view: the target's empty scene, not the generator's
    artefacts from a blank pose map (as live showed before)."""
    from vidtrans.live.process import FrameProcessor
    from vidtrans.video.camera import CapturedFrame

    model = vidtrans.load_model("pose2person", device="cpu")
    processor = FrameProcessor(model)
    try:
        shown = [processor(CapturedFrame(frame.image, frame.time, i)).output
                 for i, frame in enumerate(VideoReader(empty_clip.path)) if i < 3]
    finally:
        processor.close()
    for output in shown:
        assert np.array_equal(output, model.background)
