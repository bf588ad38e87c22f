"""QA round 22, video inputs and outputs: extreme frame shapes and rates meeting the encoders."""

import subprocess
import sys
import textwrap
from fractions import Fraction

import av
import pytest

from tests.media import decode_all, make_clip
from vidtrans.errors import VidtransError
from vidtrans.options import EncodeOptions
from vidtrans.video.reader import VideoReader, probe
from vidtrans.video.writer import check_output


def test_svt_av1_finishes_frames_a_few_pixels_high_and_wide(tmp_path):
    """SVT-AV1 (4.1), with more than one thread, never returns from its flush for frames under 25
    pixels on one side and over 64 on the other (a 4000x16 strip): the run hung for good. In a
    child process, so that a hang fails the test instead of stopping the suite."""
    clip = make_clip(tmp_path / "strip.mkv", frames=3, size=(128, 16), audio=False)
    out = tmp_path / "strip.out.mkv"
    script = textwrap.dedent(f"""
        from vidtrans.options import EncodeOptions
        from vidtrans.video.reader import VideoReader
        from vidtrans.video.writer import VideoWriter
        reader = VideoReader({str(clip.path)!r})
        with VideoWriter({str(out)!r}, 128, 16, reader.info.time_base, reader.info.fps,
                         EncodeOptions(codec="libsvtav1")) as writer:
            for frame in reader:
                writer.write(frame.image, frame.pts)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    images, times = decode_all(out)
    assert len(images) == 3 and images[0].shape == (16, 128, 3)
    assert times == pytest.approx(clip.times, abs=1e-3)


@pytest.mark.parametrize("codec", ["libx265", "libsvtav1"])
def test_frames_too_small_for_the_encoder_are_not_told_to_be_made_smaller(codec):
    """libx265 and SVT-AV1 refuse a 2x2 picture (a 1x1 input): the advice was to make it smaller."""
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    with pytest.raises(VidtransError) as refused:
        check_output("out.mkv", 2, 2, Fraction(1, 25), 25, EncodeOptions(codec=codec))
    message = str(refused.value)
    assert "make them smaller" not in message
    assert "2x2" in message and "too small" in message


def test_a_frame_rate_the_encoder_refuses_is_named_as_such():
    """SVT-AV1 takes up to 240 frames a second: a 300 fps clip was refused as too large a picture."""
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("libsvtav1 is not in this FFmpeg build")
    with pytest.raises(VidtransError) as refused:
        check_output("out.mkv", 64, 48, Fraction(1, 300), 300, EncodeOptions(codec="libsvtav1"))
    message = str(refused.value)
    assert "make them smaller" not in message
    assert "300" in message and "frame rate" in message


def _remuxed_without_rate(src, dst):
    """`src`'s video packets in a new Matroska file whose muxer was told no frame rate (a remux by
    PyAV, or any tool passing none): its header says one frame per tick of its 1 ms clock, 1000 fps."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                o.mux(packet)
    return dst


def test_a_header_rate_faster_than_the_timestamps_is_not_the_clips(tmp_path, cli, rgb_model_dir):
    """A 25 fps clip whose Matroska header says 1000 fps was read as 1000 fps: its length guessed 40
    times too long, an .avi output written at 1000 frames a second (39 of 40 empty), and SVT-AV1
    refusing the rate."""
    clip = make_clip(tmp_path / "src.mkv", frames=12, audio=False, pts=[40 * i for i in range(12)],
                     time_base=Fraction(1, 1000))
    remuxed = _remuxed_without_rate(clip.path, tmp_path / "remuxed.mkv")
    info = probe(remuxed)
    assert info.fps == pytest.approx(25) and info.frame_count == 12
    out = tmp_path / "out.avi"
    result = cli("run", remuxed, "-m", rgb_model_dir, "-o", out)
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 25
    with VideoReader(out) as reader:
        assert [frame.time for frame in reader] == pytest.approx(clip.times, abs=1e-3)


def test_a_clip_ending_in_a_pause_lasts_to_its_last_frame(tmp_path, cli, rgb_model_dir):
    """A frame 0.78 s after the one before it (a screen recording's pause) came out at its time,
    but the .mp4 said the video lasted 0.18 s: with B-frames its last packet in decoding order is
    an earlier picture, which kept a frame's length instead of lasting until the next picture."""
    clip = make_clip(tmp_path / "pause.mp4", frames=5, pts=[0, 40, 80, 120, 900], time_base=Fraction(1, 1000),
                     audio=False)
    out = tmp_path / "out.mp4"
    assert cli("run", clip.path, "-m", rgb_model_dir, "-o", out).returncode == 0
    assert decode_all(out)[1] == pytest.approx(clip.times, abs=1e-3)
    # To the end of the last picture, whose own length (no picture follows it) is the encoder's.
    assert probe(out).duration == pytest.approx(probe(clip.path).duration, abs=0.041)


def test_segments_returned_late_keep_a_frames_length_per_packet(tmp_path):
    """Eight segments of 2 s at 60 fps come back up to 960 pictures after they were written, more
    than the writer keeps (512): packets whose picture it no longer held were given seconds."""
    import numpy as np

    from vidtrans.video.writer import VideoWriter

    dst = tmp_path / "out.mkv"
    writer = VideoWriter(dst, 64, 48, Fraction(1, 60), 60, EncodeOptions(segments=8))
    rng = np.random.default_rng(0)
    for i in range(1200):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), i)
    writer.close()
    with av.open(str(dst)) as container:
        packets = [(p.pts, p.duration) for p in container.demux(container.streams.video[0]) if p.pts is not None]
    following = dict(zip(sorted(p for p, _ in packets), sorted(p for p, _ in packets)[1:]))
    assert len(packets) == 1200
    # (1/60 s in milliseconds: 16 or 17 ticks, each a tick from the next time at most)
    assert [(pts, d) for pts, d in packets if pts in following and abs(d - (following[pts] - pts)) > 1] == []


def test_an_svt_av1_refusal_is_our_one_line_without_svts_own(tmp_path, rgb_model_dir):
    """SVT-AV1 printed four "Svt[error]" lines of its own above ours for frames too small for it."""
    import os

    clip = make_clip(tmp_path / "tiny.mkv", frames=2, size=(2, 2), audio=False).path
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"}
    result = subprocess.run([sys.executable, "-m", "vidtrans", "run", str(clip), "-m", str(rgb_model_dir),
                             "-o", str(tmp_path / "out.mkv"), "--codec", "libsvtav1"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()] and "too small for it" in result.stderr
    assert not (tmp_path / "out.mkv").exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_a_pause_before_a_p_frame_at_the_end_lasts_too(tmp_path, suffix):
    """Noise frames end on a P-frame sent after the B-frames before it: an MP4/MOV track, which ends
    a packet's length after its last decoding time, said 0.2 s for 0.94 s of pictures."""
    import numpy as np

    from vidtrans.video.writer import VideoWriter

    dst = tmp_path / f"out{suffix}"
    writer = VideoWriter(dst, 64, 48, Fraction(1, 1000), 25, EncodeOptions(segments=1))
    rng = np.random.default_rng(0)
    for pts in (0, 40, 80, 120, 900):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), pts)
    writer.close()
    assert probe(dst).duration == pytest.approx(0.94, abs=0.011)
    assert decode_all(dst)[1] == pytest.approx([0, 0.04, 0.08, 0.12, 0.9], abs=1e-3)
