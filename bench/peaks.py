"""Peak arithmetic throughput of a device, for MFU: a table of datasheet peaks, else measured.

Datasheet figures are NVIDIA's dense (no sparsity) tensor-core peaks in TFLOP/s; ``fp32`` is
the non-tensor-core figure, since fp32 mode here turns TF32 off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .timing import Timer

# (name pattern, {precision: TFLOP/s}); first match wins, so the specific come first.
DATASHEET_PEAKS: list[tuple[str, str, dict[str, float]]] = [
    # (label, pattern matched against torch.cuda.get_device_name, peaks)
    ("H100 NVL", r"H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    ("H100 PCIe", r"H100.*PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    ("H100 SXM", r"H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    ("H200 NVL", r"H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    ("H200 SXM", r"H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    ("A100", r"A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    ("L40S", r"\bL40S\b", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0}),
    ("L4", r"\bL4\b", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    ("A10G", r"A10G", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    ("A10", r"\bA10\b", {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0}),
    ("V100", r"V100", {"fp32": 15.7, "fp16": 125.0}),
    ("T4", r"\bT4\b", {"fp32": 8.1, "fp16": 65.0}),
]


@dataclass(frozen=True)
class Peak:
    tflops: float
    source: str  # "datasheet: <pattern>" or "measured: <how>"


def datasheet_peak(device_name: str, precision: str) -> Peak | None:
    for label, pattern, peaks in DATASHEET_PEAKS:
        if re.search(pattern, device_name):
            if precision in peaks:
                return Peak(peaks[precision], f"{label} datasheet {precision} peak")
            return None
    return None


def measured_matmul_peak(device: torch.device, precision: str, n: int | None = None) -> Peak:
    """TFLOP/s of an n x n x n matmul at ``precision``, the fastest of 5 blocks (a peak is a
    best case), for devices the table does not know, the CPU included."""
    n = n or (8192 if device.type == "cuda" else 2048)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    timer = Timer(device)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        for _ in range(2):
            a @ b
        seconds = min(timer.block(lambda: a @ b, 3) for _ in range(5))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return Peak(2 * n**3 / seconds / 1e12, f"fastest of 5 blocks of a {n}^3 {precision} matmul")


_measured: dict[tuple[str, str], Peak] = {}


def device_peak(device: torch.device, device_name: str, precision: str) -> Peak:
    peak = datasheet_peak(device_name, precision) if device.type == "cuda" else None
    if peak is None:
        key = (str(device), precision)
        if key not in _measured:
            _measured[key] = measured_matmul_peak(device, precision)
        peak = _measured[key]
    return peak


# Memory bandwidth, GB/s (10^9 bytes/s), NVIDIA datasheets; first match wins.
DATASHEET_BANDWIDTH: list[tuple[str, str, float]] = [
    ("H100 NVL", r"H100 NVL", 3900.0),
    ("H100 PCIe", r"H100.*PCIe", 2000.0),
    ("H100 SXM", r"H100", 3350.0),
    ("H200 NVL", r"H200 NVL", 4800.0),
    ("H200 SXM", r"H200", 4800.0),
    ("A100 80GB", r"A100.*80GB", 2039.0),
    ("A100 40GB", r"A100", 1555.0),
    ("L40S", r"\bL40S\b", 864.0),
    ("L4", r"\bL4\b", 300.0),
    ("A10G", r"A10G", 600.0),
    ("A10", r"\bA10\b", 600.0),
    ("V100", r"V100", 900.0),
    ("T4", r"\bT4\b", 320.0),
]


def measured_bandwidth(device: torch.device, megabytes: int = 256) -> float:
    """GB/s of a large device-to-device copy, counting bytes read and written; best of 5."""
    n = megabytes * 2**20 // 4
    src = torch.empty(n, device=device)
    dst = torch.empty_like(src)
    timer = Timer(device)
    dst.copy_(src)
    seconds = min(timer.block(lambda: dst.copy_(src), 3) for _ in range(5))
    return 2 * src.numel() * 4 / seconds / 1e9


def device_ceilings(device: torch.device, device_name: str,
                    precisions: list[str]) -> dict[str, object]:  # fmt: skip
    """The roofline's ceilings, for run.json: compute per precision and memory bandwidth."""
    compute = {}
    for precision in precisions:
        peak = device_peak(device, device_name, precision)
        compute[precision] = {"tflops": peak.tflops, "source": peak.source}
    bandwidth = None
    if device.type == "cuda":
        bandwidth = next(({"gbs": gbs, "source": f"{label} datasheet"}
                          for label, pattern, gbs in DATASHEET_BANDWIDTH
                          if re.search(pattern, device_name)), None)  # fmt: skip
    if bandwidth is None:
        bandwidth = {"gbs": measured_bandwidth(device),
                     "source": "best of 5 blocks of a 256 MB copy (bytes read + written)"}
    return {"compute": compute, "bandwidth": bandwidth}
