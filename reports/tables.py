"""Tables made from a run's tidy results (see ``reports.schema``)."""

from __future__ import annotations

import pandas as pd
from tabulate import tabulate

from .schema import ERROR_METRIC

STATIC_SUMMARY_COLUMNS = {
    # metric -> header with unit
    "params": "params",
    "param_size_fp32": "size fp32 (MB)",
    "macs": "MACs/sample",
    "flops": "FLOPs/sample",
    "unsupported_ops": "uncounted op calls",
}


def si(value: float, digits: int = 3) -> str:
    """61706 -> '61.7 K', 1.5e10 -> '15.4 G': a count in the terminal, unit in the header."""
    if pd.isna(value):
        return "-"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {suffix}"
    return f"{value:.{digits}g}"


def static_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model: input, parameters, size, MACs, FLOPs, uncounted ops, error.

    Models keep the order in which they appear in ``results``.
    """
    static = results[results["phase"] == "static"]
    order = list(dict.fromkeys(static["model"]))
    figures = static[static["metric"] != ERROR_METRIC].pivot_table(
        index="model", columns="metric", values="value", aggfunc="first"
    )
    families = static.groupby("model")["family"].first()
    errors = static[static["metric"] == ERROR_METRIC].groupby("model")["error"].first()

    table = pd.DataFrame(index=pd.Index(order, name="model"))
    table["family"] = families
    table["input"] = [_input_label(figures, m) for m in order]
    for metric, header in STATIC_SUMMARY_COLUMNS.items():
        table[header] = figures[metric] if metric in figures else float("nan")
    table["error"] = errors.reindex(order).fillna("")
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
        "size fp32 (MB)": lambda v: "-" if pd.isna(v) else f"{v:.2f}",
        "MACs/sample": si,
        "FLOPs/sample": si,
        "uncounted op calls": lambda v: "-" if pd.isna(v) else f"{v:.0f}",
    }
    for column, fmt in formats.items():
        shown[column] = shown[column].map(fmt)
    text = tabulate(shown, headers="keys", showindex=False, disable_numparse=True,
                    colalign=("left", "left", "left") + ("right",) * (len(shown.columns) - 3))
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
    return tabulate(rows, headers="keys", showindex=False, disable_numparse=True,
                    colalign=("left", "left", "left", "right", "right"))


SPEED_COLUMNS = {
    # header (with unit) -> metric
    "infer/s": "infer_throughput",
    "±%": "infer_rel_iqr",
    "p50 ms": "latency_p50",
    "p99 ms": "latency_p99",
    "train/s": "train_throughput",
    "train ±%": "train_rel_iqr",
    "infer TFLOP/s": "infer_tflops",
    "infer MFU%": "infer_mfu",
    "train MFU%": "train_mfu",
    "infer MB": "infer_peak_mem",
    "train MB": "train_peak_mem",
    "compile s": "infer_compile_time",
    "breaks": "infer_graph_breaks",
}


def speed_summary(results: pd.DataFrame) -> pd.DataFrame:
    """One row per model, mode and batch, in the order measured; latency comes from batch 1
    and is shown on each of the mode's rows.

    Columns no row has (peak memory on the CPU, compile time in eager modes) are left out.
    """
    speed = results[results["phase"] == "speed"]
    rows = []
    for (model, mode), group in speed.groupby(["model", "mode"], sort=False):
        errors = group.loc[group["metric"] == ERROR_METRIC, "error"]
        figures = group[group["metric"] != ERROR_METRIC]
        is_latency = figures["metric"].str.startswith("latency_")
        latency = figures[is_latency].set_index("metric")["value"]
        per_batch = figures[~is_latency]
        batches = sorted(pd.to_numeric(per_batch["batch"]).astype(int).unique()) or [0]
        for batch in batches:
            at_batch = per_batch[pd.to_numeric(per_batch["batch"]) == batch]
            values = at_batch.set_index("metric")["value"]
            row: dict[str, object] = {"model": model, "mode": mode, "batch": batch}
            for header, metric in SPEED_COLUMNS.items():
                source = latency if metric.startswith("latency_") else values
                if metric in source:
                    row[header] = float(source[metric])
            row["noisy"] = ",".join(k for k in ("infer", "train")
                                    if values.get(f"{k}_noisy", 0) == 1)  # fmt: skip
            row["error"] = "; ".join(errors)
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["model", "mode", "batch", "noisy", "error"]).set_index(
            ["model", "mode", "batch"])  # fmt: skip
    table = pd.DataFrame(rows).set_index(["model", "mode", "batch"])
    present = [h for h in SPEED_COLUMNS if h in table.columns]
    return table[[*present, "noisy", "error"]]


def format_speed_summary(table: pd.DataFrame) -> str:
    """Throughputs with thousands separators and a * where IQR/median > 5%."""
    shown = table.drop(columns=["noisy", "error"]).reset_index()
    shown["batch"] = shown["batch"].map(lambda b: str(b) if b else "-")
    noisy = table["noisy"].tolist()
    for column in shown.columns[3:]:
        kind = "infer" if column.startswith("infer") else "train" if column.startswith("train") else ""
        values = []
        for v, flags in zip(shown[column], noisy):
            if pd.isna(v):
                values.append("-")
                continue
            per_s = column in ("infer/s", "train/s")
            text = f"{v:,.0f}" if per_s or column in ("breaks", "infer MB", "train MB") else f"{v:.3g}"
            if per_s and kind in flags.split(","):
                text += "*"
            values.append(text)
        shown[column] = values
    text = tabulate(shown, headers="keys", showindex=False, disable_numparse=True,
                    colalign=("left", "left", "right") + ("right",) * (len(shown.columns) - 3))  # fmt: skip
    failed = table[table["error"] != ""]
    if len(failed):
        lines = [f"  {m} {md}: {e}" for (m, md, _), e in failed["error"].items()]
        text += "\n\nfailed:\n" + "\n".join(dict.fromkeys(lines))
    return text


ACCURACY_COLUMNS = {
    # header (with unit) -> metric
    "test acc %": "test_acc",
    "± sd": "test_acc_std",
    "macro-F1 %": "macro_f1",
    "train acc %": "final_train_acc",
    "epochs": "fit_epochs",
    "train s": "fit_time",
    "examples/s": "fit_throughput",
    "to 85% s": "time_to_85",
    "to 90% s": "time_to_90",
    "to 93% s": "time_to_93",
    "seeds": "seeds",
    "diverged": "diverged",
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


def format_accuracy_summary(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["error"]).reset_index()
    for column in shown.columns[1:]:
        if column in ("epochs", "seeds", "diverged", "examples/s"):
            shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:,.0f}")
        else:
            shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.2f}"
                                              if "%" in column or column == "± sd" else f"{v:.1f}")  # fmt: skip
    text = tabulate(shown, headers="keys", showindex=False, disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(shown.columns) - 1))  # fmt: skip
    failed = table[table["error"] != ""]
    if len(failed):
        text += "\n\nfailed:\n" + "\n".join(f"  {m}: {e}" for m, e in failed["error"].items())
    return text


def _values(results: pd.DataFrame, phase: str) -> pd.DataFrame:
    rows = results[(results["phase"] == phase) & (results["metric"] != ERROR_METRIC)]
    return rows


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


def model_summary(results: pd.DataFrame) -> pd.DataFrame:
    """A row per model: size and cost, accuracy, and per mode the inference throughput (at the
    first batch measured), batch-1 latency, peak memory and MFU. Units in every header."""
    models = list(dict.fromkeys(results["model"]))
    table = pd.DataFrame(index=pd.Index(models, name="model"))
    static = _values(results, "static").pivot_table(index="model", columns="metric",
                                                     values="value", aggfunc="first")  # fmt: skip
    for header, metric, scale in (("params (M)", "params", 1e-6), ("MACs (G/sample)", "macs", 1e-9),
                                  ("FLOPs (G/sample)", "flops", 1e-9)):  # fmt: skip
        if metric in static:
            table[header] = static[metric] * scale
    acc = _values(results, "accuracy").pivot_table(index="model", columns="metric",
                                                   values="value", aggfunc="first")  # fmt: skip
    for header, metric in (("test acc (%)", "test_acc"), ("macro-F1 (%)", "macro_f1"),
                           ("train examples/s", "fit_throughput")):  # fmt: skip
        if metric in acc:
            table[header] = acc[metric]
    speed = _values(results, "speed")
    for mode in dict.fromkeys(speed["mode"]):
        rows = speed[speed["mode"] == mode]
        first_batch = rows[~rows["metric"].str.startswith("latency_")].groupby("model")["batch"].min()
        for header, metric in (("infer samples/s", "infer_throughput"), ("p50 latency ms", "latency_p50"),
                               ("peak MB", "infer_peak_mem"), ("MFU %", "infer_mfu")):  # fmt: skip
            picked = rows[rows["metric"] == metric]
            if not metric.startswith("latency_"):
                picked = picked[picked["batch"] == picked["model"].map(first_batch)]
            series = picked.groupby("model")["value"].first()
            if len(series):
                table[f"{header} [{mode}]"] = series
    return table


def speedup_table(results: pd.DataFrame, metric: str = "infer_throughput") -> pd.DataFrame:
    """Each mode's throughput over fp32's, per model, at the same batch (x). Empty without fp32."""
    speed = _values(results, "speed")
    speed = speed[speed["metric"] == metric]
    wide = speed.pivot_table(index=["model", "batch"], columns="mode", values="value",
                             aggfunc="first", sort=False)  # fmt: skip
    if "fp32" not in wide:
        return pd.DataFrame()
    modes = [m for m in dict.fromkeys(speed["mode"]) if m != "fp32"]
    ratios = wide[modes].div(wide["fp32"], axis=0)
    ratios.columns = [f"{m} / fp32 (x)" for m in modes]
    return ratios


def to_markdown(table: pd.DataFrame, floatfmt: str = ".4g") -> str:
    return table.to_markdown(floatfmt=floatfmt)


def to_html(table: pd.DataFrame) -> str:
    return table.to_html(float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)
