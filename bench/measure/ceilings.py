"""Peak arithmetic throughput of a device, for MFU: a table of datasheet peaks, else measured;
and the roofline's ceilings for run.json, whose measured figures a run takes at its start and
its end, keeping the best (a busy machine reads low, and no honest figure should beat them).

Datasheet figures are NVIDIA's dense (no sparsity) tensor-core peaks in TFLOP/s; ``fp32`` is
the non-tensor-core figure, since fp32 mode here turns TF32 off.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bench.measure.backends import applied, for_precision
from bench.measure.timers import Timer


@dataclass(frozen=True)
class Datasheet:
    """One NVIDIA device's datasheet figures: memory bandwidth and dense (no sparsity) peaks."""

    label: str  # the name its figures are sourced under
    pattern: str  # matched against torch.cuda.get_device_name: the first row that matches wins
    gbs: float  # memory bandwidth, GB/s (10^9 bytes/s)
    fp32: float  # TFLOP/s, by precision; None: the device has no such arithmetic
    tf32: float | None
    bf16: float | None
    fp16: float
    compute_label: str = ""  # the name its compute peaks are sourced under, where not ``label``

    @property
    def tflops(self) -> dict[str, float]:
        peaks = {"fp32": self.fp32, "tf32": self.tf32, "bf16": self.bf16, "fp16": self.fp16}
        return {precision: tflops for precision, tflops in peaks.items() if tflops is not None}


# the specific patterns come first
DATASHEETS: list[Datasheet] = [
    # label, pattern, GB/s, TFLOP/s fp32, tf32, bf16, fp16
    Datasheet("H100 NVL", r"H100 NVL", 3900.0, 60.0, 417.5, 835.5, 835.5),
    Datasheet("H100 PCIe", r"H100.*PCIe", 2000.0, 51.2, 378.0, 756.0, 756.0),
    Datasheet("H100 SXM", r"H100", 3350.0, 66.9, 494.7, 989.4, 989.4),
    Datasheet("H200 NVL", r"H200 NVL", 4800.0, 60.0, 417.5, 835.5, 835.5),
    Datasheet("H200 SXM", r"H200", 4800.0, 66.9, 494.7, 989.4, 989.4),
    # both memory sizes: one compute datasheet, "A100"
    Datasheet("A100 80GB", r"A100.*80GB", 2039.0, 19.5, 156.0, 312.0, 312.0, "A100"),
    Datasheet("A100 40GB", r"A100", 1555.0, 19.5, 156.0, 312.0, 312.0, "A100"),
    Datasheet("L40S", r"\bL40S\b", 864.0, 91.6, 183.0, 362.0, 362.0),
    Datasheet("L4", r"\bL4\b", 300.0, 30.3, 60.0, 121.0, 121.0),
    Datasheet("A10G", r"A10G", 600.0, 31.2, 62.5, 125.0, 125.0),
    Datasheet("A10", r"\bA10\b", 600.0, 31.2, 62.5, 125.0, 125.0),
    Datasheet("V100", r"V100", 900.0, 15.7, None, None, 125.0),  # no TF32 or bf16 before Ampere
    Datasheet("T4", r"\bT4\b", 320.0, 8.1, None, None, 65.0),
]


def datasheet(device_name: str) -> Datasheet | None:
    """The first row of ``DATASHEETS`` whose pattern ``device_name`` matches, if any."""
    return next((d for d in DATASHEETS if re.search(d.pattern, device_name)), None)


# run.json's "ceilings": {"compute": {precision: {"tflops", "source"[, "measurements"]}},
# "bandwidth": {"gbs", "source"[, "measurements"]}}
Ceilings = dict[str, Any]


@dataclass(frozen=True)
class Peak:
    tflops: float
    source: str  # "<label> datasheet <precision> peak", or how it was measured


def datasheet_peak(device_name: str, precision: str) -> Peak | None:
    sheet = datasheet(device_name)
    if sheet is None or precision not in sheet.tflops:
        return None
    return Peak(
        sheet.tflops[precision], f"{sheet.compute_label or sheet.label} datasheet {precision} peak"
    )


def datasheet_bandwidth(device_name: str) -> dict[str, Any] | None:
    """run.json's bandwidth ceiling from the datasheet, if the device is in it."""
    sheet = datasheet(device_name)
    return None if sheet is None else {"gbs": sheet.gbs, "source": f"{sheet.label} datasheet"}


