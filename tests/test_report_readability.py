"""What a new user meets in a CPU run's report: labels beside their own dots, curves one can
tell apart, plain numbers with units, an unwritable run folder, comparisons of unlike runs,
accuracy titled with its budget. On tests/data/cpu_run, a real ``python -m bench`` run (its
run.json holds the command), and small run folders written by RunWriter."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from make_rows import row

from reports import charts, report
from reports.charts import box_distance, label_box
from reports.cli import main as reports_main
from reports.report import build_report
from reports.tables import format_speed_summary, readable, speed_summary
from runfolder.reader import load_run
from runfolder.writer import RunWriter

CPU_RUN = Path(__file__).parent / "data" / "cpu_run"
LABELLED = ("accuracy_vs_gflops", "accuracy_vs_throughput", "throughput_vs_params", "roofline")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A copy of the committed run with its report rebuilt."""
    copy = tmp_path_factory.mktemp("cpu_run") / "cpu_run"
    shutil.copytree(CPU_RUN, copy)
    build_report(copy)
    return copy


def copied(tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(CPU_RUN, tmp_path / name))


def title(fig) -> str:
    """A chart's title: the figure's, else its first axes'."""
    return fig.get_suptitle() or fig.axes[0].get_title()


def test_the_committed_run_is_a_real_run_of_every_model():
    run = load_run(CPU_RUN)
    assert run.provenance["status"] == "complete"
    assert "--models all" in run.provenance["command"]
    assert run.results["model"].nunique() == 16
    assert set(run.results["phase"]) == {"static", "speed", "accuracy"}
    size = sum(f.stat().st_size for f in CPU_RUN.rglob("*") if f.is_file())
    assert size < 1_000_000


# -- 1. labels ---------------------------------------------------------------------------------


def labels_of(ax) -> list:
    """The point labels: annotations that are not flag marks (those carry a gid)."""
    return [t for t in ax.texts if t.get_gid() is None]


def marker_centres(ax) -> np.ndarray:
    """Display coordinates of every scatter marker in the axes."""
    points = [
        c.get_offset_transform().transform(np.asarray(c.get_offsets(), float).reshape(-1, 2))
        for c in ax.collections
        if len(c.get_offsets())
    ]
    return np.concatenate(points) if points else np.empty((0, 2))


