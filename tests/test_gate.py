import json

import pytest
import torch

from bench import gate
from bench.gate_evidence import ExtraWork
from bench.measure.modes import Mode

CFG = gate.GateConfig(
    ["m"],
    [Mode()],
    torch.device("cpu"),
    batch=8,
    rounds=3,
    repeats=1,
    floor=0.07,
    iqr_multiple=2.0,
    cap=0.15,
)


def figures(ratio, rel_iqr=0.01, params=100, macs=1000):
    return {
        "exact": {"m": {"params": params, "macs": macs}},
        "speed": {"m": {"fp32": {"infer_throughput": {"ratio": ratio, "rel_iqr": rel_iqr}}}},
    }


def baseline(ratio=1.0, rel_iqr=0.01):
    b = figures(ratio, rel_iqr)
    return {"exact": b["exact"], "speed": {"dev": {"figures": b["speed"]}}}


@pytest.mark.parametrize(
    "now, rel_iqr, status",
    [
        (1.0, 0.01, "ok"),
        (0.95, 0.01, "ok"),  # 5% slower: under the 7% floor
        (0.90, 0.01, "FAIL (slower)"),
        (0.90, 0.06, "ok"),  # noisy rounds widen the threshold to 12%
        (0.80, 0.20, "FAIL (slower)"),  # but never past the 15% cap: 20% slower fails
        (1.30, 0.01, "faster (update the baseline?)"),
    ],
)
def test_speed_verdicts(now, rel_iqr, status):
    rows, failed = gate.compare(figures(now, rel_iqr), baseline(), "dev", CFG)
    speed = rows[-1]
    assert speed["status"] == status
    assert failed == status.startswith("FAIL")


def test_threshold_floor_iqr_and_cap():
    assert gate.threshold(0.01, 0.01, CFG) == pytest.approx(0.07)
    assert gate.threshold(0.01, 0.05, CFG) == pytest.approx(0.10)
    assert gate.threshold(0.30, 0.01, CFG) == pytest.approx(0.15)


def test_a_quarter_of_slowed_rounds_is_noise_a_slowdown_of_all_is_not():
    rounds = [1.00, 1.02, 0.98, 1.01, 1.00, 0.99, 1.01, 1.00]
    noisy = [0.7, 0.72] + rounds[2:]  # interference slowed two rounds of eight
    slowed = [0.75 * r for r in rounds]  # a regression slows every round
    unchanged = gate.summarise(rounds)["ratio"]
    assert gate.summarise(noisy)["ratio"] == pytest.approx(unchanged, rel=0.01)
    assert gate.summarise(slowed)["ratio"] == pytest.approx(0.75 * gate.summarise(rounds)["ratio"])


def test_any_change_of_size_fails():
    rows, failed = gate.compare(figures(1.0, params=101), baseline(), "dev", CFG)
    assert failed
    assert rows[0]["status"] == "FAIL (changed)" and rows[1]["status"] == "ok"


def test_another_device_has_no_speed_baseline():
    rows, failed = gate.compare(figures(0.5), baseline(), "another device", CFG)
    assert not failed
    assert rows[-1]["status"] == "new (no baseline for this device)"


@pytest.mark.slow
def test_update_then_check_a_real_model(tmp_path, capsys):
    path = tmp_path / "gate.json"
    args = ["--models", "lenet", "--rounds", "2", "--repeats", "1", "--baseline", str(path)]
    assert gate.main([*args, "--update-baseline"]) == 0
    saved = json.loads(path.read_text())
    assert saved["exact"]["lenet"] == {"params": 61_706, "macs": 416_520}
    (key,) = saved["speed"]
    assert key.startswith("cpu: ")
    figs = saved["speed"][key]["figures"]
    assert set(figs) == {"lenet"} and set(figs["lenet"]) == {"fp32"}
    lenet = figs["lenet"]["fp32"]
    assert set(lenet) == {"infer_throughput", "train_throughput"}
    assert all(len(f["rounds"]) == 4 and f["ratio"] > 0 for f in lenet.values())  # 2 x rounds

    saved["exact"]["lenet"]["params"] = 60_000  # as if the model had grown
    path.write_text(json.dumps(saved))
    out_json = tmp_path / "verdict.json"
    assert gate.main([*args, "--json", str(out_json)]) == 1
    out = capsys.readouterr().out
    assert "FAIL (changed)" in out and "gate: FAILED" in out
    assert json.loads(out_json.read_text())["failed"] is True


def test_bad_arguments_exit_2(capsys):
    assert gate.main(["--models", "nope"]) == 2
    assert gate.main(["--rounds", "1"]) == 2
    assert "gate: error" in capsys.readouterr().err


def test_extra_work_adds_a_quarter_of_the_batch():
    calls = []

    class Count(torch.nn.Module):
        def forward(self, x):
            calls.append(len(x))
            return x.sum(1)

    out = ExtraWork(Count(), 0.25)(torch.ones(8, 3))
    assert calls == [8, 2]
    assert torch.equal(out, torch.full((8,), 3.0))


def test_cpu_baselines_are_kept_apart_by_instruction_set():
    key = gate.device_key(torch.device("cpu"))
    assert key.startswith("cpu: ")
    assert f"torch {torch.backends.cpu.get_cpu_capability()}" in key


def test_the_committed_baseline_has_this_gates_figures():
    baseline = json.loads(gate.BASELINE.read_text())
    assert set(baseline["exact"]) >= set(gate.CPU_MODELS.split(","))
    for device in baseline["speed"].values():
        assert device["estimator"] == "upper quartile of rounds"
        for figure in gate.flat(device["figures"]).values():
            assert figure["ratio"] == pytest.approx(gate.summarise(figure["rounds"])["ratio"])
