"""The fidelity and baseline scripts run end to end on the CPU (their figures need a GPU)."""

import re

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import archs
from bench.checks import baseline, fidelity
from bench.measure import backends
from bench.measure.backends import BackendState
from bench.training.data import find_data_dir
from bench.training.loader import to_device

CPU = torch.device("cpu")


def test_fidelity_script_compares_three_ways_on_the_cpu(capsys, monkeypatch):
    printed = []  # the rows of the table the script prints, unrounded
    real_tabulate = fidelity.tabulate

    def tabulate(rows, **kwargs):
        printed.extend(rows)
        return real_tabulate(rows, **kwargs)

    monkeypatch.setattr(fidelity, "tabulate", tabulate)
    code = fidelity.main(["--models", "lenet", "--modes", "fp32", "--warmup", "1"])
    out = capsys.readouterr().out
    assert "harness / hand loop" in out and "torch.utils.benchmark" in out
    assert "hand loop ±%" in out and "spread ±%" in out
    (row,) = printed
    assert (row["model"], row["mode"], row["error"]) == ("lenet", "fp32", "")
    (header,) = [line for line in out.splitlines() if line.startswith("model ")]
    (line,) = [line for line in out.splitlines() if line.startswith("lenet ")]
    shown = dict(zip(re.split(r"\s{2,}", header.strip()), re.split(r"\s{2,}", line.strip())))
    ratio, spread = row["harness / hand loop"], row["spread ±%"] / 100
    assert shown["harness / hand loop"] == f"{ratio:,.3f}"
    assert shown["spread ±%"] == f"{100 * spread:,.3f}"

    # exit 1 only outside the measurements' spread (this shared CPU's noise decides which):
    # the harness's ratio to the hand loop further from 1 than 2 x the spread, at least 3%
    within = abs(ratio - 1) <= max(0.03, 2 * spread)
    rule = "within the spread of the hand-written loop (±2 x spread, at least ±3%)"
    assert code == (0 if within else 1), f"ratio {ratio}, spread {spread}: exit {code}"
    assert (f"all 1 {rule}" if within else f"1 of 1 not {rule}") in out


def test_spreads_combine_in_quadrature():
    assert fidelity.rel_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 3)
    assert fidelity.combined_spread(0.03, 0.04) == pytest.approx(0.05)


@pytest.mark.parametrize(
    "ratio, spread, gpu, cpu",
    [
        (1.02, 0.001, True, True),  # within 3% everywhere
        (0.96, 0.001, False, False),  # a quiet machine: 4% is a real difference
        (0.96, 0.04, False, True),  # a noisy CPU: 4% is inside 2 x 4%
        (1.09, 0.04, False, False),  # ... 9% is not
    ],
)
def test_verdicts(ratio, spread, gpu, cpu):
    assert fidelity.gpu_verdict(ratio, tolerance=0.03) is gpu
    assert fidelity.cpu_verdict(ratio, spread, tolerance=0.03) is cpu


def test_the_verdict_follows_the_device(capsys):
    rows = [{"harness / hand loop": 0.95, "spread ±%": 4.0, "error": ""}]
    assert fidelity.verdict(rows, torch.device("cuda"), 0.03) == 1
    assert "1 of 1 not within ±3% of the hand-written loop" in capsys.readouterr().out
    assert fidelity.verdict(rows, CPU, 0.03) == 0
    assert "all 1 within the spread of the hand-written loop" in capsys.readouterr().out
    failed = [*rows, {"model": "lenet", "mode": "fp32", "error": "RuntimeError: boom"}]
    assert fidelity.verdict(failed, CPU, 0.03) == 1
    assert "1 of 2 not within the spread" in capsys.readouterr().out


def test_baseline_script_runs_both_loops_on_the_real_data(capsys):
    code = baseline.main(
        [
            "--models",
            "lenet",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--workers",
            "0",
            "--batch-size",
            "64",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "d2l loop examples/s" in out and "suite / d2l" in out
    assert (
        "each loop 3 timed steps: the d2l loop's after 1 untimed warm-up step, the suite's "
        "after its untimed first step"
    ) in out
    threads = f"{torch.get_num_threads()} CPU threads"
    assert f"d2l loop: fp32 (TF32 off), NCHW, eager, {threads}" in out
    assert f"suite loop: fp32 (TF32 off), NCHW, eager, {threads}" in out
    (row,) = [line.split() for line in out.splitlines() if line.startswith("lenet")]
    assert row[3] == row[5] == "3"  # d2l steps, suite steps


def test_both_baseline_loops_run_exactly_the_steps_asked_under_fp32_switches(fmnist, tmp_path):
    """Optimizer steps counted by a global hook; the backend switches read inside each forward,
    under an inherited state that is all on."""
    steps, switches = [0], set()
    step_hook = register_optimizer_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    forward_hook = torch.nn.modules.module.register_module_forward_hook(
        lambda *_: switches.add(backends.current())
    )
    entry = archs.get_entry("lenet")
    try:
        with backends.applied(BackendState(True, True, True)):
            root = baseline.torchvision_root(find_data_dir(), tmp_path)
            d2l = baseline.d2l_loop(entry, root, CPU, 32, warmup=2, steps=3, workers=0)
            assert (d2l.timed_steps, d2l.untimed_steps, steps[0]) == (3, 2, 5)
            suite = baseline.suite_loop(entry, to_device(fmnist, CPU), CPU, 32, steps=3)
            assert (suite.timed_steps, suite.untimed_steps, steps[0]) == (3, 1, 5 + 4)
    finally:
        step_hook.remove()
        forward_hook.remove()
    assert switches == {BackendState(False, False, False)}
    assert d2l.examples_per_s > 0 and suite.examples_per_s > 0


def test_scripts_refuse_gpu_without_cuda(capsys, monkeypatch):
    """On any machine, a CUDA one included: the device the scripts see is set here. (Small
    runs are asked for, should a script go on regardless.)"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fidelity.main(["--gpu", "--models", "lenet", "--modes", "fp32"]) == 2
    err = capsys.readouterr().err
    assert "fidelity: error: --gpu was given but no CUDA device is visible" in err
    assert baseline.main(["--gpu", "--models", "lenet", "--steps", "1", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "baseline: error: --gpu was given but no CUDA device is visible" in err


def test_scripts_take_gpu_with_cuda(capsys, monkeypatch, tmp_path):
    """With a CUDA device visible, --gpu passes the device check: each script stops at the
    next check instead (an unknown mode; a data folder without the data), before any work."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert fidelity.main(["--gpu", "--modes", "fp33"]) == 2
    err = capsys.readouterr().err
    assert "fidelity: error: mode 'fp33': 'fp33' is unknown" in err and "CUDA" not in err
    assert baseline.main(["--gpu", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"baseline: error: --data-dir {tmp_path} does not hold" in err and "CUDA" not in err
