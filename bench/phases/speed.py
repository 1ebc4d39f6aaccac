"""The speed phase: inference and training throughput and batch-1 latency of each model, in
each mode and at each batch size (``bench.measure.throughput`` measures; this module maps the
measurements to rows and raw samples)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch

from archs import ModelEntry
from bench.measure import failures
from bench.measure.agreement import MULTIPLIER, Agreement, compare_compiled
from bench.measure.ceilings import Peak, device_peak
from bench.measure.estimate import TRAIN_FACTOR, SpeedWork, speed_seconds
from bench.measure.modes import Mode
from bench.measure.throughput import (
    REMEASURE_REL_IQR,
    Measurement,
    SpeedConfig,
    SpeedResult,
    measure_speed,
)
from bench.phases.base import Phase, RunAborted, RunConfig, RunContext, model_facts
from runfolder.rows import Row, error_row, result_row
from runfolder.schema import HOST_BOUND_RATIO

# the batch of the compiled modes' check against eager (it compiles graphs of its own): 16
# keeps BatchNorm's batch statistics well conditioned (at 4, ResNet-18's fp32 training step
# read 4x further from fp64 compiled than eager, a false mismatch) and the fp64 run small
CHECK_BATCH = 16


def speed_config(cfg: RunConfig, mode: Mode, batch: int, first_batch: bool) -> SpeedConfig:
    speed = SpeedConfig.for_device(cfg.device, batch)
    # batch-1 latency once per mode, at the first batch size; compiled modes only when asked,
    # since each is one more compile
    latency = first_batch and (mode.compile == "none" or cfg.compiled_latency)
    kinds = ("infer", "latency", "train") if latency else ("infer", "train")
    return dataclasses.replace(
        speed,
        kinds=kinds,
        repeats=cfg.repeats or speed.repeats,
        warmup=speed.warmup if cfg.warmup is None else cfg.warmup,
    )


def speed_runs(cfg: RunConfig) -> list[tuple[Mode, int, SpeedConfig]]:
    """The measurements of one model: each mode at each batch size."""
    return [
        (mode, batch, speed_config(cfg, mode, batch, first_batch=j == 0))
        for mode in cfg.modes
        for j, batch in enumerate(cfg.batch_sizes)
    ]


def speed_rows(
    result: SpeedResult,
    entry: ModelEntry,
    cfg: SpeedConfig,
    flops_per_sample: float | None,
    peak: Peak | None,
    device_name: str,
) -> list[Row]:
    rows: list[Row] = []
    mode = result.mode
    inputs = f"synthetic {'x'.join(map(str, result.input_shape))} inputs on {device_name}"
    facts = model_facts(entry, SpeedPhase.name) | mode.facts()
    facts["requested_batch"] = cfg.batch_size

    for m in result.measurements:
        at = facts | {"batch": m.batch_size}

        def add(metric: str, value: float, method: str, at: dict = at) -> None:
            rows.append(result_row(at, metric, value, method))

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
        if m.kind == "latency":
            for q in (50, 90, 99):
                add(f"latency_p{q}", t.percentile(q) * 1e3, method)
            add("latency_rel_iqr", t.rel_iqr * 100, method)
        else:
            per_block = [m.batch_size / s for s in t.samples]
            q25, q75 = np.percentile(per_block, [25, 75])
            add(f"{m.kind}_throughput", m.samples_per_s, method)
            add(f"{m.kind}_throughput_iqr", q75 - q25, method)
            add(f"{m.kind}_rel_iqr", t.rel_iqr * 100, method)
            add(f"{m.kind}_noisy", int(t.noisy), method)
            add(f"{m.kind}_batch", m.batch_size, method)
            if flops_per_sample:
                factor = TRAIN_FACTOR if m.kind == "train" else 1
                achieved = m.samples_per_s * flops_per_sample * factor / 1e12
                flops_note = (
                    f"fvcore FLOPs/sample x {factor} (fwd+bwd)"
                    if factor > 1
                    else "fvcore FLOPs/sample"
                )
                add(f"{m.kind}_tflops", achieved, f"{method}; {flops_note}")
                if peak is not None:
                    add(
                        f"{m.kind}_mfu",
                        100 * achieved / peak.tflops,
                        f"{method}; {flops_note}; peak {peak.tflops:.4g} TFLOP/s ({peak.source})",
                    )
        if t.host_ratio is not None and m.kind != "latency":
            host = (
                f"{method}; host enqueue loop (perf_counter) / CUDA event time of the same "
                f"blocks; host-bound at >= {HOST_BOUND_RATIO:.0%}"
            )
            add(f"{m.kind}_host_ratio", 100 * t.host_ratio, host)
            add(f"{m.kind}_host_bound", int(bool(t.host_bound)), host)
        if m.peak_mem_bytes is not None:
            add(
                f"{m.kind}_peak_mem",
                m.peak_mem_bytes / 1e6,
                f"{base}; torch.cuda.max_memory_allocated over the timed calls, reset after "
                f"the warm-up; batch {m.batch_size}",
            )
        if m.first_call_peak_mem_bytes is not None:
            add(
                f"{m.kind}_first_call_peak_mem",
                m.first_call_peak_mem_bytes / 1e6,
                f"{base}; torch.cuda.max_memory_allocated during the first call (compilation, "
                f"CUDA-graph recording, autotuning); batch {m.batch_size}",
            )
        if mode.compile != "none":
            add(
                f"{m.kind}_compile_time",
                m.first_call_s,
                f"{base}; wall time of the first call (dynamo + inductor compile + one run)",
            )
            if m.kind != "latency" and m.graph_breaks is not None:
                add(
                    f"{m.kind}_graph_breaks",
                    m.graph_breaks,
                    f"{base}; torch._dynamo counters['graph_break']",
                )
    for kind, error in result.errors.items():
        batch = 1 if kind == "latency" else cfg.batch_size
        rows.append(error_row(facts | {"batch": batch}, f"{kind}: {error}"))
    return rows


def agreement_rows(agreement: Agreement, facts: dict[str, object], batch: int) -> list[Row]:
    """The compiled mode's check against eager (``bench.measure.agreement``) as rows."""
    at = facts | {"batch": batch}
    method = (
        f"relative L2 error against the same model in fp64 on the same batch of {batch}; "
        f"mismatch: compiled > {MULTIPLIER:g} x eager + {agreement.floor:g}; torch "
        f"{torch.__version__}"
    )
    figures = {
        "infer": (agreement.infer_eager, agreement.infer_compiled, agreement.infer_mismatch),
        "train": (agreement.train_eager, agreement.train_compiled, agreement.train_mismatch),
    }
    rows = []
    for kind, (eager, fast, mismatch) in figures.items():
        rows.append(result_row(at, f"{kind}_eager_error", 100 * eager, method))
        rows.append(result_row(at, f"{kind}_compiled_error", 100 * fast, method))
        rows.append(result_row(at, f"{kind}_compiled_mismatch", int(mismatch), method))
    return rows


