"""QA pass 8, video I/O and the Python API: file names with a colon are files (not FFmpeg
protocols), --start works where FFmpeg cannot seek, huge --end values and arguments of the wrong
type are one-line usage errors before any work, option conflicts exit 2, and messages name flags
on the command line and parameters in Python."""

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import vidtrans
from tests.conftest import one_line
from tests.media import decode_all, make_clip
from vidtrans.errors import UsageError
from vidtrans.options import EncodeOptions, RunOptions
from vidtrans.pose import write_keypoints_npz
from vidtrans.video import SourceMedia, VideoReader, VideoWriter, check_output_settings, probe

README = Path(__file__).resolve().parent.parent / "README.md"


# --- #2: colons in file names -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["12:30 clip.mp4", "./x:y.mp4"])
def test_an_input_named_with_a_colon_is_read_as_a_file(cli, tmp_path, monkeypatch, rgb_model_dir, name):
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / Path(name).name, frames=6, size=(64, 48))
    assert probe(name).frame_count == 6
    result = cli("run", name, "--model", rgb_model_dir, "-o", "out.mp4", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 6
    assert len(decode_all(tmp_path / "out.mp4")[0]) == 6


def test_a_file_prefix_names_the_file_called_so_not_the_one_without_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_clip(tmp_path / "file:z.mp4", frames=5, size=(64, 48), audio=False)
    make_clip(tmp_path / "z.mp4", frames=9, size=(96, 80), audio=False)
    with VideoReader("file:z.mp4") as reader:
        frames = list(reader)
    assert len(frames) == 5 and frames[0].image.shape == (48, 64, 3)


@pytest.mark.parametrize("name", ["x:y.mp4", "pipe:1.mp4"])
def test_an_output_named_with_a_colon_is_written_as_a_file_with_the_sources_audio(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    clip = make_clip(tmp_path / "in:put.mp4", frames=4, size=(64, 48), audio=True)
    with VideoWriter(name, 64, 48, clip.time_base, clip.fps, source=SourceMedia("in:put.mp4")) as writer:
        for image, pts in zip(clip.images, clip.pts):
            writer.write(image, pts)
    with av.open(str(tmp_path / name)) as written:
        assert written.streams.video[0].frames == 4 and len(written.streams.audio) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in:put.mp4", name])


# --- #4: --start where FFmpeg cannot seek -------------------------------------------------------

@pytest.fixture
def late_video(tmp_path):
    """Matroska, video from 10 s and audio from 0 s: FFmpeg refuses to seek to any time before 10 s."""
    return make_clip(tmp_path / "late.mkv", frames=12, size=(64, 48), pts=[10000 + 40 * i for i in range(12)],
                     time_base=Fraction(1, 1000))


@pytest.mark.parametrize("start,first", [(5, 0), (9.9, 0), (10.2, 5)])
def test_start_in_a_file_that_cannot_seek_there_decodes_from_the_beginning(late_video, start, first):
    with VideoReader(late_video.path, start=start) as reader:
        times = [frame.time for frame in reader]
    assert times == pytest.approx(late_video.times[first:])


def test_run_with_start_in_a_file_that_cannot_seek_there(cli, tmp_path, late_video, rgb_model_dir):
    result = cli("run", late_video.path, "--model", rgb_model_dir, "-o", tmp_path / "o.mkv", "--start", 5, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 12


# --- #5: --end beyond what timestamps can say -----------------------------------------------------

def test_a_huge_end_is_a_usage_error_everywhere(cli, tmp_path, rgb_model_dir):
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    line = one_line(cli("run", clip.path, "--model", rgb_model_dir, "-o", tmp_path / "o.mp4", "--end", "1e308"), 2)
    assert "--end must be a number of seconds from 0 to 1,000,000,000, got 1e+308" in line
    for make in (lambda: RunOptions(end=1e308), lambda: VideoReader(clip.path, start=1e300)):
        with pytest.raises(UsageError, match=r"^(end|start) must be a number of seconds from 0 to"):
            make()
    with VideoReader(clip.path, end=1e9) as reader:
        assert len(list(reader)) == 3


# --- #7: the Python API's arguments -----------------------------------------------------------------

@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", frames=4, size=(64, 48), audio=False).path


def test_overwrite_that_is_not_a_bool_is_refused_and_the_file_kept(tmp_path, clip, rgb_model_dir):
    existing = tmp_path / "o.mp4"
    existing.write_bytes(b"keep me")
    for overwrite in ("no", 1, None):
        with pytest.raises(UsageError, match=r"^overwrite must be True or False, not"):
            vidtrans.translate_video(clip, existing, rgb_model_dir, overwrite=overwrite)
    assert existing.read_bytes() == b"keep me"


@pytest.mark.parametrize("arguments,message", [
    (dict(src=None), r"^src must be a file path \(a str or os.PathLike\), not None$"),
    (dict(src=3), r"^src must be a file path .*not 3$"),
    (dict(dst=7), r"^dst must be a file path .*not 7$"),
    (dict(keypoints=5), r"^keypoints must be a file path .*not 5$"),
    (dict(state={}), r"^state must be a RecurrentState .*not dict$"),
    (dict(progress=5), r"^progress must be None or a function .*not 5$"),
])
def test_arguments_of_the_wrong_type_are_refused_before_the_model_is_loaded(tmp_path, clip, arguments, message):
    # A model that does not exist: an argument checked only after loading would fail on that instead.
    call = dict(src=clip, dst=tmp_path / "o.mp4", model=tmp_path / "no-such-model") | arguments
    with pytest.raises(UsageError, match=message):
        vidtrans.translate_video(**call)
    with pytest.raises(vidtrans.VidtransError, match="no-such-model"):
        vidtrans.translate_video(clip, tmp_path / "o.mp4", tmp_path / "no-such-model")


def test_pose_video_arguments_of_the_wrong_type_are_refused(tmp_path, clip):
    from vidtrans.pipeline import render_pose_video

    with pytest.raises(UsageError, match=r"^dst must be a file path"):
        render_pose_video(clip, None)
    with pytest.raises(UsageError, match=r"^progress must be None or a function"):
        render_pose_video(clip, tmp_path / "p.mp4", progress="yes")
    with pytest.raises(UsageError, match=r"^whole_body must be True or False, not 'no'"):
        render_pose_video(clip, tmp_path / "p.mp4", whole_body="no")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_unknown_option_names_are_usage_errors_naming_them(tmp_path, clip, rgb_model_dir):
    with pytest.raises(UsageError, match=r"^RunOptions has no option bogus; its options are batch_size, .*, pix_fmt"):
        vidtrans.translate_video(clip, tmp_path / "o.mp4", rgb_model_dir, bogus=1)
    with pytest.raises(UsageError, match=r"^RunOptions has no option foo; its options are batch_size, .*, encode$"):
        RunOptions(foo=1)
    with pytest.raises(UsageError, match=r"^EncodeOptions has no option quality"):
        EncodeOptions(quality=3)
    with pytest.raises(UsageError, match=re.escape("model_size is not an option of RunOptions: the model's size is "
                                                   "chosen when it is loaded; pass vidtrans.load_model(model, "
                                                   "size=32) as the model")):
        vidtrans.translate_video(clip, tmp_path / "o.mp4", rgb_model_dir, model_size=32)
    with pytest.raises(UsageError, match=re.escape("load_model(model, device='cpu')")):
        RunOptions(device="cpu")
    assert not (tmp_path / "o.mp4").exists()


def test_switches_take_only_bools():
    with pytest.raises(UsageError, match=r"^side_by_side must be True or False, not 'no'$"):
        RunOptions(side_by_side="no")
    assert RunOptions(normalize=False).normalize is False


# --- #10: option conflicts exit 2 -------------------------------------------------------------------

@pytest.mark.parametrize("keypoints,expected", [
    ("k.json", "keypoints are saved as NPZ; give a file name ending in .npz"),
    ("p.mp4", "the pose video and the keypoints would be the same file"),
])
def test_pose_keypoints_that_cannot_be_written_are_usage_errors(cli, tmp_path, clip, keypoints, expected):
    line = one_line(cli("pose", clip, "-o", tmp_path / "p.mp4", "--keypoints", tmp_path / keypoints), 2)
    assert expected in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# --- #11: flags on the command line, parameters in Python -------------------------------------------

def test_keypoints_with_pose_none_name_the_flags(cli, tmp_path, clip):
    keypoints = tmp_path / "k.npz"
    write_keypoints_npz(keypoints, np.zeros((4, 18, 3), np.float32), 64, 48)
    line = one_line(cli("run", clip, "-o", tmp_path / "o.mp4", "--pose", "none", "--keypoints", keypoints), 2)
    assert "--keypoints are drawn only" in line and "--pose none takes the input as pose maps" in line
    assert "drop --keypoints or use a pose model with --pose auto or detect" in line
    assert "pose=" not in line


def test_encoder_settings_name_the_flag_on_the_command_line_and_the_field_in_python(cli, tmp_path, clip,
                                                                                  rgb_model_dir):
    line = one_line(cli("run", clip, "--model", rgb_model_dir, "--codec", "png", "--pix-fmt", "yuv420p", "-o",
                        tmp_path / "o.mkv"), 2)
    assert "--pix-fmt 'yuv420p' cannot be encoded by png" in line
    line = one_line(cli("run", clip, "--model", rgb_model_dir, "--crf", 99, "-o", tmp_path / "o.mp4"), 2)
    assert "--crf 99 is outside what libx264 takes" in line
    with pytest.raises(UsageError, match=r"^pix_fmt 'yuv420p' cannot be encoded by png"):
        check_output_settings(tmp_path / "o.mkv", EncodeOptions(codec="png", pix_fmt="yuv420p"))


def test_usage_errors_name_the_command_whose_help_to_see(cli):
    # "--size" without its two values fails in the parser, before the command's own context exists.
    missing_values = one_line(cli("eval", "--size", 100), 2)
    bad_value = one_line(cli("eval", "--frames", "x"), 2)
    suffix = bad_value.rsplit("; see ", 1)[1]
    assert suffix.endswith(" eval --help") and missing_values.endswith("; see " + suffix)


# --- #14 ----------------------------------------------------------------------------------------------

def test_pose_json_reports_null_for_what_a_pose_video_does_not_have(cli, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
    result = cli("pose", clip.path, "-o", tmp_path / "p.mp4", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    for name in ("model", "precision", "batch_size", "smoothing", "recurrent", "flicker_input", "flicker_output",
                 "flicker_ratio"):
        assert summary[name] is None, name
    assert summary["frames"] == 2 and summary["pose"] == "detected"


def test_smoothing_strength_is_documented_as_what_is_accepted(cli):
    assert RunOptions(smoothing_strength=0.0) and RunOptions(smoothing_strength=0.999)
    with pytest.raises(UsageError, match=r"^smoothing_strength must be from 0 up to but not including 1, got 1.0"):
        RunOptions(smoothing_strength=1.0)
    help_text = " ".join(cli("run", "--help").stdout.split())
    assert "Smoothing strength, from 0 (none) up to but not including 1 (default: what the card" in help_text
    assert "`--smooth-strength` sets how strongly (0 up to but not including 1; default 0.5)" in README.read_text()
