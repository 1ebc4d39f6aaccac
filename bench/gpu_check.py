"""``python -m bench.gpu_check``: one command that proves the suite's GPU figures.

    python -m bench.gpu_check [--data-dir DIR] [--out runs] [--resume]

On a CUDA device it runs, in this order, each part written to the run folder as it finishes
(so ``--resume`` continues a stopped check where it stopped):

1. the fidelity check (``bench.checks.fidelity``): the harness against a hand-written CUDA-event
   loop and ``torch.utils.benchmark``, ResNet-18 (d2l, 96x96) and LeNet in every default GPU mode;
2. the d2l-loop baseline (``bench.checks.baseline``): the seed notes' training loop against the
   suite's, ResNet-18 at 96x96 and LeNet at batch 256;
3. the accuracy phase for 10 epochs: ResNet-18 (d2l, 96x96) over seeds 0, 1 and 2, BN-LeNet and
   DenseNet over seed 0;
4. the profile phase (``bench.measure.layer_time``), LeNet and ResNet-18 (d2l, 96x96) in fp32 at the
   same batch: per-module CUDA kernel time must add up to the profiled step, and the step's
   forward, backward and optimizer timed apart to the unprofiled step;

then prints one verdict table against the targets and exits 1 when one is missed (2 without a
CUDA device or with bad arguments).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tabulate import tabulate

import archs
from bench.checks import baseline, fidelity
from bench.log import say, warn
from bench.measure.devices import NoCudaError, cuda_device
from bench.measure.estimate import duration
from bench.measure.modes import GPU_DEFAULT_MODES, parse_mode
from bench.measure.throughput import GPU_BATCH
from bench.phases import RunConfig
from bench.run import provenance
from bench.run.options import StrictParser
from bench.run.runner import Done, done_in, run_models
from bench.training.data import DataError, find_data_dir, load_fashion_mnist
from bench.training.loader import to_device
from bench.training.loop import AccuracyConfig, Budget, training_mode
from runfolder.folders import new_run_dir
from runfolder.reader import read_results
from runfolder.writer import RunWriter

FIDELITY_CSV, BASELINE_CSV, VERDICT_MD = "fidelity.csv", "baseline.csv", "verdict.md"


@dataclass(frozen=True)
class AccuracyGoal:
    model: str
    seeds: tuple[int, ...]
    minimum: float  # %: the mean test accuracy over the seeds must reach it
    source: str  # where the target comes from


def note_goal(model: str) -> AccuracyGoal:
    """The seed note's own 10-epoch figure for ``model`` (kept in its registry entry)."""
    recipe = archs.get_entry(model).seed_recipe
    if recipe is None or recipe.test_acc is None:
        raise ValueError(f"{model}'s seed note reports no test accuracy")
    return AccuracyGoal(
        model, (0,), 100 * recipe.test_acc, f"its seed note's {recipe.epochs}-epoch test accuracy"
    )


@dataclass(frozen=True)
class Plan:
    """What the check measures and the targets it holds the figures to."""

    fidelity_models: tuple[str, ...] = ("resnet18_d2l", "lenet")
    modes: tuple[str, ...] = GPU_DEFAULT_MODES
    batch: int = GPU_BATCH  # the speed phase's default GPU batch, whose figures it proves
    warmup: int = 10
    tolerance: float = 0.03  # the harness within this of the hand-written loop
    baseline_models: tuple[str, ...] = ("resnet18_d2l", "lenet")
    baseline_steps: int = 100
    baseline_warmup: int = 10
    baseline_workers: int = 4
    min_speedup: float = 4.5  # the suite's training loop against the d2l loop
    epochs: int = 10
    goals: tuple[AccuracyGoal, ...] = (
        AccuracyGoal("resnet18_d2l", (0, 1, 2), 94.0, "the suite's target (airbench-style loop)"),
    )
    profile_models: tuple[str, ...] = ("lenet", "resnet18_d2l")
    profile_mode: str = "fp32"
    attributed_within: float = 0.15  # the layers' self times against the profiled step
    split_within: float = 0.10  # forward + backward + optimizer against the unprofiled step
    train_limit: int | None = None  # first N training / test images (the CPU test's small run)
    eval_limit: int | None = None

    @classmethod
    def default(cls) -> Plan:
        return cls(goals=(*cls.goals, note_goal("lenet_bn"), note_goal("densenet")))


@dataclass(frozen=True)
class Verdict:
    check: str
    subject: str
    measured: str
    target: str
    passed: bool


def _append_csv(path: Path, row: dict[str, object]) -> None:
    pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)


def _done_keys(path: Path, columns: list[str]) -> set[tuple]:
    if not path.exists():
        return set()
    frame = pd.read_csv(path, keep_default_na=False)
    return set(map(tuple, frame[columns].astype(str).values.tolist()))


