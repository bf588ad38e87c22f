"""A third hostile-input pass, outputs and models: a container that cannot hold the codec is refused
before any work (it failed after pose detection, after every frame, or per clip of a batch), audio
it cannot hold is re-encoded to a codec it can, an output place that cannot be written is a usage
error, and a generator with layers missing is named as such."""

from pathlib import Path

import pytest

from tests.conftest import one_line
from tests.media import decode_all, make_clip
from vidtrans.errors import UsageError
from vidtrans.options import EncodeOptions
from vidtrans.video import check_output_settings


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4", frames=4, size=(64, 48), audio=False).path


@pytest.mark.parametrize("command,name,codec", [
    ("run", "o.webm", None),  # the default libx264: WebM holds VP8/VP9/AV1 only
    ("pose", "o.webm", None),
    ("run", "o.gif", None),
    ("run", "o.mov", "libvpx-vp9"),  # MOV refuses VP9 only when its header is written
])
def test_a_container_that_cannot_hold_the_codec_is_refused_before_any_work(cli, tmp_path, clip, rgb_model_dir,
                                                                           monkeypatch, command, name, codec):
    import vidtrans.pose.track

    def no_detection(*args, **kwargs):
        raise AssertionError("pose detection ran before the output was checked")

    monkeypatch.setattr(vidtrans.pose.track, "detect_keypoints", no_detection)
    args = [command, clip, "-o", tmp_path / name] + (["--model", rgb_model_dir] if command == "run" else [])
    line = one_line(cli(*args, *(["--codec", codec] if codec else [])), 2)
    suffix = name.split(".")[1]
    assert f".{suffix} file cannot hold {codec or 'libx264'} video" in line and "extension such as .mkv" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_the_message_names_codecs_the_container_holds():
    with pytest.raises(UsageError, match=r"o\.webm: a \.webm file cannot hold libx264 video; use the codec libvpx-vp9"):
        check_output_settings("o.webm", EncodeOptions())


def test_batch_ext_that_cannot_hold_the_codec_is_refused_up_front(cli, tmp_path, clip, rgb_model_dir):
    line = one_line(cli("batch", tmp_path, "-o", tmp_path / "out", "--model", rgb_model_dir, "--ext", "webm"), 2)
    assert "--ext webm: a .webm file cannot hold libx264 video" in line
    assert not (tmp_path / "out").exists()


def test_a_codec_the_container_holds_is_written(cli, tmp_path, clip, rgb_model_dir):
    result = cli("run", clip, "-o", tmp_path / "o.webm", "--model", rgb_model_dir, "--codec", "libvpx-vp9")
    assert result.returncode == 0, result.stderr
    frames, _ = decode_all(tmp_path / "o.webm")
    assert len(frames) == 4


def test_an_encoder_that_cannot_start_is_one_usage_line(cli, tmp_path, clip, rgb_model_dir):
    # No NVIDIA encoder here (and on H100/H200 there is none either): refused before any work.
    result = cli("run", clip, "-o", tmp_path / "o.mp4", "--model", rgb_model_dir, "--codec", "h264_nvenc")
    if result.returncode == 0:
        pytest.skip("this machine has an NVIDIA encoder")
    assert "h264_nvenc refused its settings" in one_line(result, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_generator_with_layers_missing_is_named_as_such(cli, tmp_path):
    import torch

    from tests.media import random_generator

    state = random_generator("unet_256", 3, 3, 8, "batch", seed=0).state_dict()
    torch.save({k: v for i, (k, v) in enumerate(state.items()) if i % 2 == 0}, tmp_path / "half.pth")
    for args in (["import-pix2pix", tmp_path / "half.pth", "-o", tmp_path / "imported"],
                 ["run", tmp_path / "in.mp4", "--model", tmp_path / "half.pth", "-o", tmp_path / "o.mp4"]):
        make_clip(tmp_path / "in.mp4", frames=2, size=(64, 48), audio=False)
        line = one_line(cli(*args), 1)
        assert "half.pth: its layers do not make a whole pix2pix generator" in line and "card" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.pth", "in.mp4"]


def test_audio_a_container_cannot_hold_is_reencoded_to_one_it_can(cli, tmp_path, rgb_model_dir):
    """WebM holds no AAC: the clip's AAC audio becomes Opus there (AAC stays AAC in .mp4)."""
    import av

    clip = make_clip(tmp_path / "in.mp4", frames=24, size=(64, 48), fps=24, audio=True)
    result = cli("run", clip.path, "-o", tmp_path / "o.webm", "--model", rgb_model_dir, "--codec", "libvpx-vp9")
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "o.webm")) as out:
        audio = out.streams.audio[0]
        assert audio.codec_context.name == "opus"
        seconds = sum(frame.samples for frame in out.decode(audio)) / audio.codec_context.sample_rate
    assert abs(seconds - 1.0) < 0.05  # the clip's second of audio, resampled, none lost


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_place_that_cannot_be_written_is_a_usage_error(cli, tmp_path, clip, rgb_model_dir):
    assert "cannot write to /proc" in one_line(cli("run", clip, "-o", "/proc/x.mp4", "--model", rgb_model_dir), 2)
    assert "cannot create the output folder" in one_line(
        cli("batch", tmp_path, "-o", "/proc/vidtrans-out", "--model", rgb_model_dir), 2)
    assert "is a file, not a folder" in one_line(cli("run", clip, "-o", clip / "x.mp4", "--model", rgb_model_dir), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_live_refuses_a_recording_its_container_cannot_hold_before_the_first_frame(cli, tmp_path, clip,
                                                                                   rgb_model_dir):
    result = cli("live", "--model", rgb_model_dir, "--camera", clip, "--no-window", "--max-frames", "2",
                 "--record", tmp_path / "rec.webm")
    line = one_line(result, 2)
    assert "not a .webm file" in line and ".mp4, .mkv or .mov" in line
    assert "live:" not in result.stdout + result.stderr  # no session was announced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_import_into_a_place_that_cannot_be_written_is_refused_before_converting(cli, tmp_path):
    import torch

    from tests.media import random_generator

    torch.save(random_generator("unet_256", 3, 3, 8, "batch", seed=0).state_dict(), tmp_path / "g.pth")
    line = one_line(cli("import-pix2pix", tmp_path / "g.pth", "-o", "/proc/vidtrans-imported"), 2)
    assert "/proc/vidtrans-imported: cannot write the checkpoint there" in line
