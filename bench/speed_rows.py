"""Speed results as rows of the results table, and their raw samples as JSON records."""

from __future__ import annotations

import numpy as np
import torch

from .peaks import Peak
from .results import error_row, result_row
from .speed import REMEASURE_REL_IQR, Measurement, SpeedConfig, SpeedResult
from .timing import HOST_BOUND_RATIO

TRAIN_FLOPS_FACTOR = 3  # forward + backward (twice the forward), the usual convention


def speed_rows(
    result: SpeedResult,
    family: str,
    cfg: SpeedConfig,
    flops_per_sample: float | None,
    peak: Peak | None,
    device_name: str,
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    mode = result.mode
    inputs = f"synthetic {'x'.join(map(str, result.input_shape))} inputs on {device_name}"

    def add(metric: str, value: float, batch: int, method: str) -> None:
        rows.append(
            result_row(
                result.model,
                family,
                "speed",
                metric,
                value,
                mode=mode.name,
                batch=batch,
                method=method,
            )
        )

    for m in result.measurements:
        t = m.timing
        base = (
            f"{mode.describe()}; {m.backends.describe(result.device)}; {inputs}; "
            f"torch {torch.__version__}"
        )
        timing = (
            f"{t.timer}, first call and {cfg.warmup} warm-up calls untimed, median of "
            f"{len(t.samples)} "
            f"{'calls' if m.kind == 'latency' else f'blocks of {t.iters_per_sample} steps'}"
        )
        if m.attempts > 1:
            timing += (
                f"; measured {m.attempts} times (IQR/median above "
                f"{REMEASURE_REL_IQR:.0%}), the steadiest kept"
            )
        method = f"{base}; batch {m.batch_size}; {timing}"
        key_batch = m.requested_batch
        if m.kind == "latency":
            for q in (50, 90, 99):
                add(f"latency_p{q}", t.percentile(q) * 1e3, key_batch, method)
            add("latency_rel_iqr", t.rel_iqr * 100, key_batch, method)
        else:
            per_block = [m.batch_size / s for s in t.samples]
            q25, q75 = np.percentile(per_block, [25, 75])
            add(f"{m.kind}_throughput", m.samples_per_s, key_batch, method)
            add(f"{m.kind}_throughput_iqr", q75 - q25, key_batch, method)
            add(f"{m.kind}_rel_iqr", t.rel_iqr * 100, key_batch, method)
            add(f"{m.kind}_noisy", int(t.noisy), key_batch, method)
            add(f"{m.kind}_batch", m.batch_size, key_batch, method)
            if flops_per_sample:
                factor = TRAIN_FLOPS_FACTOR if m.kind == "train" else 1
                achieved = m.samples_per_s * flops_per_sample * factor / 1e12
                flops_note = (
                    f"fvcore FLOPs/sample x {factor} (fwd+bwd)"
                    if factor > 1
                    else "fvcore FLOPs/sample"
                )
                add(f"{m.kind}_tflops", achieved, key_batch, f"{method}; {flops_note}")
                if peak is not None:
                    add(
                        f"{m.kind}_mfu",
                        100 * achieved / peak.tflops,
                        key_batch,
                        f"{method}; {flops_note}; peak {peak.tflops:.4g} TFLOP/s ({peak.source})",
                    )
        if t.host_ratio is not None and m.kind != "latency":
            host = (
                f"{method}; host enqueue loop (perf_counter) / CUDA event time of the same "
                f"blocks; host-bound at >= {HOST_BOUND_RATIO:.0%}"
            )
            add(f"{m.kind}_host_ratio", 100 * t.host_ratio, key_batch, host)
            add(f"{m.kind}_host_bound", int(bool(t.host_bound)), key_batch, host)
        if m.peak_mem_bytes is not None:
            add(
                f"{m.kind}_peak_mem",
                m.peak_mem_bytes / 1e6,
                key_batch,
                f"{base}; torch.cuda.max_memory_allocated over the timed calls, reset after "
                f"the warm-up; batch {m.batch_size}",
            )
        if m.first_call_peak_mem_bytes is not None:
            add(
                f"{m.kind}_first_call_peak_mem",
                m.first_call_peak_mem_bytes / 1e6,
                key_batch,
                f"{base}; torch.cuda.max_memory_allocated during the first call (compilation, "
                f"CUDA-graph recording, autotuning); batch {m.batch_size}",
            )
        if mode.compile != "none":
            add(
                f"{m.kind}_compile_time",
                m.first_call_s,
                key_batch,
                f"{base}; wall time of the first call (dynamo + inductor compile + one run)",
            )
            if m.kind != "latency" and m.graph_breaks is not None:
                add(
                    f"{m.kind}_graph_breaks",
                    m.graph_breaks,
                    key_batch,
                    f"{base}; torch._dynamo counters['graph_break']",
                )
    for kind, error in result.errors.items():
        batch = 1 if kind == "latency" else cfg.batch_size
        rows.append(
            error_row(
                result.model, family, "speed", f"{kind}: {error}", mode=mode.name, batch=batch
            )
        )
    return rows


def sample_records(result: SpeedResult) -> list[dict[str, object]]:
    return [
        {
            "model": result.model,
            "mode": result.mode.name,
            "kind": m.kind,
            "batch": m.batch_size,
            "requested_batch": m.requested_batch,
            "timer": m.timing.timer,
            "steps_per_sample": m.timing.iters_per_sample,
            "seconds_per_step": list(m.timing.samples),
            "first_call_s": m.first_call_s,
            "host_seconds_per_step": (
                list(m.timing.host_samples) if m.timing.host_samples is not None else None
            ),
        }
        for m in result.measurements
    ]


def measurement_summary(m: Measurement) -> str:
    if m.kind == "latency":
        return f"p50 {m.timing.median * 1e3:.3g} ms"
    noisy = " (noisy)" if m.timing.noisy else ""
    noisy += " (host-bound)" if m.timing.host_bound else ""
    return f"{m.kind} {m.samples_per_s:,.0f}/s b{m.batch_size}{noisy}"
