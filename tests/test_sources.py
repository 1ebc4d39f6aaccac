"""Models from outside the suite: torchvision's zoo (``tv:``), timm's (``timm:``), a user's file
and an installed package's entry point, each through the CLI the way a user names them."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import archs
from archs import zoos
from bench import cli
from runfolder.reader import load_run, read_results
from runfolder.schema import ERROR_METRIC, RESULT_COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def run_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a fresh process: what a user's file or package registers
    stays out of this one's registry."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_zoo_globs_and_families_select_across_sources():
    chosen = archs.select_models("tv:mobilenet*,timm:convnext_atto,tv:squeezenet,lenet")
    assert chosen == [
        "tv:mobilenet_v2",
        "tv:mobilenet_v3_large",
        "tv:mobilenet_v3_small",
        "timm:convnext_atto",
        "tv:squeezenet1_0",
        "tv:squeezenet1_1",
        "lenet",
    ]
    assert [archs.get_entry(n).source for n in chosen] == ["tv"] * 3 + ["timm"] + ["tv"] * 2 + [
        "archbench"
    ]
    assert archs.get_entry("tv:mobilenet_v2").family == "mobilenetv2"
    assert archs.get_entry("timm:convnext_atto").family == "convnext"
    assert archs.select_models("all") == archs.list_models()  # the zoos are named, not "all"


def test_zoo_input_sizes_are_the_models_own():
    assert archs.get_entry("tv:resnet18").input_size == 224
    assert archs.get_entry("tv:inception_v3").input_size == 299
    assert archs.get_entry("tv:efficientnet_b3").input_size == 300
    assert archs.get_entry("timm:vit_tiny_patch16_384").input_size == 384


def test_a_glob_over_50_models_asks_for_yes(tmp_path, capsys):
    args = ["--models", "tv:*", "--phases", "static", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "'tv:*' matches 80 models (more than 50)" in err and "--yes" in err
    assert not any(tmp_path.iterdir())
    assert archs.select_models("tv:*", max_glob=None)[:2] == ["tv:alexnet", "tv:convnext_base"]


def test_unknown_zoo_model_suggests_close_names(capsys):
    assert cli.main(["--models", "tv:mobilnet_v2", "--phases", "static"]) == 2
    assert "did you mean tv:mobilenet_v2" in capsys.readouterr().err


def test_list_shows_each_source_and_a_selection(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "tv:NAME  torchvision" in out and "timm:NAME  timm" in out
    assert cli.main(["--list", "--models", "tv:squeezenet*"]) == 0
    out = capsys.readouterr().out
    assert "tv:squeezenet1_0" in out and "tv:squeezenet1_1" in out and "2 models" in out
    assert "torchvision.models.squeezenet1_1(weights=None)" in out


def test_torchvision_stem_is_adapted_to_one_channel():
    """ResNet-18's 7x7 stem rebuilt for one channel: 2 x 64 x 7 x 7 fewer weights than at 3,
    the rest of the model unchanged, and it runs on a one-channel batch."""
    three = archs.get_entry("tv:resnet18").build(num_classes=10, in_channels=3)
    one = archs.get_entry("tv:resnet18").build(num_classes=10, in_channels=1)
    assert one.conv1.in_channels == 1 and one.conv1.out_channels == 64
    params = [sum(p.numel() for p in m.parameters()) for m in (three, one)]
    assert params[0] - params[1] == 2 * 64 * 7 * 7
    assert one(torch.randn(2, 1, 64, 64)).shape == (2, 10)


def test_adapting_a_model_without_a_three_channel_conv_is_refused():
    with pytest.raises(ValueError, match="no 3-channel Conv2d"):
        zoos.adapt_stem(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), 1)


def test_timm_takes_channels_and_classes_natively():
    model = archs.get_entry("timm:resnet10t").build(num_classes=7, in_channels=1)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    assert next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels == 1


def test_timm_missing_exits_2_saying_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    monkeypatch.delitem(archs.registry._ZOO_ENTRIES, "timm:resnet10t", raising=False)
    zoos._timm_modules.cache_clear()
    try:
        assert cli.main(["--models", "timm:resnet10t", "--phases", "static"]) == 2
        assert "pip install 'archbench[timm]'" in capsys.readouterr().err
        assert cli.main(["--list"]) == 0
        assert "timm: not installed" in capsys.readouterr().out
    finally:
        zoos._timm_modules.cache_clear()


@pytest.mark.slow
def test_zoo_models_through_every_phase(tmp_path, capsys):
    """Small torchvision and timm models, a ViT among them, in every phase at 64x64."""
    models = "tv:mobilenet_v3_small,tv:squeezenet1_1,timm:resnet10t,timm:vit_tiny_patch16_224"
    args = [
        *("--models", models, "--phases", "static,speed,accuracy,profile"),
        *("--input-size", "64", "--batch-sizes", "2", "--repeats", "2", "--warmup", "1"),
        *("--budget", "steps=2", "--train-limit", "32", "--eval-limit", "32"),
        *("--out", str(tmp_path)),
    ]
    assert cli.main(args) == 0, capsys.readouterr().err
    run = load_run(only_run_dir(tmp_path))
    results = run.results
    assert (results["metric"] != ERROR_METRIC).all()
    names = models.split(",")
    assert list(dict.fromkeys(results["model"])) == names
    assert dict(results.groupby("model")["source"].first()) == {
        n: n.partition(":")[0] for n in names
    }
    for phase in ("static", "speed", "accuracy", "profile"):
        assert set(results.loc[results["phase"] == phase, "model"]) == set(names), phase
    assert set(run.layers) == set(names) and {m for m, _ in run.profiles} == set(names)
    static = results[results["phase"] == "static"].set_index(["model", "metric"])["value"]
    assert static[("tv:squeezenet1_1", "input_height")] == 64
    assert static[("tv:squeezenet1_1", "input_channels")] == 1
    # the ViT was built for 64x64: 16 patches of 16x16 and the class token
    vit = archs.get_entry("timm:vit_tiny_patch16_224").build(10, 1, (64, 64))
    assert vit.pos_embed.shape[1] == 16 + 1
    assert (only_run_dir(tmp_path) / "report.md").is_file()


@pytest.mark.slow
def test_a_model_that_cannot_take_the_input_size_is_an_error_row(tmp_path, capsys):
    """A ViT whose patch size does not divide the input, and a Swin below torchvision's
    smallest input for it: error rows, the other model measured, exit 1."""
    args = [
        *("--models", "tv:vit_b_32,tv:swin_t,tv:squeezenet1_1", "--phases", "static,speed"),
        *("--input-size", "40", "--batch-sizes", "2", "--repeats", "1", "--warmup", "0"),
        *("--out", str(tmp_path)),
    ]
    assert cli.main(args) == 1
    results = read_results(only_run_dir(tmp_path) / "results.csv")
    errors = results[results["metric"] == ERROR_METRIC].set_index("model")["error"]
    assert set(errors.index) == {"tv:vit_b_32", "tv:swin_t"}
    assert errors.str.contains("indivisible by patch size").any()
    assert errors.str.contains(r"at least 224x224 \(torchvision's min_size").any()
    assert (results.loc[results["model"] == "tv:squeezenet1_1", "metric"] != ERROR_METRIC).all()


def test_results_without_a_source_column_are_the_suites(tmp_path):
    """A results.csv written before models had sources reads with source 'archbench'."""
    old = [c for c in RESULT_COLUMNS if c != "source"]
    frame = pd.DataFrame([dict.fromkeys(old, "")])
    facts = {"model": "lenet", "family": "lenet", "phase": "static", "metric": "params"}
    frame.loc[0, list(facts)] = list(facts.values())
    frame.to_csv(tmp_path / "results.csv", index=False)
    assert read_results(tmp_path / "results.csv")["source"].tolist() == ["archbench"]


USER_FILE = """
import archs
from torch import nn


