"""The run's identity as a value: ``RunSpec`` in run.json, resume by spec equality, replay with
``--spec``, and options that are never abbreviated."""

import json
from pathlib import Path

import pytest

import archs
from bench import cli
from bench.run.options import UsageError, read_spec_file, spec_argv, spec_from_argv
from bench.spec import ModelRef, RunSpec, SpecError

ROOT = Path(__file__).resolve().parent.parent
STATIC = ["--models", "lenet,small_cnn", "--phases", "static"]


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.parametrize(
    "argv",
    [
        STATIC,
        ["--models", "resnet*", "--phases", "static,speed", "--modes", "fp32", "--repeats", "3"],
        ["--models", "lenet", "--budget", "steps=5", "--seeds", "0,1", "--train-limit", "64"],
        ["--models", "lenet", "--phases", "ddp,speed", "--batch-sizes", "4,8", "--threads", "1"],
        ["--models", "lenet", "--phases", "profile", "--trace", "--input-size", "32x40"],
        ["--models", "lenet", "--phases", "accuracy", "--accuracy-cap", "0", "--shard", "2/3"],
    ],
)
def test_a_spec_round_trips_through_json_and_its_command(argv):
    spec = spec_from_argv(argv)
    assert RunSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec_from_argv(spec_argv(spec)) == spec


def test_a_model_from_a_file_is_selected_again_by_its_absolute_path(tmp_path, monkeypatch):
    from test_sources import USER_FILE

    (tmp_path / "mine.py").write_text(USER_FILE)
    monkeypatch.chdir(tmp_path)
    with archs.registry_scope():  # the file's model is forgotten after the test
        spec = spec_from_argv(["--models", "mine.py:tiny_user_net", "--phases", "static"])
        selected = f"{tmp_path}/mine.py:tiny_user_net"
        assert spec.models == (ModelRef("tiny_user_net", "file", selected),)
        monkeypatch.chdir(ROOT)
        assert spec_from_argv(spec_argv(spec)) == spec


def test_the_device_kind_resolves_the_defaults():
    cpu = spec_from_argv(["--models", "lenet"])
    assert cpu.device == "cpu" and cpu.modes == ("fp32",) and cpu.batch_sizes == (8,)
    assert cpu.budget == "epochs=2" and cpu.train_limit == 10_000 and cpu.accuracy_cap_s == 120
    assert cpu.models == (ModelRef("lenet", "archbench", "lenet"),)


def test_options_of_a_phase_that_does_not_run_do_not_tell_runs_apart():
    a = spec_from_argv([*STATIC, "--budget", "steps=3", "--train-limit", "5"])
    assert a == spec_from_argv(STATIC)
    assert a.budget is None and a.train_limit is None


def test_a_spec_that_cannot_be_read_says_why():
    good = spec_from_argv(STATIC).to_json()
    with pytest.raises(SpecError, match="unknown spec fields: colour"):
        RunSpec.from_json(good | {"colour": "red"})
    with pytest.raises(SpecError, match="lacks models"):
        RunSpec.from_json({k: v for k, v in good.items() if k != "models"})
    with pytest.raises(SpecError, match="batch_sizes must be a list of int"):
        RunSpec.from_json(good | {"batch_sizes": "8"})
    with pytest.raises(SpecError, match="version 9"):
        RunSpec.from_json(good | {"version": 9})


def test_run_json_holds_the_spec_and_spec_replays_it(tmp_path, capsys):
    assert cli.main([*STATIC, "--out", str(tmp_path / "a")]) == 0
    first = only_run_dir(tmp_path / "a")
    info = json.loads((first / "run.json").read_text())
    assert RunSpec.from_json(info["spec"]) == spec_from_argv(STATIC)
    assert info["argv"][:4] == STATIC
    assert cli.main(["--spec", str(first / "run.json"), "--out", str(tmp_path / "b")]) == 0
    again = only_run_dir(tmp_path / "b")
    assert json.loads((again / "run.json").read_text())["spec"] == info["spec"]
    static = [
        r
        for r in (first / "results.csv").read_text().splitlines()
        if ",macs," in r or ",params," in r
    ]
    assert static and all(r in (again / "results.csv").read_text() for r in static)


def test_a_spec_file_of_a_few_fields_takes_the_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('models = ["lenet"]\nphases = ["static", "speed"]\nrepeats = 3\n')
    spec = read_spec_file(path)
    assert spec == spec_from_argv(
        ["--models", "lenet", "--phases", "static,speed", "--repeats", "3"]
    )
    path.write_text('models = ["lenet"]\nbatch_sizes = [0]\n')
    with pytest.raises(UsageError, match="--batch-sizes must be positive"):
        read_spec_file(path)
    path.write_text('models = ["no_such_model"]\n')
    with pytest.raises(Exception, match="no_such_model"):
        read_spec_file(path)


def test_spec_goes_with_out_resume_and_top_only(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"models": ["lenet"], "phases": ["static"]}))
    assert cli.main(["--spec", str(path), "--repeats", "2"]) == 2
    err = capsys.readouterr().err
    assert "--spec gives the run's settings: leave out --repeats" in err
    assert cli.main(["--spec", str(tmp_path / "missing.json")]) == 2
    assert "--spec" in capsys.readouterr().err


def test_resume_finds_the_folder_by_spec_not_by_the_words_typed(tmp_path, capsys):
    """The same run written differently (order, spacing, defaults spelt out) is the same spec;
    a different one starts a new folder."""
    out = str(tmp_path)
    assert cli.main([*STATIC, "--out", out]) == 0
    capsys.readouterr()
    same = ["--phases", "static", "--models", "lenet, small_cnn", "--num-classes", "10"]
    assert cli.main([*same, "--out", out, "--resume"]) == 0
    assert "holds this spec's complete run" in capsys.readouterr().err
    assert cli.main([*STATIC, "--in-channels", "3", "--out", out, "--resume"]) == 0
    assert "found no run folder of this run's spec" in capsys.readouterr().err
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_a_run_folder_from_before_the_spec_resumes_by_its_argv(tmp_path, capsys):
    assert cli.main([*STATIC, "--out", str(tmp_path)]) == 0
    run_json = only_run_dir(tmp_path) / "run.json"
    info = json.loads(run_json.read_text())
    del info["spec"]
    info["status"] = "interrupted"
    run_json.write_text(json.dumps(info))
    capsys.readouterr()
    assert cli.main([*STATIC, "--out", str(tmp_path), "--resume"]) == 0
    assert f"resuming {run_json.parent}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, full",
    [
        (["--resum"], "--resume"),
        (["--launch", "local", "--shards", "2"], "--launcher"),
        (["--model", "lenet"], "--models"),
        (["--batch", "8"], "--batch-sizes"),
    ],
)
def test_an_abbreviated_option_exits_2_naming_the_full_one(argv, full, tmp_path, capsys):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not abbreviated" in err and full in err
    assert not any(tmp_path.iterdir())
