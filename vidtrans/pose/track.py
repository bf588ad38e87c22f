"""A clip's pose track for an offline run: where the keypoints come from, and the stages that turn
them into the pose maps a model expects.

Pose models need the whole clip's keypoints before the first frame is drawn (the global pose
normalization fits the source dancer's height and ankle range to the target's, and the keypoint
filter looks ahead), so a first pass decodes and detects keypoints only (a few bytes per frame);
the run's own pass then looks them up frame by frame (`KeypointLookupStage`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.options import PoseSource, spell_setting
from vidtrans.pose.files import KeypointTrack, read_keypoints
from vidtrans.pose.render import PoseStyle
from vidtrans.runner import FrameProgress, Progress, frame_batches, run_stages
from vidtrans.video import VideoInfo, VideoReader

log = logging.getLogger(__name__)

# Frames that show something looked at to tell a pose-map video from camera footage, and the most
# frames read for them (a long dark clip is not decoded whole for it).
_POSE_VIDEO_PEEK = 8
_POSE_VIDEO_SCAN = 300
# A normalised file's canvas is the video scaled to the detector's resolution, each side rounded to a
# multiple of 64 by ControlNet (1280x720 -> 896x512): its sides may be this far from the scaled video's.
CANVAS_ROUNDING = 32
# The share of the visible points of a keypoint file without a frame size that may lie outside the
# video's frame. A dancer leaving the frame takes a few points with them for some frames (and most
# detectors place no point off the picture at all); the keypoints of a larger video put most of its
# points past the right and bottom edges of a smaller one.
OFF_FRAME_SHARE = 0.25


def detect_keypoints(src: str | os.PathLike, start: float | None = None, end: float | None = None,
                     progress: Progress | None = None, whole_body: bool = False) -> np.ndarray:
    """Raw keypoints (frames, K, 3) of every frame of `src`, detected in tracking mode: K = 18 body
    keypoints, or 128 with the face and hands when `whole_body`.

    `progress` is told as `runner.FrameProgress` tells it: its last call gives the frames read."""
    from vidtrans.pose.detector import DETECTION_MAX_SIDE
    from vidtrans.pose.stages import KeypointStage

    tracks, done = [], 0
    # The frames are only looked at by the detector, so they are decoded at its size.
    with VideoReader(src, start=start, end=end, max_side=DETECTION_MAX_SIDE) as reader:
        info, told = reader.info, FrameProgress(progress, reader.frame_count, "detecting poses")
        stage = KeypointStage(frame_size=(info.height, info.width), whole_body=whole_body)
        for batch in run_stages(frame_batches(reader, 8), [stage]):
            tracks.append(batch.keypoints)
            done += len(batch.keypoints)
            told(done)
    told.finish(done)
    return np.concatenate(tracks) if tracks else np.zeros((0, stage.num_keypoints, 3), np.float32)


def is_pose_video(src: str | os.PathLike, start: float | None = None, end: float | None = None) -> bool:
    """Whether the selected range of `src` already shows pose maps: its first frames that show
    something look like them (a clip of black frames only is footage)."""
    from vidtrans.pose.posemap import looks_like_pose_map

    return looks_like_pose_map(_frames_shown(src, start, end))


def warn_unless_pose_video(src: str | os.PathLike, start: float | None, end: float | None, model_name: str) -> None:
    """Warns where `src`, given to `model_name` as pose maps (pose none), shows something in the
    selected range that does not look like them: the model would make garbage of camera footage.
    A clip of black frames only says nothing either way (a pose video of nobody), so is not told."""
    from vidtrans.pose.posemap import looks_like_pose_map

    shown = _frames_shown(src, start, end)
    if shown and not looks_like_pose_map(shown):
        log.warning("%s does not look like pose maps, yet %s feeds %s its frames as pose maps; %s (or auto) detects "
                    "the dancer", src, spell_setting("pose", "none"), model_name, spell_setting("pose", "detect"))


def _frames_shown(src: str | os.PathLike, start: float | None, end: float | None) -> list[np.ndarray]:
    """The first frames of the selected range of `src` that show something, up to _POSE_VIDEO_PEEK.
    A pose video's frames of nobody are black, and say nothing either way, so one whose dancer
    enters late is read on past them, up to _POSE_VIDEO_SCAN frames."""
    from vidtrans.pose.posemap import is_blank

    shown = []
    with VideoReader(src, start=start, end=end) as peek:
        for _, frame in zip(range(_POSE_VIDEO_SCAN), peek):
            if not is_blank(frame.image):
                shown.append(frame.image)
                if len(shown) == _POSE_VIDEO_PEEK:
                    break
    return shown


def keypoints_for(keypoints: str | os.PathLike, src: str | os.PathLike, reader: VideoReader) -> KeypointTrack:
    """The poses of the keypoint file `keypoints` for the frames `reader` yields of `src`, one each,
    smoothed: over the whole file, so that a span (--start) gets the frames a run of the whole clip
    gives there; a file `vidtrans pose` smoothed already as it is (filtered twice, it would lag).

    A keypoint file has one pose per frame of the clip it was made from, from the clip's frame
    `first_frame` on (0 unless the file says; `vidtrans pose --start` writes a part of the clip),
    so a file reaching past the clip's last frame was made from another clip, and refused; one
    that misses frames of the span being translated is refused too. A file that gives its frame
    size must give the video's; one whose coordinates were normalised to a canvas (ControlNet and
    DWPose files), or are pixels of a canvas (openpose-editor), is scaled to the video when the
    canvas has the video's aspect ratio. A file that gives no frame size (OpenPose folders) is refused
    when more than OFF_FRAME_SHARE of its visible points lie outside the video's frame.
    """
    from vidtrans.pose.keypoints import check_keypoint_values
    from vidtrans.pose.smoothing import smooth_track

    span, info = reader.span(), reader.info
    loaded = read_keypoints(keypoints, max_frames=span.total)
    track = loaded.keypoints
    if loaded.width is None or loaded.height is None:
        # read_keypoints checked the values against the file's own frame size; this file gives none.
        track = check_keypoint_values(track, f"{keypoints}: keypoints", (info.height, info.width), loaded.frame_names)
        _check_inside(track, keypoints, src, info)  # within a frame's size of it, but mostly off it
    elif loaded.normalised or loaded.canvas:
        # Fractions of the whole canvas, however it was rounded, or its pixels: the canvas is the video, scaled.
        if not _scaled_like(loaded.width, loaded.height, info.width, info.height):
            how = "normalised to" if loaded.normalised else "in pixels of"
            raise VidtransError(f"{keypoints}: keypoints {how} a {loaded.width}x{loaded.height} canvas, of "
                                f"aspect ratio {loaded.width / loaded.height:.3f}, but {src} is {info.size_text}, "
                                f"of aspect ratio {info.width / info.height:.3f}, so they are of "
                                "another video; extract them from this video with vidtrans pose")
        track = track * np.array([info.width / loaded.width, info.height / loaded.height, 1], np.float32)
    elif (loaded.width, loaded.height) != (info.width, info.height):
        raise VidtransError(f"{keypoints}: keypoints of a {loaded.width}x{loaded.height} video, but {src} is "
                            f"{info.size_text}; extract them from this video with vidtrans pose")
    first, count = loaded.first_frame, len(track)
    covered = {0: "0 frames of keypoints", 1: f"1 frame of keypoints (frame {first} of the clip)"}.get(
        count, f"{count} frames of keypoints (frames {first} to {first + count - 1} of the clip)")
    if first + count > span.total:
        raise VidtransError(f"{keypoints}: {covered}, but {src} has only {span.total}: a keypoint file has one "
                            "pose per frame of the clip it was made from, so this one is from another clip; extract "
                            "keypoints from this clip with vidtrans pose")
    if first > span.first or first + count < span.stop:
        raise VidtransError(f"{keypoints}: {covered}, but frames {span.first} to {span.stop - 1} of {src} are to be "
                            "translated, and each needs its pose; extract keypoints from this clip, over at least "
                            "that span, with vidtrans pose")
    if not loaded.smoothed:
        track = smooth_track(track)
    return KeypointTrack(track[span.first - first:span.stop - first], info.width, info.height, span.first,
                         smoothed=True)


def _check_inside(track: np.ndarray, keypoints, src, info: VideoInfo) -> None:
    """Refuses a track of a file without a frame size when more than OFF_FRAME_SHARE of its visible
    points, over the whole file, lie outside the frame of `src` (`info`: its probe)."""
    points = track[track[..., 2] > 0][:, :2]
    if not len(points):
        return
    # Pixel centres sit at integers, so the frame reaches half a pixel beyond the first and last ones.
    outside = ((points < -0.5) | (points > np.array([info.width, info.height], np.float32) - 0.5)).any(axis=1)
    share = float(outside.mean())
    if share > OFF_FRAME_SHARE:
        reach = np.ceil(points.max(axis=0) + 0.5).astype(int)
        raise VidtransError(f"{keypoints}: {share * 100:.0f} % of its visible keypoints lie outside the "
                            f"{info.size_text} frame of {src} (they reach x = {reach[0]}, y = {reach[1]}), so they "
                            "are likely the keypoints of a larger or another video; extract them from this video "
                            "with vidtrans pose")


def _scaled_like(canvas_width: int, canvas_height: int, width: int, height: int) -> bool:
    """Whether a canvas is a frame of width x height scaled by its short side, each side rounded to
    a multiple of 64 or less (see CANVAS_ROUNDING)."""
    scale = canvas_height / height if height <= width else canvas_width / width
    return (abs(canvas_width - width * scale) <= CANVAS_ROUNDING
            and abs(canvas_height - height * scale) <= CANVAS_ROUNDING)


def pose_stages_for(model, src: str | os.PathLike, reader: VideoReader, pose: PoseSource,
                    keypoints: str | os.PathLike | None, normalize: bool,
                    progress: Progress | None) -> tuple[list[Any], str]:
    """The stages that turn `reader`'s decoded frames of `src` into the pose maps `model` expects
    (none when the input already is pose maps), and a phrase saying where the poses come from.

    `pose` is detect or none, auto being decided before (`pipeline._pose_source`: it decides the
    output's frame size); `keypoints` (a file `read_keypoints` accepts, see `keypoints_for`)
    replaces detection;
    `normalize` fits the source dancer to the target body of the model card, when the card has its
    statistics.
    """
    from vidtrans.pose.keypoints import is_whole_body, with_parts
    from vidtrans.pose.normalize import PoseStats, fit_to_frame, normalized_phrase, normalizer_for, whole_body_frames
    from vidtrans.pose.smoothing import smooth_track
    from vidtrans.pose.stages import KeypointLookupStage, PoseMapStage
    from vidtrans.train.data import recorded_training_square

    if pose == PoseSource.NONE:
        return [], "input is pose maps"
    card, info = model.card, reader.info
    style = PoseStyle.for_card(card)  # a card it cannot read fails now, not after the detection pass
    height, width = model.native_size
    if keypoints is not None:
        loaded = keypoints_for(keypoints, src, reader)
        if style.whole_body and not is_whole_body(loaded.keypoints):
            # Detection would find the face and hands, so the output would differ from `run` detecting.
            log.warning("%s holds the body only, but %s draws the face and hands too, so they are left out; to draw "
                        "them, extract whole-body keypoints with vidtrans pose %s -o POSE.mp4 --whole-body "
                        "--keypoints FILE.npz", keypoints, model.name, src)
        # A body-only file drawn in a whole-body style draws no face or hands, and the other way round.
        track = with_parts(loaded.keypoints, style.whole_body)
        how = f"keypoints from {Path(keypoints).name}"
    else:
        track = smooth_track(detect_keypoints(src, reader.start, reader.end, progress, whole_body=style.whole_body))
        how = "detected, with face and hands" if style.whole_body else "detected"
    transform = None  # fitted to the frame where not normalized
    if normalize and card.target_pose_stats:
        try:
            transform, no_whole_body = normalizer_for(track, info.height, info.width,
                                                      PoseStats.from_dict(card.target_pose_stats),
                                                      recorded_training_square(card.training, model.name))
        except VidtransError as e:
            how += f", fitted to the frame (not normalized: {e})"
        else:
            if no_whole_body:
                how += f", upper body fitted to the target's ({no_whole_body})"
            else:
                measured = int(whole_body_frames(track).sum())  # the frames estimate_pose_stats measured
                how += f", {normalized_phrase(transform)}{_short_clip_caveat(measured, info.fps)}"
    elif normalize:
        how += ", fitted to the frame (not normalized: the model card has no target pose statistics)"
    if transform is None:
        transform = fit_to_frame((info.height, info.width), (height, width), holding=track)
    # Mapped once, the whole track: normalization places a frame without ankles (feet cut by the
    # frame's edge, hidden) by the ankle lines of the frames around it, which a batch may not hold,
    # so mapping each batch apart drew those frames where the batch size put them.
    return [KeypointLookupStage(transform(track)), PoseMapStage(height, width, style)], how


# Normalization measures the dancer's size on the clip itself, on the frames that show their whole
# body. On detected held-out dances of the synthetic target (evaluate.DANCE_FRAMES explains the
# measurement) that measure is off by 1.63 % on average on 2 s clips, 1.37 % on 4 s and 1.10 % on
# 8 s: a percent or two moves the head by a few pixels, so a run measured on fewer seconds (a
# short clip, or a long one showing the whole body briefly) is told why more would normalize better.
SHORT_CLIP_SECONDS = 5.0


def _short_clip_caveat(whole_body_frames: int, fps: float) -> str:
    """The caveat for a dancer measured on `whole_body_frames` frames of a clip at `fps`."""
    seconds = whole_body_frames / fps if fps > 0 else None
    if seconds is None or seconds >= SHORT_CLIP_SECONDS:
        return ""
    return (f" (on only {seconds:.1f} s of video showing the whole body, which can misjudge the dancer's size by "
            "a few per cent)")
