"""``python -m bench`` / ``archbench``: profile registered models and write a run folder."""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch
from tabulate import tabulate

import archs
from reports.schema import LAYER_COLUMNS
from reports.tables import format_layer_table, format_static_summary, layer_table, static_summary

from . import provenance
from .profile import LayerRow, format_unsupported, profile_model
from .results import RunWriter, error_row, static_rows

PHASES = ("static",)  # later phases (speed, accuracy) join this tuple
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archbench",
        description="Profile and benchmark the registered CNN architectures.",
        epilog="Models: 'all', names, globs ('resnet*') or family names, comma-separated.",
    )
    p.add_argument("--models", default="all", help="which models (default: all)")
    p.add_argument("--list", action="store_true", help="list the registered models and exit")
    p.add_argument("--layers", metavar="MODEL", help="print MODEL's per-layer table and exit")
    p.add_argument("--depth", type=int, default=1, help="nesting shown by --layers (default 1)")
    p.add_argument(
        "--input-size",
        metavar="N|HxW",
        help="profile every model at this input size instead of its own",
    )
    p.add_argument("--num-classes", type=int, default=10, help="output classes (default 10)")
    p.add_argument("--in-channels", type=int, default=1, help="input channels (default 1)")
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated phases to run (default and available: {','.join(PHASES)})",
    )
    p.add_argument("--gpu", action="store_true", help="measure on the CUDA device (fails without one)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="where run folders go (default runs/)")
    return p


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
    phases = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [t for t in phases if t not in PHASES]
    if unknown or not phases:
        raise UsageError(
            f"unknown phase '{','.join(unknown) or text}'; available: {', '.join(PHASES)}"
        )
    return phases


def pick_device(gpu: bool) -> torch.device:
    if not gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(
            "--gpu was given but no CUDA device is visible "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "run without --gpu to measure on the CPU"
        )
    return torch.device("cuda")


def layers_frame(layers: list[LayerRow]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(r) for r in layers], columns=list(LAYER_COLUMNS))
    frame["output_shape"] = [
        "x".join(map(str, r.output_shape)) if r.output_shape else "" for r in layers
    ]
    return frame


def list_table() -> str:
    rows = []
    for name in archs.list_models():
        e = archs.get_entry(name)
        rows.append(
            {"model": name, "family": e.family, "year": e.year,
             "input": f"{e.input_size}x{e.input_size}", "follows note": e.note}  # fmt: skip
        )
    return tabulate(rows, headers="keys")


def new_run_dir(out: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(100):
        run_dir = out / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise UsageError(f"could not make a new run folder under {out}")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    models = archs.select_models(args.models)
    phases = parse_phases(args.phases)
    input_size = parse_input_size(args.input_size)
    device = pick_device(args.gpu)
    if args.num_classes < 1 or args.in_channels < 1:
        raise UsageError("--num-classes and --in-channels must be at least 1")

    run_dir = new_run_dir(args.out)
    writer = RunWriter(run_dir, provenance.collect(device, argv))
    print(f"archbench: {len(models)} models, phases {','.join(phases)}, device {device}; "
          f"results in {run_dir}", file=sys.stderr)  # fmt: skip
    status = "interrupted"
    try:
        for i, name in enumerate(models, 1):
            entry = archs.get_entry(name)
            t0 = time.perf_counter()
            try:
                profile = profile_model(entry, input_size, args.num_classes, args.in_channels)
            except Exception as exc:  # one model's failure is its row's, not the run's
                message = f"{type(exc).__name__}: {exc}"
                if input_size and input_size != (entry.input_size, entry.input_size):
                    h, w = input_size
                    message = (f"at input {h}x{w} (the model is built for "
                               f"{entry.input_size}x{entry.input_size}): {message}")  # fmt: skip
                writer.add([error_row(name, entry.family, "static", message)])
                outcome = f"FAILED ({type(exc).__name__})"
            else:
                writer.add(static_rows(profile))
                writer.add_layers(name, layers_frame(profile.layers))
                outcome = f"{profile.params / 1e6:8.3f} M params {profile.macs / 1e9:9.4f} GMACs"
            elapsed = time.perf_counter() - t0
            print(f"[{i:>{len(str(len(models)))}}/{len(models)}] {name:<14} {outcome}  "
                  f"({elapsed:.2f} s)", file=sys.stderr)  # fmt: skip
        status = "complete"
    finally:
        writer.finish(status)

    summary = static_summary(pd.DataFrame(writer.rows))
    print()
    print(f"Static profile: per sample, {profile_method_note()}")
    print(format_static_summary(summary))
    print(f"\nresults: {run_dir}/results.csv, per-layer tables: {run_dir}/layers/")
    failed = int((summary["error"] != "").sum())
    if failed:
        print(f"archbench: {failed} of {len(models)} models failed; see the error column",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def profile_method_note() -> str:
    from .profile import METHOD

    return f"{METHOD}; MACs = fvcore's count (1 multiply-add = 1), FLOPs = 2 x MACs"


def show_layers(args: argparse.Namespace) -> int:
    entry = archs.get_entry(args.layers)
    if args.depth < 1:
        raise UsageError("--depth must be at least 1")
    profile = profile_model(entry, parse_input_size(args.input_size), args.num_classes,
                            args.in_channels)  # fmt: skip
    c, h, w = profile.input_shape
    print(f"{entry.name}: input 1x{c}x{h}x{w}, {profile.params:,} params, "
          f"{profile.macs / 1e6:,.3f} M MACs/sample ({profile_method_note()})")  # fmt: skip
    print(f"follows note {entry.note}\n")
    print(format_layer_table(layer_table(layers_frame(profile.layers), args.depth)))
    if profile.unsupported_ops:
        print(f"\nnot counted by fvcore (shown as 0 MACs): {format_unsupported(profile.unsupported_ops)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.list:
            print(list_table())
            return 0
        if args.layers:
            return show_layers(args)
        return run(args, argv)
    except (UsageError, archs.UnknownModelError) as exc:
        print(f"archbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("archbench: interrupted; what was measured is in the run folder", file=sys.stderr)
        return 130
