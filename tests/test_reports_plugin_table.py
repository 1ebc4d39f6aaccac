"""A phase, a chart, a table are plug-ins on the reports' side: a phase the report has no table
of its own for gets one built from the schema; a chart is one record, and one registered from
outside is drawn and captioned like the suite's. Small run folders written by RunWriter."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from reports import charts, reference
from reports.charts import Chart, register_chart
from reports.report import PHASE_TABLES, build_report, other_phases
from reports.summary import console_summary
from reports.tables import metric_header
from runfolder import schema
from runfolder.reader import load_run
from runfolder.rows import error_row, result_row
from runfolder.schema import Metric, register_phase_schema
from runfolder.writer import RunWriter

ROOT = Path(__file__).resolve().parents[1]
ENERGY = [
    Metric("energy_j", "J", "energy of the measured steps, from the RAPL counters"),
    Metric("energy_per_sample", "mJ/sample", "energy_j / samples, in millijoules"),
]
METHOD = {
    "fp32": "RAPL package counters over 20 steps, fp32",
    "bf16": "RAPL package counters over 20 steps, bf16",
}


@pytest.fixture
def energy():
    """The energy phase's schema declared for one test; the schema's dicts restored in place
    after it (every module holds the same objects)."""
    saved = dict(schema.METRICS), dict(schema.ITEM_KEYS)
    register_phase_schema("energy", ENERGY, item_keys=("model", "mode"))
    try:
        yield
    finally:
        for live, before in zip((schema.METRICS, schema.ITEM_KEYS), saved):
            live.clear()
            live.update(before)


@pytest.fixture
def chart_registry():
    """``charts.CHARTS`` restored in place after the test."""
    saved = dict(charts.CHARTS)
    try:
        yield charts.CHARTS
    finally:
        charts.CHARTS.clear()
        charts.CHARTS.update(saved)


def facts(model: str, mode: str) -> dict[str, object]:
    return {"model": model, "family": "f", "phase": "energy", "mode": mode}


def energy_run(run_dir: Path) -> Path:
    """Two models in two modes: lenet measured in both, vgg failed in fp32; peak memory rows
    as every phase writes them."""
    writer = RunWriter(run_dir, {"device_name": "a CPU", "torch": "2.x"})
    rows = [result_row({"model": "lenet", "family": "f", "phase": "static"}, "params", 61706.0)]
    for mode, joules, per_sample in (("fp32", 12345.678, 0.0001234), ("bf16", 3.5, 2.25)):
        rows += [
            result_row(facts("lenet", mode), "energy_j", joules, METHOD[mode]),
            result_row(facts("lenet", mode), "energy_per_sample", per_sample, METHOD[mode]),
        ]
    rows += [
        error_row(facts("vgg", "fp32"), "RuntimeError: no RAPL counters"),
        result_row({"model": "lenet", "family": "f", "phase": "energy"}, "peak_rss", 512.0),
    ]
    writer.add(rows)
    writer.finish("complete")
    return run_dir


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the Markdown table under ``heading`` in report.md (header row first)."""
    section = text.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if "---" not in ln]


def test_a_phase_without_a_table_gets_one_from_the_schema(energy, tmp_path):
    run_dir = energy_run(tmp_path / "run")
    text = build_report(run_dir).read_text()
    header, *rows = table_rows(text, "## energy")
    assert header == [
        "model",
        "mode",
        "energy_j (J)",
        "energy_per_sample (mJ/sample)",
        "error",
    ]
    assert rows == [
        ["lenet", "fp32", "12,346", "0.0001234", ""],
        ["lenet", "bf16", "3.5", "2.25", ""],
        ["vgg", "fp32", "-", "-", "RuntimeError: no RAPL counters"],
    ]
    section = text.split("\n## energy\n", 1)[1].split("\n## ", 1)[0]
    assert "How measured:" in section
    for method in METHOD.values():
        assert f"- `energy_j`, `energy_per_sample`: {method}" in section
    assert "peak_rss" not in section and "512" not in section  # memory has its own table
    assert "energy peak MB" in text
    tables = run_dir / "tables"
    assert "energy_j (J)" in (tables / "energy.md").read_text()
    html = (tables / "energy.html").read_text()
    assert "<th>energy_j (J)</th>" in html and "<code>energy_j</code>" in html


def test_no_error_column_when_no_item_failed(energy, tmp_path):
    writer = RunWriter(tmp_path / "run", {"device_name": "a CPU"})
    writer.add([result_row(facts("lenet", "fp32"), "energy_j", 2.0, METHOD["fp32"])])
    writer.finish("complete")
    text = build_report(tmp_path / "run").read_text()
    header, *rows = table_rows(text, "## energy")
    assert header == ["model", "mode", "energy_j (J)"] and rows == [["lenet", "fp32", "2"]]


