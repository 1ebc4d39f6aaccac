"""The accuracy phase on the CPU, on the real data: a small budget, a small model."""

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import archs
from bench import cli
from bench.measure import backends
from bench.measure.backends import BackendState
from bench.measure.modes import Mode
from bench.phases.accuracy import accuracy_rows, confusion_frame
from bench.training.loader import to_device
from bench.training.loop import (
    AccuracyConfig,
    EpochRecord,
    SeedResult,
    lr_at,
    parse_budget,
    train_model,
)
from runfolder.schema import MEMORY_METRICS

CPU = torch.device("cpu")
FACTS = {"model": "m", "family": "f", "phase": "accuracy"}


def config(budget="epochs=1", **kw) -> AccuracyConfig:
    kw.setdefault("eval_batch", 500)
    return AccuracyConfig(parse_budget(budget), (0,), CPU, Mode("fp32"), **kw)


@pytest.fixture
def optimizer_steps():
    """The number of optimizer steps taken so far in the test, counted by a global hook."""
    steps = [0]

    def count(*_):
        steps[0] += 1

    handle = register_optimizer_step_post_hook(count)
    yield lambda: steps[0]
    handle.remove()


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("epochs=10", "epochs", 10),
        ("seconds=2.5", "seconds", 2.5),
        ("steps=7", "steps", 7),
    ],
)
def test_parse_budget(text, kind, value):
    b = parse_budget(text)
    assert (b.kind, b.value) == (kind, value)