def assert_labels_readable(ax) -> None:
    """Each label is nearer its own point than any other marker, or joined to it by a leader
    line; no label overlaps another label, a marker, the legend, the axes' edge or a
    horizontal or vertical line (a Pareto step, a ceiling)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    centres = marker_centres(ax)
    radius = np.sqrt(36.0) / 2 * fig.dpi / 72  # the smallest scatter markers' radius
    boxes = []
    for text in labels_of(ax):
        box = label_box(text, renderer)
        own = ax.transData.transform(text.xy)
        if text.arrow_patch is None:
            others = [p for p in centres if np.hypot(*(p - own)) > 1]
            nearest_other = min(box_distance(box, *p) for p in others)
            assert box_distance(box, *own) < nearest_other, text.get_text()
        for p in centres:  # the label covers no marker's centre region
            assert box_distance(box, *p) > radius / 2, text.get_text()
        axes = ax.get_window_extent(renderer)
        assert axes.contains(box.x0, box.y0) and axes.contains(box.x1, box.y1), text.get_text()
        if ax.get_legend() is not None:
            assert not box.overlaps(ax.get_legend().get_window_extent(renderer)), text.get_text()
        assert not any(box.overlaps(line) for line in charts._line_boxes(ax)), text.get_text()
        boxes.append((text.get_text(), box))
    for i, (name, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1 :]:
            assert not box.overlaps(other_box), (name, other)


@pytest.mark.parametrize("name", LABELLED)
def test_labels_on_the_real_run_are_beside_their_own_points(name):
    run = load_run(CPU_RUN)
    fig = charts.CHARTS[name](run)
    ax = fig.axes[0]
    labels = labels_of(ax)
    assert len(labels) >= 12, name  # a label for (nearly) every model
    assert_labels_readable(ax)
    plt.close(fig)


def test_only_the_scatter_charts_label_points():
    run = load_run(CPU_RUN)
    for name, make in charts.CHARTS.items():
        fig = make(run)
        if fig is not None:
            assert bool(labels_of(fig.axes[0])) == (name in LABELLED), name
            plt.close(fig)


def test_a_label_crowded_out_of_its_point_gets_a_leader_line():
    # a tight cluster: every place beside the middle point is nearer a neighbour
    xs = np.array([0.5, 0.5, 0.5, 0.48, 0.52, 0.0, 1.0])
    ys = np.array([0.5, 0.52, 0.48, 0.5, 0.5, 0.0, 1.0])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter(xs, ys, s=36)
    ax.margins(0.1)
    charts.label_points(ax, xs, ys, [f"model_{i}" for i in range(len(xs))])
    assert_labels_readable(ax)
    leaders = {t.get_text() for t in labels_of(ax) if t.arrow_patch is not None}
    assert "model_0" in leaders and not leaders & {"model_5", "model_6"}
    plt.close(fig)


# -- 2. learning curves ------------------------------------------------------------------------


def test_learning_curves_give_each_model_its_own_colour_and_marker():
    run = load_run(CPU_RUN)
    fig = charts.learning_curves(run)
    families = run.results.groupby("model")["family"].first()
    for ax in fig.axes:
        lines = {
            line.get_label(): line for line in ax.get_lines() if line.get_gid() != charts.NOTE_GID
        }
        assert len(lines) == 16
        styles = {m: (tuple(line.get_color()), line.get_marker()) for m, line in lines.items()}
        assert len(set(styles.values())) == len(styles)
        for family, models in families.groupby(families).groups.items():
            assert len({styles[m][0] for m in models}) == 1, family  # a colour per family
    plt.close(fig)


def write_one_epoch_run(run_dir: Path) -> Path:
    """A default CPU run's accuracy phase: every model stopped by its 10 s within epoch 1."""
    writer = RunWriter(run_dir, {"device_name": "a CPU", "torch": "2.x", "git_commit": "abc"})
    method = (
        "budget seconds=10; 60,000 training images, first 500 test images; fp32; Xavier "
        "init; batch 64, peak lr 0.05; seeds 0"
    )
    rows, curves = [], []
    for model, family, per_s, acc in (
        ("lenet", "lenet", 2000.0, 71.0),
        ("small_cnn", "small_cnn", 900.0, 80.0),
        ("resnet18", "resnet", 40.0, 45.0),
    ):
        for metric, value in (
            ("test_acc", acc),
            ("fit_throughput", per_s),
            ("fit_time", 10.0),
            ("fit_epochs", 1),
        ):
            rows.append(
                row(
                    model,
                    family,
                    "accuracy",
                    metric,
                    value,
                    mode="fp32",
                    batch=64,
                    method=method,
                    budget_unit="seconds",
                    budget=10,
                    train_images=60_000,
                    test_images=500,
                )
            )
        curves.append(
            {
                "model": model,
                "seed": 0,
                "epoch": 1,
                "train_seconds": 10.0,
                "train_loss": 1.0,
                "train_acc": acc,
                "test_acc": acc,
            }
        )
    writer.add(rows)
    writer.add_curves(curves)
    writer.finish("complete")
    return run_dir


