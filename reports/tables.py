"""Tables made from a run's tidy results (see ``runfolder.schema``)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from runfolder.reader import phase_rows
from runfolder.schema import (
    ACCURACY_TARGETS,
    ERROR_METRIC,
    HOST_BOUND_RATIO,
    ITEM_KEYS,
    MEMORY_METRICS,
    METRICS,
    NOISY_REL_IQR,
    metrics_of,
)


def metric_header(metric: str, label: str = "{metric} ({unit})", unit: str | None = None) -> str:
    """A column header of ``metric`` with its unit from the schema (``METRICS[metric].unit``;
    ``unit`` where the schema lacks the metric, as a phase not registered in this process):
    ``label`` with ``{unit}`` and ``{metric}`` filled in, by default 'energy_j (J)'; 'p50
    {unit}' gives 'p50 ms'. A metric without a unit is headed by its name alone."""
    unit = METRICS[metric].unit if metric in METRICS else unit or ""
    if not unit and label == "{metric} ({unit})":
        return metric
    return label.format(metric=metric, unit=unit)


def metric_headers(labels: dict[str, str]) -> dict[str, str]:
    """``metric_header`` of each metric -> label: header by metric. A label without
    ``{unit}`` is a header whose unit is said otherwise (its own unit, as 'epochs'; a shorter
    one, as 'infer/s' for inference samples/s; or one the metric is scaled to)."""
    return {metric: metric_header(metric, label) for metric, label in labels.items()}


STATIC_SUMMARY_COLUMNS = metric_headers(
    {
        # metric -> header with unit
        "params": "params (count)",
        "param_size_fp32": "size fp32 ({unit})",
        "macs": "MACs/sample",
        "flops": "FLOPs/sample",
        "unsupported_ops": "uncounted ops (calls)",
    }
)
LAYER_HEADERS = {
    "type": "type",
    "depth": "depth (nesting level)",
    "output_shape": "output shape (NxCxHxW)",
    "params": "params (count)",
    "macs": "MACs/sample",
}


def si(value: float, digits: int = 3) -> str:
    """61706 -> '61.7 K', 1.5e10 -> '15.4 G': a count in the terminal, unit in the header."""
    if pd.isna(value):
        return "-"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {suffix}"
    return f"{value:.{digits}g}"


def by_source(results: pd.DataFrame) -> list[str]:
    """The models of ``results`` grouped by source (the suite's, torchvision's, timm's, ...), in
    the order the sources and, within each, the models first appear."""
    first = results.groupby("model", sort=False)["source"].first()
    rank = {s: i for i, s in enumerate(dict.fromkeys(first))}
    return sorted(first.index, key=lambda m: rank[first[m]])  # stable: run order within


def _add_source(table: pd.DataFrame, results: pd.DataFrame) -> None:
    """A source column after the family, when the models come from more than one."""
    sources = results.groupby("model")["source"].first()
    if sources.nunique() > 1:
        at = list(table.columns).index("family") + 1 if "family" in table else 0
        table.insert(at, "source", sources.reindex(table.index))


