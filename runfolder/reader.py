"""Reading a run folder back: what ``bench`` wrote, for tables and charts made without
measuring again. Works on interrupted runs too (results.csv is written as the run goes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .folders import read_provenance
from .schema import (
    INTEGER_COLUMNS,
    ITEM_KEYS,
    MEMORY_METRICS,
    RESULT_COLUMNS,
    TEXT_COLUMNS,
    model_of_stem,
)


class RunFolderError(Exception):
    """Not a run folder, or one missing its results."""


@dataclass
class Run:
    path: Path
    results: pd.DataFrame
    provenance: dict[str, object]
    curves: pd.DataFrame | None = None
    samples: list[dict[str, object]] = field(default_factory=list)
    layers: dict[str, pd.DataFrame] = field(default_factory=dict)
    confusion: dict[str, pd.DataFrame] = field(default_factory=dict)
    # the profile phase's per-layer tables, by (model, mode)
    profiles: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)


def read_results(path: Path) -> pd.DataFrame:
    """results.csv with text columns as text ('' when empty) and the whole-number columns as
    numbers (NaN when empty)."""
    frame = pd.read_csv(path, dtype={c: "string" for c in TEXT_COLUMNS})
    if "source" not in frame.columns and "model" in frame.columns:
        frame["source"] = "archbench"  # before other sources, every model was the suite's
    if "device" not in frame.columns and "model" in frame.columns:
        frame["device"] = pd.NA  # before the column: the run's, filled in by load_run
    frame = _upgraded(frame)
    missing = set(RESULT_COLUMNS) - set(frame.columns)
    if missing:
        raise RunFolderError(
            f"{path} lacks the columns {sorted(missing)} (written by an older archbench?)"
        )
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].fillna("")
    for column in (*INTEGER_COLUMNS, "budget"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame[list(RESULT_COLUMNS)]


# the columns of the first results table (archbench 0.1 before the fact columns)
_FIRST_COLUMNS = ("model", "family", "phase", "mode", "batch", "metric", "value", "unit")


def phase_items(results: pd.DataFrame, phase: str) -> frozenset[tuple]:
    """The items of ``phase`` that ``results`` hold (``runfolder.schema.ITEM_KEYS``): each a
    tuple of its key columns' values, the model first, a batch as an int. What a resumed run
    skips, what a merge checks is held once."""
    columns = list(ITEM_KEYS.get(phase, ("model",)))
    keys = phase_rows(results, phase)[columns].dropna()
    return frozenset(
        tuple(int(v) if isinstance(v, float) else v for v in key)
        for key in keys.itertuples(index=False, name=None)
    )


def phase_rows(results: pd.DataFrame, phase: str) -> pd.DataFrame:
    """``phase``'s measurements and errors, without its memory rows (``MEMORY_METRICS``: per
    model, with no mode, batch or budget of their own)."""
    return results[(results["phase"] == phase) & ~results["metric"].isin(MEMORY_METRICS)]


def _upgraded(frame: pd.DataFrame) -> pd.DataFrame:
    """A results table of the first layout, in this one. Its ``batch`` was the batch a speed
    measurement was asked for (its ``requested_batch`` now), but 1 on latency rows, which
    that layout measured with the first batch of their model and mode; the facts it did not
    record (precision, layout, compile, budget, images) are left empty."""
    if "requested_batch" in frame.columns or not set(_FIRST_COLUMNS) <= set(frame.columns):
        return frame
    frame = frame.copy()
    speed = frame["phase"] == "speed"
    latency = speed & frame["metric"].str.startswith("latency_")
    batch = pd.to_numeric(frame["batch"], errors="coerce")
    first = batch[speed & ~latency].groupby([frame["model"], frame["mode"]]).min()
    keys = pd.MultiIndex.from_frame(frame.loc[latency, ["model", "mode"]])
    frame["requested_batch"] = batch.where(speed)
    frame.loc[latency, "requested_batch"] = first.reindex(keys).to_numpy()
    for column in set(RESULT_COLUMNS) - set(frame.columns):
        frame[column] = pd.NA
    return frame


def load_run(path: Path) -> Run:
    path = Path(path)
    csv = path / "results.csv"
    if not csv.is_file():
        raise RunFolderError(f"{path} is not a run folder (no results.csv)")
    run = Run(path, read_results(csv), read_provenance(path))
    device = str(run.provenance.get("device_name", ""))
    run.results["device"] = run.results["device"].replace("", device)
    if (path / "curves.csv").is_file():
        run.curves = pd.read_csv(path / "curves.csv")
    if (path / "samples.jsonl").is_file():
        run.samples = [
            json.loads(line)
            for line in (path / "samples.jsonl").read_text().splitlines()
            if line.strip()
        ]
    for folder, target in (("layers", run.layers), ("confusion", run.confusion)):
        for f in sorted((path / folder).glob("*.csv")) if (path / folder).is_dir() else []:
            target[model_of_stem(f.stem)] = pd.read_csv(
                f, index_col=0 if folder == "confusion" else None
            )
    for f in sorted((path / "profile").glob("*__*.csv")) if (path / "profile").is_dir() else []:
        stem, _, mode = f.stem.rpartition("__")
        model = model_of_stem(stem)
        frame = pd.read_csv(f, dtype={"path": "string", "type": "string", "kind": "string"})
        run.profiles[(model, mode)] = frame.fillna({"path": "", "type": ""})
    return run