def test_a_one_epoch_run_is_drawn_by_examples_seen(tmp_path):
    run = load_run(write_one_epoch_run(tmp_path / "run"))
    fig = charts.learning_curves(run)
    by_examples, by_seconds = fig.axes[:2]
    assert "examples seen" in by_examples.get_xlabel()
    x = {line.get_label(): list(line.get_xdata()) for line in by_examples.get_lines()}
    # each stopped within its epoch: 64 untimed + examples/s x 10 s, not 60,000 (epoch 1)
    assert x == {"lenet": [20_064], "small_cnn": [9_064], "resnet18": [464]}
    lo, hi = by_examples.get_xlim()
    assert lo < 464 and hi > 20_064  # all in view, spread along the axis
    assert all(line.get_marker() not in ("None", "", None) for line in by_seconds.get_lines())
    setting = "budget seconds=10; 60,000 training images, 500 test images"
    assert setting in title(fig)
    plt.close(fig)


def test_many_epochs_are_drawn_by_epoch(tmp_path):
    run_dir = write_one_epoch_run(tmp_path / "run")
    curves = pd.read_csv(run_dir / "curves.csv")
    more = pd.concat([curves.assign(epoch=e, train_seconds=10.0 * e) for e in (1, 2, 3)])
    more.to_csv(run_dir / "curves.csv", index=False)
    fig = charts.learning_curves(load_run(run_dir))
    assert fig.axes[0].get_xlabel() == "epoch"
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [1, 2, 3]
    plt.close(fig)


# -- 3. tables ---------------------------------------------------------------------------------


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of a Markdown table's rows, its header first (alignment line left out)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return [rows[0], *rows[2:]]


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        self._in_cell = tag in ("td", "th")
        if self._in_cell:
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data.strip()


