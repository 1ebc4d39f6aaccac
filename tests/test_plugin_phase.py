"""A phase defined here, outside bench/, registered as docs/extending.md says: it runs end to
end, resumes, shards and merges, and its rows appear in report.md in a table built from the
schema, with no edit to bench/ or reports/."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from bench import cli
from bench.measure.modes import Mode
from bench.phases import PHASES, register_phase, unregister_phase
from bench.phases.base import PerModePhase, RunConfig, RunContext, model_facts
from reports.cli import main as reports_main
from reports.merge import held_items
from runfolder import schema
from runfolder.reader import load_run
from runfolder.rows import Row, result_row
from runfolder.schema import Metric, register_phase_schema

NAME = "probe"
METRICS = [
    Metric("probe_forward_ms", "ms", "one eval-mode forward pass at batch 1, wall clock"),
    Metric("probe_output_elems", "elements", "elements of the model's output at batch 1"),
]


class ProbePhase(PerModePhase):
    """Times one forward pass of each model in each of the run's modes (eager modes only)."""

    name: ClassVar[str] = NAME
    interrupt_at: ClassVar[str | None] = None  # a model whose measurement is interrupted once
    measured: ClassVar[list[tuple[str, str]]] = []

    def modes(self, cfg: RunConfig) -> list[Mode]:
        return [m for m in cfg.modes if m.compile == "none"]

    def estimate_s(self, entry, ctx: RunContext, peak_tflops: float) -> float:
        return 0.1 * len(self.modes(ctx.cfg))

    def run(self, entry, ctx: RunContext, done: frozenset[tuple]) -> Iterator[list[Row]]:
        for mode in self.modes(ctx.cfg):
            if (entry.name, mode.name) in done:
                ctx.say(f"{NAME} {mode.name}: {ctx.skipped}, skipped")
                continue
            if entry.name == ProbePhase.interrupt_at:
                ProbePhase.interrupt_at = None
                raise KeyboardInterrupt
            model = entry.build(num_classes=ctx.cfg.num_classes, in_channels=ctx.cfg.in_channels)
            h, w = ctx.cfg.input_hw(entry)
            x = torch.randn(1, ctx.cfg.in_channels, h, w)
            with torch.no_grad():
                model.eval()
                t0 = time.perf_counter()
                out = model(x)
                ms = (time.perf_counter() - t0) * 1e3
            facts = model_facts(entry, NAME) | mode.facts()
            method = f"one forward pass, {mode.describe()}, time.perf_counter"
            ProbePhase.measured.append((entry.name, mode.name))
            yield [
                result_row(facts, "probe_forward_ms", ms, method),
                result_row(facts, "probe_output_elems", out.numel(), method),
            ]


@pytest.fixture
def probe():
    """The phase and its metrics registered for one test, and forgotten after it (the
    schema's dicts are restored in place: every module holds the same objects)."""
    saved = dict(schema.METRICS), dict(schema.ITEM_KEYS)
    register_phase_schema(NAME, METRICS, item_keys=("model", "mode"))
    register_phase(ProbePhase())
    ProbePhase.measured = []
    try:
        yield ProbePhase
    finally:
        unregister_phase(NAME)
        for live, before in zip((schema.METRICS, schema.ITEM_KEYS), saved):
            live.clear()
            live.update(before)


ARGS = ["--models", "lenet,small_cnn", "--phases", f"static,{NAME}", "--modes", "fp32,fp32+cl"]


