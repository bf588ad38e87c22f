"""Everything `vidtrans train` decides before the first iteration: the checked settings, the data
source and the model card it will write.

    from vidtrans.train.setup import prepare_training
    source, config, card = prepare_training("checkpoints/alice", TrainOptions(iterations=500), target="alice.mp4")
    Trainer(source, "checkpoints/alice", config, card).fit()

Everything that can be refused (options, the output folder, a resume that does not match) is
refused before pose detection or data loading, which can take minutes.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Collection

from vidtrans.errors import UsageError, VidtransError, count
from vidtrans.models.checkpoint import ModelCard
from vidtrans.models.networks import GENERATORS, parse_generator
from vidtrans.options import (Direction, InputKind, TrainOptions, TrainPose, plain, shown, shown_path, spell,
                              spellings)
from vidtrans.pose.render import PoseStyle
from vidtrans.train.data import SYNTHETIC_DATA, data_description
from vidtrans.train.trainer import (RESUMED_OBJECTIVE, PairSource, TrainConfig, check_config, check_output,
                                    check_state_fits_card, check_world_size, describe_conflicts, largest_size,
                                    launched, read_train_state, resume_conflicts, sample_length, saved_settings,
                                    size_steps)
from vidtrans.video import file_identity

log = logging.getLogger(__name__)

# Settings a resumed run takes from its checkpoint unless given, and their defaults otherwise.
_NEW_RUN = {"architecture": TrainConfig.architecture, "ngf": TrainConfig.ngf, "ndf": TrainConfig.ndf, "size": 256,
            "d_scales": TrainConfig.d_scales, "face_d": TrainConfig.face_d, "temporal": TrainConfig.temporal}
# What --resume keeps besides the networks: the pose maps' keypoints, the objective and the samples
# drawn. A run resumed with others would be another model under its card's one record of them.
RESUMED_RECIPE = ("train_pose", *RESUMED_OBJECTIVE)
# What a resumed run keeps of its plan unless given: how long it runs (the learning rate decays over
# the second half of that), and how often it saves and scores.
RESUMED_SCHEDULE = ("iterations", "save_every", "validate_every")
# What a card notes of a paired folder only where it applies, as the run reads the folder: a resumed
# run's card must not keep the earlier record's (pairs added since hold one out; hidden files removed).
_DATA_NOTES = ("hidden_files_left_out", "validated_on", "held_out_pairs")


def prepare_training(output: str | os.PathLike, options: TrainOptions, *, target: str | os.PathLike | None = None,
                     data: str | os.PathLike | None = None, synthetic: bool = False,
                     progress: Callable[[int, int, str], None] | None = None,
                     given: Collection[str] | None = None) -> tuple[PairSource, TrainConfig, ModelCard]:
    """The data source, the trainer's configuration and the model card for training into `output`
    from exactly one of: a `target` video, a paired folder `data`, or `synthetic` data.

    progress: called during the target video's pose detection; given: the options the caller chose
    (the flags given on the command line), None: those that differ from TrainOptions' defaults. A
    resumed run takes the others of RESUMED_RECIPE from its checkpoint, and refuses chosen ones that
    differ, or another number of torchrun processes. Under torchrun, only rank 0 logs warnings.
    Messages name settings as the caller spells them (options.spell: the flags under `vidtrans train`).
    """
    from vidtrans.models.translator import resolve_device

    _warnings_from_rank_0_only()
    given_sources = sum(x is not None and x is not False for x in (target, data, synthetic or None))
    if given_sources != 1:
        resumed_on = _recorded_source(output) if options.resume and not given_sources else None
        if resumed_on is not None:
            raise UsageError(resumed_on)
        raise UsageError(f"give exactly one data source: a target video, {spell('data')} (a paired folder) or "
                         f"{spell('synthetic=True')}")
    if options.train_pose != TrainPose.EXACT and not synthetic:
        raise UsageError(f"{spell('train_pose')} {options.train_pose.value} is for "
                         "synthetic training only (a target video's pose maps are always drawn from detected "
                         "keypoints, a paired folder's are given); drop it")
    paired_only = [k for k, default in (("input_kind", InputKind.RGB), ("direction", Direction.A_TO_B))
                   if data is None and getattr(options, k) != default]
    if paired_only:
        k = paired_only[0]
        raise UsageError(f"{spell(k)} {getattr(options, k).value} is for a paired folder ({spell('data')}); a target "
                         "video's and synthetic pairs are always pose map -> frame; drop it")
    if options.whole_body and data is not None and options.input_kind == InputKind.RGB:
        raise UsageError(f"{spell('whole_body')} is about drawing pose maps, and a paired folder of "
                         f"RGB images has none; drop it (or pass {spell('input_kind')} pose)")
    check_output(output, options.resume, options.overwrite)
    state = read_train_state(output, mmap=True) if options.resume else None
    requested = {k: getattr(options, k) for k in _NEW_RUN}
    init_from = _generator_to_start_from(output, options)
    # Paired folders give no keypoints to find a face by.
    settings = {**_NEW_RUN, "face_d": _NEW_RUN["face_d"] and data is None}
    if options.resume or init_from:
        # A resumed run keeps every network setting; a fine-tuned one only the generator's (a
        # frame-by-frame generator can start a temporal model, not the other way round).
        saved = saved_settings(output, state) if options.resume else {
            "architecture": init_from.architecture, "ngf": init_from.ngf, "size": init_from.native_size[0],
            **({"temporal": True} if init_from.temporal else {})}
        settings.update(saved)
        conflicts = resume_conflicts(saved, {k: v for k, v in requested.items() if v is not None})
        if conflicts and init_from:
            raise UsageError(_init_from_conflicts(init_from, conflicts, options.init_from))
        if conflicts:
            raise UsageError(describe_conflicts(conflicts, advice="drop it or use"))
    if options.resume:
        given = _chosen(options, given)
        replanned = _replanned(output, options, state, given)
        options = _resumed_schedule(options, state, given)
        _check_resume(output, options, target, data, synthetic, state, given)
        options = _resumed_recipe(output, options, state, given)
    chosen = {k: settings[k] if v is None else v for k, v in requested.items()}
    if chosen["temporal"] and data is not None:
        raise UsageError(f"{spell('temporal')} trains on consecutive frames, which a paired folder "
                         f"({spell('data')}) does not have; train on a target video or {spell('synthetic=True')}")
    config = TrainConfig(iterations=options.iterations, batch_size=options.batch_size,
                         architecture=chosen["architecture"], ngf=chosen["ngf"], ndf=chosen["ndf"], lr=options.lr,
                         lambda_l1=options.lambda_l1, save_every=options.save_every,
                         validate_every=options.validate_every, seed=options.seed, d_scales=chosen["d_scales"],
                         lambda_feat=options.lambda_feat, face_d=chosen["face_d"],
                         lambda_face_gan=options.lambda_face_gan, lambda_face=options.lambda_face,
                         data_workers=options.data_workers, init_from=options.init_from,
                         temporal=chosen["temporal"])
    size = chosen["size"]
    check_config(config, size)
    style = _pose_style(output, options, init_from)
    if style.whole_body and options.train_pose == TrainPose.NOISY:
        raise UsageError(f"{spell('train_pose')} noisy models the body detector's error only; with "
                         f"{spell('whole_body')} use {spell('train_pose')} detected")
    _check_apart(output, target, data)
    device = resolve_device(options.device)
    kept = _kept_data(output, target, data) if options.resume else {}
    source, card = _source_and_card(config, size, style, options, target, data, progress, kept)
    if init_from:
        card.training["init_from"] = {"model": options.init_from, "description": init_from.description}
    if options.resume:  # what the run's earlier parts recorded (e.g. the model it started from) stays
        from vidtrans.models.checkpoint import read_card

        resumed = read_card(output)
        kept = {k: v for k, v in resumed.training.items() if k not in _DATA_NOTES}
        card.training = {**kept, **card.training}
        # Its latest score too, which saves before the resumed run's first score keep (as any save
        # between two scores does); not the half-precision figures, which only the final save has.
        if "validation" in resumed.metrics:
            card.metrics = {**card.metrics, "validation": resumed.metrics["validation"]}
        if replanned:  # said once nothing is refused
            log.warning("%s", replanned)
    if device.type == "cpu" and options.ngf is None and not (options.resume or init_from):
        _tell_about_width_on_cpu(config.ngf)  # the same: once nothing is refused
    return source, config, card


def _tell_about_enlarging(source, config: TrainConfig, fixed: bool) -> None:
    """A warning where the target video's training square (`source`: VideoPairs) holds fewer pixels
    than the training size, with a way out the user can take; a smaller size only where the
    networks are not `fixed` (a checkpoint's, fine-tuned)."""
    side = source.crop[2]
    if side >= source.size:
        return
    smaller = "" if fixed else _size_within(config, side)
    log.warning("%s: %s is enlarged to %s %d, so the model learns blurred frames; train from a larger video%s",
                source.video, source.square, spell("size"), source.size, smaller)


def _size_within(config: TrainConfig, side: int) -> str:
    """", or ..." naming the largest size of at most `side` pixels the architecture takes, or where
    it takes none, the largest another takes (one of its kind first: a smaller U-Net); "" for none."""
    if (size := largest_size(config, side)) is not None:
        return f", or at {spell('size')} {size}"
    kind = parse_generator(config.architecture)[0]
    others = [(parse_generator(name)[0] == kind, size, name) for name in GENERATORS
              if (size := largest_size(dataclasses.replace(config, architecture=name), side)) is not None]
    if not others:
        return ""
    _, size, name = max(others)
    return (f", or with {spell('architecture')} {name} {spell('size')} {size} ({config.architecture} takes no "
            f"{spell('size')} below {size_steps(config)[1]})")


# The generator width README recommends for training on a CPU, as the shipped pose2person was trained.
CPU_NGF = 16


def _tell_about_width_on_cpu(ngf: int) -> None:
    """A note where a new run trains on the CPU at the default generator width, which is meant for
    a GPU: the width given explicitly is the user's choice, and the default is not changed."""
    # Measured on a 2-core AMD EPYC (unet_256 at 256, a paired folder): 0.47 s an iteration at ngf 64,
    # 0.24 s at 16; the weights grow with the square of the width (unet_256: 218 MB against 14 MB,
    # train_state.pt 502 MB against 94 MB).
    log.warning("training on the CPU at %s %d, the default, which is meant for a GPU: at %s %d an iteration takes "
                "about half the time and the model is %d times smaller; pass %s %d for that", spell("ngf"), ngf,
                spell("ngf"), CPU_NGF, (ngf // CPU_NGF) ** 2, spell("ngf"), CPU_NGF)


def _recorded_source(output: str | os.PathLike) -> str | None:
    """For a resume given no data: the data the checkpoint in `output` was trained on, which its
    card records by name only (not where it is), and how to give it again; None where no card
    says."""
    from vidtrans.models.checkpoint import read_card

    try:
        recorded = read_card(output).training.get("data")
    except VidtransError:  # no checkpoint or an unusable one: the checks that follow say so
        return None
    recorded = str(recorded)
    video, folder = (recorded.removeprefix(kind) for kind in ("target video ", "paired folder "))
    from_cli = bool(spellings())  # a command is running: its flags, not Python's parameters
    if recorded == SYNTHETIC_DATA:
        what, again = "synthetic data", spell("synthetic=True")
    elif video != recorded:
        what, again = f"the target video {video}", f"PATH/{video}" if from_cli else f"target='PATH/{video}'"
    elif folder != recorded:
        what, again = f"the paired folder {folder}", f"{spell('data')} PATH/{folder}" if from_cli else \
            f"data='PATH/{folder}'"
    else:
        return None
    if from_cli:
        again = f"vidtrans train {again} -o {output} --resume"
    return (f"{output} was trained on {shown_path(what)}, and {spell('resume=True')} goes on training on the same "
            f"data: give it again, as in {again}")


def _warnings_from_rank_0_only() -> None:
    """Under torchrun every process checks the same options and reads the same data, so each would
    tell the same warnings: rank 0 tells them. Errors stay every process's own (one may fail alone)."""
    if launched()[0] > 0:
        logging.getLogger("vidtrans").setLevel(logging.ERROR)


def _check_apart(output: str | os.PathLike, target, data) -> None:
    """The checkpoint folder must not be, or lie inside, the paired folder: its files and sample
    grids would mix with the pairs (a `val/` output would even become the held-out split); nor may
    the paired folder be its samples/ folder, nor the target video one of the files a save writes
    (or, with --overwrite, deletes): an input replaced by an output. A target video as the output
    is a file, which `check_output` refuses."""
    from vidtrans.models.checkpoint import MODEL_FILE_NAMES, SAMPLE_GRIDS, SAMPLES_FOLDER

    # Resolved: a link to the data (or into it) is the data. realpath: a loop of links is no error here.
    out, grids = (Path(os.path.realpath(path)) for path in (output, Path(output) / SAMPLES_FOLDER))
    if data is not None and out.is_relative_to(Path(os.path.realpath(data))):
        raise UsageError(f"{output}: the checkpoint folder would be in the training data ({data}); write it to "
                         "another folder")
    if data is not None and Path(os.path.realpath(data)) == grids:
        raise UsageError(f"{data}: the training data is the folder where training writes its sample grids; move "
                         "the pairs to another folder, or write the checkpoint to another folder")
    if target is None:
        return
    video = Path(os.path.realpath(target))
    written = next((name for name in MODEL_FILE_NAMES if video == out / name), None)
    if written is None and video.parent == grids and fnmatch.fnmatch(video.name, SAMPLE_GRIDS):
        written = f"{SAMPLES_FOLDER}/{video.name}"
    if written is not None:
        raise UsageError(f"{target}: the target video is where training writes its checkpoint's {written}; move "
                         f"the video out of {output}, or write the checkpoint to another folder")


def _check_resume(output: str | os.PathLike, options: TrainOptions, target, data, synthetic: bool, state: dict,
                  chosen: Collection[str]) -> None:
    """A resumed run goes on learning what its checkpoint learnt, from its state of the same
    iteration, from the same data, for more iterations; anything else would silently make it
    another model under the old card's record."""
    from vidtrans.models.checkpoint import check_folder

    # Its weights are checked as loading checks them (header only), not first when the trainer loads
    # them: after the data is read, a target video's pose detection taking minutes.
    card = check_folder(Path(output))
    check_state_fits_card(output, state, card)
    check_world_size(output, card, launched()[1])
    done = state["iteration"]
    recorded, given = card.training.get("data"), data_description(target, data, synthetic)
    fix = (f"give that data to resume, or train on the new data into another folder (or drop {spell('resume=True')} "
           f"and pass {spell('overwrite=True')} to start over in {output})")
    identity, named = card.training.get("video_identity"), shown_path(str(recorded))
    # os.path: a name longer than the file system takes is no file, not an error here (VideoPairs names it).
    if identity is not None and target is not None and os.path.isfile(target):
        # The video's contents decide, not its name: a renamed copy is the same video.
        if file_identity(target) != identity:
            other = f"another {named} (the files differ)" if recorded == given else f"{named}, not {shown_path(given)}"
            raise UsageError(f"{output} was trained on {other}; {fix}")
    elif recorded is not None and recorded != given:
        raise UsageError(f"{output} was trained on {named}, not {shown_path(given)}; {fix}")
    if data is not None:
        given_settings = {"input_kind": options.input_kind.value, "direction": options.direction.value}
        recorded_settings = {"input_kind": card.input_kind, "direction": card.training.get("direction")}
        for setting, now in given_settings.items():
            was = recorded_settings[setting]
            if was is not None and was != now:
                raise UsageError(f"{output} was trained on {named} with {spell(setting)} {plain(was)}, not {now}; "
                                 f"{fix}")
    if options.iterations <= done:
        # Not given, it is the run's own plan (RESUMED_SCHEDULE), which the caller did not ask for.
        asked = (f"and {spell('iterations')} {plain(options.iterations)} asks for no more" if "iterations" in chosen
                 else f"the end of its planned {count(options.iterations, 'iteration')}")
        raise UsageError(f"{output} has already trained to iteration {plain(done)}, {asked}; pass "
                         f"{spell('iterations')} larger than {plain(done)} to train it further")


def _chosen(options: TrainOptions, given: Collection[str] | None) -> Collection[str]:
    """The options the caller chose (prepare_training's `given`); None: those off their defaults."""
    if given is not None:
        return given
    return [f.name for f in dataclasses.fields(TrainOptions) if getattr(options, f.name) != f.default]


def _resumed_schedule(options: TrainOptions, state: dict, given: Collection[str]) -> TrainOptions:
    """`options` with the checkpoint's RESUMED_SCHEDULE where the caller chose none: a run stopped
    at iteration 200 of 300 goes on to 300, with the learning rate it would have had."""
    planned = {k: state["config"][k] for k in RESUMED_SCHEDULE if k in state["config"]}
    return dataclasses.replace(options, **{k: v for k, v in planned.items() if k not in given})


def _replanned(output: str | os.PathLike, options: TrainOptions, state: dict, given: Collection[str]) -> str | None:
    """What a resumed run given a new `iterations` should be told: the learning rate's decay moves with it."""
    total = state["config"].get("iterations")
    if total is None or "iterations" not in given or options.iterations == total:
        return None
    share = state["config"].get("decay_from", 0.5)
    return (f"{output} was planned for {count(total, 'iteration')}; {spell('iterations')} "
            f"{options.iterations} moves the learning rate's linear decay to iterations "
            f"{round(share * options.iterations)}-{options.iterations} (it was {round(share * total)}-{total})")


def _resumed_recipe(output: str | os.PathLike, options: TrainOptions, state: dict,
                    given: Collection[str]) -> TrainOptions:
    """`options` with the checkpoint's RESUMED_RECIPE where the caller chose none (see
    prepare_training's `given`); UsageError for a chosen one that differs from it."""
    from vidtrans.models.checkpoint import read_card

    recorded = {k: state["config"][k] for k in RESUMED_OBJECTIVE if k in state["config"]}
    # Recorded by synthetic runs; the others train on exact (given, detected) keypoints only.
    train_pose = read_card(output).training.get("train_pose", TrainPose.EXACT)
    try:
        recorded["train_pose"] = TrainPose(train_pose)
    except ValueError:  # the card's, not a flag given
        raise VidtransError(f"{output}: the model card's training pose maps {shown(train_pose)} are not one of "
                            f"{', '.join(TrainPose)}; fix the model card") from None
    changed = [k for k in RESUMED_RECIPE if k in given and k in recorded and getattr(options, k) != recorded[k]]
    if changed:

        def settings(values: dict[str, Any]) -> str:
            *others, last = [f"{spell(k)} {plain(values[k])}" for k in changed]
            return f"{', '.join(others)} and {last}" if others else last

        asked = {k: getattr(options, k) for k in changed}
        raise UsageError(f"{output} was trained with {settings(recorded)}, which {spell('resume=True')} keeps; drop "
                         f"{settings(asked)}, or start a new stage from this model with {spell('init_from')} "
                         f"{output} and another output folder")
    return dataclasses.replace(options, **{k: v for k, v in recorded.items() if k not in given})


def _kept_data(output: str | os.PathLike, target, data) -> dict[str, Any]:
    """What a resumed run keeps of its checkpoint's data (`_source_and_card`'s `kept`): the square
    of a target video's frames, or the names of the pairs a paired folder held out."""
    if target is not None:
        return {"trained_on": _recorded_frames(output, target)}
    if data is not None:
        return _recorded_held_out(output)
    return {}


def _recorded_held_out(output: str | os.PathLike) -> dict[str, Any]:
    """What the card of the checkpoint in `output` says its paired folder's validation was scored
    on: the names of the pairs it held out (`held_out_pairs`, None where it names none: a val/
    folder was held out, one pair scored, or an older vidtrans made it) and `validated_on` ("training
    pairs" for one pair)."""
    from vidtrans.models.checkpoint import read_card

    training = read_card(output).training
    names = training.get("held_out_pairs")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise VidtransError(f"{output}: the model card's held-out pairs {json.dumps(names)[:60]} are not a list of "
                            "names; fix the model card")
    return {"held_out_pairs": names, "validated_on": training.get("validated_on")}


def _tell_about_held_out(data: Path, kept: dict[str, Any], source) -> None:
    """A warning where a resumed run's held-out pairs are not those its checkpoint was scored on
    (pairs added or removed, val/ taken away, an older vidtrans's split): its figures from here on
    are on other pairs, and some it held out may be trained on."""
    recorded = kept["held_out_pairs"]
    if not source.held_out_names and recorded is not None:
        log.warning("%s: its held-out pairs are now those of val/, not the %d the checkpoint was scored on, so the "
                    "held-out SSIM/PSNR from here on are on other pairs than its earlier figures", data, len(recorded))
        return
    if not source.held_out_names or kept["validated_on"] is not None:  # held out by val/; or one pair, now more
        return
    if recorded is None:
        log.warning("%s: the checkpoint's card names no pairs it held out of the folder (it was scored on val/, "
                    "or an older vidtrans held out every tenth pair by position), so some it held out may now be "
                    "trained on, and the held-out SSIM/PSNR from here on are on other pairs than its earlier "
                    "figures", data)
        return
    gone, new = set(recorded) - set(source.held_out_names), set(source.held_out_names) - set(recorded)
    if gone or new:
        log.warning("%s: its held-out pairs changed since the checkpoint was scored (%d of its %d gone, %d new, "
                    "e.g. %s), so the held-out SSIM/PSNR from here on are on other pairs than its earlier figures",
                    data, len(gone), len(recorded), len(new), sorted(gone or new)[0])


def _recorded_frames(output: str | os.PathLike, target):
    """The target video's frames the checkpoint in `output` was trained on, from its card (a `TrainedOn`):
    the square (and what fills it past their edges) and its held-out tail, so that a resumed run trains
    on the same frames (and the target's pose statistics are measured in them) and holds out the same
    tail, however they were chosen when the run began. The square chosen now, with a warning, for a card
    that does not record it."""
    from vidtrans.models.checkpoint import read_card
    from vidtrans.train.data import TrainedOn, recorded_square, recorded_tail

    training = read_card(output).training
    square, tail = recorded_square(training, str(output)), recorded_tail(training, str(output))
    if square is None:
        log.warning("%s: its card does not record the square of %s it was trained on (an older vidtrans made it), "
                    "so the resumed run trains on the square chosen now, which may frame the person differently",
                    output, Path(target).name)
    crop, fill = square or (None, TrainedOn.fill)
    return TrainedOn(crop, fill, None if tail is None else tail[0])


def _init_from_conflicts(card: ModelCard, conflicts: list[tuple[str, Any, Any]], name: str) -> str:
    """Why settings asked for cannot start from the generator `card` describes (`conflicts` as
    resume_conflicts gives them), and what to drop."""
    asked = {setting: value for setting, value, _ in conflicts}
    reasons = []
    if "temporal" in asked:
        reasons.append(f"{spell('init_from')} {name} is a temporal generator (it also sees its previous output), "
                       "which cannot start a frame-by-frame one: drop "
                       f"{spell('temporal=False')} (or start from a frame-by-frame model)")
    shape = [f"{spell(setting)} {plain(value)}" for setting, value in asked.items() if setting != "temporal"]
    if shape:
        size = card.native_size[0]
        reasons.append(f"{spell('init_from')} {name} starts from its generator as it is ({card.architecture}, "
                       f"{spell('ngf')} {card.ngf}, {spell('size')} {size}): drop {' and '.join(shape)}")
    return "; ".join(reasons)


def _generator_to_start_from(output: str | os.PathLike, options: TrainOptions) -> ModelCard | None:
    """The card of the model `init_from` names, checked to be one training can continue from (and
    not to be the output folder, whose checkpoint a new run replaces)."""
    from vidtrans.models.checkpoint import checkpoint_path, read_card

    if options.init_from is None:
        return None
    if options.resume:
        raise UsageError(f"{spell('init_from')} starts a new run from a model and {spell('resume=True')} continues "
                         "the one in the output folder; pass one of them")
    # Training cannot start from a pix2pix .pth file as it is, which the usual advice offers.
    path = checkpoint_path(options.init_from, fix=f"{spell('init_from')} takes a vidtrans checkpoint folder or a "
                           "model's name (a pix2pix .pth file: import it first with vidtrans import-pix2pix)")
    if Path(output).resolve() == path.resolve():
        raise UsageError(f"{path}: {spell('init_from')} and the output are the same folder, whose checkpoint a new "
                         f"run replaces; write the fine-tuned model to another folder")
    if not path.is_dir():
        raise VidtransError(f"{path}: {spell('init_from')} needs a vidtrans checkpoint folder; import a pix2pix "
                            "file first (vidtrans import-pix2pix)")
    card = read_card(path)
    if (card.input_nc, card.output_nc, card.norm) not in ((3, 3, TrainConfig.norm), (6, 3, TrainConfig.norm)):
        raise VidtransError(f"{path}: training continues only RGB-to-RGB generators (temporal ones: 6 -> 3) with "
                            f"{TrainConfig.norm} norm; this one has {card.input_nc} -> {card.output_nc} channels, "
                            f"{card.norm} norm")
    height, width = card.native_size
    if height != width:  # the network takes any shape; what changes is the size frames are scaled to
        log.warning("%s: its native size is %dx%d (width x height), and training makes square models: the "
                    "fine-tuned one's is %dx%d", path, width, height, height, height)
    return card


def _pose_style(output: str | os.PathLike, options: TrainOptions, init_from: ModelCard | None) -> PoseStyle:
    """How the run's pose maps are drawn: body only, or whole body (`options.whole_body`); a resumed
    run keeps its checkpoint's, a fine-tuned one defaults to its model's."""
    from vidtrans.models.checkpoint import read_card

    whole_body = options.whole_body
    if options.resume:
        saved = PoseStyle.for_card(read_card(output)).whole_body
        if whole_body is not None and whole_body != saved:
            raise UsageError(f"{output} holds a model trained on {'whole-body' if saved else 'body-only'} pose maps, "
                             f"which {spell('resume=True')} keeps; leave out {spell(f'whole_body={whole_body}')}")
        whole_body = saved
    elif whole_body is None:
        whole_body = init_from is not None and init_from.input_kind == "pose" and PoseStyle.for_card(init_from).whole_body
    return PoseStyle(version=2) if whole_body else PoseStyle()


def _source_and_card(config: TrainConfig, size: int, style: PoseStyle, options: TrainOptions, target, data,
                     progress, kept: dict[str, Any]) -> tuple[PairSource, ModelCard]:
    """The data source and the card describing it: the `target` video, the paired folder `data`, or
    (neither given) synthetic data; `kept`: what a resumed run keeps of its data (`_kept_data`), empty
    for a new run."""
    from vidtrans.train.data import PairedFolder, SyntheticPairs, TrainedOn, VideoPairs

    card = ModelCard(architecture=config.architecture, native_size=(size, size), input_kind="pose",
                     pose_style=style.to_dict(), normalization="sample")
    training: dict[str, Any]
    if target is None and data is None:
        source = SyntheticPairs(size=size, style=style, train_pose=options.train_pose)
        source.prepare(progress)
        card.target_pose_stats = source.target_pose_stats()
        card.description = "pose map -> our procedural target character (vidtrans.train.synth.TARGET_LOOK)"
        stats, video = source.stats_seeds, source.detected.video_size
        training = {"data": SYNTHETIC_DATA,
                    "train_seeds": [source.train_seeds.start, source.train_seeds.stop],
                    "validation_seed": source.validation_seed, "train_pose": source.train_pose.value,
                    "target_pose_stats": f"from keypoints MediaPipe found on training dances {stats.start}-"
                                         f"{stats.stop - 1} rendered at {video}x{video}, as run measures a video"}
        if source.train_pose == TrainPose.DETECTED:
            training["detected_poses"] = len(source.detected_seeds) * source.frames_per_dance
    elif data is not None:
        data = Path(data)
        rgb = options.input_kind == "rgb"
        source = PairedFolder(data, size=size, direction=options.direction.value, flip=rgb, progress=progress,
                              keep_held_out=kept.get("held_out_pairs") or ())
        card.input_kind = options.input_kind.value
        card.pose_style = None if rgb else style.to_dict()
        training = {"data": data_description(None, data, False), "pairs": len(source.pairs),
                    "direction": options.direction.value}
        if source.held_out_names:  # what a resumed run keeps held out, whatever pairs are added
            training["held_out_pairs"] = source.held_out_names
        if kept:
            _tell_about_held_out(data, kept, source)
        if source.hidden:
            training["hidden_files_left_out"] = len(source.hidden)
        if not source.validation_held_out:
            training["validated_on"] = "training pairs"
            log.warning("%s: one pair is too few to hold one out, so the SSIM/PSNR figures are on the training "
                        "pair; add pairs or a val/ folder for held-out figures", data)
    else:
        target = Path(target)
        source = VideoPairs(target, size=size, style=style, progress=progress,
                            sequence_length=sample_length(config), trained_on=kept.get("trained_on", TrainedOn()))
        if not options.resume:  # told when the run began; a resumed run cannot take another video
            _tell_about_enlarging(source, config, fixed=options.init_from is not None)
        card.target_pose_stats = source.target_pose_stats()
        card.description = f"pose map -> the person in {target.name}"
        # What `vidtrans eval --video` needs to rebuild the truth of the held-out tail.
        training = {"data": data_description(target, None, False), "frames": len(source.frames), "video": target.name,
                    "video_identity": file_identity(target), "crop": list(source.crop),
                    "frame_size": list(source.frame_size)}
        if source.padded:  # what `eval --video` fills the square with past the frame's edges, as training did
            training["crop_fill"] = list(source.fill)
        frame, time = source.held_out_from
        training["held_out"] = {"from_frame": frame, "from_time": time}
    card.training = training
    return source, card
