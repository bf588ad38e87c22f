"""The threaded stage runner: order, failures and shutdown, with a parallel stage in the line."""

import threading
import time

import pytest

from vidtrans.stages import Parallel, run_stages


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


def test_parallel_stage_keeps_input_order_and_uses_its_workers():
    stage = SlowSquare()
    out = list(run_stages(iter(range(20)), [Parallel(stage, workers=2)]))
    assert out == [i * i for i in range(20)] + ["end"]
    assert len(stage.threads) == 2


def test_parallel_stage_failure_reaches_the_consumer():
    with pytest.raises(ValueError, match="bad item"):
        list(run_stages(iter([1, 2, "boom", 3]), [Parallel(SlowSquare(), workers=2)]))


def test_closing_early_stops_the_parallel_workers():
    def ours():
        return [t.name for t in threading.enumerate() if t.name.startswith("vidtrans-SlowSquare")]

    outputs = run_stages(iter(range(1000)), [Parallel(SlowSquare(), workers=2)])
    assert next(outputs) == 0
    assert ours()
    outputs.close()
    deadline = time.monotonic() + 5
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours() == []
