"""QA pass 14, item 3: an image over OpenCV's pixel limit is refused with the unreadable ones before
training, not met as a cv2.error traceback when a sample draws it."""

import struct
import zlib

import cv2
import numpy as np

from tests.conftest import one_line
from tests.conftest import run_cli as cli
from tests.media import TINY_TRAINING
from vidtrans.train.data import image_size


def png_header_only(width: int, height: int) -> bytes:
    """A structurally whole PNG claiming width x height pixels (its data far too short to decode)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_an_image_too_large_for_opencv_is_unreadable_before_training(tmp_path):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(50_000, 50_000))  # 2.5e9 pixels, over OpenCV's 2^30
    assert image_size(huge) is None
    data = tmp_path / "data"
    data.mkdir()
    pair = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    for i in range(3):
        cv2.imwrite(str(data / f"{i}.png"), pair)
    (data / "3.png").write_bytes(huge.read_bytes())
    result = cli("train", "--data", data, "-o", tmp_path / "m", "--iterations", "2", *TINY_TRAINING)
    assert one_line(result, 1).endswith("3.png: not a readable image (corrupt, cut short or of a kind OpenCV does "
                                        "not read); remove or replace it")
    assert not (tmp_path / "m").exists()
