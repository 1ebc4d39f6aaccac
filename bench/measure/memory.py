"""The process's peak resident memory while a block runs: how a CPU run reports memory.

On Linux the kernel keeps the peak itself (``VmHWM`` in /proc/self/status) and lets a process
reset it to the present size (writing 5 to /proc/self/clear_refs, Linux 4.0 on), so the peak
of a block is exact and costs nothing while it runs. Where the reset is refused, a thread
samples ``VmRSS`` instead, which can miss a peak shorter than its interval. Where there is no
/proc (macOS, Windows) nothing is measured.
"""

from __future__ import annotations

import threading
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
SAMPLE_INTERVAL_S = 0.05


def status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None without it."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def reset_peak() -> bool:
    """Set the kernel's peak resident size (``VmHWM``) to the present size; False if refused."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakRss:
    """``with PeakRss() as peak: ...``: ``start_bytes`` is the resident size when the block
    began, ``peak_bytes`` its peak during the block (both None without /proc), ``method`` how
    the peak was read."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S):
        self.interval_s = interval_s
        self.start_bytes: int | None = None
        self.peak_bytes: int | None = None
        self._kernel_peak = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def method(self) -> str:
        if self._kernel_peak:
            return "VmHWM of /proc/self/status, reset (clear_refs 5) as the phase began"
        return f"VmRSS of /proc/self/status sampled every {self.interval_s * 1e3:g} ms"

    @property
    def added_bytes(self) -> int | None:
        if self.peak_bytes is None or self.start_bytes is None:
            return None
        return max(self.peak_bytes - self.start_bytes, 0)

    def _note(self, now: int | None) -> None:
        if now is not None:
            self.peak_bytes = max(self.peak_bytes or 0, now)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._note(status_bytes("VmRSS"))

    def __enter__(self) -> PeakRss:
        self.start_bytes = status_bytes("VmRSS")
        if self.start_bytes is None:
            return self
        self._note(self.start_bytes)
        self._kernel_peak = reset_peak()
        if not self._kernel_peak:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.start_bytes is None:
            return
        self._note(status_bytes("VmHWM" if self._kernel_peak else "VmRSS"))
