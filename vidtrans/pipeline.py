"""The streaming pipeline behind `run`, `batch` and `translate_video`.

    decode (thread) -> [pose maps (thread)] -> translate (thread)
        -> [flow ahead (pool, order kept) -> smooth (thread)] -> encode (caller)

Frames travel in batches through bounded queues, so memory does not grow with the clip's length.
Timestamps are carried from the decoder to the encoder untouched; audio is copied by the writer.

Pose models need the whole clip's keypoints before the first frame is drawn (the global pose
normalization fits the source dancer's height and ankle range to the target's, and the keypoint
filter looks ahead), so for them a first pass decodes and detects keypoints only (a few bytes per
frame; `vidtrans.pose.track`), and the second pass renders, translates and encodes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, TypeVar

import numpy as np

from vidtrans.atomic import OutputClaim, check_file_name, discard, publish_together, same_file, temp_path
from vidtrans.errors import UsageError, VidtransError
from vidtrans.metrics import FlickerMeter, relative_flicker
from vidtrans.pose.keypoints import has_person
from vidtrans.pose.normalize import check_normalize_off
from vidtrans.pose.track import is_pose_video, pose_stages_for, warn_unless_pose_video
from vidtrans.runner import (TRANSLATION_THREADS, Batch, FrameProgress, OnItsOwnThread, Parallel, Progress,
                             frame_batches, half_the_cores, run_stages)
from vidtrans.temporal import Smoother, smoothing_for
from vidtrans.options import (POSE_VIDEO_ENCODE, EncodeOptions, PoseSource, RunOptions, check_path_text, check_switch,
                              option_names, plain_number, refuse_misspelt, shown, spell, spell_setting)
from vidtrans.video import (SourceMedia, VideoInfo, VideoReader, VideoWriter, check_destination,
                            check_output_settings, probe)
from vidtrans.video.reader import check_input_name
from vidtrans.video.writer import check_output
from vidtrans.view import resized, side_by_side, side_by_side_size

OptionsT = TypeVar("OptionsT")

if TYPE_CHECKING:  # torch is imported by a model's first use, not by `vidtrans pose`
    from vidtrans.models.translator import RecurrentState


@functools.cache
def _translation_pool() -> ThreadPoolExecutor:
    # One pool for the whole process: PyTorch's first call on a new thread costs 20-50 ms, which
    # a folder of short clips would pay per clip, and concurrent clips (batch mode) share the
    # cores (or the GPU's batches in flight) anyway.
    return ThreadPoolExecutor(TRANSLATION_THREADS, thread_name_prefix="vidtrans-translate")


class TranslateStage:
    """Translates each batch's frames with the model. A temporal model's frames of one clip go
    through it in order, one at a time, each seeing the output before it (`RecurrentState`, kept
    here: one per clip, so clips sharing a model never see each other's frames); `state` goes on
    from where an earlier part of the clip left off (it is updated)."""

    def __init__(self, model, state: RecurrentState | None = None):
        self.model = model
        # Frames without a person show the target's empty scene rather than what the generator
        # makes of a blank pose map (its artefacts); models without a background keep their output.
        self.background = getattr(model, "background", None)
        self.state = None
        if getattr(model, "temporal", None):
            from vidtrans.models.translator import RecurrentState

            self.state = state if state is not None else RecurrentState()

    @classmethod
    def for_model(cls, model, state: RecurrentState | None = None):
        """The fastest arrangement for the model: two batches at once, order kept.

        On a CPU one translator with all the cores loses 20-50 % once decode and encode threads
        share them (each parallel region waits for its slowest thread); two keep up with the model
        alone (benchmarks/README.md). On a GPU two batches are in flight, each on its own CUDA stream
        (`Translator.translate_clip`), so the copies of one overlap the kernels of the other. A
        temporal model's frames each wait for the one before, so it gets one translator, on a
        thread of the clip's own (one CUDA stream for its state throughout), which a stop does not
        wait for.
        """
        if getattr(model, "temporal", None):
            return OnItsOwnThread(cls(model, state), "vidtrans-translate-clip")
        return Parallel(cls(model), TRANSLATION_THREADS, _translation_pool())

    def process(self, batch: Batch):
        seen = np.asarray(batch.seen)
        if self.state is None:
            batch.output = self.model.translate(seen)
        else:
            batch.output = self._translate_in_order(seen, batch.keypoints)
        if self.background is not None and batch.keypoints is not None:
            for i in np.flatnonzero(~has_person(batch.keypoints)):
                batch.output[i] = resized(self.background, *batch.output[i].shape[:2])
        yield batch

    def _translate_in_order(self, seen: np.ndarray, keypoints: np.ndarray | None) -> np.ndarray:
        """A temporal model's outputs. A frame without a person ends what the model carries: the
        next one starts as a clip's first frame does (from the background when the card says so,
        which is also what the frame without a person showed)."""
        if keypoints is None:
            return self.model.translate_clip(seen, self.state)
        outputs = []
        for frame, person in zip(seen, has_person(keypoints)):
            outputs.append(self.model.translate_clip(frame, self.state))
            if not person:
                self.state.reset()
        return np.stack(outputs)

    def flush(self):
        return ()


def smoothing_stages(smoother: Smoother, previous_guide: np.ndarray | None = None) -> list[Any]:
    """The stages that smooth the outputs: for flow, its guide-only half ahead on a pool, then
    the in-order rest (a few remaps and blends, not the flow: benchmarks/README.md).
    `previous_guide`: what the model saw for the frame before the first (a clip in parts; the
    smoother then goes on from that frame's output, `Smoother.go_on_from`)."""
    return ([FlowAheadStage(smoother, previous_guide)] if smoother.uses_flow else []) + [SmoothStage(smoother)]


# Batches whose flow is computed at once: enough to keep up with a GPU on a many-core host
# (one DIS flow is 1-2 ms at 256x256, more at 512), not so many that they crowd a small CPU.
_FLOW_WORKERS = half_the_cores(2, 8)


@functools.cache
def _flow_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_FLOW_WORKERS, thread_name_prefix="vidtrans-flow")


