"""A run folder's tables (Markdown and HTML), charts (PNG and SVG) and ``report.md``,
made from the stored results alone: rebuilding never measures again."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import pandas as pd
from tabulate import tabulate

from runfolder.reader import Run, load_run
from runfolder.schema import METRICS, file_stem

from .charts import CHARTS, write_charts
from .tables import (
    FLAG_COLUMNS,
    LAYER_HEADERS,
    SLOWEST_LAYERS,
    Methods,
    accuracy_settings,
    accuracy_summary,
    ceiling_source,
    ddp_summary,
    device_comparison,
    footnotes,
    has_ddp,
    layer_table,
    markdown_notes,
    memory_summary,
    methods_html,
    methods_markdown,
    model_summary,
    phase_table,
    slowest_layers,
    speed_marks,
    speed_summary,
    speedup_header,
    speedup_marks,
    speedup_table,
    static_summary,
    summary_marks,
    to_html,
    to_markdown,
    with_marks,
)


def devices_of(run: Run) -> list[str]:
    return list(dict.fromkeys(run.results["device"]))


def on_device(run: Run, device: str) -> Run:
    """The part of a run (merged across devices) measured on ``device``."""
    rows = run.results[run.results["device"] == device]
    return dataclasses.replace(
        run, results=rows, provenance={**run.provenance, "device_name": device}
    )


class Table(NamedTuple):
    """A table of the report: its figures; their marks (text by row and column, for the
    figures that can carry one: ``tables.speed_marks``); how its figures were measured, listed
    under it (``tables.phase_table``'s methods)."""

    figures: pd.DataFrame
    marks: pd.DataFrame
    methods: Methods = ()


def _unmarked(table: pd.DataFrame, methods: Methods = ()) -> Table:
    return Table(table, pd.DataFrame(index=table.index), tuple(methods))


def report_tables(run: Run) -> dict[str, Table]:
    """Each table by name; speed figures are judged against run.json's ceilings. A run merged
    across devices has each table per device (``NAME@N``, N the device's place), then the
    devices compared."""
    devices = devices_of(run)
    if len(devices) == 1:
        return _tables(run)
    tables = {
        f"{name}@{i}": table
        for i, device in enumerate(devices, 1)
        for name, table in _tables(on_device(run, device)).items()
    }
    compared = device_comparison(run.results)
    tables["devices"] = Table(compared.reset_index(), pd.DataFrame(index=range(len(compared))))
    return tables


def _static_tables(run: Run) -> dict[str, Table]:
    if "static" not in set(run.results["phase"]):
        return {}
    return {"static": _unmarked(static_summary(run.results))}


def _speed_tables(run: Run) -> dict[str, Table]:
    r = run.results
    if "speed" not in set(r["phase"]):
        return {}
    speed = speed_summary(r, run.provenance.get("ceilings"))
    marks = speed_marks(speed).reset_index(drop=True)
    tables = {"speed": Table(speed.drop(columns=list(FLAG_COLUMNS.values())).reset_index(), marks)}
    speedup = speedup_table(r)
    if not speedup.empty:
        rows = pd.Index([f"{m}, batch {int(b)}" for m, b in speedup.index], name="model")
        headers = [speedup_header(m) for m in speedup.columns]
        tables["speedup"] = Table(
            speedup.set_axis(rows).set_axis(headers, axis=1),
            speedup_marks(r).set_axis(rows).set_axis(headers, axis=1),
        )
    return tables


def _accuracy_tables(run: Run) -> dict[str, Table]:
    r = run.results
    if "accuracy" not in set(r["phase"]):
        return {}
    accuracy = accuracy_summary(r)
    settings = accuracy_settings(r)
    if settings.nunique() > 1:  # a merged run: each model's own, beside its figures
        accuracy.insert(0, "budget; images", settings.reindex(accuracy.index).fillna(""))
    return {"accuracy": _unmarked(accuracy)}


def _ddp_tables(run: Run) -> dict[str, Table]:
    # the ddp phase's, and the accuracy phase's trained over several processes
    if not has_ddp(run.results):
        return {}
    return {"ddp": _unmarked(ddp_summary(run.results).reset_index())}


# the phases whose figures report.md shows in tables (or sections) of their own, in the
# order shown, each with what makes its tables ({} when the run has none); any other phase
# gets the table built from the schema (``tables.phase_table``)
PHASE_TABLES: dict[str, Callable[[Run], dict[str, Table]]] = {
    "static": _static_tables,
    "speed": _speed_tables,
    "accuracy": _accuracy_tables,
    "ddp": _ddp_tables,
    "profile": lambda run: {},  # its slowest layers and its charts are sections of their own
}
# the headings of the tables, by name; a phase's table from the schema is headed by its name
TITLES = {
    "summary": "Summary per model",
    "static": "Static profile (per sample)",
    "speed": "Speed",
    "speedup": "Speed-up over fp32 (inference, same batch)",
    "accuracy": "Accuracy on Fashion-MNIST",  # with the budget: ``accuracy_title``
    "memory": "Peak resident memory of the process, per phase (CPU memory)",
    "ddp": "Data-parallel training (DistributedDataParallel, torchrun)",
    "devices": "Devices compared: inference throughput (samples/s) and ratios, same model, "
    "mode, batch and input",
}


def other_phases(results: pd.DataFrame) -> list[str]:
    """The phases of ``results`` that have no table of their own (``PHASE_TABLES``), in the
    order they first appear."""
    return [p for p in dict.fromkeys(results["phase"]) if p not in PHASE_TABLES]


def _phase_table_name(phase: str) -> str:
    """The name of the table of a phase without one of its own (its file is tables/NAME.md)."""
    return f"{phase}_phase" if phase in TITLES else phase


def _tables(run: Run) -> dict[str, Table]:
    r = run.results
    summary = model_summary(r)
    marks = summary_marks(r, run.provenance.get("ceilings")).reindex(summary.index)
    tables = {"summary": Table(summary, marks)}
    for tables_of in PHASE_TABLES.values():
        tables |= tables_of(run)
    for phase in other_phases(r):
        table, methods = phase_table(r, phase)
        if len(table):
            tables[_phase_table_name(phase)] = _unmarked(table, methods)
    memory = memory_summary(r)
    if not memory.empty:
        tables["memory"] = _unmarked(memory)
    return tables


def accuracy_title(run: Run) -> str:
    """The accuracy section's heading: with the budget and images, or a note that they vary."""
    settings = set(accuracy_settings(run.results))
    if len(settings) > 1:
        return "Accuracy on Fashion-MNIST (budgets or images differ: see each model's)"
    return "Accuracy on Fashion-MNIST" + "".join(f" ({s})" for s in settings)


def _empty_columns_dropped(table: pd.DataFrame) -> pd.DataFrame:
    return table.loc[:, [c for c in table.columns if not (table[c].astype(str) == "").all()]]


def _rendered(
    table: pd.DataFrame, marks: pd.DataFrame | None = None, methods: Methods = ()
) -> tuple[str, str]:
    """Markdown and HTML of a table, its figures followed by their marks, with footnotes and
    then how its figures were measured (``methods``)."""
    table = _empty_columns_dropped(table)
    marks = pd.DataFrame(index=table.index) if marks is None else marks
    marks = marks[[c for c in marks.columns if c in table.columns]]
    figures = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    shown, marked = with_marks(table, marks), footnotes(marks)
    markdown = to_markdown(shown, right=[*figures, *marks.columns])
    if marked:
        markdown += "\n\n" + markdown_notes(marked)
    html = to_html(shown, marked)
    if methods:
        markdown += "\n\n" + methods_markdown(methods)
        html += methods_html(methods)
    return markdown, html


def _ceilings_line(ceilings: dict[str, Any]) -> str:
    """run.json's ceilings, the ones figures are judged against, as a row of the header table."""
    compute = "; ".join(
        f"{p} {c['tflops']:.4g} TFLOP/s ({ceiling_source(c)})"
        for p, c in ceilings.get("compute", {}).items()
    )
    bw = ceilings.get("bandwidth")
    memory = f"; memory {bw['gbs']:.4g} GB/s ({ceiling_source(bw)})" if bw else ""
    return f"| ceilings (roofline, '!' marks) | {compute}{memory} |"


class ReportWriteError(Exception):
    """The report cannot be written where it was asked for."""


def _check_writable(out: Path) -> None:
    """Raise ``ReportWriteError`` if ``out``, or a file or folder the report would replace in
    it, cannot be written: checked before writing anything, so nothing is left half-written."""
    for path, is_dir in (
        (out, True),
        (out / "tables", True),
        (out / "tables" / "layers", True),
        (out / "charts", True),
        (out / "report.md", False),
    ):
        if not path.exists():
            continue
        if path.is_dir() != is_dir:
            kind = "a folder" if is_dir else "a file"
            raise ReportWriteError(f"{path} is in the way: the report needs {kind} there")
        if not os.access(path, os.W_OK | (os.X_OK if is_dir else 0)):
            raise ReportWriteError(f"{path} is not writable")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ReportWriteError(f"{existing} is a file, not a folder")
    if existing != out and not os.access(existing, os.W_OK | os.X_OK):
        raise ReportWriteError(f"{existing} is not writable")


def build_report(run_dir: Path, out: Path | None = None, top: int | None = None) -> Path:
    """Write OUT/tables/, OUT/charts/ and OUT/report.md (OUT: the run folder unless given);
    return report.md's path. ``top``: the charts that compare models show the best ``top``.
    Raises ``ReportWriteError`` when OUT cannot be written."""
    run = load_run(run_dir)
    out = run.path if out is None else Path(out)
    _check_writable(out)
    try:
        return _write_report(run, out, top)
    except OSError as exc:
        raise ReportWriteError(f"{exc.strerror or exc}: {exc.filename or out}") from exc


def _write_report(run: Run, out: Path, top: int | None = None) -> Path:
    tables_dir, charts_dir = out / "tables", out / "charts"
    (tables_dir / "layers").mkdir(parents=True, exist_ok=True)
    rendered = {name: _rendered(*table) for name, table in report_tables(run).items()}
    for name, (markdown, html) in rendered.items():
        (tables_dir / f"{name}.md").write_text(markdown + "\n")
        (tables_dir / f"{name}.html").write_text(html)
    for model, layers in run.layers.items():
        shown = layer_table(layers).set_index("path").rename(columns=LAYER_HEADERS)
        markdown, html = _rendered(shown)
        (tables_dir / "layers" / f"{file_stem(model)}.md").write_text(markdown + "\n")
        (tables_dir / "layers" / f"{file_stem(model)}.html").write_text(html)
    charts = write_charts(run, charts_dir, top)

    p = run.provenance
    lines = [
        f"# archbench run {run.path.name}",
        "",
        "| | |",
        "| --- | --- |",
        *(
            f"| {k} | {p[k]} |"
            for k in (
                "command",
                "git_commit",
                "device_name",
                "torch",
                "cuda",
                "cuda_driver",
                "torchvision",
                "fvcore",
                "host",
                "started",
                "finished",
                "status",
            )
            if p.get(k) is not None
        ),
        *([_ceilings_line(p["ceilings"])] if p.get("ceilings") else []),
        "",
        "Units are in every header; how each figure was measured is in the `method` column of "
        "`results.csv` (also `results.parquet`). MACs count one multiply-add as one (fvcore); "
        "FLOPs = 2 x MACs.",
    ]
    titles = {**TITLES, "accuracy": accuracy_title(run)}
    titles |= {_phase_table_name(phase): phase for phase in other_phases(run.results)}
    devices = devices_of(run)
    for name, (markdown, _) in rendered.items():
        table, _, place = name.partition("@")
        on = f" on {devices[int(place) - 1]}" if place else ""
        lines += ["", f"## {titles[table]}{on}", "", markdown]
    if charts:
        lines += ["", "## Charts"]
        for name, path in charts.items():
            lines += ["", f"![{name}](charts/{path.name})", "", CHARTS[name].full_caption]
    if run.profiles:
        lines += ["", f"## Slowest layers (profile phase, top {SLOWEST_LAYERS} by self time)"]
        for (model, mode), frame in run.profiles.items():
            markdown, _ = _rendered(slowest_layers(frame).set_index("layer"))
            lines += ["", f"### {model}, {mode}", "", markdown]
        lines += [
            "",
            "Self time: forward and backward of a training step outside any child module; "
            "share of the profiled step. Kept MB: memory its training forward allocated and "
            "did not free (its output, what autograd saves), children included. Every module, "
            "with the loss and the optimizer: `profile/MODEL__MODE.csv`.",
        ]
    if run.layers:
        lines += ["", "## Per-layer tables", ""]
        # the link is a URL: the file's own %-escapes are escaped once more
        lines += [f"- [{m}](tables/layers/{quote(file_stem(m))}.md)" for m in run.layers]
    lines += ["", "## The metrics in results.csv", "", metrics_glossary(run.results)]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def metrics_glossary(results: pd.DataFrame) -> str:
    """The metrics the run wrote, each with its unit and what it is (``runfolder.schema``)."""
    present = [m for m in METRICS if m in set(results["metric"])]
    rows = [(f"`{m}`", METRICS[m].unit or "-", METRICS[m].description) for m in present]
    return tabulate(rows, headers=["metric", "unit", "what it is"], tablefmt="github")
