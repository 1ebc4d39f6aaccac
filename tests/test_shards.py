"""--shard K/N and ``python -m reports merge``: two shards of a small run, merged, hold the rows
of the same run unsharded; runs that do not belong together are refused."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from bench import cli
from bench.run.shards import Shard, parse_shard, partition
from reports.cli import main as reports_main
from reports.merge import held_items, without_shard
from runfolder.reader import load_run

ARGS = [
    *("--models", "lenet,lenet_bn,small_cnn", "--phases", "static,speed,accuracy"),
    *("--modes", "fp32", "--batch-sizes", "4,8", "--repeats", "2", "--warmup", "1"),
    *("--budget", "steps=2", "--train-limit", "32", "--eval-limit", "32"),
]


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The run unsharded, its two shards, and the shards merged."""
    root = tmp_path_factory.mktemp("shards")
    made = {}
    for name, extra in (("whole", []), ("one", ["--shard", "1/2"]), ("two", ["--shard", "2/2"])):
        assert cli.main([*ARGS, *extra, "--out", str(root / name)]) == 0
        made[name] = only_run_dir(root / name)
    merged = root / "merged"
    assert reports_main(["merge", str(made["one"]), str(made["two"]), "--out", str(merged)]) == 0
    made["merged"] = merged
    return made


def keys(run_dir: Path) -> set:
    return held_items(load_run(run_dir).results)


@pytest.mark.slow
def test_two_shards_merged_hold_the_unsharded_runs_items(runs):
    one, two = keys(runs["one"]), keys(runs["two"])
    assert one and two and not one & two  # each item measured once
    assert one | two == keys(runs["whole"]) == keys(runs["merged"])


@pytest.mark.slow
def test_merged_static_figures_equal_the_unsharded(runs):
    def static(run_dir):
        r = load_run(run_dir).results
        rows = r[(r["phase"] == "static") & ~r["metric"].str.startswith("peak_rss")]
        return dict(zip(zip(rows["model"], rows["metric"]), rows["value"]))

    assert static(runs["merged"]) == static(runs["whole"])


@pytest.mark.slow
def test_shards_record_their_share_and_the_merge_its_sources(runs):
    prov = json.loads((runs["one"] / "run.json").read_text())
    assert prov["shard"] == "1/2"
    dealt = {tuple(item[1:]): item[0] for item in prov["work"]}
    assert set(dealt.values()) == {1, 2} and len(dealt) == len(keys(runs["whole"]))
    merged = json.loads((runs["merged"] / "run.json").read_text())
    assert merged["status"] == "complete" and merged["missing"] == []
    assert [m["shard"] for m in merged["merged_from"]] == ["1/2", "2/2"]
    assert "--shard" not in merged["argv"] and "--out" not in merged["argv"]
    assert (runs["merged"] / "report.md").is_file()
    assert {p.name for p in (runs["merged"] / "layers").iterdir()} == {
        "lenet.csv",
        "lenet_bn.csv",
        "small_cnn.csv",
    }


@pytest.mark.slow
def test_a_missing_shard_is_named_and_the_rest_merged(runs, tmp_path, capsys):
    out = tmp_path / "half"
    # a shard merged with a copy of the unsharded run would hold items twice; alone it is
    # refused (two runs at least), so merge shard 1 with an empty-handed shard 2: its results
    # cut to nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    for f in ("run.json", "results.csv"):
        (empty / f).write_text((runs["two"] / f).read_text())
    header = (empty / "results.csv").read_text().splitlines()[0]
    (empty / "results.csv").write_text(header + "\n")
    assert reports_main(["merge", str(runs["one"]), str(empty), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "were dealt to a shard but are in no run merged" in err
    merged = json.loads((out / "run.json").read_text())
    assert merged["status"] == "incomplete" and merged["missing"]
    assert keys(out) == keys(runs["one"])


@pytest.mark.slow
def test_merging_a_shard_twice_or_unlike_runs_exits_2(runs, tmp_path, capsys):
    twice = ["merge", str(runs["one"]), str(runs["one"]), "--out", str(tmp_path / "a")]
    assert reports_main(twice) == 2
    assert "is in both" in capsys.readouterr().err
    unlike = ["merge", str(runs["one"]), str(runs["whole"]), "--out", str(tmp_path / "b")]
    assert reports_main(unlike) == 2  # the unsharded run holds shard 1's items too
    assert "is in both" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    prov = json.loads((runs["two"] / "run.json").read_text())
    (other / "run.json").write_text(json.dumps(prov | {"spec": prov["spec"] | {"threads": 1}}))
    (other / "results.csv").write_text((runs["two"] / "results.csv").read_text())
    args = ["merge", str(runs["one"]), str(other), "--out", str(tmp_path / "c")]
    assert reports_main(args) == 2
    assert "their specs (but shard) differ" in capsys.readouterr().err
    # run folders from before run.json held a spec: their commands are compared
    old = {}
    for name, run in (("old_one", runs["one"]), ("old_two", other)):
        old[name] = tmp_path / name
        old[name].mkdir()
        legacy = json.loads((run / "run.json").read_text())
        legacy.pop("spec")
        if name == "old_two":
            legacy["argv"] = [*legacy["argv"], "--threads", "1"]
        (old[name] / "run.json").write_text(json.dumps(legacy))
        (old[name] / "results.csv").write_text((run / "results.csv").read_text())
    args = ["merge", str(old["old_one"]), str(old["old_two"]), "--out", str(tmp_path / "d")]
    assert reports_main(args) == 2
    assert "their commands (but --shard and --out) differ" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        reports_main(["merge", str(runs["one"]), str(runs["two"])])
    assert exited.value.code == 2
    assert "the following arguments are required: --out" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "x/y", "1/0"])