class FlowAheadStage:
    """Attaches each frame's `temporal.Motion` (flow between consecutive guides, and where it
    explains the input) to the batch, for whole batches at once on a pool, order kept.

    Each batch gets its own estimator primed with the guide just before it, which this stage
    keeps (in order, in its own thread), so batches need not wait for each other."""

    def __init__(self, smoother: Smoother, previous_guide: np.ndarray | None = None):
        self._previous_guide = previous_guide
        self._parallel = Parallel(_BatchMotion(smoother), _FLOW_WORKERS, _flow_pool())

    def process(self, batch: Batch):
        previous, self._previous_guide = self._previous_guide, batch.seen[-1]
        yield from self._parallel.process((batch, previous))

    def flush(self):
        return self._parallel.flush()

    def interrupt(self) -> None:
        self._parallel.interrupt()

    def close(self) -> None:
        self._parallel.close()


class _BatchMotion:
    """`FlowAheadStage`'s work on one (batch, guide before it)."""

    def __init__(self, smoother: Smoother):
        self.smoother = smoother

    def process(self, item: tuple[Batch, Any]):
        batch, previous_guide = item
        estimator = self.smoother.estimator()
        if previous_guide is not None:
            estimator(previous_guide, batch.output[0].shape)
        batch.motion = [estimator(guide, output.shape) for guide, output in zip(batch.seen, batch.output)]
        yield batch

    def flush(self):
        return ()


class SmoothStage:
    """Output smoothing in frame order: with the batch's `motion` when it was computed ahead (flow
    after a `FlowAheadStage`), otherwise all of it here (ema; flow on what the model saw)."""

    def __init__(self, smoother: Smoother):
        self.smoother = smoother

    def process(self, batch: Batch):
        guide = batch.seen
        for i in range(len(batch.output)):
            batch.output[i] = (self.smoother(batch.output[i], guide[i]) if batch.motion is None
                               else self.smoother.blend(batch.output[i], batch.motion[i]))
        yield batch

    def flush(self):
        return ()


