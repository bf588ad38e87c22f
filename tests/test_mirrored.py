"""Display matrices that mirror the picture (some phones' front cameras, editors' flip) are shown
as players show them: turned, then mirrored; never read as a turn alone (a left-right mirror read
as 180 degrees showed the clip upside down)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.media import decode_all, make_clip, quadrants
from tests.test_run import FakeModel
from vidtrans.pipeline import translate_video
from vidtrans.video.reader import VideoReader, probe


def with_display_matrix(path, a: int, b: int, c: int, d: int) -> None:
    """Set the video track's MP4 matrix (tkhd, version 0) to shown (x, y) = (a x + c y, b x + d y)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd") + 44  # past the box type and the version-0 fields before the matrix
    one = 1 << 16
    data[at:at + 36] = struct.pack(">9i", a * one, b * one, 0, c * one, d * one, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("matrix, shown", [
    ((-1, 0, 0, 1), lambda image: image[:, ::-1]),  # mirrored left to right
    ((1, 0, 0, -1), lambda image: image[::-1]),  # upside down
    ((0, 1, 1, 0), lambda image: image.transpose(1, 0, 2)),  # a quarter turn and a mirror
    ((0, 1, -1, 0), lambda image: np.rot90(image, -1)),  # a quarter turn clockwise, as phones tag
], ids=["mirror", "flip", "transpose", "turn"])
def test_the_picture_is_shown_as_the_matrix_says(tmp_path, matrix, shown):
    clip = make_clip(tmp_path / "in.mp4", frames=3, size=(64, 48), audio=False, frame_fn=quadrants)
    with_display_matrix(clip.path, *matrix)
    expected = shown(clip.images[0])
    info = probe(clip.path)
    assert (info.height, info.width) == expected.shape[:2]
    with VideoReader(clip.path) as reader:
        image = next(iter(reader)).image
    assert np.abs(image.astype(int) - expected).mean() < 3
    # And so the translated output (the input upright, through an identity model).
    out = tmp_path / "out.mp4"
    translate_video(clip.path, out, FakeModel(lambda frames: frames))
    images, _ = decode_all(out)
    assert np.abs(images[0].astype(int) - expected).mean() < 3
