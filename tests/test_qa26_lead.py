"""Session 22's own fixes: the reader's frame estimate for a trimmed clip, keypoint files refused
before the model loads, one process's second writer of a file told so, a resumed run's held-out tail."""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import vidtrans
from tests.conftest import run_cli as cli
from tests.media import dancer_clip, make_clip
from vidtrans.video.reader import VideoReader


@pytest.mark.parametrize("start, end", [(None, 0.5), (0.1, 0.5), (0.02, 0.3), (None, 0.48), (0.48, None), (0.03, 0.05), (0.29, 0.33)])
def test_trimmed_estimate_equals_the_frames_read(tmp_path, start, end):
    # 25 fps: frames at 0, 0.04, ...; a span's end falling half-way between two frames (12.5 frames)
    # was rounded to even (12) while 13 frames are read.
    clip = make_clip(tmp_path / "c.mp4", frames=20, fps=25).path
    reader = VideoReader(clip, start=start, end=end)
    estimate = reader.frame_count
    assert estimate == sum(1 for _ in reader)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=6, size=(64, 48), audio=False).path


@pytest.fixture
def no_model_load(monkeypatch):
    monkeypatch.setattr(vidtrans, "load_model", lambda *args, **kwargs: pytest.fail("the model was loaded"))


@pytest.mark.parametrize("name, message", [
    ("missing.npz", r"missing\.npz: no such keypoint file or folder$"),
    ("poses.txt", r"poses\.txt: unknown keypoint file type"),
])
def test_keypoints_that_cannot_be_read_are_refused_before_a_named_model_loads(tmp_path, clip, rgb_model_dir,
                                                                             no_model_load, name, message):
    # Loading takes seconds (the first use on onnxruntime exports the graph): a misspelt file name was told after.
    keypoints = tmp_path / name
    if name.endswith(".txt"):
        keypoints.write_text("1 2 3")
    with pytest.raises(vidtrans.VidtransError, match=message):
        vidtrans.translate_video(clip, tmp_path / "out.mp4", rgb_model_dir, keypoints=keypoints)
    assert not (tmp_path / "out.mp4").exists()


def test_run_refuses_a_missing_keypoint_file_before_the_model_loads(tmp_path, clip, rgb_model_dir, no_model_load):
    result = cli("run", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(rgb_model_dir),
                 "--keypoints", str(tmp_path / "poses.npz"))
    assert result.returncode == 1, result.stderr
    assert "poses.npz: no such keypoint file or folder" in result.stderr and "Traceback" not in result.stderr


