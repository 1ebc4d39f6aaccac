"""How long a run will take, said before it starts and refined as it goes.

Before anything is measured the only knowledge is each model's static FLOPs and the device's
compute peak, so the first estimate assumes a fixed fraction of that peak, a floor per step
(kernel launches and Python dispatch bound small models) and a fixed compile time. As models
finish, the time left is scaled by how the run's actual times compare with their estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.measure.modes import Mode

# The fraction of the compute peak a model reaches: rough (on an H100, ResNet-18 at 96x96 trains
# in bf16 at about 6% of the datasheet peak and VGG at 224x224 at several times that), and
# refined as the run goes.
ASSUMED_EFFICIENCY = 0.15
# the least a step takes, however small its arithmetic: Python dispatch and kernel launches,
# per leaf layer (an eager training step runs forward, backward and the optimizer)
LAYER_FLOOR_S = {
    ("cuda", False): 2e-5,
    ("cuda", True): 8e-5,
    ("cpu", False): 1e-5,
    ("cpu", True): 5e-5,
}  # (device type, training)
COMPILE_S = {  # one torch.compile of one model and shape, by compile mode
    "default": 15.0,
    "reduce-overhead": 20.0,
    "max-autotune": 180.0,  # autotuning benchmarks many kernel configurations
    "max-autotune-no-cudagraphs": 180.0,
}
TRAIN_FACTOR = 3  # a training step: forward + backward (twice the forward)


@dataclass(frozen=True)
class SpeedWork:
    """What the speed phase asks of one model."""

    flops_per_sample: float  # forward, fvcore's count
    layers: int  # leaf layers: what the per-step floor scales with
    runs: list[tuple[Mode, int, tuple[str, ...]]]  # (mode, batch, kinds)
    repeats: int
    warmup: int
    min_block_s: float
    latency_samples: int


@dataclass(frozen=True)
class AccuracyWork:
    """What the accuracy phase asks of one model."""

    flops_per_sample: float
    layers: int
    train_steps: float  # steps it trains for, over all seeds
    train_batch: int
    eval_examples: float  # examples it evaluates on, summed over evaluations
    train_seconds: float = 0.0  # a seconds budget: the training time itself
    compile_training: Mode | None = None  # the training mode when it compiles
    cap_s: float | None = None  # a model over the cap stops after its first steps


def step_seconds(
    flops: float, layers: int, peak_tflops: float, device: torch.device, train: bool
) -> float:
    floor = LAYER_FLOOR_S[(device.type, train)] * max(layers, 1)
    return max(flops / (peak_tflops * 1e12 * ASSUMED_EFFICIENCY), floor)


def speed_seconds(work: SpeedWork, peak_tflops: float, device: torch.device) -> float:
    total = 0.0
    # each compiled mode's check against eager (bench.measure.agreement): its own two compiles, the
    # inference and the training graph
    for mode in dict.fromkeys(mode for mode, _, _ in work.runs):
        total += 2 * COMPILE_S.get(mode.compile, 0.0)
    for mode, batch, kinds in work.runs:
        for kind in kinds:
            b = 1 if kind == "latency" else batch
            factor = TRAIN_FACTOR if kind == "train" else 1
            step = step_seconds(
                work.flops_per_sample * b * factor,
                work.layers,
                peak_tflops,
                device,
                kind == "train",
            )
            first = COMPILE_S.get(mode.compile, step)
            if kind == "latency":
                timed = work.latency_samples * step
            else:
                timed = (work.repeats + 1) * max(work.min_block_s, step)
            total += first + work.warmup * step + timed
    return total


def accuracy_seconds(work: AccuracyWork, peak_tflops: float, device: torch.device) -> float:
    step = step_seconds(
        work.flops_per_sample * TRAIN_FACTOR * work.train_batch,
        work.layers,
        peak_tflops,
        device,
        True,
    )
    total = work.train_seconds + work.train_steps * step
    total += work.eval_examples * work.flops_per_sample / (peak_tflops * 1e12 * ASSUMED_EFFICIENCY)
    if work.cap_s is not None:
        total = min(total, work.cap_s)
    if total and work.compile_training is not None:
        total += COMPILE_S.get(work.compile_training.compile, 0.0)
    return total


@dataclass
class Progress:
    """Estimated and actual seconds of the models done so far; the time left is the estimate
    of the rest scaled by actual / estimated so far."""

    estimates: dict[str, float]  # model -> estimated seconds (all phases)
    done_estimated: float = 0.0
    done_actual: float = 0.0

    @property
    def total_estimate(self) -> float:
        return sum(self.estimates.values())

    def finished(self, model: str, actual_s: float) -> None:
        self.done_estimated += self.estimates.get(model, 0.0)
        self.done_actual += actual_s

    def seconds_left(self) -> float:
        left = self.total_estimate - self.done_estimated
        if self.done_estimated > 0:
            left *= self.done_actual / self.done_estimated
        return max(left, 0.0)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """``42 s``, ``7.5 min``, ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