def only_run_dir(out):
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_a_phase_from_outside_runs_and_its_table_is_built_from_the_schema(probe, tmp_path):
    assert cli.main([*ARGS, "--out", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    results = load_run(run_dir).results
    rows = results[(results["phase"] == NAME) & results["metric"].isin(["probe_forward_ms"])]
    assert sorted(zip(rows["model"], rows["mode"])) == [
        ("lenet", "fp32"),
        ("lenet", "fp32+cl"),
        ("small_cnn", "fp32"),
        ("small_cnn", "fp32+cl"),
    ]
    assert set(rows["unit"]) == {"ms"}
    report = (run_dir / "report.md").read_text()
    assert f"## {NAME}" in report.lower() or NAME in report
    assert "probe_forward_ms (ms)" in report and "probe_output_elems (elements)" in report
    assert NAME not in {p for p in ("static", "speed", "ddp", "profile", "accuracy")}


def test_a_phase_from_outside_resumes_where_it_stopped(probe, tmp_path):
    probe.interrupt_at = "small_cnn"
    assert cli.main([*ARGS, "--out", str(tmp_path)]) == 130
    assert probe.measured == [("lenet", "fp32"), ("lenet", "fp32+cl")]
    assert cli.main([*ARGS, "--out", str(tmp_path), "--resume"]) == 0
    assert probe.measured[2:] == [("small_cnn", "fp32"), ("small_cnn", "fp32+cl")]
    items = {i for i in held_items(load_run(only_run_dir(tmp_path)).results) if i[0] == NAME}
    assert len(items) == 4


def test_a_phase_from_outside_shards_and_merges(probe, tmp_path):
    for k in (1, 2):
        assert cli.main([*ARGS, "--shard", f"{k}/2", "--out", str(tmp_path / str(k))]) == 0
    shards = [only_run_dir(tmp_path / str(k)) for k in (1, 2)]
    mine = [{i for i in held_items(load_run(s).results) if i[0] == NAME} for s in shards]
    assert mine[0] and mine[1] and not mine[0] & mine[1]
    merged = tmp_path / "merged"
    assert reports_main(["merge", *map(str, shards), "--out", str(merged)]) == 0
    held = {i for i in held_items(load_run(merged).results) if i[0] == NAME}
    assert held == mine[0] | mine[1] and len(held) == 4
    assert "probe_forward_ms (ms)" in (merged / "report.md").read_text()


def test_registering_refuses_what_would_be_ambiguous(probe):
    with pytest.raises(ValueError, match="registered already"):
        register_phase(type("Other", (PerModePhase,), {"name": NAME})())
    with pytest.raises(ValueError, match="declared already"):
        register_phase_schema("other", [Metric("probe_forward_ms", "s", "clash")])
    with pytest.raises(ValueError, match="suite's own"):
        unregister_phase("speed")
    assert NAME in PHASES


@pytest.mark.slow
def test_an_installed_phase_reaches_the_launched_jobs(tmp_path):
    """A distribution whose ``archbench.phases`` entry point names a module that registers the
    phase: ``--launcher local`` runs it in its jobs' processes too, and merges the shards."""
    (tmp_path / "probe_plugin.py").write_text(
        "from bench.phases import register_phase\n"
        "from runfolder.schema import register_phase_schema\n"
        "from test_plugin_phase import METRICS, NAME, ProbePhase\n\n"
        "register_phase_schema(NAME, METRICS, item_keys=('model', 'mode'))\n"
        "register_phase(ProbePhase())\n"
    )
    info = tmp_path / "probe_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[archbench.phases]\nprobe = probe_plugin\n")
    tests = Path(__file__).resolve().parent
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(tests), str(tests.parent)])
    }
    out = tmp_path / "runs"
    launched = subprocess.run(
        [sys.executable, "-m", "bench", *ARGS, "--launcher", "local", "--shards", "2"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    (merged,) = [p for p in out.iterdir() if p.name != "shards"]
    rows = load_run(merged).results
    rows = rows[rows["metric"] == "probe_forward_ms"]  # this process does not know the phase
    assert sorted(set(zip(rows["model"], rows["mode"]))) == [
        ("lenet", "fp32"),
        ("lenet", "fp32+cl"),
        ("small_cnn", "fp32"),
        ("small_cnn", "fp32+cl"),
    ]
    assert "probe_forward_ms (ms)" in (merged / "report.md").read_text()
