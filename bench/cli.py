"""``python -m bench`` / ``archbench``: measure registered models and write a run folder."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tabulate import tabulate

import archs
from reports.report import build_report
from reports.store import read_results
from reports.tables import (
    accuracy_summary,
    format_accuracy_summary,
    format_layer_table,
    format_speed_summary,
    format_static_summary,
    layer_table,
    speed_summary,
    static_summary,
)

from . import failures, provenance
from .backends import set_threads
from .data import DEBIAN_DIR, ENV_VAR, DataError, load_fashion_mnist
from .estimate import duration
from .loader import to_device
from .modes import ModeError, parse_modes
from .peaks import best_ceilings, device_ceilings, device_peak, final_ceilings
from .profile import METHOD, format_unsupported, profile_model
from .results import RunWriter
from .runner import (
    PHASES,
    Done,
    RunAborted,
    RunConfig,
    find_resumable,
    layers_frame,
    new_run_dir,
    run_models,
)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archbench",
        description="Profile and benchmark the registered CNN architectures.",
        epilog="Models: 'all', names, globs ('resnet*') or family names, comma-separated. "
        "Modes: precision fp32|tf32|bf16|fp16 (amp = bf16), +cl for channels_last, "
        "+compile|+compile-ro|+compile-max|+compile-max-nocg for torch.compile default|"
        "reduce-overhead|max-autotune|max-autotune-no-cudagraphs, e.g. 'fp32,bf16+cl+compile'.",
    )
    p.add_argument("--models", default="all", help="which models (default: all)")
    p.add_argument("--list", action="store_true", help="list the registered models and exit")
    p.add_argument("--layers", metavar="MODEL", help="print MODEL's per-layer table and exit")
    p.add_argument("--depth", type=int, default=1, help="nesting shown by --layers (default 1)")
    p.add_argument("--input-size", metavar="N|HxW", help="measure every model at this input size")
    p.add_argument("--num-classes", type=int, default=10, help="output classes (default 10)")
    p.add_argument("--in-channels", type=int, default=1, help="input channels (default 1)")
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated phases (default: all of {','.join(PHASES)})",
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
        help="throughput batch sizes (default 256 on a GPU, 8 on the CPU)",
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
        "--resume",
        action="store_true",
        help="continue the newest run folder made by the same command, skipping "
        "what it already holds",
    )
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


def parse_batch_sizes(text: str | None, device: torch.device) -> tuple[int, ...]:
    if text is None:
        return (256,) if device.type == "cuda" else (8,)
    try:
        sizes = tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip()))
    except ValueError:
        raise UsageError(f"--batch-sizes must be comma-separated integers, got '{text}'") from None
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes must be positive, got '{text}'")
    return sizes


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


def list_table() -> str:
    rows = []
    for name in archs.list_models():
        e = archs.get_entry(name)
        rows.append(
            {
                "model": name,
                "family": e.family,
                "year": e.year,
                "input": f"{e.input_size}x{e.input_size}",
                "follows note": e.note,
            }
        )
    return tabulate(rows, headers="keys")


def static_method_note() -> str:
    return f"{METHOD}; MACs: 1 multiply-add = 1, FLOPs = 2 x MACs"


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Every option checked, whichever phases run (a mistake is reported now, not by the
    run that adds its phase), then the data loaded when the accuracy phase runs."""
    models = archs.select_models(args.models)
    phases = parse_phases(args.phases)
    input_size = parse_input_size(args.input_size)
    device = pick_device(args.gpu)
    if args.num_classes < 1 or args.in_channels < 1:
        raise UsageError("--num-classes and --in-channels must be at least 1")
    if args.repeats is not None and args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be at least 1")
    try:
        modes = parse_modes(args.modes, device)
    except ModeError as exc:
        raise UsageError(str(exc)) from None
    batch_sizes = parse_batch_sizes(args.batch_sizes, device)
    budget, seeds = training_options(args, device)
    set_threads(args.threads)
    accuracy, data = None, None
    if "accuracy" in phases:
        accuracy = accuracy_config(args, device, budget, seeds)
        try:
            dataset = load_fashion_mnist(args.data_dir)
        except DataError as exc:
            raise UsageError(str(exc)) from None
        data = to_device(dataset, device, accuracy.train_limit, accuracy.eval_limit)
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
    )


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