def test_a_bad_shard_spec_exits_2(text, capsys):
    assert cli.main(["--models", "lenet", "--phases", "static", "--shard", text]) == 2
    assert "--shard" in capsys.readouterr().err


def test_the_partition_balances_costs_and_is_the_same_every_time():
    items = {("speed", f"m{i}", "fp32", 8): float(c) for i, c in enumerate([9, 7, 6, 5, 4, 3, 2])}
    owner = partition(items, 3)
    loads = [sum(c for item, c in items.items() if owner[item] == k) for k in (1, 2, 3)]
    assert max(loads) - min(loads) <= 3 and sum(loads) == 36
    assert partition(dict(reversed(items.items())), 3) == owner
    assert parse_shard("2/3") == Shard(2, 3)
    assert without_shard(["--models", "x", "--shard", "1/2", "--shard=2/2"]) == ["--models", "x"]


@pytest.mark.slow
def test_the_local_launcher_runs_the_shards_and_merges_them(tmp_path, capsys):
    """--launcher local: the shards as submitit's local jobs, then one merged run folder
    holding every item of the run."""
    args = [
        *("--models", "lenet,lenet_bn", "--phases", "static,speed", "--modes", "fp32"),
        *("--batch-sizes", "4,8", "--repeats", "2", "--warmup", "1"),
    ]
    assert cli.main([*args, "--launcher", "local", "--shards", "2", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "2 shards submitted through submitit (local" in err and "merged 2 shards" in err
    (merged,) = [p for p in tmp_path.iterdir() if p.name != "shards"]
    prov = json.loads((merged / "run.json").read_text())
    assert prov["status"] == "complete" and prov["shards"] == ["1/2", "2/2"]
    dealt = {
        tuple(item[1:])
        for item in json.loads(
            (next((tmp_path / "shards" / "1").iterdir()) / "run.json").read_text()
        )["work"]
    }
    assert keys(merged) == dealt and (merged / "report.md").is_file()


def test_launcher_options_are_checked(tmp_path, capsys, monkeypatch):
    base = ["--models", "lenet", "--phases", "static", "--out", str(tmp_path)]
    assert cli.main([*base, "--launcher", "local"]) == 2
    assert "--launcher and --shards go together" in capsys.readouterr().err
    assert cli.main([*base, "--launcher", "local", "--shards", "2", "--shard", "1/2"]) == 2
    assert "leave out --shard" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)
    assert cli.main([*base, "--launcher", "slurm", "--shards", "2"]) == 2
    assert "pip install 'archbench[cluster]'" in capsys.readouterr().err


def test_a_slurm_launch_where_there_is_no_slurm_is_a_clear_refusal(tmp_path, capsys, monkeypatch):
    """No srun on the PATH (no Slurm): submitit cannot make its executor; the launch says so."""
    monkeypatch.setenv("PATH", str(tmp_path))
    args = ["--models", "lenet", "--phases", "static", "--out", str(tmp_path)]
    assert cli.main([*args, "--launcher", "slurm", "--shards", "2"]) == 2
    err = capsys.readouterr().err
    assert "--launcher slurm: " in err and "run it on a Slurm login node" in err
    assert "Traceback" not in err


def slurm_node_idle() -> bool:
    if shutil.which("sinfo") is None:
        return False
    found = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return "idle" in found.stdout


@pytest.mark.skipif(not slurm_node_idle(), reason="no Slurm node idle (.ci/slurm-single-node)")
def test_shards_run_as_a_slurm_array_and_merge(tmp_path):
    """Two shards submitted to a real Slurm through submitit: one array job, a task per shard
    (each shard's run.json names its array task), merged into one complete run. In a process
    of its own, with a time limit: a job Slurm never runs fails the test, not CI's clock."""
    args = ["--models", "lenet,lenet_bn", "--phases", "static", "--out", str(tmp_path)]
    launched = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--launcher", "slurm", "--shards", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parent.parent,
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert "2 shards submitted through submitit (slurm" in launched.stderr
    (merged,) = [p for p in tmp_path.iterdir() if p.name != "shards"]
    prov = json.loads((merged / "run.json").read_text())
    assert prov["status"] == "complete" and prov["shards"] == ["1/2", "2/2"]
    slurm = [m["slurm"] for m in prov["merged_from"]]
    assert sorted(s["slurm_array_task_id"] for s in slurm) == ["0", "1"]
    assert len({s["slurm_array_job_id"] for s in slurm}) == 1
    assert {k[1] for k in keys(merged)} == {"lenet", "lenet_bn"}


@pytest.mark.skipif(not slurm_node_idle(), reason="no Slurm node idle (.ci/slurm-single-node)")
def test_a_slurm_shard_whose_process_died_is_submitted_again(tmp_path):
    """Shard 2's process dies (os._exit, as on a lost node) on a Slurm that keeps no
    accounting, so sacct cannot say it failed: it leaves the queue without its result, the
    launcher sees that, submits it again with --resume and merges both shards."""
    tests = Path(__file__).parent
    argv = ["--models", "lenet,lenet_bn", "--phases", "static"]
    code = (
        "import sys; from pathlib import Path; import crashing_shard; "
        "from bench.run import launchers as launch; from bench.run.options import spec_from_argv; "
        f"sys.exit(launch.launch(spec_from_argv({argv!r}), Path({str(tmp_path)!r}), 2, 'slurm', "
        "launch.SlurmOptions(), runner=crashing_shard.crash_once))"
    )
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(tests), *sys.path]),
        "ARCHBENCH_TEST_MARKER": str(tmp_path / "crashed"),
    }
    launched = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )
    assert launched.returncode == 0, launched.stderr[-2000:]
    assert (tmp_path / "crashed").is_file()
    assert "shard 2/2 failed" in launched.stderr and "submitted again" in launched.stderr
    (merged,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name != "shards"]
    assert {k[1] for k in keys(merged)} == {"lenet", "lenet_bn"}