class CompileWhenLong:
    """`--compile auto`: compiles the model once `after` frames have really been decoded.

    The clip's length is an estimate from the container, and cover art, odd timestamps or a
    wrong header can make a few frames look like hours; a short clip must never pay 15-20 s for
    a compilation. The first frames of a long clip go through the model uncompiled instead.
    """

    def __init__(self, model, after: int):
        self.model, self.after, self.seen = model, after, 0

    def process(self, batch: Batch):
        self.seen += len(batch.pts)
        if self.after is not None and self.seen >= self.after:
            self.model.compile()
            self.after = None
        yield batch

    def flush(self):
        return ()


def check_pose_settings(model, options: RunOptions) -> None:
    """Refuse a pose source other than auto, or normalization off, for a `model` that gets no pose
    maps (loaded, or batch's view of its card: its `name` and `input_kind`): settings that would do
    nothing, since the frames go to the model as they are."""
    if options.pose != PoseSource.AUTO and model.input_kind != "pose":
        does = "draws pose maps" if options.pose == PoseSource.DETECT else "takes the input as pose maps"
        raise UsageError(f"{spell_setting('pose', options.pose.value)} {does} for a pose model, and {model.name} "
                         f"translates {model.input_kind} frames; drop {spell('pose')} or use a pose model")
    check_normalize_off(options.normalize, model)


def no_person_shows(model) -> str:
    """What a translated frame without a person shows, for `Summary.no_person_warning`."""
    return ("the output shows the target's empty scene there" if getattr(model, "background", None) is not None
            else "the output there is the model's guess from an empty pose map")


def default_output_path(src: str | os.PathLike, model_name: str, suffix: str = ".mp4") -> Path:
    src = Path(src)
    return src.with_name(f"{src.stem}.{model_name}{suffix}")


@dataclass
class Summary:
    """What a run did. Figures that do not apply are None (null in JSON): a pose-map video
    (`render_pose_video`) has no model, precision, batch size, output smoothing or recurrence, and
    no flicker is measured; a single frame has no flicker (a change from frame to frame)."""

    input: str
    output: str
    model: str | None
    device: str
    precision: str | None
    backend: str | None = None  # what ran the model: torch or onnxruntime (None: no model)
    frames: int = 0
    seconds: float = 0.0
    batch_size: int | None = None
    smoothing: str | None = "none"  # the method applied, "auto" resolved: a plain string, however it was chosen
    # A temporal model: frames translated in order, one at a time, each seeing the output before it.
    recurrent: bool | None = False
    pose: str | None = None  # "detected", "keypoints file", "input is pose maps", or None for RGB models
    corrupt_frames: int = 0
    # Pose models with keypoints: frames in which no person was found (their output is the
    # model's background, when it has one). None when nobody looked (RGB models, pose-map input).
    frames_without_person: int | None = None
    flicker_input: float | None = None
    flicker_output: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def flicker_ratio(self) -> float | None:
        """Output flicker relative to the input's; None when the input does not change at all, or
        when flicker was not measured."""
        if self.flicker_input is None or self.flicker_output is None:
            return None
        return relative_flicker(self.flicker_output, self.flicker_input)

    def no_person_warning(self, consequence: str) -> str | None:
        """What to tell when nobody was found in most frames (None when a person was found in most):
        the run worked, but its output is probably not what was wanted; `consequence` says what the
        output shows there."""
        missing = self.frames_without_person
        if not missing or 2 * missing <= self.frames:
            return None
        if self.extra.get("input_is_pose_maps"):
            return f"no person found in {missing} of {self.frames} frames: the input already shows pose maps, which " \
                   "have no person to find; give it to vidtrans run as it is"
        return f"no person found in {missing} of {self.frames} frames; {consequence}; use a clip where the whole body " \
               "is visible"

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "extra"}
        ratio = self.flicker_ratio
        data.update(fps=round(self.fps, 3), flicker_ratio=None if ratio is None else round(ratio, 4), **self.extra)
        data["seconds"] = round(self.seconds, 3)
        return data


