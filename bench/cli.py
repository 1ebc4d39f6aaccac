"""``python -m bench`` / ``archbench``: measure registered models and write a run folder, then
print its summary and build its report (the one place ``bench`` uses ``reports``)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import torch
from tabulate import tabulate

import archs
from reports.report import build_report
from reports.summary import MACS_NOTE, console_summary
from reports.tables import format_layer_table, layer_table
from runfolder.reader import load_run

from . import failures, launch, session
from .config import (
    CPU_CAP_S,
    CPU_TRAIN_LIMIT,
    EXIT_USAGE,
    UsageError,
    config_from_args,
    parse_input_size,
    select_models,
)
from .data import DEBIAN_DIR, ENV_VAR
from .estimate import plural
from .phases import DEFAULT_PHASES, PHASES
from .profile import METHOD, format_unsupported, layers_frame, profile_model
from .speed import CPU_BATCH, GPU_BATCH


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archbench",
        description="Profile and benchmark the registered CNN architectures.",
        epilog="Models: 'all', names, globs ('resnet*') or family names, comma-separated; "
        "torchvision's and timm's with a prefix ('tv:mobilenet*', 'timm:convnext_atto', "
        "'tv:resnet' for a family), a builder in a file ('path/to/file.py:builder'). "
        "Modes: precision fp32|tf32|bf16|fp16 (amp = bf16), +cl for channels_last, "
        "+compile|+compile-ro|+compile-max|+compile-max-nocg for torch.compile default|"
        "reduce-overhead|max-autotune|max-autotune-no-cudagraphs, e.g. 'fp32,bf16+cl+compile'.",
    )
    p.add_argument("--models", help="which models (default: all, the suite's own)")
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"run a glob that matches more than {archs.MAX_GLOB_MODELS} models",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="list the registered models and the zoos, or with --models the models it selects",
    )
    p.add_argument("--layers", metavar="MODEL", help="print MODEL's per-layer table and exit")
    p.add_argument("--depth", type=int, default=1, help="nesting shown by --layers (default 1)")
    p.add_argument("--input-size", metavar="N|HxW", help="measure every model at this input size")
    p.add_argument("--num-classes", type=int, default=10, help="output classes (default 10)")
    p.add_argument("--in-channels", type=int, default=1, help="input channels (default 1)")
    p.add_argument(
        "--phases",
        default=",".join(DEFAULT_PHASES),
        help=f"comma-separated phases of {','.join(PHASES)} (default: {','.join(DEFAULT_PHASES)})",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="the profile phase also writes a Chrome/Perfetto trace per model and mode",
    )
    p.add_argument(
        "--gpu", action="store_true", help="measure on the CUDA device (fails without one)"
    )
    p.add_argument(
        "--modes",
        help="speed modes (default: fp32,bf16,bf16+cl,bf16+cl+compile on a GPU, fp32 on the CPU)",
    )
    p.add_argument(
        "--batch-sizes",
        metavar="B[,B...]",
        help=f"throughput batch sizes (default {GPU_BATCH} on a GPU, {CPU_BATCH} on the CPU)",
    )
    p.add_argument(
        "--repeats", type=int, help="timed blocks per measurement (default 10 GPU, 5 CPU)"
    )
    p.add_argument("--warmup", type=int, help="untimed calls before timing (default 5 GPU, 2 CPU)")
    p.add_argument(
        "--budget",
        help="training budget per model and seed: epochs=N, steps=N or "
        "seconds=S (default epochs=5 on a GPU; on the CPU epochs=2 of the first "
        f"{CPU_TRAIN_LIMIT:,} training images)",
    )
    p.add_argument(
        "--accuracy-cap",
        type=float,
        metavar="SECONDS",
        help="a model whose training, estimated from its first steps, would take "
        f"longer is not trained but reported (default {CPU_CAP_S:g} s on the "
        "CPU, none on a GPU; 0: none)",
    )
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    p.add_argument(
        "--data-dir",
        type=Path,
        help=f"folder of the Fashion-MNIST IDX files (else ${ENV_VAR}, then {DEBIAN_DIR})",
    )
    p.add_argument("--train-limit", type=int, help="train on the first N training images only")
    p.add_argument(
        "--eval-limit",
        type=int,
        help="evaluate on the first N test images (default all on a GPU, 500 on the CPU)",
    )
    p.add_argument("--train-compile", action="store_true", help="torch.compile the training model")
    p.add_argument(
        "--accuracy-processes",
        type=int,
        metavar="N",
        help="train with DistributedDataParallel over N processes started by torchrun (one "
        "GPU each; gloo on the CPU), the model's batch split across them, and once more with "
        "one process for the scaling efficiency (default 1: no DDP)",
    )
    p.add_argument(
        "--compiled-latency",
        action="store_true",
        help="measure batch-1 latency in compiled modes too (one more compile per "
        "model and mode; by default latency is measured in eager modes)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads for CPU figures (torch.set_num_threads; default: torch's)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("runs"), help="where run folders go (default runs/)"
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="measure the K-th of N shards of the run's work (balanced by estimated cost); "
        "merge the shards' run folders with `python -m reports merge`",
    )
    p.add_argument(
        "--ddp-processes",
        type=int,
        metavar="N",
        help="the ddp phase's DistributedDataParallel processes (default: every GPU; 2 on the CPU)",
    )
    p.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        help="run --shards N shards as submitit jobs (local processes, or a Slurm array), "
        "then merge them into one run folder",
    )
    p.add_argument("--shards", type=int, metavar="N", help="how many shards --launcher runs")
    p.add_argument(
        "--devices",
        metavar="cuda:0,cuda:1,...",
        help="one shard per GPU at once (local jobs, each seeing its GPU), then merged",
    )
    p.add_argument("--slurm-partition", help="Slurm partition of the shards' jobs")
    p.add_argument("--slurm-gpus-per-task", type=int, metavar="G", help="GPUs per shard")
    p.add_argument("--slurm-time", type=int, default=60, metavar="MIN", help="time limit per shard")
    p.add_argument("--slurm-account", help="Slurm account to charge")
    p.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="the report's charts that compare models show the best N (default: all)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest run folder made by the same command, skipping "
        "what it already holds",
    )
    return p


def list_table(spec: str | None) -> str:
    """The models ``spec`` selects (every glob allowed), or the registered models and a line
    per zoo saying how to name its models."""
    names = select_models(spec or "all", yes=True)
    rows = []
    for name in names:
        e = archs.get_entry(name)
        rows.append(
            {
                "model": name,
                "source": e.source,
                "family": e.family,
                "year": e.year or "",
                "input": f"{e.input_size}x{e.input_size}",
                "follows": e.note,
            }
        )
    table = tabulate(rows, headers="keys")
    if spec:
        return f"{table}\n\n{len(names)} models"
    zoos = [f"  {s.prefix}:NAME  {s.describe()}" for s in archs.list_sources()]
    return "\n".join(
        [table, "", "Zoos (list one with --list --models 'tv:*'; globs and families work):", *zoos]
    )


def static_method_note() -> str:
    return f"{METHOD}; {MACS_NOTE}"


def run(args: argparse.Namespace, argv: list[str]) -> int:
    cfg = config_from_args(args)
    if args.devices:
        return launch_on_devices(args, argv)
    if args.launcher or args.shards is not None:
        return launch_shards(args, argv)
    outcome = session.run(cfg, args.out, argv, args.resume)
    if outcome.status == "already-complete":
        return 0
    if outcome.status == "interrupted":
        return 130
    if outcome.status != "complete":
        return 1
    failed = print_summary(outcome.run_dir, len(cfg.models))
    built = write_report(outcome.run_dir, args.top)
    return 1 if failed or not built else 0


def launch_shards(args: argparse.Namespace, argv: list[str]) -> int:
    """``--launcher`` with ``--shards N``: every option checked already (``config_from_args``)."""
    if not args.launcher or args.shards is None:
        raise UsageError("--launcher and --shards go together (e.g. --launcher local --shards 4)")
    if args.shards < 1:
        raise UsageError("--shards must be at least 1")
    if args.shard or args.resume:
        raise UsageError(
            "--launcher runs every shard: leave out --shard and --resume (a failed shard is "
            "resumed by the launcher)"
        )
    slurm = launch.SlurmOptions(
        args.slurm_partition, args.slurm_gpus_per_task, args.slurm_time, args.slurm_account
    )
    return launch.launch(argv, args.out, args.shards, args.launcher, slurm)


def launch_on_devices(args: argparse.Namespace, argv: list[str]) -> int:
    """``--devices cuda:0,cuda:1,...``: one shard per GPU at once, local jobs, merged."""
    gpus = []
    for token in (t.strip() for t in args.devices.split(",") if t.strip()):
        m = re.fullmatch(r"cuda:(\d+)", token)
        if not m:
            raise UsageError(f"--devices takes cuda:N, comma-separated; got '{token}'")
        gpus.append(int(m.group(1)))
    if len(gpus) < 2 or len(set(gpus)) != len(gpus):
        raise UsageError("--devices needs two or more different GPUs (cuda:0,cuda:1)")
    if max(gpus) >= torch.cuda.device_count():
        raise UsageError(
            f"--devices: cuda:{max(gpus)} does not exist ({torch.cuda.device_count()} CUDA "
            "devices here)"
        )
    if args.launcher or args.shards is not None or args.shard:
        raise UsageError("--devices makes one shard per GPU: leave out --launcher and --shard(s)")
    shard_args = argv if "--gpu" in argv else [*argv, "--gpu"]
    return launch.launch(shard_args, args.out, len(gpus), "local", launch.SlurmOptions(), gpus)


def print_summary(run_dir: Path, models: int) -> list[str]:
    """The run's tables on the terminal; returns the models that failed."""
    summary, failed = console_summary(load_run(run_dir))
    print(f"\n{summary}")
    if failed:
        print(
            f"archbench: {len(failed)} of {plural(models, 'model')} failed "
            f"({', '.join(failed)}); see the error column",
            file=sys.stderr,
        )
    return failed


