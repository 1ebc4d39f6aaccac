"""The accuracy phase: each model trained on real Fashion-MNIST under a fixed budget, for each
seed; test accuracy and its spread, time to the accuracy targets, learning curves (curves.csv)
and confusion matrices (confusion/)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import torch

from archs import ModelEntry
from bench.dist.ddp_training import GroupResult, train_in_processes
from bench.dist.scaling import START_S, scaling_rows
from bench.measure import failures
from bench.measure.estimate import AccuracyWork, accuracy_seconds
from bench.phases.base import PerModelPhase, RunAborted, RunContext, model_facts
from bench.training.data import CLASSES
from bench.training.loop import AccuracyConfig, OverCap, SeedResult, train_model
from runfolder.rows import Row, error_row, result_row
from runfolder.schema import ACCURACY_TARGETS
from runfolder.writer import RunWriter


def accuracy_facts(entry: ModelEntry, acc: AccuracyConfig, train_images: int, test_images: int):
    return (
        model_facts(entry, AccuracyPhase.name)
        | acc.mode.facts()
        | {
            "budget_unit": acc.budget.kind,
            "budget": acc.budget.value,
            "train_images": train_images,
            "test_images": test_images,
        }
    )


def note_rows(entry: ModelEntry, facts: dict[str, object]) -> list[Row]:
    """The figures the model's seed note printed, to set beside the suite's (none when the
    note printed none)."""
    recipe = entry.seed_recipe
    if recipe is None:
        return []
    method = (
        f"as printed in its seed note ({entry.note}): d2l train_ch6, plain SGD lr "
        f"{recipe.lr:g}, {recipe.epochs} epochs, batch {recipe.batch_size}, on the note's GPU"
    )
    figures = {"note_test_acc": recipe.test_acc, "note_examples_per_s": recipe.examples_per_s}
    # the note's recipe, not the run's: all of Fashion-MNIST, its epochs and batch
    recipe_facts = facts | {
        "budget_unit": "epochs",
        "budget": recipe.epochs,
        "batch": recipe.batch_size,
        "train_images": 60_000,
        "test_images": 10_000,
    }
    return [
        result_row(recipe_facts, m, 100 * value if m == "note_test_acc" else value, method)
        for m, value in figures.items()
        if value is not None
    ]


def accuracy_rows(
    facts: dict[str, object], seeds: list[SeedResult], cfg: AccuracyConfig, how: str = ""
) -> list[Row]:
    """Means over the seeds that did not diverge; a diverged seed is counted and named.
    ``how``: how the seeds were trained where not as ``cfg.describe()`` says (by a group of
    processes)."""
    ok = [s for s in seeds if not s.diverged]
    diverged = [s.seed for s in seeds if s.diverged]
    rows: list[Row] = []
    facts = facts | {"batch": seeds[0].batch_size}
    method = (
        f"{how or cfg.describe()}; batch {seeds[0].batch_size}, peak lr {seeds[0].lr:g}; seeds "
        + ",".join(str(s.seed) for s in ok)
    )

    def add(metric: str, values: list[float]) -> None:
        finite = [v for v in values if v == v]  # NaN: a threshold never reached
        if finite:
            rows.append(result_row(facts, metric, statistics.fmean(finite), method))

    if ok:
        add("test_acc", [s.test_acc for s in ok])
        if len(ok) > 1:
            add("test_acc_std", [statistics.stdev(s.test_acc for s in ok)])
        add("seeds", [len(ok)])
        add("macro_f1", [s.macro_f1 for s in ok])
        add("final_train_acc", [s.epochs[-1].train_acc for s in ok])
        add("final_train_loss", [s.epochs[-1].train_loss for s in ok])
        add("fit_throughput", [s.examples_per_s for s in ok])
        add("fit_time", [s.train_seconds for s in ok])
        add("fit_epochs", [len(s.epochs) for s in ok])
        add("first_step_time", [s.first_step_s for s in ok])
        for t in ACCURACY_TARGETS:
            add(f"time_to_{t}", [s.time_to(t) for s in ok])
        for k in range(len(CLASSES)):
            add(f"class_acc_{k}", [s.per_class_acc[k] for s in ok])
    rows.append(result_row(facts, "diverged", len(diverged), method))
    if diverged:
        seeds_text = ", ".join(map(str, diverged))
        rows.append(error_row(facts, f"diverged (non-finite loss) in seed(s) {seeds_text}"))
    return rows


def curve_rows(seed: SeedResult) -> list[dict[str, object]]:
    return [
        {
            "model": seed.model,
            "seed": seed.seed,
            "epoch": e.epoch,
            "train_seconds": e.train_seconds,
            "train_loss": e.train_loss,
            "train_acc": e.train_acc,
            "test_acc": e.test_acc,
        }
        for e in seed.epochs
    ]


def confusion_frame(seeds: list[SeedResult]) -> pd.DataFrame:
    """Counts summed over seeds; rows are true classes, columns predictions (a model with more
    than 10 outputs has a column for each extra one)."""
    total = sum(s.confusion for s in seeds if s.confusion is not None)
    extra = [f"output {k}" for k in range(len(CLASSES), total.shape[1])]
    return pd.DataFrame(
        total.numpy(),
        index=pd.Index(CLASSES, name="true \\\\ predicted"),
        columns=[*CLASSES, *extra],
    )


def unnamed(ctx: RunContext) -> Callable[[str], None]:
    """Progress lines of ``train_model``, which names the model, as the run's progress tag
    does already."""
    return lambda line: ctx.say(line.split(" ", 1)[1])


@dataclass(frozen=True)
class GroupTraining:
    """Every seed trained by a group of processes, and again by one process alike."""

    processes: int
    backend: str
    group: GroupResult
    single: GroupResult  # one process's

    @property
    def seeds(self) -> list[SeedResult]:
        return self.group.seeds

    def how(self) -> str:
        return (
            f"DistributedDataParallel ({self.backend}) over {self.processes} processes, "
            f"started by torchrun, the batch split across them; {self.group.setting}"
        )

    def rows(self, facts: dict[str, object]) -> list[Row]:
        """The scaling rows: training examples/s (the mean over seeds of the timed steps) of
        the group against one process, and one process's test accuracy beside the group's."""
        group = [s.examples_per_s for s in self.seeds if not s.diverged]
        alone = [s.examples_per_s for s in self.single.seeds if not s.diverged]
        if not group or not alone:
            return []
        method = f"the accuracy phase's training examples/s, mean over seeds; {self.how()}"
        single = f"the same training by 1 process, started by torchrun; {self.single.setting}"
        rows = scaling_rows(
            facts,
            self.processes,
            statistics.fmean(group),
            statistics.fmean(alone),
            method,
            single,
        )
        accuracy = [s.test_acc for s in self.single.seeds if not s.diverged]
        return [*rows, result_row(facts, "ddp_single_test_acc", statistics.fmean(accuracy), single)]


def train_in_group(entry: ModelEntry, ctx: RunContext, size: int) -> GroupTraining:
    """``entry`` trained by ``--accuracy-processes`` processes, then by one. On the CPU each
    process gets the run's threads divided by the processes, the one alone too, so that the
    efficiency is that of adding processes (as in the ddp phase)."""
    cfg = ctx.cfg
    assert cfg.accuracy is not None and cfg.data_dir is not None
    n, gpu = cfg.accuracy_processes, cfg.device.type == "cuda"
    threads = max(1, torch.get_num_threads() // n)
    runs = []
    for processes in (n, 1):
        ctx.say(f"accuracy: training with {processes} process{'es' if processes > 1 else ''}")
        runs.append(
            train_in_processes(
                entry, cfg.accuracy, cfg.data_dir, size, processes, threads, unnamed(ctx)
            )
        )
    return GroupTraining(n, "nccl" if gpu else "gloo", *runs)


class AccuracyPhase(PerModelPhase):
    name: ClassVar[str] = "accuracy"

    def resume(self, folder: RunWriter, models: list[str], done: frozenset[tuple]) -> None:
        """A model's curves are written epoch by epoch, its rows at the end: the curves of a
        model without rows are of an interrupted training, measured again."""
        folder.drop_curves({m for m in models if (m,) not in done})

    def measure(self, entry: ModelEntry, ctx: RunContext) -> Iterator[list[Row]]:
        cfg = ctx.cfg
        assert cfg.accuracy is not None and cfg.data is not None  # set together by the CLI
        acc, (train, test) = cfg.accuracy, cfg.data
        facts = accuracy_facts(entry, acc, len(train), len(test))
        # written with the phase's last rows, so a folder holding them holds the whole phase
        notes = note_rows(entry, facts)
        h, w = cfg.input_hw(entry)
        if h != w:
            yield [*notes, error_row(facts, "training needs a square --input-size")]
            return
        seeds: list[SeedResult] = []
        group: GroupTraining | None = None
        lost = False
        try:
            if cfg.accuracy_processes > 1:
                group = train_in_group(entry, ctx, h)
                seeds = group.seeds
                for result in seeds:
                    ctx.folder.add_curves(curve_rows(result))
            else:
                for seed in acc.seeds:
                    result = train_model(entry, train, test, acc, seed, h, unnamed(ctx))
                    ctx.folder.add_curves(curve_rows(result))
                    seeds.append(result)
        except OverCap as over:
            seeds = []
            method = (
                f"{acc.describe()}; not trained: {over}; run it with a longer --accuracy-cap "
                "(or 0 for none), a smaller --budget, or on a GPU with --gpu"
            )
            yield [*notes, result_row(facts, "not_trained_estimate", over.estimate_s, method)]
            ctx.say(f"accuracy not trained: {over}")
        except Exception as exc:  # out of memory, compile error: the model's row, not the run's
            yield [*notes, error_row(facts, failures.describe(exc))]
            ctx.say(f"accuracy FAILED: {failures.describe(exc)}")
            lost = failures.is_sticky_cuda_error(exc)
            if lost:
                raise RunAborted(entry.name, failures.describe(exc)) from None
        finally:
            if cfg.device.type == "cuda" and not lost:  # a lost context fails every CUDA call
                torch.cuda.empty_cache()
        if seeds:
            ctx.folder.add_confusion(entry.name, confusion_frame(seeds))
            how, scaling = "", []
            if group is not None:
                how, scaling = group.how(), group.rows(facts | {"batch": seeds[0].batch_size})
            yield [*notes, *accuracy_rows(facts, seeds, acc, how), *scaling]

    def estimate_s(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> float:
        acc, data = ctx.cfg.accuracy, ctx.cfg.data
        if acc is None or data is None:
            return 0.0
        train, test = data
        profile = ctx.profiles.get(entry.name)
        batch = acc.batch_size(entry, len(train))
        seeds = len(acc.seeds)
        steps = acc.steps(batch, len(train))
        epochs = acc.budget.value if acc.budget.kind == "epochs" else 1
        work = AccuracyWork(
            flops_per_sample=float(profile.flops) if profile else 0.0,
            layers=profile.leaf_layers if profile else 1,
            train_steps=(steps or 0) * seeds,
            train_batch=batch,
            eval_examples=epochs * len(test) * seeds,
            train_seconds=acc.budget.value * seeds if steps is None else 0.0,
            compile_training=acc.mode if acc.mode.compile != "none" else None,
            cap_s=acc.cap_s * seeds if acc.cap_s else None,
        )
        seconds = accuracy_seconds(work, peak_tflops, ctx.cfg.device)
        if ctx.cfg.accuracy_processes > 1:  # trained by the group, then by one process
            return 2 * (seconds + START_S)
        return seconds
