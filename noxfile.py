"""nox sessions: ``nox -s bench -- ARGS`` runs the benchmark, ``nox -s report -- RUN_DIR``
rebuilds a run's tables and charts, ``nox -s gate`` checks for size and speed regressions,
``nox -s tests`` runs the tests, ``nox -s gpu-check`` proves the GPU figures.

Both sessions share one virtual environment, ``.nox/archbench``: torch is gigabytes, so it is
installed once, and again only when ``pyproject.toml`` changes. The project is installed
editable, so code changes need no reinstall.
"""

from __future__ import annotations

import hashlib
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
        session.run(str(python), "-m", "pip", "install", "-e", f"{ROOT}[test]", external=True)
        stamp.write_text(wanted)
    return str(python)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Profile and benchmark: ``nox -s bench -- --models all [--gpu]`` (args go to the CLI)."""
    session.run(_venv_python(session), "-m", "bench", *session.posargs, external=True)


@nox.session(venv_backend="none")
def report(session: nox.Session) -> None:
    """Rebuild a run's tables, charts and report.md: ``nox -s report -- RUN_DIR``, or compare
    two runs: ``nox -s report -- --compare RUN_A RUN_B``."""
    if not session.posargs:
        session.error("give a run folder: nox -s report -- runs/YYYYmmdd-HHMMSS")
    session.run(_venv_python(session), "-m", "reports", *session.posargs, external=True)


HARNESS_BENCHMARKS = "bench/baselines/pytest-benchmark"


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
    bench_args = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "tests/test_harness_overhead.py", "--benchmark-only", storage]  # fmt: skip
    if "--update-baseline" in session.posargs:
        session.run(*bench_args, "--benchmark-save=baseline", external=True)
    else:
        session.run(*bench_args, "--benchmark-compare", "--benchmark-compare-fail=median:200%",
                    external=True)  # fmt: skip


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite: ``nox -s tests -- [pytest args]``."""
    session.run(_venv_python(session), "-m", "pytest", *session.posargs, external=True)


@nox.session(name="gpu-check", venv_backend="none")
def gpu_check(session: nox.Session) -> None:
    """Prove the GPU figures: ``nox -s gpu-check -- [--data-dir DIR] [--resume]`` (CUDA only;
    args go to ``python -m bench.gpu_check``)."""
    session.run(_venv_python(session), "-m", "bench.gpu_check", *session.posargs, external=True)
