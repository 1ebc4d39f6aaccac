"""pytest-benchmark micro-benchmarks of the harness's own overhead on the CPU.

Each pair times the same tiny work with and without the harness's wrapper, in one group, so
``pytest --benchmark-only --benchmark-group-by=group`` shows the cost side by side; compare
runs with ``--benchmark-autosave`` and ``--benchmark-compare``. No wall-clock limit is
asserted: these measure, the assertions only check the work was done.
"""

import pytest
import torch
from torch import nn

from bench.modes import Mode
from bench.speed import _inference_step
from bench.timing import Timer

CPU = torch.device("cpu")


def noop() -> None:
    return None


@pytest.mark.benchmark(group="timer: 1000 no-op steps")
def test_timer_block(benchmark):
    seconds = benchmark(Timer(CPU).block, noop, 1000)
    assert seconds >= 0


@pytest.mark.benchmark(group="timer: 1000 no-op steps")
def test_bare_loop(benchmark):
    def loop():
        for _ in range(1000):
            noop()

    benchmark(loop)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return nn.Linear(16, 16).eval(), torch.randn(8, 16)


@pytest.mark.benchmark(group="one inference step of Linear(16, 16), batch 8")
def test_harness_inference_step(benchmark, tiny):
    model, x = tiny
    step = _inference_step(model, x, Mode("fp32"), CPU)
    with torch.no_grad():
        benchmark(step)


@pytest.mark.benchmark(group="one inference step of Linear(16, 16), batch 8")
def test_bare_forward(benchmark, tiny):
    model, x = tiny
    with torch.no_grad():
        out = benchmark(model, x)
    assert out.shape == (8, 16)
