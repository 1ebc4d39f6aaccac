"""Trade-off charts from a run, as PNG and SVG. Each function returns a Figure, or None when
the run lacks what the chart needs (for example no accuracy phase)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Annotation, Text  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from runfolder.reader import Run  # noqa: E402
from runfolder.schema import LAYER_KINDS, NOISY_REL_IQR  # noqa: E402

from .pareto import pareto_front  # noqa: E402
from .tables import (  # noqa: E402
    ceiling_source,
    chart_mode,
    common_accuracy_setting,
    device_comparison,
    figure_flags,
    flags_at,
)

FIGSIZE = (10, 6.5)
DPI = 150
_LEADER = {"arrowstyle": "-", "lw": 0.5, "color": "0.45", "shrinkA": 0, "shrinkB": 3}

FLAG_LABELS = {
    "noisy": f"noisy: IQR/median > {NOISY_REL_IQR:.0%}",
    "host_bound": "host-bound: Python dispatch, MFU describes the CPU",
    "above_ceiling": "above the measured ceiling: not attainable (the ceiling read low, "
    "or the FLOP count is high)",
    "compiled_mismatch": "compiled output differs from eager (fp64-referenced check)",
}
_HOST_MARKER = r"$\mathbf{h}$"  # the "h" written beside host-bound points
_ABOVE_COLOR = "red"


def _flag_handles(present: set[str]) -> list[object]:
    """Legend entries for the flags some point of a chart carries."""
    handles = {
        "noisy": Line2D([], [], ls="none", marker="o", ms=7, mfc="none", mec="0.3", mew=1.5),
        "host_bound": Line2D([], [], ls="none", marker=_HOST_MARKER, ms=7, color="k"),
        "above_ceiling": Line2D(
            [], [], ls="none", marker="o", ms=12, mfc="none", mec=_ABOVE_COLOR, mew=1.6
        ),
    }
    for flag, handle in handles.items():
        handle.set_label(FLAG_LABELS[flag])
    return [h for f, h in handles.items() if f in present]


def _scatter_flagged(
    ax,
    x: np.ndarray,
    y: np.ndarray,
    flags: pd.DataFrame,
    *,
    color,
    marker: str = "o",
    s: float = 40,
    alpha: float = 1.0,
) -> None:
    """Points in ``color``, hollow where noisy; an "h" at the upper left of the host-bound ones
    and a red ring around those above the ceiling. ``flags``: bool columns noisy, host_bound,
    above_ceiling (absent: False), a row per point."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def flag(name: str) -> np.ndarray:
        return flags[name].to_numpy(bool) if name in flags else np.zeros(len(x), bool)

    noisy = flag("noisy")
    ax.scatter(x[~noisy], y[~noisy], s=s, marker=marker, color=color, alpha=alpha, zorder=3)
    if noisy.any():
        ax.scatter(
            x[noisy],
            y[noisy],
            s=s,
            marker=marker,
            facecolors="none",
            edgecolors=[color],
            linewidths=1.5,
            alpha=alpha,
            zorder=3,
            gid="noisy",
        )
    for xh, yh in zip(x[flag("host_bound")], y[flag("host_bound")]):
        ax.annotate(
            "h",
            (xh, yh),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=9,
            fontweight="bold",
            zorder=5,
            gid="host-bound",
        )
    above = flag("above_ceiling")
    if above.any():
        ax.scatter(
            x[above],
            y[above],
            s=s * 4.5,
            marker="o",
            facecolors="none",
            edgecolors=_ABOVE_COLOR,
            linewidths=1.6,
            zorder=5,
            gid="above-ceiling",
        )


def _present(flags: pd.DataFrame) -> set[str]:
    return {c for c in flags.columns if flags[c].any()}


def _family_colors(families: list[str]) -> dict[str, tuple]:
    """A colour per family: tab10's up to 10 families, then tab20 and tab20b's 40 (repeating
    beyond; the marker still tells models apart)."""
    unique = list(dict.fromkeys(families))
    palette = list(plt.get_cmap("tab10").colors)
    if len(unique) > len(palette):
        palette = list(plt.get_cmap("tab20").colors) + list(plt.get_cmap("tab20b").colors)
    return {f: palette[i % len(palette)] for i, f in enumerate(unique)}


# the marker of each model source (the suite's own, torchvision, timm, a user's file); an
# installed package's models take the last
SOURCE_MARKERS = {"archbench": "o", "tv": "s", "timm": "^", "file": "D", "": "P"}


def _source_marker(source: str) -> str:
    return SOURCE_MARKERS.get(source, SOURCE_MARKERS[""])


def _top(values: pd.Series, top: int | None, largest: bool = True) -> pd.Series:
    """The ``top`` models of ``values`` (all when None), the best first if cut."""
    values = values.dropna()
    if top is None or len(values) <= top:
        return values
    return values.nlargest(top) if largest else values.nsmallest(top)


def _top_note(shown: int, total: int, by: str) -> str:
    return f" (top {shown} of {total} models by {by}; --top)" if shown < total else ""


# Where a label may go: beside its point first (directions, just clear of its marker), then
# further out on rings (offsets in points), joined to its point by a leader line.
_BESIDE = [
    (0.75, 0.75),
    (0.75, -0.75),
    (-0.75, 0.75),
    (-0.75, -0.75),
    (1, 0),
    (-1, 0),
    (0, 1),
    (0, -1),
]
_FAR = [
    (round(r * np.cos(a)), round(r * np.sin(a)))
    for r in (18, 28, 40, 55, 75)
    for a in np.radians(np.arange(30, 390, 30))
]


