"""The threaded stage runner: order, failures and shutdown, with a parallel stage in the line."""

import threading
import time

import pytest

from concurrent.futures import ThreadPoolExecutor

from vidtrans.runner import Parallel, frame_batches, run_stages


class SlowSquare:
    """Takes longer on even items, so parallel workers finish out of order."""

    def __init__(self):
        self.threads = set()

    def process(self, item):
        self.threads.add(threading.current_thread().name)
        if item == "boom":
            raise ValueError("bad item")
        time.sleep(0.02 if item % 2 == 0 else 0.001)
        yield item * item

    def flush(self):
        yield "end"


def parallel(stage):
    return Parallel(stage, workers=2, pool=ThreadPoolExecutor(2, thread_name_prefix="vidtrans-SlowSquare"))


def test_parallel_stage_keeps_input_order_and_uses_its_workers():
    stage = SlowSquare()
    out = list(run_stages(iter(range(20)), [parallel(stage)]))
    assert out == [i * i for i in range(20)] + ["end"]
    assert len(stage.threads) == 2


def test_parallel_stage_failure_reaches_the_consumer():
    with pytest.raises(ValueError, match="bad item"):
        list(run_stages(iter([1, 2, "boom", 3]), [parallel(SlowSquare())]))


class CountingSquare(SlowSquare):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def process(self, item):
        self.calls += 1
        yield from super().process(item)


def test_closing_early_stops_the_parallel_work():
    stage = CountingSquare()
    pool = ThreadPoolExecutor(2, thread_name_prefix="vidtrans-CountingSquare")
    outputs = run_stages(iter(range(1000)), [Parallel(stage, workers=2, pool=pool)])
    assert next(outputs) == 0
    outputs.close()  # returns once the runner's threads have ended, the stage's queued work cancelled
    pool.shutdown(wait=True)  # what a worker had already begun finishes; after this nothing can run
    assert stage.calls < 20  # nothing more was started once the consumer had gone


def test_closing_early_does_not_wait_for_parallel_work_in_flight():
    """A forward pass cannot be cut short: the runner's thread stops waiting for it, and the pool's
    thread finishes it on its own (here: once released, after the runner is gone)."""
    blocked, release = threading.Event(), threading.Event()

    class EndlessAfterFirst:
        def process(self, item):
            if item > 0:
                blocked.set()
                release.wait()
            yield item

        def flush(self):
            return ()

    pool = ThreadPoolExecutor(1)
    try:
        outputs = run_stages(iter(range(5)), [Parallel(EndlessAfterFirst(), workers=1, pool=pool)])
        assert next(outputs) == 0
        blocked.wait()
        outputs.close()
        assert not [t for t in threading.enumerate() if t.name == "vidtrans-Parallel"]
        assert not release.is_set()
    finally:
        release.set()
        pool.shutdown(wait=True)


class Frame:
    def __init__(self, index):
        self.image, self.pts, self.index = f"image {index}", 100 * index, index


def test_frame_batches_cut_frames_in_order_with_a_short_last_batch():
    batches = list(frame_batches((Frame(i) for i in range(5)), 2))
    assert [b.indices for b in batches] == [[0, 1], [2, 3], [4]]
    assert batches[2].frames == ["image 4"] and batches[2].pts == [400]
    assert batches[0].keypoints is batches[0].model_input is batches[0].output is None


@pytest.mark.parametrize("count, expected, sizes", [
    (100, 100, [8] * 12 + [2, 2]),  # was [8] * 12 + [4]: the 4 ran alone on one of two workers
    (120, 120, [8] * 14 + [4, 4]),
    (16, 16, [8, 8]),  # a whole round of full batches: nothing left to share
    (7, 7, [4, 3]),
    (100, 90, [8] * 10 + [5, 8, 7]),  # an estimate short of the clip: full batches again after it
    (100, 130, [8] * 12 + [4]),  # or beyond it: as before
    (100, 0, [8] * 12 + [4]),  # no estimate: as before
])
def test_frame_batches_share_the_frames_left_among_the_workers(count, expected, sizes):
    batches = list(frame_batches((Frame(i) for i in range(count)), 8, expected, workers=2))
    assert [i for b in batches for i in b.indices] == list(range(count))
    assert [len(b.indices) for b in batches] == sizes
    one_worker = [len(b.indices) for b in frame_batches((Frame(i) for i in range(count)), 8, expected)]
    assert one_worker == [8] * (count // 8) + [count % 8] * (count % 8 > 0)
