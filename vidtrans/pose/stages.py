"""Pose stages of the video pipeline: detect keypoints, smooth them over time, draw pose maps.

    decoded frames -> KeypointStage (detector, in order) -> SmoothKeypointsStage (centred window)
                   -> PoseMapStage (draw)

or, where the whole clip's keypoints are known before the first frame is drawn (`run`: a keypoint
file, or a detection pass, smoothed and normalized by `pose/track.py`):

    decoded frames -> KeypointLookupStage (the known track, in order) -> PoseMapStage (draw)

Each stage fills a field of the `vidtrans.runner.Batch` it is given. The keypoint filter looks a few frames ahead,
so `SmoothKeypointsStage` holds back just enough batches for that, never the whole clip.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vidtrans.pose.detector import PoseDetector
from vidtrans.pose.keypoints import NUM_KEYPOINTS, NUM_WHOLE_BODY
from vidtrans.pose.render import PoseStyle, render_poses
from vidtrans.pose.smoothing import jumped, smooth_track
from vidtrans.runner import half_the_cores

# How far the offline filter sees: median (window 5) + Gaussian (sigma 1.5, cut at 3 sigma)
# + bridged gaps of 3 frames (11 frames), and where the body jumps (smoothing.jumps: a jump's two
# frames up to 4 apart, and whether the body is back where it was within 2 frames of it); 20 frames
# on each side leave the centre frame exactly as a whole-track filter would have made it.
SMOOTHING_CONTEXT = 20


def default_detectors() -> int:
    """Half the cores this process may use, from 2 to 8: detection gets its share of a many-core
    host (a GPU host's CPU is the limit), the other half decodes, smooths and encodes."""
    return half_the_cores(2, 8)


class KeypointStage:
    """Detects the keypoints of every frame with `detectors` tracking detectors working at once
    (default: `default_detectors()`).

    Frame i goes to detector i % detectors, so each one still tracks its frames in order, across
    a gap of `detectors` frames. MediaPipe releases the GIL, so two detectors give twice the
    frames/s of one on two cores (benchmarks/README.md), with keypoints within a pixel of one
    detector's on the real test clip (tests/test_pose.py); eight, tracking across gaps of eight
    frames, stay within 1.3 px of one (benchmarks/README.md).
    whole_body=True detects face and hands as well: keypoints (frames, 128, 3) instead of (frames,
    18, 3). They come from every other detector only (the rest find the body alone), so every
    other frame: face and hands cost MediaPipe Holistic twice the body's time, almost all of it
    the hands, and the keypoint filter (`smooth_track`) bridges the frames between, as it bridges
    any gap of up to 3 frames.

    Each detector follows its own person: one that loses the dancer for a frame finds whoever else
    is in the shot, and follows them while the others follow the dancer, every other frame of the
    track a different person (the filter then drew a body halfway between). So the track follows
    one person (`_follow`): bodies a jump away from them (`smoothing.jumped`) count only once every
    detector has had a frame since the first of them without finding the person followed (a scene
    cut, or someone else after the dancer left; frames with nobody count too); a frame of the
    person followed before that marks those frames as another detector's person, and they are left
    out (missing, which the filter bridges). Frames wait for that decision, at most a frame less
    than there are detectors.
    """

    def __init__(self, detectors: int | None = None, frame_size: tuple[int, int] | None = None,
                 whole_body: bool = False):
        detectors = detectors or default_detectors()
        self.frame_size = frame_size  # (height, width) when the frames are scaled-down copies
        self.num_keypoints = NUM_WHOLE_BODY if whole_body else NUM_KEYPOINTS
        self.pool = ThreadPoolExecutor(detectors, thread_name_prefix="vidtrans-detect")
        # Each detector takes ~0.1 s to start: start them side by side, while the first frames decode.
        self._starting = [self.pool.submit(PoseDetector, video_mode=True, whole_body=whole_body and k % 2 == 0)
                          for k in range(detectors)]
        self.frames_seen = 0
        self._held: list = []  # batches (in order) that still hold a frame waiting in _pending
        self._followed: np.ndarray | None = None  # the body (18, 3) of the person followed, last seen
        self._pending: list[tuple[np.ndarray, int]] = []  # frames (their batch's keypoints, index) a jump away
        self._waited = 0  # frames seen since the first of _pending

    def process(self, batch):
        detectors = [starting.result() for starting in self._starting]  # waits only for the first batch
        first, count = self.frames_seen, len(batch.frames)
        self.frames_seen += count
        keypoints = np.zeros((count, self.num_keypoints, 3), np.float32)

        def detect_share(k: int) -> None:
            for i in range((k - first) % len(detectors), count, len(detectors)):
                keypoints[i, :detectors[k].num_keypoints] = detectors[k].detect(batch.frames[i], self.frame_size)

        for done in [self.pool.submit(detect_share, k) for k in range(len(detectors))]:
            done.result()
        batch.keypoints = keypoints
        self._held.append(batch)
        for i in range(count):
            self._follow(keypoints, i)
        return self._release()

    def flush(self):
        self._pending.clear()  # nothing contradicted them: a cut just before the clip's end
        self._waited = 0
        return self._release()

    def _follow(self, keypoints: np.ndarray, i: int) -> None:
        """Frame i of a batch's `keypoints` taken into the one person's track (class docstring)."""
        body = keypoints[i, :NUM_KEYPOINTS]
        shown = bool((body[:, 2] > 0).any())
        if shown and (self._followed is None or not jumped(self._followed, body)):
            self._leave_out_pending()  # they were another detector's person
            self._followed = body.copy()
            return
        if shown:
            self._pending.append((keypoints, i))
        if not self._pending:
            return
        # Frames with nobody count too, so that frames never wait longer than every detector's turn.
        self._waited += 1
        if self._waited >= len(self._starting):
            # Every detector had its turn and none found the person followed: a cut, or the dancer gone.
            latest, j = self._pending[-1]
            self._followed = latest[j, :NUM_KEYPOINTS].copy()
            self._pending.clear()
            self._waited = 0

    def _leave_out_pending(self) -> None:
        for keypoints, i in self._pending:
            keypoints[i] = 0.0
        self._pending.clear()
        self._waited = 0

    def _release(self) -> list:
        """The held batches, from the first, that no longer hold a frame waiting in _pending."""
        waiting = {id(keypoints) for keypoints, _ in self._pending}
        ready = []
        while self._held and id(self._held[0].keypoints) not in waiting:
            ready.append(self._held.pop(0))
        return ready

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        for starting in self._starting:
            if not starting.cancelled() and starting.exception() is None:
                starting.result().close()


class KeypointLookupStage:
    """Keypoints known in advance (a file, or an earlier detection pass), in frame order."""

    def __init__(self, track: np.ndarray):
        self.track = track
        self.position = 0

    def process(self, batch):
        end = self.position + len(batch.frames)
        if end > len(self.track):
            from vidtrans.errors import VidtransError

            raise VidtransError(f"the keypoints cover {len(self.track)} frames but the video has more; "
                                "use keypoints extracted from this clip (vidtrans pose INPUT --keypoints KP.npz)")
        batch.keypoints = self.track[self.position:end]
        self.position = end
        yield batch

    def flush(self):
        return ()


class SmoothKeypointsStage:
    """Streaming version of `smooth_track`: each frame is smoothed with SMOOTHING_CONTEXT frames of
    context on both sides, so batches leave this stage that many frames late."""

    def __init__(self, window: int = 5, sigma: float = 1.5, max_gap: int = 3):
        self.options = dict(window=window, sigma=sigma, max_gap=max_gap)
        self.pending: list = []  # batches waiting for future context
        self.history: np.ndarray | None = None  # raw keypoints: past context + pending frames
        self.past = 0  # frames of past context at the start of history

    def process(self, batch):
        self.pending.append(batch)
        self.history = batch.keypoints if self.history is None else np.concatenate([self.history, batch.keypoints])
        return self._release(final=False)

    def flush(self):
        return self._release(final=True)

    def _release(self, final: bool):
        ready = []
        while self.pending:
            head = self.pending[0]
            n = len(head.keypoints)
            future = len(self.history) - self.past - n
            if not final and future < SMOOTHING_CONTEXT:
                break
            smoothed = smooth_track(self.history, **self.options)
            head.keypoints = smoothed[self.past:self.past + n]
            ready.append(self.pending.pop(0))
            keep_from = max(0, self.past + n - SMOOTHING_CONTEXT)
            self.history = self.history[keep_from:]
            self.past = self.past + n - keep_from
        return ready


class PoseMapStage:
    """Draws the keypoints it is given (mapped into the model's frame already, where `pose_stages_for`
    made it: it maps the whole track at once) at height x width in a pose style."""

    def __init__(self, height: int, width: int, style: PoseStyle):
        self.height, self.width = height, width
        self.style = style

    def process(self, batch):
        batch.model_input = render_poses(batch.keypoints, self.height, self.width, self.style)
        yield batch

    def flush(self):
        return ()
