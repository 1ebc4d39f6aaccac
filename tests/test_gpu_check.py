"""The GPU check's parts, verdicts and resume, run end to end on the CPU with a small plan (the
CUDA-only part of it is the device check in ``main``)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench import gpu_check
from bench.training.data import find_data_dir

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parent.parent

SMALL = gpu_check.Plan(
    fidelity_models=("lenet",),
    modes=("fp32",),
    batch=8,
    warmup=1,
    baseline_models=("lenet",),
    baseline_steps=3,
    baseline_warmup=1,
    baseline_workers=0,
    epochs=1,
    goals=(gpu_check.AccuracyGoal("lenet_bn", (0,), 10.0, "a smoke target"),),
    profile_models=("lenet",),
    train_limit=512,
    eval_limit=256,
)


def test_the_default_plan_holds_the_issue_targets():
    plan = gpu_check.Plan.default()
    assert plan.tolerance == 0.03 and plan.min_speedup == 4.5 and plan.epochs == 10
    goals = {g.model: g for g in plan.goals}
    assert goals["resnet18_d2l"].seeds == (0, 1, 2) and goals["resnet18_d2l"].minimum == 94.0
    assert goals["lenet_bn"].minimum == pytest.approx(82.1)  # the seed notes' 10-epoch figures
    assert goals["densenet"].minimum == pytest.approx(88.5)
    assert set(plan.modes) == {"fp32", "bf16", "bf16+cl", "bf16+cl+compile"}


@pytest.mark.slow
def test_every_part_runs_is_judged_and_resumes(tmp_path):
    run_dir = tmp_path / "check"
    run_dir.mkdir()
    info = {"check": "gpu_check"}
    found = gpu_check.check(SMALL, CPU, run_dir, find_data_dir(None), info)
    assert [v.check for v in found] == ["fidelity", "baseline", "accuracy", "profile", "profile"]
    for name in ("fidelity.csv", "baseline.csv", "results.csv", "verdict.md", "run.json"):
        assert (run_dir / name).exists(), name
    baseline = pd.read_csv(run_dir / "baseline.csv")
    assert baseline.loc[0, "d2l steps"] == baseline.loc[0, "suite steps"] == 3
    assert "lenet_bn, 1 epochs" in (run_dir / "verdict.md").read_text()

    before = {n: (run_dir / n).read_text() for n in ("fidelity.csv", "baseline.csv", "results.csv")}
    again = gpu_check.check(SMALL, CPU, run_dir, find_data_dir(None), info)
    assert again == found  # resumed: nothing measured twice, the same verdicts
    assert {n: (run_dir / n).read_text() for n in before} == before


def _folder(tmp_path, fidelity, baseline, accuracy) -> Path:
    pd.DataFrame(fidelity).to_csv(tmp_path / "fidelity.csv", index=False)
    pd.DataFrame(baseline).to_csv(tmp_path / "baseline.csv", index=False)
    return tmp_path


def test_verdicts_hold_each_figure_to_its_target(tmp_path):
    plan = gpu_check.Plan(
        goals=(
            gpu_check.AccuracyGoal("resnet18_d2l", (0, 1, 2), 94.0, "t"),
            gpu_check.AccuracyGoal("densenet", (0,), 88.5, "t"),
        ),
        profile_models=("lenet", "resnet18_d2l"),
    )
    folder = _folder(
        tmp_path,
        [
            {"model": "lenet", "mode": "fp32", "harness / hand loop": 1.02, "error": ""},
            {"model": "lenet", "mode": "bf16", "harness / hand loop": 0.96, "error": ""},
            {
                "model": "lenet",
                "mode": "bf16+cl+compile",
                "harness / hand loop": "",
                "error": "RanEager: ...",
            },
        ],
        [
            {"model": "lenet", "batch": 256, "suite / d2l": 4.6},
            {"model": "resnet18_d2l", "batch": 256, "suite / d2l": 3.1},
        ],
        None,
    )
    results = pd.DataFrame(
        [
            {
                "model": "resnet18_d2l",
                "phase": "accuracy",
                "metric": "test_acc",
                "value": 94.1,
                "error": "",
            },
            {
                "model": "resnet18_d2l",
                "phase": "accuracy",
                "metric": "seeds",
                "value": 3,
                "error": "",
            },
            {
                "model": "densenet",
                "phase": "accuracy",
                "metric": "error",
                "value": None,
                "error": "OutOfMemoryError: ...",
            },
            *(
                {"model": "lenet", "phase": "profile", "metric": m, "value": v, "error": ""}
                for m, v in (("profile_attributed", 108.0), ("profile_split_gap", -12.0))
            ),
        ]
    )
    found = gpu_check.verdicts(plan, folder, results)
    passed = [True, False, False, True, False, True, False, True, False, False, False]
    assert [v.passed for v in found] == passed
    assert [v.measured for v in found[7:9]] == ["1.080", "0.880"]
    assert found[9].measured == "error: not measured"
    assert "error: RanEager" in found[2].measured
    assert "94.10% (mean of 3 seeds)" == found[5].measured


def test_without_cuda_it_exits_2_with_a_message():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")  # then the check would run for minutes
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr
