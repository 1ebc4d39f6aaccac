"""The run estimate: what it adds up, and how the time left is refined as models finish."""

import pytest
import torch

from bench.measure.estimate import (
    COMPILE_S,
    AccuracyWork,
    Progress,
    SpeedWork,
    accuracy_seconds,
    duration,
    speed_seconds,
)
from bench.measure.modes import parse_mode

GPU = torch.device("cuda")  # only its type is read: nothing runs on it


def speed(modes=("bf16",), kinds=("infer", "train")) -> float:
    work = SpeedWork(
        flops_per_sample=1e9,
        layers=20,
        runs=[(parse_mode(m), 256, kinds) for m in modes],
        repeats=10,
        warmup=5,
        min_block_s=0.05,
        latency_samples=200,
    )
    return speed_seconds(work, 989.4, GPU)


def accuracy(flops=1e9, **kw) -> float:
    base = dict(flops_per_sample=flops, layers=20, train_steps=0, train_batch=256, eval_examples=0)
    return accuracy_seconds(AccuracyWork(**{**base, **kw}), 989.4, GPU)


def test_a_compiled_mode_adds_a_compile_per_measurement_and_two_for_its_check():
    """Inference and training measured: two compiles; the check against eager: two more."""
    compiled, eager = speed(modes=("bf16+compile",)), speed()
    assert compiled - eager == pytest.approx(4 * COMPILE_S["default"], rel=0.05)


def test_training_time_follows_the_steps_and_the_flops():
    small = accuracy(train_steps=1000, eval_examples=10_000)
    big = accuracy(flops=100e9, train_steps=1000, eval_examples=10_000)
    assert 0 < small < big
    assert accuracy(train_seconds=30.0) == pytest.approx(30)


def test_the_time_left_is_scaled_by_how_the_run_compares():
    progress = Progress({"a": 10.0, "b": 10.0, "c": 20.0})
    assert progress.seconds_left() == 40.0
    progress.finished("a", 20.0)  # twice as slow as estimated
    assert progress.seconds_left() == pytest.approx(60.0)
    progress.finished("b", 5.0)
    assert progress.seconds_left() == pytest.approx(20.0 * 25 / 20)


def test_durations_read_naturally():
    assert duration(42) == "42 s" and duration(450) == "7.5 min" and duration(7200) == "2.0 h"