def test_a_resumed_target_video_run_holds_out_the_tail_its_checkpoint_held_out(tmp_path):
    # The tail was counted anew on --resume: detection finding the person in a frame more or less (another
    # machine, another MediaPipe build) moves it, and frames the checkpoint was scored on get trained on.
    target = dancer_clip(tmp_path / "target.mp4", look_name="target", frames=40, size=(160, 128), seed=3)
    out = tmp_path / "bob"
    tiny = ["--ngf", "8", "--ndf", "8", "--arch", "unet_128", "--size", "128", "--save-every", "2",
            "--validate-every", "2"]
    assert cli("train", target.path, "-o", out, "--iterations", "2", *tiny).returncode == 0
    card = json.loads((out / "card.json").read_text())
    first = card["training"]["held_out"]["from_frame"]
    card["training"]["held_out"]["from_frame"] = first - 3  # as a detection finding 3 frames more would count it
    (out / "card.json").write_text(json.dumps(card))
    resumed = cli("train", target.path, "-o", out, "--iterations", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["held_out"]["from_frame"] == first - 3
    card["training"]["held_out"]["from_frame"] = 10_000  # past the video: no tail left to hold out
    (out / "card.json").write_text(json.dumps(card))
    refused = cli("train", target.path, "-o", out, "--iterations", "6", "--resume")
    assert refused.returncode == 1 and "held out its frames from number 10000 on, which now leaves" in refused.stderr, \
        refused.stderr


def _canvas_file(path, canvas, video=None, point=(160.0, 120.0)):
    body = []
    for i in range(18):
        body += [point[0] * (1 + i / 100), point[1] * (1 + i / 100), 0.9]
    frame = {"people": [{"pose_keypoints_2d": body}], "canvas_width": canvas[0], "canvas_height": canvas[1]}
    data = {"frames": [frame] * 3}
    if video is not None:
        data.update(width=video[0], height=video[1])
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("canvas", [(320, 240), (640, 480)])
@pytest.mark.parametrize("normalised", [False, True])
def test_a_canvas_and_the_videos_own_size_in_one_file_draw_the_poses_on_that_video(tmp_path, normalised, canvas):
    # The canvas's size took the place of the frame size the file gives: a video of the canvas's shape but
    # not the size the file names was accepted, and the size the file names was lost.
    from vidtrans.pose.files import read_keypoints
    from vidtrans.pose.track import keypoints_for

    point = (0.5, 0.5) if normalised else (canvas[0] / 2, canvas[1] / 2)
    keypoints = _canvas_file(tmp_path / "k.json", canvas, (640, 480), point)
    track = read_keypoints(keypoints)
    assert (track.width, track.height) == (640, 480)
    assert track.keypoints[0, 0, :2] == pytest.approx((320.0, 240.0), abs=0.01)
    small = make_clip(tmp_path / "small.mp4", frames=3, size=(320, 240), audio=False).path
    with VideoReader(small) as reader, pytest.raises(vidtrans.VidtransError, match="keypoints of a 640x480 video"):
        keypoints_for(keypoints, small, reader)
    large = make_clip(tmp_path / "large.mp4", frames=3, size=(640, 480), audio=False).path
    with VideoReader(large) as reader:
        assert keypoints_for(keypoints, large, reader).keypoints[0, 0, 0] == pytest.approx(320.0, abs=0.01)


def test_a_canvas_alone_still_scales_to_a_video_of_its_shape(tmp_path):
    from vidtrans.pose.track import keypoints_for

    keypoints = _canvas_file(tmp_path / "k.json", (320, 240))
    large = make_clip(tmp_path / "large.mp4", frames=3, size=(640, 480), audio=False).path
    with VideoReader(large) as reader:
        assert keypoints_for(keypoints, large, reader).keypoints[0, 0, 0] == pytest.approx(320.0, abs=0.01)


def test_messages_raised_in_pipeline_threads_spell_settings_as_the_caller_does():
    # The stages' threads ran outside the caller's context: `run` on weights that overflow said "use
    # precision='fp32'", Python's spelling, on the command line.
    from vidtrans.errors import UsageError
    from vidtrans.options import spell, spelled
    from vidtrans.runner import Parallel, run_stages

    class Refuses:
        def process(self, item):
            raise UsageError(f"use {spell('precision')} fp32")
            yield item

        def flush(self):
            return ()

    with spelled({"precision": "--precision"}):
        for stage in (Refuses(), Parallel(Refuses(), 2, ThreadPoolExecutor(2))):
            with pytest.raises(UsageError, match="^use --precision fp32$"):
                list(run_stages(iter([1, 2, 3]), [stage]))


def test_an_output_name_too_long_is_shown_cut(tmp_path, clip, rgb_model_dir):
    # "file name too long" echoed the whole name: a line of hundreds of characters.
    result = cli("run", clip, "-o", tmp_path / ("x" * 330 + ".mp4"), "--model", rgb_model_dir)
    assert result.returncode == 2 and "file name too long" in result.stderr, result.stderr
    assert len(result.stderr.strip()) < 250 and "..." in result.stderr


def test_pose_on_a_pose_map_video_says_the_input_already_is_pose_maps(tmp_path):
    # It said "no person found ...; their pose maps are blank; use a clip where the whole body is visible".
    dancer = dancer_clip(tmp_path / "dancer.mp4", frames=12, size=(128, 128)).path
    first = cli("pose", dancer, "-o", tmp_path / "maps.mp4")
    assert first.returncode == 0 and "warning" not in first.stderr, first.stderr
    again = cli("pose", tmp_path / "maps.mp4", "-o", tmp_path / "again.mp4", "--json")
    assert again.returncode == 0, again.stderr
    assert "the input already shows pose maps" in again.stderr and "whole body is visible" not in again.stderr
    assert json.loads(again.stdout)["input_is_pose_maps"] is True


def test_frames_whose_points_are_all_too_faint_to_draw_count_as_nobody(tmp_path, pose_model):
    # A keypoint file's frame whose body points were all at or below the confidence pose maps draw from
    # counted as showing a person: drawn blank, it got no background and no count among frames without one.
    from vidtrans.pose.files import write_keypoints_npz
    from vidtrans.pose.keypoints import has_person

    clip = make_clip(tmp_path / "clip.mp4", frames=4, size=(64, 48), audio=False).path
    track = np.zeros((4, 18, 3), np.float32)
    track[:, :, :2] = 20.0
    track[:2, :, 2] = 0.9
    track[2:, :, 2] = 0.04  # OpenPose's noise, under its render threshold
    write_keypoints_npz(tmp_path / "k.npz", track, 64, 48)
    assert has_person(track).tolist() == [True, True, False, False]
    summary = vidtrans.translate_video(clip, tmp_path / "out.mp4", pose_model, keypoints=tmp_path / "k.npz")
    assert summary.frames_without_person == 2


def test_batch_with_onnxruntime_runs_on_the_cpu_of_a_cuda_machine(tmp_path, rgb_model_dir, monkeypatch):
    # `run` and `live` were mended for it; batch resolved "auto" to the GPU itself, which ONNX Runtime refused.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import torch

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    clips = tmp_path / "in"
    clips.mkdir()
    make_clip(clips / "a.mp4", frames=3, size=(64, 48), audio=False)
    result = cli("batch", clips, "-o", tmp_path / "out", "--model", rgb_model_dir, "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "a.mp4").is_file()


def test_hardware_encoders_other_than_nvenc_are_refused_in_one_line():
    # Their quality scales are their own: a fixed quantiser made crf 18 near lossless (QSV, AMF).
    from vidtrans.video.writer import encoder_options

    for codec in ("h264_qsv", "hevc_amf", "h264_vaapi"):
        with pytest.raises(vidtrans.VidtransError, match=f"{codec}: of the hardware encoders only NVENC's"):
            encoder_options(codec, 18, "medium")
    assert encoder_options("h264_nvenc", 18, "medium")["cq"] == "18"


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp"])
def test_a_still_picture_is_estimated_as_one_frame(tmp_path, ext):
    # Its estimate was 0 (unknown), so the progress bar of `run picture.png` had no total.
    import cv2

    path = tmp_path / f"still.{ext}"
    cv2.imwrite(str(path), np.full((48, 64, 3), 120, np.uint8))
    with VideoReader(path) as reader:
        assert reader.frame_count == 1 == sum(1 for _ in reader)


def test_a_hardware_encoder_is_refused_before_its_pixel_formats_are_advised(tmp_path, clip, rgb_model_dir):
    # `--codec h264_qsv` said to pass --pix-fmt nv12, which then got the refusal of the encoder itself.
    result = cli("run", clip, "-o", tmp_path / "out.mp4", "--model", rgb_model_dir, "--codec", "h264_qsv")
    assert result.returncode == 2 and "only NVENC's are supported" in result.stderr, result.stderr


@pytest.mark.parametrize("name, extension", [("out.webm", "mkv"), ("out.mkv", "mov"), ("out.m3u8", "mp4")])
def test_a_container_refusal_names_a_container_that_can_hold_the_video(tmp_path, name, extension):
    # batch read the extension to suggest for --ext out of the writer's message text.
    from vidtrans.errors import ContainerError
    from vidtrans.options import EncodeOptions
    from vidtrans.video import check_output_settings

    codec = "libvpx-vp9" if name == "out.mkv" else "libx264"
    encode = EncodeOptions(codec=codec, pix_fmt="yuv420p")
    if name == "out.mkv":  # Matroska holds VP9: the refusal to test is of a codec it cannot hold
        encode = EncodeOptions(codec="gif", pix_fmt="rgb8")
    try:
        check_output_settings(tmp_path / name, encode)
    except ContainerError as e:
        assert e.extension == extension
    else:
        pytest.skip(f"this FFmpeg writes {codec} into {name}")
