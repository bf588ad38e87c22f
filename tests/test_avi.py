"""AVI stores no presentation times, only the order of its packets, and ASF (.wmv, .asf) their send
times: reading one whose pictures are stored out of showing order (B-frames), and writing a varying
frame rate into one. MPEG program
streams (.mpg) stamp a packet of several small frames once: the rest are timed by the frame rate."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from tests.media import audio_durations, decode_all, make_clip
from tests.test_run import FakeModel
from tests.test_video_robust import assert_same_pictures
from vidtrans.pipeline import translate_video
from vidtrans.video.reader import VideoReader

IDENTITY = FakeModel(lambda frames: frames)
B_FRAMES = {"bf": "3", "g": "10"}


@pytest.mark.parametrize("suffix", [".avi", ".wmv"])
@pytest.mark.parametrize("options", [B_FRAMES, {"bf": "0"}], ids=["b-frames", "no-b-frames"])
def test_an_avi_gives_each_picture_once_at_its_time(tmp_path, options, suffix):
    # No audio: AAC's priming would start the audio before the video, which AVI can only store by
    # delaying every picture but the first. (ASF read a third more frames than it held, the extra
    # ones counted as corrupt.)
    clip = make_clip(tmp_path / f"in{suffix}", frames=25, options=options, audio=False)
    with VideoReader(clip.path) as reader:
        frames = list(reader)
        assert reader.corrupt_frames == 0
    assert_same_pictures([f.image for f in frames], clip.images)
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(25)])


def test_a_span_of_an_avi_with_b_frames_starts_at_its_picture(tmp_path):
    clip = make_clip(tmp_path / "in.avi", frames=25, options=B_FRAMES)
    with VideoReader(clip.path, start=0.4, end=0.8) as reader:
        frames = list(reader)
    assert_same_pictures([f.image for f in frames], clip.images[10:20])


def test_an_avi_with_b_frames_keeps_its_frames_and_audio_through_run(tmp_path):
    clip = make_clip(tmp_path / "in.avi", frames=25, options=B_FRAMES, audio_codec="mp3", sample_rate=44100)
    out = tmp_path / "out.mp4"
    translate_video(clip.path, out, IDENTITY)
    images, times = decode_all(out)
    assert_same_pictures(images, clip.images)
    assert times == pytest.approx([i / 25 for i in range(25)], abs=1e-3)
    assert audio_durations(out)[0] == pytest.approx(1.0, abs=0.06)


def test_a_varying_frame_rate_keeps_its_times_in_an_asf(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=30, vfr=True, audio=False)
    out = tmp_path / "out.wmv"
    translate_video(clip.path, out, IDENTITY)
    with VideoReader(out) as reader:
        frames = list(reader)
    assert_same_pictures([f.image for f in frames], clip.images)
    # ASF's clock ticks in milliseconds: times within one tick.
    assert [f.time for f in frames] == pytest.approx([float(p * clip.time_base) for p in clip.pts], abs=1 / 1000)


@pytest.mark.parametrize("vfr", [False, True], ids=["constant", "varying"])
def test_an_avi_counts_time_in_frames_of_the_clips_rate(tmp_path, vfr):
    # AVI has one frame rate: at a finer clock its header told players of a 600 fps video of
    # mostly empty frames, whose last picture lasted one tick.
    pts = [0, 40, 80, 200, 240, 280, 320, 360, 480, 520] if vfr else None  # two pauses of two frames
    clip = make_clip(tmp_path / "in.mp4", frames=10, pts=pts, time_base=Fraction(1, 1000) if vfr else None,
                     fps=25, audio=False)
    out = tmp_path / "out.avi"
    translate_video(clip.path, out, IDENTITY)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.time_base == Fraction(1, 25) and stream.average_rate == 25
        assert stream.frames == (14 if vfr else 10)  # the pauses'' frames stored empty: players repeat a picture
    with VideoReader(out) as reader:
        frames = list(reader)
    assert_same_pictures([f.image for f in frames], clip.images)
    expected = pts if vfr else [40 * i for i in range(10)]
    assert [f.time for f in frames] == pytest.approx([t / 1000 for t in expected], abs=1e-6)


def test_small_frames_in_an_mpeg_program_stream_keep_their_rate(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=10)  # 64x48: several frames to a packet
    out = tmp_path / "out.mpg"
    translate_video(clip.path, out, IDENTITY)
    with VideoReader(out) as reader:
        times = [f.time for f in reader]
        assert reader.info.fps == pytest.approx(25)
    assert len(times) == 10
    assert [b - a for a, b in zip(times, times[1:])] == pytest.approx([0.04] * 9, abs=1e-3)
