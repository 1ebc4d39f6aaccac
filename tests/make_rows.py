"""Rows of the results table for tests that draw or tabulate known figures."""

from __future__ import annotations

from bench.measure.modes import parse_mode
from runfolder.rows import Row, result_row


def row(
    model: str,
    family: str,
    phase: str,
    metric: str,
    value: float,
    *,
    mode: str = "",
    batch: int | str = "",
    method: str = "",
    **facts: object,
) -> Row:
    """A row as the phases write it: a speed row's ``batch`` is the batch it ran and was asked
    for; a mode gives its precision, layout and compile columns."""
    given: dict[str, object] = {"model": model, "family": family, "phase": phase}
    if mode:
        given |= parse_mode(mode).facts()
    if batch != "":
        given["batch"] = batch
        if phase == "speed":
            given["requested_batch"] = batch
    return result_row(given | facts, metric, value, method)
