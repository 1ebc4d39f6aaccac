"""Timers and the statistics taken from their raw samples.

Throughput blocks: on CUDA, CUDA events bracket the timed work on the stream, and the host's
enqueue loop is timed beside them (a block whose enqueue takes nearly as long as the GPU work is
host-bound: Python dispatch sets the pace); on the CPU, ``perf_counter``. Latency: each call on
its own, from a synchronised start to a synchronised end on the host clock, so a sample holds
everything a caller waits for (launch, dynamo guards, CUDA-graph bookkeeping, the kernels).
Every figure keeps its raw samples; medians, IQRs and percentiles are computed from them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from runfolder.schema import HOST_BOUND_RATIO, NOISY_REL_IQR


@dataclass(frozen=True)
class Timing:
    """Seconds per iteration: one sample per timed block of ``iters_per_sample`` iterations."""

    samples: tuple[float, ...]
    iters_per_sample: int
    timer: str
    # CUDA throughput blocks only: the host's seconds per iteration to enqueue each block
    host_samples: tuple[float, ...] | None = None

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

    @property
    def host_ratio(self) -> float | None:
        """Median over blocks of enqueue time / event time; None where not measured."""
        if self.host_samples is None:
            return None
        return float(np.median([h / s for h, s in zip(self.host_samples, self.samples)]))

    @property
    def host_bound(self) -> bool | None:
        ratio = self.host_ratio
        return None if ratio is None else ratio >= HOST_BOUND_RATIO


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device``; a no-op on the CPU, which runs synchronously."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Times callables on one device; ``name`` says how (for the results' method column)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.name = "CUDA events" if self.cuda else "time.perf_counter"
        self.latency_name = (
            "time.perf_counter per call, synchronised before and after"
            if self.cuda
            else "time.perf_counter per call"
        )

    def sync(self) -> None:
        sync(self.device)

    def block(self, fn: Callable[[], object], iters: int) -> float:
        """Seconds per iteration over ``iters`` back-to-back calls of ``fn``."""
        return self.timed_block(fn, iters)[0]

    def timed_block(self, fn: Callable[[], object], iters: int) -> tuple[float, float | None]:
        """Seconds per iteration of ``iters`` back-to-back calls, and on CUDA the host's seconds
        per iteration to enqueue them. The enqueue time can only approach the event time when
        the host, not the GPU, sets the pace; a GPU-bound block's enqueue ends early, as far
        ahead as the launch queue lets the host run."""
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            self.sync()
            start.record()
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            host = time.perf_counter() - t0
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / iters, host / iters
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) / iters, None

    def each(self, fn: Callable[[], object], n: int) -> list[float]:
        """Seconds of each of ``n`` calls, each from a synchronised start to a synchronised end
        (for latency percentiles). The same code on every device: ``sync`` is a no-op on the
        CPU, which runs synchronously."""
        out = []
        for _ in range(n):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
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
    blocks = [timer.timed_block(fn, iters) for _ in range(repeats)]
    hosts = [h for _, h in blocks]
    host_samples = None if None in hosts else tuple(hosts)  # type: ignore[arg-type]
    return Timing(tuple(s for s, _ in blocks), iters, timer.name, host_samples)


def measure_latency(fn: Callable[[], object], timer: Timer, *, warmup: int, samples: int) -> Timing:
    for _ in range(warmup):
        fn()
    return Timing(tuple(timer.each(fn, samples)), 1, timer.latency_name)
