"""Subtitle streams: copied where the output container can hold them, left out with a warning where not."""

import logging

import av
import numpy as np
import pytest

from tests.test_run import FakeModel
from vidtrans.options import EncodeOptions, RunOptions
from vidtrans.pipeline import translate_video


def clip_with_subtitles(path, srt_text, frames=25, size=(64, 48)):
    """A 25 fps .mkv whose subtitle stream holds the cues of `srt_text` (SRT, as a user's file)."""
    srt = path.with_suffix(".srt")
    srt.write_text(srt_text)
    with av.open(str(srt)) as subtitles, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        subtitle_stream = out.add_stream_from_template(subtitles.streams.subtitles[0])
        cues = [packet for packet in subtitles.demux(subtitles.streams.subtitles[0]) if packet.size]
        for i in range(frames):
            frame = np.full((size[1], size[0], 3), i * 8, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for packet in cues:
            packet.stream = subtitle_stream
            out.mux(packet)
    return path


def subtitle_cues(path):
    with av.open(str(path)) as container:
        if not container.streams.subtitles:
            return None
        stream = container.streams.subtitles[0]
        return [(round(float(packet.pts * stream.time_base), 3), round(float(packet.duration * stream.time_base), 3),
                 bytes(packet)) for packet in container.demux(stream) if packet.size]


SRT = "1\n00:00:00,100 --> 00:00:00,400\nhello\n\n2\n00:00:00,600 --> 00:00:00,900\nworld\n\n"


def test_subtitles_are_copied_into_mkv(tmp_path):
    src = clip_with_subtitles(tmp_path / "in.mkv", SRT)
    out = tmp_path / "out.mkv"
    translate_video(src, out, FakeModel(lambda frames: 255 - frames))
    assert subtitle_cues(out) == [(0.1, 0.3, b"hello"), (0.6, 0.3, b"world")]


def decoded_cues(path):
    """The codec of the first subtitle stream, whatever it is, and (start, duration, text) of each cue."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        cues = [(round(float(packet.pts * stream.time_base), 3), round(float(packet.duration * stream.time_base), 3),
                 subtitle.dialogue) for packet in container.demux(stream) if packet.size
                for subtitle in stream.codec_context.decode2(packet) or ()]
        return stream.codec_context.name, cues


@pytest.mark.parametrize("suffix, codec, encode", [(".mp4", "mov_text", EncodeOptions()),
                                                   (".mov", "mov_text", EncodeOptions()),
                                                   (".webm", "webvtt", EncodeOptions(codec="libvpx-vp9"))])
def test_srt_subtitles_become_the_text_codec_the_output_holds(tmp_path, caplog, suffix, codec, encode):
    """As ffmpeg converts them: SRT cannot go into .mp4 or .webm, their own text codecs can."""
    src = clip_with_subtitles(tmp_path / "in.mkv", SRT)
    out = tmp_path / f"out{suffix}"
    with caplog.at_level(logging.WARNING):
        summary = translate_video(src, out, FakeModel(lambda frames: 255 - frames), RunOptions(encode=encode))
    assert summary.frames == 25
    assert decoded_cues(out) == (codec, [(0.1, 0.3, b"hello"), (0.6, 0.3, b"world")])
    assert not caplog.records


def test_subtitles_a_container_without_text_codecs_cannot_hold_are_left_out_with_a_warning(tmp_path, caplog):
    src = clip_with_subtitles(tmp_path / "in.mkv", SRT)
    out = tmp_path / "out.avi"
    with caplog.at_level(logging.WARNING):
        summary = translate_video(src, out, FakeModel(lambda frames: 255 - frames))
    assert summary.frames == 25
    assert subtitle_cues(out) is None
    assert any("subtitle track cannot go into" in r.getMessage() and ".mkv" in r.getMessage() for r in caplog.records)


def test_trimmed_output_keeps_the_cues_of_its_range(tmp_path):
    src = clip_with_subtitles(tmp_path / "in.mkv", SRT)
    out = tmp_path / "out.mkv"
    translate_video(src, out, FakeModel(lambda frames: frames), start=0.5)
    assert subtitle_cues(out) == [(0.1, 0.3, b"world")]


def test_a_cue_on_screen_at_the_start_or_the_end_is_cut_to_the_span(tmp_path):
    src = clip_with_subtitles(tmp_path / "in.mkv", SRT)
    out = tmp_path / "out.mkv"
    translate_video(src, out, FakeModel(lambda frames: frames), start=0.2, end=0.7)
    # "hello" (0.1-0.4) shows from the output's start for 0.2 s; "world" (0.6-0.9) until its end.
    assert subtitle_cues(out) == [(0.0, 0.2, b"hello"), (0.4, 0.1, b"world")]


def test_the_command_line_says_so_as_a_warning_line(tmp_path, cli, rgb_model_dir):
    src = clip_with_subtitles(tmp_path / "in.mkv", SRT)
    result = cli("run", src, "-o", tmp_path / "out.avi", "--model", rgb_model_dir)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("vidtrans: warning: ")]
    assert len(warnings) == 1 and "subrip subtitle track cannot go into a .avi file" in warnings[0]
