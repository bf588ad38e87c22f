"""QA14 item 1: an MPEG-TS file whose first audio packet carries a damaged timestamp (alone
or with the first video packet: a recording that starts mid-stream), and audio going back a little
written into MP4. The media are muxed here, then their PES headers damaged."""

import pytest

from tests.media import move_timestamps
from tests.test_qa11_ts import FPS, translate, write_runs, write_ts
from vidtrans.errors import VidtransError
from vidtrans.video import writer as writer_module
from vidtrans.video.reader import VideoReader, probe

VIDEO, AUDIO = 0xE0, 0xC0  # the PES stream ids the TS muxer gives its first video and audio streams


def assert_in_sync(video, audio):
    """50 frames from 0 a frame apart and 2 s of audio beside them, none of it squashed or late."""
    assert len(video) == 50 and video[0] == pytest.approx(0, abs=0.05)
    assert all(b - a == pytest.approx(1 / FPS, abs=0.002) for a, b in zip(video, video[1:]))
    assert audio[0] == pytest.approx(0, abs=0.05) and audio[-1] == pytest.approx(video[-1], abs=0.1)
    assert len(audio) > 70 and all(0 < b - a < 0.05 for a, b in zip(audio, audio[1:]))


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
@pytest.mark.parametrize("damaged, moved", [((AUDIO,), 50), ((AUDIO,), -3), ((VIDEO, AUDIO), 50),
                                            ((VIDEO, AUDIO), -50)], ids=["audio+50", "audio-3", "both+50", "both-50"])
def test_damaged_first_audio_timestamp_goes_before_the_next(tmp_path, damaged, moved, suffix):
    # The audio went to 50 s, squashed into 2 ms, and .mp4 failed with "check free disk space";
    # moved 3 s back, it put the whole output 3 s late. (A first video timestamp 3 s early is no
    # jump of the video's clock: a gap, as FFmpeg's dts_delta_threshold has it.)
    path = write_ts(tmp_path / "first.ts", 100, frames=50, audio=True)
    for stream_id in damaged:
        move_timestamps(path, stream_id, [0], moved)
    info = probe(path)
    assert info.start_time == pytest.approx(0, abs=0.01) and info.clip_start == pytest.approx(100, abs=0.01)
    assert [frame.time for frame in VideoReader(path)][0] == pytest.approx(0, abs=0.01)
    assert_in_sync(*translate(path, tmp_path / f"out{suffix}"))


def test_damaged_first_audio_timestamp_of_audio_starting_late(tmp_path):
    # The audio starts 3 s after the video: its first packet is checked against the video's clock
    # where the file puts it, not against the video's start, and the audio keeps its 3 s.
    path = move_timestamps(write_runs(tmp_path / "late.ts", [(100, 150)], [(103, 2)]), AUDIO, [0], 50)
    video, audio = translate(path, tmp_path / "out.mkv")
    assert len(video) == 150 and video[0] == pytest.approx(0, abs=0.05)
    assert audio[0] == pytest.approx(3, abs=0.03) and audio[-1] == pytest.approx(5, abs=0.05)
    assert all(0 < b - a < 0.05 for a, b in zip(audio, audio[1:]))


def test_audio_going_back_a_little_writes_into_mp4(tmp_path):
    # Four audio packets 99 ms early (too little for a jump) were each moved one 90 kHz tick after
    # the one before, which rounds onto the same tick of MP4's audio time base: the muxer refused
    # them and the run failed with "check free disk space".
    path = move_timestamps(write_ts(tmp_path / "back.ts", 100, frames=50, audio=True), AUDIO, [40, 41, 42, 43], -0.099)
    video, audio = translate(path, tmp_path / "out.mp4")
    assert len(video) == 50 and len(audio) > 70 and audio[-1] == pytest.approx(video[-1], abs=0.1)


def test_refused_audio_is_not_called_a_disk_problem(tmp_path, monkeypatch):
    # Whatever makes the MP4 muxer refuse the input's packets, the message names its reason.
    monkeypatch.setattr(writer_module.VideoWriter, "_after_last", lambda self, index, packet: None)
    path = move_timestamps(write_ts(tmp_path / "back.ts", 100, frames=50, audio=True), AUDIO, [40, 41], -0.099)
    with pytest.raises(VidtransError) as refused:
        translate(path, tmp_path / "out.mp4")
    message = str(refused.value)
    assert "disk" not in message and "refused a packet of the input's audio" in message and ".mkv" in message
    assert "\n" not in message and not (tmp_path / "out.mp4").exists()
