"""Live processing: one camera frame in, the model's output (and the pose map it got) out, at batch 1.

Pose mapping: offline runs fit the source dancer to the target's body with statistics of the whole
clip; live there is no whole clip. So for the first WARMUP_S seconds the pose is only scaled into
the model's frame (`fit_to_frame`), while keypoints are collected; then the source statistics are
estimated from them and, when that works (enough frames showed a whole body), poses are normalized
to the target's body from then on. Failed estimates are retried every second, with all keypoints
collected so far, up to GIVE_UP_S; after that the pose stays fitted to the frame. A camera that
shows only the upper body (a desk, a close shot) gets it fitted to the target's upper body
(`normalize.normalizer_for`) where the card's statistics have one, while the whole body is still
looked for up to GIVE_UP_S: someone stepping back into full view is then normalized as a whole.
The upper body is fitted as soon as a few frames show it, during the warm-up too (measured again at
its end), so that a close shot does not draw a head filling the model's frame for its first seconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vidtrans.errors import VidtransError
from vidtrans.options import Smoothing, View
from vidtrans.pose.keypoints import FACE, KEYPOINT_INDEX, LEFT_HAND, RIGHT_HAND, with_parts
from vidtrans.runner import half_the_cores
from vidtrans.temporal import Smoother, smoothing_for
from vidtrans.video.camera import CapturedFrame
from vidtrans.view import resized, side_by_side

WARMUP_S = 2.0
GIVE_UP_S = 10.0


@dataclass
class LiveFrame:
    """One processed frame: what the camera saw, the pose map the model got (pose models), the output."""

    input: np.ndarray
    pose: np.ndarray | None
    output: np.ndarray
    captured_at: float


def compose(frame: LiveFrame, view: View) -> np.ndarray:
    """The picture for a view: side (input | pose | output), output, or pose (the input for RGB models)."""
    if view == View.OUTPUT:
        return frame.output
    if view == View.POSE:
        return frame.pose if frame.pose is not None else frame.input
    return side_by_side([frame.input] + ([frame.pose] if frame.pose is not None else []) + [frame.output])


class LivePoseMapper:
    """Camera-pixel keypoints -> the model's frame; see the module docstring for the warm-up.

    `how` says what has happened so far (it ends up in the session's statistics), never what was
    planned: a session may end before the warm-up does.
    """

    def __init__(self, source_size: tuple[int, int], model_size: tuple[int, int], target_stats: dict | None,
                 normalize: bool = True, square=None):
        """`square`: the `normalize.TrainingSquare` the target was trained on, where its card records one."""
        from vidtrans.pose import PoseStats
        from vidtrans.pose.normalize import fit_to_frame

        self.source_size = source_size  # (height, width)
        self.fit = fit_to_frame(source_size, model_size)
        self.target = PoseStats.from_dict(target_stats) if normalize and target_stats else None
        self.square = square
        self.transform: Callable[[np.ndarray], np.ndarray] = self.fit
        self.collected: list[np.ndarray] = []
        self.start: float | None = None
        self.next_try = WARMUP_S
        self.upper_fitted_at: float | None = None  # seconds into the session
        self.upper_measured_in_full = False  # on the warm-up's frames at least, not a few
        if not normalize:
            self.how = "fitted to the frame (normalization off)"
        elif self.target is None:
            self.how = "fitted to the frame (the model card has no target pose statistics)"
        else:
            self.how = (f"fitted to the frame (not normalized: the session ended within the first {WARMUP_S:g} s, "
                        "before the body could be measured)")

    def __call__(self, keypoints: np.ndarray, t: float) -> np.ndarray:
        if self.target is not None:
            self._learn(keypoints, t)
        return self.transform(keypoints)

    def _learn(self, keypoints: np.ndarray, t: float) -> None:
        from vidtrans.pose.normalize import normalized_phrase, normalizer_for

        self.start = t if self.start is None else self.start
        self.collected.append(keypoints)
        elapsed = t - self.start
        if elapsed < self.next_try:
            if self.transform is self.fit:
                self._fit_upper_body(elapsed)
            return
        before = "fitted to the frame" if self.transform is self.fit else "fitted to the frame, then by its upper body,"
        try:
            transform, no_whole_body = normalizer_for(np.stack(self.collected), *self.source_size, self.target,
                                                      self.square)
        except VidtransError as e:
            no_whole_body, transform = str(e), None
        if no_whole_body is None:  # the whole body: normalized from now on, nothing more to learn
            self.transform, self.target, self.collected = transform, None, []
            self.how = f"{before} for the first {elapsed:.1f} s, then {normalized_phrase(transform)}"
            return
        if transform is not None and not self.upper_measured_in_full:  # the upper body, on all frames so far
            self.transform, self.upper_measured_in_full = transform, True
            self.upper_fitted_at = elapsed if self.upper_fitted_at is None else self.upper_fitted_at
            self.how = (f"fitted to the frame for the first {self.upper_fitted_at:.1f} s, then its upper body fitted "
                        f"to the target's ({no_whole_body})")
        self.next_try += 1.0
        if self.next_try > GIVE_UP_S:
            self.target, self.collected = None, []
            if self.transform is self.fit:
                self.how = f"fitted to the frame (not normalized: {no_whole_body})"
        elif self.transform is self.fit:
            self.how = f"fitted to the frame (not normalized yet, last tried at {elapsed:.1f} s: {no_whole_body})"

    def _fit_upper_body(self, elapsed: float) -> None:
        """During the warm-up: the upper body fitted to the target's once frames enough show it."""
        from vidtrans.pose.normalize import UpperBodyNormalizer

        if self.target.upper_body is None:
            return
        try:
            self.transform = UpperBodyNormalizer.measured(np.stack(self.collected), *self.source_size, self.target)
        except VidtransError:
            return  # too few frames show the neck and both shoulders yet
        self.upper_fitted_at = elapsed
        self.how = (f"fitted to the frame for the first {elapsed:.1f} s, then its upper body fitted to the target's "
                    "while the whole body was looked for")


class AlternatingWholeBodyDetector:
    """Whole-body keypoints for live video at about three quarters of Holistic's cost per frame:
    Holistic (body, face, hands) on every other frame, which takes twice the body detector's time,
    nearly all of it the hands, and the body detector on the frames between, where the face and
    hands of the last Holistic frame move with the body (the face with the nose, each hand with its
    wrist). Offline runs do the same and fill the frames between from both sides
    (pose/stages.KeypointStage); live has no next frame, and waiting for one would add latency."""

    _CARRIED = ((FACE, KEYPOINT_INDEX["nose"]), (LEFT_HAND, KEYPOINT_INDEX["l_wrist"]),
                (RIGHT_HAND, KEYPOINT_INDEX["r_wrist"]))

    def __init__(self):
        from vidtrans.pose import PoseDetector

        self.whole = PoseDetector(video_mode=True, whole_body=True)
        self.body = PoseDetector(video_mode=True)
        self.last: np.ndarray | None = None  # the last whole-body detection
        self.frames = 0

    def detect(self, image: np.ndarray) -> np.ndarray:
        self.frames += 1
        if self.last is None or self.frames % 2 == 1:
            self.last = self.whole.detect(image)
            return self.last
        body = self.body.detect(image)
        keypoints = with_parts(body, whole_body=True)
        for part, anchor in self._CARRIED:
            held = self.last[part]
            if body[anchor, 2] > 0 and self.last[anchor, 2] > 0:
                moved = held.copy()
                moved[:, :2] += body[anchor, :2] - self.last[anchor, :2]
                moved[held[:, 2] <= 0] = 0.0
                keypoints[part] = moved
        return keypoints

    def close(self) -> None:
        self.whole.close()
        self.body.close()


class FrameProcessor:
    """Turns one camera frame into a `LiveFrame` with `model`, at batch 1.

    Pose models: tracked detection, causal One Euro filter, mapping into the model's frame, drawing
    in the card's pose style at the native size. RGB models translate the camera frame itself.
    A temporal model sees its previous output (before smoothing), as in `run`; a frame without a
    person starts it afresh.
    """

    def __init__(self, model, smoothing: Smoothing = Smoothing.NONE, smoothing_strength: float | None = None,
                 normalize: bool = True):
        self.model = model
        self.smoother = Smoother(*smoothing_for(model, smoothing, smoothing_strength))
        self.normalize = normalize
        self.is_pose = model.input_kind == "pose"
        self.detector = self.filter = self.mapper = self.style = self.state = self.square = None
        self.background = getattr(model, "background", None)  # shown where nobody is, as `run` shows it
        if getattr(model, "temporal", None):
            from vidtrans.models.translator import RecurrentState

            self.state = RecurrentState()
        if self.is_pose:
            from vidtrans.pose import OneEuroFilter, PoseDetector, PoseStyle
            from vidtrans.train.data import recorded_training_square

            self.style = PoseStyle.for_card(model.card)
            self.square = recorded_training_square(model.card.training, model.name)
            self.detector = AlternatingWholeBodyDetector() if self.style.whole_body else PoseDetector(video_mode=True)
            self.filter = OneEuroFilter()

    @property
    def pose_how(self) -> str | None:
        if not self.is_pose:
            return None
        return self.mapper.how if self.mapper is not None else "not started"

    def warm_up(self) -> None:
        """One throw-away translation, so the first live frame does not pay for lazy initialisation."""
        height, width = self.model.native_size
        self.model.translate(np.zeros((1, height, width, 3), np.uint8))

    def __call__(self, frame: CapturedFrame) -> LiveFrame:
        image = frame.image
        if not self.is_pose:
            output = self._translate(image)
            return LiveFrame(image, None, self.smoother(output, image), frame.time)
        from vidtrans.pose import render_pose
        from vidtrans.pose.keypoints import has_person

        height, width = self.model.native_size
        if self.mapper is None:
            self.mapper = LivePoseMapper(image.shape[:2], (height, width), self.model.card.target_pose_stats,
                                         self.normalize, self.square)
        keypoints = self.filter(self.detector.detect(image), frame.time)
        pose_map = render_pose(self.mapper(keypoints, frame.time), height, width, self.style)
        output = self._translate(pose_map)
        if not has_person(keypoints):
            if self.state is not None:
                self.state.reset()
            # As `run` does: the target's empty scene, not what the model makes of a blank pose map.
            if self.background is not None:
                output = resized(self.background, *output.shape[:2])
        return LiveFrame(image, pose_map, self.smoother(output, pose_map), frame.time)

    def _translate(self, image: np.ndarray) -> np.ndarray:
        if self.state is None:
            return self.model.translate(image[None])[0]
        return self.model.translate_clip(image, self.state)

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()


@contextlib.contextmanager
def cpu_threads(model) -> Iterator[None]:
    """On a CPU, leave half the cores to capture, pose detection and encoding while live.

    At batch 1 a network gains little from many threads, and when its threads outnumber the free
    cores (capture thread, MediaPipe, the encoder, other programs) every layer waits for the one
    thread that was descheduled: on 2 busy cores 2 threads were ~100x slower than 1.
    """
    if getattr(model.device, "type", "cpu") != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(half_the_cores(1, before))
    try:
        yield
    finally:
        torch.set_num_threads(before)
