"""The speed harness on the CPU, with small batches: what CI can exercise."""

import dataclasses
import weakref

import pandas as pd
import pytest
import torch

import archs
from bench.measure.ceilings import Peak, datasheet_peak, device_peak
from bench.measure.modes import parse_mode
from bench.measure.throughput import Measurement, SpeedConfig, measure_speed, run_with_oom_retry
from bench.measure.timers import Timer, Timing
from bench.phases.speed import sample_records, speed_rows
from runfolder.schema import METRICS

CPU = torch.device("cpu")
LENET = archs.get_entry("lenet")
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
    rows = pd.DataFrame(speed_rows(r, LENET, QUICK, 833_000.0, Peak(0.1, "test peak"), "CPU"))
    assert set(rows["metric"]) <= set(METRICS)
    assert (rows["unit"] == [METRICS[m].unit for m in rows["metric"]]).all()
    assert set(rows["mode"]) == {"fp32"}
    assert set(rows["batch"]) == {1, 4}
    # the facts readers need are columns: the batch each figure ran at (latency: 1), the batch
    # its measurement was asked for, and the mode's parts
    latency = rows["metric"].str.startswith("latency_")
    assert set(rows.loc[latency, "batch"]) == {1} and set(rows.loc[~latency, "batch"]) == {4}
    assert set(rows["requested_batch"]) == {4}
    assert set(zip(rows["precision"], rows["layout"], rows["compile"])) == {
        ("fp32", "nchw", "none")
    }
    by_metric = rows.set_index("metric")
    infer = next(m for m in r.measurements if m.kind == "infer")
    assert by_metric.loc["infer_throughput", "value"] == pytest.approx(4 / infer.timing.median)
    assert by_metric.loc["infer_tflops", "value"] == pytest.approx(
        infer.samples_per_s * 833_000 / 1e12
    )
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
    return Measurement(
        "infer",
        batch,
        batch,
        Timing((0.01,), 1, "test"),
        0.0,
        None,
        None,
        None,
        None,
        parse_mode("fp32").backends(CPU),
    )


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


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
        "CUDA out of memory. Tried to allocate 2.00 GiB",
    ],
)
def test_cudnn_and_cublas_allocation_failures_count_as_out_of_memory(message):
    tried = []

    def run(batch):
        tried.append(batch)
        if batch > 32:
            raise RuntimeError(message)
        return _fake_measurement(batch)

    assert run_with_oom_retry(run, 128, CPU).batch_size == 32
    assert tried == [128, 64, 32]


def test_the_failed_attempts_tensors_are_freed_before_the_retry():
    """Memory is freed after the except block: inside it the traceback still holds the
    raising frame, and with it the tensors made there."""
    made: list[weakref.ref] = []
    alive_at_retry = []

    def run(batch):
        alive_at_retry.extend(ref() is not None for ref in made)
        activations = torch.empty(1024, 1024)  # what a failing forward leaves in its frame
        made.append(weakref.ref(activations))
        if batch > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return _fake_measurement(batch)

    assert run_with_oom_retry(run, 8, CPU).batch_size == 2
    assert len(made) == 3 and alive_at_retry == [False, False, False]


def test_a_sticky_cuda_error_ends_the_model_and_is_not_retried():
    class Poisoned(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

    entry = dataclasses.replace(archs.get_entry("lenet"), builder=lambda **_: Poisoned())
    r = measure_speed(entry, parse_mode("fp32"), CPU, QUICK, (28, 28))
    assert r.measurements == [] and list(r.errors) == ["infer"]  # latency and train not tried
    assert r.context_lost == r.errors["infer"]
    assert "illegal memory access" in r.context_lost


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
    rows = pd.DataFrame(speed_rows(r, LENET, cfg, None, None, "CPU")).set_index("metric")
    assert rows.loc["infer_graph_breaks", "value"] == 0
    assert rows.loc["infer_compile_time", "unit"] == "s"


def _sequential_of_depth(depth: int):
    def build(num_classes: int = 10, in_channels: int = 1) -> torch.nn.Sequential:
        hidden = [torch.nn.Linear(16, 16) for _ in range(depth)]
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(in_channels * 16, 16),
            *hidden,
            torch.nn.Linear(16, num_classes),
        )

    return build