def translate_video(
    src: str | os.PathLike,
    dst: str | os.PathLike | None,
    model,
    options: RunOptions | None = None,
    *,
    keypoints: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    state: RecurrentState | None = None,
    **changes: Any,
) -> Summary:
    """Translate every frame of `src` with `model` (a `vidtrans.load_model` result, or a model name,
    checkpoint folder or .pth file, loaded with its defaults, in torch under `compile="on"`) into
    `dst` (default: INPUT_STEM.MODEL.mp4 beside `src`).

    `options` (a `RunOptions`; default settings when None), changed by any `changes` given by
    field name, e.g. `translate_video(src, dst, model, smoothing="flow", crf=20)`.
    Output frames carry the input's timestamps; audio and subtitle streams are copied. `dst` is
    written under a temporary name and appears only when complete; an existing `dst` is refused
    unless `overwrite`. `keypoints` (NPZ or OpenPose/DWPose JSON) replaces pose detection.
    A temporal model goes on from `state` when given (a `RecurrentState` that an earlier part of
    the clip, e.g. `end=t`, left behind; updated when the part is written, left as it was when it
    fails), else starts afresh; output smoothing goes on from that part's last frame too. The parts
    then make the whole clip's frames; a pose model's only when given the whole clip's `keypoints`
    (`render_pose_video(..., keypoints_out=)`): poses detected in a part differ from the whole's
    near its cuts and, through the trackers, after them. `progress(done, total, what)` is called as
    frames are done (`total`: the frames expected, or 0; each pass's last call, the detection's and the
    translation's, gives the frames it did). Returns a `Summary`.
    """
    # Arguments of the wrong type are refused before a model is loaded or a frame decoded.
    refuse_misspelt(translate_video, changes, option_names(RunOptions))
    overwrite = plain_number(overwrite)  # a NumPy bool, what comparing arrays gives, is the bool it stands for
    options = given_options(options, RunOptions(), "options").replace(**changes)
    src = _input_path(src, "src")
    dst = None if dst is None else _output_path(dst)
    keypoints = None if keypoints is None else _input_path(keypoints, "keypoints")
    _check_progress(progress)
    from vidtrans.models.translator import backend_for_compile, check_state

    check_state(state)
    if isinstance(model, (str, os.PathLike)):
        check_path_text(model, "model")
        check_before_loading(model, src, dst, overwrite, options.encode, keypoints)
    # A model named here is loaded as `run` loads it: in torch under compile on, which auto could
    # have put on onnxruntime, then refused for it with a backend this function does not take.
    model = loaded_model(model, backend_for_compile("auto", options.compile))
    smoothing, smoothing_strength = smoothing_for(model, options.smoothing, options.smoothing_strength)
    smoother = Smoother(smoothing, smoothing_strength)
    # A later part of a clip: its smoothing goes on from the last frame of the part before.
    carried = None if state is None else state.smoothed
    if carried is not None:
        smoother.go_on_from(*carried)
    dst = dst or default_output_path(src, model.name)
    _check_destination_and_settings(dst, [src, *getattr(model, "files", ())], overwrite, options.encode)
    if keypoints is not None and (model.input_kind != "pose" or options.pose == PoseSource.NONE):
        # They would be ignored: the frames themselves would go to the model.
        pose = spell("pose")
        why = f"{pose} none takes the input as pose maps" if model.input_kind == "pose" else \
            f"{model.name} translates {model.input_kind} frames, not pose maps"
        raise UsageError(f"{spell('keypoints')} are drawn only for a pose model detecting or given poses, and {why}; "
                         f"drop {spell('keypoints')} or use a pose model with {pose} auto or detect")
    check_pose_settings(model, options)
    if getattr(model, "backend", "torch") == "onnxruntime":
        backend_for_compile(model.backend, options.compile)  # compile on cannot run there: refused
    started = time.perf_counter()
    summary = Summary(input=str(src), output=str(dst), model=model.name, device=str(model.device),
                      precision=model.precision, backend=getattr(model, "backend", "torch"),
                      batch_size=options.batch_size, smoothing=smoothing,
                      recurrent=bool(getattr(model, "temporal", None)))
    # Claimed now, not when the writer starts at the first frame (after the detection pass): a second
    # run onto the same output is refused before either has done any work.
    with OutputClaim(dst, shared=True), VideoReader(src, start=options.start, end=options.end) as reader:
        pose = _pose_source(model, options.pose, keypoints, reader)
        output = _Output(dst, options.encode, SourceMedia(src, options.start, options.end), overwrite)
        # What the writer would refuse at the first frame (the frame size, the streams copied from
        # the input) is refused now, before the keypoints are detected and the frames translated.
        check_output(dst, *_frame_size(reader.info, model, pose, options.side_by_side), reader.info.time_base,
                     reader.info.frame_rate, options.encode, output.source)
        stages: list[Any] = []
        if model.input_kind == "pose":
            pose_stages, summary.pose = pose_stages_for(model, src, reader, pose, keypoints, options.normalize,
                                                        progress)
            stages += pose_stages
            if pose_stages:
                summary.frames_without_person = 0
        compiling = _compile_stages(model, options.compile, reader.frame_count)
        stages += compiling
        # A part that fails leaves `state` where it was, so the part can be tried again.
        working = None if state is None else state.copy()
        stages.append(TranslateStage.for_model(model, working))
        if smoothing != "none":
            stages += smoothing_stages(smoother, None if carried is None else carried[1])
        input_flicker, output_flicker = FlickerMeter(), FlickerMeter()
        last: list[Any] = [None, 0]  # the batch and index of the last frame written

        def frame_to_write(batch: Batch, i: int) -> np.ndarray:
            last[:] = batch, i
            if batch.keypoints is not None and not has_person(batch.keypoints[i]):
                summary.frames_without_person += 1
            input_flicker.add(batch.frames[i])
            output_flicker.add(batch.output[i])
            if not options.side_by_side:
                return batch.output[i]
            panels = [batch.frames[i]] + ([batch.model_input[i]] if batch.model_input is not None else [])
            return side_by_side(panels + [batch.output[i]])

        # A compiled model (now, by an earlier clip, or once this one proves long) pads each batch to
        # its first one's size (and compiles again for a larger one): a tail cut into small batches
        # would cost whole batches, or a second compilation.
        split_tail = not (compiling or getattr(model, "compiled", False))
        summary.frames = _encode(reader, stages, output, options.batch_size, frame_to_write, progress,
                                 split_tail=split_tail)
        summary.corrupt_frames = reader.corrupt_frames
        if state is not None:
            state.previous = working.previous
            batch, i = last
            if batch is not None:  # the last frame (unrounded if smoothed), before side-by-side panels; what the model saw
                state.smoothed = smoother.carried(batch.output[i]), np.array(batch.seen[i])
    # Flicker compares consecutive frames: a single frame has none, a figure that does not apply.
    summary.flicker_input, summary.flicker_output = (meter.value if meter.count else None
                                                     for meter in (input_flicker, output_flicker))
    summary.seconds = time.perf_counter() - started
    return summary


