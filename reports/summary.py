"""The summary printed at the end of a run: the static, speed and accuracy tables of what the
run folder holds, which models failed, and what else the folder holds."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from runfolder.reader import Run, phase_rows
from runfolder.schema import ACCURACY_TARGETS, ERROR_METRIC

from .tables import (
    accuracy_summary,
    ddp_summary,
    format_accuracy_summary,
    format_speed_summary,
    format_static_summary,
    has_ddp,
    speed_summary,
    static_summary,
)

MACS_NOTE = "MACs: 1 multiply-add = 1, FLOPs = 2 x MACs"

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


def _first(rows, column: str) -> object:
    return rows[column].iloc[0] if len(rows) else ""


def console_summary(run: Run) -> tuple[str, list[str]]:
    """The text, and the models with an error row."""
    results, info = run.results, run.provenance
    phases = set(results["phase"])
    failed: set[str] = set()
    parts = []
    if "static" in phases:
        summary = static_summary(results)
        method = _first(
            results[(results["phase"] == "static") & (results["metric"] == "macs")], "method"
        )
        parts.append(f"Static profile: per sample, {method}; {MACS_NOTE}")
        parts.append(format_static_summary(summary))
        failed |= set(summary.index[summary["error"] != ""])
    if "speed" in phases:
        speed = speed_summary(results, info.get("ceilings"))
        parts.append(
            f"Speed on {info.get('device', '?')} ({info.get('device_name', '?')}), torch "
            f"{info.get('torch', '?')}, synthetic inputs. infer/s, train/s: samples/s, median of "
            "timed blocks (train = forward + backward + SGD step); ±%: IQR/median; marks (*, h, "
            "!) explained under the table; p50/p99: batch-1 latency; TFLOP/s from the static "
            "FLOPs (x3 for training); MFU vs the datasheet peak, or the peak measured at the "
            "run's start; MB: peak CUDA memory; compile s: first call incl. compilation"
        )
        parts.append(format_speed_summary(speed))
        failed |= set(speed.index.get_level_values("model")[speed["error"] != ""])
    if "accuracy" in phases:
        acc = accuracy_summary(results)
        rows = phase_rows(results, "accuracy")
        budget = f"{_first(rows, 'budget_unit')}={_first(rows, 'budget'):g}"
        target = ACCURACY_TARGETS[0]
        parts.append(
            f"Accuracy on real Fashion-MNIST, budget {budget}, "
            f"{_first(rows, 'train_images'):,.0f} training and {_first(rows, 'test_images'):,.0f} "
            f"test images, mode {_first(rows, 'mode')}; means over seeds; 'to {target}% s': "
            f"training seconds until the test accuracy first reached {target}% (checked at "
            "epoch ends)"
        )
        parts.append(format_accuracy_summary(acc))
        failed |= set(acc.index[acc["error"] != ""])
    if has_ddp(results):
        ddp = ddp_summary(results)
        parts.append(
            "Data-parallel training (DistributedDataParallel, torchrun; samples/s)\n\n"
            + tabulate(ddp.drop(columns=["error"]).reset_index(), headers="keys", showindex=False)
        )
    # the errors of the phases without a table here too (profile, ddp, one added to the suite)
    failed |= set(results.loc[results["metric"] == ERROR_METRIC, "model"])
    rss = results[results["metric"] == "peak_rss"]
    if len(rss):
        top = rss.loc[rss["value"].idxmax()]
        parts.append(
            f"Peak resident memory of the process: {top['value']:,.0f} MB ({top['model']}, "
            f"{top['phase']} phase); per model and phase in the report"
        )
    parts.append(f"results: {saved_files(run.path)}")
    return "\n\n".join(parts), sorted(failed)
