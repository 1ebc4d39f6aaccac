"""A run folder's tables (Markdown and HTML), charts (PNG and SVG) and ``report.md``,
made from the stored results alone: rebuilding never measures again."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from tabulate import tabulate

from runfolder.reader import Run, load_run
from runfolder.schema import METRICS, NOISY_REL_IQR, file_stem

from .charts import write_charts
from .tables import (
    FLAG_COLUMNS,
    LAYER_HEADERS,
    SLOWEST_LAYERS,
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
    model_summary,
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

CHART_CAPTIONS = {
    "time_share_by_kind": "Per model, the share of a training step's time in the modules "
    "(forward and backward self time, profile phase) by layer kind, and below it the share of "
    "the MACs: a kind whose time share is far above its MAC share is memory- or overhead-bound. "
    "Concatenation and residual addition are measured in their blocks; the static count gives "
    "them no MACs.",
    "layer_mac_rate": "One profiled model's leaf layers (the one with the most leaf layers "
    "with MACs; the chart's title names it): achieved MAC/s in the inference forward (eval, no "
    "grad; the layer's MACs x batch over its profiled forward time) against its MACs, by layer "
    "kind. Small layers sit low: their time is overhead, not arithmetic.",
    "accuracy_vs_gflops": "Accuracy against compute; the dashed line is the Pareto frontier "
    "(no model is both cheaper and more accurate than a circled one).",
    "accuracy_vs_throughput": "Accuracy against inference throughput, with its Pareto frontier.",
    "throughput_vs_params": "Inference throughput against parameter count.",
    "speedup_by_mode": "Each execution mode's inference throughput over fp32's.",
    "learning_curves": "Test accuracy by epoch and by training second.",
    "latency_distributions": "Batch-1 latency: quartiles, p1-p99 whiskers, outliers.",
    "throughput_by_device": "A run merged across devices: each model's inference throughput "
    "on each device, in one mode, at the same batch and input size.",
    "roofline": "Achieved TFLOP/s against estimated arithmetic intensity (FLOPs over the "
    "parameters read once plus each leaf layer's output written and read once). A red ring: "
    "above the measured ceiling, not an attainable figure.",
}
# how the flagged charts mark noisy and host-bound figures
_HOST_CAPTION = "an 'h': host-bound (Python dispatch, MFU describes the CPU)."
FLAG_CAPTIONS = {
    name: f"{noisy}: noisy (IQR/median > {NOISY_REL_IQR:.0%}); {_HOST_CAPTION}"
    for name, noisy in (
        ("accuracy_vs_throughput", "Hollow markers"),
        ("throughput_vs_params", "Hollow markers"),
        ("speedup_by_mode", "Hatched bars (this mode's figure or fp32's)"),
        ("roofline", "Hollow markers"),
    )
}


def devices_of(run: Run) -> list[str]:
    return list(dict.fromkeys(run.results["device"]))


def on_device(run: Run, device: str) -> Run:
    """The part of a run (merged across devices) measured on ``device``."""
    rows = run.results[run.results["device"] == device]
    return dataclasses.replace(
        run, results=rows, provenance={**run.provenance, "device_name": device}
    )


def report_tables(run: Run) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Each table with its marks (``tables.speed_marks``: text by row and column, for the
    figures that can carry one); speed figures are judged against run.json's ceilings. A run
    merged across devices has each table per device (``NAME@N``, N the device's place), then
    the devices compared."""
    devices = devices_of(run)
    if len(devices) == 1:
        return _tables(run)
    tables = {
        f"{name}@{i}": pair
        for i, device in enumerate(devices, 1)
        for name, pair in _tables(on_device(run, device)).items()
    }
    compared = device_comparison(run.results)
    tables["devices"] = (compared.reset_index(), pd.DataFrame(index=range(len(compared))))
    return tables