def measured_matmul_peak(
    device: torch.device,
    precision: str,
    n: int | None = None,
    *,
    blocks: int = 10,
    warmup_s: float = 0.5,
    min_block_s: float = 0.05,
) -> Peak:
    """TFLOP/s of an n x n x n matmul at ``precision``, for devices the table does not know,
    the CPU included: the fastest of ``blocks`` timed blocks (a peak is a best case), after
    ``warmup_s`` seconds of matmuls (clocks up, thread pool and caches warm).

    Without ``n``, n doubles from 256 until one matmul takes 0.1 s (smaller ones read low) or
    n reaches 2048 (CPU) or 8192 (CUDA): a CPU without native bf16 takes tens of seconds over
    one 2048^3 bf16 matmul."""
    timer = Timer(device)
    with applied(for_precision(precision, device)):
        size = n or 256
        matmul = _matmul(device, precision, size)
        one = min(timer.block(matmul, 1) for _ in range(2))  # the first call is cold
        while n is None and one < 0.1 and size < _max_matmul_size(device):
            size *= 2
            matmul = _matmul(device, precision, size)
            one = min(timer.block(matmul, 1) for _ in range(2))
        seconds = _fastest(
            timer, matmul, one, blocks=blocks, warmup_s=warmup_s, min_block_s=min_block_s
        )
    return Peak(
        2 * size**3 / seconds / 1e12,
        f"fastest of {blocks} blocks of a {size}^3 {precision} matmul, warm",
    )


def _fastest(
    timer: Timer,
    fn: Callable[[], object],
    one: float,
    *,
    blocks: int,
    warmup_s: float,
    min_block_s: float,
) -> float:
    """Seconds per call of ``fn`` in the fastest of ``blocks`` blocks of at least
    ``min_block_s``, after ``warmup_s`` seconds of calls; ``one``: a call's seconds so far."""
    warm_until = time.perf_counter() + warmup_s
    while time.perf_counter() < warm_until:
        one = min(one, timer.block(fn, 1))
    iters = max(1, math.ceil(min_block_s / max(one, 1e-9)))
    return min(timer.block(fn, iters) for _ in range(blocks))


def _matmul(device: torch.device, precision: str, n: int) -> Callable[[], object]:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty_like(a)
    return lambda: torch.matmul(a, b, out=out)


def _max_matmul_size(device: torch.device) -> int:
    return 8192 if device.type == "cuda" else 2048


_measured: dict[tuple[str, str], Peak] = {}


def _remember(device: torch.device, precision: str, peak: Peak) -> Peak:
    """Keep the best measured peak of the process; returns it."""
    key = (str(device), precision)
    if key not in _measured or peak.tflops > _measured[key].tflops:
        _measured[key] = peak
    return _measured[key]


def device_peak(device: torch.device, device_name: str, precision: str) -> Peak:
    """The peak MFU rows divide by: the datasheet's, else the best measured in this process
    (measured once, then cached; ``device_ceilings`` adds its measurements to the cache)."""
    peak = datasheet_peak(device_name, precision) if device.type == "cuda" else None
    if peak is None:
        peak = _measured.get((str(device), precision))
    if peak is None:
        peak = _remember(device, precision, measured_matmul_peak(device, precision))
    if device.type != "cuda" and precision != "fp32":
        peak = _at_least_fp32(peak, device_peak(device, device_name, "fp32"), precision)
    return peak


def _at_least_fp32(peak: Peak, fp32: Peak, precision: str) -> Peak:
    """A CPU without native half-precision arithmetic (AVX2) runs a bf16 matmul far below its
    fp32 peak, while its bf16 convolutions compute in fp32 and reach that peak: the larger of
    the two bounds a half-precision figure (on a CPU with AMX the bf16 matmul is the larger)."""
    if fp32.tflops <= peak.tflops:
        return peak
    return Peak(
        fp32.tflops,
        f"{fp32.source}: this CPU's {precision} matmul ran slower "
        f"({peak.tflops:.3g} TFLOP/s), and its {precision} convolutions "
        "compute in fp32",
    )


