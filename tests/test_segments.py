"""Segmented encoding (issue 15, item 3): consecutive parts of a video encoded at once by encoders of
their own and joined without re-encoding must make the same video a single encoder makes: every frame,
at its time, in its colours, with the audio, decodable from its start and from every key frame."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

import vidtrans.video.segments as segments
from tests.media import audio_durations, decode_all, make_clip, vfr_pts
from vidtrans.errors import VidtransError
from vidtrans.options import EncodeOptions
from vidtrans.video import SourceMedia, VideoReader, VideoWriter

SEGMENT = 10  # frames per segment in these tests (the default is 2 s, at least 32 frames)


@pytest.fixture(autouse=True)
def short_segments(monkeypatch):
    monkeypatch.setattr(segments, "SEGMENT_SECONDS", 0)
    monkeypatch.setattr(segments, "MIN_SEGMENT_FRAMES", SEGMENT)


def textured(index: int, width: int, height: int) -> np.ndarray:
    """Smooth colour gradients drifting by 2 px a frame: what an encoder predicts across frames."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x = x + 2 * index
    image = np.stack([128 + 100 * np.sin(x / 19), 128 + 100 * np.cos(y / 15 + x / 29), 128 + 90 * np.sin((x + y) / 23)],
                     -1)
    return image.clip(0, 255).astype(np.uint8)


def write(path, frames, pts, time_base, segments_at_once, source=None, **encode) -> list[av.Packet]:
    with VideoWriter(path, frames[0].shape[1], frames[0].shape[0], time_base, 25,
                     EncodeOptions(segments=segments_at_once, **encode), source or SourceMedia()) as writer:
        for image, p in zip(frames, pts):
            writer.write(image, p)
    with av.open(str(path)) as container:
        return [(p.pts, p.dts, p.is_keyframe) for p in container.demux(container.streams.video[0]) if p.size]


def paused_pts(count: int) -> tuple[list[int], Fraction]:
    """40 ms steps, but half-second ones just after each segment's start (a screen recording that
    waits): there a segment's own encoder guesses the decode times of its first packets from the
    steps ahead, before the previous segment's last."""
    steps = [500 if i % SEGMENT < 3 else 40 for i in range(count)]
    return [0, *np.cumsum(steps[:-1]).tolist()], Fraction(1, 1000)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov", ".ts"])
@pytest.mark.parametrize("rate", ["constant", "variable", "paused"])
def test_segments_join_into_the_video_one_encoder_makes(tmp_path, suffix, rate):
    count = 3 * SEGMENT + 4  # a short last segment
    pts, time_base = {"constant": (list(range(count)), Fraction(1, 25)), "variable": vfr_pts(count),
                      "paused": paused_pts(count)}[rate]
    frames = [textured(i, 96, 64) for i in range(count)]
    packets = write(tmp_path / f"three{suffix}", frames, pts, time_base, 3)
    write(tmp_path / f"one{suffix}", frames, pts, time_base, 1)

    keys = [i for i, (_, _, key) in enumerate(packets) if key]
    assert keys[:4] == [0, SEGMENT, 2 * SEGMENT, 3 * SEGMENT]  # each segment starts on a key frame
    dts = [d for _, d, _ in packets if d is not None]
    assert all(a < b for a, b in zip(dts, dts[1:])), "decode times must increase across the joins"
    assert all(d <= p for p, d, _ in packets if d is not None)

    got, times = decode_all(tmp_path / f"three{suffix}")
    one, one_times = decode_all(tmp_path / f"one{suffix}")
    assert len(got) == count
    assert times == pytest.approx(one_times, abs=1e-6)
    assert times == pytest.approx([times[0] + float(p * time_base) for p in pts], abs=1e-3)
    errors, single_errors = ([np.abs(image.astype(int) - truth).mean() for image, truth in zip(decoded, frames)]
                             for decoded in (got, one))
    assert max(errors) < 3 and np.mean(errors) < np.mean(single_errors) + 0.2  # crf 18: as good as one encoder


def test_lossless_segments_give_back_every_pixel(tmp_path):
    frames = [textured(i, 64, 48) for i in range(2 * SEGMENT + 3)]
    write(tmp_path / "rgb.mkv", frames, range(len(frames)), Fraction(1, 25), 2, codec="libx264rgb", crf=0,
          pix_fmt="rgb24")
    got, _ = decode_all(tmp_path / "rgb.mkv")
    assert len(got) == len(frames)
    for image, truth in zip(got, frames):
        np.testing.assert_array_equal(image, truth)


