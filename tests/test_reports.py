"""Tables, charts and report.md, rebuilt from real run folders committed for them
(tests/data/cpu_run: every model; tests/data/two_modes_run: three models in two modes)."""

import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from make_rows import row

from reports import charts
from reports.cli import main as reports_main
from reports.compare import compare_runs
from reports.pareto import pareto_front
from reports.tables import speedup_header, speedup_table
from runfolder.reader import load_run
from runfolder.schema import METRICS, RESULT_COLUMNS

# real runs, committed (each run.json names its command): every model at tiny budgets, and
# three models in two modes trained for two epochs
CPU_RUN = Path(__file__).parent / "data" / "cpu_run"
TWO_MODES_RUN = Path(__file__).parent / "data" / "two_modes_run"


def rebuilt(tmp_path_factory, committed: Path) -> Path:
    """A copy of a committed run folder, its report rebuilt by ``python -m reports``."""
    copy = tmp_path_factory.mktemp("committed") / committed.name
    shutil.copytree(committed, copy)
    assert reports_main([str(copy)]) == 0
    return copy


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    return rebuilt(tmp_path_factory, TWO_MODES_RUN)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    return rebuilt(tmp_path_factory, CPU_RUN)


def test_results_table_schema(small_run):
    csv = pd.read_csv(small_run / "results.csv")
    parquet = pd.read_parquet(small_run / "results.parquet")
    assert tuple(csv.columns) == tuple(parquet.columns) == RESULT_COLUMNS
    assert len(csv) == len(parquet)
    assert set(csv["phase"]) == {"static", "speed", "accuracy"}
    assert set(csv["metric"]) <= set(METRICS)
    assert (csv["unit"].fillna("") == [METRICS[m].unit for m in csv["metric"]]).all()
    assert csv.loc[csv["metric"] != "error", "method"].notna().all()


def test_provenance():
    p = load_run(CPU_RUN).provenance
    for key in (
        "command",
        "argv",
        "git_commit",
        "torch",
        "device_name",
        "host",
        "started",
        "finished",
        "ceilings",
    ):
        assert p.get(key), key
    assert p["status"] == "complete"
    assert p["ceilings"]["compute"]["fp32"]["tflops"] > 0
    assert p["ceilings"]["bandwidth"]["gbs"] > 0


# the committed runs hold no profile phase (tests/test_profile_phase.py checks its charts) and
# one device (tests/test_shards.py checks the devices' chart on a run merged across two)
UNDRAWN_CHARTS = {"time_share_by_kind", "layer_mac_rate", "throughput_by_device"}


def test_every_chart_is_written_and_readable(small_run):
    for name in set(charts.CHARTS) - UNDRAWN_CHARTS:
        png, svg = small_run / "charts" / f"{name}.png", small_run / "charts" / f"{name}.svg"
        assert png.is_file() and svg.is_file(), name
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 600 and image.shape[1] >= 900, name
        assert image[..., :3].std() > 0.05, f"{name} looks blank"
        assert "<svg" in svg.read_text()[:500]


def test_report_md_embeds_tables_and_charts(small_run):
    text = (small_run / "report.md").read_text()
    for name in set(charts.CHARTS) - UNDRAWN_CHARTS:
        assert f"(charts/{name}.png)" in text
    for heading in ("Summary per model", "Speed-up over fp32", "Accuracy on Fashion-MNIST"):
        assert heading in text
    for table in ("summary", "static", "speed", "speedup", "accuracy"):
        assert (small_run / "tables" / f"{table}.md").is_file()
        assert "<table" in (small_run / "tables" / f"{table}.html").read_text()
    assert (small_run / "tables" / "layers" / "lenet.md").is_file()
    summary = (small_run / "tables" / "summary.md").read_text()
    assert (
        "params (M)" in summary
        and "test acc (%)" in summary
        and "infer samples/s [fp32]" in summary
    )


def test_report_rebuilds_without_measuring(cpu_run):
    assert not (CPU_RUN / "report.md").exists()  # the committed folder holds the run alone
    assert (cpu_run / "results.csv").read_bytes() == (CPU_RUN / "results.csv").read_bytes()
    text = (cpu_run / "report.md").read_text()
    # one mode on the CPU: no speed-up over fp32
    expected = set(charts.CHARTS) - {"speedup_by_mode"} - UNDRAWN_CHARTS
    assert {p.stem for p in (cpu_run / "charts").glob("*.png")} == expected
    assert {p.stem for p in (cpu_run / "charts").glob("*.svg")} == expected
    for name in expected:
        assert f"(charts/{name}.png)" in text
    for name in ("summary", "static", "speed", "accuracy"):
        assert (cpu_run / "tables" / f"{name}.md").is_file()
    assert len(list((cpu_run / "tables" / "layers").glob("*.md"))) == 16


