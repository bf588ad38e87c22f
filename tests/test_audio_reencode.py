"""Audio the output container cannot hold is re-encoded, not lost: FLAC and Opus into QuickTime
.mov (whose muxer lists them but refuses them), any audio into MPEG program streams (.mpg), and
sample rates the re-encoding codec does not take."""

from __future__ import annotations

import av
import pytest

from tests.media import make_clip
from tests.test_run import FakeModel
from vidtrans.pipeline import translate_video

IDENTITY = FakeModel(lambda frames: frames)


def decoded_audio(path) -> list[tuple[str, int, float]]:
    """(codec, sample rate, seconds decoded) of each audio stream of `path`."""
    found = []
    with av.open(str(path)) as container:
        for stream in container.streams.audio:
            samples = sum(frame.samples for frame in container.decode(stream))
            found.append((stream.codec_context.name, stream.codec_context.sample_rate, samples / stream.sample_rate))
            container.seek(0)
    return found


@pytest.mark.parametrize("source, suffix, codec", [("flac", ".mov", "aac"), ("opus", ".mov", "aac"),
                                                   ("aac", ".mpg", "mp2")])
def test_audio_the_output_cannot_hold_is_reencoded(tmp_path, caplog, source, suffix, codec):
    clip = make_clip(tmp_path / "in.mkv", frames=25, audio_codec=source, sample_rate=48000, audio_streams=2)
    out = tmp_path / f"out{suffix}"
    translate_video(clip.path, out, IDENTITY)
    audio = decoded_audio(out)
    assert [(name, rate) for name, rate, _ in audio] == [(codec, 48000)] * 2
    # Every second of both tracks is there (an encoder's priming and padding aside).
    assert all(seconds == pytest.approx(1.0, abs=0.07) for _, _, seconds in audio)
    assert "left out" not in caplog.text


@pytest.mark.parametrize("rate, suffix, codec, encoded_at", [(8000, ".mpg", "mp2", 16000),
                                                              (192000, ".mp4", "aac", 96000)])
def test_a_rate_the_encoder_does_not_take_is_resampled(tmp_path, rate, suffix, codec, encoded_at):
    clip = make_clip(tmp_path / "in.mkv", frames=25, audio_codec="pcm_s16le", sample_rate=rate)
    out = tmp_path / f"out{suffix}"
    translate_video(clip.path, out, IDENTITY)
    [(name, got_rate, seconds)] = decoded_audio(out)
    assert (name, got_rate) == (codec, encoded_at)
    assert seconds == pytest.approx(1.0, abs=0.07)


@pytest.mark.parametrize("source, rate, copied", [("pcm_s16le", 44100, False), ("pcm_u8", 22050, False),
                                                  ("mp3", 8000, False), ("mp3", 16000, False),
                                                  ("mp3", 22050, True), ("aac", 8000, True)])
def test_flv_gets_audio_its_muxer_takes(tmp_path, caplog, source, rate, copied):
    """FFmpeg's FLV muxer aborted the whole process on copied PCM (SIGABRT at the header) and refused
    MP3 at rates FLV has no flag for: those are re-encoded to AAC, with a warning."""
    clip = make_clip(tmp_path / "in.mkv", frames=25, audio_codec=source, sample_rate=rate)
    out = tmp_path / "out.flv"
    translate_video(clip.path, out, IDENTITY)
    [(name, got_rate, seconds)] = decoded_audio(out)
    [(source_name, _, source_seconds)] = decoded_audio(clip.path)
    assert (name, got_rate) == ((source_name if copied else "aac"), rate)
    # FLV keeps no encoder delay or padding: players hear up to two AAC frames more (priming, padding).
    assert seconds == pytest.approx(source_seconds, abs=max(0.07, 2048 / rate))
    assert ("re-encoded to aac" in caplog.text) is not copied
