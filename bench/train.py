"""The accuracy phase: each model trained on real Fashion-MNIST under one fixed budget and one
recipe (Xavier-uniform initialisation, SGD with Nesterov momentum 0.9, weight decay 5e-4,
one-cycle learning rate with 20% warm-up, label smoothing 0.1, random flips and crops), then
evaluated on the test set.

Training time excludes evaluation and the first step (which holds torch.compile's compilation
and cuDNN's autotuning; it is reported as ``first_step_s``). The loss is checked every 50 steps;
a non-finite loss stops the model and marks it diverged.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
from torch.nn import functional as F

from archs import ModelEntry

from .loader import Split, batch_indices, model_input
from .modes import Mode
from .speed import backward_and_step

CHECK_EVERY = 50  # steps between host syncs for the divergence check and the seconds budget
THRESHOLDS = (85, 90, 93)  # test accuracy (%) whose time-to-reach is reported


@dataclass(frozen=True)
class Budget:
    kind: Literal["epochs", "seconds"]
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


def parse_budget(text: str) -> Budget:
    m = re.fullmatch(r"\s*(epochs|seconds)\s*=\s*([0-9]*\.?[0-9]+)\s*", text)
    if not m or float(m.group(2)) <= 0:
        raise ValueError(f"--budget must be epochs=N or seconds=S with N, S > 0, got '{text}'")
    kind, value = m.group(1), float(m.group(2))
    if kind == "epochs" and not value.is_integer():
        raise ValueError(f"--budget epochs must be a whole number, got '{text}'")
    return Budget(kind, value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AccuracyConfig:
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

    def describe(self) -> str:
        data = (f"first {self.train_limit} training images" if self.train_limit
                else "60,000 training images")  # fmt: skip
        test = f"first {self.eval_limit} test images" if self.eval_limit else "10,000 test images"
        return (f"budget {self.budget}; {data}, {test}; {self.mode.describe()}; Xavier init, SGD nesterov "
                f"0.9, wd {self.weight_decay:g}, one-cycle, label smoothing {self.label_smoothing:g}, "
                "flips + crops")  # fmt: skip


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
    confusion: torch.Tensor | None = None  # (10, 10) counts: rows true, columns predicted
    train_seconds: float = 0.0
    examples_timed: int = 0
    first_step_s: float = 0.0
    diverged: bool = False

    @property
    def test_acc(self) -> float:
        return 100 * float(self.confusion.diag().sum() / self.confusion.sum())

    @property
    def per_class_acc(self) -> list[float]:
        c = self.confusion.double()
        return (100 * c.diag() / c.sum(1).clamp(min=1)).tolist()

    @property
    def macro_f1(self) -> float:
        c = self.confusion.double()
        tp = c.diag()
        precision = tp / c.sum(0).clamp(min=1)
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
    """The (10, 10) confusion matrix over the test split."""
    model.eval()
    confusion = torch.zeros(100, dtype=torch.long, device=test.labels.device)
    with torch.no_grad(), cfg.mode.autocast(cfg.device):
        for idx in batch_indices(len(test), cfg.eval_batch, shuffle=False, drop_last=False,
                                 generator=None, device=cfg.device):  # fmt: skip
            x = model_input(test.images[idx], size, augment=False, memory_format=cfg.mode.memory_format)
            pred = model(x).argmax(1)
            confusion += torch.bincount(test.labels[idx] * 10 + pred, minlength=100)
    model.train()
    return confusion.view(10, 10).cpu()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_model(entry: ModelEntry, train: Split, test: Split, cfg: AccuracyConfig, seed: int,
                size: int | None = None,
                progress: Callable[[str], None] = lambda _: None) -> SeedResult:  # fmt: skip
    size = size or entry.input_size
    device, mode = cfg.device, cfg.mode
    batch = min(entry.train.batch_size, cfg.batch_cap or entry.train.batch_size, len(train))
    # a smaller batch than the entry's takes a proportionally smaller rate (linear scaling)
    peak_lr = entry.train.lr * batch / entry.train.batch_size
    result = SeedResult(entry.name, seed, batch, peak_lr)
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    raw = entry.build()
    xavier_init(raw)
    raw = raw.to(device=device, memory_format=mode.memory_format).train()
    model = raw if mode.compile == "none" else torch.compile(
        raw, mode=None if mode.compile == "default" else mode.compile)  # fmt: skip
    decay = [p for p in raw.parameters() if p.ndim > 1]
    no_decay = [p for p in raw.parameters() if p.ndim <= 1]  # biases and norm scales
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=peak_lr, momentum=cfg.momentum, nesterov=True,
    )  # fmt: skip
    scaler = torch.amp.GradScaler(device.type) if mode.precision == "fp16" else None
    steps_per_epoch = len(train) // batch
    budget = cfg.budget
    total_steps = int(budget.value) * steps_per_epoch if budget.kind == "epochs" else None

    def step(idx: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = model_input(train.images[idx], size, augment=True, generator=generator,
                        memory_format=mode.memory_format)  # fmt: skip
        y = train.labels[idx]
        with mode.autocast(device):
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
        backward_and_step(loss, optimizer, scaler)
        return loss.detach().float(), (out.argmax(1) == y).sum()

    done_steps, epoch = 0, 0
    out_of_budget = False
    while not out_of_budget and not result.diverged:
        epoch += 1
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        _sync(device)
        t0 = time.perf_counter()
        for idx in batch_indices(len(train), batch, shuffle=True, drop_last=True,
                                 generator=generator, device=device):  # fmt: skip
            elapsed = result.train_seconds + time.perf_counter() - t0
            progress_frac = (done_steps / total_steps if total_steps
                             else elapsed / budget.value)  # fmt: skip
            loss, right = step(idx, lr_at(min(progress_frac, 1.0), peak_lr, cfg.warmup))
            done_steps += 1
            seen += len(idx)
            loss_sum += loss
            correct += right
            if done_steps == 1:  # compilation and autotuning: timed apart, not counted
                _sync(device)
                result.first_step_s = time.perf_counter() - t0
                t0 = time.perf_counter()
            else:
                result.examples_timed += len(idx)
            check = done_steps % CHECK_EVERY == 0
            if check:
                _sync(device)
                if not torch.isfinite(loss_sum):
                    result.diverged = True
                    break
            # the CPU runs synchronously, so its clock can be read every step
            if budget.kind == "seconds" and (check or device.type == "cpu"):
                if result.train_seconds + time.perf_counter() - t0 >= budget.value:
                    out_of_budget = True
                    break
            if total_steps and done_steps >= total_steps:
                out_of_budget = True
                break
        _sync(device)
        result.train_seconds += time.perf_counter() - t0
        if not torch.isfinite(loss_sum):
            result.diverged = True
        steps = max(1, seen // batch)
        confusion = evaluate(model, test, size, cfg)
        result.confusion = confusion
        record = EpochRecord(epoch, result.train_seconds, float(loss_sum) / steps,
                             100 * int(correct) / max(seen, 1),
                             100 * float(confusion.diag().sum() / confusion.sum()))  # fmt: skip
        result.epochs.append(record)
        left = (f"{(budget.value - epoch) * result.train_seconds / epoch:.0f} s" if total_steps
                else f"{max(0.0, budget.value - result.train_seconds):.0f} s")  # fmt: skip
        state = " DIVERGED" if result.diverged else ""
        progress(f"{entry.name} seed {seed} epoch {epoch}"
                 f"{'/' + str(int(budget.value)) if total_steps else ''}: loss {record.train_loss:.3f}, "
                 f"train {record.train_acc:.1f}%, test {record.test_acc:.2f}% "
                 f"({result.train_seconds:.1f} s trained, ~{left} left){state}")  # fmt: skip
    return result
