"""The backend switches that change a figure without changing the model: cuDNN's autotuner
(``torch.backends.cudnn.benchmark``), TF32 for matmuls and for cuDNN, and the CPU's threads.

Every measured figure runs inside ``applied(state)``: the switches are set explicitly (never
inherited from whatever ran before), restored afterwards, and ``state.describe(device)`` goes
into the figure's ``method``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class BackendState:
    cudnn_benchmark: bool  # cuDNN tries its algorithms on each new shape and keeps the fastest
    tf32_matmul: bool
    tf32_cudnn: bool

    def describe(self, device: torch.device) -> str:
        if device.type != "cuda":
            return f"{torch.get_num_threads()} CPU threads"
        on = {True: "on", False: "off"}
        return (
            f"cuDNN benchmark {on[self.cudnn_benchmark]}, TF32 matmul "
            f"{on[self.tf32_matmul]}, TF32 cuDNN {on[self.tf32_cudnn]}"
        )

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


def for_precision(precision: str, device: torch.device) -> BackendState:
    """The suite's policy: cuDNN autotuning on for every GPU figure (the first call of a shape
    pays for it, outside the timed blocks); TF32 only in ``tf32`` modes, so that ``fp32`` is IEEE
    fp32 for cuDNN too (PyTorch's own default leaves TF32 on for convolutions)."""
    tf32 = precision == "tf32"
    return BackendState(cudnn_benchmark=device.type == "cuda", tf32_matmul=tf32, tf32_cudnn=tf32)


def current() -> BackendState:
    return BackendState(
        cudnn_benchmark=torch.backends.cudnn.benchmark,
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        tf32_cudnn=torch.backends.cudnn.allow_tf32,
    )


def _set(state: BackendState) -> None:
    torch.backends.cudnn.benchmark = state.cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = state.tf32_matmul
    torch.backends.cudnn.allow_tf32 = state.tf32_cudnn


@contextlib.contextmanager
def applied(state: BackendState) -> Iterator[BackendState]:
    """Set ``state`` for the block, then restore what was there before."""
    saved = current()
    _set(state)
    try:
        yield state
    finally:
        _set(saved)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op CPU threads (None: torch's default); returns the count in use."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
