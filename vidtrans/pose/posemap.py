"""Recognise videos that already are pose maps, so they can be fed to a model without detection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.pose.keypoints import COLORS
from vidtrans.pose.render import FACE_POINT_COLOR, HAND_EDGE_COLORS

# A pixel darker than this (max channel) counts as background; video compression lifts black a bit.
_DARK = 40
# Pixels between dark and this are anti-aliased or compressed edges, whose colour says little.
_BRIGHT = 80
_PALETTE = np.asarray(COLORS + HAND_EDGE_COLORS, dtype=np.float32) / 255.0
_WHITE = np.asarray(FACE_POINT_COLOR, dtype=np.float32) / 255.0
_SAMPLE_FRAMES = 8
_SAMPLE_PIXELS = 20000


def is_blank(frame: np.ndarray) -> bool:
    """Whether an RGB frame shows nothing: every pixel dark, as a pose map of nobody is (and a camera's
    frame in the dark, or a fade from black)."""
    return int(np.asarray(frame).max(initial=0)) < _DARK


def looks_like_pose_map(frames: Sequence[np.ndarray]) -> bool:
    """True if the frames look like OpenPose-style pose maps: mostly black, the rest palette colours.

    Pose maps draw limbs in 18 fully saturated hues blended at 0.6 alpha (and whole-body ones
    hand bones in 20 such hues), so a coloured pixel's colour divided by its brightest channel
    lands near one of the palette colours; natural images and textures are mostly neither black
    nor that saturated. Whole-body maps also have white face dots; white alone is no evidence
    (windows, lamps, brightly lit skin), so it only counts beside at least as many palette pixels.
    A few frames and pixels are sampled, so this is cheap on long videos.
    """
    if not isinstance(frames, (Sequence, np.ndarray)):
        raise VidtransError(f"looks_like_pose_map needs a sequence of frames, got {type(frames).__name__}")
    if len(frames) == 0:
        return False
    picks = np.linspace(0, len(frames) - 1, min(len(frames), _SAMPLE_FRAMES)).round().astype(int)
    rng = np.random.default_rng(0)
    samples = []
    for i in picks:
        frame = np.asarray(frames[i])
        # Another layout would be read as RGB all the same: RGBA or grey pixels three values at a time.
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise VidtransError(f"looks_like_pose_map needs RGB uint8 frames (H, W, 3), got {frame.dtype} "
                                f"{frame.shape}")
        pixels = frame.reshape(-1, 3)
        if len(pixels) > _SAMPLE_PIXELS:
            pixels = pixels[rng.choice(len(pixels), _SAMPLE_PIXELS, replace=False)]
        samples.append(pixels)
    pixels = np.concatenate(samples).astype(np.float32)
    if not len(pixels):  # frames of no pixels show nothing
        return False
    brightness = pixels.max(axis=1)
    dark_fraction = (brightness < _DARK).mean()
    coloured = pixels[brightness >= _BRIGHT]
    # Nearly all black (or all black) says nothing about the palette: not enough evidence.
    if dark_fraction < 0.6 or len(coloured) < 0.002 * len(pixels):
        return False
    chroma = coloured / coloured.max(axis=1, keepdims=True)
    in_palette = np.linalg.norm(chroma[:, None, :] - _PALETTE[None], axis=2).min(axis=1) < 0.3
    # Tighter than the palette's tolerance: skin and warm light are near white but not this near.
    white = np.linalg.norm(chroma - _WHITE, axis=1) < 0.15
    return bool((in_palette | white).mean() >= 0.8 and white.sum() <= in_palette.sum())
