"""QA round 24, media: audio cut with --start sounds from the first picture when it is re-encoded (its
decoder is given the packets before the span first) and when its packets state no length (ALAC in
Matroska); flow smoothing of long thin strips; no smoothing across a scene cut."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import decode_all, make_clip, moving_square, quadrants
from tests.test_output_smoothing import errors, noisy
from tests.test_run import FakeModel
from vidtrans.pipeline import translate_video
from vidtrans.temporal import Smoother

IDENTITY = FakeModel(lambda frames: frames)
VP9 = {"codec": "libvpx-vp9", "crf": 40, "preset": "ultrafast"}
BURST_AT = 0.5  # seconds into the source


def clip_with_a_burst(path, codec: str, rate: int, seconds: float = 1.0, layout: str = "mono"):
    """A 25 fps .mkv with `seconds` of `codec` audio at `rate` Hz: a quiet 300 Hz tone, loud for 10 ms
    at BURST_AT (which tells where the source's time went)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(codec, rate=rate, options={"strict": "experimental"})  # FFmpeg's own Vorbis
        audio.layout = layout
        for i in range(round(25 * seconds)):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9, np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        t = np.arange(round(seconds * rate)) / rate
        samples = (0.05 * np.sin(2 * math.pi * 300 * t)).astype(np.float32)
        loud = (t >= BURST_AT) & (t < BURST_AT + 0.01)
        samples[loud] = 0.9 * np.sign(np.sin(2 * math.pi * 1000 * t[loud]))
        for start in range(0, len(t), 1024):
            channels = np.repeat(samples[None, start:start + 1024], audio.layout.nb_channels, axis=0)
            frame = av.AudioFrame.from_ndarray(channels, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def audio_timing(path) -> tuple[float, float, float]:
    """(time of the first audio sample decoded, time of the burst, time of the first video frame) of `path`."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = list(container.decode(stream))
    with av.open(str(path)) as container:
        video = next(container.decode(video=0))
    first = float(frames[0].pts * frames[0].time_base)
    samples = np.concatenate([frame.to_ndarray()[0] for frame in frames])  # the first channel (planar)
    rate = stream.codec_context.sample_rate
    loudness = np.convolve(samples.astype(np.float64) ** 2, np.ones(rate // 100), "valid")  # over 10 ms
    burst = first + np.argmax(loudness) / rate
    return first, burst, float(video.pts * video.time_base)


@pytest.mark.parametrize("start", [0.04, 0.3])
def test_reencoded_audio_cut_at_the_start_sounds_from_the_first_frame(tmp_path, start):
    """AAC at 8 kHz into .webm (re-encoded to Opus) from --start lost the packet playing at the start,
    128 ms: its decoder, opened at that packet, took its samples for the encoder's priming and dropped
    them, so the sound began 65-90 ms after the first picture (as copied audio into .mkv does not)."""
    src = clip_with_a_burst(tmp_path / "in.mkv", "aac", 8000)
    translate_video(src, tmp_path / "out.webm", IDENTITY, start=start, **VP9)
    first, burst, picture = audio_timing(tmp_path / "out.webm")
    assert first <= picture + 0.005, f"sound from {first:.3f} s, pictures from {picture:.3f} s"
    # In sync: the first picture is the source's first at or after the start, on its 25 fps grid.
    assert burst - picture == pytest.approx(BURST_AT - math.ceil(start * 25 - 1e-9) / 25, abs=0.005)


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_audio_packets_of_unknown_length_playing_at_the_start_are_kept(tmp_path, suffix):
    """Matroska stores no length for ALAC packets (4096 samples, 93 ms at 44.1 kHz): the one playing at
    --start was taken for one that ended before it and left out, so the sound began up to 93 ms after
    the first picture (copied into .mkv, and re-encoded to Opus for .webm)."""
    src = clip_with_a_burst(tmp_path / "in.mkv", "alac", 44100)
    with av.open(str(src)) as container:
        assert not any(packet.duration for packet in container.demux(audio=0) if packet.size)
    translate_video(src, tmp_path / f"out{suffix}", IDENTITY, start=0.3, **(VP9 if suffix == ".webm" else {}))
    first, burst, picture = audio_timing(tmp_path / f"out{suffix}")
    assert first <= picture + 0.005, f"sound from {first:.3f} s, pictures from {picture:.3f} s"
    assert burst - picture == pytest.approx(BURST_AT - 0.32, abs=0.005)


@pytest.mark.parametrize("size", [(1000, 60), (60, 1000), (4000, 40)])
def test_flow_steadies_wide_and_tall_strips(size):
    """Flow is estimated at most 320 pixels on the longer side, which made a 1000x60 frame's flow
    image 320x19, under the 32 pixels OpenCV's DIS needs: frames of 32 pixels a side and more went
    out unsmoothed (the README says only those under 32 do)."""
    width, height = size
    truth = [moving_square(i, width, height) for i in range(8)]
    moving = [None] + [np.abs(truth[i].astype(int) - truth[i - 1].astype(int)).max(-1) > 0 for i in range(1, 8)]
    outputs = noisy(truth)
    smoother = Smoother("flow", 0.6)
    smoothed = [smoother(output.copy(), frame) for output, frame in zip(outputs, truth)]
    still_before, move_before = errors(outputs, truth, moving)
    still_after, move_after = errors(smoothed, truth, moving)
    assert still_after < 0.8 * still_before
    # The 15-pixel square is 8 pixels in the flow image of a strip 60 pixels wide: little to follow.
    assert move_after < 1.15 * move_before


def two_shots(index: int, width: int, height: int) -> np.ndarray:
    """Six frames of one shot (a gradient with a moving square), then a cut to another (coloured
    quadrants sliding by 2 pixels a frame)."""
    if index < 6:
        return moving_square(index, width, height)
    return np.roll(quadrants(index, width, height), 2 * index, axis=1)


@pytest.mark.parametrize("smoothing", ["ema", "flow"])
def test_smoothing_does_not_blend_the_last_shot_into_the_next(tmp_path, smoothing):
    """`--smooth ema` blended half of the last frame before a scene cut into the first after it (45
    grey levels off on average), fading out over five frames; `flow` a little too (7 levels), where
    the previous shot happened to match. The new shot now starts as a clip does: unblended."""
    clip = make_clip(tmp_path / "in.mkv", frames=12, size=(128, 96), frame_fn=two_shots, audio=False)
    lossless = {"codec": "libx264rgb", "pix_fmt": "rgb24", "crf": 0}
    translate_video(clip.path, tmp_path / "none.mkv", IDENTITY, smoothing="none", **lossless)
    translate_video(clip.path, tmp_path / "smooth.mkv", IDENTITY, smoothing=smoothing, **lossless)
    plain, _ = decode_all(tmp_path / "none.mkv")
    smoothed, _ = decode_all(tmp_path / "smooth.mkv")
    assert len(plain) == len(smoothed) == 12
    np.testing.assert_array_equal(smoothed[6], plain[6])  # the cut's frame, as a clip's first
    # Before and after the cut, frames are blended as before.
    assert not np.array_equal(smoothed[5], plain[5]) and not np.array_equal(smoothed[8], plain[8])


@pytest.mark.skipif("vorbis" not in av.codecs_available, reason="this FFmpeg has no Vorbis encoder")
def test_vorbis_into_mp4_is_reencoded(tmp_path, caplog):
    """Vorbis (older .webm, .ogg and .mkv files) was copied into .mp4 under FFmpeg's unregistered
    object type 0xDD, which browsers, QuickTime and most players do not read: the video played silent."""
    src = clip_with_a_burst(tmp_path / "in.mkv", "vorbis", 48000, layout="stereo")  # FFmpeg's takes stereo only
    translate_video(src, tmp_path / "out.mp4", IDENTITY)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [stream.codec_context.codec.canonical_name for stream in container.streams.audio] == ["aac"]
    assert "vorbis audio track is re-encoded to aac" in caplog.text
    first, burst, picture = audio_timing(tmp_path / "out.mp4")
    assert burst - picture == pytest.approx(BURST_AT, abs=0.005)