def static_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model: input, parameters, size, MACs, FLOPs, uncounted ops, error.

    Models are grouped by source (``by_source``), in the order they appear in ``results``.
    """
    static = results[results["phase"] == "static"]
    order = by_source(static)
    figures = static[static["metric"] != ERROR_METRIC].pivot_table(
        index="model", columns="metric", values="value", aggfunc="first"
    )
    families = static.groupby("model")["family"].first()
    errors = static[static["metric"] == ERROR_METRIC].groupby("model")["error"].first()

    table = pd.DataFrame(index=pd.Index(order, name="model"))
    table["family"] = families
    table["input (CxHxW)"] = [_input_label(figures, m) for m in order]
    for metric, header in STATIC_SUMMARY_COLUMNS.items():
        table[header] = figures[metric] if metric in figures else float("nan")
    table["error"] = errors.reindex(order).fillna("")
    _add_source(table, static)
    return table


def _input_label(figures: pd.DataFrame, model: str) -> str:
    try:
        row = figures.loc[model]
        c, h, w = (int(row[k]) for k in ("input_channels", "input_height", "input_width"))
    except (KeyError, ValueError):
        return ""
    return f"{c}x{h}x{w}"


def format_static_summary(table: pd.DataFrame) -> str:
    """Fixed-width text for the terminal; errors are listed under the table, not in it."""
    shown = table.drop(columns=["error"]).reset_index()
    formats = {
        "params": si,
        "param_size_fp32": lambda v: "-" if pd.isna(v) else f"{v:.2f}",
        "macs": si,
        "flops": si,
        "unsupported_ops": lambda v: "-" if pd.isna(v) else f"{v:.0f}",
    }
    for metric, fmt in formats.items():
        column = STATIC_SUMMARY_COLUMNS[metric]
        shown[column] = shown[column].map(fmt)
    text_columns = 4 if "source" in shown else 3  # model, family[, source], input
    text = tabulate(
        shown,
        headers="keys",
        showindex=False,
        disable_numparse=True,
        colalign=("left",) * text_columns + ("right",) * (len(shown.columns) - text_columns),
    )
    failed = table[table["error"] != ""]
    if len(failed):
        text += "\n\nfailed:\n" + "\n".join(f"  {m}: {e}" for m, e in failed["error"].items())
    return text


def layer_table(layers: pd.DataFrame, max_depth: int | None = None) -> pd.DataFrame:
    """The per-layer table down to ``max_depth`` (1 = the model's direct children)."""
    shown = layers[layers["depth"] > 0]
    if max_depth is not None:
        shown = shown[shown["depth"] <= max_depth]
    return shown.reset_index(drop=True)


def format_layer_table(layers: pd.DataFrame) -> str:
    """Indented by depth, like torchinfo; MACs in millions per sample."""
    rows = pd.DataFrame(
        {
            "layer": ["  " * (d - 1) + t for t, d in zip(layers["type"], layers["depth"])],
            "path": layers["path"],
            "output shape": layers["output_shape"],
            "params": layers["params"].map("{:,}".format),
            "MACs (M/sample)": (layers["macs"] / 1e6).map("{:.3f}".format),
        }
    )
    return tabulate(
        rows,
        headers="keys",
        showindex=False,
        disable_numparse=True,
        colalign=("left", "left", "left", "right", "right"),
    )


SPEED_COLUMNS = {
    # header (with unit) -> metric; samples/s shortened to infer/s and train/s
    header: metric
    for metric, header in metric_headers(
        {
            "infer_throughput": "infer/s",
            "infer_rel_iqr": "±{unit}",
            "latency_p50": "p50 {unit}",
            "latency_p99": "p99 {unit}",
            "train_throughput": "train/s",
            "train_rel_iqr": "train ±{unit}",
            "infer_tflops": "infer {unit}",
            "infer_mfu": "infer MFU{unit}",
            "train_mfu": "train MFU{unit}",
            "infer_peak_mem": "infer {unit}",
            "train_peak_mem": "train {unit}",
            "infer_compile_time": "compile {unit}",
            "infer_graph_breaks": "graph breaks ({unit})",
        }
    ).items()
}
# the speed figures the terminal shows as whole numbers
_WHOLE_SPEED = (
    "infer_throughput",
    "train_throughput",
    "infer_graph_breaks",
    "infer_peak_mem",
    "train_peak_mem",
)


KINDS = ("infer", "train")

# A speed figure's flags, each with the mark it puts after a number. above_ceiling: TFLOP/s
# above the run's final ceiling for the precision (run.json's); mfu_over_100: MFU > 100%, MFU
# dividing by the peak measured when the run began, which the final ceiling may exceed.
FLAG_MARKS = {
    "noisy": "*",
    "host_bound": "h",
    "above_ceiling": "!",
    "mfu_over_100": "!",
    "compiled_mismatch": "x",
}
MARK_NOTES = {
    "*": f"noisy: IQR/median > {NOISY_REL_IQR:.0%}",
    "h": "host-bound: Python dispatch, MFU describes the CPU (the host's enqueue loop took "
    f">= {HOST_BOUND_RATIO:.0%} of the GPU time)",
    "!": "above the measured ceiling (TFLOP/s above the run's ceiling for the precision, or "
    "MFU > 100%): the ceiling read low or the FLOP count is high",
    "x": "compiled output differs from eager: further from an fp64 run than the eager model "
    "in the same mode allows (bench.measure.agreement); the speed-up is not one",
}
FLAG_COLUMNS = {
    "noisy": "noisy",
    "host_bound": "host-bound",
    "above_ceiling": "above ceiling",
    "mfu_over_100": "MFU > 100%",
    "compiled_mismatch": "differs from eager",
}
# which flags each figure carries, by the metric's suffix (infer_throughput -> throughput)
_FLAGS_OF = {
    "throughput": ("noisy", "host_bound", "compiled_mismatch"),
    "tflops": ("host_bound", "above_ceiling"),
    "mfu": ("host_bound", "above_ceiling", "mfu_over_100"),
}


def ceiling_source(ceiling: dict[str, Any]) -> str:
    """How a run.json ceiling was found, with the count of measurements it is the best of."""
    n = int(ceiling.get("measurements", 1))
    return f"{ceiling['source']}; best of {n} measurements" if n > 1 else str(ceiling["source"])


def figure_flags(results: pd.DataFrame, ceilings: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per speed measurement (model, mode, requested batch), a bool column ``KIND_FLAG`` for
    each kind (infer, train) and flag of ``FLAG_MARKS``.

    Above the ceiling: TFLOP/s above ``ceilings`` (run.json's, the run's final ones) for the
    mode's precision; where the precision has no ceiling there, MFU > 100%."""
    speed = _values(results, "speed")
    columns = [f"{kind}_{flag}" for kind in KINDS for flag in FLAG_MARKS]
    if speed.empty:
        index = pd.MultiIndex.from_tuples([], names=["model", "mode", "batch"])
        return pd.DataFrame(columns=columns, index=index, dtype=bool)
    speed = speed.assign(
        batch=speed["requested_batch"].astype(int), value=pd.to_numeric(speed["value"])
    )
    wide = speed.pivot_table(
        index=["model", "mode", "batch"],
        columns="metric",
        values="value",
        aggfunc="first",
        sort=False,
    )
    compute = (ceilings or {}).get("compute", {})
    precision = speed.groupby(["model", "mode", "batch"], sort=False)["precision"].first()
    ceiling = np.array(
        [
            compute.get(precision[key].removesuffix("-true"), {}).get("tflops", np.nan)
            for key in wide.index
        ],
        dtype=float,
    )

    def figure(metric: str) -> np.ndarray:
        return wide[metric].to_numpy() if metric in wide else np.full(len(wide), np.nan)

    flags = pd.DataFrame(index=wide.index)
    for kind in KINDS:
        flags[f"{kind}_noisy"] = figure(f"{kind}_noisy") == 1
        flags[f"{kind}_host_bound"] = figure(f"{kind}_host_bound") == 1
        mfu_over_100 = figure(f"{kind}_mfu") > 100
        flags[f"{kind}_above_ceiling"] = np.where(
            np.isnan(ceiling), mfu_over_100, figure(f"{kind}_tflops") > ceiling
        )
        flags[f"{kind}_mfu_over_100"] = mfu_over_100
        # checked once per model and mode (at its first batch): it holds at every batch
        mismatch = pd.Series(figure(f"{kind}_compiled_mismatch") == 1, index=wide.index)
        by_mode = mismatch.groupby(level=["model", "mode"], sort=False).transform("any")
        flags[f"{kind}_compiled_mismatch"] = by_mode.to_numpy()
    return flags[columns]


def flags_at(flags: pd.DataFrame, keys: Sequence[tuple[str, str, int]]) -> pd.DataFrame:
    """The rows of ``figure_flags`` at (model, mode, batch) keys, all False where absent."""
    index = pd.MultiIndex.from_tuples(list(keys), names=["model", "mode", "batch"])
    return flags.reindex(index, fill_value=False).astype(bool)


def flags_on(row: Any) -> set[tuple[str, str]]:
    """The (kind, flag) pairs that hold in a row of ``figure_flags``."""
    return {(k, f) for k in KINDS for f in FLAG_MARKS if getattr(row, f"{k}_{f}")}


def marks_of(metric: str, on: Collection[tuple[str, str]]) -> str:
    """The marks after a figure of ``metric``, given the (kind, flag) pairs that hold."""
    kind, _, what = metric.partition("_")
    marks = [FLAG_MARKS[f] for f in _FLAGS_OF.get(what, ()) if (kind, f) in on]
    return "".join(dict.fromkeys(marks))  # one "!" for both flags that use it


def footnotes(marks: pd.DataFrame) -> list[tuple[str, str]]:
    """(mark, what it means) for each mark that ``marks`` uses."""
    used = "".join(marks.astype(str).to_numpy().ravel().tolist()) if marks.size else ""
    return [(m, note) for m, note in MARK_NOTES.items() if m in used]


def readable(value: float, digits: int = 4) -> str:
    """``digits`` significant digits with thousands separators, never in scientific notation:
    46,764,746 rather than 4.676e+07, 1,362 and 0.0001234; whole numbers without a point."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    text = f"{value:,.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def with_marks(
    table: pd.DataFrame, marks: pd.DataFrame | None = None, fmt: Callable[[Any], str] = readable
) -> pd.DataFrame:
    """``table`` as text: each number by ``fmt`` followed by its marks (the column of
    ``marks`` of that name, if any), '-' for a missing figure or text."""
    shown = table.astype(object).copy()
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            cells = values.map(lambda v: "-" if pd.isna(v) else fmt(v))
        else:
            cells = values.map(lambda v: "-" if pd.isna(v) else str(v))
        if marks is not None and column in marks:
            cells = cells + marks[column].reindex(table.index).fillna("")
        shown[column] = cells
    return shown


def speed_summary(results: pd.DataFrame, ceilings: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per model, mode and batch, in the order measured; latency comes from batch 1
    and is shown on each of the mode's rows. The flag columns (``FLAG_COLUMNS``) list the
    kinds (infer, train) so flagged; ``ceilings`` (run.json's) is what TFLOP/s are judged
    against (see ``figure_flags``).

    Columns no row has (peak memory on the CPU, compile time in eager modes) are left out.
    """
    speed = phase_rows(results, "speed")
    flags = figure_flags(results, ceilings)
    rows = []
    for (model, mode), group in speed.groupby(["model", "mode"], sort=False):
        errors = group.loc[group["metric"] == ERROR_METRIC, "error"]
        figures = group[group["metric"] != ERROR_METRIC]
        is_latency = figures["metric"].str.startswith("latency_")
        latency = figures[is_latency].set_index("metric")["value"]
        per_batch = figures[~is_latency]
        batches = sorted(per_batch["requested_batch"].dropna().astype(int).unique()) or [0]
        at = flags_at(flags, [(model, mode, b) for b in batches])
        for batch, flagged in zip(batches, at.itertuples(index=False)):
            at_batch = per_batch[per_batch["requested_batch"] == batch]
            values = at_batch.set_index("metric")["value"]
            row: dict[str, object] = {"model": model, "mode": mode, "batch": batch}
            for header, metric in SPEED_COLUMNS.items():
                source = latency if metric.startswith("latency_") else values
                if metric in source:
                    row[header] = float(source[metric])
            on = flags_on(flagged)
            for flag, column in FLAG_COLUMNS.items():
                row[column] = ",".join(k for k in KINDS if (k, flag) in on)
            row["error"] = "; ".join(errors)
            rows.append(row)
    if not rows:
        return pd.DataFrame(
            columns=["model", "mode", "batch", *FLAG_COLUMNS.values(), "error"]
        ).set_index(["model", "mode", "batch"])
    table = pd.DataFrame(rows).set_index(["model", "mode", "batch"])
    present = [h for h in SPEED_COLUMNS if h in table.columns]
    return table[[*present, *FLAG_COLUMNS.values(), "error"]]


def speed_marks(table: pd.DataFrame) -> pd.DataFrame:
    """The marks of ``speed_summary``'s figures, from its flag columns: a frame of text with
    the table's index and its figure columns ('' where unmarked)."""
    columns = [h for h in SPEED_COLUMNS if h in table.columns]
    on = [
        {(k, f) for f, c in FLAG_COLUMNS.items() for k in row[c].split(",") if k}
        for _, row in table.iterrows()
    ]
    return pd.DataFrame(
        {h: [marks_of(SPEED_COLUMNS[h], o) for o in on] for h in columns},
        index=table.index,
        dtype=object,
    )


def format_speed_summary(table: pd.DataFrame) -> str:
    """Throughputs with thousands separators, each figure followed by its marks (* noisy,
    h host-bound, ! above the ceiling), explained under the table."""
    marks = speed_marks(table)
    shown = table.drop(columns=[*FLAG_COLUMNS.values(), "error"]).reset_index()
    shown["batch"] = shown["batch"].map(lambda b: str(b) if b else "-")
    whole = {h for h, m in SPEED_COLUMNS.items() if m in _WHOLE_SPEED}
    for column in shown.columns[3:]:
        fmt = "{:,.0f}".format if column in whole else lambda v: readable(v, digits=3)
        shown[column] = [
            ("-" if pd.isna(v) else fmt(v)) + m for v, m in zip(shown[column], marks[column])
        ]
    text = tabulate(
        shown,
        headers="keys",
        showindex=False,
        disable_numparse=True,
        colalign=("left", "left", "right") + ("right",) * (len(shown.columns) - 3),
    )
    for mark, note in footnotes(marks):
        text += f"\n{mark} {note}"
    failed = table[table["error"] != ""]
    if len(failed):
        lines = [f"  {m} {md}: {e}" for (m, md, _), e in failed["error"].items()]
        text += "\n\nfailed:\n" + "\n".join(dict.fromkeys(lines))
    return text


ACCURACY_COLUMNS = {
    # header (with unit) -> metric
    header: metric
    for metric, header in metric_headers(
        {
            "test_acc": "test acc {unit}",
            # the seed note's figure, under its own recipe (lr, epochs, batch: the rows' method)
            "note_test_acc": "note acc {unit}",
            "test_acc_std": "± sd {unit}",
            "macro_f1": "macro-F1 {unit}",
            "final_train_acc": "train acc {unit}",
            "fit_epochs": "{unit}",
            "fit_time": "train {unit}",
            "fit_throughput": "{unit}",
            **{f"time_to_{t}": f"to {t}% {{unit}}" for t in ACCURACY_TARGETS},
            "seeds": "seeds",  # a count of seeds
            "diverged": "diverged (seeds)",
            # a model over the CPU's training cap: the seconds its first steps predicted
            "not_trained_estimate": "not trained: est. {unit}",
        }
    ).items()
}


def accuracy_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model: the accuracy phase's figures, means over seeds."""
    acc = results[results["phase"] == "accuracy"]
    rows = []
    for model, group in acc.groupby("model", sort=False):
        values = group[group["metric"] != ERROR_METRIC].set_index("metric")["value"]
        row: dict[str, object] = {"model": model}
        for header, metric in ACCURACY_COLUMNS.items():
            if metric in values:
                row[header] = float(values[metric])
        row["error"] = "; ".join(group.loc[group["metric"] == ERROR_METRIC, "error"])
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["error"], index=pd.Index([], name="model"))
    table = pd.DataFrame(rows).set_index("model")
    present = [h for h in ACCURACY_COLUMNS if h in table.columns]
    return table[[*present, "error"]]


DDP_COLUMNS = metric_headers(
    {
        # metric -> header; the throughputs after the first are in its unit
        "ddp_processes": "processes",
        "ddp_throughput": "train {unit}, all",
        "ddp_throughput_per_process": "per process",
        "ddp_single_throughput": "1 process",
        "ddp_scaling_efficiency": "scaling efficiency {unit}",
        "test_acc": "test acc {unit}",
        "ddp_single_test_acc": "1 process test acc {unit}",
    }
)
# what each phase's data-parallel figures train on, and what their batch is
DDP_TRAINING = {
    "ddp": "synthetic steps (batch per process)",
    "accuracy": "Fashion-MNIST accuracy training (batch split)",
}


def ddp_summary(results: pd.DataFrame) -> pd.DataFrame:
    """A row per model and mode of the ddp phase, and per model trained by the accuracy phase
    over --accuracy-processes: throughput with N processes, per process, with one, and the
    scaling efficiency (and the accuracy phase's test accuracy with N and with one process);
    an error column where the ddp phase failed (the accuracy phase's are in its own table)."""
    rows = pd.concat([phase_rows(results, phase) for phase in DDP_TRAINING])
    # the scaling figures, and beside them the group's test accuracy (not a seed note's)
    scaled = rows[rows["metric"] == "ddp_processes"][["model", "phase", "batch"]]
    rows = rows[rows["metric"].isin(list(DDP_COLUMNS))].merge(scaled.drop_duplicates())
    rows = rows.assign(training=rows["phase"].map(DDP_TRAINING))
    keys = ["model", "training", "mode", "batch"]
    figures = rows.pivot_table(
        index=keys, columns="metric", values="value", aggfunc="first", sort=False
    )
    table = figures.reindex(columns=list(DDP_COLUMNS)).rename(columns=DDP_COLUMNS)
    failed = phase_rows(results, "ddp")
    errors = failed[failed["metric"] == ERROR_METRIC].assign(training=DDP_TRAINING["ddp"])
    errors = errors.set_index(keys)["error"]
    table = table.reindex(table.index.union(errors.index, sort=False))
    table["error"] = errors.reindex(table.index).fillna("")
    return table[[c for c in table.columns if c == "error" or table[c].notna().any()]]


def has_ddp(results: pd.DataFrame) -> bool:
    """Whether the run measured training over several processes (either phase)."""
    return bool((results["metric"] == "ddp_processes").any() or (results["phase"] == "ddp").any())


_MEMORY_HEADERS = metric_headers({"peak_rss": "peak {unit}", "peak_rss_added": "added {unit}"})


def memory_summary(results: pd.DataFrame) -> pd.DataFrame:
    """The process's peak resident memory (MB) per model while each phase ran, and how much of
    it that phase added; the largest where a resumed run measured a phase twice."""
    rows = results[results["metric"].isin(MEMORY_METRICS)]
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], name="model"))
    wide = rows.pivot_table(
        index="model", columns=["phase", "metric"], values="value", aggfunc="max", sort=False
    )
    table = pd.DataFrame(index=pd.Index(list(dict.fromkeys(rows["model"])), name="model"))
    for phase in dict.fromkeys(rows["phase"]):
        for metric, header in _MEMORY_HEADERS.items():
            if (phase, metric) in wide:
                table[f"{phase} {header}"] = wide[(phase, metric)]
    return table


