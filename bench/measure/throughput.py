"""The speed phase: inference throughput, batch-1 latency and training-step throughput of one
model in one mode, on synthetic inputs resident on the device.

Set-up (model, precision, layout, compile, inputs) is kept apart from the runners; each runner
returns a frozen ``Measurement`` holding the raw timing samples. Each measurement (inference,
latency, training) starts from a reset dynamo and a freshly built model, so no compiled graph,
CUDA-graph pool or cached block of another measurement is in its figures. The first call
(compilation, CUDA-graph recording, cuDNN autotuning) is timed and its memory peak taken on
their own; the steady-state peak is reset after the warm-up. A CUDA out-of-memory halves the
batch and retries; a sticky CUDA error ends the model (``SpeedResult.context_lost``); any other
failure becomes that measurement's error and the run goes on.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from archs import ModelEntry
from bench.measure import backends, compiled, failures
from bench.measure.backends import BackendState
from bench.measure.modes import Mode
from bench.measure.timers import Timer, Timing, measure_latency, measure_throughput, sync
from bench.measure.train_step import TrainStep
from runfolder.schema import NOISY_REL_IQR

REMEASURE_REL_IQR = 3 * NOISY_REL_IQR
GPU_BATCH = 256  # the default throughput batch on a GPU
CPU_BATCH = 8  # and on the CPU

Kind = Literal["infer", "latency", "train"]


@dataclass(frozen=True)
class SpeedConfig:
    batch_size: int
    repeats: int
    warmup: int
    min_block_s: float  # each timed block lasts at least this long
    latency_samples: int
    kinds: tuple[Kind, ...] = ("infer", "latency", "train")
    # a throughput whose IQR/median is above REMEASURE_REL_IQR is measured again up to this
    # many times, and the steadiest measurement kept
    remeasure: int = 2

    @classmethod
    def for_device(cls, device: torch.device, batch_size: int | None = None) -> SpeedConfig:
        if device.type == "cuda":
            return cls(
                batch_size or GPU_BATCH, repeats=10, warmup=5, min_block_s=0.05, latency_samples=200
            )
        return cls(
            batch_size or CPU_BATCH, repeats=5, warmup=2, min_block_s=0.05, latency_samples=20
        )


@dataclass(frozen=True)
class Measurement:
    kind: Kind
    batch_size: int  # the batch that ran, after any out-of-memory halving
    requested_batch: int
    timing: Timing
    first_call_s: float  # the first call alone: compilation for compiled modes
    peak_mem_bytes: int | None  # CUDA only: steady state, over the timed calls
    first_call_peak_mem_bytes: int | None  # CUDA only: during the first call
    graph_breaks: int | None  # compiled modes only
    compiled_graphs: int | None  # compiled modes only: graphs dynamo compiled for this figure
    backends: BackendState
    attempts: int = 1  # measured this many times: a spread far above the noise threshold

    @property
    def samples_per_s(self) -> float:
        return self.batch_size / self.timing.median


@dataclass(frozen=True)
class SpeedResult:
    model: str
    mode: Mode
    input_shape: tuple[int, int, int]
    device: torch.device
    measurements: list[Measurement] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # kind -> message
    context_lost: str | None = None  # a sticky CUDA error: nothing more can run in this process


def _prepared_model(
    entry: ModelEntry,
    mode: Mode,
    device: torch.device,
    train: bool,
    num_classes: int,
    shape: tuple[int, int, int],
) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = entry.build(num_classes=num_classes, in_channels=shape[0], input_size=shape[1:])
    model = mode.place(model, device).train(train)
    return model, compiled.compile_model(model, mode)


def _inputs(
    batch: int, shape: tuple[int, int, int], num_classes: int, mode: Mode, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    x = mode.inputs(torch.randn(batch, *shape, device=device))
    y = torch.randint(0, num_classes, (batch,), device=device)
    return x, y


def _inference_step(
    model: nn.Module, x: torch.Tensor, mode: Mode, device: torch.device
) -> Callable[[], None]:
    if mode.autocast_dtype is None:
        # no context manager at all: a disabled autocast still costs microseconds per step
        return lambda: model(x)

    def step() -> None:
        with mode.autocast(device):  # per step, as a real inference loop (timm's) does
            model(x)

    return step


class _PeakMemory:
    """CUDA's allocated-memory peak since the last ``reset``; None on other devices."""

    def __init__(self, device: torch.device):
        self.device = device

    def reset(self) -> None:
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device)


