"""The profile phase on the CPU: per-layer time, the step split, the trace, bad input."""

import json

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import archs
from bench import cli
from bench.measure.layer_time import layer_kind, profile_layers
from bench.measure.modes import Mode
from bench.measure.static_profile import profile_model
from reports import charts
from runfolder.reader import load_run
from runfolder.schema import ERROR_METRIC, LAYER_KINDS, MEMORY_METRICS, METRICS, PROFILE_COLUMNS

CPU = torch.device("cpu")


@pytest.fixture
def one_thread():
    """Timing checks on one thread: the 2-core machine runs other work beside the tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _heavy(num_classes=10, in_channels=1):
    # conv "2" does 64x64x9 MACs per pixel, 50x those of conv "0", and the rest are smaller
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 128, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    )


def _fails_in_forward(num_classes=10, in_channels=1):
    class Fails(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(28 * 28, num_classes)

        def forward(self, x):
            if x.shape[0] > 1:  # profiles at batch 1, fails at the phase's batch
                raise RuntimeError("deliberately broken forward")
            return self.linear(x.flatten(1))

    return Fails()


@pytest.fixture
def test_models():
    names = {"heavy_conv": _heavy, "fails_forward": _fails_in_forward}
    for name, builder in names.items():
        archs.register_model(
            family="test", year=2026, paper="-", note="-", input_size=28, name=name
        )(builder)
    yield names
    for name in names:
        archs.unregister_model(name)


def _profile(name: str, **kw):
    entry = archs.get_entry(name)
    static = profile_model(entry)
    shape = (1, entry.input_size, entry.input_size)
    return profile_layers(entry.build, name, Mode(), CPU, 8, shape, static.layers, **kw)


def test_the_heavy_layer_ranks_first_and_takes_over_half(test_models, one_thread):
    p = _profile("heavy_conv")
    mods = p.modules.sort_values("self_ms", ascending=False)
    assert mods.iloc[0]["path"] == "2"
    assert mods.iloc[0]["self_share"] > 50
    assert mods.iloc[0]["kind"] == "conv"
    assert tuple(p.layers.columns) == PROFILE_COLUMNS
    # forward and backward both measured; MAC/s from the static MACs x batch over the time
    row = mods.iloc[0]
    assert row["forward_ms"] > 0 and row["backward_ms"] > 0
    assert row["mac_per_s"] == pytest.approx(row["macs"] / (row["infer_forward_ms"] / 1e3))
    assert row["activation_bytes"] == 8 * 128 * 28 * 28 * 4
    # memory kept by the training forward: a layer's growth is its output (a view costs none);
    # the model's is what backward needs, as each ReLU's input is freed once the ReLU has run
    growth = p.layers.set_index("path")["memory_growth_bytes"]
    assert growth["2"] == row["activation_bytes"] and growth["5"] == 0
    kept = 4 * 8 * (8 * 28 * 28 + 128 * 28 * 28 + 128 + 10)  # ReLU outputs, pooled, logits
    assert growth[""] == kept
    time_share, mac_share = p.kind_shares()
    assert time_share["conv"] > 50 and mac_share["conv"] > 90
    assert sum(time_share.values()) == pytest.approx(100)


def test_self_times_add_up_to_the_profiled_step(test_models, one_thread):
    # LeNet's step at batch 8 takes about a millisecond: over 3 profiled steps one preemption
    # of the process (inside the step's range, outside every op) once halved the share
    # attributed; over 20 steps one preemption is too small a part of the range to do that
    for name in ("heavy_conv", "lenet"):
        p = _profile(name, profiled_steps=20)
        assert 0.85 <= p.attributed <= 1.15, (name, p.attributed)
        # a container's forward holds its children's
        root = p.layers[p.layers["path"] == ""].iloc[0]
        assert root["forward_ms"] >= p.modules[p.modules["depth"] == 1]["forward_ms"].sum()


def test_residual_addition_is_attributed_to_its_block(one_thread):
    entry = archs.get_entry("resnet18_d2l")  # at 32x32, to keep the test short
    p = profile_layers(
        entry.build, entry.name, Mode(), CPU, 2, (1, 32, 32), None, repeats=1, min_block_s=0
    )
    blocks = p.modules[p.modules["type"] == "Residual"]
    assert len(blocks) and (blocks["kind"] == "container").all()
    assert (blocks["join_ms"] > 0).all()
    assert layer_kind(nn.BatchNorm2d(3)) == "norm" and layer_kind(nn.MaxPool2d(2)) == "pooling"


@pytest.mark.slow
@pytest.mark.parametrize("name,repeats", [("lenet", 9), ("resnet18_d2l", 7)])
def test_the_step_split_adds_up_to_the_unprofiled_step(name, repeats, one_thread):
    """Forward, backward and optimizer timed apart add up to the full step timed as the speed
    phase times it, within 10%: LeNet at 28x28 and ResNet-18 at its note's 96x96, batch 8."""
    p = _profile(name, repeats=repeats)
    assert abs(p.split.gap) < 0.10, p.split
    assert p.split.forward.median > 0 and p.split.optimizer.median > 0
    assert p.split.backward.median > p.split.optimizer.median


