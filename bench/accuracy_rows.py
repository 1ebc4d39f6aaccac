"""Accuracy results as rows of the results table, curves and confusion matrices."""

from __future__ import annotations

import statistics

import pandas as pd

from .data import CLASSES
from .results import error_row, result_row
from .train import THRESHOLDS, AccuracyConfig, SeedResult


def accuracy_rows(
    model: str, family: str, seeds: list[SeedResult], cfg: AccuracyConfig
) -> list[dict[str, object]]:
    """Means over the seeds that did not diverge; a diverged seed is counted and named."""
    ok = [s for s in seeds if not s.diverged]
    diverged = [s.seed for s in seeds if s.diverged]
    rows: list[dict[str, object]] = []
    batch = seeds[0].batch_size
    method = f"{cfg.describe()}; batch {batch}, peak lr {seeds[0].lr:g}; seeds " + ",".join(
        str(s.seed) for s in ok
    )

    def add(metric: str, values: list[float]) -> None:
        finite = [v for v in values if v == v]  # NaN: a threshold never reached
        if finite:
            rows.append(
                result_row(
                    model,
                    family,
                    "accuracy",
                    metric,
                    statistics.fmean(finite),
                    mode=cfg.mode.name,
                    batch=batch,
                    method=method,
                )
            )

    if ok:
        add("test_acc", [s.test_acc for s in ok])
        if len(ok) > 1:
            add("test_acc_std", [statistics.stdev(s.test_acc for s in ok)])
        add("seeds", [len(ok)])
        add("macro_f1", [s.macro_f1 for s in ok])
        add("final_train_acc", [s.epochs[-1].train_acc for s in ok])
        add("final_train_loss", [s.epochs[-1].train_loss for s in ok])
        add("fit_throughput", [s.examples_per_s for s in ok])
        add("fit_time", [s.train_seconds for s in ok])
        add("fit_epochs", [len(s.epochs) for s in ok])
        add("first_step_time", [s.first_step_s for s in ok])
        for t in THRESHOLDS:
            add(f"time_to_{t}", [s.time_to(t) for s in ok])
        for k in range(10):
            add(f"class_acc_{k}", [s.per_class_acc[k] for s in ok])
    rows.append(
        result_row(
            model,
            family,
            "accuracy",
            "diverged",
            len(diverged),
            mode=cfg.mode.name,
            batch=batch,
            method=method,
        )
    )
    if diverged:
        rows.append(
            error_row(
                model,
                family,
                "accuracy",
                f"diverged (non-finite loss) in seed(s) {', '.join(map(str, diverged))}",
                mode=cfg.mode.name,
                batch=batch,
            )
        )
    return rows


def curve_rows(seed: SeedResult) -> list[dict[str, object]]:
    return [
        {
            "model": seed.model,
            "seed": seed.seed,
            "epoch": e.epoch,
            "train_seconds": e.train_seconds,
            "train_loss": e.train_loss,
            "train_acc": e.train_acc,
            "test_acc": e.test_acc,
        }
        for e in seed.epochs
    ]


def confusion_frame(seeds: list[SeedResult]) -> pd.DataFrame:
    """Counts summed over seeds; rows are true classes, columns predictions (a model with more
    than 10 outputs has a column for each extra one)."""
    total = sum(s.confusion for s in seeds if s.confusion is not None)
    extra = [f"output {k}" for k in range(len(CLASSES), total.shape[1])]
    return pd.DataFrame(
        total.numpy(),
        index=pd.Index(CLASSES, name="true \\\\ predicted"),
        columns=[*CLASSES, *extra],
    )
