"""``python -m reports RUN_DIR`` rebuilds a run's tables, charts and report.md from its stored
results (``--out DIR`` writes them elsewhere); ``python -m reports --compare RUN_A RUN_B``
prints the figures of both side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from .report import ReportWriteError, build_report, compare_runs
from .store import RunFolderError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reports", description=__doc__.split(";")[0])
    p.add_argument("run_dir", nargs="?", type=Path, help="a run folder (runs/...)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write report.md, tables/ and charts/ into DIR (default: RUN_DIR)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"))
    args = p.parse_args(argv)
    if not args.run_dir and not args.compare:
        p.error("give a RUN_DIR, or --compare RUN_A RUN_B")
    try:
        if args.run_dir:
            report = build_report(args.run_dir, args.out)
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
    except ReportWriteError as exc:
        print(f"reports: error: cannot write the report ({exc}); the run folder is unchanged: "
              "write the report elsewhere with --out DIR", file=sys.stderr)  # fmt: skip
        return 2
    return 0

