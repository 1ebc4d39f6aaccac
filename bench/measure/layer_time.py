"""Where the time goes: per-layer time of a training step and of inference, the step's split
into forward, backward and optimizer, and the profiler's own overhead.

Per-layer time comes from ``torch.profiler``: a forward pre-hook opens a ``record_function`` range
named ``fwd:PATH`` (``PATH`` as in ``bench.measure.static_profile.LayerRow``, ``(model)`` for the
whole model) and a forward hook closes it, so every operator, and on CUDA every kernel it launched,
lies inside the range of the module that ran it. A module's forward time is its range's time
(on CUDA the device time of the kernels launched inside it), its self time that minus its
child modules' ranges. Backward operators are not inside any range: each backward node
(``autograd::engine::evaluate_function: XBackward0``) carries the sequence number of the
forward operator that made it, and goes to the innermost module range that operator ran in.

Layer kinds (``runfolder.schema.LAYER_KINDS``): a leaf module's kind comes from its type. The
rule for time not inside any leaf module: it is its parent container's self time. The part of
it spent in ``aten::cat``, ``aten::add`` and ``aten::add_`` called directly in the container's
forward (DenseNet's concatenation, ResNet's residual addition), and in their backward nodes, is
``join`` (concatenation and residual addition); the rest of a container's self time (flatten,
views, Python between the layers) is ``other``. This is measured, not read from the source: a
container is ``join`` exactly where the profiler saw it concatenate or add.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function, schedule

from bench.measure import backends
from bench.measure.modes import Mode
from bench.measure.static_profile import LayerRow
from bench.measure.timers import Timer, Timing, sync
from bench.measure.train_step import TrainStep
from runfolder.schema import PROFILE_COLUMNS

RANGE = "fwd:"
ROOT = "(model)"
LOSS, OPTIMIZER, BACKWARD_REST = "(loss)", "(optimizer)", "(backward outside modules)"
JOIN_OPS = frozenset({"aten::cat", "aten::add", "aten::add_"})
JOIN_BACKWARD = ("CatBackward", "AddBackward")
EVALUATE = "autograd::engine::evaluate_function: "

_KIND_TYPES: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("conv", (nn.modules.conv._ConvNd,)),
    (
        "norm",
        (
            nn.modules.batchnorm._NormBase,
            nn.LayerNorm,
            nn.GroupNorm,
            nn.LocalResponseNorm,
        ),
    ),
    (
        "activation",
        (
            nn.ReLU,
            nn.ReLU6,
            nn.LeakyReLU,
            nn.GELU,
            nn.SiLU,
            nn.Sigmoid,
            nn.Tanh,
            nn.ELU,
            nn.Hardswish,
            nn.Softmax,
        ),
    ),
    (
        "pooling",
        (
            nn.modules.pooling._MaxPoolNd,
            nn.modules.pooling._AvgPoolNd,
            nn.modules.pooling._AdaptiveAvgPoolNd,
            nn.modules.pooling._AdaptiveMaxPoolNd,
        ),
    ),
    ("linear", (nn.Linear,)),
)


def layer_kind(module: nn.Module) -> str:
    """The kind of a leaf module; ``container`` for a module with children."""
    if any(True for _ in module.children()):
        return "container"
    for kind, types in _KIND_TYPES:
        if isinstance(module, types):
            return kind
    return "other"


@dataclass(frozen=True)
class StepSplit:
    """Seconds per training step: each part timed on its own (median of blocks), and the
    unprofiled full step timed as the speed phase times it."""

    forward: Timing  # forward and loss
    backward: Timing
    optimizer: Timing  # zero_grad and step
    step: Timing

    @property
    def parts_s(self) -> float:
        return self.forward.median + self.backward.median + self.optimizer.median

    @property
    def gap(self) -> float:
        """(forward + backward + optimizer) / full step - 1: the median over the paired blocks
        (each split block ran right after its full-step block, so a slowdown of the machine
        that hits both cancels)."""
        sums = [
            sum(p) for p in zip(self.forward.samples, self.backward.samples, self.optimizer.samples)
        ]
        return statistics.median(a / b for a, b in zip(sums, self.step.samples)) - 1


@dataclass
class LayerTimes:
    """Microseconds per step of each module path, from one profile."""

    total: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    self_: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    backward: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    join: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    outside: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    step_us: float = 0.0  # the profiled step range, per step


@dataclass(frozen=True)
class LayerProfile:
    model: str
    mode: Mode
    batch: int
    split: StepSplit
    profiled_step_s: float  # wall time of a profiled training step (median)
    layers: pd.DataFrame  # runfolder.schema.PROFILE_COLUMNS
    step_us: float  # the profiled step's own range, per step (what the rows share)
    timer: str

    @property
    def overhead(self) -> float:
        return self.profiled_step_s / self.split.step.median - 1

    @property
    def modules(self) -> pd.DataFrame:
        return self.layers[~self.layers["path"].str.startswith("(")]

    @property
    def attributed(self) -> float:
        """Every row's self time (modules, loss, optimizer, backward outside modules) over the
        profiled step's time."""
        return float(self.layers["self_ms"].sum()) * 1e3 / self.step_us

    def kind_shares(self) -> tuple[dict[str, float], dict[str, float]]:
        """Share (%) of the modules' time (forward and backward self) and of the MACs, by kind:
        leaf modules by type, containers split into ``join`` and ``other``."""
        mods = self.modules
        time_by: dict[str, float] = defaultdict(float)
        macs_by: dict[str, float] = defaultdict(float)
        for row in mods.itertuples():
            if row.kind == "container":
                time_by["join"] += row.join_ms
                time_by["other"] += row.self_ms - row.join_ms
                macs_by["join" if row.join_ms > 0 else "other"] += row.self_macs
            else:
                time_by[row.kind] += row.self_ms
                macs_by[row.kind] += row.self_macs
        t, m = sum(time_by.values()), sum(macs_by.values())
        return (
            {k: 100 * v / t for k, v in time_by.items()} if t > 0 else {},
            {k: 100 * v / m for k, v in macs_by.items()} if m > 0 else {},
        )


