"""Starting N processes of one of the suite's modules with torchrun on this machine, as the ddp
phase and the accuracy phase's data-parallel training do."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable

from archs import ModelEntry


def model_spec(entry: ModelEntry) -> str:
    """How a worker process names the model: a user's file by its path and builder."""
    if entry.source == "file":
        return f"{entry.builder.__code__.co_filename}:{entry.builder.__name__}"
    return entry.name


class TorchrunError(RuntimeError):
    """The processes failed: the message is the worker's own exception where it printed one."""


def torchrun(
    module: str,
    spec: str,
    processes: int,
    timeout_s: float | None = None,
    on_line: Callable[[str], None] = lambda _: None,
) -> None:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m MODULE SPEC``; each
    line the processes print goes to ``on_line`` as it comes. Raises ``TorchrunError`` when
    they fail or run past ``timeout_s``."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(processes),
        "-m",
        module,
        spec,
    ]
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, kill) if timeout_s else None
        if timer:
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                on_line(line.rstrip("\n"))
            code = proc.wait()
        finally:
            if timer:
                timer.cancel()
            if proc.poll() is None:  # interrupted while reading: no orphaned workers
                proc.kill()
                proc.wait()
        stderr.seek(0)
        errors = stderr.read()
    if code != 0:
        cause = f"killed after {timeout_s:g} s" if timed_out.is_set() else worker_error(errors)
        raise TorchrunError(f"torchrun with {processes} processes failed: {cause}")


def worker_error(stderr: str) -> str:
    """The worker's own exception from torchrun's output (``[rank0]: RuntimeError: ...``),
    rather than torchrun's ChildFailedError about it."""
    lines = [re.sub(r"^\[rank\d+\]:\s*", "", line) for line in stderr.splitlines()]
    raised = [
        line
        for line in lines
        if re.match(r"^[\w.]*(Error|Exception): ", line) and "ChildFailedError" not in line
    ]
    return (raised or [line for line in lines if line.strip()] or ["no output"])[-1].strip()
