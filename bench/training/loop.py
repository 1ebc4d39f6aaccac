"""The accuracy phase: each model trained on real Fashion-MNIST under one fixed budget and one
recipe (Xavier-uniform initialisation, SGD with Nesterov momentum 0.9, weight decay 5e-4,
one-cycle learning rate with 20% warm-up, label smoothing 0.1, random flips and crops), then
evaluated on the test set.

Training time excludes evaluation and the first step (which holds torch.compile's compilation
and cuDNN's autotuning; it is reported as ``first_step_s``). The loss is checked every 50 steps;
a non-finite loss stops the model and marks it diverged.

Every step runs under the mode's backend switches (``bench.measure.backends``: cuDNN autotuning on a
GPU, TF32 only in tf32 modes), set explicitly and restored afterwards. A compiled mode compiles
each seed's model afresh (``bench.measure.compiled``), and never silently falls back to eager.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.nn import functional as F

from archs import ModelEntry
from bench.measure import backends, compiled
from bench.measure.modes import Mode
from bench.measure.timers import sync
from bench.measure.train_step import backward_and_step
from bench.training.data import CLASSES
from bench.training.loader import Split, batch_indices, model_input
from bench.training.process_group import TrainingGroup

CHECK_EVERY = 50  # steps between host syncs for the divergence check and the seconds budget
LABELS = len(CLASSES)  # Fashion-MNIST's labels are 0-9
ALONE = TrainingGroup()  # training in this process only
AUGMENT_SEED_STRIDE = 1_000_003  # a group's processes draw flips and crops from seeds this apart


@dataclass(frozen=True)
class Budget:
    kind: Literal["epochs", "seconds", "steps"]
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


def parse_budget(text: str) -> Budget:
    m = re.fullmatch(r"\s*(epochs|seconds|steps)\s*=\s*([0-9]*\.?[0-9]+)\s*", text)
    if not m or float(m.group(2)) <= 0:
        raise ValueError(
            f"--budget must be epochs=N, steps=N or seconds=S with N, S > 0, got '{text}'"
        )
    kind, value = m.group(1), float(m.group(2))
    if kind in ("epochs", "steps") and not value.is_integer():
        raise ValueError(f"--budget {kind} must be a whole number, got '{text}'")
    return Budget(kind, value)  # type: ignore[arg-type]


def training_mode(device: torch.device, compile: bool = False) -> Mode:
    """The accuracy phase's mode: bf16 autocast and channels_last on a GPU, fp32 on the CPU;
    torch.compile's default mode when asked."""
    compile_mode = "default" if compile else "none"
    if device.type == "cuda":
        return Mode("bf16", True, compile_mode)
    return Mode("fp32", False, compile_mode)


