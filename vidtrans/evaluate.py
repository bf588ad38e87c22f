"""Held-out quality of a model against known ground truth.

End to end (the default; Everybody Dance Now's self-reenactment): the target dances something it
was not trained on, handed to vidtrans as a user hands over a clip, and the output of exactly what
`vidtrans run` does (decode, detection, keypoint filter, normalization, translation, smoothing,
encode) is compared with the truth at the model's size. A synthetic target dances a held-out
procedural dance, rendered and encoded as a video; a target trained from a video is scored on that
video's held-out tail. The headline figures are where viewers look: SSIM of the person's box, the
face and the hands (`vidtrans.pose.regions`, placed by the true keypoints), the pose the detector
reads on the output against the true one, and flicker against the truth's with and without output
smoothing. Full-frame SSIM and PSNR are kept, but the static background flatters them.

Model only (`model_only`, and paired folders): pose maps drawn from the true keypoints go through
the translation and smoothing stages alone, without detection, normalization or encode: the
network given perfect input.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidtrans.errors import UsageError, VidtransError
from vidtrans.metrics import MIN_SCORED_FRAMES, flicker, psnr, relative_flicker, ssim
from vidtrans.options import (Direction, EncodeOptions, PoseSource, RunOptions, Smoothing, is_int, plain, plain_number,
                              rounded, shown, shown_path, spell, spell_setting)
from vidtrans.pipeline import TranslateStage, file_path, given_options, loaded_model, smoothing_stages, translate_video
from vidtrans.pose.keypoints import with_parts
from vidtrans.pose.regions import face_box, hand_boxes, person_box
from vidtrans.runner import Batch, Progress, run_stages
from vidtrans.temporal import Smoother, smoothing_for
from vidtrans.video import VideoReader, VideoWriter, file_identity, not_a_video_file, probe

log = logging.getLogger(__name__)

DEFAULT_EVAL_SEED = 20_000_000
# Ten seconds, a short user clip. `run` measures the dancer's size for normalization on the clip
# itself, and on two seconds (64 frames, the former default) that measure was off by 1.75 % on
# average (4.9 % at worst; 144 detected windows of held-out dances), which moved the head by 2-3 px
# at 256 and halved the face's SSIM: the figure then scored the normalization of a clip too short
# to normalize, not the model. On eight seconds it was 1.24 % (3.6 % at worst). Sizing bodies by
# their skeleton (statistics version 3) made that 1.63 % on two seconds and 1.10 % on eight.
DANCE_FRAMES = 300
DANCE_VIDEO_SIZE = (512, 512)  # (width, height): a user's clip, larger than the model's frame
DANCE_FPS = 30
# The dance video as a camera or an editor writes it at good quality.
DANCE_VIDEO_ENCODE = EncodeOptions(crf=16)
MIN_CROP = 11  # crops narrower than SSIM's window are not scored
# Scoring holds every frame in memory at the model's size (the truth, the output, the output
# without smoothing, the truth through the encode, and a copy of each while it is stacked), so the
# frames scored are capped by what fits in EVAL_MEMORY bytes.
FRAME_COPIES = 6
EVAL_MEMORY = 4 * 2**30


@dataclass(frozen=True)
class Material:
    """What `score` scores a model on, one of: the held-out procedural dance `seed` (the default
    for models trained on vidtrans' synthetic data; `synthetic` asks for it for any model), the
    held-out tail of the target `video` the model was trained on, or the pairs of the folder
    `data` (model only, by nature).

    frames: how many (default: DANCE_FRAMES of the dance, the whole tail, every pair), at most
    `max_frames(model)`; data: the folder's path, or the `PairedFolder` `check_material` read from it;
    seed: default DEFAULT_EVAL_SEED; size: (width, height) of the dance video, default DANCE_VIDEO_SIZE.
    """

    synthetic: bool = False
    seed: int | None = None
    video: str | os.PathLike | None = None
    data: str | os.PathLike | None = None
    frames: int | None = None
    size: tuple[int, int] | None = None


@dataclass
class HeldOut:
    """End-to-end material: the span [start, end) seconds of `video` (None: from its start, to its
    end) is what `run` translates; `truth` (N, h, w, 3) uint8 what it should give, one frame per frame
    of the span at the model's size, and `keypoints` (N, 18, 3) the true pose in truth pixels."""

    video: Path
    start: float | None
    end: float | None
    truth: np.ndarray
    keypoints: np.ndarray
    dance_size: tuple[int, int] | None = None  # (width, height) of a synthetic dance's video; None for --video


def score(model, material: Material, options: RunOptions | None = None, *, model_only: bool = False,
          progress: Progress | None = None) -> dict[str, Any]:
    """Score `model` (a `vidtrans.load_model` result, or a model's name or path) on `material`: end
    to end through `run`'s pipeline with `options` (its batch size, smoothing and normalization), or
    the model alone. Returns plain JSON values: what ran (the model, its device, precision and
    backend: scores move a little between fp32 and bf16, which "auto" picks on some CPUs), where the
    material came from, "mode", and the figures."""
    material = check_material(material, options, model_only)
    options = options or RunOptions()
    model = loaded_model(model)  # a name or path, once the material is known to be fine
    _check_material_for(model, material)
    ran = {"model": model.name, "device": str(model.device), "precision": model.precision,
           "backend": getattr(model, "backend", "torch")}
    if material.data is not None:
        inputs, truth, held_out = folder_ground_truth(model, material.data, material.frames)
        return {**ran, "data": str(scored_folder(material.data)), "mode": "model-only",
                "held_out_in_training": held_out, **model_only_scores(model, inputs, truth, options, stills=True)}
    video, seed = material.video, None if material.video is not None else _seed(model, material.seed)
    source: dict[str, Any] = {**ran, "video": str(video)} if video is not None else {**ran, "seed": seed}
    dance_frames = None if video is not None else material.frames or _default_dance_frames(model)
    if model_only:
        if video is not None:
            held_out = video_held_out(model, video, material.frames, progress)
            inputs, truth = _pose_maps(model, held_out.keypoints), held_out.truth
        else:
            inputs, truth = synthetic_ground_truth(model, seed, dance_frames)
        return {**source, "mode": "model-only", **model_only_scores(model, inputs, truth, options)}
    with tempfile.TemporaryDirectory(prefix="vidtrans-eval-") as folder:
        if video is not None:
            held_out = video_held_out(model, video, material.frames, progress)
        else:
            size = _video_size(material.size)
            source["video_size"] = list(size)
            held_out = dance_held_out(model, seed, dance_frames, Path(folder) / f"dance{seed}.mp4", size, progress)
        return {**source, "mode": "end-to-end", **end_to_end_scores(model, held_out, Path(folder), options, progress)}


def check_material(material: Material, options: RunOptions | None = None, model_only: bool = False) -> Material:
    """Refuse, before any model is loaded (seconds; on a CPU an ONNX export into the user's cache),
    what cannot be scored whatever the model: material asked for twice, too few frames, a bad seed
    or size, options that would do nothing, a paired folder without enough pairs. Returns the
    material with `data` read (a `PairedFolder`: its images checked and its warnings given once),
    which `score` takes as it is."""
    from vidtrans.train.data import PairedFolder

    if not isinstance(material, Material):
        raise UsageError(f"material must be a Material, such as Material(data='DIR'), not {shown(material)}")
    options = given_options(options, RunOptions(), "options", keywords=False)
    # NumPy scalars (what indexing an array gives) as the Python numbers they stand for, which the
    # checks take and the scores' JSON holds.
    size = material.size
    material = dataclasses.replace(material, frames=plain_number(material.frames), seed=plain_number(material.seed),
                                   size=tuple(map(plain_number, size)) if isinstance(size, (tuple, list)) else size)
    if material.frames is not None:
        _check_enough_frames(material.frames)
    given = [name for name, on in ((spell("synthetic=True"), material.synthetic),
                                   (spell("video"), material.video is not None),
                                   (spell("data"), material.data is not None)) if on]
    if len(given) > 1:
        raise UsageError(f"give one of {spell('synthetic=True')}, {spell_setting('video', 'VIDEO')} or "
                         f"{spell_setting('data', 'DIR')}, not {' and '.join(given)}")
    dance = material.data is None and material.video is None
    end_to_end = not model_only and material.data is None
    # Options that would change nothing for this material are refused rather than ignored.
    unused = [(f"{spell('seed')} picks the synthetic dance, and {spell('data')} and {spell('video')} score other "
               "material", material.seed is not None and not dance),
              (f"{spell('size')} is the size of the synthetic dance video, which only end-to-end evaluation of the "
               "synthetic dances writes",
               material.size is not None and not (dance and end_to_end)),
              (f"{spell('normalize=False')} turns off fitting the detected dancer to the target's body, which only "
               "end-to-end evaluation does", not options.normalize and not end_to_end),
              # Settings of `run` that only the Python API can pass here: they would make the figures
              # score something else than the output against the truth, silently.
              (f"{spell('side_by_side')} writes panels beside the output, and evaluation scores the output alone",
               options.side_by_side),
              (f"{spell('start')} and {spell('end')} cut a clip, and evaluation chooses the frames it scores",
               options.start is not None or options.end is not None),
              (f"{spell('pose')} none takes the input for pose maps, and evaluation hands run a video of the target "
               "to detect the pose on", options.pose == PoseSource.NONE)]
    refusal = next((what for what, ignored in unused if ignored), None)
    if refusal is not None:
        raise UsageError(f"{refusal}; drop it")
    if material.seed is not None:
        _check_seed(material.seed)
    if material.size is not None:
        _video_size(material.size)
    for name in ("video", "data"):
        path = getattr(material, name)
        if path is not None and not isinstance(path, PairedFolder):
            file_path(path, name)
    if material.data is None or isinstance(material.data, PairedFolder):
        return material
    folder = PairedFolder(material.data, scoring=True)
    _check_pairs(folder)
    return dataclasses.replace(material, data=folder)


def _check_pairs(folder) -> None:
    """Refuse a `PairedFolder` of fewer pairs to score than scoring needs (whatever --frames asks
    for: what the folder holds is scored)."""
    if len(folder.evaluated) < MIN_SCORED_FRAMES:
        raise UsageError(f"{scored_folder(folder)}: one pair, and evaluation needs at least {MIN_SCORED_FRAMES} "
                         "(flicker compares consecutive frames); add pairs")


def _check_material_for(model, material: Material) -> None:
    """Refuse what `model` cannot be scored on (`check_material` has refused what no model can)."""
    if material.frames is not None:
        _check_frames(model, material.frames)
    # The dances and a target video's tail are pose maps paired with the target: material for pose
    # models only, end to end or model alone (an RGB model's figures there would mean nothing).
    if material.data is None and model.input_kind != "pose":
        raise UsageError(f"{model.name} translates {model.input_kind} frames, and the synthetic dances and a target "
                         "video's held-out tail are pose material; score it on a paired folder with --data DIR")
    if material.data is None and material.video is None and not material.synthetic and _train_seeds(model) is None:
        # --video only for a model made by `vidtrans train VIDEO`: others would be refused there.
        video = model.card.training.get("video")
        what = f"give --video {video} (the target video it was trained on, whose held-out tail is scored), " \
            "--data DIR, or --synthetic" if video else "give --data DIR (pairs it did not train on) or --synthetic"
        raise UsageError(f"{model.name} was not trained on vidtrans' synthetic dances: {what}")


# --- material --------------------------------------------------------------------------------


def max_frames(model) -> int:
    """The most frames evaluation scores `model` on: FRAME_COPIES copies of each, at the model's
    size, in EVAL_MEMORY."""
    height, width = model.native_size
    return max(MIN_SCORED_FRAMES, EVAL_MEMORY // (FRAME_COPIES * height * width * 3))


def _check_enough_frames(frames: int) -> None:
    if not is_int(frames):
        raise UsageError(f"{spell('frames')} must be a whole number, {MIN_SCORED_FRAMES} or more, got {shown(frames)}")
    if frames < MIN_SCORED_FRAMES:
        raise UsageError(f"{spell('frames')} {shown(frames)}: evaluation needs at least {MIN_SCORED_FRAMES} frames "
                         "(flicker compares consecutive frames)")


def _check_frames(model, frames: int) -> None:
    _check_enough_frames(frames)
    limit = max_frames(model)
    if frames > limit:
        height, width = model.native_size
        raise UsageError(f"{spell('frames')} {shown(frames)}: evaluation holds every frame in memory ({FRAME_COPIES} "
                         f"copies at the model's {width}x{height}), and at most {limit} fit in "
                         f"{EVAL_MEMORY / 2**30:g} GiB; give {spell('frames')} {limit} or fewer")


def _default_dance_frames(model) -> int:
    """DANCE_FRAMES, or as many as fit in memory at the size of `model` (a 1024 px one holds 227),
    with a warning: cut short as a tail or a folder too long is, not refused as a --frames given."""
    limit = max_frames(model)
    if limit >= DANCE_FRAMES:
        return DANCE_FRAMES
    height, width = model.native_size
    log.warning("the held-out dance's %d frames (the default) do not all fit in memory at the model's %dx%d; "
                "scoring its first %d", DANCE_FRAMES, width, height, limit)
    return limit


def _warn_if_fewer(source: str | os.PathLike, asked: int | None, available: int, what: str) -> None:
    """One warning when the material holds fewer frames than --frames asked for: those are scored,
    and the figures' frame count alone would not tell that the request was cut short."""
    if asked is not None and available < asked:
        log.warning("%s: %s %d asked for, but it has only %d %s; scoring those %d", source, spell("frames"), asked,
                    available, what, available)


def _seed(model, seed: int | None) -> int:
    """`seed` (default DEFAULT_EVAL_SEED), refused when the model trained on that dance."""
    what = f"{spell('seed')} {shown(seed)} was" if seed is not None else \
        f"the default dance, {spell('seed')} {DEFAULT_EVAL_SEED}, was"
    seed = DEFAULT_EVAL_SEED if seed is None else seed
    _check_seed(seed)
    train_seeds = _train_seeds(model)
    if train_seeds is not None and train_seeds[0] <= seed < train_seeds[1]:
        first, stop = train_seeds
        # A card's range may take in the default too (training dances are a setting of the API).
        held_out = DEFAULT_EVAL_SEED if not first <= DEFAULT_EVAL_SEED < stop else stop
        raise UsageError(f"{what} used in training (seeds {first}..{stop - 1}); pick a held-out seed such as "
                         f"{held_out}")
    return seed


def _train_seeds(model) -> tuple[int, int] | None:
    """The synthetic dances [first, stop) `model` trained on, as its card records them; None for a
    model not trained on them; VidtransError for a damaged record."""
    seeds = model.card.training.get("train_seeds")
    if seeds is None:
        return None
    if not (isinstance(seeds, (list, tuple)) and len(seeds) == 2 and all(is_int(s) for s in seeds)
            and 0 <= seeds[0] <= seeds[1]):
        raise VidtransError(f"{model.name}'s card: its record of the training dances ({shown(seeds)}) is not two seeds "
                            "(the first, and the one past the last); fix the model card")
    return seeds[0], seeds[1]


def _check_seed(seed: int) -> None:
    if not is_int(seed) or seed < 0:
        raise UsageError(f"{spell('seed')} must be a whole number, 0 or more, got {shown(seed)}; e.g. "
                         f"{DEFAULT_EVAL_SEED}")


def _video_size(size: tuple[int, int] | None) -> tuple[int, int]:
    size = DANCE_VIDEO_SIZE if size is None else tuple(size) if isinstance(size, (tuple, list)) else (size,)
    # Even: H.264's 4:2:0 pads an odd side by a pixel, which would shift the truth against the video.
    if len(size) != 2 or not all(is_int(v) and 16 <= v <= 8192 and v % 2 == 0 for v in size):
        raise UsageError(f"{spell('size')} {plain(' '.join(map(str, size)))}: the dance video's WIDTH HEIGHT, even "
                         "numbers from 16 to 8192, e.g. 512 512")
    return size


def dance_truth(model, seed: int, frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The held-out dance `seed` in a video of `size` (width, height): its keypoints there, and
    the truth at the model's size (keypoints, frames): the same poses mapped as `run` maps the
    video into the model's frame when normalization leaves a pose where it is."""
    from vidtrans.pose.normalize import fit_to_frame
    from vidtrans.pose.render import PoseStyle
    from vidtrans.train.synth import TARGET_LOOK, dance_keypoints, render_person

    (width, height), (model_height, model_width) = size, model.native_size
    # Whole-body models see the face and hands: model-only scoring draws them from the renderer's points.
    whole_body = PoseStyle.for_card(model.card).whole_body
    track = dance_keypoints(seed, frames, height, width, TARGET_LOOK, whole_body=whole_body)
    # Not the dance made for the model's frame: the generator's poses scale with the frame (a pose
    # in 512 px is twice one in 256), which puts them a quarter pixel off the video's poses seen at
    # 256 px (pixel centres at whole numbers: x256 = (x512 + 0.5) / 2 - 0.5).
    keypoints = fit_to_frame((height, width), (model_height, model_width))(track)
    truth = np.stack([render_person(kp, model_height, model_width, TARGET_LOOK) for kp in keypoints])
    return track, keypoints, truth


def _pose_maps(model, keypoints: np.ndarray) -> np.ndarray:
    from vidtrans.pose.render import PoseStyle, render_pose

    height, width = model.native_size
    style = PoseStyle.for_card(model.card)
    return np.stack([render_pose(kp, height, width, style) for kp in keypoints])


def synthetic_ground_truth(model, seed: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(pose maps, true images) for `frames` frames of the held-out dance `seed`, at the model's
    size: the model-only material, pose maps from the renderer's exact keypoints."""
    _check_frames(model, frames)
    height, width = model.native_size
    _, keypoints, truth = dance_truth(model, _seed(model, seed), frames, (width, height))
    return _pose_maps(model, keypoints), truth


def scored_folder(folder) -> Path:
    """The folder whose pairs `folder` (a `PairedFolder`) gives to be scored: its val/ (or test/)
    split where it has one, else itself."""
    return folder.root if folder.held_out_split is None else folder.held_out_split


def held_out_in_training(model, folder) -> list[tuple[Path, Path | None]] | None:
    """The pairs of `folder` (a `PairedFolder`) that `model` held out when it was trained on this
    very folder (`vidtrans train --data` on a folder without val/ trains on about nine in ten pairs
    and records the names of the others in the card), where there are enough to score; None where
    it was not trained on it (a warning where too few were held out: every pair is scored then)."""
    from vidtrans.train.data import data_description

    training = model.card.training
    names = training.get("held_out_pairs")
    if (folder.held_out_split is not None or not isinstance(names, list)
            or training.get("data") != data_description(None, folder.root, False)):
        return None
    held = folder.named(name for name in names if isinstance(name, str))
    if not held:  # another folder of the same name
        return None
    if len(held) < MIN_SCORED_FRAMES:
        log.warning("%s: %s was trained on this folder and held %d of its pairs out, fewer than the %d scoring needs, "
                    "so every pair is scored, most of them pairs it trained on; score it on pairs it did not train on",
                    folder.root, model.name, len(held), MIN_SCORED_FRAMES)
        return None
    return held


def folder_ground_truth(model, folder, frames: int | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """The first `frames` (default: every) pairs of a paired folder (AB images, or A/ and B/; its
    path, or the `PairedFolder` read from it), in file-name order, at the model's size, B to A for a
    model trained so: those of its val/ (or test/) split where it has one (`PairedFolder.evaluated`),
    those `model` held out where it was trained on this folder (`held_out_in_training`; the third
    value says so)."""
    from vidtrans.train.data import PairedFolder

    # The folder read before the model was known loads its pairs at the model's size all the same.
    source = copy.copy(folder) if isinstance(folder, PairedFolder) else PairedFolder(folder, scoring=True)
    source.size, folder = model.native_size, scored_folder(source)  # (height, width): a model need not be square
    # And as it was trained: `vidtrans train --direction BtoA` (pix2pix's facades) records it.
    source.swap = model.card.training.get("direction") == Direction.B_TO_A.value
    _check_pairs(source)
    held_out = held_out_in_training(model, source)
    if held_out is None and source.held_out_split is None and (source.root / "train").is_dir():
        # PairedFolder reads train/ as the folder's pairs then: in pix2pix's layout, the training pairs.
        log.warning("%s: holds train/ and no val/ or test/, so its pairs scored are train/'s, the ones a model is "
                    "trained on in pix2pix's layout, which flatter it; give a folder of pairs it did not train on",
                    source.root)
    pairs = held_out or source.evaluated
    available = len(pairs)
    if frames is not None:
        _check_frames(model, frames)
    elif available > max_frames(model):
        # Every pair was asked for: the figures would not say that they score part of them.
        frames = max_frames(model)
        log.warning("%s: has %d pairs, more than the %d evaluation holds in memory at the model's size; scoring "
                    "the first %d", folder, available, frames, frames)
    _warn_if_fewer(folder, frames, available, "pairs")
    pairs = source.load(pairs[:frames])
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs]), held_out is not None


def dance_held_out(model, seed: int, frames: int, video: Path, size: tuple[int, int] = DANCE_VIDEO_SIZE,
                   progress: Progress | None = None) -> HeldOut:
    """The held-out dance `seed` written to `video` (H.264, `size` (width, height), DANCE_FPS fps),
    with its truth at the model's size."""
    from vidtrans.train.synth import TARGET_LOOK, render_person

    _check_frames(model, frames)
    width, height = size = _video_size(size)
    track, keypoints, truth = dance_truth(model, _seed(model, seed), frames, size)
    with VideoWriter(video, width, height, Fraction(1, DANCE_FPS), DANCE_FPS, DANCE_VIDEO_ENCODE) as writer:
        for i, pose in enumerate(track):
            writer.write(render_person(pose, height, width, TARGET_LOOK), i)
            if progress:
                progress(i + 1, frames, "writing the dance video")
    return HeldOut(video, None, None, truth, keypoints, size)


def video_held_out(model, video: str | os.PathLike, frames: int | None = None,
                   progress: Progress | None = None) -> HeldOut:
    """The held-out tail of the target video `model` was trained on (its first `frames`, default
    all, at most `max_frames(model)`), with the truth as training saw its frames: the card's square
    crop at the model's size, and the keypoints detected and filtered as for training, in that crop."""
    from vidtrans.pose.render import PoseStyle
    from vidtrans.pose.smoothing import smooth_track
    from vidtrans.pose.track import detect_keypoints
    from vidtrans.train.data import crop_fits, crop_square, keypoints_in_crop, recorded_square, recorded_tail

    video, training = Path(video), model.card.training
    if any(training.get(key) is None for key in ("video", "crop", "held_out")):
        if str(training.get("data", "")).startswith("target video"):
            raise VidtransError(f"{model.name}'s card does not say which frames of its target video were held out "
                                "(trained by an older vidtrans, or on too few frames); retrain it to score it on them")
        # Not the card's description of its data: it can run to a paragraph.
        instead = "drop --video to score it on a held-out synthetic dance" if training.get("train_seeds") else \
            "score it on pairs it did not train on with --data DIR"
        raise UsageError(f"{model.name} was not trained from a video, and --video scores a model made by "
                         f"vidtrans train VIDEO on that video; {instead}")
    # The input cannot be read: the work fails (exit 1), as `run` and `live` fail on theirs.
    what = not_a_video_file(video)
    if what is not None:
        raise VidtransError(f"{shown_path(video)}: {what}; pass the video {model.name} was trained on, "
                            f"{shown_path(str(training['video']))}")
    first, name = recorded_tail(training, model.name)
    crop, fill = recorded_square(training, model.name)  # fill: what training saw past the frame's edges
    # The video's contents decide (a renamed copy is the same video); cards of older vidtrans have
    # only its name.
    identity = training.get("video_identity")
    if identity is not None and file_identity(video) != identity or identity is None and video.name != name:
        other = f"another {video.name} (the files differ)" if video.name == name else shown_path(video.name)
        raise UsageError(f"{model.name} was trained on {shown_path(name)}, not {other}; pass that video "
                         "(its end was held out for evaluation)")
    size = model.native_size[0]
    start, end, truth = _held_out_start(model, video, first), None, []
    wanted = max_frames(model) if frames is None else frames
    with VideoReader(video, start=start) as reader:
        info = reader.info
        if not crop_fits(crop, info.width, info.height):
            raise VidtransError(f"{video}: {info.size_text}, which the square {model.name} was trained on "
                                f"({shown(list(crop))}: left, top, side) does not fit; pass the video it was "
                                "trained on")
        for frame in reader:
            if len(truth) == wanted:
                end = frame.time  # the first frame not scored
                if frames is None:
                    # The whole tail was asked for: the figures would not say that they score part of it.
                    log.warning("%s: its held-out tail has more than %d frames, the most evaluation holds in memory "
                                "at the model's size; scoring its first %d", video, wanted, wanted)
                break
            truth.append(crop_square(frame.image, crop, size, fill))
    if not truth:
        # The tail's frames are there (`_held_out_start` found its first), but not one decodes: a
        # longer video, which the refusal below advises, would not help.
        raise VidtransError(f"{video}: not one frame of its held-out tail (from {start:g} s) could be decoded, the "
                            "file is damaged there; score the model on a paired folder (--data DIR), or retrain it on "
                            "an undamaged copy of the video")
    if len(truth) < MIN_SCORED_FRAMES:
        raise VidtransError(f"{video}: its held-out tail has {len(truth)} frame(s), and evaluation needs at least "
                            f"{MIN_SCORED_FRAMES}; train on a longer video")
    _warn_if_fewer(video, frames, len(truth), "frames in its held-out tail")
    whole_body = PoseStyle.for_card(model.card).whole_body  # as training detected them
    keypoints = keypoints_in_crop(smooth_track(detect_keypoints(video, start, end, progress, whole_body=whole_body)),
                                  crop, size)
    if len(keypoints) != len(truth):
        raise VidtransError(f"{video}: decoded {len(truth)} frames but detected poses in {len(keypoints)}; "
                            "the file may be damaged")
    if not (keypoints[..., 2] > 0).any():
        # Model only, it would be given blank pose maps throughout, and its figures would score how
        # it paints the empty scene (a flicker ratio of 0 reading as steady); end to end, the same
        # refusal as `end_to_end_scores`', before run's passes rather than after.
        raise _nobody_in_tail(video, "the pose detector", len(truth), "the model would be shown no pose")
    return HeldOut(video, start, end, np.stack(truth), keypoints)


def _nobody_in_tail(video: Path, finder: str, frames: int, so: str) -> VidtransError:
    """The refusal of a held-out tail in none of whose `frames` frames `finder` found a person, `so`
    that nothing of the model is scored."""
    return VidtransError(f"{video}: {finder} found no person in any of the {frames} frames of its held-out tail, so "
                         f"{so} and there is nothing of the model to score; the person must be in view in "
                         "the video's last tenth: retrain on a video where they stay in view to its end, or score "
                         "the model on a paired folder (--data DIR)")


def _held_out_start(model, video: Path, first: int) -> float:
    """Where the held-out tail of `video`, from its frame number `first`, starts, in seconds from
    the clip's start. The card's frame number says: its `from_time` is in the file's own timestamps
    in cards written before times counted from the clip's start (10001.4 s for a broadcast recording
    starting at 10000 s)."""
    with VideoReader(video) as reader:
        start = reader.frame_time(first)
        if start is None:
            total = reader.span().total
            raise VidtransError(f"{video}: has {total} frames, and {model.name} held out its frames from number "
                                f"{shown(first)} on; pass the video it was trained on")
    return start


# --- scoring ---------------------------------------------------------------------------------


def _batches(frames: np.ndarray, batch_size: int):
    for start in range(0, len(frames), batch_size):
        span = range(start, min(start + batch_size, len(frames)))
        yield Batch(frames=frames[span.start:span.stop], pts=list(span), indices=list(span))


def _in_model_colours(model, truth: np.ndarray) -> np.ndarray:
    """`truth` as `model` is trained to make it: for a one-channel model (output_nc 1) in grey,
    as pix2pix makes its B image (PIL's "L"; here after resizing, within a level of pix2pix's
    order), in three channels as its output comes; against colour, a model making exactly that
    grey would score as a poor one. Other models' truth as it is."""
    if model.card.output_nc != 1:
        return truth
    from PIL import Image

    return np.stack([np.repeat(np.asarray(Image.fromarray(frame).convert("L"))[..., None], 3, axis=-1)
                     for frame in truth])


def model_only_scores(model, inputs: np.ndarray, truth: np.ndarray, options: RunOptions,
                      stills: bool = False) -> dict[str, Any]:
    """Translate `inputs` through the run pipeline's translation and smoothing stages and score
    the result against `truth` (full frame). `stills`: the inputs are unrelated pictures (a paired
    folder's pairs), which a temporal model translates each as a clip of its own, from its first
    frame's image, not as frames following one another (its previous output would be another pair's)."""
    _check_frames(model, len(inputs))
    truth = _in_model_colours(model, truth)
    smoothing, smoothing_strength = smoothing_for(model, options.smoothing, options.smoothing_strength)

    def translated(clip: np.ndarray) -> np.ndarray:
        stages: list[Any] = [TranslateStage.for_model(model)]
        if smoothing != "none":
            stages += smoothing_stages(Smoother(smoothing, smoothing_strength))
        return np.concatenate([batch.output for batch in run_stages(_batches(clip, options.batch_size), stages)])

    clips = np.split(inputs, len(inputs)) if stills and model.card.temporal else [inputs]
    output = np.concatenate([translated(clip) for clip in clips])
    return {
        "ssim": rounded(ssim(output, truth), 4),
        "psnr": rounded(psnr(output, truth), 2),
        "flicker_ratio": rounded(relative_flicker(flicker(output), flicker(truth)), 4),
        "frames": int(len(output)),
        "smoothing": smoothing,
    }


def end_to_end_scores(model, held_out: HeldOut, folder: Path, options: RunOptions,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Run `held_out` through `translate_video` with `options` (outputs written in `folder`) and
    score the output against the truth at the model's size."""
    smoothing, _ = smoothing_for(model, options.smoothing, options.smoothing_strength)
    output, summary = _through_run(model, held_out, folder / "output.mp4", options, progress)
    if summary.frames_without_person == len(output):
        # Then the output is the target's empty scene throughout: its figures would score no
        # translation at all (a flicker ratio of 0 reads as perfectly steady), not the model.
        if held_out.dance_size is not None:
            raise VidtransError(f"vidtrans run found no person in any of the {len(output)} frames of the dance video "
                                f"({'x'.join(map(str, held_out.dance_size))}), so its output is the target's empty "
                                "scene throughout and there is nothing of the model to score; give a larger --size")
        raise _nobody_in_tail(held_out.video, "vidtrans run", len(output),
                              "its output is the target's empty scene throughout")
    # Smoothing the unsmoothed output afterwards would not give run's frames: run smooths before the
    # lossy encode, guided by the pose maps. So the flicker without smoothing takes a run of its own.
    if smoothing == "none":
        unsmoothed = output
    else:
        unsmoothed, _ = _through_run(model, held_out, folder / "unsmoothed.mp4",
                                     options.replace(smoothing=Smoothing.NONE, smoothing_strength=None), progress,
                                     " (no smoothing)")
    truth, keypoints = _in_model_colours(model, held_out.truth), held_out.keypoints
    # Run's encode changes every frame a little, and differently each time: a perfect output of the
    # dance flickers 1.22x as much as the truth itself (crf 18), so the output's flicker is compared
    # with the truth's after the same encode.
    encoded_truth = _through_encode(truth, options.encode, probe(held_out.video).fps, folder / "truth.mp4")
    reference_flicker = flicker(encoded_truth)
    frame = truth.shape[1:3]
    error, missed = pose_error(_detected(output, progress, "reading poses on the output"), keypoints, *frame)
    reference_error, reference_missed = pose_error(_detected(truth, progress, "reading poses on the truth"), keypoints,
                                                   *frame)
    return {
        "frames": int(len(truth)),
        "smoothing": smoothing,
        "pose": summary.pose,
        "frames_without_person": summary.frames_without_person,
        **region_ssim(output, truth, keypoints),
        "pose_error_px": rounded(error, 2),
        "pose_missed": rounded(missed, 4),
        "detector_pose_error_px": rounded(reference_error, 2),
        "detector_pose_missed": rounded(reference_missed, 4),
        "flicker_ratio": rounded(relative_flicker(flicker(output), reference_flicker), 4),
        "flicker_ratio_unsmoothed": rounded(relative_flicker(flicker(unsmoothed), reference_flicker), 4),
        "ssim": rounded(ssim(output, truth), 4),
        "psnr": rounded(psnr(output, truth), 2),
    }


def _through_run(model, held_out: HeldOut, dst: Path, options: RunOptions, progress: Progress | None,
                 label: str = ""):
    """`held_out` through `translate_video` into `dst`: (the output's frames at the model's size, its summary)."""
    step = None if progress is None else (lambda done, total, what: progress(done, total, what + label))
    summary = translate_video(held_out.video, dst, model, options.replace(start=held_out.start, end=held_out.end),
                              progress=step)
    with VideoReader(dst) as reader:
        output = [_at_size(frame.image, *model.native_size) for frame in reader]
    dst.unlink()
    if len(output) != len(held_out.truth):
        raise VidtransError(f"{held_out.video}: the output has {len(output)} frames for {len(held_out.truth)} of "
                            "truth; the file may be damaged")
    return np.stack(output), summary


def _through_encode(frames: np.ndarray, encode: EncodeOptions, fps: float, dst: Path) -> np.ndarray:
    """`frames` as they come back from a video of `fps` frames/s written with `encode`."""
    height, width = frames.shape[1:3]
    rate = Fraction(fps or DANCE_FPS).limit_denominator(1001)
    with VideoWriter(dst, width, height, 1 / rate, float(rate), encode) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, i)
    with VideoReader(dst) as reader:
        decoded = np.stack([_at_size(frame.image, height, width) for frame in reader])
    dst.unlink()
    return decoded


def _at_size(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A frame read back from a video written at height x width, at that size: a side H.264's 4:2:0
    could not store odd comes back padded by a replicated pixel at the right or bottom, which is
    cropped off (scaling the frame into the size would shift and blur every pixel of it)."""
    if image.shape[0] - height in (0, 1) and image.shape[1] - width in (0, 1):
        return image[:height, :width]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _detected(frames: np.ndarray, progress: Progress | None, what: str) -> np.ndarray:
    """Body keypoints (N, 18, 3) the detector `run` uses reads on `frames`, in tracking mode, unfiltered."""
    from vidtrans.pose.stages import KeypointStage

    found = []
    for batch in run_stages(_batches(frames, 8), [KeypointStage()]):
        found.append(batch.keypoints)
        if progress:
            progress(sum(map(len, found)), len(frames), what)
    return np.concatenate(found)


def pose_error(found: np.ndarray, true: np.ndarray, height: int, width: int) -> tuple[float | None, float | None]:
    """(mean distance in pixels between body keypoints found and true ones, over those the truth
    shows in its height x width frame and found; share of those not found). None where there is
    nothing to average. Whole-body poses are compared on their body: face and hands are scored as
    crops."""
    found, true = with_parts(found, whole_body=False), with_parts(true, whole_body=False)
    # The detector reports no point past the frame's edge (pixel centres at whole numbers), so a
    # true one there, of a dancer the frame cuts, could not be found by a perfect output either.
    x, y = true[..., 0], true[..., 1]
    visible = (true[..., 2] > 0) & (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    hit = visible & (found[..., 2] > 0)
    if not visible.any():
        return None, None
    distance = np.hypot(*np.moveaxis(found[..., :2] - true[..., :2], -1, 0))
    return (float(distance[hit].mean()) if hit.any() else None), float(1 - hit.sum() / visible.sum())


def region_ssim(output: np.ndarray, truth: np.ndarray, keypoints: np.ndarray) -> dict[str, float | None]:
    """SSIM of the person's box, the face square and the hand squares (placed by the body of the
    true `keypoints`), each the mean over every such crop of the clip at least MIN_CROP pixels wide
    and high; None when there is none."""
    height, width = truth.shape[1:3]
    crops: dict[str, list[tuple[int, tuple[int, int, int, int]]]] = {"person": [], "face": [], "hands": []}
    # By the body alone: a whole-body pose's finger points widen the person's box, and the same
    # output would score differently against a whole-body model's truth and a body-only one's.
    for i, kp in enumerate(with_parts(keypoints, whole_body=False)):
        crops["person"] += [(i, box) for box in [person_box(kp, height, width)] if box is not None]
        crops["face"] += [(i, box) for box in [face_box(kp, height, width)] if box is not None]
        crops["hands"] += [(i, box) for box in hand_boxes(kp, height, width)]
    scores = {}
    for name, boxes in crops.items():
        values = [ssim(output[i, y0:y1, x0:x1], truth[i, y0:y1, x0:x1]) for i, (x0, y0, x1, y1) in boxes
                  if min(x1 - x0, y1 - y0) >= MIN_CROP]
        scores[f"{name}_ssim"] = rounded(np.mean(values), 4) if values else None
    return scores