def test_each_segment_decodes_from_its_key_frame(tmp_path):
    """A player seeking to a segment's start decodes it without the segments before it."""
    frames = [textured(i, 96, 64) for i in range(3 * SEGMENT)]
    write(tmp_path / "out.mp4", frames, range(len(frames)), Fraction(1, 25), 3, preset="veryslow")
    with VideoReader(tmp_path / "out.mp4", start=2 * SEGMENT / 25) as reader:
        tail = list(reader)
    assert len(tail) == SEGMENT
    for got, truth in zip(tail, frames[2 * SEGMENT:]):
        assert np.abs(got.image.astype(int) - truth).mean() < 3


def test_audio_comes_along_in_sync(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=4 * SEGMENT + 2, size=(96, 64))
    with VideoReader(clip.path) as reader:
        decoded = list(reader)
        info = reader.info
    packets = write(tmp_path / "out.mp4", [f.image for f in decoded], [f.pts for f in decoded], info.time_base, 2,
                    source=SourceMedia(clip.path))
    assert len(packets) == len(decoded)
    assert audio_durations(tmp_path / "out.mp4") == pytest.approx(audio_durations(clip.path), abs=0.07)
    with av.open(str(tmp_path / "out.mp4")) as out:
        # Interleaved as a player streams it: no stretch of the file holds seconds of one stream only.
        order = [(p.stream.type, float(p.pts * p.time_base)) for p in out.demux() if p.size and p.pts is not None]
    video_times = [t for kind, t in order if kind == "video"]
    assert video_times[0] == pytest.approx(0, abs=1e-6)
    last_video = -1.0
    for kind, t in order:
        if kind == "video":
            last_video = max(last_video, t)
        else:
            assert t - last_video < SEGMENT / 25 + 0.2


def test_abort_leaves_nothing_and_stops_the_encoders(tmp_path):
    writer = VideoWriter(tmp_path / "out.mp4", 96, 64, Fraction(1, 25), 25, EncodeOptions(segments=3))
    for i in range(2 * SEGMENT + 5):
        writer.write(textured(i, 96, 64), i)
    writer.abort()
    deadline = time.monotonic() + 5
    while any(t.name == "vidtrans-encoder" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "vidtrans-encoder" for t in threading.enumerate())
    assert list(tmp_path.iterdir()) == []


def test_a_failing_segment_encoder_fails_the_write_cleanly(tmp_path, monkeypatch):

    def broken(image):
        raise av.FFmpegError(22, "Invalid argument")

    writer = VideoWriter(tmp_path / "out.mp4", 96, 64, Fraction(1, 25), 25, EncodeOptions(segments=2))
    monkeypatch.setattr(writer._segments, "_to_frame", broken)
    with pytest.raises(VidtransError, match="encoding failed"):
        for i in range(4 * SEGMENT):
            writer.write(textured(i, 96, 64), i)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("codec,requested,cores,expected", [
    ("libx264", 0, 2, 1), ("libx264", 0, 7, 1), ("libx264", 0, 16, 4), ("libx264rgb", 0, 64, 16), ("libx265", 0, 16, 1),
    ("libx264", 3, 2, 3), ("libvpx-vp9", 3, 16, 1), ("mpeg4", 0, 16, 1)])
def test_how_many_segments(codec, requested, cores, expected):
    assert segments.segments_for(codec, requested, cores) == expected


def test_segments_is_a_checked_option():
    with pytest.raises(VidtransError, match="segments"):
        EncodeOptions(segments=-1)


def test_a_segment_encoder_failing_at_its_flush_fails_the_write_instead_of_hanging(tmp_path, monkeypatch):
    real = segments._copy_encoder

    class FailsAtFlush:
        def __init__(self, encoder):
            self._encoder, self.time_base, self.extradata = encoder, encoder.time_base, encoder.extradata

        def encode(self, frame):
            if frame is None:
                raise av.FFmpegError(12, "Cannot allocate memory")
            return self._encoder.encode(frame)

    monkeypatch.setattr(segments, "_copy_encoder", lambda *a, **k: FailsAtFlush(real(*a, **k)))
    writer = VideoWriter(tmp_path / "out.mp4", 96, 64, Fraction(1, 25), 25, EncodeOptions(segments=2))
    outcome = []

    def write_all():
        try:
            for i in range(3 * SEGMENT):
                writer.write(textured(i, 96, 64), i)
        except VidtransError as e:
            outcome.append(str(e))

    thread = threading.Thread(target=write_all, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the writer hung on a failed segment"
    assert outcome and "encoding failed" in outcome[0]
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_segments_follow_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(segments, "usable_cores", lambda: 8)
    assert segments.segments_for("libx264", 0) == 2
