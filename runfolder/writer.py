"""Writing a run folder as the run goes, so an interrupted run keeps what it measured.

RUN_DIR/results.csv        tidy rows (schema.RESULT_COLUMNS), appended as they come
RUN_DIR/samples.jsonl      raw timing samples, one JSON object per measurement
RUN_DIR/layers/NAME.csv    each profiled model's per-layer table (schema.LAYER_COLUMNS)
RUN_DIR/profile/MODEL__MODE.csv  the profile phase's per-layer table (schema.PROFILE_COLUMNS)
RUN_DIR/traces/MODEL__MODE.json  with --trace: a Chrome/Perfetto trace of the profiled steps
RUN_DIR/curves.csv         per-epoch learning curves (schema.CURVE_COLUMNS)
RUN_DIR/confusion/NAME.csv each trained model's confusion matrix
RUN_DIR/run.json           provenance; status and end time written when the run ends
RUN_DIR/results.json       provenance and every row, written when the run ends
RUN_DIR/results.parquet    the rows, typed, written when the run ends
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd

from .folders import now
from .rows import Row
from .schema import (
    CURVE_COLUMNS,
    INTEGER_COLUMNS,
    LAYER_COLUMNS,
    PROFILE_COLUMNS,
    RESULT_COLUMNS,
    file_stem,
)


class RunWriter:
    """Appends rows to ``results.csv`` as they come."""

    def __init__(
        self, run_dir: Path, provenance: dict[str, object], existing: pd.DataFrame | None = None
    ):
        """A new run folder, or with ``existing`` (its rows, as ``reader.read_results`` gives
        them) one being resumed."""
        self.run_dir = run_dir
        self.provenance = dict(provenance, status="running")
        self.rows: list[Row] = []
        (run_dir / "layers").mkdir(parents=True, exist_ok=True)
        self._csv_path = run_dir / "results.csv"
        if existing is not None:
            self.rows = [as_written(row) for row in existing.to_dict("records")]
        with self._csv_path.open("a+", newline="") as f:
            f.seek(0)
            header = f.readline().strip()
        if header != ",".join(RESULT_COLUMNS):  # new, or written by an older archbench
            with self._csv_path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
                writer.writeheader()
                writer.writerows(self.rows)
        self._write_json("run.json", self.provenance)

    def add(self, rows: list[Row]) -> None:
        """Append ``rows``; a row without its device gets the run's (run.json's device_name)."""
        device = self.provenance.get("device_name", "")
        rows = [row if row.get("device") else {**row, "device": device} for row in rows]
        with self._csv_path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=RESULT_COLUMNS).writerows(rows)
        self.rows.extend(rows)

    def add_layers(self, model: str, layers: pd.DataFrame) -> None:
        missing = set(LAYER_COLUMNS) - set(layers.columns)
        if missing:
            raise ValueError(f"{model}'s layer table lacks the columns {sorted(missing)}")
        layers.to_csv(self.run_dir / "layers" / f"{file_stem(model)}.csv", index=False)

    def add_profile(self, model: str, mode: str, layers: pd.DataFrame) -> Path:
        """The profile phase's per-layer table of ``model`` in ``mode``."""
        if tuple(layers.columns) != PROFILE_COLUMNS:
            raise ValueError(f"{model}'s profile table has not the columns {PROFILE_COLUMNS}")
        path = self.run_dir / "profile" / f"{file_stem(model)}__{mode}.csv"
        path.parent.mkdir(exist_ok=True)
        layers.to_csv(path, index=False)
        return path

    def trace_path(self, model: str, mode: str) -> Path:
        """Where the trace of ``model`` in ``mode`` goes (its writer makes the folder)."""
        return self.run_dir / "traces" / f"{file_stem(model)}__{mode}.json"

    def drop_curves(self, models: set[str]) -> None:
        """Forget the curves of models whose accuracy phase did not finish (before a resume)."""
        path = self.run_dir / "curves.csv"
        if path.exists() and models:
            curves = pd.read_csv(path)
            curves[~curves["model"].isin(models)].to_csv(path, index=False)

    def add_curves(self, rows: list[dict[str, object]]) -> None:
        path = self.run_dir / "curves.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerows(rows)

    def add_confusion(self, model: str, confusion: pd.DataFrame) -> None:
        (self.run_dir / "confusion").mkdir(exist_ok=True)
        confusion.to_csv(self.run_dir / "confusion" / f"{file_stem(model)}.csv")

    def add_samples(self, records: list[dict[str, object]]) -> None:
        with (self.run_dir / "samples.jsonl").open("a") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")

    def record(self, **facts: object) -> None:
        """Add ``facts`` to the provenance in run.json now (what a run learns once started)."""
        self.provenance.update(facts)
        self._write_json("run.json", self.provenance)

    def finish(self, status: str) -> None:
        self.provenance.update(status=status, finished=now())
        self._write_json("run.json", self.provenance)
        rows = [_without_nan(row) for row in self.rows]
        self._write_json("results.json", {"provenance": self.provenance, "rows": rows})
        frame = pd.DataFrame(self.rows, columns=list(RESULT_COLUMNS))
        typed = {c: "Int64" for c in INTEGER_COLUMNS} | {"value": "float64", "budget": "float64"}
        for column, dtype in typed.items():
            frame[column] = pd.to_numeric(frame[column].replace("", None)).astype(dtype)
        frame.to_parquet(self.run_dir / "results.parquet")

    def _write_json(self, name: str, payload: object) -> None:
        tmp = self.run_dir / f".{name}.tmp"
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
        tmp.replace(self.run_dir / name)


def as_written(row: dict[str, object]) -> Row:
    """A row read back, as the writer made it: whole numbers as int, empty as ''."""
    out = dict(row)
    for column in (*INTEGER_COLUMNS, "budget"):
        value = out[column]
        if pd.isna(value):
            out[column] = ""
        elif column in INTEGER_COLUMNS or float(value).is_integer():
            out[column] = int(value)
    return out


def _without_nan(row: Row) -> Row:
    """JSON has no NaN: a missing value (an error row's) is written as null."""
    value = row["value"]
    return dict(row, value=None) if isinstance(value, float) and math.isnan(value) else row