@archs.register_model(family="mine", input_size=32)
def tiny_user_net(num_classes=10, in_channels=1):
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(4, num_classes),
    )


def not_registered(num_classes=10, in_channels=1):
    return nn.Linear(1, 1)
"""


@pytest.mark.slow
def test_a_user_file_runs_every_phase(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(USER_FILE)
    out = tmp_path / "runs"
    done = run_bench(
        *("--models", f"{path}:tiny_user_net", "--phases", "static,speed,accuracy,profile"),
        *("--batch-sizes", "2", "--repeats", "2", "--warmup", "1", "--budget", "steps=2"),
        *("--train-limit", "32", "--eval-limit", "32", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr
    results = read_results(only_run_dir(out) / "results.csv")
    assert set(results["model"]) == {"tiny_user_net"} and set(results["source"]) == {"file"}
    assert set(results["phase"]) == {"static", "speed", "accuracy", "profile"}
    params = results.set_index("metric").loc["params", "value"]
    assert params == (1 * 9 + 1) * 4 + (4 + 1) * 10


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{path}:not_registered", "does not register its 'not_registered' (it registers tiny"),
        ("{path}:nothing", "has no 'nothing'"),
        ("{dir}/absent.py:net", "no file"),
    ],
)
def test_a_bad_user_file_spec_exits_2(tmp_path, spec, message):
    path = tmp_path / "my_models.py"
    path.write_text(USER_FILE)
    done = run_bench("--models", spec.format(path=path, dir=tmp_path), "--phases", "static")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_user_file_that_takes_a_suite_name_exits_2(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text(USER_FILE.replace("def tiny_user_net", "def lenet"))
    done = run_bench("--models", f"{path}:lenet", "--phases", "static")
    assert done.returncode == 2
    assert "model 'lenet' is already registered (by archbench)" in done.stderr


@pytest.mark.slow
def test_an_installed_package_registers_through_the_entry_point_group(tmp_path):
    """A distribution on the path whose ``archbench.models`` entry point names its module:
    its model is listed, with the package as source, and measured like the suite's."""
    (tmp_path / "acme_nets").mkdir()
    (tmp_path / "acme_nets" / "__init__.py").write_text(
        USER_FILE.replace("tiny_user_net", "acme_net")
    )
    info = tmp_path / "acme_nets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-nets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [archbench.models]
        acme = acme_nets
        """)
    )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    listed = run_bench("--list", env=env)
    assert listed.returncode == 0, listed.stderr
    (line,) = [x for x in listed.stdout.splitlines() if x.startswith("acme_net ")]
    assert line.split()[1:3] == ["acme-nets", "mine"]
    out = tmp_path / "runs"
    done = run_bench(
        *("--models", "acme_net", "--phases", "static,speed", "--batch-sizes", "2"),
        *("--repeats", "1", "--warmup", "0", "--out", str(out)),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    results = read_results(only_run_dir(out) / "results.csv")
    assert set(results["source"]) == {"acme-nets"}


def test_layers_of_a_zoo_model(capsys):
    assert cli.main(["--layers", "tv:squeezenet1_1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tv:squeezenet1_1: input 1x1x224x224")
    assert "torchvision.models.squeezenet1_1(weights=None)" in out
    assert cli.main(["--layers", "tv:squeezenet*"]) == 2
    assert "--layers takes one model; 'tv:squeezenet*' selects 2" in capsys.readouterr().err


def test_top_must_be_positive(tmp_path, capsys):
    args = ["--models", "lenet", "--phases", "static", "--top", "0", "--out", str(tmp_path)]
    assert cli.main(args) == 2
    assert "--top must be at least 1" in capsys.readouterr().err