def _time_us(event, cuda: bool) -> float:
    return event.device_time_total if cuda else event.cpu_time_total


@contextmanager
def module_ranges(model: nn.Module) -> Iterator[dict[str, int]]:
    """A ``record_function`` range ``fwd:PATH`` around each module's forward; yields the output
    bytes of each module (its first call with a tensor output)."""
    out_bytes: dict[str, int] = {}
    open_ranges: dict[str, list] = defaultdict(list)
    handles = []
    for path, module in model.named_modules():
        name = RANGE + (path or ROOT)

        def pre(_m, _inputs, name=name):
            r = record_function(name)
            r.__enter__()
            open_ranges[name].append(r)

        def post(_m, _inputs, output, name=name, path=path):
            open_ranges[name].pop().__exit__(None, None, None)
            if path not in out_bytes and isinstance(output, torch.Tensor):
                out_bytes[path] = output.numel() * output.element_size()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        yield out_bytes
    finally:
        for h in handles:
            h.remove()


def _range_path(event) -> str | None:
    return event.name[len(RANGE) :].replace(ROOT, "") if event.name.startswith(RANGE) else None


def _enclosing_module(event) -> str | None:
    parent = event.cpu_parent
    while parent is not None:
        path = _range_path(parent)
        if path is not None:
            return path
        parent = parent.cpu_parent
    return None


def layer_times(events, steps: int, cuda: bool) -> LayerTimes:
    """Per-module times per step from a profile's events (see the module's docstring)."""
    out = LayerTimes()
    seq_module: dict[int, str] = {}
    for e in events:
        path = _range_path(e)
        if path is not None:
            t = _time_us(e, cuda)
            out.total[path] += t
            out.self_[path] += t
            parent = _enclosing_module(e)
            if parent is not None:
                out.self_[parent] -= t
            continue
        if e.name == "archbench:step":
            out.step_us += _time_us(e, cuda)
        elif e.name in ("archbench:loss", "archbench:optimizer"):
            key = LOSS if e.name.endswith("loss") else OPTIMIZER
            out.outside[key] += _time_us(e, cuda)
        if e.name.startswith(EVALUATE):
            continue
        module = _enclosing_module(e)
        if module is None:
            continue
        if e.sequence_nr >= 0:
            seq_module.setdefault(e.sequence_nr, module)
        parent = e.cpu_parent
        if e.name in JOIN_OPS and parent is not None and _range_path(parent) == module:
            out.join[module] += _time_us(e, cuda)
    for e in events:
        if not e.name.startswith(EVALUATE):
            continue
        module = seq_module.get(e.sequence_nr) if e.sequence_nr >= 0 else None
        t = _time_us(e, cuda)
        if module is None:
            out.outside[BACKWARD_REST] += t
            continue
        out.backward[module] += t
        if any(e.name[len(EVALUATE) :].startswith(b) for b in JOIN_BACKWARD):
            out.join[module] += t
    if LOSS in out.outside:  # the loss's range holds the model's forward: only the loss is its
        out.outside[LOSS] -= out.total.get("", 0.0)
    for d in (out.total, out.self_, out.backward, out.join, out.outside):
        for k in d:
            d[k] /= steps
    out.step_us /= steps
    return out


