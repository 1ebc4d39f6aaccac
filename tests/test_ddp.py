"""The ddp phase on the CPU: two gloo processes started by torchrun, end to end."""

import pytest

from bench import cli
from runfolder.reader import load_run
from runfolder.schema import ERROR_METRIC


def only_run_dir(out):
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_two_gloo_processes_train_lenet(tmp_path, capsys):
    args = ["--models", "lenet", "--phases", "ddp", "--batch-sizes", "16", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    assert "ddp fp32 b16/process: 2 processes" in capsys.readouterr().err
    run = load_run(only_run_dir(tmp_path))
    rows = run.results[run.results["phase"] == "ddp"].set_index("metric")
    figures = rows["value"]
    assert figures["ddp_processes"] == 2
    assert figures["ddp_throughput"] == pytest.approx(2 * figures["ddp_throughput_per_process"])
    expected = 100 * figures["ddp_throughput"] / (2 * figures["ddp_single_throughput"])
    assert figures["ddp_scaling_efficiency"] == pytest.approx(expected)
    assert 0 < figures["ddp_scaling_efficiency"] < 200
    assert "DistributedDataParallel (gloo) over 2 processes" in rows.loc["ddp_throughput", "method"]
    report = (only_run_dir(tmp_path) / "report.md").read_text()
    assert "## Data-parallel training" in report


def test_a_model_that_fails_under_ddp_is_its_error_row(tmp_path):
    """LeNet's fixed flatten at 40x40 fails in the worker: an error row, the other model runs."""
    args = [
        *("--models", "lenet,tv:squeezenet1_1", "--phases", "ddp", "--input-size", "40"),
        *("--batch-sizes", "4", "--ddp-processes", "2", "--out", str(tmp_path)),
    ]
    assert cli.main(args) == 1
    results = load_run(only_run_dir(tmp_path)).results
    errors = results[results["metric"] == ERROR_METRIC]
    assert list(errors["model"]) == ["lenet"]
    assert (
        "torchrun with 1 processes failed: RuntimeError: mat1 and mat2" in errors["error"].iloc[0]
    )
    squeezenet = results[results["model"] == "tv:squeezenet1_1"]
    assert (squeezenet["metric"] != ERROR_METRIC).all() and len(squeezenet) > 0


def test_ddp_processes_must_be_positive(capsys):
    assert cli.main(["--models", "lenet", "--phases", "ddp", "--ddp-processes", "0"]) == 2
    assert "--ddp-processes must be at least 1" in capsys.readouterr().err
