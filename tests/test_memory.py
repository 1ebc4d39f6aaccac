"""The process's peak resident memory over a block (``bench.measure.memory``), on this machine."""

import mmap
import time

import pytest

from bench.measure import memory
from bench.measure.memory import PeakRss

MB = 1e6

pytestmark = pytest.mark.skipif(
    memory.status_bytes("VmRSS") is None, reason="no /proc/self/status on this system"
)


def _hold(mb: int, seconds: float = 0.0) -> None:
    """Touch ``mb`` MB of fresh pages, hold them, and give them back before returning: an
    anonymous mapping of its own, as the heap keeps what it frees (``bench.measure.heap``)."""
    size = int(mb * MB)
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    time.sleep(seconds)
    block.close()


def test_the_peak_of_a_block_is_what_it_allocated_and_freed():
    with PeakRss() as big:
        _hold(300)
    assert big.method.startswith("VmHWM")  # Linux lets the process reset its own peak
    assert 290 * MB <= big.added_bytes <= 400 * MB, big.added_bytes / MB
    # the peak was reset as the next block began: the 300 MB freed above is not its peak
    with PeakRss() as small:
        _hold(20)
    assert 19 * MB <= small.added_bytes <= 100 * MB, small.added_bytes / MB
    assert small.peak_bytes < big.peak_bytes


def test_where_the_reset_is_refused_a_thread_samples_the_resident_size(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    with PeakRss(interval_s=0.01) as peak:
        _hold(200, seconds=0.3)
    assert peak.method.startswith("VmRSS of /proc/self/status sampled every 10 ms")
    assert 190 * MB <= peak.added_bytes <= 300 * MB, peak.added_bytes / MB
