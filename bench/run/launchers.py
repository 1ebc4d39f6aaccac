"""``--launcher local|slurm --shards N``: the run's N shards (``bench.run.shards``) as jobs of
submitit, the launcher research codebases use, then one merged run folder.

``slurm`` submits one array task per shard (partition, GPUs per task, time limit and account
from the ``--slurm-*`` options); ``local`` runs the shards as local processes through
submitit's local executor, the same code path on one machine (the tests use it). submitit
pickles a callable and its arguments for each job: a shard is ``run_shard`` with the run's
spec, its ``shard`` set to ``(K, N)``, and ``OUT/shards/K`` for its run folders; no command
line is rebuilt.
The launcher waits, saying which shards have ended; a shard whose job failed (a lost node, a
crash: not a model's error row) is submitted once more with ``--resume``, so it keeps what it
measured, then reported. At the end the shards' run folders are merged into a new run folder
under ``--out`` with its report (``reports.merge``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.log import say, warn
from bench.measure.estimate import duration
from bench.run import session
from bench.run.options import UsageError, checked_spec
from bench.run.state import build_config
from bench.spec import RunSpec
from reports.merge import MergeError, merge_runs
from reports.report import build_report
from runfolder.folders import new_run_dir
from runfolder.reader import read_results
from runfolder.schema import ERROR_METRIC

SUBMITIT_INSTALL = "pip install 'archbench[cluster]' (or pip install submitit)"
POLL_S = 2.0
PROGRESS_S = 60.0  # between the lines saying where each running shard is
VANISHED_S = 30.0  # a Slurm job out of the queue this long without its result has failed


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    gpus_per_task: int | None = None
    time_min: int = 60
    account: str | None = None


def run_shard(spec: RunSpec, out: Path, resume: bool = False, visible: str | None = None) -> int:
    """One shard, in the job's process: its run, and the exit status ``python -m bench`` would
    give (the launcher reports the merged run); ``visible``: the one GPU it may see
    (``--devices``), set before CUDA starts in this process."""
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    try:
        spec = checked_spec(spec)
        outcome = session.run(spec, build_config(spec), out, resume)
    except UsageError as exc:
        warn(f"error: {exc}")
        return 2
    if outcome.status == "interrupted":
        return 130
    if outcome.status not in ("complete", "already-complete"):
        return 1
    rows = read_results(outcome.run_dir / "results.csv")
    return 1 if (rows["metric"] == ERROR_METRIC).any() else 0  # as a run whose model failed


def _executor(launcher: str, folder: Path, slurm: SlurmOptions):
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--launcher needs submitit: {SUBMITIT_INSTALL}") from None
    if launcher == "local":
        return submitit.LocalExecutor(folder=folder)
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    except RuntimeError as exc:  # no Slurm here: submitit finds no srun
        raise UsageError(f"--launcher slurm: {exc}; run it on a Slurm login node") from None
    params: dict[str, object] = {"timeout_min": slurm.time_min, "tasks_per_node": 1}
    if slurm.partition:
        params["slurm_partition"] = slurm.partition
    if slurm.gpus_per_task:
        params["slurm_gpus_per_task"] = slurm.gpus_per_task
    if slurm.account:
        params["slurm_account"] = slurm.account
    executor.update_parameters(**params)
    return executor


def launch(
    spec: RunSpec,
    out: Path,
    shards: int,
    launcher: str,
    slurm: SlurmOptions,
    gpus: list[int] | None = None,
    runner: Callable[[RunSpec, Path, bool, str | None], int] = run_shard,
) -> int:
    """Run the shards as jobs, wait, resubmit a failed one once, merge; the exit status.
    ``gpus``: one shard per GPU index at once, each seeing only its own; ``runner``: what a
    job runs (``run_shard``; importable in the job's process)."""
    root = out / "shards"
    executor = _executor(launcher, root / "jobs", slurm)
    specs = {k: dataclasses.replace(spec, shard=(k, shards)) for k in range(1, shards + 1)}
    outs = {k: root / str(k) for k in specs}
    visible = {k: str(gpus[k - 1]) if gpus else None for k in specs}
    try:
        submitted = executor.map_array(
            runner,
            list(specs.values()),
            list(outs.values()),
            [False] * shards,
            list(visible.values()),
        )
        jobs = dict(zip(specs, submitted))
    except Exception as exc:  # a submission the cluster refused
        raise UsageError(f"--launcher {launcher}: submitting the shards failed: {exc}") from None
    ids = ", ".join(str(j.job_id) for j in jobs.values())
    say(f"{shards} shards submitted through submitit ({launcher}; jobs {ids}); logs in {root}")
    t0, retried, status = time.monotonic(), set(), {}
    queue = SlurmQueue() if launcher == "slurm" else None
    said = t0
    while jobs:
        time.sleep(POLL_S)
        if time.monotonic() - said >= PROGRESS_S:
            said = time.monotonic()
            for k, job in jobs.items():
                where = latest_progress(_log(job))
                say(f"shard {k}/{shards}: {where or 'starting'}")
        if queue is not None:
            queue.look(jobs.values())
        for k, job in list(jobs.items()):
            failure = None
            if job.done():
                try:
                    status[k] = job.result()
                except Exception as exc:  # the job itself failed: a lost node, a crash
                    failure = _first_line(exc)
            elif queue is not None and queue.vanished(job):
                failure = (
                    f"out of Slurm's queue for {VANISHED_S:g} s without its result: its "
                    "process was killed or its node lost"
                )
            else:
                continue
            del jobs[k]
            if failure is not None:
                if k in retried:
                    status[k] = None
                    warn(f"shard {k}/{shards} failed again ({failure}); left out")
                    continue
                retried.add(k)
                warn(f"shard {k}/{shards} failed ({failure}); submitted again")
                jobs[k] = executor.submit(runner, specs[k], outs[k], True, visible[k])
                continue
            running = f"{len(jobs)} running" if jobs else "all ended"
            say(
                f"shard {k}/{shards} ended (exit {status[k]}) after "
                f"{duration(time.monotonic() - t0)}; {running}"
            )
    return _merge(root, out, shards, status)


class SlurmQueue:
    """Which of the jobs Slurm still holds, from an ``squeue`` call each poll. submitit learns
    that a job failed from ``sacct``; where the cluster keeps no accounting, a job that died
    before writing its result would be waited on for ever: one out of the queue for
    ``VANISHED_S`` (time for a shared file system to show a result written at its end) has
    failed."""

    def __init__(self) -> None:
        self.known = False  # whether the last look could tell
        self.queued: set[str] = set()
        self.gone_since: dict[str, float] = {}  # job id -> first seen out of the queue

    def look(self, jobs) -> None:
        """Ask Slurm which of ``jobs`` it holds (once a poll)."""
        ids = ",".join(str(job.job_id) for job in jobs)
        found = subprocess.run(
            ["squeue", "-h", "-o", "%i", "-j", ids], capture_output=True, text=True, check=False
        )
        # a job id Slurm has forgotten is an error of squeue's; any other error says nothing
        self.known = found.returncode == 0 or "Invalid job id" in found.stderr
        self.queued = set(found.stdout.split())

    def vanished(self, job) -> bool:
        job_id = str(job.job_id)
        if not self.known or job_id in self.queued:
            self.gone_since.pop(job_id, None)
            return False
        first = self.gone_since.setdefault(job_id, time.monotonic())
        return time.monotonic() - first >= VANISHED_S


def _log(job) -> str:
    """What the job's process has written to stderr so far (its progress lines)."""
    try:
        return job.paths.stderr.read_text(errors="replace")
    except OSError:
        return ""


def latest_progress(log: str) -> str | None:
    """A shard's last progress line that says the time it has left (``[3/8] resnet18: done
    in 14 s (...); about 2.1 min left``), or its last line when none does yet."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    with_estimate = [line for line in lines if line.endswith(" left")]
    return (with_estimate or lines or [None])[-1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _merge(root: Path, out: Path, shards: int, status: dict[int, int | None]) -> int:
    runs = [
        max((p.parent for p in (root / str(k)).glob("*/run.json")), key=lambda p: p.name)
        for k in range(1, shards + 1)
        if status.get(k) in (0, 1) and (root / str(k)).is_dir()
    ]
    if len(runs) < 2:
        warn(f"{len(runs)} of {shards} shards finished: nothing to merge; see {root}")
        return 1
    merged_dir = new_run_dir(out)
    try:
        merged = merge_runs(runs, merged_dir)
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    report = build_report(merged.path)
    say(f"merged {len(runs)} shards into {merged.path}; report: {report}")
    if merged.missing:
        warn(f"{len(merged.missing)} items are missing: {', '.join(merged.missing)}")
    failed = len(runs) < shards or merged.missing or any(s != 0 for s in status.values())
    return 1 if failed else 0
