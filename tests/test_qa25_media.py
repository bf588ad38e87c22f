"""QA round 25, media: sound in sync with the pictures of an AVI cut with --start (the muxer no longer
moves the pictures up to two frames late); copied audio with a codec delay (Matroska's CodecDelay:
AAC's priming, LAME's) cut with --start sounds from the first picture; the writer's advice for frames
too large for the encoder names only the settings of the command that writes (live has no --codec);
interlaced pictures are deinterlaced."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import decode_all, make_clip
from tests.test_qa24_media import BURST_AT, IDENTITY, audio_timing, clip_with_a_burst
from vidtrans.errors import VidtransError
from vidtrans.options import EncodeOptions, spelled
from vidtrans.pipeline import translate_video
from vidtrans.video import VideoWriter
from vidtrans.video.reader import VideoReader

FRAME = 1 / 25  # clip_with_a_burst's frames


def first_picture(path) -> float:
    """The output's first picture's time as players show it (AVI: by its place among the frames)."""
    with VideoReader(path) as reader:
        return next(iter(reader)).time


def in_sync(path, start: float) -> float:
    """How far (seconds) the burst sounds from where it belongs, counted from the first picture (the
    source's first at or after `start`, on its 25 fps grid)."""
    _, burst, _ = audio_timing(path)
    return burst - first_picture(path) - (BURST_AT - math.ceil(start * 25 - 1e-9) * FRAME)


@pytest.mark.parametrize("codec, rate", [("pcm_s16le", 16000), ("aac", 44100)])
def test_an_avi_cut_with_start_keeps_its_sound_with_its_pictures(tmp_path, codec, rate):
    """The audio packet playing at --start began before it: AVI cannot store times before 0, and FFmpeg
    moved every stream later by that much, rounded up to whole frames of the video, whose first picture
    had already been rounded to one: the pictures came 2 frames late, the sound 40-60 ms ahead of them.
    Counted from that packet, a picture is off by half a frame at most (AVI counts time in frames)."""
    src = clip_with_a_burst(tmp_path / "in.mkv", codec, rate)
    translate_video(src, tmp_path / "out.avi", IDENTITY, start=0.3)
    assert abs(in_sync(tmp_path / "out.avi", 0.3)) <= FRAME / 2 + 0.002


@pytest.mark.parametrize("codec, rate", [("libmp3lame", 16000), ("aac", 8000)])
@pytest.mark.parametrize("start", [0.04, 0.3])
def test_copied_audio_with_a_codec_delay_sounds_from_the_first_picture(tmp_path, codec, rate, start):
    """Matroska keeps a copied stream's codec delay (LAME's 1105 samples, AAC's 1024), which players drop
    from its first packet: with --start that was the packet playing at the start, so the sound began
    40-85 ms (1-2 frames) after the first picture. The delay's worth of audio before the start is
    copied too, and is what is dropped."""
    src = clip_with_a_burst(tmp_path / "in.mkv", codec, rate)
    translate_video(src, tmp_path / "out.mkv", IDENTITY, start=start)
    sound, _, picture = audio_timing(tmp_path / "out.mkv")
    assert sound <= picture + 0.005, f"sound from {sound:.3f} s, pictures from {picture:.3f} s"
    assert in_sync(tmp_path / "out.mkv", start) == pytest.approx(0, abs=0.005)
    # Without --start the stream's own first packet is the one its delay belongs to: the same sound.
    translate_video(src, tmp_path / "whole.mkv", IDENTITY)
    assert audio_timing(tmp_path / "whole.mkv")[0] <= 0.005
    assert in_sync(tmp_path / "whole.mkv", 0) == pytest.approx(0, abs=0.005)


def test_frames_too_large_for_the_encoder_are_told_what_the_command_can_change(tmp_path, cli, rgb_model_dir):
    """The writer's advice named --side-by-side and --codec whatever command wrote: live has neither
    (it records its view, at --size). MPEG-4 part 2 (at most 8191 pixels a side) stands in for H.264's
    16384."""
    wide = make_clip(tmp_path / "wide.mp4", frames=2, size=(4200, 48), audio=False)
    out = tmp_path / "out.mp4"
    result = cli("run", wide.path, "-o", out, "--model", rgb_model_dir, "--codec", "mpeg4", "--side-by-side")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().endswith("make them smaller (a smaller input, without --side-by-side) or choose "
                                          "another --codec"), result.stderr
    assert not out.exists()
    # A command with --view and --size, without --codec or --side-by-side (live's flags), as it runs.
    with spelled({"record": "--record", "size": "--size", "view": "--view"}), pytest.raises(VidtransError) as refused:
        VideoWriter(tmp_path / "rec.mp4", 8400, 48, Fraction(1, 1000), 25.0, EncodeOptions(codec="mpeg4"))
    assert str(refused.value).endswith("make them smaller (a smaller input, --view output, a smaller --size)")
    assert not (tmp_path / "rec.mp4").exists()


def test_a_frame_too_large_from_python_names_translate_videos_parameters(tmp_path):
    src = make_clip(tmp_path / "wide.mp4", frames=2, size=(4200, 48), audio=False)
    with pytest.raises(VidtransError) as refused:
        translate_video(src.path, tmp_path / "out.mp4", IDENTITY, codec="mpeg4", side_by_side=True)
    assert str(refused.value).endswith("make them smaller (a smaller input, without side_by_side) or choose "
                                       "another codec"), refused.value


def combing(image: np.ndarray) -> float:
    """How far each row is from the mean of the rows either side of it (grey levels): an interlaced
    picture's fields, taken half a frame apart, put a moving edge at two places on alternate rows."""
    grey = image.astype(np.float32).mean(axis=2)
    return float(np.abs(grey[1:-1] - (grey[:-2] + grey[2:]) / 2).mean())


def interlaced_clip(path, frames: int = 8) -> list[float]:
    """H.264 coded interlaced (top field first), a bright bar moving 8 pixels a field: each picture's
    odd rows half a frame later than its even ones. The frames' times are returned."""
    def scene(t: float) -> np.ndarray:
        image = np.full((64, 96, 3), 40, np.uint8)
        x = round(8 + t * 400) % 70
        image[16:48, x:x + 20] = 230
        return image

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "5", "flags": "+ildct+ilme",
                                                            "x264-params": "interlaced=1:tff=1"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(frames):
            image = scene(i / 25)
            image[1::2] = scene(i / 25 + 1 / 50)[1::2]
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return [i / 25 for i in range(frames)]


def test_interlaced_pictures_are_deinterlaced_as_players_show_them(tmp_path):
    """A camcorder's or broadcast's interlaced video was read as stored: every moving edge combed
    (alternate rows half a frame apart), for the model and in the output, which is progressive, so
    that no player deinterlaces it. One picture per frame, at its time, as players show them."""
    times = interlaced_clip(tmp_path / "in.mp4")
    with av.open(str(tmp_path / "in.mp4")) as container:
        decoded = list(container.decode(video=0))
    assert all(frame.interlaced_frame for frame in decoded)
    stored = [frame.to_ndarray(format="rgb24") for frame in decoded]
    assert min(combing(image) for image in stored) > 5  # what was shown before
    with VideoReader(tmp_path / "in.mp4") as reader:
        frames = list(reader)
    assert [f.time for f in frames] == pytest.approx(times)
    assert max(combing(f.image) for f in frames) < 2
    translate_video(tmp_path / "in.mp4", tmp_path / "out.mp4", IDENTITY)
    images, written = decode_all(tmp_path / "out.mp4")
    assert written == pytest.approx(times, abs=1e-3)
    assert max(combing(image) for image in images) < 2


def test_an_animated_png_stored_with_adam7_rows_is_not_deinterlaced(tmp_path):
    """FFmpeg flags Adam7 PNG pictures interlaced, but their rows are one moment, only stored in
    another order: read exactly as stored (deinterlaced, moving thin lines were lost)."""
    images = []
    with av.open(str(tmp_path / "in.apng"), "w", format="apng") as out:
        stream = out.add_stream("apng", rate=10, options={"flags": "+ildct"})  # Adam7
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        for i in range(4):
            image = np.zeros((48, 64, 3), np.uint8)
            image[::2, i * 12:i * 12 + 12] = 255  # thin lines, moving
            images.append(image)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with av.open(str(tmp_path / "in.apng")) as container:
        assert all(frame.interlaced_frame for frame in container.decode(video=0))
    with VideoReader(tmp_path / "in.apng") as reader:
        read = [frame.image for frame in reader]
    assert len(read) == len(images) and all(np.array_equal(a, b) for a, b in zip(read, images))
