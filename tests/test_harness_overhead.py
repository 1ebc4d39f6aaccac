"""The harness's own overhead on the CPU: pytest-benchmark micro-benchmarks, and checks that the
harness adds little to what it times.

Each pair times the same tiny work with and without the harness's wrapper, in one group, so
``pytest --benchmark-only --benchmark-group-by=group`` shows the cost side by side; ``nox -s
gate`` compares the medians with the run saved in ``bench/baselines/pytest-benchmark`` (by these
test names: keep them).

The checks assert no wall-clock limit: a shared 2-core machine runs the same code several times
slower from one moment to the next. Each compares, in one process, the harness's figure with a
bare loop of the same calls timed by hand, the two measured side by side in many rounds, and
bounds their ratio in the median round generously (1.5x plus a small absolute slack). Real
overhead, such as a 1 ms sleep in the inference step (about 60x the step measured here), fails
it by far; the machine's noise does not.
"""

import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from archs import ModelEntry
from bench.measure import compiled
from bench.measure.modes import Mode
from bench.measure.throughput import SpeedConfig, _inference_step, measure_speed
from bench.measure.timers import Timer

CPU = torch.device("cpu")

RATIO = 1.5  # the harness's figure may be at most this many times the bare loop's ...
TIMER_SLACK_S = 10e-9  # ... plus this much per no-op call (one no-op call: about 40-60 ns)
STEP_SLACK_S = 2e-6  # ... plus this much per inference step (one step: about 15 µs)


def noop() -> None:
    return None


def bare_block(fn: Callable[[], object], iters: int) -> float:
    """Seconds per call of ``iters`` back-to-back calls of ``fn``: the loop anyone would write."""
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def assert_little_overhead(
    what: str, harness: Callable[[], float], bare: Callable[[], float], rounds: int, slack_s: float
) -> None:
    """``harness()`` and ``bare()`` (seconds per call) measured side by side, ``rounds`` times,
    in alternating order; in the median round the harness's figure is at most ``RATIO`` times
    the bare loop's plus ``slack_s``. Each round compares two measurements taken moments apart,
    so that a slow spell of the machine (2x for a while, on a shared machine) falls on both."""
    h, b = [], []
    for i in range(rounds):
        if i % 2:
            b.append(bare())
            h.append(harness())
        else:
            h.append(harness())
            b.append(bare())
    over = [hi - (RATIO * bi + slack_s) for hi, bi in zip(h, b)]
    ratio = statistics.median(hi / bi for hi, bi in zip(h, b))
    assert statistics.median(over) <= 0, (
        f"{what}: the harness's figure is {statistics.median(h) * 1e6:.3f} µs per call, the bare "
        f"loop's {statistics.median(b) * 1e6:.3f} µs (medians of {rounds} rounds; median ratio "
        f"{ratio:.2f}x); above {RATIO}x + {slack_s * 1e6:g} µs in "
        f"{sum(o > 0 for o in over)} of {rounds} rounds"
    )


@pytest.mark.benchmark(group="timer: 1000 no-op steps")
def test_timer_block(benchmark):
    seconds = benchmark(Timer(CPU).block, noop, 1000)
    assert seconds >= 0

    # the timer's figure for a no-op is the bare loop's: it times nothing of its own
    timer, iters = Timer(CPU), 10_000
    assert_little_overhead(
        "Timer.block of a no-op",
        lambda: timer.block(noop, iters),
        lambda: bare_block(noop, iters),
        rounds=21,
        slack_s=TIMER_SLACK_S,
    )


@pytest.mark.benchmark(group="timer: 1000 no-op steps")
def test_bare_loop(benchmark):
    """The reference for test_timer_block's benchmark: the same loop without the timer."""

    def loop():
        for _ in range(1000):
            noop()

    benchmark(loop)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return nn.Linear(16, 16).eval(), torch.randn(8, 16)


def tiny_linear(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Linear(16, 16) on a (batch, 1, 4, 4) input: a step of microseconds, so that any
    per-step cost the harness adds shows."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * in_channels, 16))


TINY = ModelEntry("tiny_linear", "test", 2025, "-", "-", 4, tiny_linear)
# inference only, 3 blocks of at least 5 ms; no re-measuring: each round is one measurement
TINY_CFG = SpeedConfig(8, 3, 2, 0.005, latency_samples=1, kinds=("infer",), remeasure=0)


@pytest.mark.benchmark(group="one inference step of Linear(16, 16), batch 8")
def test_harness_inference_step(benchmark, tiny, monkeypatch):
    model, x = tiny
    step = _inference_step(model, x, Mode("fp32"), CPU)
    with torch.no_grad():
        benchmark(step)

    # the harness's inference figure (measure_speed, end to end) against the same model's
    # forward in a bare loop, in blocks as long as the harness's own; each side's fastest
    # block per round, since a busy machine only ever slows a block. The full garbage
    # collection around each measurement (a quarter second here, outside the timed blocks)
    # is skipped, so that the harness's blocks and the bare loop's are moments apart.
    monkeypatch.setattr(compiled, "gc", SimpleNamespace(collect=lambda: 0))
    iters = []

    def harness() -> float:
        result = measure_speed(TINY, Mode("fp32"), CPU, TINY_CFG, (4, 4))
        assert not result.errors, result.errors
        (m,) = result.measurements
        assert m.batch_size == 8 and len(m.timing.samples) == TINY_CFG.repeats
        iters.append(m.timing.iters_per_sample)
        return min(m.timing.samples)

    torch.manual_seed(0)
    bare_model, bare_x = tiny_linear().eval(), torch.randn(8, 1, 4, 4)

    def bare() -> float:
        n = iters[-1]  # the harness goes first in the first round
        with torch.no_grad():
            bare_model(bare_x)  # as the harness, a first call outside the timed blocks
            return min(bare_block(lambda: bare_model(bare_x), n) for _ in range(TINY_CFG.repeats))

    assert_little_overhead(
        "inference step of Linear(16, 16)", harness, bare, rounds=15, slack_s=STEP_SLACK_S
    )


@pytest.mark.benchmark(group="one inference step of Linear(16, 16), batch 8")
def test_bare_forward(benchmark, tiny):
    """The reference for test_harness_inference_step's benchmark: the forward alone."""
    model, x = tiny
    with torch.no_grad():
        out = benchmark(model, x)
    assert out.shape == (8, 16)
