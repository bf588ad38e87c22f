"""QA pass 11, reading and writing: eval --video on cards whose held-out time is in the file's own
timestamps, libx264rgb as x264, flags in batch workers' messages, AAC into MPEG-TS, a damaged packet
before the first picture."""

from __future__ import annotations

import functools
import json
import logging
import random
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import dancer_clip, decode_all, make_clip, moving_square, random_generator
from tests.test_run import FakeModel
from tests.test_video_robust import assert_same_pictures
from vidtrans.errors import UsageError
from vidtrans.models.checkpoint import ModelCard, save_checkpoint
from vidtrans.options import EncodeOptions
from vidtrans.pipeline import translate_video
from vidtrans.pose.render import PoseStyle
from vidtrans.video import VideoWriter, file_identity, probe, writer
from vidtrans.video.reader import VideoReader

IDENTITY = FakeModel(lambda frames: frames)
LATE = 10000  # seconds: where a broadcast recording's timestamps start


def late_ts(path, frames=10, audio=False, make=make_clip):
    """A 25 fps MPEG-TS clip whose timestamps start LATE seconds in, as broadcast recordings do (its
    audio too: from 0, it would be LATE seconds long); `make` a clip maker taking make_clip's options."""
    return make(path, frames=frames, audio=audio, pts=[LATE * 25 + i for i in range(frames)],
                time_base=Fraction(1, 25), audio_from=LATE)


# --- item 1: eval --video on cards written before times counted from the clip's start ------------------


def card_model(tmp_path, clip, held_out):
    """A model card as `vidtrans train` writes it for `clip`, with `held_out` as given."""
    training = {"data": f"target video {clip.path.name}", "video": clip.path.name,
                "video_identity": file_identity(clip.path), "crop": [8, 0, 48], "held_out": held_out}
    card = ModelCard(architecture="resnet_6blocks", ngf=8, norm="instance", native_size=(64, 64), input_kind="pose",
                     pose_style=PoseStyle().to_dict(), training=training)
    model = tmp_path / "m"
    save_checkpoint(model, random_generator("resnet_6blocks", 3, 3, 8, "instance"), card)
    return model