def agreement_summary(agreement: Agreement) -> str:
    verdict = {False: "agree", True: "MISMATCH"}
    return (
        f"compiled vs eager (fp64 reference): logits {verdict[agreement.infer_mismatch]}, "
        f"training step {verdict[agreement.train_mismatch]}"
    )


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


class SpeedPhase(Phase):
    name: ClassVar[str] = "speed"
    uses_modes: ClassVar[bool] = True
    needs_ceilings: ClassVar[bool] = True  # its MFU and the roofline chart are against them

    def run(
        self, entry: ModelEntry, ctx: RunContext, done: frozenset[tuple]
    ) -> Iterator[list[Row]]:
        cfg = ctx.cfg
        profile = ctx.profiles.get(entry.name)
        flops = profile.flops if profile else None
        runs = speed_runs(cfg)
        for k, (mode, batch, speed_cfg) in enumerate(runs):
            if (entry.name, mode.name, batch) in done:
                ctx.say(f"{mode.name} b{batch}: {ctx.skipped}, skipped")
                continue
            peak = device_peak(cfg.device, ctx.device_name, mode.arithmetic)
            t0 = time.perf_counter()
            result = measure_speed(
                entry,
                mode,
                cfg.device,
                speed_cfg,
                cfg.input_hw(entry),
                cfg.num_classes,
                cfg.in_channels,
            )
            ctx.folder.add_samples(sample_records(result))
            yield speed_rows(result, entry, speed_cfg, flops, peak, ctx.device_name)
            measured = ", ".join(measurement_summary(m) for m in result.measurements)
            failed = "; ".join(f"{kind} FAILED: {e}" for kind, e in result.errors.items())
            first_compiled = mode.compile != "none" and batch == cfg.batch_sizes[0]
            if first_compiled and result.measurements and not result.context_lost:
                check_rows, check_line = self.check_compiled(entry, ctx, mode, batch)
                yield check_rows
                measured = "; ".join(filter(None, [measured, check_line]))
            ctx.say(
                f"{mode.name} b{batch}: {'; '.join(filter(None, [measured, failed]))} "
                f"({time.perf_counter() - t0:.1f} s)"
            )
            if result.context_lost:
                lost = f"not measured: the CUDA context was lost in {mode.name} b{batch}"
                facts = model_facts(entry, self.name)
                yield [
                    error_row(facts | m.facts() | {"requested_batch": b, "batch": b}, lost)
                    for m, b, _ in runs[k + 1 :]
                ]
                raise RunAborted(entry.name, result.context_lost)

    def check_compiled(
        self, entry: ModelEntry, ctx: RunContext, mode: Mode, batch: int
    ) -> tuple[list[Row], str]:
        """Rows of the compiled mode's check against eager, and its progress line."""
        cfg = ctx.cfg
        facts = model_facts(entry, self.name) | mode.facts() | {"requested_batch": batch}
        shape = (cfg.in_channels, *cfg.input_hw(entry))
        try:
            agreement = compare_compiled(
                entry, mode, cfg.device, shape, CHECK_BATCH, cfg.num_classes
            )
        except Exception as exc:  # the figures stand; the check's failure is its own row
            message = f"compiled vs eager check: {failures.describe(exc)}"
            return [error_row(facts | {"batch": CHECK_BATCH}, message)], message
        return agreement_rows(agreement, facts, CHECK_BATCH), agreement_summary(agreement)

    def estimate_s(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> float:
        return _speed_seconds(entry, ctx, speed_runs(ctx.cfg), peak_tflops)

    def work(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> dict[tuple, float]:
        return {
            (entry.name, run[0].name, run[1]): _speed_seconds(entry, ctx, [run], peak_tflops)
            for run in speed_runs(ctx.cfg)
        }


def _speed_seconds(
    entry: ModelEntry,
    ctx: RunContext,
    runs: list[tuple[Mode, int, SpeedConfig]],
    peak_tflops: float,
) -> float:
    """The estimated seconds of ``runs`` of ``entry`` (``bench.measure.estimate``)."""
    if not runs:
        return 0.0
    profile = ctx.profiles.get(entry.name)
    first = runs[0][2]
    work = SpeedWork(
        flops_per_sample=float(profile.flops) if profile else 0.0,
        layers=profile.leaf_layers if profile else 1,
        runs=[(mode, b, sc.kinds) for mode, b, sc in runs],
        repeats=first.repeats,
        warmup=first.warmup,
        min_block_s=first.min_block_s,
        latency_samples=first.latency_samples,
    )
    return speed_seconds(work, peak_tflops, ctx.cfg.device)
