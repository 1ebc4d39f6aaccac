"""The run's settings from the command line: every option checked (bad input is a
``UsageError``: one line, exit 2) and the data loaded when the accuracy phase runs."""

from __future__ import annotations

import argparse
import re

import torch

import archs

from . import devices
from .backends import set_threads
from .data import DataError, load_fashion_mnist
from .loader import to_device
from .modes import ModeError, parse_modes
from .phases import PHASES, RunConfig
from .shard import parse_shard
from .speed import CPU_BATCH, GPU_BATCH
from .train import AccuracyConfig, Budget, parse_budget, training_mode

EXIT_USAGE = 2
# The CPU's accuracy defaults: the same number of examples for every model, whatever the load;
# a model too slow for them on this machine is reported as not trained, with its estimate.
CPU_TRAIN_LIMIT, CPU_EVAL_LIMIT, CPU_EPOCHS, CPU_CAP_S = 10_000, 1_000, 2, 120.0
# Batches of 16 keep the default CPU run under 4 GB: VGG-16 at 224x224 peaked at 13.5 GB
# evaluated at 250 and 7.5 GB trained at 64; a run training and evaluating it at 16, 3.9 GB.
CPU_TRAIN_BATCH = CPU_EVAL_BATCH = 16


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def select_models(spec: str, yes: bool) -> list[str]:
    """The models asked for; a glob matching more than ``archs.MAX_GLOB_MODELS`` needs --yes."""
    try:
        return archs.select_models(spec, max_glob=None if yes else archs.MAX_GLOB_MODELS)
    except archs.ModelSourceError as exc:
        raise UsageError(str(exc)) from None


def parse_input_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not m:
        raise UsageError(f"--input-size must be N or HxW, got '{text}'")
    h = int(m.group(1))
    w = int(m.group(2) or h)
    if h < 1 or w < 1:
        raise UsageError(f"--input-size must be positive, got '{text}'")
    return h, w


def parse_phases(text: str) -> tuple[str, ...]:
    """The phases asked for, in the order they run (``bench.phases.PHASES``)."""
    phases = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [t for t in phases if t not in PHASES]
    if unknown or not phases:
        raise UsageError(
            f"unknown phase '{','.join(unknown) or text}'; available: {', '.join(PHASES)}"
        )
    return tuple(p for p in PHASES if p in phases)


def parse_batch_sizes(text: str | None, device: torch.device) -> tuple[int, ...]:
    if text is None:
        return (GPU_BATCH,) if device.type == "cuda" else (CPU_BATCH,)
    try:
        sizes = tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip()))
    except ValueError:
        raise UsageError(f"--batch-sizes must be comma-separated integers, got '{text}'") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes must be positive, got '{text}'")
    return sizes


