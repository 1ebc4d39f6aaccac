"""Tables, charts and report.md: end to end from a fresh small run (CPU, real data, tiny
budget), and rebuilt from tests/data/cpu_run, a real run of every model committed for them."""

import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from bench import cli
from bench.phases import accuracy as accuracy_phase
from reports import charts
from reports.cli import main as reports_main
from reports.pareto import pareto_front
from reports.report import compare_runs
from reports.tables import speedup_table
from runfolder.reader import load_run
from runfolder.schema import METRICS, RESULT_COLUMNS

SMALL_RUN = [
    "--models",
    "lenet,lenet_bn,small_cnn",
    "--modes",
    "fp32,bf16",
    "--repeats",
    "2",
    "--warmup",
    "0",
    "--budget",
    "epochs=2",
    "--train-limit",
    "2048",
    "--eval-limit",
    "500",
]


CPU_RUN = Path(__file__).parent / "data" / "cpu_run"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert cli.main([*SMALL_RUN, "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """A copy of the committed run, its report rebuilt by ``python -m reports``."""
    copy = tmp_path_factory.mktemp("committed") / "cpu_run"
    shutil.copytree(CPU_RUN, copy)
    assert reports_main([str(copy)]) == 0
    return copy


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


def test_every_chart_is_written_and_readable(small_run):
    for name in charts.CHARTS:
        png, svg = small_run / "charts" / f"{name}.png", small_run / "charts" / f"{name}.svg"
        assert png.is_file() and svg.is_file(), name
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 600 and image.shape[1] >= 900, name
        assert image[..., :3].std() > 0.05, f"{name} looks blank"
        assert "<svg" in svg.read_text()[:500]


def test_report_md_embeds_tables_and_charts(small_run):
    text = (small_run / "report.md").read_text()
    for name in charts.CHARTS:
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
    expected = set(charts.CHARTS) - {"speedup_by_mode"}
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
        {
            "model": "m",
            "family": "f",
            "phase": "speed",
            "mode": mode,
            "batch": 8,
            "metric": "infer_throughput",
            "value": v,
            "unit": "samples/s",
            "method": "",
            "error": "",
        }
        for mode, v in (("fp32", 100.0), ("bf16", 150.0), ("bf16+cl", 80.0))
    ]
    table = speedup_table(pd.DataFrame(rows))
    assert list(table.columns) == ["bf16 / fp32 (x)", "bf16+cl / fp32 (x)"]
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


def test_resume_after_an_interruption(tmp_path, monkeypatch):
    args = [
        "--models",
        "lenet_bn,small_cnn",
        "--phases",
        "static,accuracy",
        "--budget",
        "epochs=1",
        "--train-limit",
        "1024",
        "--eval-limit",
        "200",
        "--out",
        str(tmp_path),
    ]
    real = accuracy_phase.train_model

    def interrupt_small_cnn(entry, *a):
        if entry.name == "small_cnn":
            raise KeyboardInterrupt
        return real(entry, *a)

    monkeypatch.setattr(accuracy_phase, "train_model", interrupt_small_cnn)
    assert cli.main(args) == 130
    monkeypatch.setattr(accuracy_phase, "train_model", real)
    (run_dir,) = tmp_path.iterdir()
    first = pd.read_csv(run_dir / "results.csv")
    assert set(first.loc[first["phase"] == "accuracy", "model"]) == {"lenet_bn"}

    assert cli.main([*args, "--resume"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [run_dir.name]  # the same folder
    after = pd.read_csv(run_dir / "results.csv")
    assert set(after.loc[after["phase"] == "accuracy", "model"]) == {"lenet_bn", "small_cnn"}
    # nothing measured twice
    assert not after.duplicated(["model", "phase", "mode", "batch", "metric"]).any()
    assert load_run(run_dir).provenance["resumed"]
