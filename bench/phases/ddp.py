"""The ddp phase: training throughput with DistributedDataParallel over N processes started by
torchrun (gloo on the CPU, NCCL on GPUs, one GPU each), against the same measurement with one
process: throughput in all, per process, and the scaling efficiency
``throughput(N) / (N x throughput(1))``.

Each eager mode of the run is measured at the first batch size, which is each process's batch
(the global batch is N times it), on synthetic data (``bench.dist.ddp_worker``). On the CPU each
process gets the run's threads divided by N, in the one-process measurement too, so that the
efficiency is that of adding processes, not of sharing one process's threads.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

import torch

from archs import ModelEntry
from bench.dist.ddp_worker import DdpJob, DdpResult
from bench.dist.scaling import START_S, efficiency, scaling_rows
from bench.dist.torchrun import model_spec, torchrun
from bench.measure.estimate import TRAIN_FACTOR, step_seconds
from bench.measure.modes import Mode, parse_mode
from bench.phases.base import PerModePhase, RunConfig, RunContext, model_facts
from runfolder.rows import Row, error_row

STEPS, WARMUP = 10, 3
TIMEOUT_S = 900


def ddp_modes(modes: list[Mode]) -> list[Mode]:
    """The run's eager modes (DDP of a compiled model is not measured)."""
    return [m for m in modes if m.compile == "none"]


def launch(job: DdpJob, processes: int) -> DdpResult:
    """torchrun with ``processes`` workers on this machine; the result rank 0 wrote."""
    torchrun("bench.dist.ddp_worker", json.dumps(asdict(job)), processes, TIMEOUT_S)
    return DdpResult(**json.loads(Path(job.out).read_text()))


class DdpPhase(PerModePhase):
    name: ClassVar[str] = "ddp"

    def modes(self, cfg: RunConfig) -> list[Mode]:
        return ddp_modes(cfg.modes)

    def run(
        self, entry: ModelEntry, ctx: RunContext, done: frozenset[tuple]
    ) -> Iterator[list[Row]]:
        cfg = ctx.cfg
        processes = cfg.ddp_processes
        batch = cfg.batch_sizes[0]
        threads = max(1, torch.get_num_threads() // processes)
        for mode in ddp_modes(cfg.modes):
            if (entry.name, mode.name) in done:
                ctx.say(f"ddp {mode.name}: {ctx.skipped}, skipped")
                continue
            facts = model_facts(entry, self.name) | mode.facts()
            facts |= {"batch": batch, "requested_batch": batch}
            with tempfile.TemporaryDirectory() as tmp:
                job = DdpJob(
                    model=model_spec(entry),
                    mode=mode.name,
                    batch=batch,
                    steps=STEPS,
                    warmup=WARMUP,
                    input_size=cfg.input_hw(entry),
                    in_channels=cfg.in_channels,
                    num_classes=cfg.num_classes,
                    gpu=cfg.device.type == "cuda",
                    threads=threads,
                    out=str(Path(tmp) / "result.json"),
                )
                try:
                    one = launch(job, 1)
                    many = launch(job, processes)
                except Exception as exc:  # this model's failure is its row
                    message = f"ddp: {exc}"
                    ctx.say(f"ddp {mode.name} FAILED: {message}")
                    yield [error_row(facts, message)]
                    continue
            yield ddp_rows(facts, job, one, many, cfg.device)
            ctx.say(
                f"ddp {mode.name} b{batch}/process: {processes} processes "
                f"{many.throughput(job):,.0f}/s, 1 process {one.throughput(job):,.0f}/s, "
                f"scaling efficiency "
                f"{efficiency(many.throughput(job), one.throughput(job), processes):.0%}"
            )

    def estimate_s(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> float:
        cfg = ctx.cfg
        profile = ctx.profiles.get(entry.name)
        flops = float(profile.flops) if profile else 0.0
        layers = profile.leaf_layers if profile else 1
        batch = cfg.batch_sizes[0]
        step = step_seconds(flops * TRAIN_FACTOR * batch, layers, peak_tflops, cfg.device, True)
        per_launch = START_S + (STEPS + WARMUP) * step * 2  # the all-reduce, about a step
        return 2 * per_launch * len(ddp_modes(cfg.modes))


def ddp_rows(
    facts: dict[str, object], job: DdpJob, one: DdpResult, many: DdpResult, device
) -> list[Row]:
    where = f"{many.processes} processes" + (
        ", one GPU each" if job.gpu else f", {job.threads} CPU threads each"
    )
    # on GPUs the switches the workers set, stated as the speed phase's figures state them
    switches = f"{parse_mode(job.mode).backends(device).describe(device)}; " if job.gpu else ""
    method = (
        f"DistributedDataParallel ({many.backend}) over {where}, started by torchrun; "
        f"{switches}synthetic {job.in_channels}x{job.input_size[0]}x{job.input_size[1]} inputs, "
        f"batch {job.batch} per process; {job.warmup} warm-up steps, then {job.steps} SGD steps "
        f"timed between barriers, the slowest process's time; torch {torch.__version__}"
    )
    single = f"the same with 1 process ({one.backend}); {method.split('; ', 1)[1]}"
    return scaling_rows(
        facts, many.processes, many.throughput(job), one.throughput(job), method, single
    )
