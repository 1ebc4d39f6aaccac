"""The speed harness on the CPU, with small batches: what CI can exercise."""

import dataclasses

import pandas as pd
import pytest
import torch

import archs
from bench.modes import parse_mode
from bench.peaks import Peak, datasheet_peak, device_peak
from bench.speed import Measurement, SpeedConfig, measure_speed, run_with_oom_retry
from bench.speed_rows import sample_records, speed_rows
from bench.timing import Timing
from reports.schema import METRICS

CPU = torch.device("cpu")
QUICK = SpeedConfig(batch_size=4, repeats=3, warmup=1, min_block_s=0.0, latency_samples=5)


def measure(name="lenet", mode="fp32", cfg=QUICK, size=None):
    e = archs.get_entry(name)
    return measure_speed(e, parse_mode(mode), CPU, cfg, size or (e.input_size, e.input_size))


@pytest.mark.parametrize("mode", ["fp32", "bf16", "bf16+cl"])
def test_all_three_measurements(mode):
    r = measure(mode=mode)
    assert r.errors == {}
    kinds = {m.kind: m for m in r.measurements}
    assert set(kinds) == {"infer", "latency", "train"}
    assert kinds["infer"].batch_size == kinds["train"].batch_size == 4
    assert kinds["latency"].batch_size == 1
    assert len(kinds["infer"].timing.samples) == 3
    assert len(kinds["latency"].timing.samples) == 5
    assert all(m.samples_per_s > 0 and m.peak_mem_bytes is None for m in r.measurements)
    assert all(m.graph_breaks is None for m in r.measurements)  # eager


def test_rows_carry_units_mode_and_batch():
    r = measure()
    rows = pd.DataFrame(speed_rows(r, "lenet", QUICK, 833_000.0, Peak(0.1, "test peak"), "CPU"))
    assert set(rows["metric"]) <= set(METRICS)
    assert (rows["unit"] == [METRICS[m].unit for m in rows["metric"]]).all()
    assert set(rows["mode"]) == {"fp32"}
    assert set(rows["batch"]) == {1, 4}
    by_metric = rows.set_index("metric")
    infer = next(m for m in r.measurements if m.kind == "infer")
    assert by_metric.loc["infer_throughput", "value"] == pytest.approx(4 / infer.timing.median)
    assert by_metric.loc["infer_tflops", "value"] == pytest.approx(infer.samples_per_s * 833_000 / 1e12)
    assert by_metric.loc["train_tflops", "value"] == pytest.approx(
        3 * next(m for m in r.measurements if m.kind == "train").samples_per_s * 833_000 / 1e12
    )
    assert by_metric.loc["infer_mfu", "value"] == pytest.approx(
        100 * by_metric.loc["infer_tflops", "value"] / 0.1
    )
    assert "test peak" in by_metric.loc["infer_mfu", "method"]
    assert "time.perf_counter" in by_metric.loc["infer_throughput", "method"]
    latency = rows[rows["metric"].str.startswith("latency_p")]
    assert list(latency["value"]) == sorted(latency["value"])  # p50 <= p90 <= p99


def test_raw_samples_are_kept():
    r = measure()
    records = sample_records(r)
    assert [rec["kind"] for rec in records] == ["infer", "latency", "train"]
    assert len(records[1]["seconds_per_step"]) == 5


def test_a_model_that_fails_records_errors_and_raises_nothing():
    r = measure("lenet", size=(64, 64))  # LeNet's Linear(400, 120) does not fit 64x64
    assert r.measurements == []
    assert set(r.errors) == {"infer", "latency", "train"}
    assert "mat1 and mat2" in r.errors["infer"]


def _fake_measurement(batch: int) -> Measurement:
    return Measurement("infer", batch, batch, Timing((0.01,), 1, "test"), 0.0, None, None)


def test_out_of_memory_halves_the_batch_and_records_it():
    tried = []

    def run(batch):
        tried.append(batch)
        if batch > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return _fake_measurement(batch)

    m = run_with_oom_retry(run, 256, CPU)
    assert tried == [256, 128, 64]
    assert (m.batch_size, m.requested_batch) == (64, 256)


def test_other_errors_are_not_retried():
    tried = []

    def run(batch):
        tried.append(batch)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_with_oom_retry(run, 256, CPU)
    assert tried == [256]


def test_out_of_memory_at_batch_1_gives_up():
    def run(batch):
        raise torch.cuda.OutOfMemoryError("simulated")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_with_oom_retry(run, 4, CPU)


def test_datasheet_peaks():
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "bf16").tflops == 989.4
    assert datasheet_peak("NVIDIA H100 PCIe", "bf16").tflops == 756.0
    assert datasheet_peak("NVIDIA H200", "fp32").tflops == 66.9
    assert datasheet_peak("NVIDIA A100-SXM4-80GB", "tf32").tflops == 156.0
    assert datasheet_peak("NVIDIA L4", "bf16").tflops == 121.0
    assert datasheet_peak("NVIDIA L40S", "bf16").tflops == 362.0
    assert datasheet_peak("Tesla V100-SXM2-16GB", "bf16") is None  # no bf16 on Volta
    assert datasheet_peak("Some Future GPU", "fp32") is None


def test_cpu_peak_is_measured():
    peak = device_peak(CPU, "a CPU", "fp32")
    assert peak.tflops > 0
    assert "matmul" in peak.source


@pytest.mark.slow
def test_compiled_mode_on_the_cpu():
    """torch.compile (inductor, C++ on the CPU): compile time and graph breaks are recorded,
    outside the timed blocks."""
    cfg = dataclasses.replace(QUICK, kinds=("infer",))
    r = measure(mode="fp32+compile", cfg=cfg)
    assert r.errors == {}
    (m,) = r.measurements
    assert m.graph_breaks == 0
    assert m.first_call_s > max(m.timing.samples)  # compilation is in the first call only
    rows = pd.DataFrame(speed_rows(r, "lenet", cfg, None, None, "CPU")).set_index("metric")
    assert rows.loc["infer_graph_breaks", "value"] == 0
    assert rows.loc["infer_compile_time", "unit"] == "s"
