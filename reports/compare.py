"""Two runs' figures side by side (``python -m reports --compare RUN_A RUN_B``): a figure is set
beside the other run's only for the same model, phase, mode, batch and input size; a warning
for each way in which the runs are not like for like."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from runfolder.reader import Run, load_run

from .charts import CHARTS, save
from .tables import accuracy_setting_parts, input_sizes, readable

KEY_METRICS = (
    "params",
    "macs",
    "test_acc",
    "macro_f1",
    "infer_throughput",
    "latency_p50",
    "train_throughput",
    "infer_peak_mem",
    "fit_throughput",
)


def _loaded(run: Path | Run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def compare_runs(run_a: Path | Run, run_b: Path | Run) -> pd.DataFrame:
    """Figures both runs measured, side by side: A, B, B - A and B / A."""
    a, b = _loaded(run_a), _loaded(run_b)
    # a speed figure is named by the batch its measurement was asked for
    keys = ["model", "phase", "mode", "batch", "input", "metric"]

    def figures(run: Run) -> pd.DataFrame:
        r = run.results
        r = r[r["metric"].isin(KEY_METRICS)].copy()
        r["batch"] = r["requested_batch"].fillna(-1)
        r["input"] = model_inputs(run).reindex(r["model"]).to_numpy()
        return r[[*keys, "value", "unit"]]

    joined = figures(a).merge(figures(b), on=keys, suffixes=(" A", " B"), how="inner")
    joined["B - A"] = joined["value B"] - joined["value A"]
    joined["B / A"] = joined["value B"] / joined["value A"]
    joined = joined.rename(columns={"unit A": "unit"}).drop(columns=["unit B"])
    table = joined[[*keys, "unit", "value A", "value B", "B - A", "B / A"]]
    table["batch"] = table["batch"].map(lambda v: "" if v == -1 else int(v))
    return table


FIGURES = ("value A", "value B", "B - A", "B / A")


def readable_figures(table: pd.DataFrame) -> pd.DataFrame:
    """``compare_runs``' table with its figures as text, thousands separated."""
    return table.assign(**{c: table[c].map(readable) for c in FIGURES})


OWN_SIZE = "its own"  # a run without static rows or --input-size measured each model at its own


def model_inputs(run: Run) -> pd.Series:
    """Each model's input size ('HxW') in ``run``: from its static rows (on the run's first
    device), else the input size of the run's spec, else ``OWN_SIZE``."""
    models = list(dict.fromkeys(run.results["model"]))
    asked = asked_input_size(run.provenance)
    sizes = input_sizes(run.results)
    first = {}
    for (model, _device), size in sizes.items():
        first.setdefault(model, size)
    return pd.Series([first.get(m, asked) for m in models], index=models, dtype=object)


def asked_input_size(provenance: dict) -> str:
    """The input size a run asked for, as 'HxW' (``OWN_SIZE`` for each model's own): its
    spec's, or for a run folder written before run.json held one, its ``--input-size``."""
    spec = provenance.get("spec")
    if isinstance(spec, dict):
        size = spec.get("input_size")
        return f"{size[0]}x{size[1]}" if size else OWN_SIZE
    argv = provenance.get("argv") or []
    for i, arg in enumerate(argv):
        value = None
        if arg == "--input-size" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--input-size="):
            value = arg.split("=", 1)[1]
        if value:
            h, _, w = value.lower().replace(" ", "").partition("x")
            return f"{h}x{w or h}"
    return OWN_SIZE


def _ceilings(run: Run) -> dict[str, float]:
    """run.json's ceilings by name: 'PRECISION TFLOP/s' and 'memory GB/s'."""
    c = run.provenance.get("ceilings") or {}
    found = {f"{p} TFLOP/s": float(v["tflops"]) for p, v in c.get("compute", {}).items()}
    if c.get("bandwidth"):
        found["memory GB/s"] = float(c["bandwidth"]["gbs"])
    return found


def _cpu_threads(run: Run) -> object:
    backends = run.provenance.get("backends")
    threads = backends.get("cpu_threads") if isinstance(backends, dict) else None
    return threads if threads is not None else run.provenance.get("cpu_threads")


