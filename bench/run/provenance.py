"""Where and how a run was made: versions, device, commit, command line, times."""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

import torch

from runfolder.folders import now

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bench", "reports")  # what ``python -m`` runs of this checkout


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD's hash with ``-dirty`` when the tree has changes; None outside a git checkout."""
    cwd = repo or ROOT
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo; empty where there is none."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_signature() -> str:
    """Family, model and the instruction set torch's kernels dispatch to: a VM may name
    several CPU generations alike ("AMD EPYC")."""
    fields = _cpuinfo()
    parts = [f"family {fields['cpu family']} model {fields['model']}"] if "model" in fields else []
    parts.append(f"torch {torch.backends.cpu.get_cpu_capability()}")
    return ", ".join(parts)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def program(fallback: str = "bench") -> list[str]:
    """How this process was started, as a person would type it again: the console script
    (``archbench``), ``python -m MODULE`` for a module of this checkout, else ``python -m
    fallback`` (``main`` called from Python, as the tests do)."""
    script = Path(sys.argv[0])
    if script.suffix == ".py":
        try:
            module = script.resolve().relative_to(ROOT).with_suffix("")
        except ValueError:
            return ["python", "-m", fallback]
        if module.parts[0] not in PACKAGES:  # a tool installed under the checkout (.nox/...)
            return ["python", "-m", fallback]
        parts = module.parts[:-1] if module.name == "__main__" else module.parts
        return ["python", "-m", ".".join(parts)]
    try:
        scripts = {ep.name for ep in distribution("archbench").entry_points}
    except PackageNotFoundError:
        scripts = set()
    return [script.name] if script.name in scripts else ["python", "-m", fallback]


def command_line(argv: list[str]) -> str:
    """The command with ``argv``, shell-quoted, ready to paste."""
    return shlex.join([*program(), *argv])


def collect(device: torch.device, argv: list[str]) -> dict[str, object]:
    info: dict[str, object] = {
        "command": command_line(argv),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,  # the CUDA torch was built for; None: CPU build
        "torchvision": _package_version("torchvision"),
        "fvcore": _package_version("fvcore"),
        "device": str(device),
        "device_name": device_description(device),
        "cpu_threads": torch.get_num_threads(),
        "started": now(),
    }
    if device.type == "cuda":  # the versions the figures ran on; a CPU run used none
        info["cuda"] = torch.version.cuda
        cudnn = torch.backends.cudnn
        info["cudnn"] = cudnn.version() if cudnn.is_available() else None
        info["cuda_driver"] = _nvidia_driver()
    slurm = {k.lower(): os.environ[k] for k in SLURM_IDS if os.environ.get(k)}
    if slurm:  # which job and array task of a cluster ran it
        info["slurm"] = slurm
    return info


SLURM_IDS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_NODELIST")


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None