def run_fidelity(plan: Plan, device: torch.device, run_dir: Path) -> None:
    path = run_dir / FIDELITY_CSV
    done = _done_keys(path, ["model", "mode"])
    for model in plan.fidelity_models:
        for mode in map(parse_mode, plan.modes):
            if (model, mode.name) in done:
                continue
            t0 = time.perf_counter()
            row = fidelity.compare(model, mode, device, plan.batch, plan.warmup)
            _append_csv(path, row)
            say(
                f"fidelity {model} {mode.name}: harness / hand loop "
                f"{row.get('harness / hand loop', float('nan')):.3f} "
                f"({time.perf_counter() - t0:.0f} s)"
            )


def run_baseline(plan: Plan, device: torch.device, run_dir: Path, data_dir: Path, data) -> None:
    path = run_dir / BASELINE_CSV
    done = _done_keys(path, ["model"])
    todo = [m for m in plan.baseline_models if (m,) not in done]
    if not todo:
        return
    loops = baseline.Loops(
        plan.batch, plan.baseline_steps, plan.baseline_warmup, plan.baseline_workers
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = baseline.torchvision_root(data_dir, Path(tmp))
        for model in todo:
            t0 = time.perf_counter()
            row = baseline.compare_loops(
                archs.get_entry(model), root, data, device, loops, progress=say
            )
            _append_csv(path, row)
            say(
                f"baseline {model}: suite / d2l {row['suite / d2l']:.2f} "
                f"({time.perf_counter() - t0:.0f} s)"
            )


def run_accuracy(
    plan: Plan, device: torch.device, writer: RunWriter, done: Done | None, data
) -> None:
    for goal in plan.goals:
        accuracy = AccuracyConfig(
            budget=Budget("epochs", plan.epochs),
            seeds=goal.seeds,
            device=device,
            mode=training_mode(device),
            train_limit=plan.train_limit,
            eval_limit=plan.eval_limit,
        )
        cfg = RunConfig(
            models=[goal.model],
            phases=("accuracy",),
            device=device,
            modes=[],
            batch_sizes=(),
            accuracy=accuracy,
            data=data,
        )
        run_models(cfg, writer, done)


def run_profile(plan: Plan, device: torch.device, writer: RunWriter, done: Done | None) -> None:
    cfg = RunConfig(
        models=list(plan.profile_models),
        phases=("profile",),
        device=device,
        modes=[parse_mode(plan.profile_mode)],
        batch_sizes=(plan.batch,),
        warmup=plan.warmup,
    )
    run_models(cfg, writer, done)


def _missing(rows: pd.DataFrame) -> str:
    """What a verdict shows for a figure its rows lack: their error, or that none was written."""
    return f"error: {rows['error'].iloc[0] if len(rows) else 'not measured'}"


def _profile_verdicts(plan: Plan, results: pd.DataFrame) -> list[Verdict]:
    prof = results[results["phase"] == "profile"] if len(results) else results
    out = []
    for model in plan.profile_models:
        rows = prof[prof["model"] == model].set_index("metric")
        for metric, name, within in (
            ("profile_attributed", "layers' self time / profiled step", plan.attributed_within),
            ("profile_split_gap", "fwd + bwd + opt / unprofiled step", plan.split_within),
        ):
            if metric in rows.index:
                value = float(rows.loc[metric, "value"])
                ratio = value / 100 if metric == "profile_attributed" else 1 + value / 100
                measured, ok = f"{ratio:.3f}", abs(ratio - 1) <= within
            else:
                measured, ok = _missing(rows), False
            out.append(
                Verdict(
                    "profile",
                    f"{model} {plan.profile_mode} batch {plan.batch}",
                    measured,
                    f"{name} within ±{within:.0%}",
                    ok,
                )
            )
    return out


def verdicts(plan: Plan, run_dir: Path, results: pd.DataFrame) -> list[Verdict]:
    """Every target against what the run folder holds; a figure missing is a missed target."""
    out: list[Verdict] = []
    fid = pd.read_csv(run_dir / FIDELITY_CSV, keep_default_na=False)
    for row in fid.to_dict("records"):
        ratio = row.get("harness / hand loop", "")
        ok = row.get("error", "") == "" and ratio != "" and abs(float(ratio) - 1) <= plan.tolerance
        measured = f"{float(ratio):.3f}" if ratio != "" else f"error: {row['error']}"
        out.append(
            Verdict(
                "fidelity",
                f"{row['model']} {row['mode']}",
                measured,
                f"harness / hand loop within ±{plan.tolerance:.0%}",
                ok,
            )
        )
    base = pd.read_csv(run_dir / BASELINE_CSV)
    for row in base.to_dict("records"):
        ratio = float(row["suite / d2l"])
        out.append(
            Verdict(
                "baseline",
                f"{row['model']} batch {row['batch']}",
                f"{ratio:.2f}x",
                f"suite / d2l training examples/s >= {plan.min_speedup:g}x",
                ratio >= plan.min_speedup,
            )
        )
    acc = results[(results["phase"] == "accuracy")]
    for goal in plan.goals:
        rows = acc[acc["model"] == goal.model].set_index("metric")
        if "test_acc" in rows.index:
            mean = float(rows.loc["test_acc", "value"])
            seeds = int(rows.loc["seeds", "value"])
            measured = f"{mean:.2f}% (mean of {seeds} seed{'s' if seeds > 1 else ''})"
            ok = mean >= goal.minimum and seeds == len(goal.seeds)
        else:
            measured, ok = _missing(rows), False
        out.append(
            Verdict(
                "accuracy",
                f"{goal.model}, {plan.epochs} epochs",
                measured,
                f">= {goal.minimum:.1f}% ({goal.source})",
                ok,
            )
        )
    return out + _profile_verdicts(plan, results)


def verdict_table(found: list[Verdict]) -> str:
    rows = [{**dataclasses.asdict(v), "passed": "PASS" if v.passed else "MISS"} for v in found]
    return tabulate(rows, headers="keys", tablefmt="github")


def check(
    plan: Plan, device: torch.device, run_dir: Path, data_dir: Path, info: dict[str, object]
) -> list[Verdict]:
    """Run (or resume) every part of ``plan`` into ``run_dir`` and judge it."""
    existing = None
    if (run_dir / "results.csv").exists():
        existing = read_results(run_dir / "results.csv")
    writer = RunWriter(run_dir, info, existing)
    done = done_in(existing, ("accuracy", "profile")) if existing is not None else None
    data = to_device(load_fashion_mnist(data_dir), device, plan.train_limit, plan.eval_limit)
    status = "interrupted"
    try:
        t0 = time.perf_counter()
        run_fidelity(plan, device, run_dir)
        say(f"gpu_check: fidelity done ({duration(time.perf_counter() - t0)})")
        run_baseline(plan, device, run_dir, data_dir, data)
        say(f"gpu_check: baseline done ({duration(time.perf_counter() - t0)})")
        run_accuracy(plan, device, writer, done, data)
        say(f"gpu_check: accuracy done ({duration(time.perf_counter() - t0)})")
        run_profile(plan, device, writer, done)
        say(f"gpu_check: profile done ({duration(time.perf_counter() - t0)})")
        status = "complete"
    finally:
        writer.finish(status)
    found = verdicts(plan, run_dir, pd.DataFrame(writer.rows))
    (run_dir / VERDICT_MD).write_text(verdict_table(found) + "\n")
    return found


def _find_resumable(out: Path) -> Path | None:
    candidates = sorted(
        p.parent
        for p in out.glob("*/run.json")
        if json.loads(p.read_text()).get("check") == "gpu_check"
    )
    return next(
        (
            p
            for p in reversed(candidates)
            if json.loads((p / "run.json").read_text()).get("status") != "complete"
        ),
        None,
    )


def main(argv: list[str] | None = None) -> int:
    p = StrictParser(
        prog="python -m bench.gpu_check", description=__doc__.split("\n")[0].strip("`: ")
    )
    p.add_argument("--data-dir", type=Path, help="folder of the Fashion-MNIST files")
    p.add_argument("--out", type=Path, default=Path("runs"), help="where the run folder goes")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest unfinished gpu_check run folder under --out",
    )
    args = p.parse_args(argv)
    try:
        device = cuda_device(
            "this check needs a CUDA device",
            "it proves the GPU figures and runs only on a CUDA machine",
        )
        data_dir = find_data_dir(args.data_dir)
    except (NoCudaError, DataError) as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    run_dir = _find_resumable(args.out) if args.resume else None
    run_dir = run_dir or new_run_dir(args.out)
    info = provenance.collect(device, argv if argv is not None else sys.argv[1:])
    info["check"] = "gpu_check"
    say(
        f"gpu_check on {info['device_name']} (driver {info.get('cuda_driver')}, torch "
        f"{torch.__version__}); results in {run_dir}"
    )
    try:
        found = check(Plan.default(), device, run_dir, data_dir, info)
    except KeyboardInterrupt:
        warn("gpu_check: interrupted; continue with python -m bench.gpu_check --resume")
        return 130
    print(
        f"gpu_check on {info['device_name']}, driver {info.get('cuda_driver')}, torch "
        f"{torch.__version__}, CUDA {torch.version.cuda}; run folder {run_dir}"
    )
    print(verdict_table(found))
    missed = [v for v in found if not v.passed]
    print(f"\n{len(found) - len(missed)} of {len(found)} targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