@pytest.mark.parametrize(("held_out", "scored"), [
    # Yesterday's cards: frame 8 of 10, at 10000.32 s in the file's timestamps (0.32 s into the clip).
    ({"from_frame": 8, "from_time": LATE + 8 / 25}, 2),
    # Today's: the time counts from the clip's start.
    ({"from_frame": 7, "from_time": 7 / 25}, 3),
])
def test_eval_finds_the_held_out_tail_by_its_frame_number(cli, tmp_path, held_out, scored):
    # A person in view: a tail without one is refused (tests/test_qa31_eval.py).
    clip = late_ts(tmp_path / "late.ts", make=functools.partial(dancer_clip, look_name="target", size=(64, 48)))
    model = card_model(tmp_path, clip, held_out)
    result = cli("eval", "--model", model, "--video", clip.path, "--model-only", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == scored


def test_eval_of_a_held_out_tail_past_the_video_names_no_options_eval_lacks(cli, tmp_path):
    clip = late_ts(tmp_path / "late.ts")
    model = card_model(tmp_path, clip, {"from_frame": 12, "from_time": 12 / 25})
    line = one_line(cli("eval", "--model", model, "--video", clip.path, "--model-only", "--device", "cpu"), 1)
    assert "has 10 frames" in line and "from number 12" in line and line.endswith("pass the video it was trained on")
    assert "start" not in line


# --- item 8: libx264rgb is x264 --------------------------------------------------------------------------


def test_libx264rgb_gets_x264s_options(monkeypatch):
    monkeypatch.setattr(writer, "_cpu_has_avx512", lambda: True)
    assert writer.encoder_options("libx264rgb", 18, "slow") == {"crf": "18", "preset": "slow",
                                                                "x264-params": "asm=AVX2"}
    monkeypatch.setattr(writer, "_cpu_has_avx512", lambda: False)
    assert writer.encoder_options("libx264rgb", 30, "fast") == {"crf": "30", "preset": "fast"}


def test_libx264rgb_honours_crf(tmp_path):
    sizes = []
    for crf in (0, 51):
        dst = tmp_path / f"rgb{crf}.mkv"
        with VideoWriter(dst, 64, 48, time_base=Fraction(1, 25), fps=25,
                         encode=EncodeOptions(codec="libx264rgb", pix_fmt="rgb24", crf=crf, preset="ultrafast")) as w:
            for i in range(8):
                w.write(moving_square(i, 64, 48), i)
        sizes.append(dst.stat().st_size)
    assert sizes[0] > 2 * sizes[1], sizes


# --- item 9: batch workers' messages name the flags ---------------------------------------------------------


def test_a_batch_workers_message_names_the_flags(cli, tmp_path, rgb_model_dir):
    clips = tmp_path / "in"
    clips.mkdir()
    make_clip(clips / "short.mp4", frames=5, audio=False)
    result = cli("batch", clips, "-o", tmp_path / "out", "-m", rgb_model_dir, "--start", "3", "--devices", "cpu")
    assert result.returncode == 1, result.stderr
    assert "choose another --start/--end" in result.stderr, result.stderr


# --- item 7: AAC (and what else MPEG-TS holds) into .ts ------------------------------------------------------


def audio_packets(path) -> tuple[str, int]:
    with av.open(str(path)) as container:
        (stream,) = container.streams.audio
        return stream.codec_context.name, sum(1 for p in container.demux(stream) if p.size)


def test_aac_audio_goes_into_mpeg_ts(tmp_path, caplog):
    for source in (late_ts(tmp_path / "in.ts", frames=12, audio=True), make_clip(tmp_path / "in.mp4", frames=12)):
        dst = tmp_path / f"out_{source.path.suffix[1:]}.ts"
        with caplog.at_level(logging.WARNING):
            translate_video(source.path, dst, IDENTITY)
        assert "cannot go into" not in caplog.text
        codec, packets = audio_packets(dst)
        assert codec == "aac" and packets >= audio_packets(source.path)[1] - 1


def test_mpeg_ts_holds_what_its_muxer_has_a_stream_type_for():
    with av.open("file:none.ts", "w", format="mpegts") as out:
        holdable = writer.holdable_codecs(out)
    assert {"aac", "ac3", "eac3", "mp2", "mp3", "opus", "h264", "libx264", "hevc", "dvbsub"} <= holdable
    assert not {"pcm_s16le", "vp9", "libvpx-vp9", "mov_text"} & holdable


def test_mpeg_ts_refuses_a_video_codec_it_would_mux_as_data(tmp_path):
    with pytest.raises(UsageError, match=r"a \.ts file cannot hold libvpx-vp9 video; use the codec libx264"):
        writer.check_output_settings(tmp_path / "o.ts", EncodeOptions(codec="libvpx-vp9"))


# --- item 6: one damaged packet before the first picture ----------------------------------------------------


def test_a_damaged_packet_before_the_first_picture_loses_one_frame(tmp_path):
    src = tmp_path / "in.mp4"
    make_clip(src, frames=20, audio=False, options={"bf": "2", "g": "10"})
    damaged = tmp_path / "damaged.mp4"
    noise = random.Random(1)
    with av.open(str(src)) as source, av.open(str(damaged), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for i, packet in enumerate(p for p in source.demux(video=0) if p.size):
            if i == 1:  # the first P-frame, sent before any picture came out
                garbage = av.Packet(bytes(noise.getrandbits(8) for _ in range(packet.size)))
                garbage.pts, garbage.dts, garbage.time_base = packet.pts, packet.dts, packet.time_base
                packet = garbage
            packet.stream = stream
            out.mux(packet)
    assert probe(damaged).width == 64
    with VideoReader(damaged) as reader:
        frames = list(reader)
    assert len(frames) == 20 and 1 <= reader.corrupt_frames <= 10
    # The keyframe decodes as it was.
    assert_same_pictures([frames[0].image], [moving_square(0, 64, 48)])
    assert np.all([f.image.shape == (48, 64, 3) for f in frames])


@pytest.mark.parametrize(("codec", "suffix"), [("mpeg2video", ".ts"), ("mpeg2video", ".mkv"), ("mpeg1video", ".mpg")])
def test_mpeg1_and_mpeg2_encode_at_their_standard_frame_rate(cli, tmp_path, rgb_model_dir, codec, suffix):
    """QA pass 12 #8: MPEG-1/2 take only standard frame rates as their time base; given the 1/65535
    other MPEG codecs get, every run failed, blaming the frame size."""
    clip = make_clip(tmp_path / "in.mp4", frames=12, size=(64, 48), audio=False, fps=25)
    out = tmp_path / f"out{suffix}"
    result = cli("run", clip.path, "-m", rgb_model_dir, "-o", out, "--codec", codec)
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == codec
        times = [frame.time for frame in container.decode(video=0)]
    assert len(times) == 12
    steps = np.diff(times)
    assert np.allclose(steps, 1 / 25, atol=1e-3)  # one frame of the clip's 25 fps apart, as the input


@pytest.mark.parametrize("codec, pix_fmt, suffix", [("libx264rgb", "rgb24", ".mkv"), ("libx264rgb", "bgr24", ".mkv"),
                                                   ("ffv1", "bgr0", ".mkv"), ("libx264", "yuv444p", ".mkv")])
def test_rgb_pixel_formats_come_back_in_their_colours(tmp_path, codec, pix_fmt, suffix):
    """An RGB pixel format stores the pixels themselves: tagged with a YUV matrix (as it was), every
    reader, vidtrans's own included, converted them again into other colours."""
    from vidtrans.options import EncodeOptions
    from vidtrans.video import VideoReader, VideoWriter

    colours = np.array([(250, 20, 30), (20, 200, 40), (30, 40, 220), (128, 128, 128), (200, 180, 20)], np.uint8)
    image = np.repeat(np.repeat(colours[None], 32, axis=0), 16, axis=1)  # 80x32, five bands
    dst = tmp_path / f"out{suffix}"
    writer = VideoWriter(dst, 80, 32, Fraction(1, 25), 25, EncodeOptions(codec=codec, pix_fmt=pix_fmt, crf=0))
    for i in range(3):
        writer.write(image, i)
    writer.close()
    frames = [f.image for f in VideoReader(dst)]
    assert len(frames) == 3
    # Lossless RGB comes back exact; yuv444p (the reference) within its matrix's rounding.
    assert np.abs(frames[1].astype(int) - image).max() <= 2


@pytest.mark.parametrize("codec", ["libx264", "ffv1"])
def test_grey_output_keeps_its_levels(tmp_path, codec):
    """swscale's grey is full range: tagged limited range (as it was), readers stretched 20 -> 4."""
    from vidtrans.options import EncodeOptions
    from vidtrans.video import VideoReader, VideoWriter

    image = np.repeat(np.repeat(np.array([20, 100, 180, 240], np.uint8)[None, :, None], 16, axis=1), 3, axis=2)
    image = np.repeat(image, 32, axis=0)  # 64x32, four grey bands
    writer = VideoWriter(tmp_path / "grey.mkv", 64, 32, Fraction(1, 25), 25,
                         EncodeOptions(codec=codec, pix_fmt="gray", crf=0))
    writer.write(image, 0)
    writer.close()
    assert np.abs([f.image for f in VideoReader(tmp_path / "grey.mkv")][0].astype(int) - image).max() <= 1


@pytest.mark.parametrize("name", ["x.m3u8", "x.mpd", "frame%03d.png", "still.png", "x.mxf"])
def test_outputs_ffmpeg_cannot_write_as_one_file_are_refused_before_any_work(tmp_path, cli, name):
    clip = make_clip(tmp_path / "in.mp4", frames=3)
    result = cli("run", clip.path, "-o", tmp_path / name, "--pose", "none")
    assert name in one_line(result, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_a_stream_that_changes_size_midway_keeps_its_first_size(tmp_path, cli):
    """Two MPEG-TS captures joined, 64x48 then 96x64: every frame comes at the first size (as ffmpeg
    scales them), and `run` translates them all instead of failing with a traceback."""
    from vidtrans.video import VideoReader

    def part(w, h, first):
        buffer = tmp_path / f"{w}.ts"
        with av.open(str(buffer), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            for i in range(10):
                frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 + 20 * i, np.uint8), format="rgb24")
                frame.pts, frame.time_base = first + i, Fraction(1, 25)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        return buffer.read_bytes()

    joined = tmp_path / "joined.ts"
    joined.write_bytes(part(64, 48, 0) + part(96, 64, 10))
    frames = list(VideoReader(joined))
    assert len(frames) == 20 and {f.image.shape for f in frames} == {(48, 64, 3)}
    assert abs(int(frames[15].image.mean()) - (40 + 20 * 5)) <= 3  # the second part's picture, scaled
    assert [f.image.shape for f in VideoReader(joined, max_side=32)][-1] == (24, 32, 3)
    result = cli("run", joined, "-o", tmp_path / "out.mp4", "--model", "pose2person", "--pose", "none")
    assert result.returncode == 0, result.stderr
    assert len(decode_all(tmp_path / "out.mp4")[0]) == 20
