"""Keep freed memory in the process, so CPU timings are not page-fault timings.

glibc's malloc serves a large block (over 32 MiB at most) with a fresh mmap and returns it to
the kernel when freed, so every step of a model with large activations page-faults its memory
in anew. Measured on the 2-core CI machine (DenseNet at 96x96, batch 64, one thread): about
2 million minor faults per 30 forward passes, a third of the wall time spent in the kernel, and
a fault count that differs from process to process, which made the same code read up to 12%
faster or slower in one process than in the next. With freed memory kept, the faults are gone
and the processes agree within a few percent.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_MAX = -4


def keep_freed_memory() -> str:
    """Ask glibc never to mmap a block and never to trim the heap; say what was done."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, TypeError, AttributeError):
        return "allocator as is (no glibc mallopt)"
    if mallopt(M_MMAP_MAX, 0) != 1 or mallopt(M_TRIM_THRESHOLD, 2**31 - 1) != 1:
        return "allocator as is (mallopt refused)"
    return "glibc malloc keeps freed memory (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1)"
