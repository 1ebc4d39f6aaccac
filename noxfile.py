"""nox sessions: ``nox -s bench -- ARGS`` runs the benchmark, ``nox -s report -- RUN_DIR``
rebuilds a run's tables and charts, ``nox -s gate`` checks for size and speed regressions,
``nox -s tests`` runs the tests, ``nox -s lint`` runs ruff, ``nox -s gpu-check`` proves the GPU
figures.

Both sessions share one virtual environment, ``.nox/archbench`` (the project with its test,
timm and cluster extras): torch is gigabytes, so it is installed once, and again only when
``pyproject.toml`` changes. The project is installed editable, so code changes need no
reinstall.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests"]

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".nox" / "archbench"


def _venv_python(session: nox.Session) -> str:
    python = VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    stamp = VENV / "pyproject.sha256"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(VENV), external=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        session.run(str(python), "-m", "pip", "install", "--upgrade", "pip", external=True)
        session.run(
            str(python), "-m", "pip", "install", "-e", f"{ROOT}[test,timm,cluster]", external=True
        )
        stamp.write_text(wanted)
    return str(python)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Profile and benchmark: ``nox -s bench -- --models all [--gpu]`` (args go to the CLI)."""
    session.run(_venv_python(session), "-m", "bench", *session.posargs, external=True)


# pinned: the formatter's output changes between releases, and a check must not fail on a
# release that code did not change
RUFF = "ruff==0.17.6"
IMPORT_LINTER = "import-linter==2.17"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check (the rule set in pyproject.toml), ruff format --check, and import-linter's
    contracts (pyproject.toml, [tool.importlinter]: the layers, no import cycle), on the whole
    tree."""
    session.install(RUFF, IMPORT_LINTER)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Rebuild a run's tables, charts and report.md: ``nox -s report -- RUN_DIR``; compare two
    runs: ``nox -s report -- --compare RUN_A RUN_B``; merge shards or devices: ``nox -s report
    -- merge RUN_DIR... --out MERGED [--across-devices]``."""
    if not session.posargs:
        session.error("give a run folder: nox -s report -- runs/YYYYmmdd-HHMMSS")
    session.run(_venv_python(session), "-m", "reports", *session.posargs, external=True)


HARNESS_BENCHMARKS = "bench/baselines/pytest-benchmark"
# pytest-benchmark's id for this machine's folder of saved runs, and its machine_info
MACHINE_INFO = (
    "import json; from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info as m; "
    "from pytest_benchmark.utils import get_machine_id as i; print(json.dumps([i(), m()]))"
)
IGNORE_MACHINE_INFO = (
    "ignore:Benchmark machine_info is different:pytest_benchmark.logger.PytestBenchmarkWarning"
)


def machine_differences(saved: dict, current: dict) -> list[str]:
    """The machine_info fields (``cpu.*`` for the CPU's) in which two machines differ."""

    def flat(info: dict) -> dict:
        rest = {k: v for k, v in info.items() if k != "cpu"}
        return rest | {f"cpu.{k}": v for k, v in info.get("cpu", {}).items()}

    a, b = flat(saved), flat(json.loads(json.dumps(current)))  # tuples compare as JSON lists
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _compare_machine(session: nox.Session, python: str) -> list[str]:
    """pytest-benchmark warns, with both machine_infos in full (kilobytes), whenever the saved
    run's machine differs from this one in anything, a kernel update included. A kernel update
    leaves the comparison standing: silenced. Any other difference is named in one line, and
    the comparison is shown but cannot fail: microsecond medians from another CPU say nothing
    about this change (the same bare forward, untouched code, read 1.6x and 3.5x slower than
    the saved run on another EPYC model), as bench.gate treats a device without a
    baseline."""
    out = session.run(
        python, "-c", MACHINE_INFO, silent=True, stderr=subprocess.DEVNULL, external=True
    )
    machine_id, current = json.loads(out)
    saved = sorted((ROOT / HARNESS_BENCHMARKS / machine_id).glob("[0-9][0-9][0-9][0-9]_*.json"))
    if not saved:
        return []
    differs = machine_differences(json.loads(saved[-1].read_text())["machine_info"], current)
    quiet = ["-W", IGNORE_MACHINE_INFO] if differs else []
    if differs and differs != ["release"]:
        session.warn(
            f"the harness benchmarks in {saved[-1].relative_to(ROOT)} were saved on "
            f"another machine ({', '.join(differs)} differ): compared for information, "
            "not gated; `nox -s gate -- --update-baseline` saves this machine's"
        )
        return quiet
    return [*quiet, "--benchmark-compare-fail=median:200%"]


@nox.session(venv_backend="none")
def gate(session: nox.Session) -> None:
    """The regression gate: ``nox -s gate`` checks, ``nox -s gate -- --update-baseline``
    rewrites this device's baseline (args go to ``python -m bench.gate``). Then the harness's
    own micro-benchmarks, compared by pytest-benchmark with the saved run for this machine
    (failing when a median triples: same-code runs of these microsecond benchmarks were seen
    68-111% apart on the shared CI machine); with ``--update-baseline`` they are saved anew."""
    python = _venv_python(session)
    session.run(python, "-m", "bench.gate", *session.posargs, external=True)
    storage = f"--benchmark-storage=file://{ROOT / HARNESS_BENCHMARKS}"
    bench_args = [
        python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_harness_overhead.py",
        "--benchmark-only",
        storage,
    ]
    if "--update-baseline" in session.posargs:
        session.run(*bench_args, "--benchmark-save=baseline", external=True)
    else:
        session.run(
            *bench_args, *_compare_machine(session, python), "--benchmark-compare", external=True
        )


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite: ``nox -s tests -- [pytest args]``."""
    session.run(_venv_python(session), "-m", "pytest", *session.posargs, external=True)


@nox.session(name="gpu-check", venv_backend="none")
def gpu_check(session: nox.Session) -> None:
    """Prove the GPU figures: ``nox -s gpu-check -- [--data-dir DIR] [--resume]`` (CUDA only;
    args go to ``python -m bench.gpu_check``)."""
    session.run(_venv_python(session), "-m", "bench.gpu_check", *session.posargs, external=True)
