"""A small threaded stage runner: each stage in its own thread, bounded queues between them.

A stage is an object with `process(item) -> iterable of items` and `flush() -> iterable of items`
(what it still holds at the end), and optionally `close()` (called when its thread ends, however it
ends) and `interrupt()` (called from the consumer's thread when the pipeline stops early, so that a
stage waiting for other threads' work stops waiting). Data flows one way. A failing stage sends its
exception down the line; the consumer re-raises it, and every thread stops. Bounded queues keep
memory flat however long the input is.
`Parallel` runs a stateless stage on several threads with the output kept in input order;
`OnItsOwnThread`, a stage that must keep its order and its thread, on a thread the stop need not wait for.

The video pipelines (`run`, `pose`, pose detection, `eval`) pass `Batch`es of decoded frames
through it; `frame_batches` cuts a reader's frames into them.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import queue
import signal
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from vidtrans.errors import STOP_SIGNALS

Progress = Callable[[int, int, str], None]  # (frames done, frames expected or 0, what is being done)


class FrameProgress:
    """Tells `progress` (if any) the frames done of a pass over a clip against the container's estimate
    `total` (0: unknown), which a span between two frames' times, a variable rate or a header's rounded
    duration put a frame or more off, either way: never more done than expected, and `finish`, after the
    last frame, gives the true total."""

    def __init__(self, progress: Progress | None, total: int, what: str):
        self.progress, self.total, self.what = progress, total, what
        self.expected = total  # as `progress` was last told

    def __call__(self, done: int) -> None:
        if self.progress:
            self.expected = max(self.total, done) if self.total else 0
            self.progress(done, self.expected, self.what)

    def finish(self, done: int) -> None:
        if self.progress and self.expected != done:
            self.progress(done, done, self.what)


# Batches a pipeline translates at once, each on a thread of its own (pipeline.TranslateStage):
# a translator makes per-thread state (ONNX Runtime sessions) ready for that many.
TRANSLATION_THREADS = 2


def usable_cores() -> int:
    """The cores this process may run on (its affinity, e.g. under taskset or a container's cpuset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2


def half_the_cores(least: int = 1, most: int | None = None) -> int:
    """Half the usable cores, from `least` to `most`: the share of a stage (pose detection, flow,
    a CPU translator's threads) that leaves the other half to decoding, smoothing and encoding."""
    half = max(least, usable_cores() // 2)
    return half if most is None else min(most, half)


@dataclass
class Batch:
    """Consecutive frames on their way through the stages; each stage fills in a field."""

    frames: list[np.ndarray]  # (H, W, 3) uint8 decoded input; not stacked, as only the model needs that
    pts: list[int]
    indices: list[int]
    # (N, K, 3), K 18 or 128 (whole body): input pixels, or the model's frame once pose_stages_for mapped them
    keypoints: np.ndarray | None = None
    model_input: np.ndarray | None = None  # what the generator sees (pose maps); None: the frames
    output: np.ndarray | None = None
    motion: list[Any] | None = None  # flow smoothing's guide-only half per frame (temporal.Motion), made ahead

    @property
    def seen(self):
        """What the generator sees: the pose maps, or the frames themselves (flow is computed on it)."""
        return self.frames if self.model_input is None else self.model_input


def frame_batches(frames: Iterable[Any], batch_size: int, expected: int = 0, workers: int = 1) -> Iterator[Batch]:
    """`Batch`es of `batch_size` frames (the last one shorter) from decoded frames (`VideoReader`'s).

    Where `expected` frames are coming (an estimate; 0 if unknown) and `workers` batches are
    translated at once (`Parallel`), the frames left after the last round of `workers` full
    batches are cut into `workers` batches (equal give or take a frame) that start together: a
    short last batch would otherwise run alone while the other workers wait (at batch 8 on two
    workers, a 100-frame clip's last 4 frames took a whole batch's time on one of two cores).
    Rounds, since `Parallel` starts a batch when the one `workers` before it ends: a tail cut
    after an odd number of full batches still ended alone (20 frames as 8, 6, 6: the second 6
    waited for the 8). The tail's last batch takes whatever comes, up to `batch_size`, so an
    estimate a few frames short (Matroska's, a variable rate's) adds no batch of those few.
    Outputs do not depend on how frames are batched."""
    full_rounds, left = divmod(max(expected, 0), workers * batch_size) if workers > 1 else (0, 0)
    # The last round: the frames left as evenly as `workers` batches hold them, the last open-ended.
    tail = [size for k in range(workers) if (size := left // workers + (k < left % workers))][:-1]
    sizes = itertools.chain(itertools.repeat(batch_size, full_rounds * workers), tail, itertools.repeat(batch_size))
    size, pending = next(sizes), []
    for frame in frames:
        pending.append(frame)
        if len(pending) == size:
            yield _make_batch(pending)
            size, pending = next(sizes), []
    if pending:
        yield _make_batch(pending)


def _make_batch(frames: list[Any]) -> Batch:
    return Batch([f.image for f in frames], [f.pts for f in frames], [f.index for f in frames])


class Stage(Protocol):
    def process(self, item: Any) -> Iterable[Any]: ...

    def flush(self) -> Iterable[Any]: ...


class _End:
    pass


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_END = _End()
_POLL_S = 0.1


class _Stopped(Exception):
    """The consumer went away; unwind this thread quietly."""


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            pass


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            pass


def _feed(source: Iterable[Any], out: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in source:
            _put(out, item, stop)
        _put(out, _END, stop)
    except _Stopped:
        pass
    except BaseException as e:  # noqa: BLE001 - any failure must reach the consumer, not vanish in a thread
        try:
            _put(out, _Failed(e), stop)
        except _Stopped:
            pass


class Parallel:
    """`stage.process` on `workers` threads of `pool` at once, results yielded in input order.

    For stages whose items do not depend on each other (translation). The pool may be shared by
    several pipelines (its threads then stay warm from one clip to the next); closing the stage
    cancels only its own pending work.
    """

    def __init__(self, stage: Stage, workers: int, pool: ThreadPoolExecutor):
        self.stage = stage
        self.workers = workers
        self._pool = pool
        self._pending: deque[Future] = deque()
        self._interrupted = threading.Event()

    def process(self, item: Any) -> Iterable[Any]:
        # In the caller's context: messages raised there spell settings as the caller does (--precision).
        self._pending.append(self._pool.submit(contextvars.copy_context().run, lambda: list(self.stage.process(item))))
        if len(self._pending) >= self.workers:
            yield from self._result(self._pending.popleft())

    def flush(self) -> Iterable[Any]:
        while self._pending:
            yield from self._result(self._pending.popleft())
        yield from self.stage.flush()

    def interrupt(self) -> None:
        """Stop waiting for work in flight (from another thread): a forward pass cannot be cut
        short, and at a large model size it takes tens of seconds that a stop must not wait for.
        The pool's thread finishes it and drops the result."""
        self._interrupted.set()

    def _result(self, future: Future) -> list[Any]:
        while True:
            try:
                return future.result(timeout=_POLL_S)
            except TimeoutError:
                if self._interrupted.is_set():
                    raise _Stopped from None

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()


class OnItsOwnThread(Parallel):
    """`stage.process` on one thread of its own, one item at a time, for a stage whose items each
    wait for the one before (a temporal model's frames) and that keeps to one thread throughout
    (its CUDA stream, its ONNX Runtime session). The stage's thread only waits for it, so a stop
    need not wait for a forward pass in progress (`Parallel.interrupt`); the thread finishes that
    pass and ends."""

    def __init__(self, stage: Stage, name: str = "vidtrans-own"):
        super().__init__(stage, 1, ThreadPoolExecutor(1, thread_name_prefix=name))

    def close(self) -> None:
        super().close()
        self._pool.shutdown(wait=False)


def _work(stage: Stage, inbox: queue.Queue, out: queue.Queue, stop: threading.Event) -> None:
    try:
        while True:
            item = _get(inbox, stop)
            if isinstance(item, _Failed):
                _put(out, item, stop)
                return
            if item is _END:
                for result in stage.flush():
                    _put(out, result, stop)
                _put(out, _END, stop)
                return
            for result in stage.process(item):
                _put(out, result, stop)
    except _Stopped:
        pass
    except BaseException as e:  # noqa: BLE001
        try:
            _put(out, _Failed(e), stop)
        except _Stopped:
            pass
    finally:
        close = getattr(stage, "close", None)
        if close:
            close()


def run_stages(source: Iterable[Any], stages: list[Stage], depth: int = 2) -> Iterator[Any]:
    """Yield what comes out of the last stage. Closing the iterator early stops every thread."""
    stop = threading.Event()
    queues = [queue.Queue(maxsize=depth) for _ in range(len(stages) + 1)]
    # Each thread runs in a copy of the caller's context: messages raised there spell settings as the
    # caller does (the command line's --precision, not Python's precision=).
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(_feed, source, queues[0], stop),
                                name="vidtrans-source", daemon=True)]
    for i, stage in enumerate(stages):
        threads.append(threading.Thread(target=contextvars.copy_context().run,
                                        args=(_work, stage, queues[i], queues[i + 1], stop),
                                        name=f"vidtrans-{type(stage).__name__}", daemon=True))
    for thread in threads:
        thread.start()
    try:
        while True:
            item = _get(queues[-1], stop)
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        for stage in stages:
            interrupt = getattr(stage, "interrupt", None)
            if interrupt:
                interrupt()
        for thread in threads:
            thread.join(timeout=10)


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Stop signals (errors.STOP_SIGNALS) arriving in the block take effect at its end (the first of them,
    raised again): a stop lands before or after what the block does as one step (a model replacing
    another: never between publishing the new set and removing the old one's other files; a live
    frame recorded and counted as shown). (Blocking them would not do: the kernel hands a blocked
    signal to another thread, whose arrival Python's handler then reports.) Handlers can only be
    swapped in the main thread, where they run; elsewhere nothing waits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    swapped = {signum: handler for signum, handler in handlers.items() if handler not in (None, signal.SIG_IGN)}
    for signum in swapped:
        signal.signal(signum, lambda signum, frame: arrived.append(signum))
    try:
        yield
    finally:
        for signum, handler in swapped.items():
            signal.signal(signum, handler)
        if arrived:
            signal.raise_signal(arrived[0])
