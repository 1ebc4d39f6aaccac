"""Compiled modes checked against eager (bench.measure.agreement), and the pure bf16/fp16
precisions."""

import pytest
import torch
from torch import nn

import archs
from bench import cli
from bench.measure import agreement, compiled
from bench.measure.modes import ModeError, parse_mode
from bench.measure.throughput import SpeedConfig, measure_speed
from reports import charts
from reports.tables import figure_flags, speed_marks, speed_summary
from runfolder.reader import load_run

CPU = torch.device("cpu")
LENET = archs.get_entry("lenet")


def only_run_dir(out):
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_pure_precisions_parse_and_cast():
    mode = parse_mode("bf16-true+cl+compile")
    assert mode.name == "bf16-true+cl+compile" and mode.arithmetic == "bf16"
    assert mode.autocast_dtype is None and mode.cast_dtype == torch.bfloat16
    assert parse_mode("bf16-mixed") == parse_mode("amp") == parse_mode("bf16")
    assert parse_mode("fp16-mixed").name == "fp16"
    model = parse_mode("fp16-true").place(nn.Conv2d(1, 2, 3), CPU)
    assert model.weight.dtype == torch.float16
    x = parse_mode("bf16-true+cl").inputs(torch.randn(2, 3, 4, 4))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last)
    assert "model cast, no autocast" in parse_mode("bf16-true").describe()
    with pytest.raises(ModeError, match="bf16-true, fp16-true"):
        parse_mode("cl")


def test_a_bf16_model_is_measured_in_bf16():
    cfg = SpeedConfig(4, repeats=2, warmup=1, min_block_s=0.0, latency_samples=2)
    result = measure_speed(LENET, parse_mode("bf16-true"), CPU, cfg, (28, 28))
    assert not result.errors
    assert {m.kind for m in result.measurements} == {"infer", "latency", "train"}


@pytest.mark.slow
def test_compiled_lenet_agrees_with_eager():
    a = agreement.compare_compiled(LENET, parse_mode("fp32+compile"), CPU, (1, 28, 28), 8, 10)
    assert not a.infer_mismatch and not a.train_mismatch
    # fp32 against fp64: rounding only
    assert a.infer_eager < 1e-5 and a.infer_compiled < 1e-5 and a.train_compiled < 1e-5
    half = agreement.compare_compiled(LENET, parse_mode("bf16+compile"), CPU, (1, 28, 28), 8, 10)
    assert not half.infer_mismatch and not half.train_mismatch
    assert 1e-4 < half.infer_eager < 3e-2  # bf16 keeps 8 bits: its own error is not the compiler's


class _Skewed(nn.Module):
    """What a wrong compiler would produce: the model's logits off by 2%."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) * 1.02


@pytest.mark.slow
def test_a_compiled_model_that_computes_something_else_is_a_mismatch(monkeypatch):
    real = compiled.compile_model
    monkeypatch.setattr(compiled, "compile_model", lambda m, mode: real(_Skewed(m), mode))
    a = agreement.compare_compiled(LENET, parse_mode("fp32+compile"), CPU, (1, 28, 28), 8, 10)
    assert a.infer_mismatch and a.train_mismatch
    assert a.infer_compiled == pytest.approx(0.02, rel=1e-3)


def test_agreement_rule():
    a = agreement.Agreement(1e-3, 2e-3, 1e-3, float("nan"), floor=1e-4)
    assert a.agrees(2.1e-3, 1e-3) and not a.agrees(2.2e-3, 1e-3)
    assert not a.infer_mismatch and a.train_mismatch  # NaN never agrees


def test_eager_modes_have_nothing_to_compare():
    with pytest.raises(ValueError, match="eager"):
        agreement.compare_compiled(LENET, parse_mode("fp32"), CPU, (1, 28, 28), 8, 10)


@pytest.mark.slow
def test_speed_phase_checks_compiled_modes_and_flags_a_mismatch(tmp_path, monkeypatch, capsys):
    """The check's rows beside the compiled figures; a mismatch marks the throughput in the
    speed table and crosses its bar in the speed-up chart."""
    real = compiled.compile_model
    monkeypatch.setattr(compiled, "compile_model", lambda m, mode: real(_Skewed(m), mode))
    args = [
        *("--models", "lenet", "--phases", "speed", "--modes", "fp32,fp32+compile"),
        *("--batch-sizes", "8", "--repeats", "2", "--warmup", "1", "--out", str(tmp_path)),
    ]
    assert cli.main(args) == 0
    assert "compiled vs eager (fp64 reference): logits MISMATCH" in capsys.readouterr().err
    run = load_run(only_run_dir(tmp_path))
    rows = run.results.set_index(["mode", "metric"])["value"]
    assert rows[("fp32+compile", "infer_compiled_mismatch")] == 1
    assert rows[("fp32+compile", "infer_compiled_error")] == pytest.approx(2.0, rel=1e-2)
    assert ("fp32", "infer_compiled_mismatch") not in rows.index
    flags = figure_flags(run.results)
    assert flags.loc[("lenet", "fp32+compile", 8), "infer_compiled_mismatch"]
    assert not flags.loc[("lenet", "fp32", 8), "infer_compiled_mismatch"]
    table = speed_summary(run.results)
    assert table.loc[("lenet", "fp32+compile", 8), "differs from eager"] == "infer,train"
    assert "x" in speed_marks(table).loc[("lenet", "fp32+compile", 8)].to_numpy().sum()
    fig = charts.speedup_by_mode(run)
    assert [a.get_gid() for a in fig.axes[0].lines].count("compiled-mismatch") == 1
    assert any("differs from eager" in t.get_text() for t in fig.axes[0].get_legend().texts)
