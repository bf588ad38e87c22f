"""Option values a machine cannot honour are refused when the options are made, in one line."""

import pytest

from vidtrans import BatchOptions, EncodeOptions
from vidtrans.errors import UsageError


@pytest.mark.parametrize("make", [lambda n: EncodeOptions(threads=n), lambda n: EncodeOptions(segments=n),
                                  lambda n: BatchOptions(workers=n)], ids=["threads", "segments", "workers"])
@pytest.mark.parametrize("value", [1025, 10**12, 2**70])
def test_absurd_thread_counts_are_refused_up_front(make, value):
    # They reached PyAV as a bare OverflowError, or started a thread per worker until the process hung.
    with pytest.raises(UsageError, match=rf"must be from [01] to 1024, (not|got) {value}$"):
        make(value)
    make(1024)
