"""Timers and the statistics taken from their raw samples.

On CUDA, CUDA events bracket the timed work on the stream; on the CPU, ``perf_counter``.
Every figure keeps its raw samples; medians, IQRs and percentiles are computed from them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

NOISY_REL_IQR = 0.05  # IQR/median above this flags a measurement as noisy


@dataclass(frozen=True)
class Timing:
    """Seconds per iteration: one sample per timed block of ``iters_per_sample`` iterations."""

    samples: tuple[float, ...]
    iters_per_sample: int
    timer: str

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.samples, q))

    @property
    def median(self) -> float:
        return self.percentile(50)

    @property
    def iqr(self) -> float:
        return self.percentile(75) - self.percentile(25)

    @property
    def rel_iqr(self) -> float:
        return self.iqr / self.median

    @property
    def noisy(self) -> bool:
        return self.rel_iqr > NOISY_REL_IQR


class Timer:
    """Times callables on one device; ``name`` says how (for the results' method column)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.name = "CUDA events" if self.cuda else "time.perf_counter"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def block(self, fn: Callable[[], object], iters: int) -> float:
        """Seconds per iteration over ``iters`` back-to-back calls of ``fn``."""
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            self.sync()
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / iters
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) / iters

    def each(self, fn: Callable[[], object], n: int) -> list[float]:
        """Seconds of each of ``n`` calls, timed one by one (for latency percentiles)."""
        if self.cuda:
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(n)]  # fmt: skip
            self.sync()
            for start, end in events:
                start.record()
                fn()
                end.record()
            self.sync()
            return [s.elapsed_time(e) / 1e3 for s, e in events]
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    def wall(self, fn: Callable[[], object]) -> float:
        """Wall seconds of one synchronised call (first calls: compilation, warm-up)."""
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t0


def measure_throughput(
    fn: Callable[[], object], timer: Timer, *, warmup: int, repeats: int, min_block_s: float
) -> Timing:
    """Warm up, size blocks to last at least ``min_block_s``, then time ``repeats`` blocks."""
    for _ in range(warmup):
        fn()
    one = timer.block(fn, 1)
    iters = max(1, math.ceil(min_block_s / max(one, 1e-9)))
    samples = tuple(timer.block(fn, iters) for _ in range(repeats))
    return Timing(samples, iters, timer.name)


def measure_latency(fn: Callable[[], object], timer: Timer, *, warmup: int, samples: int) -> Timing:
    for _ in range(warmup):
        fn()
    return Timing(tuple(timer.each(fn, samples)), 1, timer.name)