def write_report(run_dir: Path, top: int | None = None) -> bool:
    """report.md, tables/ and charts/ in the run folder; False (and why) when it failed."""
    try:
        report_md = build_report(run_dir, top=top)
    except Exception as exc:  # the measurements are saved; the report can be rebuilt
        print(
            f"archbench: the report could not be built ({type(exc).__name__}: {exc}); the "
            f"results are saved: rebuild with `python -m reports {run_dir}`",
            file=sys.stderr,
        )
        return False
    beside = ", ".join(f"{d}/" for d in ("charts", "tables") if (run_dir / d).is_dir())
    print(f"report: {report_md} ({beside} beside it)")
    return True


def show_layers(args: argparse.Namespace) -> int:
    chosen = select_models(args.layers, yes=True)
    if len(chosen) != 1:
        raise UsageError(f"--layers takes one model; '{args.layers}' selects {len(chosen)}")
    entry = archs.get_entry(chosen[0])
    if args.depth < 1:
        raise UsageError("--depth must be at least 1")
    if args.num_classes < 1 or args.in_channels < 1:
        raise UsageError("--num-classes and --in-channels must be at least 1")
    size = parse_input_size(args.input_size)
    try:
        profile = profile_model(entry, size, args.num_classes, args.in_channels)
    except Exception as exc:
        if size is None or size == (entry.input_size, entry.input_size):
            raise  # the model fails at its own size: a bug, not the user's input
        raise UsageError(
            f"{entry.name} cannot run at --input-size {size[0]}x{size[1]} (it is built for "
            f"{entry.input_size}x{entry.input_size}; {failures.describe(exc)}); give a size it "
            "can take, or leave out --input-size for its own"
        ) from None
    c, h, w = profile.input_shape
    print(
        f"{entry.name}: input 1x{c}x{h}x{w}, {profile.params:,} params, "
        f"{profile.macs / 1e6:,.3f} M MACs/sample ({static_method_note()})"
    )
    print(f"follows note {entry.note}\n")
    print(format_layer_table(layer_table(layers_frame(profile.layers), args.depth)))
    if profile.unsupported_ops:
        print(f"\n{format_unsupported(profile.unsupported_ops)} (0 MACs in the table)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        if args.list:
            print(list_table(args.models))
            return 0
        if args.layers:
            return show_layers(args)
        return run(args, argv)
    except (UsageError, archs.UnknownModelError, archs.ModelSourceError) as exc:
        print(f"archbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside the measurements (those say how to resume)
        print("archbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `--list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