# an item of a phase not declared in this process (its ITEM_KEYS unknown): the model and what
# else tells its rows of one metric apart
_GUESSED_KEYS = ("mode", "requested_batch", "batch")
MAX_METHODS = 10  # the most method texts listed under a phase's table


Methods = Sequence[tuple[tuple[str, ...], str]]  # (metrics, how they were measured)


def phase_table(results: pd.DataFrame, phase: str) -> tuple[pd.DataFrame, Methods]:
    """A phase's figures as the schema declares them, for a phase with no table of its own:
    a row per item (the phase's ``ITEM_KEYS`` columns, by default the model), a column per
    metric present (the phase's in the schema's order, then any other it wrote), headed by
    ``metric_header`` ('energy_j (J)'), and an error column when an item failed; memory rows
    are left out (``memory_summary`` shows them). Also how the figures were measured: each
    method text with the metrics it is the method of (at most ``MAX_METHODS``)."""
    rows = phase_rows(results, phase)
    figures = rows[rows["metric"] != ERROR_METRIC]
    errors = rows[rows["metric"] == ERROR_METRIC]
    keys = list(ITEM_KEYS.get(phase, ("model",)))
    if phase not in ITEM_KEYS:
        for column in _GUESSED_KEYS:
            if figures.duplicated([*keys, "metric"]).any() and figures[column].nunique() > 1:
                keys.append(column)
    declared = [m.name for m in metrics_of(phase)]
    present = set(figures["metric"])
    metrics = [m for m in declared if m in present]
    metrics += [m for m in dict.fromkeys(figures["metric"]) if m not in metrics]
    units = figures.groupby("metric")["unit"].first()

    def items_of(frame: pd.DataFrame) -> list[tuple]:
        return [
            tuple(None if pd.isna(v) else int(v) if isinstance(v, float) else v for v in key)
            for key in frame[keys].itertuples(index=False, name=None)
        ]

    items = list(dict.fromkeys(items_of(figures) + items_of(errors)))
    values: dict[tuple, dict[str, float]] = {}
    for item, metric, value in zip(items_of(figures), figures["metric"], figures["value"]):
        values.setdefault(item, {}).setdefault(metric, value)
    table = pd.DataFrame(items, columns=keys)
    for metric in metrics:
        header = metric_header(metric, unit=units.get(metric))
        table[header] = [values.get(item, {}).get(metric, math.nan) for item in items]
    if len(errors):
        failed: dict[tuple, list[str]] = {}
        for item, error in zip(items_of(errors), errors["error"]):
            failed.setdefault(item, []).append(error)
        table["error"] = ["; ".join(failed.get(item, [])) for item in items]
    methods: dict[str, list[str]] = {}
    for metric, method in zip(figures["metric"], figures["method"]):
        if method and metric not in methods.setdefault(method, []):
            methods[method].append(metric)
    described = [
        (tuple(sorted(of, key=metrics.index)), method)
        for method, of in list(methods.items())[:MAX_METHODS]
    ]
    if len(methods) > MAX_METHODS:
        more = f"{len(methods) - MAX_METHODS} more: the method column of results.csv"
        described.append(((), more))
    return table, described