@pytest.mark.parametrize(
    "text", ["epochs=0", "epochs=1.5", "minutes=3", "10", "seconds=-1", "steps=0", "steps=2.5"]
)
def test_bad_budgets(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_budget(text)


def test_one_cycle_schedule():
    assert lr_at(0.0, 1.0, 0.2) == pytest.approx(0.1)
    assert lr_at(0.2, 1.0, 0.2) == pytest.approx(1.0)
    assert lr_at(0.6, 1.0, 0.2) == pytest.approx(0.5)
    assert lr_at(1.0, 1.0, 0.2) == 0.0


def test_metrics_from_a_known_confusion_matrix():
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion[range(10), range(10)] = 90
    confusion[0, 1] = 10  # class 0: 10 predicted as class 1
    r = SeedResult("m", 0, 256, 0.1, confusion=confusion)
    assert r.test_acc == pytest.approx(100 * 900 / 910)
    assert r.per_class_acc[0] == pytest.approx(90.0)
    assert r.per_class_acc[1] == pytest.approx(100.0)
    assert r.per_class_acc[2:] == [100.0] * 8  # classes 2-9: all 90 right
    # class 0: precision 1, recall 0.9; class 1: precision 0.9, recall 1; others 1
    f1 = 2 * 0.9 / 1.9
    assert r.macro_f1 == pytest.approx(100 * (2 * f1 + 8) / 10)


@pytest.mark.slow
def test_small_model_learns_far_above_chance(fmnist):
    """BN-LeNet, one epoch over 10,000 real training images: well above the 10% of chance."""
    cfg = config(train_limit=10_000, eval_limit=2_000)
    train, test = to_device(fmnist, CPU, cfg.train_limit, cfg.eval_limit)
    lines = []
    r = train_model(archs.get_entry("lenet_bn"), train, test, cfg, seed=0, progress=lines.append)
    assert not r.diverged
    assert r.test_acc > 60
    assert len(r.epochs) == 1 and r.epochs[0].test_acc == pytest.approx(r.test_acc)
    assert r.examples_timed == 10_000 - 10_000 % 256 - 256  # the first step is timed apart
    assert r.examples_per_s > 0 and r.first_step_s > 0
    assert int(r.confusion.sum()) == 2_000
    assert "lenet_bn seed 0 epoch 1/1" in lines[0] and "test" in lines[0]


def test_seconds_budget_stops_training(fmnist):
    cfg = config("seconds=1", train_limit=60_000, eval_limit=500)
    train, test = to_device(fmnist, CPU, cfg.train_limit, cfg.eval_limit)
    r = train_model(archs.get_entry("small_cnn"), train, test, cfg, seed=0)
    assert r.train_seconds >= 1.0
    assert len(r.epochs) == 1
    assert r.examples_timed < 60_000  # stopped inside the first epoch


def test_divergence_is_detected_and_recorded(fmnist):
    cfg = config(train_limit=256 * 60, eval_limit=500)
    train, test = to_device(fmnist, CPU, cfg.train_limit, cfg.eval_limit)
    entry = dataclasses.replace(archs.get_entry("small_cnn"), train=archs.TrainSettings(lr=1e9))
    r = train_model(entry, train, test, cfg, seed=0)
    assert r.diverged
    rows = pd.DataFrame(accuracy_rows(FACTS, [r], cfg)).set_index("metric")
    assert rows.loc["diverged", "value"] == 1
    assert "diverged" in rows.loc["error", "error"]
    assert "test_acc" not in rows.index


def test_rows_average_over_seeds():
    def seed(s, correct):
        confusion = (
            torch.diag(torch.full((10,), correct))
            + (100 - correct) * torch.eye(10).roll(1, 1).long()
        )
        return SeedResult(
            "m",
            s,
            256,
            0.1,
            confusion=confusion,
            train_seconds=10.0,
            examples_timed=1000,
            epochs=[],
        )

    results = [seed(0, 90), seed(1, 80)]
    for r in results:
        r.epochs.append(EpochRecord(1, 10.0, 0.5, 88.0, r.test_acc))
    rows = pd.DataFrame(accuracy_rows(FACTS, results, config())).set_index("metric")
    assert rows.loc["test_acc", "value"] == pytest.approx(85.0)
    assert rows.loc["test_acc_std", "value"] == pytest.approx(math.sqrt(50))
    assert rows.loc["time_to_85", "value"] == pytest.approx(10.0)  # only seed 0 reached it
    assert "time_to_93" not in rows.index
    assert rows.loc["fit_throughput", "unit"] == "examples/s"
    assert confusion_frame(results).to_numpy().sum() == 2000


def test_step_budget_runs_exactly_that_many_steps_across_epochs(fmnist, optimizer_steps):
    cfg = config("steps=5", train_limit=96, eval_limit=100, batch_cap=32)
    train, test = to_device(fmnist, CPU, cfg.train_limit, cfg.eval_limit)
    lines = []
    r = train_model(archs.get_entry("lenet"), train, test, cfg, seed=0, progress=lines.append)
    assert optimizer_steps() == r.steps == 5
    assert r.examples_timed == 4 * 32  # the first step is timed apart
    assert [e.epoch for e in r.epochs] == [1, 2]  # 3 steps per epoch, then 2
    assert "step 3/5" in lines[0] and "step 5/5" in lines[1]


def test_training_sets_the_modes_backend_switches_and_restores_them(fmnist):
    cfg = config("steps=2", train_limit=64, eval_limit=100, batch_cap=32)
    train, test = to_device(fmnist, CPU, cfg.train_limit, cfg.eval_limit)
    inherited = BackendState(cudnn_benchmark=True, tf32_matmul=True, tf32_cudnn=True)
    during = []
    with backends.applied(inherited):
        train_model(
            archs.get_entry("lenet"),
            train,
            test,
            cfg,
            seed=0,
            progress=lambda _: during.append(backends.current()),
        )
        assert backends.current() == inherited
    assert during == [cfg.mode.backends(CPU)]
    assert not during[0].cudnn_benchmark and not during[0].tf32_cudnn


def test_accuracy_method_states_the_backend_switches():
    cpu = config()
    assert f"{torch.get_num_threads()} CPU threads" in cpu.describe()
    gpu = dataclasses.replace(cpu, device=torch.device("cuda"), mode=Mode("bf16", True))
    assert "cuDNN benchmark on, TF32 matmul off, TF32 cuDNN off" in gpu.describe()
    r = SeedResult(
        "m",
        0,
        64,
        0.1,
        confusion=torch.eye(10, dtype=torch.long) * 10,
        epochs=[EpochRecord(1, 1.0, 0.5, 90.0, 100.0)],
    )
    rows = accuracy_rows(FACTS, [r], gpu)
    assert all("cuDNN benchmark on" in row["method"] for row in rows)


def test_more_classes_and_channels_are_built_and_fed(fmnist):
    """12 outputs and 3 input channels: the model is built so, sees the grey channel three
    times, and its confusion matrix has a column for each output."""
    cfg = config(
        "steps=2", train_limit=64, eval_limit=100, batch_cap=32, in_channels=3, num_classes=12
    )
    assert "grey channel repeated to 3 input channels" in cfg.describe()
    assert "12 outputs (labels 0-9)" in cfg.describe()
    train, test = to_device(fmnist, CPU, cfg.train_limit, cfg.eval_limit)
    calls = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: calls.append((type(module), args[0], out))
    )
    try:
        r = train_model(archs.get_entry("lenet"), train, test, cfg, seed=0)
    finally:
        hook.remove()
    model_calls = [(x, out) for kind, x, out in calls if kind is torch.nn.Sequential]
    assert len(model_calls) == 2 + 1  # two training steps, one test batch
    for x, out in model_calls:
        assert x.shape[1] == 3 and torch.equal(x[:, 0], x[:, 2])
        assert out.shape[1] == 12
    assert r.confusion.shape == (10, 12) and int(r.confusion.sum()) == 100
    assert list(confusion_frame([r]).columns[-3:]) == ["Ankle boot", "output 10", "output 11"]
    rows = pd.DataFrame(accuracy_rows(FACTS, [r], cfg)).set_index("metric")
    assert 0 <= rows.loc["macro_f1", "value"] <= 100


@pytest.mark.parametrize(
    "field, value, message",
    [
        (
            "num_classes",
            5,
            "the accuracy phase needs --num-classes 10 or more: Fashion-MNIST has 10 "
            "classes \\(labels 0-9\\), got 5",
        ),
        ("in_channels", 0, "--in-channels must be at least 1, got 0"),
    ],
)
def test_too_few_classes_or_channels_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        config(**{field: value})


