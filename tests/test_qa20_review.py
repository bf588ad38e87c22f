"""What a review of QA round 20's own fixes found: each failed before its fix."""

from __future__ import annotations

import time

import cv2
import numpy as np


def test_closing_a_camera_during_a_read_that_ends_empty_is_no_failure(monkeypatch):
    # The device's end became a failure ("stopped delivering frames"): a user's quit exited 1.
    from vidtrans.video.camera import Camera

    from tests.test_live import FakeDevice

    class Device(FakeDevice):
        def __init__(self, *args):
            self.reads = 0

        def read(self):
            self.reads += 1
            if self.reads <= 3:
                return True, np.zeros((48, 64, 3), np.uint8)
            time.sleep(0.3)  # a read in progress when the session stops, that ends without a frame
            return False, None

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Device)
    camera = Camera(0).start()
    time.sleep(0.1)  # its three frames delivered, the fourth read under way: the user quits
    camera.close()
    time.sleep(0.5)
    assert camera.captured == 3 and camera.error is None


def test_a_damaged_heif_picture_is_not_told_to_be_a_cut_mp4(tmp_path):
    # AVIF/HEIC files are ftyp + meta + mdat, never a moov: not "recover it with untrunc".
    from vidtrans.video.reader import _mp4_without_index

    def box(kind: bytes, payload: bytes) -> bytes:
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload

    heif = tmp_path / "photo.avif"
    heif.write_bytes(box(b"ftyp", b"avif\0\0\0\0mif1") + box(b"meta", b"\0" * 20) + box(b"mdat", b"\1" * 50))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(box(b"ftyp", b"isom\0\0\0\0isom") + box(b"mdat", b"\1" * 50))
    assert not _mp4_without_index(str(heif))
    assert _mp4_without_index(str(cut))


def test_an_opaque_lossy_webp_is_decoded_once_per_sample(tmp_path, monkeypatch):
    from vidtrans.train import data

    path = tmp_path / "a.webp"
    assert cv2.imwrite(str(path), np.full((16, 16, 3), 90, np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 90])
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(a[1]) or real(*a))
    image = data._read_image(path)
    assert image.shape == (16, 16, 3) and len(calls) == 1


def test_live_keypoints_are_not_reset_by_one_stray_point():
    # One wrist misdetected far away for a frame passed for a jump of the whole body: every joint
    # was reset to its raw detection (no smoothing) for two frames.
    from vidtrans.pose.smoothing import OneEuroFilter

    rng = np.random.default_rng(0)
    base = rng.uniform(100, 200, (18, 2))
    live = OneEuroFilter()
    largest = 0.0
    for t in range(10):
        kp = np.zeros((18, 3), np.float32)
        kp[:, :2] = base + rng.normal(0, 1, (18, 2))
        kp[:, 2] = 0.9
        if t == 5:
            kp[4, :2] += 300
        out = live(kp, t / 30)
        if t >= 5:  # the other joints stay smoothed: nearer their steady place than the raw noise
            others = [0, 1, 2, 3, 5, 6, 7]
            largest = max(largest, float(np.abs(out[others, :2] - base[others]).max()))
    assert largest < 1.5
