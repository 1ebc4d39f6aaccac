"""One run: every selected model through every selected phase (``bench.phases``), each group
of rows written to the run folder as it comes."""

from __future__ import annotations

import time

import pandas as pd

import archs
from bench import log
from bench.log import say
from bench.measure.estimate import ASSUMED_EFFICIENCY, Progress, duration, plural
from bench.measure.memory import PeakRss
from bench.measure.static_profile import profile_error, profile_model
from bench.phases import PHASES, RunAborted, RunConfig, RunContext
from bench.phases.base import model_facts
from bench.run.provenance import device_description
from bench.run.shards import partition, work_items
from runfolder.reader import phase_items
from runfolder.rows import Row, error_row, result_row
from runfolder.writer import RunWriter

Done = dict[str, frozenset[tuple]]  # phase name -> the keys a run folder already holds


def done_in(results: pd.DataFrame, phases: tuple[str, ...]) -> Done:
    """What each phase finds already measured in a run folder's rows."""
    return {name: phase_items(results, name) for name in phases}


def profile_all(ctx: RunContext) -> dict[str, PeakRss]:
    """Every model's static profile, for the estimate, the speed phase's FLOPs and the static
    phase; a model that cannot be profiled gets its reason in ``ctx.profile_errors``. Returns
    each model's peak memory while it was profiled (the static phase's)."""
    cfg = ctx.cfg
    peaks = {}
    for name in cfg.models:
        entry = archs.get_entry(name)
        with PeakRss() as peaks[name]:
            try:
                ctx.profiles[name] = profile_model(
                    entry, cfg.input_size, cfg.num_classes, cfg.in_channels
                )
            except Exception as exc:  # one model's failure is its row's, not the run's
                ctx.profiles[name] = None
                ctx.profile_errors[name] = profile_error(entry, cfg.input_size, exc)
    return peaks


def memory_rows(entry: archs.ModelEntry, phase: str, peak: PeakRss) -> list[Row]:
    """The process's peak resident memory while ``phase`` ran for ``entry``; none without
    /proc."""
    if peak.peak_bytes is None or peak.added_bytes is None:
        return []
    facts = model_facts(entry, phase)
    return [
        result_row(facts, "peak_rss", peak.peak_bytes / 1e6, peak.method),
        result_row(facts, "peak_rss_added", peak.added_bytes / 1e6, peak.method),
    ]


def estimate_run(ctx: RunContext, peak_tflops: float, models: list[str]) -> Progress:
    """The time each model should take, summed over its phases."""
    return Progress(
        {
            name: sum(
                PHASES[phase].estimate_s(archs.get_entry(name), ctx, peak_tflops)
                for phase in ctx.cfg.phases
            )
            for name in models
        }
    )


def take_shard(ctx: RunContext, done: Done) -> list[str]:
    """This shard's items (``bench.run.shards``): the other shards' items join ``done``, so the
    phases skip them; run.json records the shard and every item's owner. Returns the models
    with an item in this shard."""
    index, count = ctx.cfg.shard
    owner = partition(work_items(ctx), count)
    elsewhere: dict[str, set[tuple]] = {}
    for (phase, *key), k in owner.items():
        if k != index:
            elsewhere.setdefault(phase, set()).add(tuple(key))
    for phase, keys in elsewhere.items():
        done[phase] = done.get(phase, frozenset()) | keys
    ctx.skipped = "another shard's or already in the run folder"
    ctx.folder.record(shard=f"{index}/{count}", work=[[k, *item] for item, k in owner.items()])
    mine = [item for item, k in owner.items() if k == index]
    say(f"shard {index}/{count}: {plural(len(mine), 'item')} of {len(owner)}")
    return [m for m in ctx.cfg.models if any(item[1] == m for item in mine)]


def run_models(
    cfg: RunConfig, writer: RunWriter, done: Done | None = None, peak_tflops: float | None = None
) -> dict[str, float]:
    """Measure every model in every phase; each model's failures become its rows and the run
    goes on (a sticky CUDA error raises ``RunAborted`` after its rows are written). What
    ``done`` holds (a resumed run's measurements) is skipped. Returns the seconds per phase."""
    done = dict(done or {})
    ctx = RunContext(cfg, device_description(cfg.device), writer, say=say)
    phases = [PHASES[name] for name in cfg.phases]
    t_profiles = time.perf_counter()
    # every model is profiled first, for the estimate and the FLOPs of the timed phases
    profile_peaks = profile_all(ctx)
    totals = {phase.name: 0.0 for phase in phases}
    for phase in phases:
        if phase.timed_by_profiling:
            totals[phase.name] = time.perf_counter() - t_profiles
    models = cfg.models
    if cfg.shard is not None:
        models = take_shard(ctx, done)
    progress = None
    if peak_tflops:
        progress = estimate_run(ctx, peak_tflops, models)
        say(
            f"estimate: about {duration(progress.total_estimate)} for "
            f"{plural(len(models), 'model')} (from each model's FLOPs at "
            f"{ASSUMED_EFFICIENCY:.0%} of the device's {peak_tflops:.3g} TFLOP/s, refined as "
            "models finish)"
        )
    width = len(str(len(models)))
    for i, name in enumerate(models, 1):
        entry = archs.get_entry(name)
        tag = f"[{i:>{width}}/{len(models)}] {name}"
        ctx.say = lambda text, tag=tag: say(f"{tag} {text}")
        t_model = time.perf_counter()
        spent: dict[str, float] = {}
        for k, phase in enumerate(phases):
            t0 = time.perf_counter()
            wrote = False
            try:
                with PeakRss() as peak:
                    for rows in phase.run(entry, ctx, done.get(phase.name, frozenset())):
                        writer.add(rows)
                        log.logger.debug("%s %s: %d rows written", name, phase.name, len(rows))
                        wrote = True
            except RunAborted as exc:
                lost = f"not measured: the CUDA context was lost ({exc.error})"
                writer.add([error_row(model_facts(entry, p), lost) for p in cfg.phases[k + 1 :]])
                raise
            if wrote:  # a phase skipped on resume measured nothing this time
                measured = profile_peaks[name] if phase.timed_by_profiling else peak
                writer.add(memory_rows(entry, phase.name, measured))
            if not phase.timed_by_profiling:
                spent[phase.name] = time.perf_counter() - t0
        for phase, seconds in spent.items():
            totals[phase] += seconds
        took = time.perf_counter() - t_model
        line = ", ".join(f"{phase} {duration(s)}" for phase, s in spent.items() if s)
        eta = ""
        if progress is not None:
            progress.finished(name, took)
            eta = f"; about {duration(progress.seconds_left())} left"
        say(f"{tag}: done in {duration(took)}{f' ({line})' if line else ''}{eta}")
    return totals
