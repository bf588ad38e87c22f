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
    sound = [(base_seconds, frames / FPS)] if audio else []
    return write_runs(path, [(base_seconds, frames)], sound, damage)


def write_runs(path, video_runs, audio_runs, damage=None):
    """An MPEG-2 TS whose video runs are (start seconds, frames) and audio runs (start seconds, seconds),
    muxed in time order as a recorder writes them; `damage` (index, seconds) moves one frame's pts that far."""
    out = av.open(str(path), "w", format="mpegts")
    video = out.add_stream("mpeg2video", rate=FPS)
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    video.codec_context.gop_size = 10
    video.codec_context.max_b_frames = 0
    sound = out.add_stream("mp2", rate=48000) if audio_runs else None
    times = [round(start * 90000) + i * TICKS for start, frames in video_runs for i in range(frames)]
    packets = []
    for i in range(len(times)):
        image = np.full((48, 64, 3), 4 * i % 256, np.uint8)
        packets += video.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))
    packets += video.encode(None)
    for index, (packet, t) in enumerate(zip(packets, times)):  # no B-frames: one packet per frame, in order
        packet.pts = packet.dts = t
        if damage is not None and index == damage[0]:
            packet.pts += round(damage[1] * 90000)
    samples = 1152
    for start, seconds in audio_runs:
        t = round(start * 90000)
        for k in range(round(seconds * 48000) // samples):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, samples * 2), np.int16), format="s16", layout="stereo")
            frame.sample_rate, frame.pts = 48000, k * samples
            for packet in sound.encode(frame):
                packet.pts = packet.dts = t
                t += samples * 90000 // 48000
                packets.append(packet)
    for packet in sorted(packets, key=lambda p: p.dts):
        packet.time_base = Fraction(1, 90000)
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


def translate(path, dst):
    """Write `path`'s frames to `dst` with its audio, as `run` does; the output's video frame and audio packet times."""
    reader = VideoReader(path)
    with VideoWriter(dst, 64, 48, reader.info.time_base, reader.info.fps, source=SourceMedia(path)) as writer:
        for frame in reader:
            writer.write(frame.image, frame.pts)
    with av.open(str(dst)) as out:
        video = sorted(float(p.pts * p.time_base) for p in out.demux(video=0) if p.size)
    with av.open(str(dst)) as out:
        audio = sorted(float(p.pts * p.time_base) for p in out.demux(audio=0) if p.size)
    return video, audio


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_joined_segments_write_with_audio_in_sync(tmp_path, suffix):
    video, audio = translate(joined(tmp_path), tmp_path / f"out{suffix}")
    assert video[-1] < 2.1  # not 24 hours
    assert max(audio) < 2.5 and all(0 <= b - a < 0.1 for a, b in zip(audio, audio[1:]))


def test_audio_only_gap_stays_where_it_is(tmp_path):
    # QA12 item 1: audio missing for 10.5 s while the video runs on is a gap, not a new clock.
    path = write_runs(tmp_path / "gap.ts", [(100, 300)], [(100, 1), (111.5, 0.5)])
    video, audio = translate(path, tmp_path / "out.mkv")
    assert video[-1] == pytest.approx(12, abs=0.1)
    assert max(audio) == pytest.approx(12, abs=0.1)  # the late audio plays with the end of the video
    assert [t for t in audio if 1.1 < t < 11.4] == []


def test_video_and_audio_get_one_shift(tmp_path):
    # QA12 item 2: a video gap just over 10 s, the audio's just under: both or neither move.
    path = write_runs(tmp_path / "border.ts", [(100, 50), (112.04, 50)], [(100, 2.04), (112.04, 2)])
    video, audio = translate(path, tmp_path / "out.mkv")
    assert video[-1] < 4.1
    assert max(audio) < video[-1] + 0.2 and all(b - a < 0.1 for a, b in zip(audio, audio[1:]))


def test_joined_segment_audio_starts_with_its_video(tmp_path):
    # QA12 item 3: segment A's audio ends 0.5 s before its video; B's audio must still start with B's video.
    first = write_runs(tmp_path / "a.ts", [(1000, 50)], [(1000, 1.5)])
    second = write_runs(tmp_path / "b.ts", [(5, 50)], [(5, 2)])
    path = tmp_path / "joined.ts"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    video, audio = translate(path, tmp_path / "out.mkv")
    second_video = video[50]
    second_audio = min(t for t in audio if t > 1.6)
    assert second_audio == pytest.approx(second_video, abs=0.05)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_clip_joined_to_itself_plays_twice(tmp_path, suffix):
    # QA12 item 4: the clock going back 2 s (`cat a.ts a.ts`) is a new clock, for audio and video alike.
    clip = write_ts(tmp_path / "a.ts", 5, frames=50, audio=True)
    path = tmp_path / "twice.ts"
    path.write_bytes(clip.read_bytes() * 2)
    got = times(VideoReader(path))
    assert len(got) == 100 and all(0 < b - a < 0.1 for a, b in zip(got, got[1:]))
    video, audio = translate(path, tmp_path / f"out{suffix}")
    assert len(video) == 100 and video[-1] == pytest.approx(4, abs=0.1)
    assert max(audio) == pytest.approx(4, abs=0.1) and all(b - a < 0.1 for a, b in zip(audio, audio[1:]))
