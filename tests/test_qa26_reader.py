"""QA round 26, the reader: inputs as users name them (a trailing slash, a URL, a link to a video that
moved, an image sequence's pattern) are told what they are in one line; a Matroska video that its
audio or a second video stream outlasts is counted by its own frames."""

from __future__ import annotations

import os
import re
import struct

import av
import numpy as np
import pytest
from PIL import Image

from tests.conftest import one_line
from tests.media import _write_sine, make_clip
from vidtrans.errors import VidtransError
from vidtrans.video import VideoReader, probe


@pytest.mark.parametrize("command", ["run", "pose"])
def test_an_existing_file_named_with_a_trailing_slash_is_told_it_is_a_file(tmp_path, cli, rgb_model_dir, command):
    # A Path drops the slash: `run cam.mp4/` read cam.mp4, while the API said "file not found" for
    # the same name, although the file is there.
    clip = make_clip(tmp_path / "cam.mp4", frames=4).path
    before = clip.read_bytes()
    model = ["--model", rgb_model_dir] if command == "run" else []
    line = one_line(cli(command, f"{clip}/", *model), 1)
    assert line == f"vidtrans: error: {clip}/: is a file, not a folder; drop the trailing slash ({clip})"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mp4"] and clip.read_bytes() == before
    with pytest.raises(VidtransError, match="is a file, not a folder; drop the trailing slash") as raised:
        VideoReader(f"{clip}/")
    assert "not found" not in str(raised.value)


def test_a_url_given_to_run_is_refused_as_a_url_with_its_slashes(tmp_path, cli, rgb_model_dir):
    url = "https://example.com/videos/dance.mp4"
    line = one_line(cli("run", url, "--model", rgb_model_dir, "-o", tmp_path / "out.mp4"), 1)
    # It was "https:/example.com/videos/dance.mp4: file not found": a name no one typed.
    assert line == (f"vidtrans: error: {url}: is a URL, and vidtrans works on local files only; give a local path "
                    "(download an input first)")
    assert not list(tmp_path.iterdir())
    # Every path the command line takes: a model, keypoints, a folder of clips, an output.
    clip, out = tmp_path / "x.mp4", tmp_path / "out"
    for args in (["run", clip, "--model", url], ["run", clip, "--keypoints", url], ["batch", url, "-o", out],
                 ["run", clip, "-o", url], ["import-pix2pix", url, "-o", out]):
        assert one_line(cli(*args), 1).startswith(f"vidtrans: error: {url}: is a URL, and vidtrans works on local")
    with pytest.raises(VidtransError, match=r"^rtsp://camera\.local/live: is a URL"):
        probe("rtsp://camera.local/live")
    clip = make_clip(tmp_path / "in.mp4", frames=2).path
    line = one_line(cli("run", f"file://{clip}", "--model", rgb_model_dir), 1)
    assert line == f"vidtrans: error: file://{clip}: is a file: URL; pass the file's path instead (without file://)"


def test_a_link_to_a_video_that_moved_and_a_path_through_a_file_say_so(tmp_path, cli, rgb_model_dir):
    link = tmp_path / "dance.mp4"
    link.symlink_to("moved.mp4")
    line = one_line(cli("run", link, "--model", rgb_model_dir), 1)
    assert line == f"vidtrans: error: {link}: is a symbolic link to moved.mp4, which does not exist (moved or deleted?)"
    clip = make_clip(tmp_path / "a.mp4", frames=2).path
    with pytest.raises(VidtransError, match=f"^{re.escape(f'{clip}/x.mp4: {clip} is a file, not a folder')}"):
        probe(clip / "x.mp4")
    # A relative path through .. and a working link still read the video.
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.mp4").symlink_to("a.mp4")
    for path in (tmp_path / "sub" / ".." / "a.mp4", tmp_path / "ok.mp4"):
        with VideoReader(path) as reader:
            assert len(list(reader)) == 2


def test_an_image_sequence_pattern_is_named_as_one(tmp_path, cli, rgb_model_dir):
    for i in range(1, 4):
        Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(tmp_path / f"frame_{i:04d}.png")
    pattern = tmp_path / "frame_%04d.png"
    line = one_line(cli("run", pattern, "--model", rgb_model_dir), 1)
    assert f"{pattern}: is an image sequence's pattern, which vidtrans does not read; make a video" in line
    assert f"ffmpeg -framerate 25 -i {pattern} " in line  # the whole path (quoted where the shell needs it)


def _streams(path, sizes_and_frames, audio_seconds=None):
    """A Matroska file of several H.264 video streams ((width, height), frames at 25 fps), and a
    mono AAC sine track of `audio_seconds` if given."""
    out = av.open(str(path), "w")
    videos = []
    for (width, height), _ in sizes_and_frames:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        videos.append(stream)
    audio = out.add_stream("aac", rate=16000) if audio_seconds else None
    if audio is not None:
        audio.layout = "mono"
    for stream, ((width, height), frames) in zip(videos, sizes_and_frames):
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    if audio is not None:
        _write_sine(out, audio, audio_seconds, 16000, freq=440.0)
    out.close()
    return path


