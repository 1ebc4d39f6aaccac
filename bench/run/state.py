"""The run's state, built from its spec when the run starts: the device (checked), the modes
as values, the thread count set, the accuracy phase's settings and its data on the device."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.measure import devices
from bench.measure.backends import set_threads
from bench.measure.modes import ModeError, parse_modes
from bench.phases import PHASES, RunConfig, load_phase_plugins
from bench.run.options import CPU_EVAL_BATCH, CPU_TRAIN_BATCH, UsageError
from bench.spec import RunSpec
from bench.training.data import DataError, load_fashion_mnist
from bench.training.loader import to_device
from bench.training.loop import AccuracyConfig, parse_budget, training_mode


def pick_device(gpu: bool) -> torch.device:
    try:
        return devices.pick_device(gpu)
    except devices.NoCudaError as exc:
        raise UsageError(str(exc)) from None


def checked_processes(flag: str, n: int, device: torch.device) -> int:
    """A number of torchrun processes: one GPU each on GPUs."""
    if device.type == "cuda" and n > torch.cuda.device_count():
        raise UsageError(
            f"{flag} {n}: this machine has {torch.cuda.device_count()} CUDA devices "
            "(one process each)"
        )
    return n


def build_config(spec: RunSpec, load_data: bool = True) -> RunConfig:
    """The state the phases run with; ``UsageError`` when this machine cannot run ``spec``
    (no CUDA for a GPU spec, too few GPUs, no Fashion-MNIST). ``load_data``: read the data
    set when the accuracy phase runs (a launcher's check of a spec reads none)."""
    load_phase_plugins()  # a launched job's process parsed no options
    unknown = [name for name in spec.phases if name not in PHASES]
    if unknown:
        raise UsageError(
            f"unknown phase '{','.join(unknown)}' in the spec; available: {', '.join(PHASES)}"
        )
    device = pick_device(spec.device == "cuda")
    try:
        modes = parse_modes(",".join(spec.modes), device)
    except ModeError as exc:
        raise UsageError(str(exc)) from None
    set_threads(spec.threads)
    if spec.ddp_processes is None:  # every GPU
        ddp_processes = max(torch.cuda.device_count(), 1)
    else:
        ddp_processes = checked_processes("--ddp-processes", spec.ddp_processes, device)
    accuracy_processes = 1
    accuracy, data, data_dir = None, None, None
    if "accuracy" in spec.phases:
        accuracy_processes = checked_processes(
            "--accuracy-processes", spec.accuracy_processes, device
        )
        accuracy = accuracy_config(spec, device)
        if load_data:
            try:
                dataset = load_fashion_mnist(Path(spec.data_dir) if spec.data_dir else None)
            except DataError as exc:
                raise UsageError(str(exc)) from None
            data = to_device(dataset, device, accuracy.train_limit, accuracy.eval_limit)
            data_dir = dataset.source
    return RunConfig(
        models=spec.model_names,
        phases=spec.phases,
        device=device,
        modes=modes,
        batch_sizes=spec.batch_sizes,
        input_size=spec.input_size,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        repeats=spec.repeats,
        warmup=spec.warmup,
        accuracy=accuracy,
        data=data,
        compiled_latency=spec.compiled_latency,
        trace=spec.trace,
        shard=spec.shard,
        ddp_processes=ddp_processes,
        accuracy_processes=accuracy_processes,
        data_dir=data_dir,
    )


def accuracy_config(spec: RunSpec, device: torch.device) -> AccuracyConfig:
    gpu = device.type == "cuda"
    try:
        return AccuracyConfig(
            budget=parse_budget(spec.budget),
            seeds=spec.seeds,
            device=device,
            mode=training_mode(device, spec.train_compile),
            train_limit=spec.train_limit,
            eval_limit=spec.eval_limit,
            batch_cap=None if gpu else CPU_TRAIN_BATCH,
            eval_batch=1024 if gpu else CPU_EVAL_BATCH,
            in_channels=spec.in_channels,
            num_classes=spec.num_classes,
            cap_s=spec.accuracy_cap_s,
        )
    except ValueError as exc:
        raise UsageError(
            f"{exc} (or leave out the accuracy phase: --phases static,speed)"
        ) from None