@pytest.mark.slow
def test_compiled_figures_stay_compiled_past_the_recompile_limit():
    """Every registry model is an nn.Sequential of its own structure, so all compiled forwards
    share one code object and each model adds a cache entry to it: without a reset per model,
    dynamo would run the ninth eager under a compiled label. More models than the limit, in one
    process: each figure compiled its own graph and its first call paid for it."""
    cfg = dataclasses.replace(QUICK, kinds=("infer",), repeats=1)
    lenet = archs.get_entry("lenet")
    for depth in range(torch._dynamo.config.recompile_limit + 2):
        entry = dataclasses.replace(lenet, name=f"seq{depth}", builder=_sequential_of_depth(depth))
        r = measure_speed(entry, parse_mode("fp32+compile"), CPU, cfg, (4, 4))
        assert r.errors == {}
        (m,) = r.measurements
        assert m.compiled_graphs >= 1
        assert m.first_call_s > 3 * m.timing.median


def test_an_exhausted_recompile_limit_raises_instead_of_running_eager():
    """Without the per-model reset the limit is hit: that is an error, never an eager figure."""
    from bench.measure import compiled

    limit = torch._dynamo.config.recompile_limit
    compiled.reset(CPU)
    x = torch.randn(2, 4)
    ran = 0
    with compiled.no_eager_fallback(), pytest.raises(Exception, match="(?i)recompile|cache"):
        for depth in range(1, limit + 2):  # Sequentials of other structures: one entry each
            layers = [torch.nn.Linear(4, 4) for _ in range(depth)]
            torch.compile(torch.nn.Sequential(*layers), backend="eager")(x)
            ran += 1
    assert ran == limit
    compiled.reset(CPU)


def test_a_compiled_mode_that_compiled_nothing_is_an_error():
    from bench.measure import compiled

    compiled.reset(CPU)
    with pytest.raises(compiled.RanEager, match="ran eager"):
        compiled.check_compiled(parse_mode("fp32+compile"))
    compiled.check_compiled(parse_mode("fp32"))  # eager asks for nothing


def test_latency_samples_are_single_synchronised_calls():
    """Each latency sample is one call between two synchronisations, on every device."""
    events = []

    class Recording(Timer):
        def sync(self):
            events.append("sync")

    samples = Recording(CPU).each(lambda: events.append("call"), 3)
    assert len(samples) == 3
    assert events == ["sync", "call", "sync"] * 3


def test_host_bound_is_flagged_from_the_enqueue_and_event_times():
    gpu_bound = Timing((1.0, 1.0, 1.0), 10, "CUDA events", host_samples=(0.2, 0.3, 0.25))
    host_bound = Timing((1.0, 1.0, 1.0), 10, "CUDA events", host_samples=(0.95, 0.97, 0.99))
    assert gpu_bound.host_ratio == pytest.approx(0.25) and not gpu_bound.host_bound
    assert host_bound.host_bound
    assert Timing((1.0,), 1, "time.perf_counter").host_bound is None  # not measured on the CPU
    m = dataclasses.replace(_fake_measurement(256), timing=host_bound)
    r = measure_result_with(m)
    rows = pd.DataFrame(speed_rows(r, LENET, QUICK, None, None, "GPU")).set_index("metric")
    assert rows.loc["infer_host_bound", "value"] == 1
    assert rows.loc["infer_host_ratio", "value"] == pytest.approx(97)
    assert "host enqueue" in rows.loc["infer_host_bound", "method"]


def measure_result_with(m: Measurement):
    from bench.measure.throughput import SpeedResult

    return SpeedResult("lenet", parse_mode("fp32"), (1, 28, 28), CPU, [m])


def test_rows_state_the_backend_switches():
    r = measure(cfg=dataclasses.replace(QUICK, kinds=("infer",)))
    rows = pd.DataFrame(speed_rows(r, LENET, QUICK, None, None, "CPU"))
    assert rows["method"].str.contains(f"{torch.get_num_threads()} CPU threads").all()
    gpu_state = parse_mode("bf16").backends(torch.device("cuda"))
    assert "cuDNN benchmark on" in gpu_state.describe(torch.device("cuda"))


def test_a_throughput_far_noisier_than_the_threshold_is_measured_again():
    from bench.measure.throughput import REMEASURE_REL_IQR, _steadiest

    spreads = iter([(1.0, 1.5, 2.0), (1.0, 1.01, 1.02), (1.0, 3.0, 5.0)])

    def run(batch):
        return dataclasses.replace(_fake_measurement(batch), timing=Timing(next(spreads), 1, "t"))

    m = _steadiest(run, "infer", QUICK, CPU)
    assert m.attempts == 2 and m.timing.rel_iqr < REMEASURE_REL_IQR
    steady = _steadiest(lambda b: _fake_measurement(b), "train", QUICK, CPU)
    assert steady.attempts == 1  # a steady figure is measured once
    rows = pd.DataFrame(speed_rows(measure_result_with(m), LENET, QUICK, None, None, "CPU"))
    assert rows["method"].str.contains("measured 2 times").all()