def pick_device(gpu: bool) -> torch.device:
    try:
        return devices.pick_device(gpu)
    except devices.NoCudaError as exc:
        raise UsageError(str(exc)) from None


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Every option checked, whichever phases run (a mistake is reported now, not by the
    run that adds its phase), then the data loaded when the accuracy phase runs."""
    models = select_models(args.models or "all", args.yes)
    phases = parse_phases(args.phases)
    if getattr(args, "trace", False) and "profile" not in phases:
        raise UsageError(
            "--trace writes the profile phase's traces: add profile to --phases "
            "(e.g. --phases static,speed,profile)"
        )
    input_size = parse_input_size(args.input_size)
    device = pick_device(args.gpu)
    if args.num_classes < 1 or args.in_channels < 1:
        raise UsageError("--num-classes and --in-channels must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    if getattr(args, "top", None) is not None and args.top < 1:
        raise UsageError("--top must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    try:
        modes = parse_modes(args.modes, device)
    except ModeError as exc:
        raise UsageError(str(exc)) from None
    batch_sizes = parse_batch_sizes(args.batch_sizes, device)
    budget, seeds = training_options(args, device)
    shard = None
    if getattr(args, "shard", None) is not None:
        try:
            parsed = parse_shard(args.shard)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        shard = (parsed.index, parsed.count)
    set_threads(args.threads)
    accuracy_processes = 1
    if getattr(args, "accuracy_processes", None) is not None:
        if "accuracy" not in phases:
            raise UsageError(
                "--accuracy-processes trains the accuracy phase's models: add accuracy to --phases"
            )
        accuracy_processes = checked_processes(
            "--accuracy-processes", args.accuracy_processes, device
        )
    accuracy, data, data_dir = None, None, None
    if "accuracy" in phases:
        accuracy = accuracy_config(args, device, budget, seeds)
        try:
            dataset = load_fashion_mnist(args.data_dir)
        except DataError as exc:
            raise UsageError(str(exc)) from None
        data = to_device(dataset, device, accuracy.train_limit, accuracy.eval_limit)
        data_dir = dataset.source
    return RunConfig(
        models=models,
        phases=phases,
        device=device,
        modes=modes,
        batch_sizes=batch_sizes,
        input_size=input_size,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        repeats=args.repeats,
        warmup=args.warmup,
        accuracy=accuracy,
        data=data,
        compiled_latency=args.compiled_latency,
        trace=getattr(args, "trace", False),
        shard=shard,
        ddp_processes=ddp_processes(args, device),
        accuracy_processes=accuracy_processes,
        data_dir=data_dir,
    )


def ddp_processes(args: argparse.Namespace, device: torch.device) -> int:
    """--ddp-processes, else every GPU, else 2 on the CPU."""
    n = getattr(args, "ddp_processes", None)
    if n is None:
        return max(torch.cuda.device_count(), 1) if device.type == "cuda" else 2
    return checked_processes("--ddp-processes", n, device)


def checked_processes(flag: str, n: int, device: torch.device) -> int:
    """A number of torchrun processes: at least 1, and one GPU each on GPUs."""
    if n < 1:
        raise UsageError(f"{flag} must be at least 1")
    if device.type == "cuda" and n > torch.cuda.device_count():
        raise UsageError(
            f"{flag} {n}: this machine has {torch.cuda.device_count()} CUDA devices "
            "(one process each)"
        )
    return n


def training_options(
    args: argparse.Namespace, device: torch.device
) -> tuple[Budget, tuple[int, ...]]:
    """The budget and the seeds; --train-limit and --eval-limit checked."""
    default = "epochs=5" if device.type == "cuda" else f"epochs={CPU_EPOCHS}"
    try:
        budget = parse_budget(args.budget or default)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        seeds = tuple(dict.fromkeys(int(t) for t in args.seeds.split(",") if t.strip()))
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got '{args.seeds}'") from None
    if not seeds:
        raise UsageError("--seeds is empty")
    if args.accuracy_cap is not None and args.accuracy_cap < 0:
        raise UsageError("--accuracy-cap must be 0 (no cap) or more seconds")
    for flag, value in (("--train-limit", args.train_limit), ("--eval-limit", args.eval_limit)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1")
    return budget, seeds


def accuracy_config(
    args: argparse.Namespace, device: torch.device, budget: Budget, seeds: tuple[int, ...]
) -> AccuracyConfig:
    gpu = device.type == "cuda"
    cap = args.accuracy_cap if args.accuracy_cap is not None else (None if gpu else CPU_CAP_S)
    try:
        return AccuracyConfig(
            budget=budget,
            seeds=seeds,
            device=device,
            mode=training_mode(device, args.train_compile),
            train_limit=args.train_limit or (None if gpu else CPU_TRAIN_LIMIT),
            eval_limit=args.eval_limit or (None if gpu else CPU_EVAL_LIMIT),
            batch_cap=None if gpu else CPU_TRAIN_BATCH,
            eval_batch=1024 if gpu else CPU_EVAL_BATCH,
            in_channels=args.in_channels,
            num_classes=args.num_classes,
            cap_s=cap or None,
        )
    except ValueError as exc:
        raise UsageError(
            f"{exc} (or leave out the accuracy phase: --phases static,speed)"
        ) from None