def html_rows(text: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(text.split("</table>")[0])
    return [r for r in parser.rows if any(r)]


def all_tables(built: Path) -> list[Path]:
    return sorted((built / "tables").rglob("*.md"))


def test_markdown_tables_hold_plain_numbers(built):
    tables = all_tables(built)
    assert len(tables) == 4 + 16  # summary, static, speed, accuracy; a layer table per model
    for path in tables:
        text = path.read_text()
        assert not re.search(r"\d[eE][+-]?\d", text), path.name
        assert "nan" not in text.lower().replace("nanoseconds", ""), path.name
    static = {r[0]: r for r in markdown_rows((built / "tables" / "static.md").read_text())}
    assert static["alexnet"][static["model"].index("params (count)")] == "46,764,746"
    assert static["alexnet"][static["model"].index("MACs/sample")] == "938,146,176"


def test_terminal_speed_table_holds_plain_numbers():
    run = load_run(CPU_RUN)
    text = format_speed_summary(speed_summary(run.results, run.provenance["ceilings"]))
    assert not re.search(r"\d[eE][+-]?\d", text)
    cells = [c.rstrip("*h!") for line in text.splitlines()[2:] for c in line.split()[3:]]
    large = [
        c for c in cells if re.fullmatch(r"[\d,]+(\.\d+)?", c) and float(c.replace(",", "")) >= 1e4
    ]
    assert all("," in c for c in large)  # 1,362 rather than 1.36e+03 or 1362
    assert readable(1425.3) == "1,425" and readable(46_764_746.0) == "46,764,746"
    assert readable(0.0000753, digits=3) == "0.0000753" and readable(266.67) == "266.7"


def test_markdown_and_html_tables_show_the_same_cells(built):
    for path in all_tables(built):
        html = path.with_suffix(".html").read_text()
        assert markdown_rows(path.read_text()) == html_rows(html), path.name


def test_every_table_column_is_named_with_its_unit(built):
    counts = {"batch", "epochs", "seeds"}  # headers that are their own unit
    for path in all_tables(built):
        header, *rows = markdown_rows(path.read_text())
        assert all(header), f"{path.name}: an unnamed column"
        for i, name in enumerate(header[1:], 1):
            cells = [r[i].rstrip("*h!") for r in rows if r[i] != "-"]
            numeric = cells and all(re.fullmatch(r"-?[\d,]+(\.\d+)?", c) for c in cells)
            if numeric and name not in counts:
                assert re.search(r"\(.+\)|%|/s|\bs\b|\bms\b|\bMB\b|/sample", name), (path, name)
    layers = markdown_rows((built / "tables" / "layers" / "lenet.md").read_text())[0]
    assert layers == [
        "path",
        "type",
        "depth (nesting level)",
        "output shape (NxCxHxW)",
        "params (count)",
        "MACs/sample",
    ]


def test_speed_table_has_no_unnamed_index(built):
    header, first, *_ = markdown_rows((built / "tables" / "speed.md").read_text())
    assert header[:3] == ["model", "mode", "batch"] and first[0] == "alexnet"


def test_speed_up_rows_read_model_and_batch(tmp_path):
    writer = RunWriter(tmp_path / "run", {"device_name": "a CPU", "torch": "2.x"})
    figures = (
        ("lenet", "fp32", 100.0),
        ("lenet", "bf16", 150.0),
        ("vgg11", "fp32", 10.0),
        ("vgg11", "bf16", 30.0),
    )
    writer.add(
        [
            row(model, "f", "speed", "infer_throughput", value, mode=mode, batch=8)
            for model, mode, value in figures
        ]
    )
    writer.finish("complete")
    build_report(tmp_path / "run")
    rows = markdown_rows((tmp_path / "run" / "tables" / "speedup.md").read_text())
    assert rows == [
        ["model", "bf16 / fp32 (x)"],
        ["lenet, batch 8", "1.5"],
        ["vgg11, batch 8", "3"],
    ]


# -- 4. a run folder that cannot be written ----------------------------------------------------


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(capsys, argv: list[str], folder: Path) -> str:
    before = fingerprint(folder)
    assert reports_main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "--out DIR" in captured.err
    assert fingerprint(folder) == before
    return captured.err


def test_a_run_folder_in_the_way_is_refused_in_one_line(tmp_path, capsys):
    run = copied(tmp_path)
    (run / "tables").write_text("not a folder")
    err = assert_refused(capsys, [str(run)], run)
    assert "tables is in the way" in err


def test_an_unwritable_run_folder_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    run = copied(tmp_path)
    real = report.os.access
    monkeypatch.setattr(report.os, "access", lambda p, mode: Path(p) != run and real(p, mode))
    err = assert_refused(capsys, [str(run)], run)
    assert "not writable" in err


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
    reason="root writes to a read-only folder all the same",
)
def test_a_read_only_run_folder_is_refused_in_one_line(tmp_path, capsys):
    run = copied(tmp_path)
    run.chmod(0o555)
    try:
        assert_refused(capsys, [str(run)], run)
    finally:
        run.chmod(0o755)


