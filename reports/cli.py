"""``python -m reports RUN_DIR`` rebuilds a run's tables, charts and report.md from its stored
results; ``python -m reports --compare RUN_A RUN_B`` prints the figures of both side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from .report import build_report, compare_runs
from .store import RunFolderError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__.split(";")[0])
    p.add_argument("run_dir", nargs="?", type=Path, help="a run folder (runs/...)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"))
    args = p.parse_args(argv)
    if not args.run_dir and not args.compare:
        p.error("give a RUN_DIR, or --compare RUN_A RUN_B")
    try:
        if args.run_dir:
            report = build_report(args.run_dir)
            print(f"rebuilt {report} with tables/ and charts/ beside it")
        if args.compare:
            table = compare_runs(*args.compare)
            if table.empty:
                print("the two runs share no measured figure")
            else:
                print(f"A = {args.compare[0]}, B = {args.compare[1]}")
                print(tabulate(table, headers="keys", showindex=False, floatfmt=".4g"))
    except RunFolderError as exc:
        print(f"reports: error: {exc}", file=sys.stderr)
        return 2
    return 0

