"""The speed phase: inference throughput, batch-1 latency and training-step throughput of one
model in one mode, on synthetic inputs resident on the device.

Set-up (model, precision, layout, compile, inputs) is kept apart from the runners; each runner
returns a frozen ``Measurement`` holding the raw timing samples. Warm-up, compilation included,
happens before any timed block and is timed on its own. A CUDA out-of-memory halves the batch
and retries; any other failure becomes that measurement's error and the run goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch import nn
from torch.nn import functional as F

from archs import ModelEntry

from . import backends
from .modes import Mode
from .timing import Timer, Timing, measure_latency, measure_throughput

Kind = Literal["infer", "latency", "train"]


@dataclass(frozen=True)
class SpeedConfig:
    batch_size: int
    repeats: int
    warmup: int
    min_block_s: float  # each timed block lasts at least this long
    latency_samples: int
    kinds: tuple[Kind, ...] = ("infer", "latency", "train")

    @classmethod
    def for_device(cls, device: torch.device, batch_size: int | None = None) -> SpeedConfig:
        if device.type == "cuda":
            return cls(batch_size or 256, repeats=10, warmup=5, min_block_s=0.05,
                       latency_samples=200)  # fmt: skip
        return cls(batch_size or 8, repeats=5, warmup=2, min_block_s=0.05, latency_samples=20)


@dataclass(frozen=True)
class Measurement:
    kind: Kind
    batch_size: int  # the batch that ran, after any out-of-memory halving
    requested_batch: int
    timing: Timing
    first_call_s: float  # the first warm-up call alone: compilation for compiled modes
    peak_mem_bytes: int | None  # CUDA only
    graph_breaks: int | None  # compiled modes only

    @property
    def samples_per_s(self) -> float:
        return self.batch_size / self.timing.median


@dataclass(frozen=True)
class SpeedResult:
    model: str
    mode: Mode
    input_shape: tuple[int, int, int]
    measurements: list[Measurement] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # kind -> message


def clean_state(device: torch.device) -> None:
    """Each model and mode starts afresh: no compiled graphs, no cached blocks, no old peaks."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _prepared_model(entry: ModelEntry, mode: Mode, device: torch.device, train: bool,
                    num_classes: int, in_channels: int) -> tuple[nn.Module, nn.Module]:  # fmt: skip
    torch.manual_seed(0)
    model = entry.build(num_classes=num_classes, in_channels=in_channels)
    model = model.to(device=device, memory_format=mode.memory_format).train(train)
    if mode.compile == "none":
        return model, model
    compile_mode = None if mode.compile == "default" else mode.compile
    # dynamic=False: batch 1 and batch N each get their own static graph
    return model, torch.compile(model, mode=compile_mode, dynamic=False)


def _inputs(batch: int, shape: tuple[int, int, int], num_classes: int, mode: Mode,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    x = torch.randn(batch, *shape, device=device).contiguous(memory_format=mode.memory_format)
    y = torch.randint(0, num_classes, (batch,), device=device)
    return x, y


def _graph_breaks(mode: Mode) -> int | None:
    if mode.compile == "none":
        return None
    return int(sum(torch._dynamo.utils.counters["graph_break"].values()))


def _inference_step(model: nn.Module, x: torch.Tensor, mode: Mode,
                    device: torch.device) -> Callable[[], None]:  # fmt: skip
    if mode.autocast_dtype is None:
        # no context manager at all: a disabled autocast still costs microseconds per step
        return lambda: model(x)

    def step() -> None:
        with mode.autocast(device):  # per step, as a real inference loop (timm's) does
            model(x)

    return step


def _training_step(model: nn.Module, raw: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   mode: Mode, device: torch.device) -> Callable[[], None]:  # fmt: skip
    optimizer = torch.optim.SGD(raw.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type) if mode.precision == "fp16" else None

    def step() -> None:
        if mode.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with mode.autocast(device):
            loss = F.cross_entropy(model(x), y)
        backward_and_step(loss, optimizer, scaler)

    return step


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler | None) -> None:  # fmt: skip
    """Zero the gradients, backpropagate ``loss`` and step; through ``scaler`` under fp16."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def _measure(kind: Kind, raw: nn.Module, model: nn.Module, mode: Mode, device: torch.device,
             batch: int, shape: tuple[int, int, int], cfg: SpeedConfig,
             num_classes: int) -> Measurement:  # fmt: skip
    timer = Timer(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    x, y = _inputs(batch, shape, num_classes, mode, device)
    train = kind == "train"
    with backends.applied(mode.backends(device)), torch.set_grad_enabled(train):
        if train:
            step = _training_step(model, raw, x, y, mode, device)
        else:
            step = _inference_step(model, x, mode, device)
        first_call_s = timer.wall(step)
        breaks = _graph_breaks(mode)  # read now: a later batch-1 recompile adds its own
        if kind == "latency":
            timing = measure_latency(step, timer, warmup=cfg.warmup, samples=cfg.latency_samples)
        else:
            timing = measure_throughput(step, timer, warmup=cfg.warmup, repeats=cfg.repeats,
                                        min_block_s=cfg.min_block_s)  # fmt: skip
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return Measurement(kind, batch, batch, timing, first_call_s, peak, breaks)


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_with_oom_retry(run: Callable[[int], Measurement], batch: int,
                       device: torch.device) -> Measurement:  # fmt: skip
    """Halve the batch on CUDA out-of-memory until it fits (timm's ``_try_run``); any other
    error, an illegal memory access included, propagates."""
    requested = batch
    while True:
        try:
            m = run(batch)
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            _free_memory(device)
            continue
        return dataclasses.replace(m, requested_batch=requested)


def measure_speed(entry: ModelEntry, mode: Mode, device: torch.device, cfg: SpeedConfig,
                  input_size: tuple[int, int], num_classes: int = 10,
                  in_channels: int = 1) -> SpeedResult:  # fmt: skip
    """Inference and batch-1 latency share one eval-mode model (compiled once per input
    shape); training gets a fresh train-mode model. Each starts from a clean state."""
    shape = (in_channels, *input_size)
    result = SpeedResult(entry.name, mode, shape)
    for train in (False, True):
        kinds = [k for k in cfg.kinds if (k == "train") == train]
        if not kinds:
            continue
        clean_state(device)
        try:
            raw, model = _prepared_model(entry, mode, device, train, num_classes, in_channels)
        except Exception as exc:
            for kind in kinds:
                result.errors[kind] = f"{type(exc).__name__}: {_first_line(exc)}"
            continue
        for kind in kinds:
            # run(batch) measures this kind; the batch is the one argument left open
            run = functools.partial(_measure, kind, raw, model, mode, device, shape=shape,
                                    cfg=cfg, num_classes=num_classes)  # fmt: skip
            try:
                result.measurements.append(
                    run_with_oom_retry(run, 1 if kind == "latency" else cfg.batch_size, device)
                )
            except Exception as exc:  # this measurement's failure is its row's, not the run's
                result.errors[kind] = f"{type(exc).__name__}: {_first_line(exc)}"
        del raw, model, run
        clean_state(device)
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else ""
