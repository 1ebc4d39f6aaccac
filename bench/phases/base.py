"""What every phase shares: the run's settings, its context, and the shape of a phase."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from archs import ModelEntry
from bench import log
from bench.measure.modes import Mode
from bench.measure.static_profile import StaticProfile
from bench.training.loader import Split
from bench.training.loop import AccuracyConfig
from runfolder.rows import Row
from runfolder.writer import RunWriter


@dataclass(frozen=True)
class RunConfig:
    models: list[str]
    phases: tuple[str, ...]
    device: torch.device
    modes: list[Mode]
    batch_sizes: tuple[int, ...]
    input_size: tuple[int, int] | None = None  # None: each model's own
    num_classes: int = 10
    in_channels: int = 1
    repeats: int | None = None  # None: the device's default
    warmup: int | None = None
    accuracy: AccuracyConfig | None = None  # set when the accuracy phase runs
    data: tuple[Split, Split] | None = None  # training and test splits on the device
    compiled_latency: bool = False  # batch-1 latency in compiled modes too (a compile each)
    trace: bool = False  # the profile phase writes a Chrome trace per model and mode
    shard: tuple[int, int] | None = None  # (K, N): this run measures the K-th of N shards
    ddp_processes: int = 2  # the ddp phase's processes (torchrun)
    # the accuracy phase's training processes: above 1, DistributedDataParallel (torchrun)
    accuracy_processes: int = 1
    data_dir: Path | None = None  # the Fashion-MNIST files loaded into ``data``

    def input_hw(self, entry: ModelEntry) -> tuple[int, int]:
        return self.input_size or (entry.input_size, entry.input_size)


@dataclass
class RunContext:
    """What a phase may use besides the model: the settings, the device's name, every model's
    static profile (made first, for the estimate and the speed phase's FLOPs; None where it
    failed, with the reason in ``profile_errors``), the run folder for what is not a row
    (layers, samples, curves) and the progress line."""

    cfg: RunConfig
    device_name: str
    folder: RunWriter
    profiles: dict[str, StaticProfile | None] = field(default_factory=dict)
    profile_errors: dict[str, str] = field(default_factory=dict)
    say: Callable[[str], None] = log.say
    # why an item is skipped: in the run folder already (resumed), or, in a shard, that too
    # or another shard's (``bench.run.shards``)
    skipped: str = "already in the run folder"


class RunAborted(Exception):
    """A sticky CUDA error: nothing more can run on the device in this process. What was
    measured is saved; the failed model's remaining figures are error rows, so a resumed run
    (a new process) skips it."""

    def __init__(self, model: str, error: str):
        super().__init__(f"{model}: {error}")
        self.model = model
        self.error = error


class Phase:
    """A phase measures one model at a time. ``run`` yields its rows in groups, each written
    to the run folder as soon as it comes (an interrupted run keeps them); ``done`` holds the
    items of the phase that the run folder holds already (``runfolder.reader.phase_items``, by
    the phase's ``runfolder.schema.ITEM_KEYS``), and ``run`` skips them.

    What the run does for a phase beyond running it is declared here, never decided by its
    name: ``uses_modes`` (the run's modes are its; the progress line names them),
    ``needs_ceilings`` (the device's roofline ceilings are measured for run.json when it runs),
    ``timed_by_profiling`` (its work is the static profiles made for every model before any
    phase: their time and memory are its), and ``resume`` (called once when a run folder is
    resumed, before any model runs)."""

    name: ClassVar[str]
    uses_modes: ClassVar[bool] = False
    needs_ceilings: ClassVar[bool] = False
    timed_by_profiling: ClassVar[bool] = False

    def run(
        self, entry: ModelEntry, ctx: RunContext, done: frozenset[tuple]
    ) -> Iterator[list[Row]]:
        raise NotImplementedError

    def estimate_s(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> float:
        """Seconds this phase should take for ``entry`` (as ``bench.measure.estimate``
        assumes)."""
        raise NotImplementedError

    def work(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> dict[tuple, float]:
        """The items this phase will measure for ``entry`` (tuples of its ``ITEM_KEYS``'
        values, the model's name first), each with its estimated seconds: what ``--shard``
        deals out."""
        raise NotImplementedError

    def resume(self, folder: RunWriter, models: list[str], done: frozenset[tuple]) -> None:
        """Tidy what an interrupted run left of this phase in ``folder`` (nothing by default)."""


class PerModelPhase(Phase):
    """A phase measured once per model: done for a model when the run folder holds any of
    its rows (its rows are written together, at the end). Subclasses write ``measure`` and
    ``estimate_s``."""

    def run(
        self, entry: ModelEntry, ctx: RunContext, done: frozenset[tuple]
    ) -> Iterator[list[Row]]:
        if (entry.name,) in done:
            ctx.say(f"{self.name}: {ctx.skipped}, skipped")
            return
        yield from self.measure(entry, ctx)

    def measure(self, entry: ModelEntry, ctx: RunContext) -> Iterator[list[Row]]:
        raise NotImplementedError

    def work(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> dict[tuple, float]:
        return {(entry.name,): self.estimate_s(entry, ctx, peak_tflops)}


def model_facts(entry: ModelEntry, phase: str) -> dict[str, object]:
    return {"model": entry.name, "family": entry.family, "source": entry.source, "phase": phase}


class PerModePhase(Phase):
    """A phase measured once per model and mode (the profile and ddp phases): its items are
    (model, mode), its modes those ``modes`` picks from the run's, and its estimate split
    evenly among them. Subclasses write ``modes``, ``run`` and ``estimate_s``."""

    uses_modes: ClassVar[bool] = True

    def modes(self, cfg: RunConfig) -> list[Mode]:
        raise NotImplementedError

    def work(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> dict[tuple, float]:
        modes = self.modes(ctx.cfg)
        each = self.estimate_s(entry, ctx, peak_tflops) / max(len(modes), 1)
        return {(entry.name, mode.name): each for mode in modes}
