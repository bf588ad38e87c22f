"""QA round 25, files: a checkpoint's background.png that is an image of another kind (a JPEG, a BMP,
a PPM) is refused as not a PNG, before it is decoded: OpenCV decoded a 700-byte JPEG declaring
20000x20000 pixels whole (2.3 GB, 4 s) before its size could be refused; and a frame size has one
limit, 2^20, whether a keypoint file gives it or a pose function is handed it (files took sides up
to 2^31 - 1, whose keypoints the pose functions then refused); save_background refuses what loading
the model would refuse."""

from __future__ import annotations

import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from tests.conftest import one_line
from tests.test_qa23_posefiles import message
from tests.media import random_generator
from vidtrans.models.checkpoint import BACKGROUND_NAME, ModelCard, load_checkpoint, save_background, save_checkpoint
from vidtrans.pose import flip_keypoints, read_keypoints, write_keypoints_npz
from vidtrans.pose.keypoints import NUM_KEYPOINTS, check_frame_size
from vidtrans.pose.normalize import estimate_pose_stats, fit_to_frame

TINY_CARD = {"architecture": "resnet_6blocks", "ngf": 8, "norm": "instance", "native_size": (64, 64)}


def _tiny_model(folder, background: bytes | None = None, native_size=(64, 64)):
    extras = {BACKGROUND_NAME: lambda f: f.write(background)} if background is not None else None
    save_checkpoint(folder, random_generator("resnet_6blocks", 3, 3, 8, "instance"),
                    ModelCard(**{**TINY_CARD, "native_size": native_size}), extras=extras)
    return folder


def _encoded(extension: str) -> bytes:
    """A 64x64 picture in the format of `extension`."""
    ok, data = cv2.imencode(extension, np.full((64, 64, 3), 90, np.uint8))
    assert ok
    return data.tobytes()


def _turned_png(height: int, width: int) -> bytes:
    """A PNG stored as height x width pixels whose orientation tag (eXIf, Orientation 6) says to turn it
    a quarter clockwise: viewers, and OpenCV, show it width pixels high and height wide."""
    ok, stored = cv2.imencode(".png", np.full((height, width, 3), 90, np.uint8))
    assert ok
    png = stored.tobytes()
    tiff = b"MM\0*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    exif = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    return png[:33] + exif + png[33:]  # after the signature and IHDR


# --- 1: a background.png that is no PNG -------------------------------------------------------------------


@pytest.mark.parametrize("extension", [".jpg", ".bmp", ".ppm"])
def test_a_background_of_another_image_format_is_refused_as_not_a_png(tmp_path, cli, extension):
    # Of the model's native size, these loaded; of a huge declared size, they were decoded whole first.
    folder = _tiny_model(tmp_path / "models" / "tiny", _encoded(extension))
    expected = (f"{folder / BACKGROUND_NAME}: an image, but not a PNG; replace it with a PNG of the target's empty "
                "scene or delete it")
    assert message(load_checkpoint, folder) == expected
    assert one_line(cli("export", folder, "-o", tmp_path / "x.onnx"), 1) == f"vidtrans: error: {expected}"
    assert not (tmp_path / "x.onnx").exists()


