"""QA round 21, decoding and encoding: spans on a coarse clock, ADTS AAC into AVI/ASF, an AVI output
whose video starts after time 0, x265's own log, and the messages of refused encoder settings."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import make_clip
from tests.test_run import FakeModel
from vidtrans.errors import UsageError
from vidtrans.options import EncodeOptions
from vidtrans.pipeline import translate_video
from vidtrans.video import check_output_settings
from vidtrans.video.reader import VideoReader

IDENTITY = FakeModel(lambda frames: frames)


def _nearest_pictures(images: list[np.ndarray], clip) -> list[int]:
    """Which of the clip's pictures each image is."""
    return [int(np.argmin([np.abs(image.astype(int) - source).mean() for source in clip.images])) for image in images]


def test_a_span_of_whole_frames_on_a_millisecond_clock_holds_exactly_those_frames(tmp_path):
    # Matroska counts milliseconds: 30 fps frame 7 (7/30 s = 233.3 ms) is stored at 233 ms. A span
    # from 7/30 s to 8/30 s started after it and ended before frame 8 (at 267 ms): no frame at all.
    clip = make_clip(tmp_path / "in.mkv", frames=12, fps=30, audio=False)
    with VideoReader(clip.path, start=7 / 30, end=8 / 30) as reader:
        assert _nearest_pictures([f.image for f in reader], clip) == [7]
    with VideoReader(clip.path, start=3 / 30, end=9 / 30) as reader:
        frames = list(reader)
    assert _nearest_pictures([f.image for f in frames], clip) == [3, 4, 5, 6, 7, 8]
    assert frames[0].time == pytest.approx(0.1, abs=1e-3)
    out = tmp_path / "out.mkv"
    translate_video(clip.path, out, IDENTITY, start=3 / 30, end=9 / 30)
    with VideoReader(out) as reader:
        frames = list(reader)
    assert _nearest_pictures([f.image for f in frames], clip) == [3, 4, 5, 6, 7, 8]
    assert frames[0].time == 0


@pytest.mark.parametrize("suffix", [".avi", ".wmv"])
def test_adts_aac_of_an_mpeg_ts_is_copied_into_avi_and_asf(tmp_path, suffix):
    # MPEG-TS carries AAC as ADTS, which the AVI and ASF muxers refused under plain AAC's tag:
    # "cannot start the output (Invalid argument)", exit 2, for a clip they can hold.
    clip = make_clip(tmp_path / "in.ts", frames=10)
    out = tmp_path / f"out{suffix}"
    translate_video(clip.path, out, IDENTITY)
    with av.open(str(clip.path)) as source, av.open(str(out)) as written:
        assert written.streams.audio[0].codec_context.name == "aac"
        samples = [sum(frame.samples for frame in c.decode(audio=0)) for c in (source, written)]
    assert samples[1] == samples[0]  # copied whole, not re-encoded (an encoder adds its priming)


def _avi_times(path) -> list[float]:
    with VideoReader(path) as reader:
        return [f.time for f in reader]


def test_an_avi_whose_video_starts_after_its_audio_starts_its_pictures_at_their_time(tmp_path):
    # FFmpeg's AVI muxer stores a stream's first packet as frame 0 whatever its time: a video half a
    # second after its audio started at 0 s, its first picture held for 0.6 s.
    pts = [500 + 40 * i for i in range(10)]
    clip = make_clip(tmp_path / "in.mkv", frames=10, pts=pts, time_base=Fraction(1, 1000), audio_codec="mp3",
                     sample_rate=44100, audio_seconds=1.0)
    out = tmp_path / "out.avi"
    translate_video(clip.path, out, IDENTITY)
    times = _avi_times(out)
    # Time 0 is where the audio starts, MP3's encoder delay (26 ms, which AVI plays) before the
    # source's 0: the video at 0.526 s is rounded once, to frame 13 (0.52 s), not up twice to 0.56.
    assert times == pytest.approx([0.52 + 0.04 * i for i in range(10)], abs=1e-6)


