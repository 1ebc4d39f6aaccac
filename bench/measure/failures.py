"""What a failure means for the run: out of memory (retry smaller), a sticky CUDA error (the
CUDA context is unusable: end the run cleanly), or anything else (that measurement's row)."""

from __future__ import annotations

import torch

# cuDNN and cuBLAS report a failed workspace allocation as a RuntimeError, not as torch's
# OutOfMemoryError
_OOM_TEXT = ("out of memory", "ALLOC_FAILED")

# errors after which every later CUDA call in the process fails too (the context is poisoned)
_STICKY_TEXT = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "misaligned address",
    "illegal instruction",
    "uncorrectable ECC error",
)


class CudaContextLost(RuntimeError):
    """A sticky CUDA error: nothing more can run on the device in this process."""


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc) for t in _OOM_TEXT)


def is_sticky_cuda_error(exc: BaseException) -> bool:
    if isinstance(exc, CudaContextLost):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc) for t in _STICKY_TEXT)


def first_line(exc: BaseException, limit: int = 500) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``, for an error row."""
    return f"{type(exc).__name__}: {first_line(exc)}"