# the accuracy figures the terminal shows as whole numbers
_WHOLE_ACCURACY = ("fit_epochs", "seeds", "diverged", "fit_throughput", "not_trained_estimate")


def format_accuracy_summary(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["error"]).reset_index()
    for column in shown.columns[1:]:
        if ACCURACY_COLUMNS.get(column) in _WHOLE_ACCURACY:
            shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:,.0f}")
        else:
            shown[column] = shown[column].map(
                lambda v, pct="%" in column: (
                    "-" if pd.isna(v) else f"{v:.2f}" if pct else f"{v:.1f}"
                )
            )
    text = tabulate(
        shown,
        headers="keys",
        showindex=False,
        disable_numparse=True,
        colalign=("left",) + ("right",) * (len(shown.columns) - 1),
    )
    failed = table[table["error"] != ""]
    if len(failed):
        text += "\n\nfailed:\n" + "\n".join(f"  {m}: {e}" for m, e in failed["error"].items())
    return text


def _values(results: pd.DataFrame, phase: str) -> pd.DataFrame:
    """``phase``'s measurements: not its errors, nor its memory rows (per model, not per
    measurement)."""
    rows = phase_rows(results, phase)
    return rows[rows["metric"] != ERROR_METRIC]


def input_sizes(results: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Each model's input size ('HxW') on each device, by (model, device), from the static
    rows (none where the static phase did not run)."""
    static = _values(results, "static")
    static = static[static["metric"].isin(["input_height", "input_width"])]
    if static.empty:
        return {}
    wide = static.pivot_table(
        index=["model", "device"], columns="metric", values="value", aggfunc="first"
    ).dropna()
    return {
        key: f"{int(row['input_height'])}x{int(row['input_width'])}" for key, row in wide.iterrows()
    }


def device_comparison(results: pd.DataFrame, metric: str = "infer_throughput") -> pd.DataFrame:
    """A run merged across devices: per model, mode, batch and input, ``metric`` on each device
    and its ratio to the first device's. A figure is set beside another only with the same
    model, mode, batch and input size (an input size differing between devices is a row of its
    own). Empty when the run has one device."""
    speed = _values(results, "speed")
    rows = speed[speed["metric"] == metric]
    devices = list(dict.fromkeys(rows["device"]))
    if len(devices) < 2:
        return pd.DataFrame()
    sizes = input_sizes(results)
    rows = rows.assign(
        batch=rows["requested_batch"].astype(int),
        input=[sizes.get((m, d), "") for m, d in zip(rows["model"], rows["device"])],
    )
    table = rows.pivot_table(
        index=["model", "mode", "batch", "input"],
        columns="device",
        values="value",
        aggfunc="first",
        sort=False,
    )[devices]
    base = devices[0]
    for device in devices[1:]:
        table[f"{device} / {base}"] = table[device] / table[base]
    return table


def chart_mode(results: pd.DataFrame) -> str | None:
    """The speed mode the trade-off charts use: the one measured for the most models, the
    last measured on a tie (the default matrix ends with its fastest mode)."""
    speed = _values(results, "speed")
    speed = speed[speed["metric"] == "infer_throughput"]
    if speed.empty:
        return None
    counts = speed.groupby("mode", sort=False)["model"].nunique()
    best = counts.max()
    return [m for m in counts.index if counts[m] == best][-1]


def accuracy_setting_parts(results: pd.DataFrame) -> pd.DataFrame:
    """What two accuracies must share to be compared, per trained model, from the accuracy
    rows' columns: ``budget`` ('budget epochs=5') and ``images`` ('60,000 training images,
    10,000 test images')."""
    rows = _values(results, "accuracy")
    rows = rows[rows["metric"] == "test_acc"].drop_duplicates("model").set_index("model")
    if rows.empty:
        return pd.DataFrame(columns=["budget", "images"], dtype=object)
    recorded = rows["budget_unit"] != ""  # a run folder from before these columns: not
    budget = "budget " + rows["budget_unit"] + "=" + rows["budget"].map("{:g}".format)
    images = rows["train_images"].map("{:,.0f} training images, ".format) + rows["test_images"].map(
        "{:,.0f} test images".format
    )
    return pd.DataFrame(
        {
            "budget": budget.where(recorded, "budget not recorded"),
            "images": images.where(recorded, "images not recorded"),
        },
        index=rows.index,
        dtype=object,
    )


def accuracy_settings(results: pd.DataFrame) -> pd.Series:
    """Each trained model's setting, 'budget epochs=5; 60,000 training images, 10,000 test
    images', by model."""
    parts = accuracy_setting_parts(results)
    return (parts["budget"] + "; " + parts["images"]).astype(object)


def common_accuracy_setting(results: pd.DataFrame) -> tuple[str, list[str]]:
    """The setting most models were trained under (the first met on a tie) and the models
    trained under another: a merged or resumed run may mix them. ('', []) when none trained."""
    settings = accuracy_settings(results)
    if settings.empty:
        return "", []
    common = Counter(settings).most_common(1)[0][0]
    return common, list(settings.index[settings != common])


_SUMMARY_SPEED = tuple(
    (header, metric)
    for metric, header in metric_headers(
        {
            "infer_throughput": "infer {unit}",
            "latency_p50": "p50 latency {unit}",
            "infer_peak_mem": "peak {unit}",
            "infer_mfu": "MFU {unit}",
        }
    ).items()
)


def model_summary(results: pd.DataFrame) -> pd.DataFrame:
    """A row per model: size and cost, accuracy, and per mode the inference throughput (at the
    first batch measured), batch-1 latency, peak memory and MFU. Units in every header."""
    models = by_source(results)
    table = pd.DataFrame(index=pd.Index(models, name="model"))
    if results["source"].nunique() > 1:
        table["source"] = results.groupby("model")["source"].first()
    static = _values(results, "static").pivot_table(
        index="model", columns="metric", values="value", aggfunc="first"
    )
    for header, metric, scale in (
        ("params (M)", "params", 1e-6),
        ("MACs (G/sample)", "macs", 1e-9),
        ("FLOPs (G/sample)", "flops", 1e-9),
    ):
        if metric in static:
            table[header] = static[metric] * scale
    acc = _values(results, "accuracy").pivot_table(
        index="model", columns="metric", values="value", aggfunc="first"
    )
    for metric, header in metric_headers(
        {
            "test_acc": "test acc ({unit})",
            "macro_f1": "macro-F1 ({unit})",
            "fit_throughput": "train {unit}",
        }
    ).items():
        if metric in acc:
            table[header] = acc[metric]
    for column, _, _, picked in _summary_speed_figures(results):
        table[column] = picked.groupby("model")["value"].first()
    rss = results[results["metric"] == "peak_rss"]
    if len(rss):
        table[metric_header("peak_rss", "peak RSS {unit}")] = rss.groupby("model")["value"].max()
    return table


def _summary_speed_figures(results: pd.DataFrame) -> Iterator[tuple[str, str, str, pd.DataFrame]]:
    """``model_summary``'s speed columns: (header, metric, mode, the rows shown: each model's
    at the first batch measured in the mode)."""
    speed = _values(results, "speed")
    for mode in dict.fromkeys(speed["mode"]):
        rows = speed[speed["mode"] == mode]
        first_batch = rows.groupby("model")["requested_batch"].min()
        rows = rows[rows["requested_batch"] == rows["model"].map(first_batch)]
        for header, metric in _SUMMARY_SPEED:
            picked = rows[rows["metric"] == metric]
            if len(picked):
                yield f"{header} [{mode}]", metric, mode, picked


def summary_marks(results: pd.DataFrame, ceilings: dict[str, Any] | None = None) -> pd.DataFrame:
    """The marks of ``model_summary``'s throughputs and MFUs: text, by model and column."""
    flags = figure_flags(results, ceilings)
    marks = pd.DataFrame(index=pd.Index(list(dict.fromkeys(results["model"])), name="model"))
    for column, metric, mode, picked in _summary_speed_figures(results):
        if metric.partition("_")[2] not in _FLAGS_OF:
            continue
        picked = picked.drop_duplicates("model")
        keys = zip(picked["model"], picked["requested_batch"].astype(int))
        at = flags_at(flags, [(m, mode, b) for m, b in keys])
        marks[column] = pd.Series(
            [marks_of(metric, flags_on(f)) for f in at.itertuples()],
            index=picked["model"].to_numpy(),
        )
    return marks.fillna("")


def speedup_table(results: pd.DataFrame, metric: str = "infer_throughput") -> pd.DataFrame:
    """Each mode's throughput over fp32's (x), per model, at the same requested batch: a column
    per mode (``speedup_header`` names it for people). Empty without fp32."""
    speed = _values(results, "speed")
    speed = speed[speed["metric"] == metric]
    wide = speed.pivot_table(
        index=["model", "requested_batch"],
        columns="mode",
        values="value",
        aggfunc="first",
        sort=False,
    ).rename_axis(index=["model", "batch"])
    if "fp32" not in wide:
        return pd.DataFrame()
    modes = [m for m in dict.fromkeys(speed["mode"]) if m != "fp32"]
    return wide[modes].div(wide["fp32"], axis=0)


def speedup_header(mode: str) -> str:
    return f"{mode} / fp32 (x)"


def speedup_marks(results: pd.DataFrame, metric: str = "infer_throughput") -> pd.DataFrame:
    """The marks of ``speedup_table``'s ratios: a ratio carries the marks of both its figures
    (the mode's and fp32's)."""
    ratios = speedup_table(results, metric)
    flags = figure_flags(results)
    marks = pd.DataFrame("", index=ratios.index, columns=ratios.columns)
    for mode in ratios.columns:
        column = mode
        for model, batch in ratios.index:
            both = flags_at(flags, [(model, mode, int(batch)), (model, "fp32", int(batch))])
            on = set().union(*(flags_on(f) for f in both.itertuples()))
            marks.loc[(model, batch), column] = marks_of(metric, on)
    return marks


def _named_index(table: pd.DataFrame) -> bool:
    """Whether the index is one of the table's columns (a model's name) rather than a count."""
    return any(name is not None for name in table.index.names)


def to_markdown(table: pd.DataFrame, right: Collection[str] = ()) -> str:
    """A table of text (``with_marks``); ``right``: the columns to align right (figures). The
    index is shown when it has a name."""
    index = _named_index(table)
    align = ["right" if c in right else "left" for c in table.columns]
    return table.to_markdown(
        index=index, disable_numparse=True, colalign=["left", *align] if index else align
    )


def to_html(table: pd.DataFrame, notes: Sequence[tuple[str, str]] = ()) -> str:
    """A table of text (``with_marks``), and ``notes`` (``footnotes``) as paragraphs under it."""
    shown = table.reset_index() if _named_index(table) else table  # one header row, as Markdown
    html = shown.to_html(index=False, na_rep="-", border=0)
    return html + "".join(f"\n<p><code>{escape(m)}</code> {escape(n)}</p>" for m, n in notes)


def markdown_notes(notes: Sequence[tuple[str, str]]) -> str:
    """``footnotes`` as a Markdown list ('' when none)."""
    return "\n".join(f"- `{m}` {n}" for m, n in notes)


METHODS_HEADING = "How measured:"


def methods_markdown(methods: Methods) -> str:
    """``phase_table``'s methods as a Markdown list under a heading ('' when none)."""
    if not methods:
        return ""
    items = [f"- {', '.join(f'`{m}`' for m in of)}{': ' if of else ''}{how}" for of, how in methods]
    return "\n".join([METHODS_HEADING, "", *items])


def methods_html(methods: Methods) -> str:
    """``phase_table``'s methods as an HTML list under a heading ('' when none)."""
    if not methods:
        return ""
    items = [
        f"<li>{', '.join(f'<code>{escape(m)}</code>' for m in of)}{': ' if of else ''}"
        f"{escape(how)}</li>"
        for of, how in methods
    ]
    return f"\n<p>{METHODS_HEADING}</p>\n<ul>\n" + "\n".join(items) + "\n</ul>"


SLOWEST_LAYERS = 10


def slowest_layers(profile: pd.DataFrame, k: int = SLOWEST_LAYERS) -> pd.DataFrame:
    """The ``k`` modules with the most self time (forward and backward) in a training step,
    from the profile phase's per-layer table (``runfolder.schema.PROFILE_COLUMNS``)."""
    modules = profile[~profile["path"].astype(str).str.startswith("(")]
    top = modules.sort_values("self_ms", ascending=False).head(k)
    return pd.DataFrame(
        {
            "layer": [p if p else "(model)" for p in top["path"]],
            "type": top["type"].to_numpy(),
            "kind": top["kind"].to_numpy(),
            "forward ms": top["forward_ms"].map("{:.3g}".format).to_numpy(),
            "backward ms": top["backward_ms"].map("{:.3g}".format).to_numpy(),
            "self ms": top["self_ms"].map("{:.3g}".format).to_numpy(),
            "share of step %": top["self_share"].map("{:.1f}".format).to_numpy(),
            "MACs (M/step)": (top["macs"] / 1e6).map("{:.3g}".format).to_numpy(),
            "inference GMAC/s": (top["mac_per_s"] / 1e9).map("{:.3g}".format).to_numpy(),
            "kept MB": (top["memory_growth_bytes"] / 1e6).map("{:.3g}".format).to_numpy(),
        }
    )