def test_devices_are_checked_before_anything_runs(tmp_path, capsys):
    base = ["--models", "lenet", "--phases", "static", "--out", str(tmp_path)]
    assert cli.main([*base, "--devices", "cuda:0,cuda:1"]) == 2
    assert "cuda:1 does not exist" in capsys.readouterr().err
    assert cli.main([*base, "--devices", "cuda:0"]) == 2
    assert "two or more different GPUs" in capsys.readouterr().err
    assert cli.main([*base, "--devices", "gpu0,gpu1"]) == 2
    assert "--devices takes cuda:N" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_each_shard_gets_the_launch_spec_with_its_shard(tmp_path):
    """The launcher hands each job a spec, not a command line: the launch's spec with its
    ``shard`` set, and its own folder under OUT/shards."""
    from bench.run import launchers as launch
    from bench.run.options import build_spec_parser, spec_from_args

    spec = spec_from_args(
        build_spec_parser().parse_args(["--models", "lenet", "--phases", "static"])
    )
    calls = []

    class Recorder:
        def map_array(self, fn, *columns):
            calls.extend(zip(*columns))
            raise RuntimeError("recorded")  # no job starts

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(launch, "_executor", lambda *a: Recorder())
        with pytest.raises(launch.UsageError, match="recorded"):
            launch.launch(spec, tmp_path, 3, "local", launch.SlurmOptions())
    assert [c[0] for c in calls] == [dataclasses.replace(spec, shard=(k, 3)) for k in (1, 2, 3)]
    assert [c[1] for c in calls] == [tmp_path / "shards" / str(k) for k in (1, 2, 3)]
    assert [c[2] for c in calls] == [False] * 3  # not resumed: the first submission