def test_charts_of_the_committed_run_are_readable(cpu_run):
    for png in (cpu_run / "charts").glob("*.png"):
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 600 and image.shape[1] >= 900, png.name
        assert image[..., :3].std() > 0.05, f"{png.name} looks blank"


def test_compare_a_run_with_itself():
    table = compare_runs(CPU_RUN, CPU_RUN)
    assert len(table) > 0
    assert set(table["metric"]) >= {"params", "macs", "test_acc", "infer_throughput", "latency_p50"}
    assert np.allclose(table["B / A"], 1.0) and np.allclose(table["B - A"], 0.0)


def test_report_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert reports_main([str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_speedup_table_from_known_figures():
    rows = [
        row("m", "f", "speed", "infer_throughput", v, mode=mode, batch=8)
        for mode, v in (("fp32", 100.0), ("bf16", 150.0), ("bf16+cl", 80.0))
    ]
    table = speedup_table(pd.DataFrame(rows))
    assert list(table.columns) == ["bf16", "bf16+cl"]
    assert [speedup_header(m) for m in table.columns] == ["bf16 / fp32 (x)", "bf16+cl / fp32 (x)"]
    assert table.iloc[0].tolist() == pytest.approx([1.5, 0.8])


@pytest.mark.parametrize(
    "maximize_x, maximize_y, expected",
    [
        (False, True, {"a", "b", "d"}),  # cheap and accurate: accuracy vs GFLOPs
        (True, True, {"d", "e"}),  # fast and accurate: accuracy vs throughput
    ],
)
def test_pareto_front(maximize_x, maximize_y, expected):
    points = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0, 5.0, 2.0, np.nan], "y": [80, 85, 84, 90, 88, 84, 99]},
        index=["a", "b", "c", "d", "e", "f", "g"],
    )
    front = pareto_front(points, "x", "y", maximize_x=maximize_x, maximize_y=maximize_y)
    assert set(front[front].index) == expected  # g has no x: never on the front


def test_pareto_front_keeps_exact_ties():
    points = pd.DataFrame({"x": [1.0, 1.0], "y": [5.0, 5.0]})
    assert pareto_front(points, "x", "y", maximize_x=False, maximize_y=True).all()


def test_labels_do_not_overlap_in_a_crowded_scatter():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    xs, ys = rng.uniform(0, 1, 16), rng.uniform(0, 1, 16)
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=100)
    ax.scatter(xs, ys)
    ax.margins(0.15)
    charts.label_points(ax, xs, ys, [f"model_{i:02d}" for i in range(16)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [charts.label_box(t, renderer) for t in ax.texts]  # leader lines' labels too
    assert len(ax.texts) == 16
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    points = ax.transData.transform(np.c_[xs, ys])
    for text, box, own in zip(ax.texts, boxes, points):
        if text.arrow_patch is None:  # else its leader line shows its point
            distances = [charts.box_distance(box, *p) for p in points]
            assert min(distances) == charts.box_distance(box, *own), text.get_text()
    plt.close(fig)


def test_a_run_folder_of_the_first_layout_is_read(tmp_path):
    """Before the fact columns, ``batch`` held the batch a speed measurement was asked for,
    but 1 on latency rows, measured with the first batch."""
    (tmp_path / "results.csv").write_text(
        "model,family,phase,mode,batch,metric,value,unit,method,error\n"
        "lenet,lenet,static,,,params,61706,parameters,fvcore,\n"
        "lenet,lenet,speed,fp32,8,infer_throughput,900.5,samples/s,timed,\n"
        "lenet,lenet,speed,fp32,1,latency_p50,1.5,ms,timed,\n"
        "lenet,lenet,speed,fp32,16,infer_throughput,990.5,samples/s,timed,\n"
    )
    results = load_run(tmp_path).results
    assert tuple(results.columns) == RESULT_COLUMNS
    speed = results[results["phase"] == "speed"]
    assert list(speed["requested_batch"]) == [8, 8, 16]
    assert results.loc[results["phase"] == "static", "requested_batch"].isna().all()
    assert (results["precision"] == "").all()  # not recorded then: left empty, not guessed
    table = compare_runs(tmp_path, tmp_path)
    assert set(table["metric"]) == {"params", "infer_throughput", "latency_p50"}