def _measure(
    kind: Kind,
    entry: ModelEntry,
    mode: Mode,
    device: torch.device,
    batch: int,
    shape: tuple[int, int, int],
    cfg: SpeedConfig,
    num_classes: int,
) -> Measurement:
    compiled.reset(device)
    train = kind == "train"
    raw, model = _prepared_model(entry, mode, device, train, num_classes, shape)
    x, y = _inputs(batch, shape, num_classes, mode, device)
    timer, memory = Timer(device), _PeakMemory(device)
    state = mode.backends(device)
    with backends.applied(state), compiled.no_eager_fallback(), torch.set_grad_enabled(train):
        if train:
            step = TrainStep(model, x, y, mode, device, params=raw.parameters())
        else:
            step = _inference_step(model, x, mode, device)
        memory.reset()
        first_call_s = timer.wall(step)
        first_peak = memory.peak()
        compiled.check_compiled(mode)
        is_compiled = mode.compile != "none"
        breaks = compiled.graph_breaks() if is_compiled else None
        graphs = compiled.compiled_graphs() if is_compiled else None
        for _ in range(cfg.warmup):
            step()
        memory.reset()
        if kind == "latency":
            timing = measure_latency(step, timer, warmup=0, samples=cfg.latency_samples)
        else:
            timing = measure_throughput(
                step, timer, warmup=0, repeats=cfg.repeats, min_block_s=cfg.min_block_s
            )
        peak = memory.peak()
    return Measurement(
        kind, batch, batch, timing, first_call_s, peak, first_peak, breaks, graphs, state
    )


def run_with_oom_retry(
    run: Callable[[int], Measurement], batch: int, device: torch.device
) -> Measurement:
    """Halve the batch on out-of-memory until it fits (timm's ``_try_run``); any other error,
    an illegal memory access included, propagates."""
    requested = batch
    while True:
        try:
            return dataclasses.replace(run(batch), requested_batch=requested)
        except Exception as exc:
            if batch == 1 or not failures.is_out_of_memory(exc):
                raise
        # Freed here, after the except block: inside it the traceback still holds the failing
        # frames and their tensors (and a compiled shape's graph pool).
        batch //= 2
        compiled.reset(device)


def _steadiest(
    run: Callable[[int], Measurement], kind: Kind, cfg: SpeedConfig, device: torch.device
) -> Measurement:
    """A throughput measured again while its spread is far above the noise threshold (a busy
    machine slowed some blocks), the steadiest kept; latency percentiles keep their spread."""
    m = run_with_oom_retry(run, 1 if kind == "latency" else cfg.batch_size, device)
    attempts = 1
    while kind != "latency" and attempts <= cfg.remeasure and m.timing.rel_iqr > REMEASURE_REL_IQR:
        again = run_with_oom_retry(run, m.requested_batch, device)
        attempts += 1
        m = min(m, again, key=lambda x: x.timing.rel_iqr)
    return dataclasses.replace(m, attempts=attempts)


def measure_speed(
    entry: ModelEntry,
    mode: Mode,
    device: torch.device,
    cfg: SpeedConfig,
    input_size: tuple[int, int],
    num_classes: int = 10,
    in_channels: int = 1,
) -> SpeedResult:
    """Each kind in ``cfg.kinds`` on its own freshly built (and compiled) model."""
    shape = (in_channels, *input_size)
    result = SpeedResult(entry.name, mode, shape, device)
    for kind in cfg.kinds:
        # run(batch) measures this kind; the batch is the one argument left open
        run = functools.partial(
            _measure,
            kind,
            entry,
            mode,
            device,
            shape=shape,
            cfg=cfg,
            num_classes=num_classes,
        )
        try:
            result.measurements.append(_steadiest(run, kind, cfg, device))
        except Exception as exc:  # this measurement's failure is its row's, not the run's
            result.errors[kind] = failures.describe(exc)
            if failures.is_sticky_cuda_error(exc):
                return dataclasses.replace(result, context_lost=result.errors[kind])
    compiled.reset(device)
    return result