def render_pose_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    options: RunOptions | None = None,
    *,
    keypoints_out: str | os.PathLike | None = None,
    whole_body: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    **changes: Any,
) -> Summary:
    """Detect, smooth and draw the pose of every frame of `src` into the pose-map video `dst`
    (same size, frame count and timestamps, OpenPose style; `whole_body`: with the face's points
    and the hands, ControlNet's openpose_full); optionally save the keypoints to `keypoints_out`
    (NPZ: a name ending in .npz). Both files appear together, complete, or neither does (also on
    an interruption); existing files are replaced only with `overwrite`.

    Of `options`, only the span (`start`, `end`) and `encode` apply; by default the whole clip,
    encoded as POSE_VIDEO_ENCODE. `changes`: those fields by name, e.g. `start=2.0, crf=20`."""
    from vidtrans.pose import PoseStyle, write_keypoints_npz
    from vidtrans.pose.detector import DETECTION_MAX_SIDE
    from vidtrans.pose.stages import KeypointStage, PoseMapStage, SmoothKeypointsStage

    src, dst = _input_path(src, "src"), _output_path(dst)
    overwrite, whole_body = plain_number(overwrite), plain_number(whole_body)  # NumPy bools too, as in translate_video
    applying = ["start", "end", *(f.name for f in dataclasses.fields(EncodeOptions))]
    refuse_misspelt(render_pose_video, changes, applying)
    if unknown := [name for name in changes if name not in applying]:
        raise UsageError(f"render_pose_video has no option {', '.join(unknown)} (it draws poses, with no model to run); "
                         f"it takes {', '.join(applying)}")
    options = given_options(options, RunOptions(encode=POSE_VIDEO_ENCODE), "options").replace(**changes)
    _check_progress(progress)
    check_switch(whole_body, "whole_body")
    start, end, encode = options.start, options.end, options.encode
    outputs = [dst] if keypoints_out is None else [dst, _output_path(keypoints_out, "keypoints_out")]
    if keypoints_out is not None and same_file(dst, keypoints_out):
        raise UsageError(f"{dst}: the pose video and the keypoints would be the same file; "
                         "give the keypoints another name")
    for path in outputs:
        check_destination(path, src, overwrite=True)
    if keypoints_out is not None and outputs[1].suffix.lower() != ".npz":
        raise UsageError(f"{keypoints_out}: keypoints are saved as NPZ; give a file name ending in .npz")
    check_output_settings(dst, encode)
    for path in outputs:  # files in the way, once the settings are good (as in _check_destination_and_settings)
        check_destination(path, src, overwrite)
    started = time.perf_counter()
    # MediaPipe's detectors run on the CPU; nothing about a translation model applies.
    summary = Summary(input=str(src), output=str(dst), model=None, device="cpu", precision=None, smoothing=None,
                      recurrent=None, pose="detected")
    collected: list[np.ndarray] = []
    with contextlib.ExitStack() as finished_with:
        # Both files are made under temporary names (an unwritable folder fails here, before any
        # work) and published together once both are complete: a failure or an interruption
        # anywhere leaves what was there before, both files or neither.
        temporaries = []
        for path in outputs:
            finished_with.enter_context(OutputClaim(path))
            temporaries.append(temp_path(path))
            finished_with.callback(discard, temporaries[-1])
        # The frames are only looked at by the detector, so they are decoded at its size.
        with VideoReader(src, start=start, end=end, max_side=DETECTION_MAX_SIDE) as reader:
            info = reader.info
            stages = [KeypointStage(frame_size=(info.height, info.width), whole_body=whole_body),
                      SmoothKeypointsStage(),
                      PoseMapStage(info.height, info.width, PoseStyle(version=2 if whole_body else 1))]

            def frame_to_write(batch: Batch, i: int) -> np.ndarray:
                if i == 0:
                    collected.append(batch.keypoints)
                return batch.model_input[i]

            # The writer finishes the video onto its temporary name (which it may replace).
            output = _Output(temporaries[0], encode, SourceMedia(src, start, end), overwrite=True)
            # Pose maps are drawn at the input's size.
            check_output(dst, info.width, info.height, info.time_base, info.frame_rate, encode, output.source)
            summary.frames = _encode(reader, stages, output, 8, frame_to_write, progress, "detecting poses")
            summary.corrupt_frames = reader.corrupt_frames
        if keypoints_out is not None:
            write_keypoints_npz(temporaries[1], np.concatenate(collected), info.width, info.height, overwrite=True,
                                first_frame=reader.span().first if start else 0, smoothed=True)
        publish_together(list(zip(temporaries, outputs)), overwrite)
    with_person = int(has_person(np.concatenate(collected)).sum())
    summary.frames_without_person = summary.frames - with_person
    # Where nobody was found in most frames, the warning says whether the input shows pose maps already.
    mostly_nobody = 2 * summary.frames_without_person > summary.frames
    summary.extra = {"frames_with_person": with_person,
                     "keypoints": None if keypoints_out is None else str(keypoints_out),
                     "input_is_pose_maps": mostly_nobody and is_pose_video(src, start, end)}
    summary.seconds = time.perf_counter() - started
    return summary


