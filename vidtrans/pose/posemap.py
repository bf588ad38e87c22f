"""Recognise videos that already are pose maps, so they can be fed to a model without detection."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.pose.keypoints import COLORS, NUM_FACE
from vidtrans.pose.render import FACE_POINT_COLOR, HAND_EDGE_COLORS, PoseStyle, face_dot_radius, limb_width

# A pixel darker than this (max channel) counts as background; video compression lifts black a bit.
_DARK = 40
# Pixels between dark and this are anti-aliased or compressed edges, whose colour says little.
_BRIGHT = 80
_PALETTE = np.asarray(COLORS + HAND_EDGE_COLORS, dtype=np.float32) / 255.0
_WHITE = np.asarray(FACE_POINT_COLOR, dtype=np.float32) / 255.0
_SAMPLE_FRAMES = 8
_SAMPLE_PIXELS = 20000
# Face dots' white is capped at this many faces' dots: one person, and room for a second.
_FACES = 2
# The least body a face comes with is the head's limbs and the shoulders (arms below the frame, at
# a desk); on vidtrans's own renders of such a shot (x264-encoded, 360 to 1080 px tall) the face
# dots covered up to 1.1 white pixels per palette pixel, the smaller the head the more. About twice
# that, 2, is allowed at 512 px.
_WHITE_PER_PALETTE_PIXEL = 2.0


def is_blank(frame: np.ndarray) -> bool:
    """Whether an RGB frame shows nothing: every pixel dark, as a pose map of nobody is (and a camera's
    frame in the dark, or a fade from black)."""
    return int(np.asarray(frame).max(initial=0)) < _DARK


def looks_like_pose_map(frames: Sequence[np.ndarray]) -> bool:
    """True if the frames look like OpenPose-style pose maps: mostly black, the rest palette colours.

    Pose maps draw limbs in 18 fully saturated hues blended at 0.6 alpha (and whole-body ones
    hand bones in 20 such hues), so a coloured pixel's colour divided by its brightest channel
    lands near one of the palette colours; natural images and textures are mostly neither black
    nor that saturated. Whole-body maps also have white face dots. White alone is no evidence
    (windows, lamps, brightly lit skin), so it counts only up to what face dots can cover at the
    frame's size (`_face_dots_area`), and only beside palette pixels, as many as a face comes with
    (`_most_white_per_palette_pixel`): not one each, which holds for a full figure but not for a
    head-and-shoulders shot on a small frame, where the dots stop shrinking and the limbs do not.
    A few frames and pixels are sampled, so this is cheap on long videos.
    """
    if not isinstance(frames, (Sequence, np.ndarray)):
        raise VidtransError(f"looks_like_pose_map needs a sequence of frames, got {type(frames).__name__}")
    if len(frames) == 0:
        return False
    picks = np.linspace(0, len(frames) - 1, min(len(frames), _SAMPLE_FRAMES)).round().astype(int)
    rng = np.random.default_rng(0)
    sampled = dark = coloured = in_palette = white = white_allowed = 0.0
    for i in picks:
        frame = np.asarray(frames[i])
        # Another layout would be read as RGB all the same: RGBA or grey pixels three values at a time.
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise VidtransError(f"looks_like_pose_map needs RGB uint8 frames (H, W, 3), got {frame.dtype} "
                                f"{frame.shape}")
        pixels = frame.reshape(-1, 3)
        if not len(pixels):  # a frame of no pixels shows nothing
            continue
        if len(pixels) > _SAMPLE_PIXELS:
            pixels = pixels[rng.choice(len(pixels), _SAMPLE_PIXELS, replace=False)]
        pixels = pixels.astype(np.float32)
        brightness = pixels.max(axis=1)
        chroma = pixels[brightness >= _BRIGHT]
        chroma /= chroma.max(axis=1, keepdims=True)
        sampled += len(pixels)
        dark += int((brightness < _DARK).sum())
        coloured += len(chroma)
        palette = int((np.linalg.norm(chroma[:, None, :] - _PALETTE[None], axis=2).min(axis=1) < 0.3).sum())
        in_palette += palette
        # Tighter than the palette's tolerance: skin and warm light are near white but not this near.
        whites = int((np.linalg.norm(chroma - _WHITE, axis=1) < 0.15).sum())
        white += min(whites, _face_dots_area(frame.shape[0]) * len(pixels) / (frame.shape[0] * frame.shape[1]))
        white_allowed += _most_white_per_palette_pixel(frame.shape[0]) * palette
    # Nearly all black (or all black) says nothing about the palette: not enough evidence.
    if not sampled or dark < 0.6 * sampled or coloured < 0.002 * sampled:
        return False
    return bool(in_palette + white >= 0.8 * coloured and white <= white_allowed)


def _face_dots_area(height: int) -> float:
    """The most pixels face dots cover on a frame `height` pixels tall: _FACES faces of NUM_FACE
    dots, each as drawn plus a pixel of anti-aliasing and compression halo around it."""
    return _FACES * NUM_FACE * math.pi * (face_dot_radius(height) + 1) ** 2


def _most_white_per_palette_pixel(height: int) -> float:
    """How many white pixels face dots may cover per palette pixel (limbs, hands) on a frame
    `height` pixels tall: _WHITE_PER_PALETTE_PIXEL at pose maps' reference height of 512 px, and
    more on smaller frames. Dots cover (radius + 1)^2 (a pixel of anti-aliasing and compression
    around them), limbs their width + 1 by their length, which goes with the frame's height; below
    171 px the dots stop shrinking and the limbs do not."""
    def dots_per_limb_pixel(frame_height: int) -> float:
        return (face_dot_radius(frame_height) + 1) ** 2 / ((limb_width(frame_height) + 1) * frame_height)

    return _WHITE_PER_PALETTE_PIXEL * dots_per_limb_pixel(height) / dots_per_limb_pixel(PoseStyle().reference_height)
