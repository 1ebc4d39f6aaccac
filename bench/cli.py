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
from bench import log
from bench.measure import failures
from bench.measure.estimate import plural
from bench.measure.static_profile import METHOD, format_unsupported, layers_frame, profile_model
from bench.run import launchers as launch
from bench.run import session
from bench.run.options import (
    EXIT_USAGE,
    MODELS_HELP,
    MODES_HELP,
    StrictParser,
    UsageError,
    add_spec_options,
    at_least,
    given_options,
    read_spec_file,
    select_models,
    spec_from_args,
)
from bench.run.state import build_config
from bench.spec import RunSpec
from reports.report import build_report
from reports.summary import MACS_NOTE, console_summary
from reports.tables import format_layer_table, layer_table
from runfolder.reader import load_run


def build_parser() -> argparse.ArgumentParser:
    p = StrictParser(
        raise_errors=True,  # main prints them as every other usage error: one line, exit 2
        prog="archbench",
        description="Profile and benchmark the registered CNN architectures.",
        epilog=f"{MODELS_HELP} {MODES_HELP}",
    )
    add_spec_options(p)
    p.add_argument(
        "--spec",
        type=Path,
        metavar="FILE",
        help="run the spec in FILE: a run folder's run.json (the same run again), or a JSON "
        "or TOML file of spec fields, the rest at their defaults; with --out, --resume, --top",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="list the registered models and the zoos, or with --models the models it selects",
    )
    p.add_argument("--layers", metavar="MODEL", help="print MODEL's per-layer table and exit")
    p.add_argument(
        "--depth",
        type=at_least(1, "--depth"),
        default=1,
        help="nesting shown by --layers (default 1)",
    )
    p.add_argument(
        "--out", type=Path, default=Path("runs"), help="where run folders go (default runs/)"
    )
    p.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        help="run --shards N shards as submitit jobs (local processes, or a Slurm array), "
        "then merge them into one run folder",
    )
    p.add_argument(
        "--shards",
        type=at_least(1, "--shards"),
        metavar="N",
        help="how many shards --launcher runs",
    )
    p.add_argument(
        "--devices",
        metavar="cuda:0,cuda:1,...",
        help="one shard per GPU at once (local jobs, each seeing its GPU), then merged",
    )
    p.add_argument("--slurm-partition", help="Slurm partition of the shards' jobs")
    p.add_argument(
        "--slurm-gpus-per-task",
        type=at_least(1, "--slurm-gpus-per-task"),
        metavar="G",
        help="GPUs per shard",
    )
    p.add_argument(
        "--slurm-time",
        type=at_least(1, "--slurm-time"),
        default=60,
        metavar="MIN",
        help="time limit per shard",
    )
    p.add_argument("--slurm-account", help="Slurm account to charge")
    p.add_argument(
        "--top",
        type=at_least(1, "--top"),
        metavar="N",
        help="the report's charts that compare models show the best N (default: all)",
    )
    chatter = p.add_mutually_exclusive_group()
    chatter.add_argument(
        "-q", "--quiet", action="store_true", help="no progress lines: warnings and errors only"
    )
    chatter.add_argument(
        "-v", "--verbose", action="store_true", help="progress and details (the spec, each write)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest run folder under --out of the same spec, skipping what it "
        "already holds",
    )
    return p


# what may go with --spec: where the run goes and how its report looks, not what it measures
SPEC_COMPANIONS = frozenset({"spec", "out", "resume", "top", "quiet", "verbose"})


def run_spec(args: argparse.Namespace, argv: list[str]) -> RunSpec:
    """The spec of this command: ``--spec FILE``'s, else the options'."""
    if args.spec is None:
        return spec_from_args(args)
    others = sorted(given_options(build_parser(), argv) - SPEC_COMPANIONS)
    if others:
        flags = ", ".join("--" + o.replace("_", "-") for o in others)
        raise UsageError(
            f"--spec gives the run's settings: leave out {flags} (or write them into the spec)"
        )
    return read_spec_file(args.spec)


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
    spec = run_spec(args, argv)
    if args.devices:
        return launch_on_devices(args, spec)
    if args.launcher or args.shards is not None:
        return launch_shards(args, spec)
    cfg = build_config(spec)  # every check of this machine before the run folder is made
    outcome = session.run(spec, cfg, args.out, args.resume, None if args.spec else argv)
    if outcome.status == "already-complete":
        return 0
    if outcome.status == "interrupted":
        return 130
    if outcome.status != "complete":
        return 1
    failed = print_summary(outcome.run_dir, len(cfg.models))
    built = write_report(outcome.run_dir, args.top)
    return 1 if failed or not built else 0


def launch_shards(args: argparse.Namespace, spec: RunSpec) -> int:
    """``--launcher`` with ``--shards N``: each shard's job gets ``spec`` with its shard."""
    if not args.launcher or args.shards is None:
        raise UsageError("--launcher and --shards go together (e.g. --launcher local --shards 4)")
    if spec.shard or args.resume:
        raise UsageError(
            "--launcher runs every shard: leave out --shard and --resume (a failed shard is "
            "resumed by the launcher)"
        )
    build_config(spec)  # this machine can run it: checked before any job starts
    slurm = launch.SlurmOptions(
        args.slurm_partition, args.slurm_gpus_per_task, args.slurm_time, args.slurm_account
    )
    return launch.launch(spec, args.out, args.shards, args.launcher, slurm)


def launch_on_devices(args: argparse.Namespace, spec: RunSpec) -> int:
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
    if args.launcher or args.shards is not None or spec.shard:
        raise UsageError("--devices makes one shard per GPU: leave out --launcher and --shard(s)")
    if spec.device != "cuda":  # --devices measures on the GPUs: their default modes and batch
        spec = spec_from_args(argparse.Namespace(**{**vars(args), "gpu": True}))
    build_config(spec)
    return launch.launch(spec, args.out, len(gpus), "local", launch.SlurmOptions(), gpus)


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
    size = args.input_size
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
    try:
        args = build_parser().parse_args(argv)
        log.set_verbosity(args.quiet, args.verbose)
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