def _pose_source(model, pose: PoseSource, keypoints: Path | None, reader: VideoReader) -> PoseSource:
    """`pose` with auto decided for a pose model (detect, or none when the input already is pose
    maps), before any work: whether pose maps are drawn decides the output's frame size. none is
    done as asked, with a warning where the input does not look like pose maps."""
    if model.input_kind != "pose" or keypoints is not None:
        return pose
    if pose == PoseSource.AUTO:
        return PoseSource.NONE if is_pose_video(reader.path, reader.start, reader.end) else PoseSource.DETECT
    if pose == PoseSource.NONE:
        warn_unless_pose_video(reader.path, reader.start, reader.end, model.name)
    return pose


def _frame_size(info: VideoInfo, model, pose: PoseSource, side_by_side: bool) -> tuple[int, int]:
    """The (width, height) of the frames `translate_video` writes: the model's output (a pose model
    draws pose maps at its native size and translates them into frames of that size; other models
    keep the input's size), or the input | pose map | output panels side by side."""
    frame = (info.height, info.width)
    draws_pose_maps = model.input_kind == "pose" and pose != PoseSource.NONE
    output = tuple(model.native_size) if draws_pose_maps else frame
    if not side_by_side:
        return output[1], output[0]
    height, width = side_by_side_size([frame, output, output] if draws_pose_maps else [frame, output])
    return width, height


