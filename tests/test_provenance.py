"""run.json's command: what a person pastes to run the same thing again."""

import shlex
import sys
from pathlib import Path

import pytest
import torch

from bench.run import provenance

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "script, program",
    [
        (ROOT / "bench" / "__main__.py", ["python", "-m", "bench"]),  # python -m bench
        (ROOT / "bench" / "gpu_check.py", ["python", "-m", "bench.gpu_check"]),
        (Path("/some/venv/bin/archbench"), ["archbench"]),  # the console script
        (Path("/some/venv/bin/pytest"), ["python", "-m", "bench"]),  # main() called from Python
    ],
)
def test_program_as_a_person_would_type_it(monkeypatch, script, program):
    monkeypatch.setattr(sys, "argv", [str(script), "--models", "all"])
    assert provenance.program() == program


def test_command_line_is_shell_quoted(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(ROOT / "bench" / "__main__.py")])
    argv = ["--models", "lenet, vgg16", "--out", "my runs", "--budget", "seconds=5"]
    command = provenance.command_line(argv)
    assert command == "python -m bench --models 'lenet, vgg16' --out 'my runs' --budget seconds=5"
    assert shlex.split(command)[3:] == argv


def test_a_cpu_run_records_no_cuda_version():
    info = provenance.collect(torch.device("cpu"), ["--models", "lenet"])
    assert "cuda" not in info and "cudnn" not in info and "cuda_driver" not in info
    assert info["torch_cuda_build"] == torch.version.cuda