def test_a_phase_not_declared_when_reporting_takes_units_and_items_from_its_rows(energy, tmp_path):
    run_dir = energy_run(tmp_path / "run")
    schema.METRICS.pop("energy_j"), schema.METRICS.pop("energy_per_sample")
    schema.ITEM_KEYS.pop("energy")  # as in a fresh process that never imported the phase
    header, *rows = table_rows(build_report(run_dir).read_text(), "## energy")
    assert header[:4] == ["model", "mode", "energy_j (J)", "energy_per_sample (mJ/sample)"]
    assert [r[:2] for r in rows] == [["lenet", "fp32"], ["lenet", "bf16"], ["vgg", "fp32"]]


def test_the_suites_phases_have_tables_of_their_own():
    assert set(PHASE_TABLES) == {"static", "speed", "ddp", "profile", "accuracy"}
    for run in ("cpu_run", "two_modes_run"):
        assert other_phases(load_run(ROOT / "tests" / "data" / run).results) == []


def test_a_phases_errors_count_as_failures_in_the_console_summary(energy, tmp_path):
    run = load_run(energy_run(tmp_path / "run"))
    assert console_summary(run)[1] == ["vgg"]


def test_headers_take_their_unit_from_the_schema(energy, monkeypatch):
    assert metric_header("energy_j") == "energy_j (J)"
    assert metric_header("latency_p50", "p50 {unit}") == "p50 ms"
    assert metric_header("error") == "error"  # no unit
    assert metric_header("not_declared", unit="W") == "not_declared (W)"
    monkeypatch.setitem(schema.METRICS, "energy_j", Metric("energy_j", "kJ", "", "energy"))
    assert metric_header("energy_j") == "energy_j (kJ)"


def test_the_reference_lists_a_declared_phase_before_the_metrics_of_every_phase(energy):
    text = reference.metrics_markdown()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["static", "speed", "ddp", "profile", "accuracy", "energy", "every phase"]
    assert "One item per `model`, `mode` (`ITEM_KEYS`)." in text
    assert "| `energy_per_sample` | mJ/sample |" in text
    assert reference.group_of("energy_j") == "energy"
    assert reference.group_of("peak_rss") == reference.EVERY_PHASE


# -- charts -------------------------------------------------------------------------------------


def energy_chart(run, top=None):
    rows = run.results[run.results["metric"] == "energy_j"]
    if rows.empty:
        return None
    energy_chart.tops.append(top)
    fig, ax = plt.subplots()
    ax.bar(range(len(rows)), rows["value"])
    return fig


energy_chart.tops = []


def test_a_chart_registered_from_outside_is_drawn_and_captioned(energy, chart_registry, tmp_path):
    energy_chart.tops.clear()
    chart = Chart(
        "energy_by_model", energy_chart, "Energy per model and mode.", compares_models=True
    )
    assert register_chart(chart) is chart
    assert list(chart_registry)[-1] == "energy_by_model"  # after the suite's own
    run_dir = energy_run(tmp_path / "run")
    text = build_report(run_dir, top=1).read_text()
    assert (run_dir / "charts" / "energy_by_model.png").is_file()
    assert (run_dir / "charts" / "energy_by_model.svg").is_file()
    assert "![energy_by_model](charts/energy_by_model.png)\n\nEnergy per model and mode." in text
    assert energy_chart.tops == [1]  # it compares models: --top reaches it


def test_a_chart_that_compares_no_models_is_drawn_without_top(energy, chart_registry, tmp_path):
    energy_chart.tops.clear()
    register_chart(Chart("energy_once", lambda run: energy_chart(run), "Once.", flag_caption="F."))
    text = build_report(energy_run(tmp_path / "run"), top=2).read_text()
    assert energy_chart.tops == [None]
    assert "(charts/energy_once.png)\n\nOnce. F." in text


def test_registering_a_chart_name_taken_is_refused(chart_registry):
    before = dict(chart_registry)
    with pytest.raises(ValueError, match="registered already"):
        register_chart(Chart("roofline", energy_chart, "another roofline"))
    assert chart_registry == before


def test_every_chart_is_one_record():
    for name, chart in charts.CHARTS.items():
        assert isinstance(chart, Chart) and chart.name == name and chart.caption, name
    flagged = {n for n, c in charts.CHARTS.items() if c.flag_caption}
    assert flagged == {
        "accuracy_vs_throughput",
        "throughput_vs_params",
        "speedup_by_mode",
        "roofline",
    }
    assert [n for n, c in charts.CHARTS.items() if c.across_devices] == ["throughput_by_device"]