def write_device_run(run_dir: Path, device: str, speeds: dict[str, float], size: int) -> Path:
    """A run of one command on ``device``: figures given, the rows as the phases write them."""
    from make_rows import row

    from runfolder.writer import RunWriter

    argv = ["--models", ",".join(speeds), "--phases", "static,speed", "--out", str(run_dir)]
    writer = RunWriter(run_dir, {"device_name": device, "git_commit": "abc", "argv": argv})
    rows = []
    for model, speed in speeds.items():
        rows += [
            row(model, "f", "static", "input_height", size),
            row(model, "f", "static", "input_width", size),
            row(model, "f", "speed", "infer_throughput", speed, mode="fp32", batch=8),
        ]
    writer.add(rows)
    writer.finish("complete")
    return run_dir


def test_runs_on_two_devices_merge_side_by_side(tmp_path, capsys):
    a = write_device_run(tmp_path / "a", "GPU A", {"m1": 100.0, "m2": 50.0, "m3": 10.0}, 32)
    b = write_device_run(tmp_path / "b", "GPU B", {"m1": 300.0, "m2": 100.0, "m3": 40.0}, 32)
    assert reports_main(["merge", str(a), str(b), "--out", str(tmp_path / "same")]) == 2
    err = capsys.readouterr().err
    assert "their devices differ" in err and "add --across-devices" in err
    out = tmp_path / "merged"
    assert reports_main(["merge", str(a), str(b), "--out", str(out), "--across-devices"]) == 0
    from reports import charts
    from reports.tables import device_comparison

    run = load_run(out)
    table = device_comparison(run.results)
    assert list(table.columns) == ["GPU A", "GPU B", "GPU B / GPU A"]
    ratios = table["GPU B / GPU A"].droplevel(["mode", "batch", "input"])
    assert ratios.to_dict() == {"m1": 3.0, "m2": 2.0, "m3": 4.0}
    fig = charts.throughput_by_device(run)
    assert sum(len(c.patches) for c in fig.axes[0].containers) == 6
    assert "Devices compared" in (out / "report.md").read_text()


def test_a_merge_across_devices_keeps_each_devices_per_model_files(tmp_path):
    """Both devices wrote confusion/m1.csv and learning curves of m1: the first device's stay
    the merged run's own, the second's go to devices/GPU-B/, none overwritten."""
    runs = {}
    for device, accuracy in (("GPU A", 70.0), ("GPU B", 71.0)):
        run_dir = write_device_run(tmp_path / device[-1], device, {"m1": 100.0}, 32)
        (run_dir / "confusion").mkdir()
        (run_dir / "confusion" / "m1.csv").write_text(f"made on,{device}\n")
        pd.DataFrame([{"model": "m1", "seed": 0, "epoch": 1, "test_acc": accuracy}]).to_csv(
            run_dir / "curves.csv", index=False
        )
        runs[device] = run_dir
    out = tmp_path / "merged"
    argv = ["merge", *map(str, runs.values()), "--out", str(out), "--across-devices"]
    assert reports_main(argv) == 0
    assert (out / "confusion" / "m1.csv").read_text() == "made on,GPU A\n"
    other = out / "devices" / "GPU-B"
    assert (other / "confusion" / "m1.csv").read_text() == "made on,GPU B\n"
    assert list(pd.read_csv(out / "curves.csv")["test_acc"]) == [70.0]
    assert list(pd.read_csv(other / "curves.csv")["test_acc"]) == [71.0]
    assert load_run(out).provenance["device_folders"] == {"GPU B": "devices/GPU-B"}


def test_figures_at_other_input_sizes_are_not_compared(tmp_path):
    a = write_device_run(tmp_path / "a", "GPU A", {"m1": 100.0}, 32)
    b = write_device_run(tmp_path / "b", "GPU B", {"m1": 300.0}, 64)
    out = tmp_path / "merged"
    assert reports_main(["merge", str(a), str(b), "--out", str(out), "--across-devices"]) == 0
    from reports.tables import device_comparison

    table = device_comparison(load_run(out).results)
    assert len(table) == 2 and table["GPU B / GPU A"].isna().all()