def test_aac_priming_into_avi_delays_the_first_picture_with_the_others(tmp_path):
    # AVI cannot hide AAC's priming (64 ms at 16 kHz): FFmpeg moves the video two frames later to
    # stay in sync, but the first picture stayed at 0 s, shown for three frames.
    clip = make_clip(tmp_path / "in.mp4", frames=10)
    out = tmp_path / "out.avi"
    translate_video(clip.path, out, IDENTITY)
    assert _avi_times(out) == pytest.approx([0.08 + 0.04 * i for i in range(10)], abs=1e-6)
    # Without audio before it, the video still starts at 0.
    silent = make_clip(tmp_path / "silent.mp4", frames=10, audio=False)
    translate_video(silent.path, tmp_path / "silent.avi", IDENTITY)
    assert _avi_times(tmp_path / "silent.avi") == pytest.approx([0.04 * i for i in range(10)], abs=1e-6)


@pytest.mark.skipif("libx265" not in av.codecs_available, reason="this FFmpeg has no x265")
def test_x265_prints_nothing_of_its_own(tmp_path, capfd):
    # `--codec libx265` printed x265's banner and settings, some 70 lines, on stderr (past FFmpeg's log).
    clip = make_clip(tmp_path / "in.mp4", frames=4, audio=False)
    translate_video(clip.path, tmp_path / "out.mkv", IDENTITY, codec="libx265")
    assert "x265 [" not in capfd.readouterr().err
    with av.open(str(tmp_path / "out.mkv")) as written:
        assert written.streams.video[0].codec_context.name == "hevc"


def test_a_codec_refusing_its_settings_is_not_told_to_need_an_nvidia_gpu(tmp_path):
    # Every codec's refusal ended "(NVENC also needs an NVIDIA GPU with an encoder)", DNxHD's too.
    # H.261 takes only 176x144 and 352x288 (dnxhd, which this used, opens since it writes DNxHR).
    with pytest.raises(UsageError) as refused:
        check_output_settings(tmp_path / "out.avi", EncodeOptions(codec="h261"))
    assert "refused its settings" in str(refused.value) and "NVENC" not in str(refused.value)


def test_a_start_between_the_frames_of_a_clock_of_frames_keeps_the_frame_after_it(tmp_path):
    # AVI counts time in frames, on which they sit exactly: 0.41 s is after frame 10 (0.40 s).
    clip = make_clip(tmp_path / "in.avi", frames=15, audio=False)
    with VideoReader(clip.path, start=0.41, end=0.5) as reader:
        assert _nearest_pictures([f.image for f in reader], clip) == [11, 12]


@pytest.mark.parametrize("seconds, time_base, expected", [
    (Fraction(7, 30), Fraction(1, 1000), 233),        # Matroska: frame 7 stored at 233 ms is in a span from 7/30 s
    (Fraction(7, 30), Fraction(1, 16000), 3726),      # the same times remuxed into an MP4 of 1/16000 s (233 ms: 3728)
    (Fraction(7, 30), Fraction(1, 90000), 20955),     # 0.5 ms before 7/30 s at 90 kHz: a rounded time is still in
    (Fraction(33633, 10**6), Fraction(1, 30), 2),     # AVI: frame 1 (0.0333 s) is before 0.033633 s, not in
    (Fraction(1, 30), Fraction(1, 30), 1),            # ... and frame 1 is in a span from its own time
    (Fraction(11, 600), Fraction(1, 600), 11),        # QuickTime's 1/600 s clock: exact
])
def test_a_span_starts_at_the_first_frame_at_or_after_it_give_or_take_a_rounded_millisecond(seconds, time_base,
                                                                                            expected):
    from vidtrans.video.reader import first_pts_at

    assert first_pts_at(seconds, time_base) == expected