def _tables(run: Run) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    r = run.results
    ceilings = run.provenance.get("ceilings")
    summary = model_summary(r)
    tables = {"summary": (summary, summary_marks(r, ceilings).reindex(summary.index))}
    phases = set(r["phase"])
    if "static" in phases:
        static = static_summary(r)
        tables["static"] = (static, pd.DataFrame(index=static.index))
    if "speed" in phases:
        speed = speed_summary(r, ceilings)
        marks = speed_marks(speed).reset_index(drop=True)
        tables["speed"] = (speed.drop(columns=list(FLAG_COLUMNS.values())).reset_index(), marks)
        speedup = speedup_table(r)
        if not speedup.empty:
            rows = pd.Index([f"{m}, batch {int(b)}" for m, b in speedup.index], name="model")
            headers = [speedup_header(m) for m in speedup.columns]
            tables["speedup"] = (
                speedup.set_axis(rows).set_axis(headers, axis=1),
                speedup_marks(r).set_axis(rows).set_axis(headers, axis=1),
            )
    if "accuracy" in phases:
        accuracy = accuracy_summary(r)
        settings = accuracy_settings(r)
        if settings.nunique() > 1:  # a merged run: each model's own, beside its figures
            accuracy.insert(0, "budget; images", settings.reindex(accuracy.index).fillna(""))
        tables["accuracy"] = (accuracy, pd.DataFrame(index=accuracy.index))
    if has_ddp(r):
        ddp = ddp_summary(r).reset_index()
        tables["ddp"] = (ddp, pd.DataFrame(index=ddp.index))
    memory = memory_summary(r)
    if not memory.empty:
        tables["memory"] = (memory, pd.DataFrame(index=memory.index))
    return tables


def accuracy_title(run: Run) -> str:
    """The accuracy section's heading: with the budget and images, or a note that they vary."""
    settings = set(accuracy_settings(run.results))
    if len(settings) > 1:
        return "Accuracy on Fashion-MNIST (budgets or images differ: see each model's)"
    return "Accuracy on Fashion-MNIST" + "".join(f" ({s})" for s in settings)


def _empty_columns_dropped(table: pd.DataFrame) -> pd.DataFrame:
    return table.loc[:, [c for c in table.columns if not (table[c].astype(str) == "").all()]]


def _rendered(table: pd.DataFrame, marks: pd.DataFrame | None = None) -> tuple[str, str]:
    """Markdown and HTML of a table, its figures followed by their marks, with footnotes."""
    table = _empty_columns_dropped(table)
    marks = pd.DataFrame(index=table.index) if marks is None else marks
    marks = marks[[c for c in marks.columns if c in table.columns]]
    figures = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    shown, notes = with_marks(table, marks), footnotes(marks)
    markdown = to_markdown(shown, right=[*figures, *marks.columns])
    if notes:
        markdown += "\n\n" + markdown_notes(notes)
    return markdown, to_html(shown, notes)


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
    rendered = {name: _rendered(*pair) for name, pair in report_tables(run).items()}
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
    titles = {
        "summary": "Summary per model",
        "static": "Static profile (per sample)",
        "speed": "Speed",
        "speedup": "Speed-up over fp32 (inference, same batch)",
        "accuracy": accuracy_title(run),
        "memory": "Peak resident memory of the process, per phase (CPU memory)",
        "ddp": "Data-parallel training (DistributedDataParallel, torchrun)",
        "devices": "Devices compared: inference throughput (samples/s) and ratios, same model, "
        "mode, batch and input",
    }
    devices = devices_of(run)
    for name, (markdown, _) in rendered.items():
        table, _, place = name.partition("@")
        on = f" on {devices[int(place) - 1]}" if place else ""
        lines += ["", f"## {titles[table]}{on}", "", markdown]
    if charts:
        lines += ["", "## Charts"]
        for name, path in charts.items():
            caption = " ".join(filter(None, (CHART_CAPTIONS[name], FLAG_CAPTIONS.get(name))))
            lines += ["", f"![{name}](charts/{path.name})", "", caption]
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
