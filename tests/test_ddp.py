"""Training across processes on the CPU: the ddp phase and the accuracy phase's training, two
gloo processes started by torchrun, end to end."""

import pandas as pd
import pytest
import torch

from bench import cli
from bench.training.data import load_fashion_mnist
from bench.training.process_group import TrainingGroup
from runfolder.reader import load_run
from runfolder.schema import ERROR_METRIC


def only_run_dir(out):
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_two_gloo_processes_train_lenet_bn_on_fashion_mnist(tmp_path, capsys):
    """The accuracy phase over 2 processes: each trains on its half of every batch and
    evaluates its share of the test set, so the confusion matrix counts every test image
    once; the one-process training beside it gives the scaling efficiency."""
    args = [
        *("--models", "lenet_bn", "--phases", "accuracy", "--accuracy-processes", "2"),
        *("--budget", "steps=40", "--train-limit", "640", "--eval-limit", "301"),
        *("--out", str(tmp_path)),
    ]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "accuracy: training with 2 processes" in err
    assert "accuracy: training with 1 process" in err
    assert "seed 0 epoch 1, step 40/40" in err  # the group's progress, from process 0
    run_dir = only_run_dir(tmp_path)
    run = load_run(run_dir)
    rows = run.results[run.results["phase"] == "accuracy"].set_index("metric")
    figures = rows["value"]
    assert figures["ddp_processes"] == 2
    assert figures["ddp_throughput"] == pytest.approx(figures["fit_throughput"])
    expected = 100 * figures["fit_throughput"] / (2 * figures["ddp_single_throughput"])
    assert figures["ddp_scaling_efficiency"] == pytest.approx(expected)
    assert 0 <= figures["ddp_single_test_acc"] <= 100 and 0 <= figures["test_acc"] <= 100
    method = rows.loc["test_acc", "method"]
    assert "DistributedDataParallel (gloo) over 2 processes" in method
    assert "1 CPU threads" in method  # the processes' threads, not the parent's
    confusion = pd.read_csv(run_dir / "confusion" / "lenet_bn.csv", index_col=0)
    test_labels = load_fashion_mnist().test_labels[:301]
    assert confusion.to_numpy().sum() == 301
    assert list(confusion.sum(axis=1)) == torch.bincount(test_labels, minlength=10).tolist()
    assert "Fashion-MNIST accuracy training (batch split)" in (run_dir / "report.md").read_text()


@pytest.mark.slow
def test_a_group_over_the_cap_is_not_trained_by_any_process(tmp_path):
    """The cap's estimate is the group's largest, so every process stops alike (none is left
    waiting in an all-reduce) and the model's row says it was not trained."""
    args = [
        *("--models", "lenet", "--phases", "accuracy", "--accuracy-processes", "2"),
        *("--budget", "steps=100000", "--train-limit", "640", "--eval-limit", "100"),
        *("--accuracy-cap", "1", "--out", str(tmp_path)),
    ]
    assert cli.main(args) == 0
    results = load_run(only_run_dir(tmp_path)).results
    assert list(results.loc[results["phase"] == "accuracy", "metric"].drop_duplicates()) == [
        "not_trained_estimate",
        "peak_rss",
        "peak_rss_added",
    ]


def test_a_batch_is_split_into_consecutive_shares():
    idx = torch.arange(17)
    shares = [TrainingGroup(rank, 3, True).part(idx) for rank in range(3)]
    assert [len(s) for s in shares] == [6, 6, 5]
    assert torch.equal(torch.cat(shares), idx)
    assert torch.equal(TrainingGroup().part(idx), idx)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--phases", "accuracy", "--accuracy-processes", "0"], "at least 1"),
        (["--phases", "static", "--accuracy-processes", "2"], "add accuracy to --phases"),
    ],
)
def test_accuracy_processes_are_checked(extra, message, capsys):
    assert cli.main(["--models", "lenet", *extra]) == 2
    assert message in capsys.readouterr().err


def test_the_data_parallel_table_holds_the_scaled_figures_only():
    """A model trained by a group sits beside the ddp phase's rows, with its test accuracy;
    its seed note's figure (another batch) and a model trained by one process are not rows."""
    from make_rows import row

    from reports.tables import ddp_summary
    from runfolder.rows import error_row

    group = {"mode": "fp32", "batch": 16}
    results = pd.DataFrame(
        [
            row("lenet_bn", "lenet", "accuracy", "test_acc", 70.0, **group),
            row("lenet_bn", "lenet", "accuracy", "note_test_acc", 82.1, mode="fp32", batch=256),
            row("lenet_bn", "lenet", "accuracy", "ddp_processes", 2, **group),
            row("lenet_bn", "lenet", "accuracy", "ddp_throughput", 100.0, **group),
            row("lenet_bn", "lenet", "accuracy", "ddp_single_test_acc", 71.0, **group),
            row("lenet", "lenet", "accuracy", "test_acc", 50.0, **group),
            error_row(
                {"model": "x", "family": "f", "phase": "ddp", "mode": "fp32", "batch": 4}, "boom"
            ),
        ]
    )
    table = ddp_summary(results)
    assert list(table.index) == [
        ("lenet_bn", "Fashion-MNIST accuracy training (batch split)", "fp32", 16),
        ("x", "synthetic steps (batch per process)", "fp32", 4),
    ]
    accuracy = table.iloc[0]
    assert accuracy["test acc %"] == 70.0 and accuracy["1 process test acc %"] == 71.0
    assert table.iloc[1]["error"] == "boom"