def test_cli_profile_phase_writes_rows_tables_and_a_trace(tmp_path, test_models, capsys):
    args = ["--models", "heavy_conv,fails_forward,lenet", "--phases", "profile", "--trace"]
    code = cli.main([*args, "--repeats", "2", "--out", str(tmp_path)])
    assert code == 1  # a model failed; the run went on
    (run_dir,) = list(tmp_path.iterdir())
    run = load_run(run_dir)
    rows = run.results[run.results["phase"] == "profile"]
    errors = rows[rows["metric"] == ERROR_METRIC]
    assert list(errors["model"]) == ["fails_forward"]
    assert "deliberately broken forward" in errors["error"].iloc[0]
    lenet = rows[rows["model"] == "lenet"].set_index("metric")
    assert (lenet["unit"] == [METRICS[m].unit for m in lenet.index]).all()
    for metric in ("profile_step_ms", "profile_forward_ms", "peak_rss"):
        assert lenet.loc[metric, "value"] > 0, metric
    # the overhead is measured, so on a busy machine it can come out slightly negative
    assert lenet.loc["profile_overhead", "value"] > -50
    shares = [lenet.loc[f"profile_time_share_{k}", "value"] for k in LAYER_KINDS]
    assert sum(shares) == pytest.approx(100)
    assert set(run.profiles) == {("heavy_conv", "fp32"), ("lenet", "fp32")}
    assert run.profiles[("lenet", "fp32")]["path"].iloc[0] == ""

    trace = json.loads((run_dir / "traces" / "heavy_conv__fp32.json").read_text())
    names = {e.get("name") for e in trace["traceEvents"]}
    modules = [p for p in run.profiles[("heavy_conv", "fp32")]["path"] if not p.startswith("(")]
    assert {f"fwd:{p or '(model)'}" for p in modules} <= names
    report = (run_dir / "report.md").read_text()
    assert "Slowest layers" in report and "(charts/time_share_by_kind.png)" in report
    image = matplotlib.image.imread(run_dir / "charts" / "time_share_by_kind.png")
    assert image.shape[1] >= 900 and image[..., :3].std() > 0.05
    assert "(charts/layer_mac_rate.png)" in report
    _check_layer_mac_rate(run)


def _check_layer_mac_rate(run):
    """The per-layer MAC/s chart: one point per profiled leaf layer with MACs, of the profile
    with the most such layers, at its MACs and measured MAC/s, on log-log axes."""
    leaves = {
        key: f[(f["kind"] != "container") & ~f["path"].str.startswith("(") & (f["macs"] > 0)]
        for key, f in run.profiles.items()
    }
    most = max(len(f) for f in leaves.values())
    (key,) = [k for k, f in leaves.items() if len(f) == most]
    fig = charts.layer_mac_rate(run)
    (ax,) = fig.axes
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert f"{key[0]}, {key[1]}" in ax.get_title() and "inference" in ax.get_title()
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    expected = leaves[key][["macs", "mac_per_s"]].to_numpy(dtype=float)
    assert len(points) == len(expected) > 0
    np.testing.assert_allclose(np.sort(points, axis=0), np.sort(expected, axis=0), rtol=1e-9)
    kinds = {t.get_text().rsplit(" (", 1)[0] for t in ax.get_legend().get_texts()}
    assert kinds == {LAYER_KINDS[k] for k in leaves[key]["kind"]}
    plt.close(fig)


def test_trace_without_the_profile_phase_exits_2(tmp_path, capsys):
    code = cli.main(["--models", "lenet", "--phases", "static", "--trace", "--out", str(tmp_path)])
    assert code == 2
    assert "--trace" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_profile_is_not_a_default_phase_but_any_subset_runs(tmp_path):
    assert cli.build_parser().parse_args([]).phases == ("static", "speed", "accuracy")
    args = ["--models", "lenet", "--phases", "profile,static", "--repeats", "1"]
    assert cli.main([*args, "--out", str(tmp_path)]) == 0
    (run_dir,) = list(tmp_path.iterdir())
    phases = pd.read_csv(run_dir / "results.csv")["phase"]
    assert list(dict.fromkeys(phases)) == ["static", "profile"]


def test_a_mode_the_cpu_cannot_run_exits_2_before_measuring(tmp_path, capsys):
    args = ["--models", "lenet", "--phases", "profile", "--modes", "tf32"]
    assert cli.main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "tf32" in err and "CUDA" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_a_compiled_mode_is_profiled_eagerly_and_says_so(tmp_path, capsys):
    args = ["--models", "lenet", "--phases", "profile", "--modes", "fp32,fp32+compile"]
    assert cli.main([*args, "--repeats", "1", "--out", str(tmp_path)]) == 0
    assert "lenet profile fp32 (for fp32+compile) b8:" in capsys.readouterr().err
    (run_dir,) = list(tmp_path.iterdir())
    run = load_run(run_dir)
    rows = run.results[run.results["phase"] == "profile"]
    measured = rows[~rows["metric"].isin(MEMORY_METRICS)]
    assert set(measured["mode"]) == {"fp32"} and set(measured["compile"]) == {"none"}
    assert measured["method"].str.contains("profiled eagerly for fp32+compile", regex=False).all()
    assert set(run.profiles) == {("lenet", "fp32")}