def _marker_boxes(ax) -> list[Bbox]:
    """A box around each marker of the axes' scatter plots, in display coordinates."""
    boxes = []
    px_per_pt = ax.figure.dpi / 72
    for c in ax.collections:
        offsets = np.asarray(c.get_offsets(), dtype=float).reshape(-1, 2)
        if not isinstance(c, PathCollection) or len(offsets) == 0:
            continue
        radii = np.sqrt(np.resize(c.get_sizes(), len(offsets))) / 2 * px_per_pt
        for (x, y), r in zip(c.get_offset_transform().transform(offsets), radii):
            if np.isfinite(x) and np.isfinite(y):
                boxes.append(Bbox.from_extents(x - r, y - r, x + r, y + r))
    return boxes


def _line_boxes(ax) -> list[Bbox]:
    """A thin box around each horizontal or vertical segment of the axes' lines (a Pareto
    frontier's steps, a roofline's ceilings), in display coordinates: a label must not be
    struck through. Sloped segments are left out: their boxes would cover what they do not."""
    boxes = []
    for line in ax.lines:
        points = line.get_transform().transform(line.get_path().vertices)
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            if not np.all(np.isfinite([x0, y0, x1, y1])):
                continue
            if abs(x1 - x0) < 1 or abs(y1 - y0) < 1:
                boxes.append(Bbox.from_extents(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return boxes


def box_distance(box: Bbox, x: float, y: float) -> float:
    """From the point (x, y) to the nearest edge of ``box`` (0 inside it), display units."""
    return float(np.hypot(max(box.x0 - x, 0, x - box.x1), max(box.y0 - y, 0, y - box.y1)))


def label_box(text: Annotation, renderer) -> Bbox:
    """The box of an annotation's text, without its leader line."""
    text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def _annotate(
    ax,
    label: str,
    xy: tuple[float, float],
    offset: tuple[float, float],
    fontsize: float,
    leader: bool,
) -> Annotation:
    dx, dy = offset
    return ax.annotate(
        label,
        xy,
        xytext=offset,
        textcoords="offset points",
        ha="left" if dx > 0 else "right" if dx < 0 else "center",
        va="bottom" if dy > 0 else "top" if dy < 0 else "center",
        fontsize=fontsize,
        arrowprops=_LEADER if leader else None,
    )


def label_points(ax, xs, ys, labels, fontsize: float = 8) -> list[str]:
    """Label each point where its text overlaps no other text, marker, the legend or the axes'
    edge and lies nearer its own point than any other marker, trying places beside the point
    nearest first; a label that fits beside no place goes further out, with a leader line to
    its point; a label with no free place is left off, and the labels left off are named under
    the axes (returned too), so that no two labels ever overlap. Call it once the axes hold
    everything else: it measures the drawn figure."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    markers = _marker_boxes(ax)
    centres = np.array([[(b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2] for b in markers]).reshape(-1, 2)
    taken = markers + [t.get_window_extent(renderer) for t in ax.texts] + _line_boxes(ax)
    if ax.get_legend() is not None:
        taken.append(ax.get_legend().get_window_extent(renderer))
    px_per_pt = fig.dpi / 72
    left_off: list[str] = []
    for x, y, label in zip(xs, ys, labels):
        own = ax.transData.transform((x, y))
        here = np.hypot(*(centres - own).T) <= 1
        others = centres[~here]
        # just clear of the widest marker drawn at this point (a Pareto ring, say)
        gap = max([(b.x1 - b.x0) / 2 / px_per_pt for b, h in zip(markers, here) if h] or [3]) + 2
        beside = [(round(gap * u, 1), round(gap * v, 1)) for u, v in _BESIDE]
        best: tuple[int, tuple[float, float]] | None = None  # fewest overlaps of a leader place
        for offset in beside + _FAR:
            leader = offset not in beside
            text = _annotate(ax, label, (x, y), offset, fontsize, leader)
            drawn = label_box(text, renderer)
            box = drawn.expanded(1.04, 1.15)  # a margin around the text
            text.remove()
            if not (axes_box.contains(box.x0, box.y0) and axes_box.contains(box.x1, box.y1)):
                continue
            overlaps = sum(box.overlaps(t) for t in taken)
            nearest = all(box_distance(drawn, *own) < box_distance(drawn, *p) for p in others)
            if overlaps == 0 and (leader or nearest):
                best = (0, offset)
                break
        if best is None or best[0] > 0:
            left_off.append(label)
            continue
        text = _annotate(ax, label, (x, y), best[1], fontsize, best[1] not in beside)
        taken.append(label_box(text, renderer))
    if left_off:
        ax.annotate(
            "not labelled (no room): " + ", ".join(left_off),
            (0, 0),
            xycoords="axes fraction",
            xytext=(0, -36),
            textcoords="offset points",
            fontsize=7,
            va="top",
            wrap=True,
            gid="left-off",
        )
    return left_off


def _per_model(run: Run, phase: str, metric: str, mode: str | None = None) -> pd.Series:
    r = run.results
    rows = r[(r["phase"] == phase) & (r["metric"] == metric)]
    if mode is not None:
        rows = rows[rows["mode"] == mode]
        first = rows.groupby("model")["requested_batch"].transform("min")
        rows = rows[rows["requested_batch"] == first]
    return rows.groupby("model", sort=False)["value"].first()


def _throughput_flags(run: Run, mode: str, kind: str = "infer") -> pd.DataFrame:
    """The flags of each model's ``kind`` throughput in ``mode`` at its first batch (the figure
    ``_per_model`` picks): noisy, host_bound. Above the ceiling is the roofline's business."""
    r = run.results
    rows = r[(r["phase"] == "speed") & (r["metric"] == f"{kind}_throughput") & (r["mode"] == mode)]
    first = rows.groupby("model", sort=False)["requested_batch"].min()
    flags = flags_at(
        figure_flags(r, run.provenance.get("ceilings")),
        [(m, mode, int(b)) for m, b in first.items()],
    )
    flags.index = first.index
    return flags[[f"{kind}_noisy", f"{kind}_host_bound"]].set_axis(["noisy", "host_bound"], axis=1)


def _families(run: Run) -> pd.Series:
    return run.results.groupby("model", sort=False)["family"].first()


def _sources(run: Run) -> pd.Series:
    return run.results.groupby("model", sort=False)["source"].first()


def _subtitle(run: Run) -> str:
    p = run.provenance
    return (
        f"{p.get('device_name', '?')}, torch {p.get('torch', '?')}, "
        f"commit {str(p.get('git_commit') or '?')[:10]}"
    )


def _accuracy_setting(run: Run) -> tuple[str, list[str]]:
    """The budget and images of the accuracy charts: the run's most common, as a title line
    that names the models it leaves out (trained otherwise), and those models."""
    setting, others = common_accuracy_setting(run.results)
    if others:
        setting += (
            f"\n(the run's most common budget and images; {len(others)} model(s) trained "
            f"otherwise left out: {', '.join(others)})"
        )
    return setting, others


def _accuracy(run: Run) -> tuple[pd.Series, str]:
    """Each model's test accuracy under the run's most common budget and images, and the title
    line of ``_accuracy_setting``."""
    setting, others = _accuracy_setting(run)
    return _per_model(run, "accuracy", "test_acc").drop(others), setting


def _tradeoff(
    run: Run,
    x: pd.Series,
    y: pd.Series,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    maximize_x: bool,
    maximize_y: bool,
    logx: bool = True,
    logy: bool = False,
    flags: pd.DataFrame | None = None,
    top: int | None = None,
    top_by: str = "y",
) -> Figure | None:
    """``flags``: per model, the flags of the throughput on one of the axes; ``top``: only the
    models with the best ``y`` (the ``top_by`` figure)."""
    data = pd.DataFrame({"x": x, "y": y}).dropna()
    if len(data) < 2:
        return None
    total = len(data)
    data = data.loc[_top(data["y"], top, largest=maximize_y).index]
    data["family"] = _families(run).reindex(data.index)
    data["source"] = _sources(run).reindex(data.index).fillna("")
    flags = (flags if flags is not None else pd.DataFrame()).reindex(data.index, fill_value=False)
    colors = _family_colors(list(data["family"]))
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    handles: list[object] = []
    for (family, source), group in data.groupby(["family", "source"], sort=False):
        _scatter_flagged(
            ax,
            group["x"],
            group["y"],
            flags.loc[group.index],
            color=colors[family],
            marker=_source_marker(source),
        )
    for family in dict.fromkeys(data["family"]):
        handles.append(Line2D([], [], ls="none", marker="o", color=colors[family], label=family))
    sources = list(dict.fromkeys(data["source"]))
    if len(sources) > 1:
        handles += [
            Line2D([], [], ls="none", marker=_source_marker(s), color="0.4", label=f"source {s}")
            for s in sources
        ]
    front = data[pareto_front(data, "x", "y", maximize_x=maximize_x, maximize_y=maximize_y)]
    front = front.sort_values("x")
    # min-x/max-y: the best y rises at each frontier point ("post"); max/max: it falls after
    handles += ax.step(
        front["x"],
        front["y"],
        where="pre" if maximize_x == maximize_y else "post",
        color="0.3",
        lw=1.2,
        ls="--",
        zorder=2,
        label="Pareto frontier",
    )
    ax.scatter(front["x"], front["y"], s=110, facecolors="none", edgecolors="0.2", lw=1, zorder=4)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    shown = _top_note(len(data), total, top_by)
    ax.set_title(f"{title}{shown}\n{_subtitle(run)}", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.margins(0.12)
    entries = handles + _flag_handles(_present(flags))
    # many entries: beside the axes, in columns, rather than over the points
    outside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1), "ncols": 1 + len(entries) // 26}
    ax.legend(
        handles=entries,
        fontsize=8 if len(entries) <= 12 else 7,
        title="family" + (" and source" if len(sources) > 1 else ""),
        title_fontsize=8,
        **({"loc": "best"} if len(entries) <= 12 else outside),
    )
    label_points(ax, data["x"], data["y"], list(data.index), fontsize=8 if len(data) <= 20 else 7)
    return fig


def accuracy_vs_gflops(run: Run, top: int | None = None) -> Figure | None:
    flops = _per_model(run, "static", "flops") / 1e9
    acc, setting = _accuracy(run)
    return _tradeoff(
        run,
        flops,
        acc,
        xlabel="GFLOPs per sample (fvcore, 2 x MACs, log scale)",
        ylabel="test accuracy (%)",
        title=f"Accuracy vs compute: Fashion-MNIST test accuracy against FLOPs\n{setting}",
        maximize_x=False,
        maximize_y=True,
        top=top,
        top_by="test accuracy",
    )


def accuracy_vs_throughput(run: Run, top: int | None = None) -> Figure | None:
    mode = chart_mode(run.results)
    if mode is None:
        return None
    speed = _per_model(run, "speed", "infer_throughput", mode)
    acc, setting = _accuracy(run)
    return _tradeoff(
        run,
        speed,
        acc,
        xlabel=f"inference throughput (samples/s, {mode}, log scale)",
        ylabel="test accuracy (%)",
        title=f"Accuracy vs speed: Fashion-MNIST test accuracy against throughput\n{setting}",
        maximize_x=True,
        maximize_y=True,
        flags=_throughput_flags(run, mode),
        top=top,
        top_by="test accuracy",
    )


def throughput_vs_params(run: Run, top: int | None = None) -> Figure | None:
    mode = chart_mode(run.results)
    if mode is None:
        return None
    params = _per_model(run, "static", "params") / 1e6
    speed = _per_model(run, "speed", "infer_throughput", mode)
    return _tradeoff(
        run,
        params,
        speed,
        xlabel="parameters (millions, log scale)",
        ylabel=f"inference throughput (samples/s, {mode}, log scale)",
        title="Throughput vs size",
        maximize_x=False,
        maximize_y=True,
        logy=True,
        flags=_throughput_flags(run, mode),
        top=top,
        top_by="throughput",
    )


def speedup_by_mode(run: Run, top: int | None = None) -> Figure | None:
    from .tables import speedup_marks, speedup_table

    ratios = speedup_table(run.results)
    if ratios.empty:
        return None
    # each model's first batch with a figure, per mode
    known = ratios.notna()
    first = known & (known.groupby(level="model", sort=False).cumsum() == 1)
    table = ratios.where(first).groupby(level="model", sort=False).first()
    marks = speedup_marks(run.results).where(first, "").groupby(level="model", sort=False).sum()
    total = len(table)
    table = table.loc[_top(table.max(axis=1), top).index]
    marks = marks.loc[table.index]
    models, modes = list(table.index), list(table.columns)
    fig, ax = plt.subplots(
        figsize=(max(10, 0.75 * len(models) * max(1, len(modes)) / 2 + 3), 6),
        dpi=DPI,
        layout="constrained",
    )
    width = 0.8 / len(modes)
    x = np.arange(len(models))
    present: set[str] = set()
    handles: list[object] = []
    for i, mode in enumerate(modes):
        color = f"C{i % 10}"
        bars = ax.bar(x + (i - (len(modes) - 1) / 2) * width, table[mode], width, color=color)
        handles.append(Patch(facecolor=color, label=mode))
        for bar, mark in zip(bars, marks[mode]):
            if "*" in mark:  # noisy: hatched
                bar.set(hatch="///", edgecolor="0.15", linewidth=0.5, gid="noisy")
                present.add("noisy")
            if "x" in mark:  # not a speed-up: a red cross over the bar
                bar.set(edgecolor=_ABOVE_COLOR, linewidth=1.5)
                ax.plot(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_height() / 2,
                    marker="x",
                    ms=10,
                    mew=2.5,
                    color=_ABOVE_COLOR,
                    gid="compiled-mismatch",
                )
                present.add("compiled_mismatch")
            if "h" in mark:
                ax.annotate(
                    "h",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    fontweight="bold",
                    gid="host-bound",
                )
                present.add("host_bound")
    handles.append(ax.axhline(1.0, color="0.3", lw=1, ls="--", label="fp32 (1x)"))
    ax.set_xticks(x, models, rotation=35, ha="right")
    ax.set_ylabel("inference throughput relative to fp32 (x)")
    ax.set_title(
        f"Speed-up of each mode over fp32, same model and batch"
        f"{_top_note(len(table), total, 'best speed-up')}\n{_subtitle(run)}",
        fontsize=11,
    )
    ax.grid(True, axis="y", alpha=0.3)
    if "noisy" in present:
        handles.append(
            Patch(
                facecolor="0.85",
                edgecolor="0.15",
                hatch="///",
                label=f"{FLAG_LABELS['noisy']} (this mode's or fp32's)",
            )
        )
    if "host_bound" in present:
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                marker=_HOST_MARKER,
                ms=8,
                color="k",
                label=FLAG_LABELS["host_bound"],
            )
        )
    if "compiled_mismatch" in present:
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="x",
                ms=9,
                mew=2.5,
                color=_ABOVE_COLOR,
                label=FLAG_LABELS["compiled_mismatch"],
            )
        )
    ax.legend(handles=handles, fontsize=8, title="mode", title_fontsize=8)
    return fig