def test_a_write_error_midway_is_one_line_too(tmp_path, capsys, monkeypatch):
    run = copied(tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(run / "charts" / "roofline.png"))

    monkeypatch.setattr(report, "write_charts", full_disk)
    assert reports_main([str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "No space left on device" in err
    assert (run / "results.csv").read_bytes() == (CPU_RUN / "results.csv").read_bytes()


@pytest.mark.slow
def test_out_writes_the_report_elsewhere(tmp_path, capsys):
    run = copied(tmp_path)
    before = fingerprint(run)
    out = tmp_path / "elsewhere" / "report"
    assert reports_main([str(run), "--out", str(out)]) == 0
    assert fingerprint(run) == before
    assert (out / "report.md").is_file() and (out / "charts" / "roofline.png").is_file()
    assert (out / "tables" / "layers" / "lenet.md").is_file()
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    err = assert_refused(capsys, [str(run), "--out", str(blocked / "report")], run)
    assert "is a file, not a folder" in err


# -- 5. comparing unlike runs ------------------------------------------------------------------


def test_comparing_a_run_with_itself_warns_of_nothing(capsys):
    assert reports_main(["--compare", str(CPU_RUN), str(CPU_RUN)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.out and captured.err == ""
    assert "test_acc" in captured.out and not re.search(r"\d[eE][+-]?\d", captured.out)


def test_comparing_unlike_runs_warns_once_per_difference(tmp_path, capsys):
    a, b = copied(tmp_path, "a"), copied(tmp_path, "b")
    results = pd.read_csv(b / "results.csv", keep_default_na=False)
    trained = results["phase"] == "accuracy"
    results.loc[trained, ["budget_unit", "budget", "test_images"]] = ["epochs", "5", "10000"]
    results.to_csv(b / "results.csv", index=False)
    provenance = json.loads((b / "run.json").read_text())
    provenance["torch"] = "2.5.0"
    provenance["device_name"] = "another CPU"
    provenance["backends"]["cpu_threads"] = 16
    provenance["ceilings"]["compute"]["fp32"]["tflops"] *= 3
    (b / "run.json").write_text(json.dumps(provenance))

    assert reports_main(["--compare", str(a), str(b)]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 6
    for what in (
        "accuracy budget",
        "images trained and tested on",
        "ceilings",
        "torch version",
        "device",
        "CPU threads",
    ):
        (line,) = [ln for ln in err if f"differ in {what} (" in ln]
        assert line.removeprefix("reports: ") in captured.out.splitlines()
    assert any("budget seconds=2" in ln and "budget epochs=5" in ln for ln in err)
    assert any(" 20 test images" in ln and "10,000 test images" in ln for ln in err)
    assert any("(A: 2; B: 16)" in ln for ln in err)


# -- 6. the accuracy budget in titles ----------------------------------------------------------

SETTING = "budget seconds=2; 8 training images, 20 test images"


def test_accuracy_charts_and_table_name_the_budget_and_test_images(built):
    run = load_run(CPU_RUN)
    for name in ("accuracy_vs_gflops", "accuracy_vs_throughput", "learning_curves"):
        fig = charts.CHARTS[name](run)
        assert SETTING in title(fig), name
        plt.close(fig)
    text = (built / "report.md").read_text()
    assert f"## Accuracy on Fashion-MNIST ({SETTING})" in text


@pytest.mark.slow
def test_a_mixed_run_plots_the_most_common_budget_and_says_so(tmp_path):
    run_dir = copied(tmp_path)
    results = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    other = results["model"].isin(["lenet", "vgg16", "resnet50"])
    trained = other & (results["phase"] == "accuracy")
    results.loc[trained, ["budget_unit", "budget"]] = ["epochs", "5"]
    results.to_csv(run_dir / "results.csv", index=False)
    run = load_run(run_dir)
    for name in ("accuracy_vs_gflops", "accuracy_vs_throughput", "learning_curves"):
        fig = charts.CHARTS[name](run)
        text = title(fig)
        assert SETTING in text and "3 model(s) trained otherwise left out: " in text, name
        ax = fig.axes[0]
        shown = (
            {ln.get_label() for ln in ax.get_lines() if ln.get_gid() != charts.NOTE_GID}
            if name == "learning_curves"
            else {t.get_text() for t in labels_of(ax)}
        )
        assert not shown & {"lenet", "vgg16", "resnet50"}, name
        assert len(shown) == 13, name
        plt.close(fig)
    build_report(run_dir)
    accuracy = (run_dir / "tables" / "accuracy.md").read_text()
    assert "budget; images" in accuracy and "budget epochs=5" in accuracy
    assert "budgets or images differ" in (run_dir / "report.md").read_text()


def test_a_model_not_trained_shows_its_estimate_in_the_accuracy_table():
    from reports.tables import accuracy_summary, format_accuracy_summary

    rows = pd.DataFrame(
        [
            {
                "model": "vgg16",
                "family": "vgg",
                "phase": "accuracy",
                "mode": "fp32",
                "batch": "",
                "metric": "not_trained_estimate",
                "value": 5321.4,
                "unit": "s",
                "method": "not trained: ...",
                "error": "",
            },
            {
                "model": "lenet",
                "family": "lenet",
                "phase": "accuracy",
                "mode": "fp32",
                "batch": 64,
                "metric": "test_acc",
                "value": 71.5,
                "unit": "%",
                "method": "",
                "error": "",
            },
        ]
    )
    text = format_accuracy_summary(accuracy_summary(rows))
    assert "not trained: est. s" in text and "5,321" in text


# -- 6. sixty models from three sources --------------------------------------------------------


def write_sixty_model_run(run_dir: Path) -> Path:
    """60 models from three sources and 20 families, with sizes and speeds spread as a real
    zoo's are (log-uniform), and one mode."""
    rng = np.random.default_rng(0)
    writer = RunWriter(run_dir, {"device_name": "test CPU", "torch": "2"})
    rows = []
    for i in range(60):
        source = ("archbench", "tv", "timm")[i % 3]
        model = f"{'' if source == 'archbench' else source + ':'}net_{i:02d}"
        family = f"family_{i % 20:02d}"
        params = 10 ** rng.uniform(4.5, 8)
        speed = 10 ** rng.uniform(1, 4.5)
        rows += [
            row(model, family, "static", "params", params, source=source),
            row(
                model,
                family,
                "speed",
                "infer_throughput",
                speed,
                mode="fp32",
                batch=8,
                source=source,
            ),
        ]
    writer.add(rows)
    writer.finish("complete")
    return run_dir


def test_sixty_models_from_three_sources_stay_readable(tmp_path):
    """Colour by family, marker by source, both in the legend beside the axes; no two labels
    overlap, and a model whose label found no room is named under the chart."""
    run = load_run(write_sixty_model_run(tmp_path / "run"))
    fig = charts.throughput_vs_params(run)
    ax = fig.axes[0]
    assert_labels_readable(ax)
    labelled = {t.get_text() for t in labels_of(ax)}
    (note,) = [t for t in ax.texts if t.get_gid() == "left-off"] or [None]
    left_off = set(note.get_text().split(": ", 1)[1].split(", ")) if note else set()
    assert labelled | left_off == set(run.results["model"]) and not labelled & left_off
    assert len(labelled) >= 30
    markers = {c.get_paths()[0].vertices.shape for c in ax.collections if len(c.get_offsets())}
    assert len(markers) >= 3  # circle, square, triangle
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"source archbench", "source tv", "source timm"} <= set(legend)
    assert sum(t.startswith("family_") for t in legend) == 20
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # beside the axes, not over the points
    plt.close(fig)


def test_top_n_keeps_the_best_models_of_each_chart(tmp_path, capsys):
    run_dir = write_sixty_model_run(tmp_path / "run")
    run = load_run(run_dir)
    fig = charts.throughput_vs_params(run, top=20)
    ax = fig.axes[0]
    shown = sum(len(c.get_offsets()) for c in ax.collections if c.get_gid() is None)
    speeds = run.results[run.results["metric"] == "infer_throughput"].set_index("model")["value"]
    labelled = {t.get_text() for t in labels_of(ax)}
    assert labelled <= set(speeds.nlargest(20).index) and len(labelled) == 20
    assert shown >= 20 and "top 20 of 60 models by throughput" in title(fig)
    assert_labels_readable(ax)
    plt.close(fig)
    assert reports_main([str(run_dir), "--top", "20"]) == 0
    assert reports_main([str(run_dir), "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err


def test_top_n_learning_curves_keep_the_most_accurate(built):
    run = load_run(built)
    final = run.curves.groupby("model")["test_acc"].last()
    fig = charts.learning_curves(run, top=2)
    drawn = {line.get_label() for line in fig.axes[1].get_lines()}
    assert drawn == set(final.nlargest(2).index)
    assert f"top 2 of {len(final)} models by final test accuracy" in fig._suptitle.get_text()
    plt.close(fig)
