"""HDR input (PQ or HLG in BT.2020, as phones record) is read as the SDR BT.709 frames models
were trained on and outputs are tagged as: reference white (203 nits) near SDR white, greys on
BT.709's curve, colours in BT.709's primaries; read as stored, it was a dim, washed-out picture."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.media import decode_all
from tests.test_run import FakeModel
from vidtrans.pipeline import translate_video
from vidtrans.video.hdr import HLG, PQ
from vidtrans.video.reader import VideoReader

# 16-bit codes (of 10-bit video) of light each curve encodes: (transfer, code, SDR 8-bit expected).
# HLG: 75 % is reference white, 50 % a mid grey; PQ: 0.5807 is 203 nits, 0.5081 is 100 nits.
GREYS = [(HLG, 0.75, 244), (HLG, 0.50, 125), (PQ, 0.5807, 244), (PQ, 0.5081, 179)]


def hdr_clip(path, transfer: int, patches: list[tuple[float, float, float]], primaries: int = 9):
    """Two frames of 16x16 patches of RGB signal values (0-1) on `transfer`, 10-bit H.264, in the
    `primaries` (9: BT.2020, 1: BT.709)."""
    image = np.concatenate([np.full((16, 16, 3), np.array(p) * 65535, np.uint16) for p in patches], axis=1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "4"})
        stream.width, stream.height, stream.pix_fmt = image.shape[1], 16, "yuv420p10le"
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_trc = 9, primaries, transfer
        frame = av.VideoFrame.from_ndarray(image, format="rgb48le").reformat(format="yuv420p10le",
                                                                             dst_colorspace="bt2020")
        frame.colorspace, frame.color_primaries, frame.color_trc = 9, primaries, transfer
        for _ in range(2):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("transfer", [HLG, PQ], ids=["hlg", "pq"])
def test_hdr_greys_land_on_sdr_greys(tmp_path, transfer):
    greys = [(code, expected) for t, code, expected in GREYS if t == transfer]
    path = hdr_clip(tmp_path / "hdr.mp4", transfer, [(c, c, c) for c, _ in greys])
    with VideoReader(path) as reader:
        image = next(iter(reader)).image
    for i, (_, expected) in enumerate(greys):
        patch = image[4:12, 16 * i + 4:16 * i + 12].reshape(-1, 3)
        assert np.abs(patch.astype(int) - expected).max() <= 4, (i, patch.mean(axis=0))


def test_hdr_colours_move_into_bt709(tmp_path):
    # A BT.2020 red a little below reference white's signal, and a green: still red, still green.
    path = hdr_clip(tmp_path / "hdr.mp4", HLG, [(0.7, 0.3, 0.3), (0.3, 0.7, 0.3)])
    with VideoReader(path) as reader:
        image = next(iter(reader)).image
    red, green = image[8, 8].astype(int), image[8, 24].astype(int)
    assert red[0] > 150 and red[0] - max(red[1:]) > 100
    assert green[1] > 150 and green[1] - max(green[0], green[2]) > 60
    # What run writes (tagged BT.709) is the picture as read.
    out = tmp_path / "out.mp4"
    translate_video(path, out, FakeModel(lambda frames: frames))
    assert np.abs(decode_all(out)[0][0].astype(int) - image).mean() < 3


def test_hlg_in_bt709_primaries_keeps_its_colours(tmp_path):
    # Some cameras record HLG in BT.709's primaries: no conversion of primaries, so a grey stays grey
    # and a BT.709 red is as red as the same signal tagged BT.709 SDR would be read.
    path = tmp_path / "hlg709.mp4"
    hdr_clip(path, HLG, [(0.5, 0.5, 0.5), (0.6, 0.2, 0.2)], primaries=1)
    with VideoReader(path) as reader:
        image = next(iter(reader)).image
    grey, red = image[8, 8].astype(int), image[8, 24].astype(int)
    assert abs(grey - 125).max() <= 4
    # HLG's curve and OOTF by hand (BT.709 luma): display light (0.327, 0.034, 0.034), on BT.709's curve.
    assert abs(red - (144, 36, 36)).max() <= 6, red