@dataclass(frozen=True)
class AccuracyConfig:
    """How the accuracy phase trains. ``num_classes`` (at least 10, Fashion-MNIST's labels
    0-9) sizes the models' output; ``in_channels`` above 1 feeds them the grey channel repeated
    that many times, on the device."""

    budget: Budget
    seeds: tuple[int, ...]
    device: torch.device
    mode: Mode  # precision, layout and compile of the training steps
    train_limit: int | None = None  # first N training images (smoke runs)
    eval_limit: int | None = None  # first N test images
    batch_cap: int | None = None  # at most this batch (the CPU's default keeps steps short)
    eval_batch: int = 1024
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.2  # fraction of the budget spent warming the learning rate up
    in_channels: int = 1
    num_classes: int = LABELS
    # a seed whose training is estimated, from its first steps, to take longer than this is
    # stopped and reported as not trained (None: no cap)
    cap_s: float | None = None

    def __post_init__(self) -> None:
        if self.num_classes < LABELS:
            raise ValueError(
                f"the accuracy phase needs --num-classes {LABELS} or more: Fashion-MNIST has "
                f"{LABELS} classes (labels 0-{LABELS - 1}), got {self.num_classes}"
            )
        if self.in_channels < 1:
            raise ValueError(f"--in-channels must be at least 1, got {self.in_channels}")

    def batch_size(self, entry: ModelEntry, train_images: int) -> int:
        """The entry's batch, at most ``batch_cap`` and the number of training images."""
        return min(entry.train.batch_size, self.batch_cap or entry.train.batch_size, train_images)

    def steps(self, batch: int, train_images: int) -> int | None:
        """Training steps per seed the budget allows (None for a seconds budget); an epoch
        drops its last partial batch."""
        if self.budget.kind == "epochs":
            return int(self.budget.value) * (train_images // batch)
        if self.budget.kind == "steps":
            return int(self.budget.value)
        return None

    def describe(self) -> str:
        data = (
            f"first {self.train_limit} training images"
            if self.train_limit
            else "60,000 training images"
        )
        test = f"first {self.eval_limit} test images" if self.eval_limit else "10,000 test images"
        shape = ""
        if self.in_channels > 1:
            shape += f", grey channel repeated to {self.in_channels} input channels"
        if self.num_classes > LABELS:
            shape += f", {self.num_classes} outputs (labels 0-{LABELS - 1})"
        return (
            f"budget {self.budget}; {data}, {test}{shape}; {self.mode.describe()}, "
            f"{self.mode.backends(self.device).describe(self.device)}; Xavier init, SGD "
            f"nesterov 0.9, wd {self.weight_decay:g}, one-cycle, label smoothing "
            f"{self.label_smoothing:g}, flips + crops"
        )


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_seconds: float  # cumulative training time, evaluation excluded
    train_loss: float
    train_acc: float  # %, on the augmented batches
    test_acc: float  # %


@dataclass
class SeedResult:
    model: str
    seed: int
    batch_size: int
    lr: float
    epochs: list[EpochRecord] = field(default_factory=list)
    # (10, num_classes) counts: rows the true labels, columns the predicted classes
    confusion: torch.Tensor | None = None
    train_seconds: float = 0.0
    examples_timed: int = 0
    first_step_s: float = 0.0
    diverged: bool = False
    steps: int = 0  # training steps run, the untimed first one included
    compiled_graphs: int = 0  # graphs dynamo compiled for this seed by the end of its first step

    @property
    def test_acc(self) -> float:
        return 100 * float(self.confusion.diag().sum() / self.confusion.sum())

    @property
    def per_class_acc(self) -> list[float]:
        c = self.confusion.double()
        return (100 * c.diag() / c.sum(1).clamp(min=1)).tolist()

    @property
    def macro_f1(self) -> float:
        """Over the 10 true classes (an extra output predicted is a miss for its row)."""
        c = self.confusion.double()
        tp = c.diag()
        precision = tp / c.sum(0)[: len(tp)].clamp(min=1)
        recall = tp / c.sum(1).clamp(min=1)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        return 100 * float(f1.mean())

    @property
    def examples_per_s(self) -> float:
        return self.examples_timed / self.train_seconds if self.train_seconds else math.nan

    def time_to(self, accuracy: float) -> float:
        """Training seconds until the end of the first epoch at or above ``accuracy`` (%)."""
        return next((e.train_seconds for e in self.epochs if e.test_acc >= accuracy), math.nan)


def xavier_init(model: torch.nn.Module) -> None:
    """Xavier-uniform conv and linear weights, as d2l's ``train_ch6`` (which produced the seed
    notes' figures) does: the deep nets without BatchNorm train from it."""
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_uniform_(m.weight)


def lr_at(progress: float, peak: float, warmup: float) -> float:
    """One-cycle: linear from 10% to 100% of ``peak`` over the warm-up, then linear to 0."""
    if progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    return peak * max(0.0, (1 - progress) / (1 - warmup))


def evaluate(model: torch.nn.Module, test: Split, size: int, cfg: AccuracyConfig) -> torch.Tensor:
    """The (10, ``cfg.num_classes``) confusion matrix over the test split."""
    model.eval()
    classes = cfg.num_classes
    confusion = torch.zeros(LABELS * classes, dtype=torch.long, device=test.labels.device)
    with torch.no_grad(), cfg.mode.autocast(cfg.device):
        for idx in batch_indices(
            len(test),
            cfg.eval_batch,
            shuffle=False,
            drop_last=False,
            generator=None,
            device=cfg.device,
        ):
            x = model_input(
                test.images[idx],
                size,
                augment=False,
                memory_format=cfg.mode.memory_format,
                in_channels=cfg.in_channels,
            )
            if cfg.mode.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            pred = model(x).argmax(1)
            confusion += torch.bincount(
                test.labels[idx] * classes + pred, minlength=LABELS * classes
            )
    model.train()
    return confusion.view(LABELS, classes).cpu()


def _sgd(model: torch.nn.Module, lr: float, cfg: AccuracyConfig) -> torch.optim.SGD:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # biases and norm scales
    return torch.optim.SGD(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=lr,
        momentum=cfg.momentum,
        nesterov=True,
    )


class OverCap(Exception):
    """Training would take longer than the configured cap: the model is not trained."""

    def __init__(self, estimate_s: float, examples_per_s: float, cap_s: float):
        super().__init__(
            f"estimated {estimate_s:,.0f} s of training at {examples_per_s:,.1f} "
            f"examples/s (measured over its first steps), over the {cap_s:g} s cap"
        )
        self.estimate_s, self.examples_per_s, self.cap_s = estimate_s, examples_per_s, cap_s


CAP_PROBE_STEPS = 4  # timed steps after the first before the cap is judged


class _Training:
    """One seed of one model: a fresh model, its optimizer and its shuffled batches, trained an
    epoch at a time into ``result``."""

    def __init__(
        self,
        entry: ModelEntry,
        train: Split,
        test: Split,
        cfg: AccuracyConfig,
        seed: int,
        size: int,
        group: TrainingGroup = ALONE,
    ) -> None:
        self.train, self.test, self.cfg, self.size, self.group = train, test, cfg, size, group
        batch = cfg.batch_size(entry, len(train))
        # a smaller batch than the entry's takes a proportionally smaller rate (linear scaling)
        peak_lr = entry.train.lr * batch / entry.train.batch_size
        self.result = SeedResult(entry.name, seed, batch, peak_lr)
        compiled.reset(cfg.device)  # this seed's graphs only: dynamo's cache never fills up
        torch.manual_seed(seed)
        # the batches' order: the same on every process of a group, each taking its share
        self.generator = torch.Generator(device=cfg.device).manual_seed(seed)
        self.augment_generator = self.generator
        if group.distributed:  # each process its own flips and crops
            self.augment_generator = torch.Generator(device=cfg.device).manual_seed(
                seed + AUGMENT_SEED_STRIDE * (group.rank + 1)
            )
        raw = entry.build(cfg.num_classes, cfg.in_channels, (size, size))
        xavier_init(raw)  # the same weights on every process: the seed is
        raw = raw.to(device=cfg.device, memory_format=cfg.mode.memory_format).train()
        self.raw = raw
        self.model = compiled.compile_model(group.wrap(raw, cfg.device), cfg.mode)
        self.optimizer = _sgd(raw, peak_lr, cfg)
        fp16 = cfg.mode.precision == "fp16"
        self.scaler = torch.amp.GradScaler(cfg.device.type) if fp16 else None
        self.total_steps = cfg.steps(batch, len(train))
        self.out_of_budget = False

    @property
    def finished(self) -> bool:
        return self.out_of_budget or self.result.diverged

    def lr(self, trained_seconds: float) -> float:
        if self.total_steps:
            progress = self.result.steps / self.total_steps
        else:
            progress = trained_seconds / self.cfg.budget.value
        return lr_at(min(progress, 1.0), self.result.lr, self.cfg.warmup)

    def step(self, idx: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One SGD step on the batch ``idx`` (this process's share of it): its loss and its
        count of right predictions."""
        cfg = self.cfg
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        idx = self.group.part(idx)
        x = model_input(
            self.train.images[idx],
            self.size,
            augment=True,
            generator=self.augment_generator,
            memory_format=cfg.mode.memory_format,
            in_channels=cfg.in_channels,
        )
        y = self.train.labels[idx]
        if cfg.mode.cuda_graphs:  # a new iteration: the last one's graph outputs may be reused
            torch.compiler.cudagraph_mark_step_begin()
        with cfg.mode.autocast(cfg.device):
            out = self.model(x)
            loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
        backward_and_step(loss, self.optimizer, self.scaler)
        return loss.detach().float(), (out.argmax(1) == y).sum()

    def stop_now(self, loss_sum: torch.Tensor, t0: float) -> bool:
        """After a step: diverged (checked every ``CHECK_EVERY`` steps) or out of budget, on
        any process of the group."""
        r, budget, device, group = self.result, self.cfg.budget, self.cfg.device, self.group
        check = r.steps % CHECK_EVERY == 0
        if check:
            sync(device)
            if group.any(not bool(torch.isfinite(loss_sum)), device):
                r.diverged = True
                return True
        # the CPU runs synchronously, so its clock can be read every step
        if budget.kind == "seconds" and (check or device.type == "cpu"):
            spent = r.train_seconds + time.perf_counter() - t0
            if group.any(spent >= budget.value, device):
                self.out_of_budget = True
        if self.total_steps and r.steps >= self.total_steps:
            self.out_of_budget = True
        return self.out_of_budget

    def epoch(self) -> EpochRecord:
        """Train until the end of the epoch or the budget, then evaluate on the test split."""
        return self.record(*self.train_epoch())

    def train_epoch(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The steps of one epoch, until its end or the budget's: the sum of their losses, their
        right predictions and the examples they saw. The first step of the run is timed apart,
        the cap judged after it and after the probe's steps."""
        r, device = self.result, self.cfg.device
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        sync(device)
        t0 = time.perf_counter()
        for idx in batch_indices(
            len(self.train),
            r.batch_size,
            shuffle=True,
            drop_last=True,
            generator=self.generator,
            device=device,
        ):
            loss, right = self.step(idx, self.lr(r.train_seconds + time.perf_counter() - t0))
            r.steps += 1
            seen += len(idx)
            loss_sum += loss
            correct += right
            if r.steps == 1:  # compilation and autotuning: timed apart, not counted
                t0 = self.first_step_done(t0)
            else:
                r.examples_timed += len(idx)
            if r.steps in (1, 1 + CAP_PROBE_STEPS):
                self.check_cap(r.train_seconds + time.perf_counter() - t0)
            if self.stop_now(loss_sum, t0):
                break
        sync(device)
        r.train_seconds += time.perf_counter() - t0
        return loss_sum, correct, seen

    def first_step_done(self, t0: float) -> float:
        """Record the first step's seconds (since ``t0``) and the graphs it compiled, checking
        that a compiled mode compiled; the clock the timed steps start from."""
        r, mode = self.result, self.cfg.mode
        sync(self.cfg.device)
        r.first_step_s = time.perf_counter() - t0
        compiled.check_compiled(mode)
        r.compiled_graphs = compiled.compiled_graphs()
        return time.perf_counter()

    def record(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> EpochRecord:
        """Evaluate on the test split and record the epoch: its training loss and accuracy from
        ``train_epoch``'s sums, its test accuracy, and the training seconds so far."""
        r, group, device = self.result, self.group, self.cfg.device
        # a group's figures are of all its processes: losses averaged, right predictions summed
        loss_sum = group.summed(loss_sum, device) / group.size
        correct = group.summed(correct, device)
        if not torch.isfinite(loss_sum):
            r.diverged = True
        group.share_buffers(self.raw)
        # each process evaluates its share of the test set
        test = self.test
        if group.distributed:
            share = slice(group.rank, None, group.size)
            test = Split(test.images[share], test.labels[share])
        r.confusion = group.summed(evaluate(self.model, test, self.size, self.cfg), device)
        record = EpochRecord(
            len(r.epochs) + 1,
            r.train_seconds,
            float(loss_sum) / max(1, seen // r.batch_size),
            100 * int(correct) / max(seen, 1),
            r.test_acc,
        )
        r.epochs.append(record)
        return record

    def check_cap(self, timed_s: float) -> None:
        """Raise ``OverCap`` when the whole budget, at the pace of the timed steps so far,
        would take longer than the cap (seconds budgets end on time by themselves)."""
        r, cap = self.result, self.cfg.cap_s
        if cap is None or not self.total_steps:
            return
        if r.steps == 1:
            # the first step also pays one-time costs, so it stops a model only when even
            # half its pace would break the cap (a VGG step at 224x224 takes a minute on a CPU)
            estimate = self.group.largest(r.first_step_s * self.total_steps, self.cfg.device)
            if estimate / 2 > cap:
                raise OverCap(estimate, r.batch_size / r.first_step_s, cap)
            return
        sync(self.cfg.device)
        per_step = timed_s / (r.steps - 1)
        estimate = r.first_step_s + per_step * (self.total_steps - 1)
        estimate = self.group.largest(estimate, self.cfg.device)
        if estimate > cap:
            raise OverCap(estimate, r.batch_size / per_step, cap)

    def report(self, record: EpochRecord) -> str:
        r, budget = self.result, self.cfg.budget
        if budget.kind == "epochs":
            where = f"epoch {record.epoch}/{int(budget.value)}"
            left = (budget.value - record.epoch) * r.train_seconds / record.epoch
        elif budget.kind == "steps":
            where = f"epoch {record.epoch}, step {r.steps}/{int(budget.value)}"
            left = (budget.value - r.steps) * r.train_seconds / max(1, r.steps - 1)
        else:
            where = f"epoch {record.epoch}"
            left = max(0.0, budget.value - r.train_seconds)
        state = " DIVERGED" if r.diverged else ""
        return (
            f"{r.model} seed {r.seed} {where}: loss {record.train_loss:.3f}, train "
            f"{record.train_acc:.1f}%, test {record.test_acc:.2f}% ({r.train_seconds:.1f} s "
            f"trained, ~{left:.0f} s left){state}"
        )


def train_model(
    entry: ModelEntry,
    train: Split,
    test: Split,
    cfg: AccuracyConfig,
    seed: int,
    size: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
    group: TrainingGroup = ALONE,
) -> SeedResult:
    """Train a fresh ``entry`` with ``seed`` until ``cfg.budget`` runs out or the loss diverges,
    evaluating on ``test`` after each epoch (and when the budget ends inside one); ``progress``
    gets a line per epoch. ``size``: the input size (the model's own by default). In a
    ``group`` of processes (torchrun), each trains on its share of every batch, the batch and
    the figures being the group's.

    Raises ``compiled.RanEager`` when a compiled mode's first step compiled nothing, and
    dynamo's ``FailOnRecompileLimitHit`` instead of running eager past its recompile limit."""
    with backends.applied(cfg.mode.backends(cfg.device)), compiled.no_eager_fallback():
        run = _Training(entry, train, test, cfg, seed, size or entry.input_size, group)
        while not run.finished:
            progress(run.report(run.epoch()))
    return run.result
