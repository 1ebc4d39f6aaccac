"""The Pareto frontier of a trade-off: the points no other point beats on both axes."""

from __future__ import annotations

import pandas as pd


def pareto_front(
    points: pd.DataFrame, x: str, y: str, *, maximize_x: bool, maximize_y: bool
) -> pd.Series:
    """True for each row that no other row dominates (at least as good on both axes and
    better on one). Rows with a missing value are never on the front."""
    sx = 1 if maximize_x else -1
    sy = 1 if maximize_y else -1
    valid = points[[x, y]].dropna()
    xs, ys = (valid[x] * sx).to_numpy(), (valid[y] * sy).to_numpy()
    on_front = []
    for i in range(len(valid)):
        dominated = ((xs >= xs[i]) & (ys >= ys[i]) & ((xs > xs[i]) | (ys > ys[i]))).any()
        on_front.append(not dominated)
    result = pd.Series(False, index=points.index)
    result[valid.index] = on_front
    return result