def run(args: argparse.Namespace, argv: list[str]) -> int:
    cfg = config_from_args(args)
    same_args = [a for a in argv if a != "--resume"]
    resume_command = provenance.command_line([*same_args, "--resume"])
    run_dir = find_resumable(args.out, same_args) if args.resume else None
    resuming = run_dir is not None
    previous: dict[str, Any] = {}  # a resumed run's run.json
    if run_dir is None:
        if args.resume:
            print(
                "archbench: --resume found no run folder made by this command; starting a new one",
                file=sys.stderr,
            )
        try:
            run_dir = new_run_dir(args.out)
        except (OSError, ValueError) as exc:
            raise out_error(args.out, exc) from None
    else:
        previous = json.loads((run_dir / "run.json").read_text())
        if previous.get("status") == "complete":
            print(
                f"archbench: {run_dir} holds this command's complete run; nothing left to "
                "measure (leave out --resume to measure again)",
                file=sys.stderr,
            )
            return 0
    info = provenance.collect(cfg.device, same_args)
    info["argv"] = same_args
    info["backends"] = backend_policy(cfg)
    precisions = sorted({m.precision for m in cfg.modes} | {"fp32"})
    if "speed" in cfg.phases:
        info["ceilings"] = device_ceilings(cfg.device, str(info["device_name"]), precisions)
    done = Done()
    try:
        if resuming:
            existing = read_results(run_dir / "results.csv")
            done = Done.from_results(existing)
            info["started"] = previous.get("started", info["started"])
            if "ceilings" in info:
                info["ceilings"] = best_ceilings(previous.get("ceilings", {}), info["ceilings"])
            info["resumed"] = [*previous.get("resumed", []), provenance.now()]
            writer = RunWriter(run_dir, info, existing)
            writer.drop_curves({m for m in cfg.models if m not in done.accuracy})
            print(
                f"archbench: resuming {run_dir} ({_plural(len(existing), 'row')} already there)",
                file=sys.stderr,
            )
        else:
            writer = RunWriter(run_dir, info)
    except OSError as exc:
        raise out_error(run_dir, exc) from None
    modes = ",".join(m.name for m in cfg.modes) if "speed" in cfg.phases else "-"
    print(
        f"archbench: {_plural(len(cfg.models), 'model')}, phases {','.join(cfg.phases)}, "
        f"modes {modes}, device {cfg.device} ({writer.provenance['device_name']}); results in "
        f"{run_dir}",
        file=sys.stderr,
    )
    status = "interrupted"
    aborted: RunAborted | None = None
    device_name = str(info["device_name"])
    peak = device_peak(cfg.device, device_name, "bf16" if cfg.device.type == "cuda" else "fp32")
    t0 = time.perf_counter()
    try:
        totals = run_models(cfg, writer, done, peak.tflops)
        if "ceilings" in writer.provenance:  # measured again: a busy start can only read low
            writer.provenance["ceilings"] = final_ceilings(
                cfg.device, device_name, writer.provenance["ceilings"]
            )
        status = "complete"
        print(
            f"archbench: took {duration(time.perf_counter() - t0)} ("
            + ", ".join(f"{phase} {duration(s)}" for phase, s in totals.items() if s)
            + ")",
            file=sys.stderr,
        )
    except RunAborted as exc:
        status, aborted = "cuda-error", exc
    except KeyboardInterrupt:
        pass  # status stays "interrupted"
    finally:
        writer.finish(status)
    if status == "interrupted":
        print(
            f"archbench: interrupted; what was measured is saved in {run_dir}. To go on from "
            f"there: {resume_command}",
            file=sys.stderr,
        )
        return 130
    if aborted is not None:
        print(
            f"archbench: {aborted.model} hit a CUDA error that leaves the CUDA context unusable "
            f"({aborted.error}); the run stopped there. Everything measured is saved in "
            f"{run_dir}, and {aborted.model}'s remaining figures are error rows, so "
            f"`{resume_command}`, in a new process, continues with the next model without it",
            file=sys.stderr,
        )
        return 1
    code = report(
        pd.DataFrame(writer.rows), cfg, run_dir, device_name, writer.provenance.get("ceilings")
    )
    try:
        report_md = build_report(run_dir)
        beside = ", ".join(f"{d}/" for d in ("charts", "tables") if (run_dir / d).is_dir())
        print(f"report: {report_md} ({beside} beside it)")
    except Exception as exc:  # the measurements are saved; the report can be rebuilt
        print(
            f"archbench: the report could not be built ({type(exc).__name__}: {exc}); the "
            f"results are saved: rebuild with `python -m reports {run_dir}`",
            file=sys.stderr,
        )
        return 1
    return code


