"""The run folder: results written as each model finishes, provenance beside them.

RUN_DIR/results.csv      tidy rows (reports.schema.RESULT_COLUMNS), appended per model
RUN_DIR/layers/NAME.csv  the per-layer table of each profiled model
RUN_DIR/run.json         provenance; status and end time written when the run ends
RUN_DIR/results.json     provenance and every row, written when the run ends
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd

from reports.schema import CURVE_COLUMNS, ERROR_METRIC, RESULT_COLUMNS, unit_of

from .profile import StaticProfile, format_unsupported
from .provenance import now


def result_row(
    model: str,
    family: str,
    phase: str,
    metric: str,
    value: float,
    *,
    mode: str = "",
    batch: int | str = "",
    method: str = "",
    error: str = "",
) -> dict[str, object]:
    return {
        "model": model,
        "family": family,
        "phase": phase,
        "mode": mode,
        "batch": batch,
        "metric": metric,
        "value": value,
        "unit": unit_of(metric),
        "method": method,
        "error": error,
    }


def error_row(
    model: str, family: str, phase: str, error: str, mode: str = "", batch: int | str = ""
) -> dict[str, object]:
    return result_row(
        model, family, phase, ERROR_METRIC, math.nan, mode=mode, batch=batch, error=error
    )


def static_rows(p: StaticProfile) -> list[dict[str, object]]:
    c, h, w = p.input_shape
    figures = {
        "input_channels": c,
        "input_height": h,
        "input_width": w,
        "params": p.params,
        "params_trainable": p.params_trainable,
        "param_size_fp32": round(p.param_size_mb_fp32, 4),
        "macs": p.macs,
        "flops": p.flops,
        "macs_conv_linear": p.macs_conv_linear,
        "unsupported_ops": sum(p.unsupported_ops.values()),
        "activation_elems": p.activation_elems,
    }
    rows = [
        result_row(p.model, p.family, "static", k, v, method=p.method) for k, v in figures.items()
    ]
    if p.unsupported_ops:
        row = rows[list(figures).index("unsupported_ops")]
        row["method"] = f"{p.method}; {format_unsupported(p.unsupported_ops)}"
    return rows


class RunWriter:
    """Appends rows to ``results.csv`` as they come, so an interrupted run keeps them."""

    def __init__(
        self, run_dir: Path, provenance: dict[str, object], existing: pd.DataFrame | None = None
    ):
        """A new run folder, or with ``existing`` (its rows) one being resumed."""
        self.run_dir = run_dir
        self.provenance = dict(provenance, status="running")
        self.rows: list[dict[str, object]] = []
        (run_dir / "layers").mkdir(parents=True, exist_ok=True)
        self._csv_path = run_dir / "results.csv"
        self._samples_path = run_dir / "samples.jsonl"
        if existing is None:
            with self._csv_path.open("w", newline="") as f:
                csv.DictWriter(f, fieldnames=RESULT_COLUMNS).writeheader()
        else:
            self.rows = [
                dict(row, batch="" if pd.isna(row["batch"]) else int(row["batch"]))
                for row in existing.to_dict("records")
            ]
        self._write_json("run.json", self.provenance)

    def add(self, rows: list[dict[str, object]]) -> None:
        with self._csv_path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=RESULT_COLUMNS).writerows(rows)
        self.rows.extend(rows)

    def add_layers(self, model: str, layers: pd.DataFrame) -> None:
        layers.to_csv(self.run_dir / "layers" / f"{model}.csv", index=False)

    def drop_curves(self, models: set[str]) -> None:
        """Forget the curves of models whose accuracy phase did not finish (before a resume)."""
        path = self.run_dir / "curves.csv"
        if path.exists() and models:
            curves = pd.read_csv(path)
            curves[~curves["model"].isin(models)].to_csv(path, index=False)

    def add_curves(self, rows: list[dict[str, object]]) -> None:
        """Per-epoch learning curves (reports.schema.CURVE_COLUMNS)."""
        path = self.run_dir / "curves.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def add_confusion(self, model: str, confusion: pd.DataFrame) -> None:
        (self.run_dir / "confusion").mkdir(exist_ok=True)
        confusion.to_csv(self.run_dir / "confusion" / f"{model}.csv")

    def add_samples(self, records: list[dict[str, object]]) -> None:
        """Raw timing samples, one JSON object per measurement."""
        with self._samples_path.open("a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")

    def finish(self, status: str) -> None:
        self.provenance.update(status=status, finished=now())
        self._write_json("run.json", self.provenance)
        rows = [_without_nan(row) for row in self.rows]
        self._write_json("results.json", {"provenance": self.provenance, "rows": rows})
        pd.DataFrame(self.rows, columns=list(RESULT_COLUMNS)).astype(
            {"batch": "string", "value": "float64"}
        ).to_parquet(self.run_dir / "results.parquet")

    def _write_json(self, name: str, payload: object) -> None:
        tmp = self.run_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
        tmp.replace(self.run_dir / name)


def _without_nan(row: dict[str, object]) -> dict[str, object]:
    """JSON has no NaN: a missing value (an error row's) is written as null."""
    value = row["value"]
    return dict(row, value=None) if isinstance(value, float) and math.isnan(value) else row
