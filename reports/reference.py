"""docs/metrics.md, the metric reference, rendered from ``runfolder.schema.METRICS``.

    python -m reports.reference          # (re)write docs/metrics.md
    python -m reports.reference --check  # exit 1 when docs/metrics.md is not what it renders

Every figure's name, unit, description and phase come from the schema; this module only says
what each phase's rows are about and lays out the tables, a table per phase (a phase declared
with ``register_phase_schema`` after the suite's own), and the metrics every phase writes last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runfolder.schema import ITEM_KEYS, METRICS, Metric

ROOT = Path(__file__).resolve().parents[1]
METRICS_MD = ROOT / "docs" / "metrics.md"
COMMAND = "python -m reports.reference"

EVERY_PHASE = "every phase"  # the group of the metrics whose phase is "": memory, errors
# (phase, what its rows are about), in the order a run goes; a phase declared outside the
# suite comes before EVERY_PHASE
GROUPS: tuple[tuple[str, str], ...] = (
    ("static", "the static profile, batch 1, eval mode"),
    ("speed", "throughput, batch-1 latency and the compiled modes' check against eager"),
    (
        "ddp",
        "data-parallel training: the ddp phase, and the accuracy phase with `--accuracy-processes`",
    ),
    ("profile", "where the time goes; per-layer figures are in `profile/MODEL__MODE.csv`"),
    (
        "accuracy",
        "training on Fashion-MNIST under one budget; per-epoch curves are in `curves.csv`",
    ),
    (EVERY_PHASE, "per phase and model; the row's `phase` is the phase concerned"),
)


def group_of(name: str) -> str:
    """The section of docs/metrics.md that lists the metric ``name``: its phase, or
    ``EVERY_PHASE`` for the metrics every phase writes."""
    return METRICS[name].phase or EVERY_PHASE


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
    about = dict(GROUPS)
    outside = [phase for phase in grouped if phase not in about]
    order = [*list(about)[:-1], *outside, EVERY_PHASE]
    lines = [
        "# Metrics",
        "",
        f"Generated from `runfolder/schema.py` by `{COMMAND}`: do not edit it by hand "
        f"(`tests/test_docs.py` fails when it is stale). Every row of `results.csv` holds one "
        f"of these {len(METRICS)} metrics with its unit; the columns that say what the figure "
        "is about (model, mode, batch, ...) are described in that module's docstring.",
    ]
    for phase in order:
        if phase not in grouped:
            continue
        lines += ["", f"## {phase}"]
        text = f"{about[phase][0].upper()}{about[phase][1:]}." if phase in about else ""
        if phase in ITEM_KEYS:
            keys = ", ".join(f"`{k}`" for k in ITEM_KEYS[phase])
            text += f" One item per {keys} (`ITEM_KEYS`)."
        lines += ["", text.strip()] if text else []
        lines += ["", *_table(grouped[phase])]
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
