"""Flagged speed figures (noisy, host-bound, above the measured ceiling) marked in the tables
and charts. Small synthetic run folders, written by RunWriter."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from make_rows import row

from reports import charts
from reports.report import build_report
from reports.tables import figure_flags, format_speed_summary, speed_summary
from runfolder.reader import load_run
from runfolder.writer import RunWriter

# the facts of a one-epoch accuracy figure
ONE_EPOCH = dict(budget_unit="epochs", budget=1, train_images=60_000, test_images=10_000)


def measured(tflops: float, n: int) -> dict[str, object]:
    return {"tflops": tflops, "source": "fastest of 10 blocks of a matmul", "measurements": n}


CEILINGS = {
    "compute": {"fp32": measured(1.0, 2), "bf16": measured(2.0, 2)},
    "bandwidth": {"gbs": 100.0, "source": "a 256 MB copy"},
}
# model: (GFLOPs/sample, {mode: (infer samples/s, infer_noisy, infer_host_bound)})
MODELS = {
    "steady": (1.0, {"fp32": (50, 0, 0), "bf16": (100, 0, 0)}),
    "jumpy": (2.0, {"fp32": (40, 0, 0), "bf16": (150, 1, 0)}),
    "tiny": (0.1, {"fp32": (900, 0, 0), "bf16": (1000, 0, 1)}),
    "overcounted": (4.0, {"fp32": (60, 0, 0), "bf16": (1000, 0, 0)}),  # 4 TFLOP/s > 2 in bf16
    "startlow": (1.0, {"fp32": (50, 0, 0), "bf16": (1800, 0, 0)}),  # 1.8 TFLOP/s: MFU 120%
}
START_PEAK = 1.5  # TFLOP/s the MFU rows divide by, as the start of the run measured bf16


def write_run(run_dir: Path, models: dict = MODELS) -> Path:
    writer = RunWriter(
        run_dir, {"device_name": "a CPU", "torch": "2.x", "git_commit": "abc", "ceilings": CEILINGS}
    )
    rows = []
    for i, (model, (gflops, speeds)) in enumerate(models.items()):
        family = f"family{i}"
        for metric, value in (
            ("params", 10 ** (5 + i)),
            ("flops", gflops * 1e9),
            ("activation_elems", 1e5),
        ):
            rows.append(row(model, family, "static", metric, value))
        rows.append(row(model, family, "accuracy", "test_acc", 90.0 + i, method="e=1", **ONE_EPOCH))
        for mode, (per_s, noisy, host) in speeds.items():
            tflops = per_s * gflops / 1e3
            peak = START_PEAK if mode == "bf16" else 1.0
            for metric, value in (
                ("infer_throughput", per_s),
                ("infer_rel_iqr", 9.0 * noisy),
                ("infer_noisy", noisy),
                ("infer_host_bound", host),
                ("infer_tflops", tflops),
                ("infer_mfu", 100 * tflops / peak),
                ("train_throughput", per_s / 4),
                ("train_noisy", 0),
            ):
                rows.append(row(model, family, "speed", metric, value, mode=mode, batch=8))
    writer.add(rows)
    writer.finish("complete")
    return run_dir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return load_run(write_run(tmp_path_factory.mktemp("flags")))


@pytest.fixture(scope="module")
def steady_run(tmp_path_factory):
    models = {
        m: (g, {mode: (v, 0, 0) for mode, (v, _, _) in s.items()})
        for m, (g, s) in MODELS.items()
        if m not in ("overcounted", "startlow")
    }
    return load_run(write_run(tmp_path_factory.mktemp("steady"), models))


def cell(text: str, model: str, mode: str, column: int) -> str:
    """The terminal table's cell: the ``column``-th field of the model and mode's line."""
    (line,) = [ln for ln in text.splitlines() if ln.split()[:2] == [model, mode]]
    return line.split()[column]


# -- tables -----------------------------------------------------------------------------------


def test_flags_per_figure(run):
    flags = figure_flags(run.results, CEILINGS)
    assert flags.loc[("jumpy", "bf16", 8), "infer_noisy"]
    assert flags.loc[("tiny", "bf16", 8), "infer_host_bound"]
    over = flags.loc[("overcounted", "bf16", 8)]
    assert over["infer_above_ceiling"] and over["infer_mfu_over_100"]
    # above the peak its MFU divides by (the start's, 1.5), under the final ceiling (2.0)
    assert flags.loc[("startlow", "bf16", 8), "infer_mfu_over_100"]
    assert not flags.loc[("startlow", "bf16", 8), "infer_above_ceiling"]
    assert flags.to_numpy().sum() == 5  # nothing else


def test_above_the_ceiling_needs_the_ceilings_or_an_mfu_over_100(run):
    r = run.results
    without_mfu = r[r["metric"] != "infer_mfu"]
    above = ("overcounted", "bf16", 8), "infer_above_ceiling"
    assert figure_flags(without_mfu, CEILINGS).loc[above]
    assert not figure_flags(without_mfu)["infer_above_ceiling"].any()
    # MFU against the start's peak: 4 / 1.5 = 267%, flagged with no ceilings at hand
    assert figure_flags(r).loc[above]


def test_terminal_speed_table_marks_each_flag(run):
    text = format_speed_summary(speed_summary(run.results, CEILINGS))
    # model mode batch infer/s ±% train/s infer TFLOP/s infer MFU%
    assert cell(text, "jumpy", "bf16", 3) == "150*"
    assert cell(text, "tiny", "bf16", 3) == "1,000h"
    assert cell(text, "tiny", "bf16", 6) == "0.1h"
    assert cell(text, "tiny", "bf16", 7) == "6.67h"
    assert cell(text, "overcounted", "bf16", 6) == "4!"
    assert cell(text, "overcounted", "bf16", 7) == "267!"
    assert cell(text, "overcounted", "bf16", 3) == "1,000"  # a throughput is not above a ceiling
    assert cell(text, "startlow", "bf16", 6) == "1.8"  # under the final ceiling
    assert cell(text, "startlow", "bf16", 7) == "120!"  # over the peak it divides by
    assert cell(text, "steady", "bf16", 3) == "100"
    assert cell(text, "steady", "fp32", 7) == "5"
    for note in (
        "* noisy: IQR/median > 5%",
        "h host-bound: Python dispatch, MFU describes the CPU",
        "! above the measured ceiling",
    ):
        assert note in text


def test_unflagged_tables_carry_no_marks(steady_run):
    table = speed_summary(steady_run.results, CEILINGS)
    assert (table[["noisy", "host-bound", "above ceiling", "MFU > 100%"]] == "").all().all()
    text = format_speed_summary(table)
    assert not any(m in text for m in ("*", "!", "host-bound"))
    assert cell(text, "tiny", "bf16", 3) == "1,000"


def test_report_tables_mark_flags_with_footnotes(run):
    build_report(run.path)
    tables = run.path / "tables"
    speed = (tables / "speed.md").read_text()
    rows = {
        line.split("|")[1].strip() + " " + line.split("|")[2].strip(): line
        for line in speed.splitlines()
        if line.count("|") > 5
    }
    assert "150*" in rows["jumpy bf16"] and "1,000h" in rows["tiny bf16"]
    assert "4!" in rows["overcounted bf16"] and "266.7!" in rows["overcounted bf16"]
    assert not any(m in rows["steady bf16"] for m in "*h!")
    assert "- `!` above the measured ceiling" in speed and "- `*` noisy" in speed
    summary = (tables / "summary.md").read_text()
    assert "266.7!" in summary and "150*" in summary and "1,000h" in summary
    speedup = (tables / "speedup.md").read_text()
    assert "3.75*" in speedup and "- `h` host-bound" in speedup
    html = (tables / "speed.html").read_text()
    assert "<td>4!</td>" in html and "<code>!</code> above the measured ceiling" in html
    report = (run.path / "report.md").read_text()
    assert "150*" in report and "ceilings (roofline, '!' marks)" in report
    assert "best of 2 measurements" in report
    assert "Hollow markers: noisy" in report and "A red ring: above the measured ceiling" in report
    roofline = plt.imread(run.path / "charts" / "roofline.png")
    assert np.asarray(roofline)[..., :3].std() > 0.05


# -- charts -----------------------------------------------------------------------------------


def gid_points(ax, gid: str) -> set[tuple[float, float]]:
    """Data coordinates of the points that the artists tagged ``gid`` mark."""
    points = set()
    for artist in [*ax.collections, *ax.texts]:
        if artist.get_gid() != gid:
            continue
        xy = artist.get_offsets() if hasattr(artist, "get_offsets") else [artist.xy]
        points |= {(round(float(x), 6), round(float(y), 6)) for x, y in xy}
    return points


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_roofline_flags_a_point_above_its_ceiling(run):
    fig = charts.roofline(run)
    ax = fig.axes[0]
    # intensity of "overcounted" at batch 8, bf16: FLOPs x 8 / (4 x params + 2 x 2 x 8 x acts)
    x = round(4e9 * 8 / (4 * 1e8 + 2 * 2 * 8 * 1e5), 6)
    assert gid_points(ax, "above-ceiling") == {(x, 4.0)}
    assert any(t.startswith("above the measured ceiling") for t in legend_texts(ax))
    ring = next(c for c in ax.collections if c.get_gid() == "above-ceiling")
    assert ring.get_edgecolor()[0][:3] == pytest.approx((1, 0, 0))  # red
    assert ax.get_ylim()[1] > 4.0  # in view, above the 2 TFLOP/s ceiling
    assert any("overcounted" in t.get_text() for t in ax.texts if t.get_gid() is None)
    assert len(gid_points(ax, "noisy")) == 1 and len(gid_points(ax, "host-bound")) == 1
    assert any(t.startswith("noisy: IQR/median > 5%") for t in legend_texts(ax))
    assert any(t.startswith("host-bound: Python dispatch") for t in legend_texts(ax))
    plt.close(fig)


def test_throughput_chart_marks_noisy_and_host_bound(run):
    fig = charts.throughput_vs_params(run)
    ax = fig.axes[0]
    assert gid_points(ax, "noisy") == {(1.0, 150.0)}  # jumpy: 10^6 params, bf16
    assert gid_points(ax, "host-bound") == {(10.0, 1000.0)}  # tiny: 10^7 params
    noisy = next(c for c in ax.collections if c.get_gid() == "noisy")
    assert len(noisy.get_facecolors()) == 0 or noisy.get_facecolors()[0][3] == 0  # hollow
    texts = legend_texts(ax)
    assert "noisy: IQR/median > 5%" in texts
    assert "host-bound: Python dispatch, MFU describes the CPU" in texts
    assert "above-ceiling" not in {c.get_gid() for c in ax.collections}
    plt.close(fig)


def test_speedup_chart_hatches_noisy_bars(run):
    fig = charts.speedup_by_mode(run)
    ax = fig.axes[0]
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert [round(p.get_height(), 6) for p in hatched] == [3.75]  # jumpy: 150 / 40
    assert [t.get_text() for t in ax.texts if t.get_gid() == "host-bound"] == ["h"]
    assert any(t.startswith("noisy: IQR/median > 5%") for t in legend_texts(ax))
    plt.close(fig)


@pytest.mark.parametrize(
    "name", ["roofline", "throughput_vs_params", "accuracy_vs_throughput", "speedup_by_mode"]
)
def test_charts_of_a_steady_run_carry_no_flags(steady_run, name):
    fig = charts.CHARTS[name](steady_run)
    ax = fig.axes[0]
    assert not [a for a in [*ax.collections, *ax.texts, *ax.patches] if a.get_gid()]
    assert not any(p.get_hatch() for p in ax.patches)
    assert not any(t.startswith(("noisy", "host-bound", "above")) for t in legend_texts(ax))
    plt.close(fig)
