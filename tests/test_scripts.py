"""The fidelity and baseline scripts run end to end on the CPU (their figures need a GPU)."""

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import archs
from bench import backends, baseline, fidelity
from bench.backends import BackendState
from bench.data import find_data_dir
from bench.loader import to_device

CPU = torch.device("cpu")


def test_fidelity_script_compares_three_ways(capsys):
    code = fidelity.main(["--models", "lenet", "--modes", "fp32", "--warmup", "1"])
    out = capsys.readouterr().out
    assert code in (0, 1)  # within 3% or not: this shared CPU is far noisier than 3%
    assert "harness / hand loop" in out and "torch.utils.benchmark" in out
    assert ("within ±3%" in out) == (code == 0)


def test_baseline_script_runs_both_loops_on_the_real_data(capsys):
    code = baseline.main(["--models", "lenet", "--steps", "3", "--warmup", "1", "--workers", "0",
                          "--batch-size", "64"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "d2l loop examples/s" in out and "suite / d2l" in out
    assert ("each loop 3 timed steps: the d2l loop's after 1 untimed warm-up step, the suite's "
            "after its untimed first step") in out  # fmt: skip
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
        lambda *_: switches.add(backends.current()))
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


def test_scripts_refuse_gpu_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert fidelity.main(["--gpu"]) == 2
    assert baseline.main(["--gpu"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