@pytest.mark.slow
def test_cli_accuracy_phase_end_to_end(tmp_path, capsys):
    args = [
        "--models",
        "lenet_bn",
        "--phases",
        "accuracy",
        "--budget",
        "epochs=2",
        "--seeds",
        "0,1",
        "--train-limit",
        "6000",
        "--eval-limit",
        "1000",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    (run_dir,) = tmp_path.iterdir()
    results = pd.read_csv(run_dir / "results.csv").set_index("metric")
    assert results.loc["test_acc", "value"] > 50
    assert results.loc["seeds", "value"] == 2
    assert results.loc["test_acc", "mode"] == "fp32"
    curves = pd.read_csv(run_dir / "curves.csv")
    assert list(curves["epoch"]) == [1, 2, 1, 2] and list(curves["seed"]) == [0, 0, 1, 1]
    confusion = pd.read_csv(run_dir / "confusion" / "lenet_bn.csv", index_col=0)
    assert confusion.to_numpy().sum() == 2000  # two seeds x 1000 test images
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert "Accuracy on real Fashion-MNIST" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--budget", "epochs=1.5", "whole number"),
        ("--seeds", "0,a", "--seeds must be comma-separated integers"),
        ("--eval-limit", "0", "--eval-limit must be at least 1"),
    ],
)
def test_bad_accuracy_options_exit_2(flag, value, message, capsys):
    assert cli.main(["--models", "lenet", "--phases", "accuracy", flag, value]) == 2
    assert message in capsys.readouterr().err


def test_a_model_over_the_cap_is_stopped_early_and_reported_not_trained(fmnist, optimizer_steps):
    """ResNet-18 (d2l) cannot do 10 epochs of 5,120 images in a second on a CPU: its first step
    already says so, and nothing more is trained."""
    from bench.training.loop import OverCap

    cfg = config("epochs=10", train_limit=5_120, eval_limit=100, batch_cap=32, cap_s=1.0)
    train, test = to_device(fmnist, CPU, cfg.train_limit, cfg.eval_limit)
    with pytest.raises(OverCap) as over:
        train_model(archs.get_entry("resnet18_d2l"), train, test, cfg, seed=0)
    assert optimizer_steps() == 1
    assert over.value.estimate_s > 2.0 and over.value.examples_per_s > 0
    assert "over the 1 s cap" in str(over.value)
    small = train_model(
        archs.get_entry("small_cnn"),
        *to_device(fmnist, CPU, 512, 100),
        config("epochs=1", cap_s=600.0),
        seed=0,
    )
    assert len(small.epochs) == 1  # under the cap: trained as usual


@pytest.mark.parametrize(
    "first_step_s, timed_s, stops",
    [
        (0.5, None, False),  # step 1: 100 steps at 0.5 s is 50 s: within twice the 30 s cap
        (0.7, None, True),  # step 1: 70 s, over twice the cap: stopped at once
        (0.5, 4 * 0.2, False),  # after the probe: 0.5 + 99 x 0.2 = 20.3 s
        (0.5, 4 * 0.4, True),  # after the probe: 0.5 + 99 x 0.4 = 40.1 s, over the cap
    ],
)
def test_the_cap_is_judged_on_the_first_step_then_on_the_probe(
    fmnist, first_step_s, timed_s, stops
):
    from bench.training.loop import CAP_PROBE_STEPS, OverCap, _Training

    cfg = config("steps=100", cap_s=30.0)
    run = _Training(archs.get_entry("lenet"), *to_device(fmnist, CPU, 512, 100), cfg, 0, 28)
    run.result.first_step_s = first_step_s
    run.result.steps = 1 if timed_s is None else 1 + CAP_PROBE_STEPS
    if stops:
        with pytest.raises(OverCap):
            run.check_cap(timed_s or 0.0)
    else:
        run.check_cap(timed_s or 0.0)


def test_the_run_writes_a_not_trained_row_with_its_estimate(fmnist, tmp_path, capsys):
    args = [
        "--models",
        "resnet18_d2l",
        "--phases",
        "accuracy",
        "--budget",
        "epochs=5",
        "--train-limit",
        "2048",
        "--eval-limit",
        "100",
        "--accuracy-cap",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 0  # not an error: the run said what it did not do
    (run_dir,) = tmp_path.iterdir()
    rows = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    rows = rows[~rows["metric"].isin(MEMORY_METRICS)]
    by_metric = rows.set_index("metric")
    # its seed note's printed figures are written beside it, trained or not
    assert set(by_metric.index) == {"not_trained_estimate", "note_test_acc", "note_examples_per_s"}
    assert float(by_metric.loc["note_test_acc", "value"]) == pytest.approx(
        89.3
    )  # d2l's ResNet-18, 10 epochs
    row = by_metric.loc["not_trained_estimate"]
    assert float(row["value"]) > 1
    assert "not trained" in row["method"] and "--gpu" in row["method"]
    assert "accuracy not trained" in capsys.readouterr().err
