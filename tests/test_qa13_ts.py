"""QA12 items 5-7: a damaged timestamp on an MPEG-TS file's first video packet, joined MPEG-PS
recordings whose packets are stamped only now and then, and what `--start` into a TS/PS file
reads and decodes. The media are muxed here with chosen timestamps."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import move_timestamps
from tests.test_qa11_ts import FPS, TICKS, joined, times, translate, write_runs, write_ts
from vidtrans.video.reader import ContinuousTimestamps, VideoReader


@pytest.mark.parametrize("audio", [True, False])
@pytest.mark.parametrize("moved", [50, -50])
def test_damaged_first_video_timestamp_is_placed_before_the_second(tmp_path, moved, audio):
    # QA12 item 5: the video started 50 s late and the audio was lost.
    path = move_timestamps(write_ts(tmp_path / "first.ts", 100, frames=50, audio=audio), 0xE0, [0], moved)
    reader = VideoReader(path)
    got = times(reader)
    assert len(got) == 50 and got[0] == pytest.approx(0, abs=0.01)
    assert all(b - a == pytest.approx(1 / FPS, abs=0.001) for a, b in zip(got, got[1:]))
    assert reader.info.start_time == pytest.approx(0, abs=0.01)
    later = times(VideoReader(path, start=1))
    assert later[0] == pytest.approx(1, abs=0.01) and len(later) == 25
    if audio:
        video, sound = translate(path, tmp_path / "out.mkv")
        assert video[0] < 0.05 and video[-1] == pytest.approx(49 / FPS, abs=0.05)
        assert len(sound) > 70 and max(sound) == pytest.approx(video[-1], abs=0.1)


def write_ps(path, start, frames, first_level):
    """H.264 in MPEG-PS: `frames` gray 64x48 frames at FPS from `start` seconds on, frame i at
    level `first_level` + 2 i. The muxer stamps only the frames that begin a pack, a few of them."""
    out = av.open(str(path), "w", format="mpeg")
    video = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
    video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
    video.codec_context.gop_size = 10
    video.codec_context.max_b_frames = 0
    packets = []
    for i in range(frames):
        image = np.full((48, 64, 3), first_level + 2 * i, np.uint8)
        packets += video.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))
    packets += video.encode(None)
    for i, packet in enumerate(packets):  # no B-frames: one packet per frame, in order
        packet.pts = packet.dts = round(start * 90000) + i * TICKS
        packet.time_base = Fraction(1, 90000)
        out.mux(packet)
    out.close()
    with av.open(str(path)) as check:
        stamped = sum(p.pts is not None for p in check.demux(video=0) if p.size)
    assert stamped < frames // 2  # what this test is about
    return path


def frame_levels(reader):
    return [(frame.time, float(frame.image.mean())) for frame in reader]


def assert_one_frame_apart(frames, levels):
    """Frames 1/FPS apart, showing the pictures whose levels are given, in that order."""
    assert len(frames) == len(levels)
    assert all(b[0] - a[0] == pytest.approx(1 / FPS, abs=0.002) for a, b in zip(frames, frames[1:]))
    assert [level for _, level in frames] == pytest.approx(levels, abs=1.5)


def test_joined_mpeg_ps_recordings_follow_each_other(tmp_path):
    # QA12 item 6: the second recording went over the end of the first, 16 frames at one time.
    first = write_ps(tmp_path / "a.mpg", 1000, 50, 20)
    second = write_ps(tmp_path / "b.mpg", 5, 50, 120)
    path = tmp_path / "joined.mpg"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    assert_one_frame_apart(frame_levels(VideoReader(path)), [20 + 2 * i for i in range(100)])


def test_start_into_mpeg_ps_counts_frames_from_the_stamped_ones(tmp_path):
    # Frames without a timestamp before --start were not counted: the first kept one went to
    # --start itself, and the frames after it piled up at the next stamped time.
    path = write_ps(tmp_path / "a.mpg", 1000, 50, 20)
    frames = frame_levels(VideoReader(path, start=0.5, end=1.5))
    assert frames[0][0] == pytest.approx(0.52, abs=0.01)
    assert_one_frame_apart(frames, [20 + 2 * i for i in range(13, 38)])


@pytest.fixture
def work(monkeypatch):
    """How many video packets the reader demuxes (through its clock) and decodes."""
    counts = {"demuxed": 0, "decoded": 0}
    through_clock, decode = ContinuousTimestamps.__call__, VideoReader._decode

    def counted_through_clock(clock, packets):
        for packet in through_clock(clock, packets):
            counts["demuxed"] += 1
            yield packet

    def counted_decode(reader, packet, *rest):
        counts["decoded"] += packet is not None
        return decode(reader, packet, *rest)

    monkeypatch.setattr(ContinuousTimestamps, "__call__", counted_through_clock)
    monkeypatch.setattr(VideoReader, "_decode", counted_decode)
    return counts


def test_start_into_a_ts_reads_up_to_its_span_only(tmp_path, work):
    # QA12 item 7: every --start demuxed the whole file first, to learn whether its clock restarts.
    path = write_runs(tmp_path / "long.ts", [(100, 500)], [])
    got = times(VideoReader(path, start=2, end=2.4))
    assert got == pytest.approx([2 + i / FPS for i in range(10)], abs=0.001)
    assert work["demuxed"] < 100 and work["decoded"] < 50  # of 500


def test_start_after_a_restart_decodes_from_the_keyframes_before_it(tmp_path, work):
    # QA12 item 7: a file whose clock restarts was decoded from its beginning.
    first = write_ts(tmp_path / "a.ts", 10000, frames=250)
    second = write_ts(tmp_path / "b.ts", 500, frames=250)
    path = tmp_path / "joined.ts"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    frames = frame_levels(VideoReader(path, start=15, end=15.4))
    assert_one_frame_apart(frames, [4 * i % 256 for i in range(125, 135)])  # write_ts's levels
    assert frames[0][0] == pytest.approx(15, abs=0.001)
    assert work["decoded"] < 50  # of 385


def test_start_seeks_in_a_ts_a_pass_found_steady(tmp_path, work):
    # After a pass over all its packets (`span`, `frame_time`: eval's held-out tail), the file is
    # known to keep its clock: a --start reader seeks.
    path = write_runs(tmp_path / "long.ts", [(100, 500)], [])
    assert VideoReader(path).span().total == 500
    work["demuxed"] = 0
    got = times(VideoReader(path, start=18, end=18.4))
    assert got == pytest.approx([18 + i / FPS for i in range(10)], abs=0.001)
    assert work["demuxed"] < 100


def test_start_after_a_restart_keeps_its_times_after_a_pass(tmp_path):
    path = joined(tmp_path)  # 1 s at 10000 s, then 1 s at 500 s
    reader = VideoReader(path, start=1.5)
    assert reader.span().total == 50
    later = times(reader)
    assert 1.5 <= later[0] < 1.5 + 1 / FPS and len(later) == pytest.approx(12, abs=1)
