"""``python -m reports RUN_DIR`` rebuilds a run's tables, charts and report.md from its stored
results (``--out DIR`` writes them elsewhere); ``python -m reports --compare RUN_A RUN_B``
prints the figures of both side by side, after a warning for each way they differ in setup;
``python -m reports merge RUN_DIR... --out MERGED`` merges the run folders of ``--shard``s."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from tabulate import tabulate

from runfolder.reader import Run, RunFolderError, load_run

from .compare import compare_runs, compare_warnings, readable_figures, write_comparison
from .merge import MergeError, merge_runs
from .report import ReportWriteError, build_report


class Parser(argparse.ArgumentParser):
    """No abbreviated options, and an error as one line with exit status 2."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"reports: error: {message} (see {self.prog} --help)\n")


def merge_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m reports merge",
        description="Merge the run folders of one run's shards (or of one spec on several "
        "devices) into one run folder, with its report.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="the run folders")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new folder")
    p.add_argument(
        "--across-devices",
        action="store_true",
        help="runs of one spec on different devices, side by side (each row keeps its device)",
    )
    return p


def merge_main(argv: list[str]) -> int:
    """``merge RUN_DIR... --out MERGED``: the merged run folder and its report."""
    args = merge_parser().parse_args(argv)
    paths = args.runs
    try:
        merged = merge_runs(paths, args.out, args.across_devices)
        report = build_report(merged.path)
    except (MergeError, RunFolderError) as exc:
        print(f"reports: error: {exc}", file=sys.stderr)
        return 2
    except ReportWriteError as exc:
        print(f"reports: error: cannot write the merged report ({exc})", file=sys.stderr)
        return 2
    print(f"merged {len(paths)} runs ({merged.rows} rows) into {merged.path}; report: {report}")
    if merged.missing:
        print(
            f"reports: {len(merged.missing)} items were dealt to a shard but are in no run "
            f"merged (the rest is merged): {', '.join(merged.missing)}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    p = Parser(prog="python -m reports", description=__doc__.split(";")[0])
    p.add_argument("run_dir", nargs="?", type=Path, help="a run folder (runs/...)")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write report.md, tables/ and charts/ into DIR (default: RUN_DIR); with "
        "--compare, compare.md and the chart of throughput on each run's device",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("RUN_A", "RUN_B"),
        help="print both runs' shared figures side by side (same model, mode, batch and input)",
    )
    p.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="the charts that compare models show the best N (default: every model)",
    )
    args = p.parse_args(argv)
    if args.top is not None and args.top < 1:
        print("reports: error: --top must be at least 1", file=sys.stderr)
        return 2
    if not args.run_dir and not args.compare:
        p.error("give a RUN_DIR, or --compare RUN_A RUN_B")
    if args.run_dir and args.compare and args.out:
        p.error("--out goes with a RUN_DIR or with --compare, not both")
    try:
        if args.run_dir:
            report = build_report(args.run_dir, args.out, args.top)
            print(f"rebuilt {report} with tables/ and charts/ beside it")
        if args.compare:
            runs = [load_run(path) for path in args.compare]
            compare(*runs)
            if args.out:
                written = write_comparison(*runs, args.out, args.top)
                print(f"wrote {', '.join(str(w) for w in written)}")
    except RunFolderError as exc:
        print(f"reports: error: {exc}", file=sys.stderr)
        return 2
    except ReportWriteError as exc:
        print(
            f"reports: error: cannot write the report ({exc}); the run folder is unchanged: "
            "write the report elsewhere with --out DIR",
            file=sys.stderr,
        )
        return 2
    return 0


def compare(a: Run, b: Run) -> None:
    """The comparison on stdout, each warning before it and on stderr too."""
    print(f"A = {a.path}, B = {b.path}")
    for line in compare_warnings(a, b):
        print(line)
        print(f"reports: {line}", file=sys.stderr)
    table = compare_runs(a, b)
    if table.empty:
        print("the two runs share no measured figure")
    else:
        shown = readable_figures(table)
        print(
            tabulate(
                shown,
                headers="keys",
                showindex=False,
                disable_numparse=True,
                colalign=["left"] * (len(shown.columns) - 4) + ["right"] * 4,
            )
        )