def test_compare_sets_a_figure_only_beside_the_same_input_size(tmp_path, capsys):
    """--compare of runs on two devices: m1 measured at 32x32 on both is compared with its
    ratio; m2 at 32x32 on one and 64x64 on the other is left out, with a warning naming it."""
    a = write_device_run(tmp_path / "a", "GPU A", {"m1": 100.0}, 32)
    b = write_device_run(tmp_path / "b", "GPU B", {"m1": 300.0}, 32)
    write_device_run(tmp_path / "a2", "GPU A", {"m2": 50.0}, 32)
    write_device_run(tmp_path / "b2", "GPU B", {"m2": 100.0}, 64)
    from reports.compare import compare_runs, compare_warnings

    table = compare_runs(a, b)
    speed = table[table["metric"] == "infer_throughput"].set_index("model")
    assert speed.loc["m1", "B / A"] == 3.0 and speed.loc["m1", "input"] == "32x32"
    assert compare_runs(tmp_path / "a2", tmp_path / "b2").empty
    (warning,) = [
        w for w in compare_warnings(tmp_path / "a2", tmp_path / "b2") if "input sizes" in w
    ]
    assert "m2 (A: 32x32; B: 64x64)" in warning
    assert reports_main(["--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "the runs differ in device (A: GPU A; B: GPU B)" in out and "32x32" in out


def test_compare_writes_its_table_and_the_chart_of_each_runs_device(tmp_path):
    a = write_device_run(tmp_path / "a", "GPU A", {"m1": 100.0, "m2": 10.0}, 32)
    b = write_device_run(tmp_path / "b", "GPU B", {"m1": 300.0, "m2": 40.0}, 32)
    out = tmp_path / "compared"
    assert reports_main(["--compare", str(a), str(b), "--out", str(out)]) == 0
    text = (out / "compare.md").read_text()
    assert "the runs differ in device (A: GPU A; B: GPU B)" in text
    assert "| m2 " in text and "![throughput by device](throughput_by_device.png)" in text
    from reports import charts
    from reports.compare import side_by_side

    fig = charts.throughput_by_device(side_by_side(load_run(a), load_run(b)))
    bars = [[p.get_height() for p in c.patches] for c in fig.axes[0].containers]
    assert bars == [[100.0, 10.0], [300.0, 40.0]]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "A: GPU A",
        "B: GPU B",
    ]
    image = matplotlib.image.imread(out / "throughput_by_device.png")
    assert image.shape[1] >= 900 and image[..., :3].std() > 0.05


def test_without_static_rows_the_asked_input_size_is_compared():
    """From the run's spec; a run folder from before run.json held one: from its argv."""
    from reports.compare import OWN_SIZE, asked_input_size

    assert asked_input_size({"spec": {"input_size": [56, 48]}, "argv": ["--input-size", "9"]}) == (
        "56x48"
    )
    assert asked_input_size({"spec": {"input_size": None}}) == OWN_SIZE
    assert asked_input_size({"argv": ["--models", "x", "--input-size", "56"]}) == "56x56"
    assert asked_input_size({"argv": ["--input-size=40x48"]}) == "40x48"
    assert asked_input_size({"argv": ["--models", "x"]}) == OWN_SIZE


def test_a_running_shard_is_shown_by_its_last_estimate():
    from bench.run.launchers import latest_progress

    log = (
        "archbench: 2 models, phases static; results in runs/shards/1/x\n"
        "[1/2] lenet: done in 1 s (static 1 s); about 5 s left\n"
        "[2/2] lenet_bn static: measuring\n"
    )
    assert latest_progress(log) == "[1/2] lenet: done in 1 s (static 1 s); about 5 s left"
    assert latest_progress("archbench: 2 models\n") == "archbench: 2 models"
    assert latest_progress("") is None


@pytest.mark.slow
def test_a_shard_whose_job_died_is_submitted_again_and_merged(tmp_path, monkeypatch, capsys):
    """Shard 2's first job dies (os._exit, as a lost node would end it): the launcher submits
    it once more with --resume and merges both."""
    import crashing_shard

    from bench.run import launchers as launch
    from bench.run.options import spec_from_argv

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    monkeypatch.setenv("ARCHBENCH_TEST_MARKER", str(tmp_path / "crashed"))
    spec = spec_from_argv(["--models", "lenet,lenet_bn", "--phases", "static"])
    status = launch.launch(
        spec, tmp_path, 2, "local", launch.SlurmOptions(), runner=crashing_shard.crash_once
    )
    err = capsys.readouterr().err
    assert (tmp_path / "crashed").is_file()
    assert "shard 2/2 failed" in err and "submitted again" in err
    assert status == 0 and "merged 2 shards" in err
    (merged,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name != "shards"]
    assert {k[1] for k in keys(merged)} == {"lenet", "lenet_bn"}