@pytest.mark.parametrize("ext", ["mkv", "webm"])
def test_a_matroska_video_its_audio_outlasts_is_counted_by_its_own_frames(tmp_path, ext):
    # The file's duration is its longest stream's: 10 frames of video with 4 s of sound were
    # estimated at 102 frames (the progress bar ended at 10/102).
    extra = {"codec": "libvpx-vp9", "audio_codec": "libopus", "sample_rate": 48000} if ext == "webm" else {}
    clip = make_clip(tmp_path / f"clip.{ext}", frames=10, audio_seconds=4.0, **extra).path
    info = probe(clip)
    assert info.frame_count == 10 and info.duration == pytest.approx(0.4)
    with VideoReader(clip) as reader:
        assert reader.frame_count == len(list(reader)) == 10
    with VideoReader(clip, start=0.2) as reader:
        assert reader.frame_count == len(list(reader)) == 5


def test_a_second_longer_video_stream_does_not_count_for_the_one_translated(tmp_path):
    clip = _streams(tmp_path / "two.mkv", [((128, 96), 10), ((64, 48), 30)], audio_seconds=0.4)
    info = probe(clip)
    assert (info.width, info.height, info.frame_count) == (128, 96, 10)
    with VideoReader(clip) as reader:
        assert reader.frame_count == len(list(reader)) == 10


def test_a_damaged_duration_tag_falls_back_to_the_files_duration(tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=10, audio=False).path
    data = clip.read_bytes()
    assert data.count(b"00:00:00.400000000") == 1
    clip.write_bytes(data.replace(b"00:00:00.400000000", b"xx:00:00.400000000"))
    assert probe(clip).frame_count == 10
    clip.write_bytes(data.replace(b"00:00:00.400000000", b"99:00:00.400000000"))  # past the file's
    assert probe(clip).frame_count == 10
    assert os.path.getsize(clip) == len(data)


@pytest.mark.parametrize("seconds", [-5000.0, 1e12])
def test_a_damaged_matroska_duration_gives_no_negative_or_unbounded_frame_count(tmp_path, seconds):
    # A negative Duration in the Segment's Info (FFmpeg passes it on) made probe report -125000
    # frames and -5000 s, where VideoInfo promises an estimate, 0 when unknown.
    clip = make_clip(tmp_path / "clip.mkv", frames=10, audio=False).path
    data = bytearray(clip.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration, an 8-byte float in the timescale's milliseconds
    assert at > 0 and struct.unpack(">d", data[at + 3:at + 11]) == (400.0,)
    data[at + 3:at + 11] = struct.pack(">d", seconds * 1000)
    tag = data.find(b"00:00:00.400000000")
    data[tag:tag + 18] = b"xx:xx:xx.xxxxxxxxx"  # the stream's own duration tag unreadable too
    clip.write_bytes(bytes(data))
    info = probe(clip)
    assert info.duration >= 0 and 0 <= info.frame_count <= os.path.getsize(clip) // 8
    with VideoReader(clip, start=0.2) as reader:
        assert 0 <= reader.frame_count and len(list(reader)) == 5


def test_not_a_video_file_names_a_dangling_link_and_keeps_its_plain_answer(tmp_path):
    # What `live --camera` and `eval --video` say of a file that is not there.
    from vidtrans.video import not_a_video_file

    link = tmp_path / "cam.mp4"
    link.symlink_to("gone.mp4")
    assert not_a_video_file(link) == "is a symbolic link to gone.mp4, which does not exist (moved or deleted?)"
    assert not_a_video_file(tmp_path / "missing.mp4") == "no such video file"


def test_a_file_whose_name_holds_a_sequence_pattern_is_read_as_that_file(tmp_path):
    # FFmpeg's image2 demuxer read frame_0001.png ... for a file named frame_%04d.png: three
    # pictures of other files for the one named.
    for i in range(1, 4):
        Image.fromarray(np.full((48, 64, 3), 60 * i, np.uint8)).save(tmp_path / f"frame_{i:04d}.png")
    named = tmp_path / "frame_%04d.png"
    Image.fromarray(np.full((48, 64, 3), 250, np.uint8)).save(named)
    with VideoReader(named) as reader:
        frames = list(reader)
    assert len(frames) == 1 and abs(int(frames[0].image.mean()) - 250) <= 2


def test_a_missing_video_named_with_a_percent_is_a_missing_file(tmp_path, cli, rgb_model_dir):
    # FFmpeg reads patterns of pictures only: a missing clip_%03d.mp4 was called an image sequence's pattern.
    line = one_line(cli("run", tmp_path / "clip_%03d.mp4", "--model", rgb_model_dir), 1)
    assert "file not found" in line and "image sequence" not in line