def memory_growth(events, cuda: bool) -> dict[str, int]:
    """Net bytes allocated inside each module's range (allocations less frees: what its forward
    keeps, its output and what autograd saves for backward), from a profile made with
    ``profile_memory``: the CUDA caching allocator's on CUDA, the CPU allocator's on the CPU."""
    growth: dict[str, int] = defaultdict(int)
    for e in events:
        path = _range_path(e)
        if path is not None:
            growth[path] += e.device_memory_usage if cuda else e.cpu_memory_usage
    return growth


def measure_split(
    parts, timer: Timer, *, warmup: int, repeats: int, min_block_s: float
) -> tuple[Timing, Timing, Timing, Timing]:
    """The full step timed as the speed phase times it (warm-up, blocks of at least
    ``min_block_s``, ``Timer.timed_block``), and each part timed on its own in a block of as
    many whole steps: synchronised before and after each part, its seconds summed over the
    block. Full and split blocks alternate, so a busy machine slows both alike; the medians of
    ``repeats`` blocks each are the figures."""
    forward, backward, optimize = parts

    def step() -> None:
        backward_loss = forward()
        backward(backward_loss)
        optimize()

    for _ in range(warmup):
        step()
    iters = max(1, math.ceil(min_block_s / max(timer.block(step, 1), 1e-9)))
    full: list[tuple[float, float | None]] = []
    samples: list[tuple[float, float, float]] = []
    for _ in range(repeats):
        full.append(timer.timed_block(step, iters))
        acc = [0.0, 0.0, 0.0]
        for _ in range(iters):
            timer.sync()
            t0 = time.perf_counter()
            loss = forward()
            timer.sync()
            t1 = time.perf_counter()
            backward(loss)
            timer.sync()
            t2 = time.perf_counter()
            optimize()
            timer.sync()
            t3 = time.perf_counter()
            acc[0] += t1 - t0
            acc[1] += t2 - t1
            acc[2] += t3 - t2
        samples.append((acc[0] / iters, acc[1] / iters, acc[2] / iters))
    hosts = [h for _, h in full]
    host_samples = None if None in hosts else tuple(hosts)  # type: ignore[arg-type]
    whole = Timing(tuple(s for s, _ in full), iters, timer.name, host_samples)
    name = "time.perf_counter around each part, synchronised before and after"
    split = [Timing(tuple(s[i] for s in samples), iters, name) for i in range(3)]
    return split[0], split[1], split[2], whole


def _profiled(
    steps_fn: Callable[[], None],
    steps: int,
    cuda: bool,
    trace: Path | None,
    memory: bool = False,
):
    """``steps`` profiled calls of ``steps_fn`` after one the profiler warms up on and drops;
    their events and the median wall time of a call. ``memory``: the profiler also records
    every allocation and free (slower: not for the timed steps)."""
    # kineto prints a line as each profile starts and stops, and on a machine without CUDA an
    # error about the device count; a user's own setting wins
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    walls = []
    with profile(
        activities=activities,
        schedule=schedule(wait=0, warmup=1, active=steps),
        profile_memory=memory,
    ) as prof:
        for k in range(steps + 1):
            sync_device = torch.cuda.synchronize if cuda else (lambda: None)
            sync_device()
            t0 = time.perf_counter()
            with record_function("archbench:step"):
                steps_fn()
            sync_device()
            if k > 0:
                walls.append(time.perf_counter() - t0)
            if k < steps:  # a step after the last would end the cycle and drop its events
                prof.step()
    if trace is not None:
        trace.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(trace))
    return prof.events(), statistics.median(walls)


