"""One ``python -m bench`` run: a new or resumed run folder, its provenance (the device's
measured ceilings when a phase needs them), the phases, and how it ended."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import archs
from bench import log
from bench.log import say, warn
from bench.measure.ceilings import RunCeilings, device_peak
from bench.measure.estimate import duration, plural
from bench.phases import PHASES, RunAborted, RunConfig
from bench.run import provenance
from bench.run.options import UsageError, spec_argv, spec_from_argv
from bench.run.runner import done_in, run_models
from bench.spec import RunSpec, SpecError
from runfolder.folders import find_resumable, new_run_dir, read_provenance, resumed_provenance
from runfolder.reader import read_results
from runfolder.writer import RunWriter


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``complete``, ``interrupted``, ``cuda-error``, or ``already-complete``
    (a resume that found nothing to do)."""

    status: str
    run_dir: Path


def same_spec(spec: RunSpec) -> Callable[[dict], bool]:
    """Whether a run folder's run.json is of ``spec``'s run: its spec, or for a folder written
    before run.json held one, the spec its arguments give."""

    def same_run(info: dict) -> bool:
        if isinstance(info.get("spec"), dict):
            try:
                return RunSpec.from_json(info["spec"]) == spec
            except SpecError:
                return False
        argv = info.get("argv")
        if not isinstance(argv, list):
            return False
        try:
            return spec_from_argv(argv) == spec
        except (UsageError, archs.UnknownModelError, archs.ModelSourceError):
            return False

    return same_run


def open_run_folder(out: Path, spec: RunSpec, resume: bool) -> tuple[Path, dict | None]:
    """The folder to write and, when resuming one, its run.json."""
    run_dir = find_resumable(out, same_spec(spec)) if resume else None
    if run_dir is not None:
        return run_dir, read_provenance(run_dir)
    if resume:
        warn("--resume found no run folder of this run's spec; starting a new one")
    try:
        return new_run_dir(out), None
    except (OSError, ValueError) as exc:
        raise out_error(out, exc) from None


def backend_policy(cfg: RunConfig) -> dict[str, object]:
    """The backend switches the run's figures are measured under, for run.json (each row's
    method states the ones it ran with)."""
    policy: dict[str, object] = {"cpu_threads": torch.get_num_threads()}
    if cfg.device.type == "cuda":
        policy.update(
            cudnn_benchmark=True,
            tf32="on in tf32 modes only (matmul and cuDNN)",
            compiled_latency=cfg.compiled_latency,
        )
    return policy


def run(
    spec: RunSpec, cfg: RunConfig, out: Path, resume: bool, argv: list[str] | None = None
) -> Outcome:
    """Measure ``spec`` (its state ``cfg``) into a new run folder under ``out``, or with
    ``resume`` into the newest one of the same spec. ``argv``: the options as typed, for the
    record and the resume command (a launched shard has none)."""
    run_dir, previous = open_run_folder(out, spec, resume)
    if argv is not None:
        same_args = [a for a in argv if a != "--resume"]
        resume_command = provenance.command_line([*same_args, "--resume"])
    else:
        resume_command = provenance.command_line(
            ["--spec", str(run_dir / "run.json"), "--out", str(out), "--resume"]
        )
    if previous is not None and previous.get("status") == "complete":
        say(
            f"{run_dir} holds this spec's complete run; nothing left to measure (leave out "
            "--resume to measure again)"
        )
        return Outcome("already-complete", run_dir)
    # the command as typed; a launched shard, given its spec, the command that gives it
    info = provenance.collect(cfg.device, same_args if argv is not None else spec_argv(spec))
    info["spec"] = spec.to_json()
    log.logger.debug("spec: %s", json.dumps(info["spec"]))
    if argv is not None:
        info["argv"] = same_args
    info["backends"] = backend_policy(cfg)
    device_name = str(info["device_name"])
    phases = [PHASES[name] for name in cfg.phases]
    ceilings = None
    if any(phase.needs_ceilings for phase in phases):
        ceilings = RunCeilings(cfg.device, device_name)
        info["ceilings"] = ceilings.start(sorted({m.arithmetic for m in cfg.modes} | {"fp32"}))
    done = None
    try:
        if previous is None:
            writer = RunWriter(run_dir, info)
        else:
            existing = read_results(run_dir / "results.csv")
            done = done_in(existing, cfg.phases)
            info = resumed_provenance(previous, info)
            if ceilings is not None:
                info["ceilings"] = ceilings.resume(previous.get("ceilings"))
            writer = RunWriter(run_dir, info, existing)
            for phase in phases:
                phase.resume(writer, cfg.models, done[phase.name])
            say(f"resuming {run_dir} ({plural(len(existing), 'row')} already there)")
    except OSError as exc:
        raise out_error(run_dir, exc) from None
    modes = ",".join(m.name for m in cfg.modes) if any(p.uses_modes for p in phases) else "-"
    say(
        f"{plural(len(cfg.models), 'model')}, phases {','.join(cfg.phases)}, modes {modes}, "
        f"device {cfg.device} ({device_name}); results in {run_dir}"
    )
    status = "interrupted"
    aborted: RunAborted | None = None
    peak = device_peak(cfg.device, device_name, "bf16" if cfg.device.type == "cuda" else "fp32")
    t0 = time.perf_counter()
    try:
        totals = run_models(cfg, writer, done, peak.tflops)
        if ceilings is not None:
            writer.provenance["ceilings"] = ceilings.finish()
        status = "complete"
        spent = ", ".join(f"{phase} {duration(s)}" for phase, s in totals.items() if s)
        say(f"took {duration(time.perf_counter() - t0)} ({spent})")
    except RunAborted as exc:
        status, aborted = "cuda-error", exc
    except KeyboardInterrupt:
        pass  # status stays "interrupted"
    finally:
        writer.finish(status)
    if status == "interrupted":
        warn(
            f"interrupted; what was measured is saved in {run_dir}. To go on from there: "
            f"{resume_command}"
        )
    if aborted is not None:
        warn(
            f"{aborted.model} hit a CUDA error that leaves the CUDA context unusable "
            f"({aborted.error}); the run stopped there. Everything measured is saved in "
            f"{run_dir}, and {aborted.model}'s remaining figures are error rows, so "
            f"`{resume_command}`, in a new process, continues with the next model without it"
        )
    return Outcome(status, run_dir)


def out_error(out: Path, exc: OSError | ValueError) -> UsageError:
    """Why no run folder can be written under ``out``, as one line."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    for place in (out, *out.parents):  # a file where a folder must be says more than errno
        if os.path.exists(place):
            if not os.path.isdir(place):
                reason = f"{place} is a file, not a folder"
            break
    return UsageError(
        f"cannot write a run folder under --out {out}: {reason}; give --out a folder you can "
        "write to (it is made if missing)"
    )
