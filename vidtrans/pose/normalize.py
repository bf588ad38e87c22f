"""Everybody Dance Now's global pose normalisation: fit a source dancer's poses to the target body.

A pose2person model only knows the target person's body size and where they stood in the frame.
Following EDN (Chan et al. 2019, section 4), each source pose is scaled and moved so that source
bodies appear as tall as the target body at the same depth, with their feet on the target's
floor. Depth is read from the ankle height in the image: the highest ankle line seen (`far`,
smallest y) and the lowest (`near`, largest y). For a pose whose ankles sit a fraction t of the
way from the source's far line to its near line:

    scale    = lerp(target.height_far / source.height_far, target.height_near / source.height_near, t)
    ankle_y' = lerp(target.far, target.near, t)

and the pose is scaled about its ankle point, which is moved to ankle_y'. Horizontally the ankle
point keeps its offset from where the dancer usually stands (`centre_x`: the median ankle point's
offset from the frame centre), scaled as the body is, and that place goes to where the target usually stood: a target trained on a
crop around them (`vidtrans train target.mp4`) then sees their own video as they were trained, and a
dancer standing off-centre is brought to the target's place. Statistics of version 1 (cards made
before `centre_x`) keep the offset from the frame centre instead (in units of frame height).

Heights are measured near each extreme, as EDN does, on the frames whose ankle line lies within a
band around `far` (or `near`). Since statistics version 3 a body's size there is the length of its
skeleton: head (nose to neck) + torso (neck to the middle of the hips) + the longer leg (hip, knee,
ankle; hip to ankle where the knees never show, the hip that shows in a side view, and the head in
human proportion to the torso when the nose never shows), each part the 90th percentile of its
lengths in the band. Bones keep their length when the
dancer crouches, bends or spreads their legs, which the height in the image does not: on held-out
dances of the shipped target, clips measured this way normalize closer to themselves (the nose
moved 0.57 px at 256 px against 0.76, benchmarks/README.md) and the face scored better end to end.
Versions 1 and 2 measure the height in the image (nose, or neck when the nose is missing, down to
the lower ankle; its 90th percentile), and a source is always measured as its target was
(`estimate_pose_stats(..., like=target)`). The 2nd and 98th percentiles of the ankle lines stand
for the min and max, so that a few detector glitches cannot set the scale. All stored values are divided by the frame height, so source and
target videos may have different sizes; positions count from the frame's top edge, pixel i spanning
[i, i + 1) (as `fit_to_frame` maps pixels), so a track and its copy scaled to another frame size have
the same statistics, and a source whose statistics equal the target's is mapped as `fit_to_frame` maps it.

A clip framed as the target's video was (`framed_alike`: its ankle lines within the target's
range, its dancer at the target's size there within _ALIKE_SIZE) keeps its poses' size and height in
the frame: the measure of a body differs by up to a couple of per cent from one dance to another of
the same body, and scaling the target's own new footage by that error cost the face more than any
dancer of such a near size could gain (face SSIM 0.71 against 0.79 left alone, held-out dances).
A target trained on a square of its video (`TrainingSquare`, recorded by `vidtrans train VIDEO`) is
compared as that video showed it, and a clip framed alike, its dancer also standing near where the
target stood sideways (_ALIKE_PLACE), is cropped as training cropped: its dancer's usual place is not
moved onto the target's, as the place differs from dance to dance by a tenth of a frame height.

A clip that never shows a whole body (a head-and-shoulders shot, a webcam at a desk) cannot be
placed by its ankles. Since statistics version 4 the target's upper body is measured too: how wide
its shoulders appear (their 90th percentile, as for bones), where its neck usually is, and how long
its head appears. Such a clip is then fitted by its upper body (`UpperBodyNormalizer`): scaled so its
shoulders are as wide as the target's (or its head as long, for a clip seen from the side
throughout: _TURNED), its usual neck position moved onto the target's, so the target's upper body moves as the
dancer's does instead of a head filling the frame of a model trained on whole bodies.
`normalizer_for` picks between the two. A target whose own video never showed its whole body (trained
on a head-and-shoulders shot) has version 4 statistics of its upper body alone, and every clip is
fitted to it by its upper body.

Without normalization (turned off, no statistics for either body, or neither a whole body nor an
upper body shows) poses are only mapped into the model's frame by `fit_to_frame`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Callable, NamedTuple

import numpy as np

from vidtrans.errors import UsageError, VidtransError, check_version, count
from vidtrans.options import is_finite_number, is_int, shown, spell
from vidtrans.pose.keypoints import (KEYPOINT_INDEX, MAX_FRAME_SIDE, check_frame_size, check_keypoints,
                                     check_min_confidence, is_frame_side, missing_where_not_finite)


def check_normalize_off(normalize: bool, model) -> None:
    """Refuse `normalize` off for a loaded `model` that gets no pose maps: a setting that would do
    nothing (`run`, `batch` and `live` alike)."""
    if not normalize and model.input_kind != "pose":
        raise UsageError(f"{spell('normalize=False')} turns off fitting the dancer to a pose model's target, and "
                         f"{model.name} translates {model.input_kind} frames; drop {spell('normalize=False')}")


_NOSE, _NECK = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["neck"]
_ANKLES = [KEYPOINT_INDEX["r_ankle"], KEYPOINT_INDEX["l_ankle"]]
_HIPS = [KEYPOINT_INDEX["r_hip"], KEYPOINT_INDEX["l_hip"]]
_LEGS = [[KEYPOINT_INDEX[f"{side}_{joint}"] for joint in ("hip", "knee", "ankle")] for side in ("r", "l")]
_SHOULDERS = [KEYPOINT_INDEX["r_shoulder"], KEYPOINT_INDEX["l_shoulder"]]
# Statistics made now; versions 3 and 4 measure bodies by their skeleton's length, 1 and 2 by their
# height; version 4 adds the upper body (shoulder width, neck position, head length).
STATS_VERSION = 4
_VERSIONS = (1, 2, 3, 4)
_UPPER_FIELDS = ("shoulder_width", "neck_x", "neck_y")
# The upper body's head length: a version 4 field of its own, None where the nose never showed.
_HEAD = "head_length"
# Shoulders are seen narrower than their width when the body turns; the 90th percentile takes a
# clip's widest view, but a clip seen from the side throughout has none. Sized by its shoulders, a
# body that comes out this much larger than its head says is taken as turned and sized by the head
# (people's shoulders-to-head proportions differ by less: pose2person's cartoon 1.67, a man 2.0).
_TURNED = 1.25
_WHOLE_BODY_FIELDS = ("far", "near", "height_far", "height_near", "centre_x")
# What statistics may hold, in frame heights: what the most extreme frame vidtrans takes could show
# (a pixel of the tallest, the whole width of the widest and lowest), so that no mapping overflows
# or divides by next to nothing.
_MAX_EXTENT, _MIN_SIZE = float(MAX_FRAME_SIDE), 1 / MAX_FRAME_SIDE
_POSITION = f"must be a finite number from -{MAX_FRAME_SIDE} to {MAX_FRAME_SIDE} (frame heights)"
_SIZE = f"must be a finite number above 0, from 1/{MAX_FRAME_SIDE} to {MAX_FRAME_SIDE} (frame heights)"


def _is_position(value) -> bool:
    """Whether `value` is a position statistics may hold (_POSITION)."""
    return is_finite_number(value) and abs(value) <= _MAX_EXTENT


def _is_size(value) -> bool:
    """Whether `value` is a size statistics may hold (_SIZE)."""
    return is_finite_number(value) and _MIN_SIZE <= value <= _MAX_EXTENT


# A body's size in a band (each part's length, or the height): a high percentile, as a bone looks
# longest when it lies across the picture and a body tallest standing straight, but not the max,
# which a detector glitch sets.
_SIZE_PERCENTILE = 90
_MIN_FRAMES = 5
# Below this ankle-line range (fraction of frame height) the person effectively stays at one
# depth; dividing by the range would then turn jitter into large jumps.
_MIN_DEPTH_RANGE = 0.05
# Sizes the measure cannot tell apart: the same body dancing other dances measures up to 1.7 % larger
# or smaller than its card says (24 held-out ten-second dances of the synthetic target, mean 0.5 %),
# as poses and turns differ. A clip showing its dancer at the target's size within this, where the
# target stood, is framed as the target's video was (the target's own footage, or a dancer filmed
# alike) and is left as it is: scaling it by the measure's error moved the head by a pixel or two,
# which is what a viewer sees of the face (benchmarks/README.md, "Framed alike").
_ALIKE_SIZE = 0.02
# How far sideways from where the target usually stood (in sides of its training square) a clip's
# dancer may usually stand to be framed as the target's video was: one body's usual place differs by
# up to 0.11 frame heights from dance to dance (24 ten-second dances of the synthetic target, spread
# 0.045), and a dancer this near stays in the square as training cropped it.
_ALIKE_PLACE = 0.15
# Ankle lines this close (frame heights) are one: the training square's float32 keypoints put the
# target's own video's lines a few 1e-8 off once its statistics are taken back to the video's frame.
_ROUNDING = 1e-6
# What a card's statistics get for a value normalisation cannot use.
_CARD_FIX = "fix the model card or re-export the checkpoint"

@dataclass(frozen=True)
class PoseStats:
    """Where and how tall a person appears in a video; stored in the model card of the target.

    far/near: ankle lines (y / frame height) farthest from and nearest to the camera.
    height_far/height_near: body size (/ frame height) at those ankle lines: the skeleton's length
    in version 3, the height in the image in versions 1 and 2.
    centre_x: the median ankle point's offset from the frame centre (/ frame height); None in
    version 1 statistics, which lack it.
    shoulder_width, neck_x, neck_y: the upper body (`UpperBody`), all three or none (a body whose
    shoulders never show); head_length with them, or None (a nose never shown); versions 1-3 lack them.
    In version 4, far, near, height_far, height_near and centre_x may all be None: the statistics
    of a body whose whole body never showed, known by its upper body alone.
    """

    frame_width: int
    frame_height: int
    far: float | None
    near: float | None
    height_far: float | None
    height_near: float | None
    centre_x: float | None = None
    version: int = STATS_VERSION
    shoulder_width: float | None = None
    neck_x: float | None = None
    neck_y: float | None = None
    head_length: float | None = None

    def __post_init__(self) -> None:
        """VidtransError naming the first value normalisation cannot use: the heights are divided
        by, the positions interpolated between (NaN or text would fail only once poses are mapped)."""
        upper_only = self.version == 4 and all(getattr(self, name) is None for name in _WHOLE_BODY_FIELDS)
        problems = {
            "version": None if is_int(self.version) and self.version in _VERSIONS else "must be 1, 2, 3 or 4",
            **{name: None if is_int(getattr(self, name)) and is_frame_side(getattr(self, name))
               else f"must be a whole number of pixels, from 1 to {MAX_FRAME_SIDE}"
               for name in ("frame_width", "frame_height")},
            **{name: None if upper_only or _is_position(getattr(self, name)) else _POSITION
               for name in ("far", "near")},
            **{name: None if upper_only or _is_size(getattr(self, name)) else _SIZE
               for name in ("height_far", "height_near")},
            **{name: None if getattr(self, name) is None or _is_position(getattr(self, name))
               else f"{_POSITION}, or None" for name in ("centre_x", "neck_x", "neck_y")},
            **{name: None if getattr(self, name) is None or _is_size(getattr(self, name)) else f"{_SIZE}, or None"
               for name in ("shoulder_width", _HEAD)},
        }
        if not problems["version"] and not upper_only and all(getattr(self, name) is None
                                                              for name in _WHOLE_BODY_FIELDS[:4]):
            # Not "far must be a number": these are meant as an upper body's, which lacks the ankle lines.
            raise VidtransError("pose stats without a whole body (far, near, height_far and height_near None) are "
                                "version 4's of an upper body alone, whose centre_x is None too; got version "
                                f"{self.version}, centre_x={shown(self.centre_x)}")
        for name, problem in problems.items():
            if problem:
                raise VidtransError(f"{name} {problem}, got {shown(getattr(self, name))}")
        given = [getattr(self, name) is not None for name in _UPPER_FIELDS]
        if (any(given) or self.head_length is not None) and (not all(given) or self.version < 4):
            raise VidtransError(f"{', '.join(_UPPER_FIELDS)} go together (and {_HEAD} with them), and only in "
                                "version 4 statistics; got "
                                + ", ".join(f"{name}={shown(getattr(self, name))}" for name in (*_UPPER_FIELDS, _HEAD))
                                + f" in version {self.version}")
        if upper_only:
            if self.upper_body is None:
                raise VidtransError("pose stats without a whole body (far, near, height_far, height_near and "
                                    "centre_x None) need the upper body: shoulder_width, neck_x and neck_y")
            return
        if self.near < self.far:  # `far` is the ankle line farthest from the camera: highest in the frame
            raise VidtransError(f"near ({self.near}) must be at least far ({self.far}): ankle lines count from the "
                                "top of the frame")

    @property
    def whole_body(self) -> bool:
        """Whether these statistics measure a whole body (all but version 4's upper-body-only ones)."""
        return self.far is not None

    @property
    def upper_body(self) -> "UpperBody | None":
        """The target's upper body, for clips that never show a whole body; None before version 4."""
        return None if self.shoulder_width is None else UpperBody(self.shoulder_width, self.neck_x, self.neck_y,
                                                                  self.head_length)

    def to_dict(self) -> dict:
        return {name: value for name, value in asdict(self).items() if name not in _absent(self.version)}

    @classmethod
    def from_dict(cls, data: dict) -> "PoseStats":
        check_version("pose stats", data.get("version"), _VERSIONS, _CARD_FIX)
        names = {f.name for f in fields(cls)} - _absent(data["version"])
        if set(data) != names:
            raise VidtransError(f"pose stats must have exactly the fields {sorted(names)}, got {sorted(data)}; "
                                f"{_CARD_FIX}")
        try:
            return cls(**data)
        except VidtransError as e:
            raise VidtransError(f"{e}; {_CARD_FIX}") from None


def _absent(version: int) -> set[str]:
    """The fields statistics of `version` do not have: centre_x came with version 2, the upper body with 4."""
    return ({"centre_x"} if version == 1 else set()) | ({*_UPPER_FIELDS, _HEAD} if version < 4 else set())


class UpperBody(NamedTuple):
    """How wide the shoulders appear (their 90th percentile, _SIZE_PERCENTILE), where the neck
    usually is (its median: x as the offset from the frame centre) and how long the head appears,
    nose to neck (its 90th percentile; None when fewer than _MIN_FRAMES of those frames show the
    nose), all in frame heights."""

    shoulder_width: float
    neck_x: float
    neck_y: float
    head_length: float | None = None


def measure_upper_body(track: np.ndarray, frame_height: int, frame_width: int,
                       min_confidence: float = 0.0) -> UpperBody:
    """The upper body of a keypoint track (T, K, 3) in pixels of a frame_width x frame_height
    video, measured on its frames that show the neck and both shoulders apart; VidtransError when fewer
    than _MIN_FRAMES do."""
    check_min_confidence(min_confidence)
    check_frame_size("frame size", (frame_height, frame_width))  # it divides every position
    track = missing_where_not_finite(check_keypoints(track, dtype=np.float64))
    shown = track[..., 2] > min_confidence
    widths = np.linalg.norm(track[:, _SHOULDERS[0], :2] - track[:, _SHOULDERS[1], :2], axis=-1) / frame_height
    # Shoulders on one point (a detector's glitch, or a file's) give no size to scale by: a width of 0
    # divided the fit, and one statistics cannot hold refused a whole body's statistics too.
    usable = shown[:, _NECK] & shown[:, _SHOULDERS].all(axis=1) & (widths >= _MIN_SIZE)
    if usable.sum() < _MIN_FRAMES:
        raise VidtransError(f"{_how_many(int(usable.sum()))} the neck and both shoulders apart, and fitting an upper "
                            f"body needs at least {_MIN_FRAMES}")
    neck = (np.median(track[usable, _NECK, :2], axis=0) + 0.5) / frame_height
    heads = np.linalg.norm(track[:, _NOSE, :2] - track[:, _NECK, :2], axis=-1) / frame_height
    with_head = usable & shown[:, _NOSE] & (heads >= _MIN_SIZE)
    head = float(np.percentile(heads[with_head], _SIZE_PERCENTILE)) if with_head.sum() >= _MIN_FRAMES else None
    return UpperBody(float(np.percentile(widths[usable], _SIZE_PERCENTILE)),
                     float(neck[0] - frame_width / frame_height / 2), float(neck[1]), head)


def _how_many(frames: int) -> str:
    return "no frame shows" if frames == 0 else f"only {count(frames, 'frame')} {'shows' if frames == 1 else 'show'}"


def _ankle_points(track: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: lower ankle's y and mean ankle x (NaN where no ankle is present)."""
    ankles = track[:, _ANKLES]
    present = ankles[..., 2] > min_confidence
    y = np.where(present, ankles[..., 1], -np.inf).max(axis=1)
    count = present.sum(axis=1)
    x = np.where(present, ankles[..., 0], 0.0).sum(axis=1) / np.maximum(count, 1)
    none = count == 0
    y[none] = np.nan
    x[none] = np.nan
    return y, x


def _body_extent(track: np.ndarray, min_confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame of a checked track: body height in pixels (head, i.e. nose or else neck, down to
    the lower ankle; NaN without either), lower ankle's y and mean ankle x (as `_ankle_points`)."""
    ankle_y, ankle_x = _ankle_points(track, min_confidence)
    top_y = np.where(track[:, _NOSE, 2] > min_confidence, track[:, _NOSE, 1],
                     np.where(track[:, _NECK, 2] > min_confidence, track[:, _NECK, 1], np.nan))
    return ankle_y - top_y, ankle_y, ankle_x


# Human proportions (Drillis and Contini's segment lengths): nose to neck about 0.35 of neck to
# hips. A clip that never shows the nose (a dancer with their back to the camera) counts its head so.
_HEAD_PER_TORSO = 0.35


def _skeleton_parts(track: np.ndarray, min_confidence: float) -> list[np.ndarray]:
    """Per frame of a checked track: lengths in pixels of the head (nose to neck), the torso (neck
    to the middle of the hips it shows) and the longer leg (hip to knee to ankle, or hip to ankle
    where the knee is hidden, as by a skirt); NaN where the points are missing."""
    xy, shown = track[..., :2], track[..., 2] > min_confidence

    def length(a: np.ndarray, b: np.ndarray, present: np.ndarray) -> np.ndarray:
        return np.where(present, np.linalg.norm(a - b, axis=-1), np.nan)

    head = length(xy[:, _NOSE], xy[:, _NECK], shown[:, _NOSE] & shown[:, _NECK])
    hips_shown = shown[:, _HIPS]
    # A side view hides one hip: the torso then ends at the other, a hip's half-width off.
    hips = (xy[:, _HIPS] * hips_shown[..., None]).sum(axis=1) / np.maximum(hips_shown.sum(axis=1), 1)[:, None]
    torso = length(xy[:, _NECK], hips, shown[:, _NECK] & hips_shown.any(axis=1))
    legs = [np.where(shown[:, knee],
                     length(xy[:, hip], xy[:, knee], shown[:, hip]) + length(xy[:, knee], xy[:, ankle], shown[:, ankle]),
                     length(xy[:, hip], xy[:, ankle], shown[:, hip] & shown[:, ankle])) for hip, knee, ankle in _LEGS]
    return [head, torso, np.fmax(*legs)]


def _skeleton_length(parts: list[np.ndarray], in_band: np.ndarray) -> float:
    """The sum of the parts' lengths (head, torso, leg) in the band's frames; a part the band never
    shows (a turned head, a hidden knee) counts with its length over all frames, and a head the clip
    never shows with human proportions."""
    head, torso, leg = (_upper(part, in_band) for part in parts)
    return float((_HEAD_PER_TORSO * torso if np.isnan(head) else head) + torso + leg)


def _upper(part: np.ndarray, in_band: np.ndarray) -> float:
    """A part's length (_SIZE_PERCENTILE) in the band's frames, else in all; NaN if never seen."""
    lengths = part[in_band & np.isfinite(part)]
    if not lengths.size:
        lengths = part[np.isfinite(part)]
    return float(np.percentile(lengths, _SIZE_PERCENTILE)) if lengths.size else float("nan")


def _shows_whole_body(heights: np.ndarray) -> np.ndarray:
    # NaN (no head or no ankle) compares False; a head at or below the ankles is a detector glitch.
    return heights > 0


def whole_body_frames(track: np.ndarray, min_confidence: float = 0.0) -> np.ndarray:
    """Which frames of a keypoint track (T, K, 3) show a whole body (a head above the ankles): the
    frames `estimate_pose_stats` measures the dancer on."""
    track = missing_where_not_finite(check_keypoints(track, dtype=np.float64))
    heights, _, _ = _body_extent(track, min_confidence)
    return _shows_whole_body(heights)


def estimate_pose_stats(track: np.ndarray, frame_height: int, frame_width: int, min_confidence: float = 0.0,
                        like: PoseStats | dict | None = None) -> PoseStats:
    """PoseStats of a keypoint track (T, K, 3) in pixels of a frame_width x frame_height video,
    measured on its frames that show a whole body (`whole_body_frames`).

    `like`: the target statistics these are to be normalized to; the body is then measured as the
    target's was (its version's measure), else as statistics are made now (STATS_VERSION)."""
    check_min_confidence(min_confidence)
    for name, side in (("frame_height", frame_height), ("frame_width", frame_width)):
        if not is_frame_side(side):  # it divides every position: 0 would fail, text fail inside NumPy
            raise VidtransError(f"{name} must be a number of pixels, from 1 to {MAX_FRAME_SIDE}, got {shown(side)}")
    track = missing_where_not_finite(check_keypoints(track, dtype=np.float64))
    if isinstance(like, dict):  # a card's target_pose_stats as read from card.json
        like = PoseStats.from_dict(like)
    version = STATS_VERSION if like is None else max(2, like.version)
    heights, ankle_y, ankle_x = _body_extent(track, min_confidence)
    usable = _shows_whole_body(heights)
    whole = int(usable.sum())
    if whole < _MIN_FRAMES:
        # What the clip lacks, not what to do about it: a run falls back to fitting the frame itself.
        raise VidtransError(f"{_how_many(whole)} a whole body, head to ankles, and pose normalization needs at least "
                            f"{_MIN_FRAMES}")
    centre_x = np.median((ankle_x[usable] + 0.5) / frame_height) - frame_width / frame_height / 2
    ankle_y = (ankle_y[usable] + 0.5) / frame_height
    far, near = np.percentile(ankle_y, [2, 98])
    band = max(0.02, 0.15 * (near - far))
    bands = ankle_y <= far + band, ankle_y >= near - band
    if version >= 3:
        parts = [part[usable] / frame_height for part in _skeleton_parts(track, min_confidence)]
        if not all(np.isfinite(part).any() for part in parts[1:]):
            raise VidtransError(
                "no frame showing head and ankles shows the dancer's neck and a hip with its ankle, by which pose "
                "normalization measures the body")
        height_far, height_near = (_skeleton_length(parts, in_band) for in_band in bands)
    else:
        heights = heights[usable] / frame_height
        height_far, height_near = (float(np.percentile(heights[in_band], _SIZE_PERCENTILE)) for in_band in bands)
    upper = {}
    if version >= 4:
        try:
            upper = measure_upper_body(track, frame_height, frame_width, min_confidence)._asdict()
        except VidtransError:
            pass  # shoulders that never show: the statistics go without an upper body
    return PoseStats(frame_width=int(frame_width), frame_height=int(frame_height), far=float(far),
                     near=float(near), height_far=height_far, height_near=height_near,
                     centre_x=float(centre_x), version=version, **upper)


@dataclass(frozen=True)
class TrainingSquare:
    """The square of its video's frames a target was trained on (`vidtrans train VIDEO`), in that
    video's pixels: the video's size, and the square's left and top edges and side (it may reach past
    the frame). The target's statistics are measured in the square, scaled to the model's frame."""

    frame_width: int
    frame_height: int
    left: int
    top: int
    side: int

    @property
    def scale(self) -> float:
        """A frame height of the video in frame heights of the square."""
        return self.frame_height / self.side

    def as_video_showed(self, target: PoseStats) -> PoseStats:
        """`target`'s statistics (measured in this square) as the whole video's frame shows them."""
        square_centre, video_centre = target.frame_width / target.frame_height / 2, self.frame_width / 2

        def x(value):
            return None if value is None else (self.left + (square_centre + value) * self.side
                                               - video_centre) / self.frame_height

        def y(value):
            return None if value is None else (self.top + value * self.side) / self.frame_height

        def size(value):
            return None if value is None else value / self.scale

        return PoseStats(frame_width=self.frame_width, frame_height=self.frame_height, far=y(target.far),
                         near=y(target.near), height_far=size(target.height_far), height_near=size(target.height_near),
                         centre_x=x(target.centre_x), version=target.version,
                         shoulder_width=size(target.shoulder_width), neck_x=x(target.neck_x), neck_y=y(target.neck_y),
                         head_length=size(target.head_length))


class PoseNormalizer:
    """Maps poses of the source video into the target video's frame (EDN global normalisation).

    `square`: the part of its video the target was trained on, where known; a clip framed as that
    video was is then cropped as training cropped it (`framed_alike`)."""

    def __init__(self, source: PoseStats, target: PoseStats, min_confidence: float = 0.0,
                 square: TrainingSquare | None = None):
        for name, stats in (("source", source), ("target", target)):
            if not stats.whole_body:
                raise VidtransError(f"the {name} statistics measure an upper body alone, which normalizer_for fits "
                                    "with an UpperBodyNormalizer")
        if (source.version >= 3) != (target.version >= 3):
            raise VidtransError(
                f"source statistics (version {source.version}) measure bodies otherwise than the target's "
                f"(version {target.version}); measure the source with estimate_pose_stats(..., like=target)")
        check_min_confidence(min_confidence)
        self.source = source
        self.target = target
        self.min_confidence = min_confidence
        self.square = square
        self.alike = framed_alike(source, target, square)
        # Where the clip's travel sideways counts from: the dancer's usual place, or for a clip cropped
        # as training cropped, where the target stood in its square.
        self._place = square.as_video_showed(target).centre_x if self.alike and square else source.centre_x

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        """Normalised copy of a pose (18, 3) or track (T, 18, 3): source pixels in, target pixels out.

        Frames without a visible ankle use the ankle line interpolated from neighbouring frames of
        the track given (for a single pose without ankles: the middle of the source's ankle range),
        so a clip's frames map alike only when its whole track is given at once; it is mapped
        _CHUNK frames at a time, so that a long clip's float64 working copies stay small.
        """
        kp = check_keypoints(keypoints, "keypoints", track=None, dtype=None)
        single = kp.ndim == 2
        track = kp[None] if single else kp
        s = self.source
        starts = range(0, len(track), _CHUNK) or [0]
        lines = [_ankle_points(_as_float(track[a:a + _CHUNK]), self.min_confidence) for a in starts]
        ankle_y, ankle_x = (np.concatenate(line) for line in zip(*lines))
        ankle_y = _fill_missing((ankle_y + 0.5) / s.frame_height, (s.far + s.near) / 2)
        ankle_x = (ankle_x + 0.5) / s.frame_height
        out = np.concatenate([self._map(_as_float(track[a:a + _CHUNK]), ankle_y[a:a + _CHUNK], ankle_x[a:a + _CHUNK])
                              for a in starts])
        return out[0] if single else out

    def _map(self, track: np.ndarray, ankle_y: np.ndarray, ankle_x: np.ndarray) -> np.ndarray:
        """Poses (T, K, 3) mapped (float32), given their frames' ankle lines and mean ankle x (in
        frame heights; x NaN where no ankle shows)."""
        s, t = self.source, self.target
        present = track[..., 2] > self.min_confidence
        xy = (track[..., :2] + 0.5) / s.frame_height
        # Without ankles, scale about the pose's own centre so it stays where it was.
        centre_x = np.array([xy[i, present[i], 0].mean() if present[i].any() else 0.0 for i in range(len(track))])
        ankle_x = np.where(np.isfinite(ankle_x), ankle_x, centre_x)

        scale, new_ankle_y = self._size_and_floor(ankle_y)
        source_centre = s.frame_width / s.frame_height / 2
        target_centre = t.frame_width / t.frame_height / 2
        if t.centre_x is not None and s.centre_x is not None:
            # Travel away from where the dancer usually stands scales with the body, as heights do:
            # a target cropped from a video of another height then maps onto itself exactly.
            new_ankle_x = target_centre + t.centre_x + (ankle_x - source_centre - self._place) * scale
        else:
            new_ankle_x = target_centre + (ankle_x - source_centre)

        out = np.zeros_like(track)
        out[..., 0] = new_ankle_x[:, None] + (xy[..., 0] - ankle_x[:, None]) * scale[:, None]
        out[..., 1] = new_ankle_y[:, None] + (xy[..., 1] - ankle_y[:, None]) * scale[:, None]
        out[..., :2] = out[..., :2] * t.frame_height - 0.5
        out[..., 2] = track[..., 2]
        out[~present] = 0.0
        return out.astype(np.float32)

    def _size_and_floor(self, ankle_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame, for poses whose ankle line is `ankle_y` (frame heights): the scale, and the
        ankle line they go to."""
        s, t = self.source, self.target
        if self.alike:  # framed as the target's video was: left at its size and on its floor, in its square
            if self.square is None:
                return np.ones_like(ankle_y), ankle_y
            scale = self.square.scale
            return np.full_like(ankle_y, scale), (ankle_y - self.square.top / self.square.frame_height) * scale
        source_range = s.near - s.far
        wide = source_range >= _MIN_DEPTH_RANGE
        frac = (ankle_y - s.far) / source_range if wide else np.full_like(ankle_y, 0.5)
        scale = _lerp(t.height_far / s.height_far, t.height_near / s.height_near, np.clip(frac, 0.0, 1.0))
        if wide:
            return scale, _lerp(t.far, t.near, frac)
        return scale, (t.far + t.near) / 2 + (ankle_y - (s.far + s.near) / 2) * scale


def framed_alike(source: PoseStats, target: PoseStats, square: TrainingSquare | None = None) -> bool:
    """Whether whole-body statistics `source` show the dancer where the target stood (both of the
    clip's ankle lines within the target's range) at the target's size there within _ALIKE_SIZE:
    then a `PoseNormalizer` leaves the poses at their size and height in the frame. Where the
    `square` of its video the target was trained on is known, the target is compared as that video
    showed it, and the dancer must also usually stand within _ALIKE_PLACE of the target sideways:
    the clip is then cropped as training cropped. Without it, sideways the dancer's usual place still
    goes to the target's, where both statistics know it. The size is compared at each ankle line where the clip's
    lie _MIN_DEPTH_RANGE apart or more, else at their middle: a clip's middle alone let a dancer
    walking from far above the target's floor to below it, or two people cut together, one too
    large and one too small, pass as framed alike, and be left where the target never stood."""
    if square is not None:
        target = square.as_video_showed(target)
        if (target.centre_x is None or source.centre_x is None
                or abs(source.centre_x - target.centre_x) * square.scale > _ALIKE_PLACE):
            return False
    if not target.far - _ROUNDING <= source.far <= source.near <= target.near + _ROUNDING:
        return False
    lines = [(source.far, source.height_far), (source.near, source.height_near)]
    if source.near - source.far < _MIN_DEPTH_RANGE:  # one depth: its two bands measure the same frames
        lines = [((source.far + source.near) / 2, (source.height_far + source.height_near) / 2)]
    target_range = target.near - target.far
    for line, size in lines:
        at = (line - target.far) / target_range if target_range > 0 else 0.5
        if abs(_lerp(target.height_far, target.height_near, at) / size - 1) > _ALIKE_SIZE:
            return False
    return True


def normalized_phrase(normalizer: PoseNormalizer) -> str:
    """How a summary says the poses were mapped by `normalizer` (run's, live's)."""
    # Sideways the dancer may still go to the target's usual place (`framed_alike`).
    kept = ", which the clip already shows at its size and on its floor" if normalizer.alike else ""
    return f"normalized to the target's body{kept}"


# Frames a PoseNormalizer maps at once: their float64 working copies take a few MB (whole-body poses).
_CHUNK = 1024


class UpperBodyNormalizer:
    """Maps poses of a clip that never shows a whole body onto the target's upper body: scaled by
    the ratio of the shoulder widths, the source's usual neck position moved onto the target's, and
    travel away from it scaled as the body is (so the dancer's movements stay theirs)."""

    def __init__(self, source: UpperBody, source_size: tuple[int, int], target: PoseStats):
        if target.upper_body is None:
            raise VidtransError(f"the target statistics (version {target.version}) have no upper body; upper-body "
                                "fitting needs version 4")
        check_frame_size("source_size", source_size)
        # Checked now, as PoseStats are: a width of 0 or text would fail only once poses are mapped.
        if not isinstance(source, UpperBody):
            raise VidtransError(f"source must be an UpperBody (measure_upper_body's), not {shown(source)}")
        for name, value in source._asdict().items():
            if name == _HEAD and value is None:
                continue
            size = name in ("shoulder_width", _HEAD)
            if not (_is_size if size else _is_position)(value):
                raise VidtransError(f"source {name} {_SIZE if size else _POSITION}, got {shown(value)}")
        self.source, self.source_size, self.target = source, source_size, target

    @classmethod
    def measured(cls, track: np.ndarray, frame_height: int, frame_width: int,
                 target: PoseStats) -> "UpperBodyNormalizer":
        """The fit of a clip's keypoint track (T, K, 3), in pixels of a frame_width x frame_height
        video, measured on it (`measure_upper_body`: VidtransError when too few frames show it)."""
        return cls(measure_upper_body(track, frame_height, frame_width), (frame_height, frame_width), target)

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        """Mapped copy (float32) of a pose (K, 3) or track (T, K, 3): source pixels in, target pixels out."""
        kp = _as_float(check_keypoints(keypoints, "keypoints", track=None, dtype=None))
        (height, width), source, t = self.source_size, self.source, self.target
        upper = t.upper_body
        scale = upper.shoulder_width / source.shoulder_width
        if upper.head_length is not None and source.head_length is not None:
            by_head = upper.head_length / source.head_length
            if scale > _TURNED * by_head:  # shoulders seen turned away throughout: the head sizes the body
                scale = by_head
        # Positions in frame heights from the frame's centre column and top edge, pixel i spanning [i, i + 1).
        x = (kp[..., 0] + 0.5) / height - width / height / 2 - source.neck_x
        y = (kp[..., 1] + 0.5) / height - source.neck_y
        out = np.zeros_like(kp)
        out[..., 0] = (t.frame_width / t.frame_height / 2 + upper.neck_x + x * scale) * t.frame_height - 0.5
        out[..., 1] = (upper.neck_y + y * scale) * t.frame_height - 0.5
        out[..., 2] = kp[..., 2]
        out[~(kp[..., 2] > 0)] = 0.0
        return out.astype(np.float32)


def normalizer_for(track: np.ndarray, frame_height: int, frame_width: int, target: PoseStats,
                   square: TrainingSquare | None = None) -> tuple[Callable[[np.ndarray], np.ndarray], str | None]:
    """The normalization of a clip's keypoint track (T, K, 3), in pixels of a frame_width x
    frame_height video, onto `target` (trained on `square` of its video, where known): a
    `PoseNormalizer` where both show a whole body, else an
    `UpperBodyNormalizer` where the target statistics have an upper body and the clip shows one.
    Returns it with None, or with why the whole body is not used when the upper body is fitted;
    VidtransError saying what the clip lacks when neither is possible."""
    check_frame_size("frame size", (frame_height, frame_width))  # a bad size is no reason to try the upper body
    if target.whole_body:
        try:
            return PoseNormalizer(estimate_pose_stats(track, frame_height, frame_width, like=target), target,
                                  square=square), None
        except VidtransError as e:
            if target.upper_body is None:
                raise
            why = str(e)
    else:
        why = "the target is known by its upper body alone"
    try:
        return UpperBodyNormalizer.measured(track, frame_height, frame_width, target), why
    except VidtransError as e:
        raise VidtransError(f"{why}; {e}") from None


def estimate_target_stats(track: np.ndarray, frame_height: int, frame_width: int) -> PoseStats:
    """A training target's statistics (as `estimate_pose_stats`), or where its video never shows
    its whole body, those of its upper body alone; VidtransError saying what the video lacks when it
    shows neither."""
    try:
        return estimate_pose_stats(track, frame_height, frame_width)
    except VidtransError as whole_body:
        try:
            upper = measure_upper_body(track, frame_height, frame_width)
        except VidtransError as e:
            raise VidtransError(f"{whole_body}; {e}") from None
    return PoseStats(frame_width=int(frame_width), frame_height=int(frame_height), far=None, near=None,
                     height_far=None, height_near=None, centre_x=None, version=STATS_VERSION, **upper._asdict())


def _as_float(poses: np.ndarray) -> np.ndarray:
    """Checked poses as float64, NaN and infinite points missing."""
    return missing_where_not_finite(poses.astype(np.float64))


def _lerp(a: float, b: float, frac: np.ndarray) -> np.ndarray:
    return a + (b - a) * frac


def _fill_missing(values: np.ndarray, default: float) -> np.ndarray:
    known = np.isfinite(values)
    if not known.any():
        return np.full_like(values, default)
    idx = np.arange(len(values))
    return np.interp(idx, idx[known], values[known])


def fit_to_frame(source_size: tuple[int, int], target_size: tuple[int, int],
                 holding: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Without pose normalization: scale source pixels so the frame heights match, centred horizontally.

    A source wider than the target frame shows there only the columns of its middle; `holding`, the
    clip's poses (T, K, 3) in source pixels, moves those columns from the middle as far as it takes
    to hold where the person is over the clip (`_held_centre`), so one beside the middle (a talking
    head on one side of a wide shot, the first of two people side by side) is not cut off or lost."""
    check_frame_size("source_size", source_size)
    check_frame_size("target_size", target_size)
    (src_h, src_w), (dst_h, dst_w) = source_size, target_size
    scale = dst_h / src_h
    centre = (src_w - 1) / 2
    if holding is not None:
        centre = _held_centre(missing_where_not_finite(check_keypoints(holding, "holding", dtype=np.float64)),
                              centre, dst_w / scale / 2, _HOLD_MARGIN * src_h)

    def transform(track: np.ndarray) -> np.ndarray:
        out = np.array(track, dtype=np.float32, copy=True)
        out[..., 0] = (out[..., 0] - centre) * scale + (dst_w - 1) / 2
        out[..., 1] = (out[..., 1] + 0.5) * scale - 0.5
        out[..., :2] *= (out[..., 2:3] > 0)
        return out

    return transform


# A person reaching past the middle columns by no more than this share of their own width (a hand
# at the edge) keeps them: moving the frame for so little would move every pose of the clip.
_HOLD_TOLERANCE = 0.25
# Room kept beyond the person's outermost keypoints once the frame moves to hold them, in source
# frame heights: what the pose map draws around a point (joint discs, limbs, the head beyond the ears).
_HOLD_MARGIN = 0.05


def _held_centre(track: np.ndarray, centre: float, half: float, margin: float) -> float:
    """The source column (pixel centres) the target frame's middle goes to, `half` source pixels
    either side of it, to hold the person of a checked track (T, K, 3), `centre` the source frame's
    middle. Where their keypoints usually reach (each frame's outermost points, their 1st and 99th
    percentiles: a point the detector misplaced once does not count) past those columns by more
    than _HOLD_TOLERANCE of their width, the frame moves from the middle only as far as it takes to
    hold them, `margin` pixels beyond where there is room, or to their median column when they
    reach wider than it holds; never past the source frame's edges. A source narrower than the
    target frame, or a track without anybody, keeps `centre`."""
    present = track[..., 2] > 0
    shown = present.any(axis=1)
    if 2 * half >= 2 * centre + 1 or not shown.any():
        return centre
    xs = np.where(present[shown], track[shown][..., 0], np.nan)
    left, right = float(np.percentile(np.nanmin(xs, axis=1), 1)), float(np.percentile(np.nanmax(xs, axis=1), 99))
    if max(centre - half - left, right - centre - half) <= _HOLD_TOLERANCE * (right - left):
        return centre
    if right - left > 2 * half:
        held = float(np.nanmedian(xs))
    else:
        margin = min(margin, (2 * half - (right - left)) / 2)
        held = float(np.clip(centre, right + margin - half, left - margin + half))
    return float(np.clip(held, half - 0.5, 2 * centre + 0.5 - half))  # the frame's edges at -0.5 and its width - 0.5