def out_error(out: Path, exc: OSError | ValueError) -> UsageError:
    """Why no run folder can be written under ``out``, as one line."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    for place in (out, *out.parents):  # a file where a folder must be says more than errno
        if os.path.exists(place):
            if not os.path.isdir(place):
                reason = f"{place} is a file, not a folder"
            break
    return UsageError(
        f"cannot write a run folder under --out {out}: {reason}; give --out a "
        "folder you can write to (it is made if missing)"
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def backend_policy(cfg: RunConfig) -> dict[str, object]:
    """The backend switches the run's figures are measured under, for run.json (each row's
    method states the ones it ran with)."""
    policy: dict[str, object] = {"cpu_threads": torch.get_num_threads()}
    if cfg.device.type == "cuda":
        policy.update(
            cudnn_benchmark=True,
            tf32="on in tf32 modes only (matmul and cuDNN)",
            compiled_latency=cfg.compiled_latency,
        )
    return policy


def report(
    results: pd.DataFrame,
    cfg: RunConfig,
    run_dir: Path,
    device_name: str,
    ceilings: dict | None = None,
) -> int:
    failed_models: set[str] = set()
    if "static" in cfg.phases:
        summary = static_summary(results)
        print(f"\nStatic profile: per sample, {static_method_note()}")
        print(format_static_summary(summary))
        failed_models |= set(summary.index[summary["error"] != ""])
    if "speed" in cfg.phases:
        speed = speed_summary(results, ceilings)
        print(
            f"\nSpeed on {cfg.device} ({device_name}), torch {torch.__version__}, synthetic "
            "inputs. infer/s, train/s: samples/s, median of timed blocks (train = forward + "
            "backward + SGD step); ±%: IQR/median; marks (*, h, !) explained under the table; "
            "p50/p99: batch-1 latency; TFLOP/s from the static FLOPs (x3 for training); MFU vs "
            "the datasheet peak, or the peak measured at the run's start; "
            "MB: peak CUDA memory; compile s: first call incl. compilation"
        )
        print(format_speed_summary(speed))
        failed_models |= set(speed.index.get_level_values("model")[speed["error"] != ""])
    if "accuracy" in cfg.phases and cfg.accuracy is not None:
        acc = accuracy_summary(results)
        print(
            f"\nAccuracy on real Fashion-MNIST, {cfg.accuracy.describe()}; means over seeds; "
            "'to 85% s': training seconds until the test accuracy first reached 85% "
            "(checked at epoch ends)"
        )
        print(format_accuracy_summary(acc))
        failed_models |= set(acc.index[acc["error"] != ""])
    print(f"\nresults: {saved_files(run_dir)}")
    if failed_models:
        print(
            f"archbench: {len(failed_models)} of {_plural(len(cfg.models), 'model')} failed "
            f"({', '.join(sorted(failed_models))}); see the error column",
            file=sys.stderr,
        )
        return 1
    return 0


# what a run folder may hold beside results.csv, and what each is
_SAVED = (
    ("samples.jsonl", "raw timings"),
    ("layers", "per-layer tables"),
    ("curves.csv", "learning curves"),
    ("confusion", "confusion matrices"),
)


def saved_files(run_dir: Path) -> str:
    """results.csv and what else the run folder holds (a static run writes no timings)."""
    found = []
    for name, what in _SAVED:
        path = run_dir / name
        if path.is_dir() and any(path.iterdir()):
            found.append(f"{what}: {name}/")
        elif path.is_file():
            found.append(f"{what}: {name}")
    return f"{run_dir / 'results.csv'}" + (f" ({'; '.join(found)})" if found else "")


def show_layers(args: argparse.Namespace) -> int:
    entry = archs.get_entry(args.layers)
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
            print(list_table())
            return 0
        if args.layers:
            return show_layers(args)
        return run(args, argv)
    except (UsageError, archs.UnknownModelError) as exc:
        print(f"archbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside the measurements (those say how to resume)
        print("archbench: interrupted", file=sys.stderr)
        return 130
