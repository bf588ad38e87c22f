"""QA round 19, audio: multichannel layouts the re-encoding codec refuses (5.1(side) into Opus, 5.1 into
MP2), MP3 below 16 kHz into .mp4, a warning for each re-encoded track, and .mov's language codes."""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.media import make_clip
from tests.test_run import FakeModel
from vidtrans.pipeline import translate_video

IDENTITY = FakeModel(lambda frames: frames)
VP9 = {"codec": "libvpx-vp9", "crf": 40, "preset": "ultrafast"}


def clip_with_audio(path, codec: str = "aac", layout: str = "mono", rate: int = 48000,
                    languages: tuple[str, ...] = ()):
    """A 10-frame 25 fps .mkv with one audio track per language (one untagged without any) of `codec`,
    0.4 s of `layout`, each channel a sine of its own pitch."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        tracks = []
        for language in languages or (None,):
            stream = out.add_stream(codec, rate=rate)
            stream.layout = layout
            if language:
                stream.metadata["language"] = language
            tracks.append(stream)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        channels = av.AudioLayout(layout).nb_channels
        total, chunk = int(0.4 * rate), 1024
        for stream in tracks:
            for start in range(0, total, chunk):
                t = np.arange(start, min(total, start + chunk)) / rate
                samples = np.stack([0.2 * np.sin(2 * math.pi * 220 * (c + 1) * t) for c in range(channels)])
                frame = av.AudioFrame.from_ndarray(samples.astype(np.float32), format="fltp", layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    return path


def audio_of(path) -> list[tuple[str, str, np.ndarray]]:
    """(codec, layout, RMS level of each channel) of each audio track of `path`."""
    found = []
    with av.open(str(path)) as container:
        for stream in container.streams.audio:
            planes = [frame.to_ndarray().reshape(frame.layout.nb_channels, -1) if frame.format.is_planar
                      else frame.to_ndarray().reshape(-1, frame.layout.nb_channels).T
                      for frame in container.decode(stream)]
            samples = np.concatenate(planes, axis=1).astype(np.float64)
            found.append((stream.codec_context.name, stream.codec_context.layout.name,
                          np.sqrt((samples ** 2).mean(axis=1))))
            container.seek(0)
    return found


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("codec", ["ac3", "flac"])
def test_side_channels_go_into_webm_as_back_ones(tmp_path, caplog, codec):
    src = clip_with_audio(tmp_path / "in.mkv", codec, "5.1(side)")
    out = tmp_path / "out.webm"
    with caplog.at_level(logging.WARNING):
        translate_video(src, out, IDENTITY, **VP9)
    [(name, layout, levels)] = audio_of(out)
    assert (name, layout) == ("opus", "5.1")
    assert (levels > 0.05).sum() >= 5  # every channel is heard (the LFE's sine may be filtered away)
    assert warnings_of(caplog) == [f"{src}: its {codec} audio track is re-encoded to opus, its 5.1(side) channels as "
                                   "5.1: a .webm file cannot hold it; a Matroska (.mkv) file keeps it as it is"]


@pytest.mark.parametrize("layout", ["2.1", "4.0"])
def test_layouts_opus_refuses_are_mixed_to_stereo(tmp_path, layout):
    src = clip_with_audio(tmp_path / "in.mkv", "flac", layout)
    out = tmp_path / "out.webm"
    translate_video(src, out, IDENTITY, **VP9)
    [(name, got, levels)] = audio_of(out)
    assert (name, got) == ("opus", "stereo") and (levels > 0.05).all()


def test_surround_aac_into_mpg_is_mixed_to_stereo(tmp_path):
    src = clip_with_audio(tmp_path / "in.mkv", "aac", "5.1")
    out = tmp_path / "out.mpg"
    translate_video(src, out, IDENTITY)
    [(name, layout, levels)] = audio_of(out)
    assert (name, layout) == ("mp2", "stereo") and (levels > 0.05).all()


@pytest.mark.parametrize("rate", [8000, 11025])
def test_mp3_below_16khz_into_mp4_is_reencoded(tmp_path, caplog, rate):
    clip = make_clip(tmp_path / "in.mkv", frames=10, audio_codec="libmp3lame", sample_rate=rate)
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        translate_video(clip.path, out, IDENTITY)
    [(name, layout, levels)] = audio_of(out)
    assert (name, layout) == ("aac", "mono") and levels[0] > 0.05
    assert warnings_of(caplog) == [f"{clip.path}: its mp3 audio track is re-encoded to aac: a .mp4 file holds "
                                   f"MP3 at 16000 Hz and above only, not at {rate} Hz; a Matroska (.mkv) file keeps it "
                                   "as it is"]


def test_mp3_at_16khz_and_into_mov_is_copied(tmp_path, caplog):
    low = make_clip(tmp_path / "low.mkv", frames=10, audio_codec="libmp3lame", sample_rate=8000)
    usual = make_clip(tmp_path / "usual.mkv", frames=10, audio_codec="libmp3lame", sample_rate=16000)
    with caplog.at_level(logging.WARNING):
        translate_video(low.path, tmp_path / "out.mov", IDENTITY)
        translate_video(usual.path, tmp_path / "out.mp4", IDENTITY)
    assert [audio_of(tmp_path / name)[0][0] for name in ("out.mov", "out.mp4")] == ["mp3float", "mp3float"]
    assert warnings_of(caplog) == []


def test_each_reencoded_track_is_one_warning(tmp_path, caplog):
    clip = make_clip(tmp_path / "in.mkv", frames=10, audio_codec="pcm_s16le", audio_streams=2)
    with caplog.at_level(logging.WARNING):
        translate_video(clip.path, tmp_path / "out.mp4", IDENTITY)
    assert warnings_of(caplog) == [f"{clip.path}: its audio track {n} (pcm_s16le) is re-encoded to aac: few "
                                   "players read PCM in a .mp4 file; a Matroska (.mkv) file keeps it as it is"
                                   for n in (1, 2)]


def languages_of(path) -> list[str | None]:
    with av.open(str(path)) as container:
        return [s.metadata.get("language") for s in container.streams.audio]


def test_mov_keeps_languages_by_their_other_code(tmp_path, caplog):
    codes = ("deu", "fre", "zho", "nld", "ger", "fra", "eng", "mri")
    src = clip_with_audio(tmp_path / "in.mkv", languages=codes)
    with caplog.at_level(logging.WARNING):
        translate_video(src, tmp_path / "out.mov", IDENTITY)
        translate_video(src, tmp_path / "out.mp4", IDENTITY)
    assert languages_of(tmp_path / "out.mov") == ["ger", "fra", "chi", "dut", "ger", "fra", "eng", None]
    assert languages_of(tmp_path / "out.mp4") == list(codes)
    assert warnings_of(caplog) == [f"{src}: the language 'mri' of its audio track cannot go into a .mov file "
                                   "(QuickTime's language table lacks it) and is left out; a .mp4 or .mkv file "
                                   "keeps it"]
