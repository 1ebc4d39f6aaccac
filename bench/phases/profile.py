"""The profile phase: where the time goes in each model, per layer (``bench.measure.layer_time``).

Per model and mode, at the first of ``--batch-sizes``: the training step split into forward,
backward and optimizer beside the unprofiled full step, the profiler's overhead, the share of
time and of MACs by layer kind (rows in results.csv), and the per-layer table in
RUN_DIR/profile/MODEL__MODE.csv (``runfolder.schema.PROFILE_COLUMNS``); with ``--trace`` a
Chrome/Perfetto trace of the profiled training steps in RUN_DIR/traces/MODEL__MODE.json.

Per-layer attribution needs the eager modules (torch.compile fuses across layers), so a
compiled mode is profiled as its eager mode at the same precision and layout, and modes that
differ only in compilation are profiled once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import ClassVar

import torch

from archs import ModelEntry
from bench.measure.estimate import SpeedWork, speed_seconds
from bench.measure.failures import describe
from bench.measure.layer_time import LayerProfile, profile_layers
from bench.measure.modes import Mode
from bench.measure.throughput import SpeedConfig
from bench.phases.base import PerModePhase, RunConfig, RunContext, model_facts
from runfolder.rows import Row, error_row, result_row
from runfolder.schema import LAYER_KINDS

PROFILED_STEPS = 3


def profile_modes(cfg: RunConfig) -> dict[Mode, list[str]]:
    """The eager modes of ``cfg.modes``, each once, with the compiled modes each stands for."""
    eager: dict[Mode, list[str]] = {}
    for m in cfg.modes:
        stands_for = eager.setdefault(dataclasses.replace(m, compile="none"), [])
        if m.compile != "none":
            stands_for.append(m.name)
    return eager


def profile_rows(
    p: LayerProfile, facts: dict, device_name: str, stands_for: Sequence[str] = ()
) -> list[Row]:
    rows: list[Row] = []
    s = p.split
    compiled = (
        f" (profiled eagerly for {', '.join(stands_for)}: torch.compile fuses across layers)"
        if stands_for
        else ""
    )
    where = (
        f"{p.mode.describe()}{compiled}; synthetic inputs on {device_name}; batch {p.batch}; "
        f"torch {torch.__version__}"
    )
    blocks = (
        f"{s.step.timer}, warm-up untimed, median of {len(s.step.samples)} blocks of "
        f"{s.step.iters_per_sample} steps"
    )
    parts = (
        f"{where}; {s.forward.timer}, in blocks of {s.forward.iters_per_sample} steps "
        f"alternating with the full step's, median of {len(s.forward.samples)}"
    )
    profiled = (
        f"{where}; torch.profiler, a record_function range per module (forward hooks), "
        f"backward nodes by sequence number; {p.timer} wall of each of {PROFILED_STEPS} steps"
    )

    def add(metric: str, value: float, method: str) -> None:
        rows.append(result_row(facts, metric, value, method))

    add("profile_forward_ms", s.forward.median * 1e3, parts)
    add("profile_backward_ms", s.backward.median * 1e3, parts)
    add("profile_optimizer_ms", s.optimizer.median * 1e3, parts)
    add("profile_step_ms", s.step.median * 1e3, f"{where}; {blocks}")
    add("profile_split_gap", 100 * s.gap, f"{parts}; against the full step ({blocks})")
    add("profile_profiled_step_ms", p.profiled_step_s * 1e3, profiled)
    add("profile_overhead", 100 * p.overhead, f"{profiled}; against the full step ({blocks})")
    add("profile_attributed", 100 * p.attributed, profiled)
    root = p.layers[p.layers["path"] == ""]
    add("profile_infer_ms", float(root["infer_forward_ms"].iloc[0]), f"{profiled}; eval, no grad")
    time_share, mac_share = p.kind_shares()
    kinds_note = f"{profiled}; MACs: the static profile's per layer x batch"
    for kind in LAYER_KINDS:
        add(f"profile_time_share_{kind}", time_share.get(kind, 0.0), kinds_note)
        add(f"profile_mac_share_{kind}", mac_share.get(kind, 0.0), kinds_note)
    return rows


class ProfilePhase(PerModePhase):
    name: ClassVar[str] = "profile"

    def modes(self, cfg: RunConfig) -> list[Mode]:
        return list(profile_modes(cfg))

    def run(
        self, entry: ModelEntry, ctx: RunContext, done: frozenset[tuple]
    ) -> Iterator[list[Row]]:
        cfg = ctx.cfg
        batch = cfg.batch_sizes[0]
        speed = SpeedConfig.for_device(cfg.device, batch)
        static = ctx.profiles.get(entry.name)
        h, w = cfg.input_hw(entry)
        for mode, stands_for in profile_modes(cfg).items():
            if (entry.name, mode.name) in done:
                ctx.say(f"profile {mode.name}: {ctx.skipped}, skipped")
                continue
            facts = model_facts(entry, self.name) | mode.facts()
            facts |= {"batch": batch, "requested_batch": batch}
            trace = ctx.folder.trace_path(entry.name, mode.name) if cfg.trace else None
            t0 = time.perf_counter()
            try:
                p = profile_layers(
                    lambda: entry.build(cfg.num_classes, cfg.in_channels, (h, w)),
                    entry.name,
                    mode,
                    cfg.device,
                    batch,
                    (cfg.in_channels, h, w),
                    static.layers if static else None,
                    num_classes=cfg.num_classes,
                    warmup=speed.warmup if cfg.warmup is None else cfg.warmup,
                    repeats=cfg.repeats or speed.repeats,
                    min_block_s=speed.min_block_s,
                    profiled_steps=PROFILED_STEPS,
                    trace=trace,
                )
            except Exception as exc:  # this model's failure is its row's, not the run's
                error = describe(exc)
                ctx.say(f"profile {mode.name} FAILED: {error}")
                yield [error_row(facts, error)]
                continue
            ctx.folder.add_profile(entry.name, mode.name, p.layers)
            yield profile_rows(p, facts, ctx.device_name, stands_for)
            top = p.modules.sort_values("self_ms", ascending=False).iloc[0]
            label = mode.name + (f" (for {', '.join(stands_for)})" if stands_for else "")
            ctx.say(
                f"profile {label} b{batch}: step {p.split.step.median * 1e3:.3g} ms "
                f"(fwd {p.split.forward.median * 1e3:.3g}, bwd "
                f"{p.split.backward.median * 1e3:.3g}, opt {p.split.optimizer.median * 1e3:.3g});"
                f" slowest {top['path'] or '(model)'} {top['self_share']:.0f}%; profiler "
                f"overhead {100 * p.overhead:.0f}% ({time.perf_counter() - t0:.1f} s)"
            )

    def estimate_s(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> float:
        """About three training measurements and one inference per mode: the full step and
        its parts alternate, then the profiled steps."""
        cfg = ctx.cfg
        if not cfg.batch_sizes:
            return 0.0
        profile = ctx.profiles.get(entry.name)
        speed = SpeedConfig.for_device(cfg.device, cfg.batch_sizes[0])
        work = SpeedWork(
            flops_per_sample=float(profile.flops) if profile else 0.0,
            layers=profile.leaf_layers if profile else 1,
            runs=[(m, cfg.batch_sizes[0], ("train", "train", "infer")) for m in profile_modes(cfg)],
            repeats=cfg.repeats or speed.repeats,
            warmup=speed.warmup if cfg.warmup is None else cfg.warmup,
            min_block_s=speed.min_block_s,
            latency_samples=0,
        )
        return speed_seconds(work, peak_tflops, cfg.device)