def file_path(value: Any, name: str) -> Path:
    """`value`, a file path, as a Path; a one-line error naming the parameter for anything else
    (not a str or os.PathLike, an os.PathLike whose path is bytes, which a Path cannot take, or
    holding a NUL)."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(text, str):
        what = shown(value) if isinstance(value, (int, float, bytes, type(None))) else type(value).__name__
        if isinstance(value, os.PathLike):
            what = f"{what} whose path is bytes ({shown(text)})"
        raise UsageError(f"{spell(name)} must be a file path (a str or os.PathLike), not {what}")
    check_path_text(value, name)
    return Path(value)


def _input_path(value: Any, name: str) -> Path:
    """`value`, an input file's path (the parameter `name`), as a Path: refused, as the command line
    refuses it, where a Path would hide what is wrong (a URL it makes https:/host/a.mp4, a file's
    name with a trailing slash it makes the file's)."""
    path = file_path(value, name)
    check_input_name(os.fspath(value))
    return path


def _output_path(value: Any, name: str = "dst") -> Path:
    """`value`, an output file's path (the parameter `name`), as a Path: refused where written as a
    folder's (a trailing slash, which the Path would drop), or as a URL (which it would mangle)."""
    path = file_path(value, name)
    check_file_name(value)
    check_input_name(os.fspath(value))  # what is left to refuse: a URL
    return path


def check_before_loading(model: str | os.PathLike, src: Path, dst: Path | None, overwrite: bool,
                         encode: EncodeOptions, keypoints: Path | None = None) -> None:
    """What `translate_video` refuses anyway, refused before the model named `model` loads (seconds;
    on its first use on onnxruntime, an export), in its order: a model that is not there, the input,
    the output path (given, or the default name, which carries the model's), its settings and a file
    in the way, and a keypoint file that is not there or of no kind read."""
    from vidtrans.models.checkpoint import checkpoint_path, model_files, model_name
    from vidtrans.pose.files import check_keypoint_path

    found = checkpoint_path(model)
    probe(src)
    _check_destination_and_settings(dst or default_output_path(src, model_name(found)), [src, *model_files(found)],
                                   overwrite, encode)
    if keypoints is not None:
        check_keypoint_path(keypoints)


def _check_destination_and_settings(dst: Path, inputs: list, overwrite: bool, encode: EncodeOptions) -> None:
    """The output path `dst` (check_destination), then the encoder settings for it, then a file in the
    way: a bad setting is told first, not after --overwrite, which would only lead to it."""
    check_destination(dst, inputs, overwrite=True)
    check_output_settings(dst, encode)
    check_destination(dst, inputs, overwrite)


def _check_progress(progress: Any) -> None:
    """UsageError for a `progress` that is no function taking (done, total, what), or whose calls do
    not run it: refused before any work, not with Python's TypeError once the first batch is done."""
    if progress is None:
        return
    what = shown(progress)
    # An async function's (or generator function's) calls make coroutines (generators) that nothing
    # runs: the callback would never run, only a warning per batch that a coroutine was never awaited.
    for function in (progress, getattr(progress, "__call__", None)):
        if (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
                or inspect.isgeneratorfunction(function)):
            raise UsageError(f"progress must be a plain function called with (done, total, what), not {what}: "
                             "calling an async or generator function does not run it")
    if callable(progress):
        try:
            signature = inspect.signature(progress)
        except (TypeError, ValueError):  # no signature to read (some built-in functions): taken on trust
            return
        try:
            signature.bind(0, 0, "")
            return
        except TypeError:
            what = f"{getattr(progress, '__name__', type(progress).__name__)}, which takes {signature}"
    raise UsageError(f"progress must be None or a function called with (done, total, what), not {what}")


def given_options(options: Any, default: OptionsT, name: str, keywords: bool = True) -> OptionsT:
    """`options`, an object of `default`'s type, or `default` when None; for anything else (a dict,
    say) a one-line error naming the parameter `name`, and, where the function also takes the
    options' fields as keyword arguments (`keywords`), saying so."""
    if options is None:
        return default
    if isinstance(options, type(default)):
        return options
    kind = type(default).__name__
    given = ", ".join(f"{key}={value!r}" for key, value in list(options.items())[:3]) if (
        isinstance(options, Mapping)) else ""
    if keywords:
        fix = f"pass a {kind}, or its fields as keyword arguments" + (f", e.g. {given}" if given else "")
    else:
        fix = f"pass a {kind}" + (f", e.g. {kind}({given})" if given else "")
    raise UsageError(f"{name} must be a {kind}, not {type(options).__name__}; {fix}")


def loaded_model(model: Any, backend: str = "auto") -> Any:
    """A translator: `model` itself, or the model a name or path stands for (`vidtrans.load_model`,
    with `backend`)."""
    if isinstance(model, (str, os.PathLike)):
        from vidtrans import load_model

        return load_model(model, backend=backend)
    # bytes have a translate method of their own, and so has the Translator class: neither is a model.
    if isinstance(model, (bytes, bytearray, type)) or not callable(getattr(model, "translate", None)):
        raise UsageError(f"model must be a model name or path, or what vidtrans.load_model returns, "
                         f"not {shown(model)}")
    return model


# Compiling costs 15-20 s and ~130 MB up front and makes a CPU pipeline 20-40 % faster per frame
# (benchmarks/README.md): it breaks even at about 1400 frames of unet_256 on two cores, so
# `--compile auto` compiles for clips estimated at COMPILE_AUTO_FRAMES or more, once
# COMPILE_AUTO_EVIDENCE frames have been decoded. GPUs are fast enough without it for these networks.
COMPILE_AUTO_FRAMES = 2000
COMPILE_AUTO_EVIDENCE = 256


def _compile_stages(model, compile: str, frame_count: int) -> list[Any]:
    """Compile now (`on`), or the stage that compiles once the clip proves long (`auto`)."""
    if compile == "on":
        model.compile()
    elif compile == "auto" and model.device.type == "cpu" and frame_count >= COMPILE_AUTO_FRAMES:
        return [CompileWhenLong(model, COMPILE_AUTO_EVIDENCE)]
    return []


class _Output(NamedTuple):
    """Where and how `_encode` writes."""

    dst: Path
    encode: EncodeOptions
    source: SourceMedia
    overwrite: bool


def _encode(reader: VideoReader, stages: list[Any], output: _Output, batch_size: int,
            frame_to_write: Callable[[Batch, int], np.ndarray], progress: Progress | None,
            what: str = "translating", split_tail: bool = True) -> int:
    """Run the stages over the decoded batches and write one frame per input frame; returns the count.
    `what` the stages do, as `progress` tells it; `split_tail`: the clip's last frames are shared
    by the workers of a `Parallel` stage (see `frame_batches`). `progress` is told as `FrameProgress` tells it."""
    info, total, written = reader.info, reader.frame_count, 0
    told = FrameProgress(progress, total, what)
    # Parallel's batches at once
    workers = max((getattr(stage, "workers", 1) for stage in stages), default=1) if split_tail else 1
    writer = None
    try:
        for batch in run_stages(frame_batches(reader, batch_size, total, workers), stages):
            for i in range(len(batch.pts)):
                frame = frame_to_write(batch, i)
                if writer is None:
                    writer = VideoWriter(output.dst, frame.shape[1], frame.shape[0], info.time_base, info.frame_rate,
                                         output.encode, output.source, output.overwrite)
                writer.write(frame, batch.pts[i])
                written += 1
            told(written)
        if writer is None:
            raise VidtransError(f"{reader.path}: no frames could be decoded in the selected range")
        told.finish(written)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return written
