import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import torch

import archs
from bench import cli
from bench.phases import accuracy as accuracy_phase
from bench.phases import speed as speed_phase
from bench.run import options as config
from bench.run import provenance
from runfolder.reader import load_run
from runfolder.schema import ERROR_METRIC, LAYER_COLUMNS, MEMORY_METRICS, METRICS, RESULT_COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def test_list_shows_every_model(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in archs.list_models():
        assert f"\n{name} " in out


def test_run_writes_results_with_units_and_provenance(tmp_path, capsys):
    args = ["--models", "lenet,resnet18_d2l", "--phases", "static", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    run_dir = only_run_dir(tmp_path)

    results = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    assert tuple(results.columns) == RESULT_COLUMNS
    assert list(dict.fromkeys(results["model"])) == ["lenet", "resnet18_d2l"]
    assert set(results["metric"]) <= set(METRICS)
    assert (results["unit"] == [METRICS[m].unit for m in results["metric"]]).all()
    memory = results["metric"].isin(MEMORY_METRICS)
    assert results.loc[~memory, "method"].str.contains("fvcore").all()
    assert len(results[memory]) == 4  # each model's static phase: its profiling's peak memory
    lenet = results[results["model"] == "lenet"].set_index("metric")["value"].astype(float)
    assert lenet["params"] == 61_706
    assert lenet["flops"] == 2 * lenet["macs"]

    saved = json.loads((run_dir / "results.json").read_text())
    prov = saved["provenance"]
    for key in ("command", "git_commit", "torch", "device", "device_name", "started", "finished"):
        assert prov[key], key
    assert prov["torch"] == torch.__version__
    assert prov["status"] == "complete"
    assert len(saved["rows"]) == len(results)

    assert not (run_dir / "charts").exists()  # a static-only run has no chart to draw
    layers = pd.read_csv(run_dir / "layers" / "lenet.csv")
    assert tuple(layers.columns) == LAYER_COLUMNS
    assert layers.loc[layers["depth"] == 1, "output_shape"].iloc[0] == "1x6x28x28"

    out = capsys.readouterr().out
    assert "MACs/sample" in out and "FLOPs/sample" in out
    assert "lenet" in out and "61.7 K" in out


def test_failed_model_is_recorded_and_the_run_goes_on(tmp_path, capsys):
    code = cli.main(
        [
            "--models",
            "lenet,resnet18_d2l",
            "--input-size",
            "64",
            "--phases",
            "static",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 1
    results = pd.read_csv(only_run_dir(tmp_path) / "results.csv", keep_default_na=False)
    lenet = results[(results["model"] == "lenet") & ~results["metric"].isin(MEMORY_METRICS)]
    assert list(lenet["metric"]) == [ERROR_METRIC]
    assert "built for 28x28" in lenet["error"].iloc[0]
    resnet = results[results["model"] == "resnet18_d2l"].set_index("metric")["value"]
    assert float(resnet["input_height"]) == 64
    assert "1 of 2 models failed" in capsys.readouterr().err


def interrupt_at(monkeypatch, module, name: str, model: str):
    """``module.name`` raises KeyboardInterrupt (as Ctrl-C would) when called for ``model``;
    returns the real one."""
    real = getattr(module, name)

    def interrupting(entry, *args):
        if entry.name == model:
            raise KeyboardInterrupt
        return real(entry, *args)

    monkeypatch.setattr(module, name, interrupting)
    return real


def test_interrupted_run_keeps_what_was_measured(tmp_path, monkeypatch):
    interrupt_at(monkeypatch, speed_phase, "measure_speed", "lenet_bn")
    args = [
        "--models",
        "lenet,lenet_bn,small_cnn",
        "--phases",
        "static,speed",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 130
    run_dir = only_run_dir(tmp_path)
    results = pd.read_csv(run_dir / "results.csv")
    assert set(results[results["phase"] == "speed"]["model"]) == {"lenet"}
    assert set(results[results["model"] == "lenet"]["phase"]) == {"static", "speed"}
    assert (run_dir / "samples.jsonl").read_text().count("\n") == 3
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


def test_layers_prints_the_per_layer_table(capsys):
    assert cli.main(["--layers", "vgg11"]) == 0
    out = capsys.readouterr().out
    assert "1x512x7x7" in out and "1x25088" in out
    assert "128,806,154" in out  # parameters of the 1-channel, 10-class VGG-11


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "resnt18"], "unknown model 'resnt18'; did you mean resnet18"),
        (["--layers", "densenett"], "unknown model 'densenett'; did you mean densenet"),
        (["--input-size", "big"], "--input-size must be N or HxW"),
        (["--phases", "static,warp"], "unknown phase 'warp'"),
        (["--layers", "lenet", "--depth", "0"], "--depth must be at least 1"),
        (["--modes", "tf32"], "TF32 exists only on CUDA devices"),
        (["--modes", "bf16+cl+compile-ro"], "reduce-overhead uses CUDA graphs"),
        (["--modes", "fp33"], "'fp33' is unknown"),
        (["--batch-sizes", "8,zero"], "--batch-sizes must be comma-separated integers"),
        (["--batch-sizes", "0"], "--batch-sizes must be positive"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--num-classes", "5"], "needs --num-classes 10 or more"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_without_cuda_exits_2(tmp_path, capsys):
    assert cli.main(["--gpu", "--models", "lenet", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_parse_input_size():
    assert config.input_size("96") == (96, 96)
    assert config.input_size("64x48") == (64, 48)
    with pytest.raises(argparse.ArgumentTypeError, match="must be positive"):
        config.input_size("0x3")
    with pytest.raises(argparse.ArgumentTypeError, match="N or HxW"):
        config.input_size("big")


@pytest.mark.slow
def test_speed_phase_on_the_cpu(tmp_path, capsys):
    """The issue's CPU command: --models lenet,resnet18 --modes fp32 (fewer repeats here)."""
    args = [
        "--models",
        "lenet,resnet18",
        "--phases",
        "static,speed",
        "--modes",
        "fp32",
        "--repeats",
        "2",
        "--warmup",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    run_dir = only_run_dir(tmp_path)
    results = pd.read_csv(run_dir / "results.csv")
    speed = results[(results["phase"] == "speed") & ~results["metric"].isin(MEMORY_METRICS)]
    assert set(speed["model"]) == {"lenet", "resnet18"}
    assert set(speed["mode"]) == {"fp32"}
    for model in ("lenet", "resnet18"):
        figures = speed[speed["model"] == model].set_index("metric")
        assert figures.loc["infer_throughput", "value"] > 0
        assert figures.loc["infer_throughput", "batch"] == 8  # the CPU default
        assert figures.loc["latency_p50", "batch"] == 1
        assert figures.loc["train_throughput", "unit"] == "samples/s"
        assert figures.loc["infer_mfu", "unit"] == "%"
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(r["seconds_per_step"] for r in records)
    out = capsys.readouterr().out
    assert "Speed on cpu" in out and "infer/s" in out and "p50 ms" in out


@pytest.mark.slow
def test_batch_size_sweep(tmp_path):
    args = [
        "--models",
        "small_cnn",
        "--phases",
        "speed",
        "--batch-sizes",
        "2,4",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    speed = pd.read_csv(only_run_dir(tmp_path) / "results.csv")
    assert set(speed["phase"]) == {"speed"}
    infer = speed[speed["metric"] == "infer_throughput"]
    assert sorted(infer["batch"]) == [2, 4]
    assert (speed["metric"] == "latency_p50").sum() == 1  # latency once, at batch 1


@pytest.mark.slow
def test_a_phase_not_asked_for_writes_no_rows(tmp_path):
    """LeNet cannot be profiled at 64x64; a speed-only run says so in speed rows alone."""
    args = [
        "--models",
        "lenet",
        "--phases",
        "speed",
        "--input-size",
        "64",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 1
    results = pd.read_csv(only_run_dir(tmp_path) / "results.csv")
    assert set(results["phase"]) == {"speed"}


@pytest.mark.slow
def test_threads_are_applied_and_recorded(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        args = [
            "--models",
            "lenet",
            "--phases",
            "speed",
            "--threads",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--out",
            str(tmp_path),
        ]
        assert cli.main(args) == 0
    finally:
        torch.set_num_threads(before)
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["backends"]["cpu_threads"] == 1
    results = pd.read_csv(run_dir / "results.csv")
    measured = results[~results["metric"].isin(MEMORY_METRICS)]
    assert measured["method"].str.contains("1 CPU threads").all()
    err = capsys.readouterr().err
    assert "estimate: about" in err and "left" in err and "archbench: took" in err


class _PoisonsTheDevice(torch.nn.Module):
    """Profiles (batch 1) and then fails as a kernel that accessed memory out of bounds."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, 10)

    def forward(self, x):
        if x.shape[0] > 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.linear(x.flatten(1))


@pytest.fixture
def poisoned_model():
    name = "poisoned"
    archs.register_model(family="test", year=2026, paper="-", note="-", input_size=28, name=name)(
        lambda num_classes=10, in_channels=1: _PoisonsTheDevice()
    )
    yield name
    archs.unregister_model(name)


@pytest.mark.slow
def test_a_sticky_cuda_error_ends_the_run_cleanly_and_resume_goes_on(
    tmp_path, capsys, poisoned_model
):
    args = [
        "--models",
        f"lenet,{poisoned_model},small_cnn",
        "--phases",
        "static,speed",
        "--modes",
        "fp32,bf16",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "CUDA context unusable" in err and "--resume" in err and "Traceback" not in err
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "cuda-error"
    results = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    poisoned = results[(results["model"] == poisoned_model) & (results["phase"] == "speed")]
    assert set(poisoned["metric"]) == {ERROR_METRIC}
    assert set(poisoned["mode"]) == {"fp32", "bf16"}  # the mode it died in, and the one after
    assert "small_cnn" not in set(results["model"])
    lenet_rows = len(results[results["model"] == "lenet"])

    assert cli.main([*args, "--resume"]) == 1  # the poisoned model's error rows remain
    assert "1 of 3 models failed (poisoned)" in capsys.readouterr().err
    resumed = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    assert len(resumed[resumed["model"] == "lenet"]) == lenet_rows  # nothing measured twice
    assert len(resumed[resumed["model"] == poisoned_model]) == len(
        results[results["model"] == poisoned_model]
    )
    assert (resumed[resumed["model"] == "small_cnn"]["metric"] == "infer_throughput").sum() == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "nonsense"], "--budget must be epochs=N, steps=N or seconds=S"),
        (["--seeds", "0,one"], "--seeds must be comma-separated integers"),
        (["--train-limit", "0"], "--train-limit must be at least 1"),
        (["--eval-limit", "-5"], "--eval-limit must be at least 1"),
        (["--batch-sizes", "0"], "--batch-sizes must be positive"),
        (["--modes", "fp33"], "'fp33' is unknown"),
    ],
)
def test_options_are_checked_whichever_phases_run(args, message, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main(["--models", "lenet", "--phases", "static", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder nobody may write into, root included (the tests run as root): immutable."""
    path = tmp_path / "locked"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o500)
    elif (
        subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode
        != 0
    ):
        pytest.skip("no way to make a folder read-only for root here (chattr +i refused)")
    yield path
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o700)


def test_out_that_cannot_hold_a_run_folder_exits_2_with_one_line(tmp_path, capsys, unwritable_dir):
    a_file = tmp_path / "somefile"
    a_file.write_text("not a folder")
    cases = {
        a_file: "somefile is a file, not a folder",
        a_file / "runs": "somefile is a file, not a folder",
        tmp_path / ("x" * 300) / "runs": "File name too long",
        unwritable_dir / "runs": "ermi",  # Permission denied (EACCES) or not permitted (EPERM)
    }
    for out, reason in cases.items():
        assert cli.main(["--models", "lenet", "--phases", "static", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"archbench: error: cannot write a run folder under --out {out}: ")
        assert reason in err and "give --out a folder you can write to" in err
        assert err.count("\n") == 1
    assert a_file.read_text() == "not a folder" and not any(unwritable_dir.iterdir())


def test_layers_at_an_input_size_the_model_cannot_take(capsys):
    assert cli.main(["--layers", "alexnet", "--input-size", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "archbench: error: alexnet cannot run at --input-size 8x8 (it is built "
        "for 224x224; RuntimeError: "
    )
    assert "leave out --input-size" in err and err.count("\n") == 1


@pytest.mark.slow
def test_static_run_records_a_command_to_paste_and_names_only_what_it_wrote(tmp_path):
    args = ["--models", "lenet, small_cnn", "--phases", "static", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run_dir(tmp_path)
    prov = json.loads((run_dir / "run.json").read_text())
    assert prov["command"] == (
        "python -m bench --models 'lenet, small_cnn' --phases static "
        f"--out {shlex.quote(str(tmp_path))}"
    )
    assert shlex.split(prov["command"])[3:] == args
    assert "cuda" not in prov and "cudnn" not in prov  # a CPU run used neither
    assert prov["torch_cuda_build"] == torch.version.cuda
    assert "archbench: 2 models, phases static" in proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("results:")]
    assert line == f"results: {run_dir}/results.csv (per-layer tables: layers/)"
    assert not (run_dir / "samples.jsonl").exists() and not (run_dir / "curves.csv").exists()


def test_resuming_a_complete_run_measures_nothing(tmp_path, capsys):
    args = ["--models", "lenet", "--phases", "static", "--out", str(tmp_path)]
    assert cli.main(args) == 0
    assert "archbench: 1 model, phases static" in capsys.readouterr().err
    run_dir = only_run_dir(tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}

    assert cli.main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"archbench: {run_dir} holds this spec's complete run; nothing "
        "left to measure (leave out --resume to measure again)\n"
    )
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


class _FailsToTrain(torch.nn.Module):
    """Runs in eval mode (static profile, inference, latency); fails in training mode."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, 10)

    def forward(self, x):
        if self.training:
            raise RuntimeError("this model cannot train")
        return self.linear(x.flatten(1))


class _CtrlCOnce(torch.nn.Module):
    """A person presses Ctrl-C while this model's first batch of more than one runs."""

    pressed: ClassVar[bool] = False

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, 10)

    def forward(self, x):
        if x.shape[0] > 1 and not _CtrlCOnce.pressed:
            _CtrlCOnce.pressed = True
            raise KeyboardInterrupt
        return self.linear(x.flatten(1))


@pytest.fixture
def failing_and_interrupted_models():
    names = {"fails_to_train": _FailsToTrain, "ctrl_c_once": _CtrlCOnce}
    for name, module in names.items():
        archs.register_model(
            family="test", year=2026, paper="-", note="-", input_size=28, name=name
        )(lambda num_classes=10, in_channels=1, m=module: m())
    _CtrlCOnce.pressed = False
    yield list(names)
    for name in names:
        archs.unregister_model(name)


@pytest.mark.slow
def test_resume_holds_each_figure_once_and_reports_failures_once(
    tmp_path, capsys, failing_and_interrupted_models
):
    failing, interrupted = failing_and_interrupted_models
    args = [
        "--models",
        f"lenet,{failing},{interrupted}",
        "--phases",
        "static,speed,accuracy",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--budget",
        "steps=2",
        "--train-limit",
        "64",
        "--eval-limit",
        "50",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 130
    err = capsys.readouterr().err
    assert f"[2/3] {failing} fp32 b8: " in err and "train FAILED" in err
    assert f"[2/3] {failing} accuracy FAILED" in err
    command = provenance.command_line([*args, "--resume"])
    assert err.splitlines()[-1].endswith(f"To go on from there: {command}")
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"

    assert cli.main([*args, "--resume"]) == 1  # the failed model's rows remain, once
    err = capsys.readouterr().err
    assert "FAILED" not in err  # what failed before is not measured, nor reported, again
    assert f"[2/3] {failing} static: already in the run folder, skipped" in err
    assert f"[2/3] {failing} fp32 b8: already in the run folder, skipped" in err
    assert f"[2/3] {failing} accuracy: already in the run folder, skipped" in err
    assert f"1 of 3 models failed ({failing})" in err
    results = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    keys = results[["model", "phase", "mode", "batch", "metric"]].astype(str)
    assert not keys.duplicated().any(), keys[keys.duplicated(keep=False)]
    errors = results[results["metric"] == ERROR_METRIC]
    assert list(zip(errors["model"], errors["phase"])) == [
        (failing, "speed"),
        (failing, "accuracy"),
    ]
    assert set(results[results["phase"] == "accuracy"]["model"]) == set(args[1].split(","))
    # the process's peak memory once per model and phase: the interrupted phase's on resume
    memory = results[results["metric"] == "peak_rss"]
    phases = args[args.index("--phases") + 1].split(",")
    assert sorted(zip(memory["model"], memory["phase"])) == sorted(
        (m, p) for m in args[1].split(",") for p in phases
    )
    assert (memory["unit"] == "MB").all() and (memory["value"].astype(float) > 10).all()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"

    assert cli.main([*args, "--resume"]) == 0
    assert "complete run; nothing left to measure" in capsys.readouterr().err
    assert len(pd.read_csv(run_dir / "results.csv")) == len(results)


class _RecordsEvalBatches(torch.nn.Module):
    """Records the batches it sees in eval mode after its last training step."""

    seen: ClassVar[list[int]] = []

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(28 * 28, 10)

    def forward(self, x):
        if self.training:  # what came before (the static profile's batch of 1) is not evaluation
            _RecordsEvalBatches.seen.clear()
        else:
            _RecordsEvalBatches.seen.append(int(x.shape[0]))
        return self.linear(x.flatten(1))


def test_the_cpu_evaluates_a_few_images_at_a_time(tmp_path):
    """Memory: VGG-16 evaluated at 224x224 takes about 26 MB per image on the CPU."""
    name = "records_eval_batches"
    archs.register_model(family="test", year=2026, paper="-", note="-", input_size=28, name=name)(
        lambda num_classes=10, in_channels=1: _RecordsEvalBatches()
    )
    _RecordsEvalBatches.seen = []
    try:
        args = [
            "--models",
            name,
            "--phases",
            "accuracy",
            "--budget",
            "steps=1",
            "--train-limit",
            "64",
            "--out",
            str(tmp_path),
        ]
        assert cli.main(args) == 0
    finally:
        archs.unregister_model(name)
    assert sum(_RecordsEvalBatches.seen) == config.CPU_EVAL_LIMIT  # the CPU's default test images
    assert max(_RecordsEvalBatches.seen) == config.CPU_EVAL_BATCH == 16


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
    real = interrupt_at(monkeypatch, accuracy_phase, "train_model", "small_cnn")
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


@pytest.mark.slow
def test_list_piped_into_a_reader_that_stops_ends_quietly():
    # `true` exits at once, long before the list is written (torch takes seconds to import)
    shell = f"{shlex.quote(sys.executable)} -m bench --list | true"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