def profile_layers(
    build: Callable[[], nn.Module],
    name: str,
    mode: Mode,
    device: torch.device,
    batch: int,
    shape: tuple[int, int, int],
    static_layers: list[LayerRow] | None,
    *,
    num_classes: int = 10,
    warmup: int = 2,
    repeats: int = 5,
    min_block_s: float = 0.05,
    profiled_steps: int = 3,
    trace: Path | None = None,
) -> LayerProfile:
    """Profile one model in one (eager) mode at one batch: the step split, the unprofiled step,
    a profiled training step and a profiled inference forward, per module."""
    cuda = device.type == "cuda"
    timer = Timer(device)
    torch.manual_seed(0)
    model = mode.place(build(), device).train()
    x = mode.inputs(torch.randn(batch, *shape, device=device))
    y = torch.randint(0, num_classes, (batch,), device=device)
    state = mode.backends(device)
    with backends.applied(state):
        step = TrainStep(model, x, y, mode, device)
        parts = step.forward, step.backward, step.optimize
        f, b, o, full = measure_split(
            parts, timer, warmup=warmup, repeats=repeats, min_block_s=min_block_s
        )
        forward, backward, optimize = parts

        def train_step() -> None:
            with record_function("archbench:loss"):
                loss = forward()
            backward(loss)
            with record_function("archbench:optimizer"):
                optimize()

        with module_ranges(model) as out_bytes:
            train_step()  # the hooks' first call, unprofiled
            events, profiled_s = _profiled(train_step, profiled_steps, cuda, trace)
            train = layer_times(events, profiled_steps, cuda)
            if train.step_us <= 0:
                raise RuntimeError(
                    "the profiler recorded no "
                    + ("CUDA kernel time (is CUPTI usable here?)" if cuda else "time")
                    + ": nothing to attribute to layers"
                )
            events, _ = _profiled(train_step, 1, cuda, None, memory=True)
            growth = memory_growth(events, cuda)
            model.eval()
            with torch.no_grad():

                def infer() -> None:
                    with mode.autocast(device):
                        model(x)

                infer()
                events, _ = _profiled(infer, profiled_steps, cuda, None)
                inference = layer_times(events, profiled_steps, cuda)
        sync(device)
    frame = _frame(model, train, inference, out_bytes, growth, static_layers, batch)
    return LayerProfile(
        name, mode, batch, StepSplit(f, b, o, full), profiled_s, frame, train.step_us, timer.name
    )


def _frame(
    model: nn.Module,
    train: LayerTimes,
    inference: LayerTimes,
    out_bytes: dict[str, int],
    growth: dict[str, int],
    static_layers: list[LayerRow] | None,
    batch: int,
) -> pd.DataFrame:
    macs = {r.path: r.macs for r in static_layers or []}
    modules = dict(model.named_modules())
    backward_total: dict[str, float] = defaultdict(float)
    for path, t in train.backward.items():  # rolled up to every enclosing module
        parts = path.split(".") if path else []
        for k in range(len(parts) + 1):
            backward_total[".".join(parts[:k])] += t
    rows = []
    step_ms = train.step_us / 1e3
    for path, module in modules.items():
        children = [p for p in modules if p and p.rpartition(".")[0] == path and p != path]
        self_macs = macs.get(path, 0) - sum(macs.get(c, 0) for c in children)
        infer_ms = inference.total.get(path, 0.0) / 1e3
        self_ms = (train.self_.get(path, 0.0) + train.backward.get(path, 0.0)) / 1e3
        total_macs = macs.get(path, 0) * batch
        rows.append(
            {
                "path": path,
                "type": type(module).__name__,
                "kind": layer_kind(module),
                "depth": 0 if path == "" else path.count(".") + 1,
                "infer_forward_ms": infer_ms,
                "infer_self_ms": inference.self_.get(path, 0.0) / 1e3,
                "forward_ms": train.total.get(path, 0.0) / 1e3,
                "backward_ms": backward_total.get(path, 0.0) / 1e3,
                "self_ms": self_ms,
                "join_ms": train.join.get(path, 0.0) / 1e3,
                "self_share": 100 * self_ms / step_ms if step_ms else math.nan,
                "macs": total_macs,
                "self_macs": max(self_macs, 0) * batch,
                "mac_per_s": total_macs / (infer_ms / 1e3) if infer_ms > 0 else math.nan,
                "activation_bytes": out_bytes.get(path, 0),
                "memory_growth_bytes": growth.get(path, 0),
            }
        )
    for path in (LOSS, BACKWARD_REST, OPTIMIZER):
        t = train.outside.get(path, 0.0) / 1e3
        rows.append(
            {
                "path": path,
                "type": "",
                "kind": "outside",
                "depth": 0,
                "infer_forward_ms": 0.0,
                "infer_self_ms": 0.0,
                "forward_ms": t if path == LOSS else 0.0,
                "backward_ms": t if path == BACKWARD_REST else 0.0,
                "self_ms": t,
                "join_ms": 0.0,
                "self_share": 100 * t / step_ms if step_ms else math.nan,
                "macs": 0,
                "self_macs": 0,
                "mac_per_s": math.nan,
                "activation_bytes": 0,
                "memory_growth_bytes": 0,
            }
        )
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))