def compare_warnings(run_a: Path | Run, run_b: Path | Run) -> list[str]:
    """A line for each way in which the two runs' figures are not like for like: the accuracy
    budget or images, the ceilings (MFU and the roofline's), torch, the device, CPU threads,
    and the models measured at other input sizes (whose figures are left out)."""
    a, b = _loaded(run_a), _loaded(run_b)
    warnings = []

    def differ(what: str, value_a: object, value_b: object, why: str) -> None:
        if value_a != value_b:
            warnings.append(
                f"warning: the runs differ in {what} (A: {value_a}; B: {value_b}): {why}"
            )

    settings = [accuracy_setting_parts(r.results) for r in (a, b)]
    if all(len(s) for s in settings):
        for column, what in (
            ("budget", "accuracy budget"),
            ("images", "images trained and tested on"),
        ):
            parts = [" | ".join(dict.fromkeys(s[column])) for s in settings]
            differ(what, *parts, "their accuracies are not comparable")
    ceilings_a, ceilings_b = _ceilings(a), _ceilings(b)
    shared = set(ceilings_a) & set(ceilings_b)
    if any(not math.isclose(ceilings_a[k], ceilings_b[k], rel_tol=0.01) for k in shared):
        differ(
            "ceilings",
            *(
                ", ".join(f"{k} {c[k]:.4g}" for k in sorted(shared))
                for c in (ceilings_a, ceilings_b)
            ),
            "MFU and the roofline judge each run against its own",
        )
    for key, what in (("torch", "torch version"), ("device_name", "device")):
        differ(what, a.provenance.get(key), b.provenance.get(key), "speeds may differ for that")
    differ("CPU threads", _cpu_threads(a), _cpu_threads(b), "CPU speeds depend on them")
    inputs = pd.concat([model_inputs(a), model_inputs(b)], axis=1, join="inner")
    other = inputs[inputs[0] != inputs[1]]
    if len(other):
        sizes = ", ".join(f"{m} (A: {sa}; B: {sb})" for m, (sa, sb) in other.iterrows())
        warnings.append(
            f"warning: {len(other)} models were measured at other input sizes: {sizes}; "
            "their figures are not set side by side"
        )
    return warnings


def side_by_side(run_a: Run, run_b: Run) -> Run:
    """Both runs' rows as one run whose devices are ``A: DEVICE`` and ``B: DEVICE``, so that
    the charts of runs merged across devices draw them (two runs on one device too)."""
    frames, labels = [], []
    for tag, run in (("A", run_a), ("B", run_b)):
        label = f"{tag}: {run.provenance.get('device_name', '?')}"
        if str(run.provenance.get("device", "")).startswith("cpu"):
            label += f", {_cpu_threads(run)} threads"
        frames.append(run.results.assign(device=label))
        labels.append(label)

    torch = [str(r.provenance.get("torch") or "?") for r in (run_a, run_b)]
    commits = {r.provenance.get("git_commit") for r in (run_a, run_b)}
    provenance = {
        **run_a.provenance,
        "device_name": " vs ".join(labels),
        "torch": torch[0] if torch[0] == torch[1] else " / ".join(torch),
        "git_commit": commits.pop() if len(commits) == 1 else "differs",
    }
    return dataclasses.replace(run_a, results=pd.concat(frames), provenance=provenance)


def write_comparison(run_a: Run, run_b: Run, out: Path, top: int | None = None) -> list[Path]:
    """``out/compare.md`` (the warnings and the table) and the chart of throughput per model
    on each run's device (``out/throughput_by_device.png``, where both measured speed)."""
    out.mkdir(parents=True, exist_ok=True)
    table = compare_runs(run_a, run_b)
    shown = readable_figures(table)
    lines = [
        "# Two runs compared",
        "",
        f"A = `{run_a.path}`, B = `{run_b.path}`; a figure is set beside the other run's only "
        "for the same model, phase, mode, batch and input size.",
        "",
        *(f"- {w}" for w in compare_warnings(run_a, run_b)),
        "",
        tabulate(shown, headers="keys", showindex=False, tablefmt="github", disable_numparse=True)
        if len(table)
        else "The two runs share no measured figure.",
    ]
    written = [out / "compare.md"]
    chart = CHARTS["throughput_by_device"]
    fig = chart(side_by_side(run_a, run_b), top=top)
    if fig is not None:
        written.append(save(fig, out, chart.name))
        lines += ["", "![throughput by device](throughput_by_device.png)"]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    return written