def throughput_by_device(run: Run, top: int | None = None) -> Figure | None:
    """Grouped bars: each model's inference throughput on each device, in the mode measured
    for the most models, at the first batch both devices ran with the same input."""
    table = device_comparison(run.results)
    mode = chart_mode(run.results)
    if table.empty or mode is None:
        return None
    devices = [c for c in table.columns if " / " not in c]
    shown = table.xs(mode, level="mode").dropna(how="all", subset=devices)
    shown = shown.groupby(level="model", sort=False).first()[devices]
    total = len(shown)
    shown = shown.loc[_top(shown.max(axis=1), top).index]
    if shown.empty:
        return None
    fig, ax = plt.subplots(
        figsize=(max(10, 0.6 * len(shown) * len(devices) / 2 + 3), 6),
        dpi=DPI,
        layout="constrained",
    )
    width = 0.8 / len(devices)
    x = np.arange(len(shown))
    for i, device in enumerate(devices):
        offset = (i - (len(devices) - 1) / 2) * width
        ax.bar(x + offset, shown[device], width, color=f"C{i % 10}", label=device)
    ax.set_yscale("log")
    ax.set_xticks(x, list(shown.index), rotation=35, ha="right")
    ax.set_ylabel(f"inference throughput (samples/s, {mode}, log scale)")
    named = {**run.provenance, "device_name": " vs ".join(devices)}
    every_device = dataclasses.replace(run, provenance=named)
    ax.set_title(
        f"Throughput per model on each device, same mode, batch and input"
        f"{_top_note(len(shown), total, 'best throughput')}\n{_subtitle(every_device)}",
        fontsize=11,
    )
    ax.grid(True, axis="y", which="major", alpha=0.3)
    ax.legend(fontsize=8, title="device", title_fontsize=8)
    return fig


