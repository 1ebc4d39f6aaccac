"""The device a command measures on: the CPU, or with ``--gpu`` the CUDA device.

Asking for CUDA where torch sees none raises ``NoCudaError``, whose one-line message names
torch's version and CUDA build; every command prints it and exits 2.
"""

from __future__ import annotations

import torch

GPU_FLAG = "--gpu was given"
RUN_ON_CPU = "run without --gpu to measure on the CPU"


class NoCudaError(RuntimeError):
    """CUDA was asked for but torch sees no CUDA device: the user's input, exit status 2."""

    def __init__(self, asked_by: str = GPU_FLAG, remedy: str = RUN_ON_CPU):
        super().__init__(
            f"{asked_by} but no CUDA device is visible (torch {torch.__version__}, CUDA build "
            f"{torch.version.cuda or 'none'}); {remedy}"
        )


def cuda_device(asked_by: str = GPU_FLAG, remedy: str = RUN_ON_CPU) -> torch.device:
    """The CUDA device; ``NoCudaError`` (``asked_by`` but none is visible; ``remedy``) without
    one."""
    if not torch.cuda.is_available():
        raise NoCudaError(asked_by, remedy)
    return torch.device("cuda")


def pick_device(gpu: bool) -> torch.device:
    """The CUDA device with ``--gpu`` (``NoCudaError`` without one), else the CPU."""
    return cuda_device() if gpu else torch.device("cpu")
