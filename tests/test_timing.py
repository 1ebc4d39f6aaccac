import time

import pytest
import torch

from bench.measure.timers import Timer, Timing, measure_latency, measure_throughput

CPU = torch.device("cpu")


def test_statistics_come_from_the_raw_samples():
    t = Timing(samples=(1.0, 2.0, 3.0, 4.0, 5.0), iters_per_sample=10, timer="test")
    assert t.median == 3.0
    assert t.iqr == pytest.approx(2.0)  # 4 - 2 (linear interpolation)
    assert t.rel_iqr == pytest.approx(2 / 3)
    assert t.noisy
    assert t.percentile(100) == 5.0


def test_tight_samples_are_not_noisy():
    t = Timing(samples=(1.00, 1.01, 1.02, 0.99, 1.00), iters_per_sample=1, timer="test")
    assert t.rel_iqr < 0.05
    assert not t.noisy


def test_throughput_blocks_are_sized_and_counted():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.002)

    timing = measure_throughput(fn, Timer(CPU), warmup=3, repeats=4, min_block_s=0.01)
    # sleep(0.002) lasts at least 2 ms, so a 10 ms block holds at most 5 steps
    assert 1 <= timing.iters_per_sample <= 5
    assert len(timing.samples) == 4
    assert len(calls) == 3 + 1 + 4 * timing.iters_per_sample  # warm-up, sizing call, blocks
    assert min(timing.samples) >= 0.002  # a lower bound only: sleep never returns early
    assert timing.timer == "time.perf_counter"


def test_latency_times_each_call():
    calls = []
    timing = measure_latency(lambda: calls.append(1), Timer(CPU), warmup=2, samples=7)
    assert len(timing.samples) == 7 and timing.iters_per_sample == 1
    assert len(calls) == 9