_MARKERS = "osD^vP*X<>phH8d"
FEW_EPOCHS = 3  # fewer: curves by examples seen, not piled up at epochs 1 and 2


def model_styles(models: list[str], families: pd.Series) -> dict[str, tuple[tuple, str]]:
    """(colour, marker) per model: its family's colour, as in the other charts, and within the
    family a marker of its own, so that no two models look alike."""
    colors = _family_colors(list(families.reindex(models)))
    styles: dict[str, tuple[tuple, str]] = {}
    for model in models:
        color = colors[families[model]]
        same = sum(c == color for c, _ in styles.values())
        styles[model] = (color, _MARKERS[same % len(_MARKERS)])
    return styles


def examples_seen(run: Run, curves: pd.DataFrame) -> pd.Series:
    """Training examples seen by the end of each (model, epoch) of ``curves`` (indexed by both):
    whole epochs of the training images (less the last partial batch, dropped), the last epoch
    cut short at the examples the model trained on (its examples/s x training seconds, plus the
    untimed first batch)."""
    acc = run.results[run.results["phase"] == "accuracy"]
    trained_on = (
        acc[acc["metric"] == "test_acc"].groupby("model")[["train_images", "batch"]].first()
    )
    figures = acc.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    seen = []
    for model, epoch in curves.index:
        images, batch = trained_on.loc[model] if model in trained_on.index else (math.nan,) * 2
        trained = math.inf
        if {"fit_throughput", "fit_time"} <= set(figures.columns) and model in figures.index:
            timed = figures.at[model, "fit_throughput"] * figures.at[model, "fit_time"]
            trained = batch + timed if math.isfinite(timed) else math.inf
        seen.append(min(epoch * (images // batch) * batch, trained))
    return pd.Series(seen, index=curves.index, dtype=float)


def learning_curves(run: Run, top: int | None = None) -> Figure | None:
    """Test accuracy by epoch (when every model ran the same epochs, at least ``FEW_EPOCHS``),
    else by training examples seen; and by training seconds. ``top``: the models with the
    best final test accuracy."""
    if run.curves is None or run.curves.empty:
        return None
    setting, others = _accuracy_setting(run)
    curves = run.curves[~run.curves["model"].isin(others)]
    mean = curves.groupby(["model", "epoch"], sort=False)[["train_seconds", "test_acc"]].mean()
    final = mean.groupby(level="model", sort=False)["test_acc"].last()
    kept = _top(final, top).index
    shown = _top_note(len(kept), len(final), "final test accuracy")
    mean = mean[mean.index.get_level_values("model").isin(kept)]
    models = [m for m in dict.fromkeys(curves["model"]) if m in kept]
    epochs = set(mean.groupby(level="model").size())
    by_epoch = len(epochs) == 1 and min(epochs) >= FEW_EPOCHS
    seen = None if by_epoch else examples_seen(run, mean)
    if seen is not None and seen.isna().any():  # a model without its images: epochs then
        seen = None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6), dpi=DPI, layout="constrained")
    styles = model_styles(models, _families(run))
    for model in models:
        m = mean.loc[model]
        color, marker = styles[model]
        style = {
            "color": color,
            "marker": marker,
            "ms": 5,
            "lw": 1.4,
            "label": model,
            "markevery": max(1, len(m) // 8),
        }
        ax1.plot(m.index if seen is None else seen.loc[model], m["test_acc"], **style)
        ax2.plot(m["train_seconds"], m["test_acc"], **style)
    if _plot_note_accuracies(ax1, run, models, styles, by_epoch=seen is None):
        ax1.legend(
            handles=[Line2D([], [], ls="none", marker="X", color="0.3", ms=8)],
            labels=["the seed note's accuracy\n(its recipe and epochs)"],
            loc="lower right",
            fontsize=8,
        )
    if seen is None:
        ax1.set_xlabel("epoch")
        ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax1.set_xlabel("training examples seen (log scale)")
        ax1.set_xscale("log")
    # a seconds budget ends every model near the same time: a log axis would only stretch
    # the first, nearly untimed epochs
    last = mean.groupby(level="model")["train_seconds"].last()
    if last.max() > 10 * last.min():
        ax2.set_xscale("log")
    scale = ", log scale" if ax2.get_xscale() == "log" else ""
    ax2.set_xlabel(f"training seconds (evaluation excluded{scale})")
    for ax in (ax1, ax2):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    ax2.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.suptitle(
        f"Learning curves (mean over seeds){shown}\n{setting}\n{_subtitle(run)}", fontsize=11
    )
    return fig


NOTE_GID = "seed_note"  # the markers of the seed notes' printed accuracies


def _plot_note_accuracies(ax, run: Run, models: list[str], styles: dict, by_epoch: bool) -> bool:
    """An X, in the model's colour, at the accuracy its seed note printed after the note's
    epochs (or the examples those epochs held); whether any was drawn."""
    r = run.results
    notes = r[(r["metric"] == "note_test_acc") & r["model"].isin(models)]
    for note in notes.itertuples():
        epochs = note.budget
        x = epochs if by_epoch else epochs * (note.train_images // note.batch) * note.batch
        ax.plot(
            [x],
            [note.value],
            ls="none",
            marker="X",
            ms=9,
            color=styles[note.model][0],
            gid=NOTE_GID,
        )
    return len(notes) > 0


def latency_distributions(run: Run, top: int | None = None) -> Figure | None:
    mode = chart_mode(run.results)
    samples = [s for s in run.samples if s["kind"] == "latency" and s["mode"] == mode]
    if not samples:
        return None
    samples.sort(key=lambda s: np.median(s["seconds_per_step"]))
    total, samples = len(samples), samples[:top]
    data = [np.array(s["seconds_per_step"]) * 1e3 for s in samples]
    fig, ax = plt.subplots(
        figsize=(10, max(4, 0.4 * len(data) + 1.5)), dpi=DPI, layout="constrained"
    )
    style = {
        "whis": (1, 99),
        "showfliers": True,
        "widths": 0.6,
        "flierprops": {"markersize": 2, "alpha": 0.5},
    }
    try:
        ax.boxplot(data, orientation="horizontal", **style)  # matplotlib >= 3.10
    except TypeError:
        ax.boxplot(data, vert=False, **style)
    ax.set_yticks(range(1, len(data) + 1), [s["model"] for s in samples])
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 inference latency (ms, log scale); box: quartiles, whiskers: p1-p99")
    n = len(samples[0]["seconds_per_step"])
    shown = _top_note(len(samples), total, "lowest median latency")
    ax.set_title(
        f"Latency distributions, {mode}, {n} calls each{shown}\n{_subtitle(run)}", fontsize=11
    )
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig


def roofline(run: Run) -> Figure | None:
    """Achieved inference TFLOP/s against arithmetic intensity, under the device's ceilings.

    Intensity is estimated as FLOPs / minimum bytes moved per step: the parameters read once
    (fp32) plus each leaf layer's output written and read once, at the mode's activation width
    (2 bytes under bf16/fp16 autocast, else 4)."""
    ceilings = run.provenance.get("ceilings")
    r = run.results
    speed = r[(r["phase"] == "speed") & (r["metric"] == "infer_tflops")]
    if not ceilings or speed.empty:
        return None
    flops = _per_model(run, "static", "flops")
    params = _per_model(run, "static", "params")
    acts = _per_model(run, "static", "activation_elems")
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    modes = list(dict.fromkeys(speed["mode"]))
    labelled = chart_mode(r)
    cmap = plt.get_cmap("tab10")
    precision_color = {p: cmap(i) for i, p in enumerate(ceilings["compute"])}
    markers = "osD^v<>p"
    all_flags = figure_flags(r, ceilings)
    points, named, handles = [], [], []
    present: set[str] = set()
    for i, mode in enumerate(modes):
        rows = speed[speed["mode"] == mode]
        precision = rows["precision"].iloc[0]
        width = 2 if precision in ("bf16", "fp16") else 4
        b = rows["batch"].to_numpy()  # the batch that ran: what the intensity depends on
        m = rows["model"]
        intensity = (
            flops.reindex(m).to_numpy()
            * b
            / (4 * params.reindex(m).to_numpy() + 2 * width * b * acts.reindex(m).to_numpy())
        )
        keys = zip(m, rows["requested_batch"].astype(int))
        flags = flags_at(all_flags, [(model, mode, batch) for model, batch in keys])
        flags = flags[[f"infer_{f}" for f in FLAG_LABELS]].set_axis(list(FLAG_LABELS), axis=1)
        style = {
            "marker": markers[i % len(markers)],
            "alpha": 1.0 if mode == labelled else 0.55,
            "color": precision_color.get(precision, "0.3"),
        }
        _scatter_flagged(ax, intensity, rows["value"], flags, s=36, **style)
        label = f"{mode} (labelled)" if mode == labelled and len(modes) > 1 else mode
        handles.append(Line2D([], [], ls="none", ms=6, label=label, **style))
        present |= _present(flags.loc[np.isfinite(intensity)])
        points += list(intensity)
        if mode == labelled:
            named += [
                (x, y, n)
                for x, y, n in zip(intensity, rows["value"], m)
                if np.isfinite(x) and n not in {q[2] for q in named}
            ]
        else:  # a point above its ceiling is named whatever its mode
            named += [
                (x, y, f"{n} [{mode}]")
                for x, y, n, above in zip(intensity, rows["value"], m, flags["above_ceiling"])
                if np.isfinite(x) and above
            ]
    bw = ceilings["bandwidth"]["gbs"] / 1e3  # TB/s: TFLOP/s per FLOP/byte
    xs = np.array([x for x in points if np.isfinite(x)])
    if xs.size == 0:  # no static figures in this run (e.g. --phases speed): nothing to place
        plt.close(fig)
        return None
    lo, hi = xs.min() / 4, xs.max() * 8
    grid = np.logspace(np.log10(lo), np.log10(hi), 200)
    top_compute = max(c["tflops"] for c in ceilings["compute"].values())
    for precision, c in ceilings["compute"].items():
        label = f"ceiling {precision}: {c['tflops']:.3g} TFLOP/s ({ceiling_source(c)})"
        handles += ax.plot(
            grid,
            np.minimum(c["tflops"], bw * grid),
            lw=1.2,
            ls="--",
            color=precision_color[precision],
            label=label,
        )
    under = bw * grid <= top_compute
    memory = ceilings["bandwidth"]
    handles += ax.plot(
        grid[under],
        bw * grid[under],
        lw=0.8,
        color="0.5",
        label=f"memory {memory['gbs']:.0f} GB/s ({ceiling_source(memory)})",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    top = max(top_compute, speed["value"].max())  # a point above its ceiling stays in view
    ax.set_ylim(min(speed["value"].min() / 3, top_compute / 1e3), top * 2)
    ax.set_xlabel("arithmetic intensity (FLOP/byte, estimated: see report; log scale)")
    ax.set_ylabel("achieved inference TFLOP/s (log scale)")
    ax.set_title(f"Roofline: inference at each model's batch\n{_subtitle(run)}", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(handles=handles + _flag_handles(present), fontsize=7, loc="lower right")
    label_points(
        ax, [p[0] for p in named], [p[1] for p in named], [p[2] for p in named], fontsize=7
    )
    return fig


def time_share_by_kind(run: Run) -> Figure | None:
    """Per model, two stacked bars: the share of a training step's module time by layer kind
    (profile phase), and beside it the share of the MACs, in the first profiled mode."""
    r = run.results
    rows = r[(r["phase"] == "profile") & r["metric"].str.startswith("profile_")]
    if rows.empty:
        return None
    mode = rows["mode"].iloc[0]
    rows = rows[rows["mode"] == mode]
    models = list(dict.fromkeys(rows["model"]))
    shares = {
        what: rows[rows["metric"].str.startswith(f"profile_{what}_share_")]
        .assign(kind=lambda f, w=what: f["metric"].str.removeprefix(f"profile_{w}_share_"))
        .pivot_table(index="model", columns="kind", values="value", aggfunc="first")
        .reindex(index=models, columns=list(LAYER_KINDS))
        .fillna(0.0)
        for what in ("time", "mac")
    }
    models = [m for m in models if shares["time"].loc[m].sum() > 0]
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], max(3.0, 0.9 * len(models) + 1.8)), dpi=DPI)
    colors = plt.get_cmap("tab10").colors
    y, labels = [], []
    for i, model in enumerate(models):
        for j, what in enumerate(("time", "mac")):
            pos = i * 2.6 + j
            left = 0.0
            for c, kind in enumerate(LAYER_KINDS):
                value = shares[what].loc[model, kind]
                ax.barh(pos, value, left=left, color=colors[c], height=0.85)
                if value >= 6:
                    ax.text(
                        left + value / 2,
                        pos,
                        f"{value:.0f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white",
                    )
                left += value
            y.append(pos)
            labels.append(f"{model}: {'time' if what == 'time' else 'MACs'}")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share (%)")
    handles = [Patch(color=colors[c], label=label) for c, label in enumerate(LAYER_KINDS.values())]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.12 - 0.3 / len(models)),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    ax.set_title(
        f"Where a training step's time goes, by layer kind, beside the MACs ({mode})\n"
        f"{_subtitle(run)}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def layer_macs_model(run: Run) -> tuple[str, str] | None:
    """The (model, mode) the per-layer MAC/s chart shows: the profile with the most leaf layers
    that have MACs, ties broken by model name then mode (so the choice is deterministic)."""
    counts = {key: len(profile_leaf_layers(frame)) for key, frame in run.profiles.items()}
    counts = {key: n for key, n in counts.items() if n > 0}
    if not counts:
        return None
    return min(counts, key=lambda key: (-counts[key], key))


def profile_leaf_layers(frame: pd.DataFrame) -> pd.DataFrame:
    """A profile's leaf modules with MACs and a measured inference MAC/s."""
    leaves = frame[
        ~frame["path"].str.startswith("(") & (frame["kind"] != "container") & (frame["macs"] > 0)
    ]
    return leaves[np.isfinite(leaves["mac_per_s"]) & (leaves["mac_per_s"] > 0)]


def layer_mac_rate(run: Run, model: tuple[str, str] | None = None) -> Figure | None:
    """One profiled model's leaf layers: achieved MAC/s (inference forward, eval mode, no grad:
    the profile CSV's ``mac_per_s``, its ``macs`` over its ``infer_forward_ms``) against the
    layer's MACs per batch, log-log, coloured by layer kind. ``model`` is a (model, mode) of
    ``run.profiles``; by default ``layer_macs_model``'s choice."""
    key = model or layer_macs_model(run)
    if key is None or key not in run.profiles:
        return None
    leaves = profile_leaf_layers(run.profiles[key])
    if leaves.empty:
        return None
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    colors = plt.get_cmap("tab10").colors
    for c, (kind, label) in enumerate(LAYER_KINDS.items()):
        of_kind = leaves[leaves["kind"] == kind]
        if of_kind.empty:
            continue
        ax.scatter(
            of_kind["macs"],
            of_kind["mac_per_s"],
            color=colors[c],
            label=f"{label} ({len(of_kind)})",
            s=28,
            alpha=0.8,
            edgecolors="white",
            linewidths=0.4,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs of the layer per batch (static count x batch)")
    ax.set_ylabel("achieved MAC/s (inference forward)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", title="layer kind (layers)", title_fontsize=8)
    top = leaves.sort_values("macs", ascending=False).head(3)
    label_points(ax, list(top["macs"]), list(top["mac_per_s"]), list(top["path"]), fontsize=7)
    name, mode = key
    why = "" if model else ", the profiled model with the most"
    ax.set_title(
        f"Per-layer achieved MAC/s against MACs, inference forward: {name}, {mode}\n"
        f"({len(leaves)} leaf layers with MACs{why}); {_subtitle(run)}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Chart:
    """A chart of the report: ``draw(run)`` (``draw(run, top=N)`` when ``compares_models``)
    returns a Figure, or None when the run lacks what it needs; ``caption``: its text under it
    in report.md, followed by ``flag_caption`` (how it marks flagged figures) when it marks
    them; ``compares_models``: ``--top N`` cuts it to the best N models; ``across_devices``:
    it draws every device of a run merged across devices (the others draw the first device's
    figures)."""

    name: str
    draw: Callable[..., Figure | None]
    caption: str
    compares_models: bool = False
    flag_caption: str | None = None
    across_devices: bool = False

    def __call__(self, run: Run, top: int | None = None) -> Figure | None:
        return self.draw(run, top=top) if self.compares_models else self.draw(run)

    @property
    def full_caption(self) -> str:
        return " ".join(filter(None, (self.caption, self.flag_caption)))


def _flag_caption(noisy: str) -> str:
    """How a chart marks noisy and host-bound figures; ``noisy``: what a noisy one looks like."""
    return (
        f"{noisy}: noisy (IQR/median > {NOISY_REL_IQR:.0%}); an 'h': host-bound (Python "
        "dispatch, MFU describes the CPU)."
    )


# every chart, in the order report.md shows them; ``register_chart`` adds one
CHARTS: dict[str, Chart] = {
    c.name: c
    for c in (
        Chart(
            "accuracy_vs_gflops",
            accuracy_vs_gflops,
            "Accuracy against compute; the dashed line is the Pareto frontier (no model is "
            "both cheaper and more accurate than a circled one).",
            compares_models=True,
        ),
        Chart(
            "accuracy_vs_throughput",
            accuracy_vs_throughput,
            "Accuracy against inference throughput, with its Pareto frontier.",
            compares_models=True,
            flag_caption=_flag_caption("Hollow markers"),
        ),
        Chart(
            "throughput_vs_params",
            throughput_vs_params,
            "Inference throughput against parameter count.",
            compares_models=True,
            flag_caption=_flag_caption("Hollow markers"),
        ),
        Chart(
            "speedup_by_mode",
            speedup_by_mode,
            "Each execution mode's inference throughput over fp32's.",
            compares_models=True,
            flag_caption=_flag_caption("Hatched bars (this mode's figure or fp32's)"),
        ),
        Chart(
            "throughput_by_device",
            throughput_by_device,
            "A run merged across devices: each model's inference throughput on each device, "
            "in one mode, at the same batch and input size.",
            compares_models=True,
            across_devices=True,
        ),
        Chart(
            "learning_curves",
            learning_curves,
            "Test accuracy by epoch and by training second.",
            compares_models=True,
        ),
        Chart(
            "latency_distributions",
            latency_distributions,
            "Batch-1 latency: quartiles, p1-p99 whiskers, outliers.",
            compares_models=True,
        ),
        Chart(
            "roofline",
            roofline,
            "Achieved TFLOP/s against estimated arithmetic intensity (FLOPs over the "
            "parameters read once plus each leaf layer's output written and read once). A red "
            "ring: above the measured ceiling, not an attainable figure.",
            flag_caption=_flag_caption("Hollow markers"),
        ),
        Chart(
            "time_share_by_kind",
            time_share_by_kind,
            "Per model, the share of a training step's time in the modules (forward and "
            "backward self time, profile phase) by layer kind, and below it the share of the "
            "MACs: a kind whose time share is far above its MAC share is memory- or "
            "overhead-bound. Concatenation and residual addition are measured in their blocks; "
            "the static count gives them no MACs.",
        ),
        Chart(
            "layer_mac_rate",
            layer_mac_rate,
            "One profiled model's leaf layers (the one with the most leaf layers with MACs; "
            "the chart's title names it): achieved MAC/s in the inference forward (eval, no "
            "grad; the layer's MACs x batch over its profiled forward time) against its MACs, "
            "by layer kind. Small layers sit low: their time is overhead, not arithmetic.",
        ),
    )
}


def register_chart(chart: Chart) -> Chart:
    """Add ``chart`` to the report, after the charts registered before it; a name taken
    already is refused (``ValueError``). Returns the chart."""
    if chart.name in CHARTS:
        raise ValueError(f"a chart named '{chart.name}' is registered already")
    CHARTS[chart.name] = chart
    return chart


def write_charts(run: Run, out: Path, top: int | None = None) -> dict[str, Path]:
    """Every chart the run has data for, as out/NAME.png and out/NAME.svg (no folder when the
    run has data for none, as a static-only run); ``top``: the charts that compare models
    show the best ``top``."""
    written = {}
    devices = list(dict.fromkeys(run.results["device"]))
    # a run merged across devices: the first device's figures, and the devices compared
    first = run
    if len(devices) > 1:
        rows = run.results[run.results["device"] == devices[0]]
        first = dataclasses.replace(run, results=rows)
    for name, chart in CHARTS.items():
        fig = chart(run if chart.across_devices else first, top=top)
        if fig is not None:
            written[name] = save(fig, out, name)
    return written


def save(fig: Figure, out: Path, name: str) -> Path:
    """``fig`` as out/NAME.png and out/NAME.svg, then closed: the PNG's path."""
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png")
    fig.savefig(out / f"{name}.svg")
    plt.close(fig)
    return out / f"{name}.png"
