"""DV and other SD video: DV's demuxer gives its time base (60000) as the average frame rate, and
DV, DVD and broadcast SD store pixels that are not square (720x480 at 8:9 is shown 640x480).
Frames are read, timed and written as players show them."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import audio_durations, decode_all, quadrants
from tests.test_run import FakeModel
from vidtrans.pipeline import translate_video
from vidtrans.video.reader import VideoReader, probe

IDENTITY = FakeModel(lambda frames: frames)
NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def dv_clip(tmp_path_factory):
    """12 frames of NTSC DV (720x480, pixels 8:9) with two seconds of PCM audio, as a camcorder
    tape capture is; each frame's grey level is its number times 20."""
    path = tmp_path_factory.mktemp("dv") / "tape.dv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("dvvideo", rate=NTSC)
        video.width, video.height, video.pix_fmt = 720, 480, "yuv411p"
        audio = out.add_stream("pcm_s16le", rate=48000)
        audio.layout = "stereo"
        for i in range(12):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((480, 720, 3), i * 20, np.uint8), "rgb24")))
        out.mux(video.encode(None))
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 12 * 1601), np.int16), format="s16", layout="stereo")
        samples.sample_rate = 48000
        out.mux(audio.encode(samples))
        out.mux(audio.encode(None))
    return path


def test_dv_is_read_at_its_frame_rate_in_square_pixels(dv_clip):
    info = probe(dv_clip)
    assert info.fps == pytest.approx(float(NTSC)) and (info.width, info.height) == (640, 480)
    with VideoReader(dv_clip) as reader:
        frames = list(reader)
    stored = len(decode_all(dv_clip)[0])
    assert len(frames) == stored and frames[0].image.shape == (480, 640, 3)
    assert [f.time for f in frames] == pytest.approx([i / float(NTSC) for i in range(stored)], abs=1e-4)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_dv_translates_into_common_containers(tmp_path, dv_clip, suffix):
    out = tmp_path / f"out{suffix}"
    translate_video(dv_clip, out, IDENTITY)
    images, times = decode_all(out)
    assert len(images) == len(decode_all(dv_clip)[0]) and images[0].shape == (480, 640, 3)
    assert times[1] == pytest.approx(1 / float(NTSC), abs=1e-3)
    assert [round(float(np.mean(image)) / 20) for image in images] == list(range(len(images)))
    assert audio_durations(out) or suffix == ".mkv"  # Matroska's PCM packets state no duration


def test_non_square_pixels_are_shown_at_their_width(tmp_path):
    wide = tmp_path / "anamorphic.mp4"
    image = quadrants(0, 64, 48)
    with av.open(str(wide), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(4, 3)  # as a widescreen DVD's 32:27
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        out.mux(stream.encode(None))
    assert (probe(wide).width, probe(wide).height) == (85, 48)
    with VideoReader(wide) as reader:
        shown = next(iter(reader)).image
    expected = av.VideoFrame.from_ndarray(image, "rgb24").reformat(width=85, height=48).to_ndarray(format="rgb24")
    assert np.abs(shown.astype(int) - expected).mean() < 6
    out = tmp_path / "out.mp4"
    translate_video(wide, out, IDENTITY)
    assert decode_all(out)[0][0].shape[:2] in ((48, 85), (48, 86))  # 4:2:0 pads an odd width by a column


@pytest.mark.parametrize("sar, shown", [(Fraction(8, 9), 640), (Fraction(2, 1), 1440), (Fraction(255, 1), 720),
                                        (Fraction(1, 200), 720), (Fraction(0, 1), 720), (None, 720)])
def test_an_aspect_ratio_far_outside_any_in_use_is_taken_for_damage(sar, shown):
    from types import SimpleNamespace

    from vidtrans.video.reader import _square_pixels

    stream = SimpleNamespace(sample_aspect_ratio=sar, codec_context=SimpleNamespace(sample_aspect_ratio=None))
    assert _square_pixels(720, 480, stream) == (shown, 480)
