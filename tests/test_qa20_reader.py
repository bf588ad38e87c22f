"""QA pass 20, the reader: inputs real users have (phone photos, odd files) decode upright, in their
colours, every frame at its time, or fail with one line."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from tests.media import _write_sine, make_clip, quadrants
from vidtrans.errors import VidtransError
from vidtrans.video import VideoReader, probe

RED, GREEN, BLUE, WHITE = (220, 30, 30), (30, 200, 30), (30, 30, 220), (235, 235, 235)


def corners(image: np.ndarray) -> list[tuple[int, int, int]]:
    """The colours at the middles of the picture's quarters: top-left, top-right, bottom-left, bottom-right."""
    h, w = image.shape[:2]
    return [tuple(int(v) for v in image[y, x]) for y, x in
            ((h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4), (3 * h // 4, 3 * w // 4))]


def assert_colours(image: np.ndarray, expected: list[tuple[int, int, int]]) -> None:
    for got, want in zip(corners(image), expected):
        assert max(abs(a - b) for a, b in zip(got, want)) <= 12, (corners(image), expected)


# EXIF orientation -> how the stored picture (red green / blue white) is shown.
SHOWN = {
    3: ((64, 48), [WHITE, BLUE, GREEN, RED]),  # turned 180 degrees
    6: ((48, 64), [BLUE, RED, WHITE, GREEN]),  # turned 90 degrees clockwise
    8: ((48, 64), [GREEN, WHITE, RED, BLUE]),  # turned 90 degrees counter-clockwise
    2: ((64, 48), [GREEN, RED, WHITE, BLUE]),  # mirrored
}


@pytest.mark.parametrize("suffix", ["jpg", "png"])
@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_a_phone_photo_with_exif_orientation_is_read_upright(tmp_path, orientation, suffix):
    # FFmpeg 8 attaches the EXIF block to the frame as side data PyAV 18 cannot name: listing the
    # frame's side data (for its display matrix) raised ValueError, a traceback for every phone photo.
    photo = tmp_path / f"photo.{suffix}"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(quadrants(0, 64, 48)).save(photo, exif=exif.tobytes(), quality=95)
    (width, height), colours = SHOWN[orientation]
    info = probe(photo)
    assert (info.width, info.height) == (width, height)
    with VideoReader(photo) as reader:
        frames = list(reader)
    assert len(frames) == 1 and frames[0].image.shape == (height, width, 3)
    assert_colours(frames[0].image, colours)



def test_an_mp4_cut_short_before_its_index_says_so(tmp_path):
    # A phone recording or a copy that stopped early ends inside the media data: the index (moov),
    # written last, is missing. FFmpeg says only "Invalid data found", which told the user to pass
    # an .mp4 when they had.
    clip = make_clip(tmp_path / "clip.mp4", frames=20)
    data = clip.path.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # written after the media data, as cameras do
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(VidtransError) as raised:
        probe(cut)
    message = str(raised.value)
    assert message.startswith(f"{cut}: not a readable video file (an MP4/MOV without its index")
    assert "untrunc" in message and "\n" not in message
    # Other unreadable files keep FFmpeg's reason.
    (tmp_path / "text.mp4").write_text("not a video\n" * 20)
    with pytest.raises(VidtransError, match=r"not a readable video file \(Invalid data found"):
        probe(tmp_path / "text.mp4")


def test_a_video_track_without_frames_is_named_as_such(tmp_path):
    path = tmp_path / "empty_track.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        audio.layout = "mono"
        _write_sine(out, audio, 0.5, 16000, 440.0)
    with pytest.raises(VidtransError) as raised:
        probe(path)
    assert str(raised.value).startswith(f"{path}: its video stream holds no frames")


def test_an_mkv_whose_video_starts_after_its_audio_has_the_video_duration(tmp_path):
    # Matroska states only the file's duration, counted from 0: the video's is that less where the
    # video starts (2 s), not less where the file (its audio, from 0 to 2.5 s) starts.
    clip = make_clip(tmp_path / "late.mkv", frames=25, pts=range(50, 75), time_base=Fraction(1, 25), audio=True,
                     audio_seconds=2.5)
    info = probe(clip.path)
    assert info.start_time == pytest.approx(2.0)
    assert info.duration == pytest.approx(1.0, abs=0.05)
    assert info.frame_count == 25
    with VideoReader(clip.path) as reader:
        assert reader.frame_count == 25
        assert len(list(reader)) == 25


def test_an_mkv_whose_video_starts_after_ffmpeg_stopped_probing(tmp_path):
    # Audio from 0 to 6 s, the video from 5 s: FFmpeg probes about 5 s of the file, sees no video
    # packet, and gives the video the file's start (0) and duration (6 s): 152 frames estimated.
    clip = make_clip(tmp_path / "late.mkv", frames=25, pts=range(125, 150), time_base=Fraction(1, 25), audio=True)
    info = probe(clip.path)
    assert info.start_time == pytest.approx(5.0)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert 25 <= info.frame_count <= 27
    with VideoReader(clip.path, start=5.5) as reader:
        assert 12 <= reader.frame_count <= 14  # from 138 (the audio runs 64 ms past the video)
        assert [round(f.time, 2) for f in reader][:2] == [5.52, 5.56]
