"""QA round 27, media: hostile and unusual inputs and outputs as a user meets them."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.conftest import one_line
from tests.media import make_clip
from vidtrans.video import VideoReader


@pytest.mark.parametrize(("suffix", "settings", "fps", "pts"), [
    # A 120 fps clip's frames come 8.3 ms apart: two fall on one of GIF's 1/100 s ticks.
    (".gif", ("--codec", "gif", "--pix-fmt", "rgb8"), 120, None),
    # Timestamps one 1/90000 s tick apart (what the reader makes of a duplicate): one of ASF's 1/1000 s ticks.
    (".wmv", (), 25, [0, 3600, 3601, 7200, 10800, 10801, 14400, 18000]),
])
def test_frames_closer_than_the_containers_clock_are_all_written(rgb_model_dir, cli, tmp_path, suffix, settings,
                                                                  fps, pts):
    """GIF stores times in 1/100 s and ASF (.wmv) in 1/1000 s, and both muxers refuse two pictures at one
    time: frames closer than that failed the run after all the work ("encoding failed (Invalid argument);
    check --codec, --pix-fmt, --crf and free disk space"). Each is a tick after the one before, as frames
    that round onto one tick of AVI's or MPEG's frames are."""
    clip = make_clip(tmp_path / "in.mov", frames=8, fps=fps, pts=pts, time_base=Fraction(1, 90000) if pts else None,
                     audio=False)
    out = tmp_path / f"out{suffix}"
    result = cli("run", clip.path, "-o", out, "--model", rgb_model_dir, *settings)
    assert result.returncode == 0, result.stderr
    with VideoReader(out) as reader:  # ASF keeps decoding times only, which it reads the pictures by
        times = [frame.time for frame in reader]
    assert len(times) == 8
    assert all(b > a for a, b in zip(times, times[1:])), times
    # Each kept on its tick, or a tick after the frame before.
    tick = 0.01 if suffix == ".gif" else 0.001
    assert all(abs(t - s) <= len(times) * tick for t, s in zip(times, clip.times)), (times, clip.times)


def _block_sizes(data: bytes, cluster: int) -> list[tuple[int, int]]:
    """Where each SimpleBlock of the Matroska cluster at `cluster` stores its size, and that size's length."""
    def vint(at: int) -> tuple[int, int]:
        length = 9 - data[at].bit_length()
        return int.from_bytes(data[at:at + length], "big") & ((1 << 7 * length) - 1), length
    position = cluster + 4 + vint(cluster + 4)[1]
    blocks = []
    while data[position] in (0xA3, 0xBF, 0xE7):  # SimpleBlock, CRC-32, Timestamp
        size, length = vint(position + 1)
        if data[position] == 0xA3:
            blocks.append((position + 1, length))
        position += 1 + length + size
    return blocks


def test_a_matroska_file_damaged_midway_says_its_video_ends_early(cli, tmp_path, rgb_model_dir):
    """A damaged block in a Matroska cluster ends the demuxer's reading where no cluster follows (a short
    clip is one cluster): the output ended there in silence, 10 frames of 75, where an MP4 or a Matroska
    copy cut short is warned about. The video's own DURATION tag, written when the file was finished,
    states the length it should have."""
    clip = make_clip(tmp_path / "in.mkv", frames=75, size=(64, 48), audio=False)
    data = bytearray(clip.path.read_bytes())
    assert data.count(b"\x1f\x43\xb6\x75") == 1  # one cluster
    at, length = _block_sizes(data, data.find(b"\x1f\x43\xb6\x75"))[10]
    # The 11th block claims a size running far past the cluster's end.
    data[at:at + length] = ((1 << 7 * length) - 2 | 1 << 7 * length).to_bytes(length, "big")
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    result = cli("run", damaged, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4")
    assert result.returncode == 0 and result.exception is None, result.stderr
    assert "s its header states (the file is cut short, or damaged from there)" in result.stderr, result.stderr
    assert "of the 3.0 s" in result.stderr
    with VideoReader(tmp_path / "out.mp4") as reader:
        assert sum(1 for _ in reader) < 75


def _noise(index: int, width: int, height: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_transport_stream_announcing_a_stream_midway_is_read_to_its_end(cli, tmp_path, rgb_model_dir):
    """MPEG-TS announces its streams in tables that may change midway (joined recordings, a broadcast adding
    a language): FFmpeg adds such a stream while reading, and PyAV's demuxing, at its end, looks it up in the
    list of streams it began with (IndexError), a traceback in `run`. Here a second audio track comes after
    6 s, past what FFmpeg reads when it opens the file (its first 5 s, its last 250 kB: hard-to-squeeze noise)."""
    parts = [make_clip(tmp_path / "a.ts", frames=150, pts=range(150), time_base=Fraction(1, 25), audio=True),
             make_clip(tmp_path / "b.ts", frames=10, pts=range(150, 160), time_base=Fraction(1, 25), audio=True,
                       audio_streams=2, audio_from=6.0),
             make_clip(tmp_path / "c.ts", frames=60, pts=range(160, 220), time_base=Fraction(1, 25), audio=True,
                       audio_from=6.4, frame_fn=_noise)]
    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(part.path.read_bytes() for part in parts))
    with av.open(str(joined)) as container:
        assert len(container.streams) == 2  # the second audio track is not known when the file is opened
    out = tmp_path / "out.mp4"
    result = cli("run", joined, "-m", rgb_model_dir, "-o", out)
    assert result.returncode == 0 and result.exception is None, result.stderr
    with VideoReader(out) as reader:
        times = [frame.time for frame in reader]
        assert reader.info.has_audio
    assert len(times) == 220  # every frame, the last part's too


@pytest.mark.parametrize(("fps", "codec", "suffix"), [(12.5, "mpeg2video", ".mpg"), (15, "mpeg1video", ".ts")])
def test_mpeg_video_keeps_the_clips_frame_rate_where_it_can(cli, tmp_path, rgb_model_dir, fps, codec, suffix):
    """MPEG-1/2 store a frame rate from a table (MPEG-2 also those times n/d) and count time in its frames.
    The writer took the table's nearest rate: for PAL's half rate, 12.5 fps, that is 12, which puts every
    frame a frame of 12 fps after the one before: the video ran 4 % slower than its sound (160 ms behind
    after 4 s). MPEG-2 stores 12.5 itself; MPEG-1 takes 15 fps only as an unofficial rate, and refused the
    clip: 30 fps times its frames exactly."""
    clip = make_clip(tmp_path / "in.mp4", frames=25, fps=fps, audio=True)
    out = tmp_path / f"out{suffix}"
    result = cli("run", clip.path, "-m", rgb_model_dir, "-o", out, "--codec", codec)
    assert result.returncode == 0 and result.exception is None, result.stderr
    with VideoReader(out) as reader:
        times = [frame.time for frame in reader]
    assert [t - times[0] for t in times] == pytest.approx([i / fps for i in range(25)], abs=1e-3)


@pytest.mark.parametrize("kept", [0.0, 0.3, 0.5])
def test_an_mp4_cut_inside_its_index_says_so(cli, tmp_path, rgb_model_dir, kept):
    """A camera or muxer writes an MP4's index, the 'moov' box, after the media data: a copy that stopped
    inside it (at 99.9 % of a long recording's) was told it had no video stream ("pass a video file, not
    audio or subtitles only"), that its track held no frames, or that it was no readable video, depending
    on where the index was cut; an MP4 cut before its index is told what it is."""
    clip = make_clip(tmp_path / "in.mp4", frames=30, size=(96, 64), audio=True)
    data = clip.path.read_bytes()
    moov = data.find(b"moov") - 4
    assert moov > data.find(b"mdat")  # written after the media data
    size = int.from_bytes(data[moov:moov + 4], "big")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:moov + 8 + int((size - 8) * kept)])
    for command in (("run", cut, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4"), ("pose", cut)):
        line = one_line(cli(*command), 1)
        assert line.startswith(f"vidtrans: error: {cut}: not a readable video file (an MP4/MOV without its index"), line
        assert "or with it cut short" in line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cut.mp4", "in.mp4"]


def test_a_matroska_file_whose_last_frame_is_held_is_not_called_damaged(cli, tmp_path, rgb_model_dir):
    """The other side of the DURATION tag's warning: a last frame shown for 5 s (a screen recording's) makes
    the tag 5 s longer than the frames' times, but the file ends with that frame: nothing is missing."""
    path = tmp_path / "held.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i * 40, Fraction(1, 1000)
            for packet in stream.encode(frame):
                packet.duration = 5000 if i == 11 else 40
                out.mux(packet)
        out.mux(stream.encode(None))
    with av.open(str(path)) as back:
        assert back.streams.video[0].metadata["DURATION"].startswith("00:00:05.44")
    result = cli("run", path, "-m", rgb_model_dir, "-o", tmp_path / "out.mp4")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_a_clip_starting_between_two_microseconds_counts_all_its_frames(tmp_path):
    """FFmpeg gives a file's start in whole microseconds: a transport stream starting 5 ticks of its 90 kHz
    clock in (55.6 us) was taken to start at 56 us, so its first frame came 0.44 us before the clip's start,
    and the reader's estimate of its frames (the progress bar's total) counted one fewer."""
    clip = make_clip(tmp_path / "in.ts", frames=30, fps=30000 / 1001, pts=[5 + 3003 * k for k in range(30)],
                     time_base=Fraction(1, 90000), audio=False)
    with VideoReader(clip.path) as reader:
        times = [frame.time for frame in reader]
        assert reader.frame_count == len(times) == 30
    assert times[0] == 0
