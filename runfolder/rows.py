"""A row of the results table (``schema.RESULT_COLUMNS``): the one place rows are made."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .schema import ERROR_METRIC, FACT_COLUMNS, RESULT_COLUMNS, unit_of

Row = dict[str, object]


def result_row(
    facts: Mapping[str, object], metric: str, value: float, method: str = "", error: str = ""
) -> Row:
    """``facts``: the fact columns (``schema.FACT_COLUMNS``) this figure has; the others are
    empty. The unit comes from the metric."""
    unknown = set(facts) - set(FACT_COLUMNS)
    if unknown:
        raise KeyError(f"not fact columns of the results table: {sorted(unknown)}")
    row: Row = {column: "" for column in RESULT_COLUMNS}
    row.update(facts, metric=metric, value=value, unit=unit_of(metric), method=method, error=error)
    return row


def error_row(facts: Mapping[str, object], error: str) -> Row:
    return result_row(facts, ERROR_METRIC, math.nan, error=error)
