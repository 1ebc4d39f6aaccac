"""Ceilings for the roofline and MFU: measured ones re-measured at the end of a run, the best
kept; datasheet ones never measured nor replaced."""

from __future__ import annotations

import copy

import pytest
import torch

from bench.measure import ceilings as peaks
from bench.measure.ceilings import (
    best_ceilings,
    device_ceilings,
    final_ceilings,
    measured_matmul_peak,
)

CPU = torch.device("cpu")


def measured(tflops: float, n: int | None = None) -> dict[str, object]:
    entry: dict[str, object] = {"tflops": tflops, "source": "fastest of 10 blocks of a matmul"}
    return entry if n is None else dict(entry, measurements=n)


DATASHEET = {"tflops": 989.4, "source": "H100 SXM datasheet bf16 peak"}


def test_best_ceilings_keeps_the_higher_measurement_per_precision():
    start = {
        "compute": {"fp32": measured(0.122), "bf16": measured(0.9)},
        "bandwidth": {"gbs": 20.0, "source": "copy"},
    }
    end = {
        "compute": {"fp32": measured(0.31), "bf16": measured(0.5)},
        "bandwidth": {"gbs": 25.0, "source": "copy"},
    }
    before = copy.deepcopy((start, end))
    merged = best_ceilings(start, end)
    assert merged["compute"]["fp32"]["tflops"] == 0.31
    assert merged["compute"]["bf16"]["tflops"] == 0.9
    assert merged["bandwidth"]["gbs"] == 25.0
    assert merged["compute"]["fp32"]["measurements"] == 2
    assert (start, end) == before  # pure
    # a third measurement (a resumed run): counted, best still kept
    again = best_ceilings(merged, {"compute": {"fp32": measured(0.2)}})
    assert again["compute"]["fp32"] == dict(measured(0.31), measurements=3)
    assert again["compute"]["bf16"]["tflops"] == 0.9  # only in the old: kept
    assert again["bandwidth"]["gbs"] == 25.0


@pytest.mark.parametrize("new", [measured(5000.0), measured(1.0)])
def test_best_ceilings_never_replaces_a_datasheet_figure(new):
    old = {"compute": {"bf16": DATASHEET}, "bandwidth": {"gbs": 3350.0, "source": "H100 datasheet"}}
    merged = best_ceilings(
        old, {"compute": {"bf16": new}, "bandwidth": {"gbs": 9000.0, "source": "copy"}}
    )
    assert merged["compute"]["bf16"] == DATASHEET
    assert merged["bandwidth"]["gbs"] == 3350.0
    # nor does a datasheet figure give way when it comes second
    assert best_ceilings({"compute": {"bf16": new}}, {"compute": {"bf16": DATASHEET}}) == {
        "compute": {"bf16": DATASHEET},
        "bandwidth": None,
    }


def test_final_ceilings_measure_again_and_keep_the_best(monkeypatch):
    readings = iter([0.1, 0.3, 0.2, 0.25])  # fp32 then bf16, at the start and at the end
    monkeypatch.setattr(peaks, "_measured", {})
    monkeypatch.setattr(
        peaks,
        "measured_matmul_peak",
        lambda device, precision: peaks.Peak(next(readings), f"m {precision}"),
    )
    monkeypatch.setattr(peaks, "measured_bandwidth", lambda device: 10.0)
    start = device_ceilings(CPU, "a CPU", ["fp32", "bf16"])
    assert peaks.device_peak(CPU, "a CPU", "fp32").tflops == 0.1  # MFU rows: the start's
    end = final_ceilings(CPU, "a CPU", start)
    assert {p: c["tflops"] for p, c in end["compute"].items()} == {"fp32": 0.2, "bf16": 0.3}
    assert start["compute"]["fp32"]["tflops"] == 0.1  # unchanged
    assert peaks.device_peak(CPU, "a CPU", "fp32").tflops == 0.2  # the cache keeps the best


def test_datasheet_ceilings_are_never_measured(monkeypatch):
    def no_measuring(*args, **kwargs):
        raise AssertionError("a datasheet GPU was measured")

    monkeypatch.setattr(peaks, "measured_matmul_peak", no_measuring)
    monkeypatch.setattr(peaks, "measured_bandwidth", no_measuring)
    gpu = torch.device("cuda")  # nothing runs on it: every figure comes from the table
    start = device_ceilings(gpu, "NVIDIA H100 80GB HBM3", ["fp32", "bf16"])
    end = final_ceilings(gpu, "NVIDIA H100 80GB HBM3", start)
    assert end["compute"]["bf16"]["tflops"] == 989.4
    assert end["bandwidth"]["gbs"] == 3350.0


def test_measured_matmul_peak_is_the_best_of_its_blocks():
    peak = measured_matmul_peak(CPU, "fp32", 64, blocks=3, warmup_s=0.0, min_block_s=0.001)
    assert peak.tflops > 0
    assert peak.source == "fastest of 3 blocks of a 64^3 fp32 matmul, warm"


@pytest.mark.parametrize(
    "name, bandwidth, bf16",
    [
        ("NVIDIA A100-SXM4-80GB", {"gbs": 2039.0, "source": "A100 80GB datasheet"}, "A100"),
        ("NVIDIA A100-PCIE-40GB", {"gbs": 1555.0, "source": "A100 40GB datasheet"}, "A100"),
        ("NVIDIA H100 NVL", {"gbs": 3900.0, "source": "H100 NVL datasheet"}, "H100 NVL"),
        ("NVIDIA H200", {"gbs": 4800.0, "source": "H200 SXM datasheet"}, "H200 SXM"),
        ("Tesla T4", {"gbs": 320.0, "source": "T4 datasheet"}, None),
        ("Some Future GPU", None, None),
    ],
)
def test_one_datasheet_row_gives_bandwidth_and_peaks(name, bandwidth, bf16):
    """Bandwidth and compute come from the same first matching row; both A100 memory sizes
    share the one compute datasheet, 'A100'."""
    assert peaks.datasheet_bandwidth(name) == bandwidth
    peak = peaks.datasheet_peak(name, "bf16")
    assert (peak and peak.source) == (bf16 and f"{bf16} datasheet bf16 peak")