def test_a_jpeg_background_declaring_a_huge_image_is_refused_before_it_is_decoded(tmp_path):
    # 700 bytes whose frame header (SOF0) declares 20000x20000: OpenCV allocated and decoded all of it
    # (2.3 GB, about 4 s) before the size check could refuse it.
    jpeg = bytearray(_encoded(".jpg"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = (20000).to_bytes(2, "big") * 2
    folder = _tiny_model(tmp_path / "tiny", bytes(jpeg))
    assert "an image, but not a PNG" in message(load_checkpoint, folder)


def test_a_png_background_still_loads_and_text_is_still_no_readable_image(tmp_path):
    assert load_checkpoint(_tiny_model(tmp_path / "png", _encoded(".png"))).background.shape == (64, 64, 3)
    text = message(load_checkpoint, _tiny_model(tmp_path / "text", b"not a picture"))
    assert text.endswith(f"{BACKGROUND_NAME}: not a readable image; replace it with a PNG of the target's empty "
                         "scene or delete it"), text


def test_a_png_background_is_taken_as_its_orientation_tag_shows_it(tmp_path):
    # Stored 64 wide and 48 high, shown (and decoded by OpenCV) 48 wide: not the 64x48 model's background.
    wrong = _tiny_model(tmp_path / "wrong", _turned_png(48, 64), native_size=(48, 64))
    assert message(load_checkpoint, wrong).endswith("48x64, but the model's native size is 64x48; resize the image "
                                                     "to that or delete it")
    # Stored 48 wide and 64 high, shown 64 wide and 48 high: it is (its header was refused for its stored size).
    upright = _tiny_model(tmp_path / "upright", _turned_png(64, 48), native_size=(48, 64))
    assert load_checkpoint(upright).background.shape == (48, 64, 3)


@pytest.mark.parametrize("image", [np.zeros((48, 64, 3), np.uint8), np.zeros((64, 64), np.uint8),
                                   np.zeros((64, 64, 3), np.float32), [[0] * 64] * 64])
def test_save_background_refuses_what_loading_the_model_would_refuse(tmp_path, image):
    # It wrote any picture OpenCV could encode (another size: the model no longer loaded) or raised cv2.error.
    folder = _tiny_model(tmp_path / "tiny")
    assert "native size (64, 64, 3)" in message(save_background, folder, image)
    assert not (folder / BACKGROUND_NAME).exists()
    assert load_checkpoint(folder).background is None


# --- 2: one limit for a frame's size ------------------------------------------------------------------------


def _wide_body(width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([rng.uniform(width - 40, width - 1, NUM_KEYPOINTS), rng.uniform(6, 42, NUM_KEYPOINTS),
                            np.full(NUM_KEYPOINTS, 0.9)]).astype(np.float32)


@pytest.mark.parametrize("width, refused", [(2 ** 20, False), (2 ** 20 + 1, True), (2 ** 31 - 1, True)])
def test_keypoint_files_take_the_frame_sizes_the_pose_functions_take(tmp_path, width, refused):
    # The files took sides up to 2^31 - 1, whose keypoints no detection, normalization or drawing then took.
    height, track = 48, np.stack([_wide_body(width)] * 6)
    path = tmp_path / "wide.npz"
    json_path = tmp_path / "wide.json"
    json_path.write_text(json.dumps({"frames": track.tolist(), "width": width, "height": height}))
    if refused:
        limit = f"from 1 to {2 ** 20}"
        assert limit in message(write_keypoints_npz, path, track, width, height)
        assert not path.exists()
        assert limit in message(read_keypoints, json_path)
        assert limit in message(check_frame_size, "frame_size", (height, width))
        assert limit in message(estimate_pose_stats, track, height, width)
        return
    write_keypoints_npz(path, track, width, height)
    for read in (read_keypoints(path), read_keypoints(json_path)):
        assert (read.width, read.height) == (width, height)
        estimate_pose_stats(read.keypoints, read.height, read.width)
        fit_to_frame((read.height, read.width), (64, 64))


@pytest.mark.parametrize("side", [0, -48, 48.0, True])
def test_a_frame_size_that_is_no_size_is_refused_by_the_files_as_by_the_pose_functions(tmp_path, side):
    track = np.zeros((2, NUM_KEYPOINTS, 3), np.float32)
    assert "whole numbers of pixels" in message(write_keypoints_npz, tmp_path / "k.npz", track, 64, side)
    assert "whole pixels" in message(check_frame_size, "frame_size", (side, 64), whole=True)
    assert not (tmp_path / "k.npz").exists()


@pytest.mark.parametrize("width", [1e39, 2.0 ** 21, 0.25, float("nan")])
def test_flip_keypoints_takes_a_width_only_as_the_other_frame_sizes(width):
    # 1e39 mirrored every point to infinity (a float32 overflow); 0.25 mirrored x = 10 to -10.75.
    pose = np.full((NUM_KEYPOINTS, 3), 10, np.float32)
    assert f"from 1 to {2 ** 20}" in message(flip_keypoints, pose, width)
    assert flip_keypoints(pose, 2 ** 20)[0, 0] == 2 ** 20 - 11
