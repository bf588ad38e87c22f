"""QA11 items 3-5: MPEG-TS clocks that wrap at 2^33 ticks, a single damaged timestamp, and joined
segments whose clock goes back. The media are muxed here with chosen timestamps."""

from fractions import Fraction

import av
import numpy as np
import pytest

from vidtrans.video.reader import VideoReader
from vidtrans.video.writer import SourceMedia, VideoWriter

FPS = 25
TICKS = 90000 // FPS  # one frame in the TS time base
WRAP = 1 << 33


def write_ts(path, base_seconds, frames=50, audio=False, damage=None):
    """An MPEG-2 TS of `frames` gray frames at FPS from `base_seconds` on its clock (the muxer stores it modulo
    2^33 ticks, as the format stores it); `damage` (index, seconds) moves one frame's pts that far."""
    out = av.open(str(path), "w", format="mpegts")
    video = out.add_stream("mpeg2video", rate=FPS)
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    video.codec_context.gop_size = 10
    video.codec_context.max_b_frames = 0
    sound = out.add_stream("mp2", rate=48000) if audio else None
    base = round(base_seconds * 90000)
    index = 0

    def mux(packets):
        nonlocal index
        for packet in packets:
            packet.pts = packet.dts = base + index * TICKS
            if damage is not None and index == damage[0]:
                packet.pts += round(damage[1] * 90000)
            packet.time_base = Fraction(1, 90000)
            index += 1
            out.mux(packet)

    for i in range(frames):
        image = np.full((48, 64, 3), 4 * i, np.uint8)
        mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
    mux(video.encode(None))
    if sound is not None:
        samples = 1152
        t = base
        for k in range(frames * 48000 // FPS // samples):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, samples * 2), np.int16), format="s16", layout="stereo")
            frame.sample_rate, frame.pts = 48000, k * samples
            for packet in sound.encode(frame):
                packet.pts = packet.dts = t
                packet.time_base = Fraction(1, 90000)
                t += samples * 90000 // 48000
                out.mux(packet)
    out.close()
    return path


def times(reader):
    return [frame.time for frame in reader]


def test_damaged_timestamp_is_one_frame_late_not_an_hour(tmp_path):
    path = write_ts(tmp_path / "damaged.ts", 100, damage=(20, 4000))
    reader = VideoReader(path)
    got = times(reader)
    assert len(got) == 50
    assert got[-1] < 50 / FPS + 0.1  # not 4000 s
    assert all(b - a < 0.1 for a, b in zip(got, got[1:]))
    assert reader.span().total == 50 and reader.frame_time(49) == pytest.approx(got[-1])


def test_recording_across_the_clock_wrap_counts_from_its_start(tmp_path):
    path = write_ts(tmp_path / "wrap.ts", WRAP / 90000 - 1)  # 1 s before the wrap, 2 s long
    assert len(times(VideoReader(path))) == 50
    assert len(times(VideoReader(path, start=0))) == 50
    late = times(VideoReader(path, start=1.5))
    assert 1.5 <= late[0] < 1.5 + 1 / FPS and len(late) == pytest.approx(12, abs=1)
    early = times(VideoReader(path, end=0.5))
    assert early[0] == pytest.approx(0, abs=0.05) and len(early) == pytest.approx(12, abs=1)


def joined(tmp_path):
    first = write_ts(tmp_path / "a.ts", 10000, frames=25, audio=True)
    second = write_ts(tmp_path / "b.ts", 500, frames=25, audio=True)
    path = tmp_path / "joined.ts"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def test_joined_segments_play_back_to_back(tmp_path):
    path = joined(tmp_path)
    got = times(VideoReader(path))
    assert len(got) == 50 and got[-1] < 2.1
    assert all(0 < b - a < 0.1 for a, b in zip(got, got[1:]))
    later = times(VideoReader(path, start=1.5))  # in the second segment
    assert 1.5 <= later[0] < 1.5 + 1 / FPS and len(later) == pytest.approx(12, abs=1)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_joined_segments_write_with_audio_in_sync(tmp_path, suffix):
    path = joined(tmp_path)
    reader = VideoReader(path)
    dst = tmp_path / f"out{suffix}"
    with VideoWriter(dst, 64, 48, reader.info.time_base, reader.info.fps, source=SourceMedia(path)) as writer:
        for frame in reader:
            writer.write(frame.image, frame.pts)
    with av.open(str(dst)) as out:
        assert out.duration / av.time_base < 3  # not 24 hours
        audio = [float(p.pts * p.time_base) for p in out.demux(audio=0) if p.size]
    assert max(audio) < 2.5 and all(0 <= b - a < 0.1 for a, b in zip(audio, audio[1:]))
