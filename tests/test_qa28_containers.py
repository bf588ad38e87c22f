"""QA round 28: the extension a container refusal advises holds the video.

The advice was fixed (.mkv, or .mov when the output was .mkv): `run --codec utvideo -o x.mkv` said to
use .mov, and `-o x.mov` said to use .mkv, neither of which holds Ut Video; `batch` passed the same
wrong extension on as `--ext`. A codec no container holds (an image codec such as bmp) was sent to
another extension all the same.
"""

import pytest

from tests.conftest import one_line
from tests.media import make_clip
from vidtrans.errors import ContainerError, UsageError
from vidtrans.options import EncodeOptions
from vidtrans.video import check_output_settings


def _needs(codec: str) -> None:
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")


@pytest.mark.parametrize("name", ["x.mkv", "x.mov", "x.mp4"])
def test_the_advised_extension_is_one_that_holds_the_codec(tmp_path, name):
    _needs("utvideo")
    encode = EncodeOptions(codec="utvideo", pix_fmt="yuv420p")
    with pytest.raises(ContainerError) as refused:
        check_output_settings(tmp_path / name, encode)
    advised = refused.value.extension
    assert str(refused.value).endswith(f"another extension such as .{advised}")
    # What was advised is taken when asked for.
    assert check_output_settings(tmp_path / f"x.{advised}", encode)[0] == "utvideo"


def test_run_advises_an_extension_it_then_writes(cli, tmp_path, rgb_model_dir):
    _needs("utvideo")
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(32, 24), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "o.mkv", "--model", rgb_model_dir, "--codec", "utvideo"), 2)
    advised = line.rsplit("another extension such as ", 1)[1]
    assert advised not in (".mkv", ".mov"), line
    result = cli("run", clip.path, "-o", tmp_path / f"o{advised}", "--model", rgb_model_dir, "--codec", "utvideo")
    assert result.returncode == 0, result.stderr


def test_batch_ext_hint_is_an_extension_that_holds_the_codec(cli, tmp_path, rgb_model_dir):
    _needs("utvideo")
    (tmp_path / "clips").mkdir()
    make_clip(tmp_path / "clips" / "a.mp4", frames=3, size=(32, 24), audio=False)
    batch = ("batch", tmp_path / "clips", "-o", tmp_path / "out", "--model", rgb_model_dir, "--codec", "utvideo")
    hint = one_line(cli(*batch), 2).rsplit("(for batch: --ext ", 1)[1].rstrip(")")  # the clips' own .mp4
    assert hint not in ("mkv", "mov")
    assert one_line(cli(*batch, "--ext", "mov"), 2).endswith(f"another extension such as .{hint}")
    assert not (tmp_path / "out").exists()
    again = cli(*batch, "--ext", hint)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "out" / f"a.{hint}").is_file()


def test_a_codec_no_container_holds_is_told_to_change_codec(cli, tmp_path, rgb_model_dir):
    _needs("bmp")
    with pytest.raises(UsageError) as refused:
        check_output_settings(tmp_path / "x.mp4", EncodeOptions(codec="bmp", pix_fmt="bgr24"))
    # Not a ContainerError: no other extension (batch --ext) would do.
    assert not isinstance(refused.value, ContainerError)
    assert str(refused.value).endswith("a .mp4 file cannot hold bmp video, nor can .mkv, .mov, .avi or .nut; "
                                       "use the codec libx264 or libx265")
    clip = make_clip(tmp_path / "in.mp4", frames=2, size=(32, 24), audio=False)
    line = one_line(cli("run", clip.path, "-o", tmp_path / "o.mkv", "--model", rgb_model_dir, "--codec", "bmp",
                        "--pix-fmt", "bgr24"), 2)
    assert "nor can .mov, .mp4, .avi or .nut" in line and "another extension" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_usual_advice_is_unchanged():
    # The common cases keep their advice: libx264 into .webm goes to .mkv, png out of .mkv to .mov.
    with pytest.raises(ContainerError, match=r"such as \.mkv$") as refused:
        check_output_settings("o.webm", EncodeOptions())
    assert refused.value.extension == "mkv"
    with pytest.raises(ContainerError, match=r"such as \.mov$"):
        check_output_settings("o.mkv", EncodeOptions(codec="png", pix_fmt="rgb24"))


def test_pose_of_a_clip_with_two_video_streams_says_which_it_read_not_translated(cli, tmp_path):
    # `pose` translates nothing, yet its warning said the largest stream "is translated".
    import av
    import numpy as np

    src = tmp_path / "two.mkv"
    with av.open(str(src), "w") as out:
        streams = [out.add_stream("libx264", rate=25) for _ in range(2)]
        for stream, (width, height) in zip(streams, [(32, 32), (48, 16)]):
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(3):
            for stream in streams:
                frame = av.VideoFrame.from_ndarray(np.full((stream.height, stream.width, 3), 40 * i, np.uint8),
                                                   format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
        for stream in streams:
            out.mux(stream.encode(None))
    result = cli("pose", src, "-o", tmp_path / "pose.mp4")
    assert result.returncode == 0, result.stderr
    assert ("two.mkv: its 1 other video stream is left out; only the one with the largest pictures is read, as "
            "ffmpeg picks") in result.stderr
    assert "translated" not in result.stderr
