"""docs/metrics.md, the metric reference, rendered from ``runfolder.schema.METRICS``.

    python -m reports.reference          # (re)write docs/metrics.md
    python -m reports.reference --check  # exit 1 when docs/metrics.md is not what it renders

Every figure's name, unit and description come from the schema; this module only groups the
metrics by the phase that writes them (the schema's ``Metric`` has no phase of its own) and
lays out the tables. A metric that no group claims is listed under "Other metrics", never
left out.
"""

from __future__ import annotations

import argparse
import sys
from fnmatch import fnmatchcase
from pathlib import Path

from runfolder.schema import ERROR_METRIC, ITEM_KEYS, MEMORY_METRICS, METRICS, Metric

ROOT = Path(__file__).resolve().parents[1]
METRICS_MD = ROOT / "docs" / "metrics.md"
COMMAND = "python -m reports.reference"

# (phase, what its rows are about, the name patterns of its metrics), in the order a run goes;
# a metric belongs to the first group with a matching pattern
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "static",
        "the static profile, batch 1, eval mode",
        (
            "input_*",
            "params",
            "params_trainable",
            "param_size_*",
            "macs",
            "macs_*",
            "flops",
            "unsupported_ops",
            "activation_elems",
        ),
    ),
    (
        "speed",
        "throughput, batch-1 latency and the compiled modes' check against eager",
        ("infer_*", "train_*", "latency_*"),
    ),
    (
        "ddp",
        "data-parallel training: the ddp phase, and the accuracy phase with `--accuracy-processes`",
        ("ddp_*",),
    ),
    (
        "profile",
        "where the time goes; per-layer figures are in `profile/MODEL__MODE.csv`",
        ("profile_*",),
    ),
    (
        "accuracy",
        "training on Fashion-MNIST under one budget; per-epoch curves are in `curves.csv`",
        (
            "test_acc",
            "test_acc_std",
            "seeds",
            "macro_f1",
            "final_train_*",
            "fit_*",
            "first_step_time",
            "time_to_*",
            "class_acc_*",
            "diverged",
            "note_*",
            "not_trained_estimate",
        ),
    ),
    (
        "every phase",
        "per phase and model; the row's `phase` is the phase concerned",
        (*sorted(MEMORY_METRICS), ERROR_METRIC),
    ),
)
OTHER = "Other metrics"


def group_of(name: str) -> str:
    """The phase (a ``GROUPS`` name) whose table lists the metric ``name``, else ``OTHER``."""
    for phase, _, patterns in GROUPS:
        if any(fnmatchcase(name, pattern) for pattern in patterns):
            return phase
    return OTHER


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if text else "-"


def _table(metrics: list[Metric]) -> list[str]:
    lines = ["| metric | unit | what, how |", "| --- | --- | --- |"]
    lines += [f"| `{m.name}` | {_cell(m.unit)} | {_cell(m.description)} |" for m in metrics]
    return lines


def metrics_markdown() -> str:
    """docs/metrics.md: a table per phase of every metric in ``runfolder.schema.METRICS``."""
    grouped: dict[str, list[Metric]] = {}
    for metric in METRICS.values():
        grouped.setdefault(group_of(metric.name), []).append(metric)
    lines = [
        "# Metrics",
        "",
        f"Generated from `runfolder/schema.py` by `{COMMAND}`: do not edit it by hand "
        f"(`tests/test_docs.py` fails when it is stale). Every row of `results.csv` holds one "
        f"of these {len(METRICS)} metrics with its unit; the columns that say what the figure "
        "is about (model, mode, batch, ...) are described in that module's docstring.",
    ]
    for phase, about, _ in GROUPS:
        if phase not in grouped:
            continue
        lines += ["", f"## {phase}", "", f"{about[0].upper()}{about[1:]}."]
        if phase in ITEM_KEYS:
            keys = ", ".join(f"`{k}`" for k in ITEM_KEYS[phase])
            lines[-1] += f" One item per {keys} (`ITEM_KEYS`)."
        lines += ["", *_table(grouped[phase])]
    if OTHER in grouped:
        lines += ["", f"## {OTHER}", "", *_table(grouped[OTHER])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when docs/metrics.md is stale; write nothing"
    )
    args = parser.parse_args(argv)
    text = metrics_markdown()
    shown = METRICS_MD.relative_to(ROOT)
    if args.check:
        current = METRICS_MD.read_text() if METRICS_MD.exists() else None
        if current != text:
            state = "missing" if current is None else "stale"
            print(f"{shown} is {state}: run `{COMMAND}`", file=sys.stderr)
            return 1
        print(f"{shown} is up to date")
        return 0
    METRICS_MD.parent.mkdir(parents=True, exist_ok=True)
    METRICS_MD.write_text(text)
    print(f"wrote {shown} ({len(METRICS)} metrics)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
