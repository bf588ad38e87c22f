"""HDR video (PQ or HLG, BT.2020 colours: phones record HLG by default) as the SDR BT.709 frames
every model was trained on and every output is tagged as.

Read as it is stored, an HDR frame is a washed-out, dim picture to a model (and in the input
panel of --side-by-side): its values encode light up to 1000 nits and more on another curve, in
wider primaries. Here they are turned into light, HDR reference white (203 nits, ITU-R BT.2408)
becomes SDR white, the colours move into BT.709's primaries, each channel's highlights above a
knee are compressed smoothly into what SDR holds (the brightest colours pale, as in ffmpeg's
tonemap filter), and the result is encoded as BT.709 video is.
"""

from __future__ import annotations

import cv2
import numpy as np

# FFmpeg's transfer characteristics (AVColorTransferCharacteristic) of HDR video.
PQ = 16  # SMPTE ST 2084
HLG = 18  # ARIB STD-B67
HDR_TRANSFERS = (PQ, HLG)

REFERENCE_WHITE_NITS = 203.0  # ITU-R BT.2408: HDR's diffuse white, shown as SDR's 100 %
HLG_PEAK_NITS = 1000.0  # the display HLG's system gamma 1.2 is defined for (ITU-R BT.2100)
# SDR light (1.0: white) kept as it is up to this; above it, compressed towards 1.0 without a kink.
KNEE = 0.75

# Linear BT.2020 RGB to linear BT.709 RGB (ITU-R BT.2087).
_BT2020_TO_BT709 = np.array([[1.6605, -0.5876, -0.0728],
                             [-0.1246, 1.1329, -0.0083],
                             [-0.0182, -0.1006, 1.1187]], np.float32)
_LUMA = {True: (0.2627, 0.6780, 0.0593), False: (0.2126, 0.7152, 0.0722)}  # BT.2020's, BT.709's


def _pq_to_nits(signal: np.ndarray) -> np.ndarray:
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    p = np.power(signal, 1 / m2)
    return 10000.0 * np.power(np.maximum(p - c1, 0) / (c2 - c3 * p), 1 / m1)


def _hlg_to_scene(signal: np.ndarray) -> np.ndarray:
    """HLG's inverse OETF: scene light from 0 to 1."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    return np.where(signal <= 0.5, signal * signal / 3, (np.exp((signal - c) / a) + b) / 12)


# Linear light, as a fraction of SDR white, for every 16-bit code: a lookup instead of powers and
# exponentials per pixel (4K frames decode at their rate). HLG's is scene light, before its OOTF.
_CODES = np.arange(65536, dtype=np.float64) / 65535
_LINEAR = {PQ: (_pq_to_nits(_CODES) / REFERENCE_WHITE_NITS).astype(np.float32),
           HLG: _hlg_to_scene(_CODES).astype(np.float32)}


# The brightest light either curve encodes, as a fraction of SDR white (PQ's 10000 nits).
_BRIGHTEST = 10000.0 / REFERENCE_WHITE_NITS


def _sdr_8bit() -> np.ndarray:
    """8-bit BT.709 code for linear light (BT.709 primaries, 1.0: SDR white) looked up at index
    sqrt(light / _BRIGHTEST) * 65535, fine where the eye is (near black): each channel's highlights
    above KNEE compressed towards 1 without a kink, then BT.709's OETF."""
    light = np.square(_CODES) * _BRIGHTEST
    tone = np.where(light > KNEE, KNEE + (1 - KNEE) * -np.expm1((KNEE - light) / (1 - KNEE)), light)
    encoded = np.where(tone < 0.018, 4.5 * tone, 1.099 * np.power(tone, 0.45) - 0.099)
    return np.clip(encoded * 255 + 0.5, 0, 255).astype(np.uint8)


_SDR_8BIT = _sdr_8bit()


def to_sdr(rgb48: np.ndarray, transfer: int, bt2020: bool = True) -> np.ndarray:
    """uint16 RGB (H, W, 3) on the `transfer` curve (PQ or HLG), in BT.2020's primaries (or, not
    `bt2020`, BT.709's, as some cameras record HLG), as uint8 SDR RGB in BT.709 primaries and transfer."""
    light = _LINEAR[transfer][rgb48]
    if transfer == HLG:
        # The OOTF: scene light to display light on a 1000-nit display, by the scene's luminance.
        luma = cv2.transform(light, np.array([_LUMA[bt2020]], np.float32))
        # numpy's maximum, not cv2.max: OpenCV takes a 1x1 array beside a number for a scalar (4 values).
        gain = cv2.pow(np.maximum(luma, np.float32(1e-6)), 0.2) * np.float32(HLG_PEAK_NITS / REFERENCE_WHITE_NITS)
        light *= gain[..., None]
    light = cv2.transform(light, (_BT2020_TO_BT709 if bt2020 else np.eye(3, dtype=np.float32)) / _BRIGHTEST)
    np.clip(light, 0, 1, out=light)
    index = (cv2.sqrt(light) * 65535 + 0.5).astype(np.uint16)
    return _SDR_8BIT[index]