def measured_bandwidth(
    device: torch.device,
    megabytes: int = 256,
    *,
    blocks: int = 10,
    warmup_s: float = 0.2,
    min_block_s: float = 0.05,
) -> float:
    """GB/s of a large device-to-device copy, counting bytes read and written: the fastest of
    ``blocks`` timed blocks after ``warmup_s`` seconds of copies."""
    n = megabytes * 2**20 // 4
    src = torch.empty(n, device=device)
    dst = torch.empty_like(src)
    timer = Timer(device)

    def copy() -> None:
        dst.copy_(src)

    seconds = _fastest(
        timer, copy, timer.block(copy, 1), blocks=blocks, warmup_s=warmup_s, min_block_s=min_block_s
    )
    return 2 * src.numel() * 4 / seconds / 1e9


def device_ceilings(device: torch.device, device_name: str, precisions: list[str]) -> Ceilings:
    """The roofline's ceilings, for run.json: compute per precision and memory bandwidth.

    Datasheet figures where the device is known; the rest is measured afresh on each call
    (and added to ``device_peak``'s cache), so a run can measure at its start and its end and
    keep the best of both with ``best_ceilings``."""
    peaks: dict[str, Peak] = {}
    for precision in sorted(precisions, key=lambda p: p != "fp32"):  # fp32 first
        peak = datasheet_peak(device_name, precision) if device.type == "cuda" else None
        if peak is None:
            peak = measured_matmul_peak(device, precision)
            _remember(device, precision, peak)
            if device.type != "cuda" and precision != "fp32" and "fp32" in peaks:
                peak = _at_least_fp32(peak, peaks["fp32"], precision)
        peaks[precision] = peak
    compute = {p: {"tflops": peaks[p].tflops, "source": peaks[p].source} for p in precisions}
    bandwidth = datasheet_bandwidth(device_name) if device.type == "cuda" else None
    if bandwidth is None:
        bandwidth = {
            "gbs": measured_bandwidth(device),
            "source": "fastest of 10 blocks of a 256 MB copy (bytes read + written), warm",
        }
    return {"compute": compute, "bandwidth": bandwidth}


def final_ceilings(device: torch.device, device_name: str, start: Ceilings) -> Ceilings:
    """The ceilings for run.json at the end of a run: ``start`` (the ceilings measured when it
    began) merged with a fresh measurement of the same precisions by ``best_ceilings``."""
    precisions = list(start.get("compute", {}))
    return best_ceilings(start, device_ceilings(device, device_name, precisions))


class RunCeilings:
    """A run's roofline ceilings, for run.json: measured when it starts, kept as the best of
    those a resumed run's folder holds already, and measured once more when it finishes (a
    busy start can only read low)."""

    def __init__(self, device: torch.device, device_name: str) -> None:
        self.device, self.device_name = device, device_name
        self.value: Ceilings = {}

    def start(self, precisions: list[str]) -> Ceilings:
        self.value = device_ceilings(self.device, self.device_name, precisions)
        return self.value

    def resume(self, previous: Ceilings | None) -> Ceilings:
        self.value = best_ceilings(previous or {}, self.value)
        return self.value

    def finish(self) -> Ceilings:
        self.value = final_ceilings(self.device, self.device_name, self.value)
        return self.value


def best_ceilings(old: Ceilings, new: Ceilings) -> Ceilings:
    """Two sets of ceilings merged, per precision and for the bandwidth: a datasheet figure
    wins over a measured one (it is never re-measured), else the higher measurement wins,
    since a ceiling is a best case and a busy machine can only read low. A merged measured
    entry counts the measurements it is the best of. Neither argument is changed."""
    compute = dict(old.get("compute", {}))
    for precision, entry in new.get("compute", {}).items():
        compute[precision] = _better(compute.get(precision), entry, "tflops")
    bandwidth = _better(old.get("bandwidth"), new.get("bandwidth"), "gbs")
    return {"compute": compute, "bandwidth": bandwidth}


def is_datasheet(ceiling: dict[str, Any]) -> bool:
    return "datasheet" in str(ceiling.get("source", ""))


def _better(
    old: dict[str, Any] | None, new: dict[str, Any] | None, key: str
) -> dict[str, Any] | None:
    if old is None or new is None:
        return old or new
    if is_datasheet(old) or is_datasheet(new):
        return old if is_datasheet(old) else new
    best = old if old[key] >= new[key] else new
    return dict(best, measurements=_measurements(old) + _measurements(new))


def _measurements(ceiling: dict[str, Any]) -> int:
    return int(ceiling.get("measurements", 1))
