"""The seed notes' training loop (d2l's ``train_ch6``) against the suite's, side by side.

    python -m bench.checks.baseline --gpu   # ResNet-18 (d2l, 96x96) and LeNet, batch 256
    python -m bench.checks.baseline         # the same on the CPU: batch 16, 5 steps
    python -m bench.checks.baseline --models lenet --steps 50

The d2l loop: a torchvision ``FashionMNIST`` dataset with ``ToTensor`` (and ``Resize`` for
models above 28x28), a ``DataLoader`` with 4 workers, fp32 (TF32 off, cuDNN autotuning on a
GPU, as the suite's fp32 figures), and a host sync every batch (the loss and the accuracy read
back as Python numbers, as d2l's ``Accumulator`` does). The suite's loop: ``bench.training.loop``
(data resident on the device, bf16 autocast and channels_last on a GPU, under its mode's backend
switches). Both train the same model at the same batch size in the same process on the same
device, each timed over exactly ``--steps`` steps: the d2l loop's after ``--warmup`` untimed
ones, the suite's after its one untimed first step. It prints examples/s of each and the
suite's speed-up.
"""

from __future__ import annotations

import dataclasses
import gzip
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate
from torch import nn

import archs
from bench.log import say
from bench.measure import backends
from bench.measure.devices import NoCudaError, pick_device
from bench.measure.modes import Mode
from bench.measure.timers import sync
from bench.run.options import StrictParser, at_least
from bench.training.data import FILES, DataError, find_data_dir
from bench.training.data import _file_in as data_file
from bench.training.loader import Split, to_device
from bench.training.loop import AccuracyConfig, Budget, train_model, training_mode, xavier_init

D2L_MODE = Mode("fp32")  # d2l's loop knows no autocast; its backend switches are fp32's
PROGRESS_EVERY = 5.0  # seconds between the d2l loop's progress lines
D2L_WORKERS = 4  # d2l's DataLoader workers


@dataclass(frozen=True)
class Loops:
    """How both loops run: the batch, the timed steps, the d2l loop's untimed warm-up steps and
    its DataLoader workers."""

    batch_size: int
    steps: int
    warmup: int
    workers: int = D2L_WORKERS


GPU_DEFAULTS = Loops(batch_size=256, steps=100, warmup=10)
# ResNet-18 at 96x96 trains 5 to 20 images a second on a 2-core CPU: a short, small run
CPU_DEFAULTS = Loops(batch_size=16, steps=5, warmup=1)


@dataclass(frozen=True)
class LoopResult:
    examples_per_s: float
    timed_steps: int
    untimed_steps: int  # before the timed ones: warm-up, or the suite's first step


def torchvision_root(data_dir: Path, root: Path) -> Path:
    """torchvision's FashionMNIST wants the uncompressed files in ROOT/FashionMNIST/raw."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in FILES.values():
        path = data_file(data_dir, f)
        payload = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        (raw / f.stem).write_bytes(payload)
    return root


def d2l_loop(
    entry: archs.ModelEntry,
    root: Path,
    device: torch.device,
    batch: int,
    warmup: int,
    steps: int,
    workers: int,
    progress: Callable[[str], None] = lambda _: None,
) -> LoopResult:
    """d2l's train_ch6 inner loop: ``warmup`` untimed steps, then ``steps`` timed ones."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    trans = [transforms.ToTensor()]
    if entry.input_size != 28:
        trans.insert(0, transforms.Resize(entry.input_size))
    dataset = datasets.FashionMNIST(str(root), train=True, transform=transforms.Compose(trans))
    loader = DataLoader(
        dataset,
        batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    torch.manual_seed(0)
    net = entry.build()
    xavier_init(net)
    net = net.to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    done, t0, timed, reported = 0, 0.0, 0, 0.0
    with backends.applied(D2L_MODE.backends(device)):
        while done < warmup + steps:
            for x, y in loader:
                if done == warmup:
                    sync(device)
                    t0 = reported = time.perf_counter()
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                y_hat = net(x)
                loss = loss_fn(y_hat, y)
                loss.backward()
                optimizer.step()
                # d2l's Accumulator: metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
                _ = float(loss.detach()) * x.shape[0], float((y_hat.argmax(1) == y).sum())
                done += 1
                if done > warmup:
                    timed += x.shape[0]
                    now = time.perf_counter()
                    if now - reported >= PROGRESS_EVERY and done < warmup + steps:
                        left = (now - t0) / (done - warmup) * (warmup + steps - done)
                        progress(f"step {done - warmup}/{steps}, ~{left:.0f} s left")
                        reported = now
                if done == warmup + steps:
                    break
    return LoopResult(timed / (time.perf_counter() - t0), done - warmup, warmup)


def suite_loop(
    entry: archs.ModelEntry,
    data: tuple[Split, Split],
    device: torch.device,
    batch: int,
    steps: int,
    progress: Callable[[str], None] = lambda _: None,
) -> LoopResult:
    """The suite's training loop: its untimed first step, then ``steps`` timed ones, sampled from
    the whole training split; the untimed evaluation runs on one batch of test images."""
    train, test = data
    cfg = AccuracyConfig(
        budget=Budget("steps", steps + 1),
        seeds=(0,),
        device=device,
        mode=training_mode(device),
        eval_limit=batch,
        eval_batch=batch,
    )
    entry = dataclasses.replace(entry, train=archs.TrainSettings(lr=0.01, batch_size=batch))
    result = train_model(
        entry,
        train,
        Split(test.images[:batch], test.labels[:batch]),
        cfg,
        seed=0,
        progress=progress,
    )
    return LoopResult(result.examples_per_s, result.steps - 1, 1)


def compare_loops(
    entry: archs.ModelEntry,
    root: Path,
    data: tuple[Split, Split],
    device: torch.device,
    loops: Loops,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    """Both loops on one model, one after the other; a row of the comparison table."""
    name, batch, steps = entry.name, loops.batch_size, loops.steps
    progress(f"{name}: d2l loop, {loops.warmup} warm-up + {steps} timed steps at batch {batch}")
    t0 = time.perf_counter()
    d2l = d2l_loop(
        entry,
        root,
        device,
        batch,
        loops.warmup,
        steps,
        loops.workers,
        progress=lambda line: progress(f"{name}: d2l loop {line}"),
    )
    progress(
        f"{name}: d2l loop done in {time.perf_counter() - t0:.1f} s; suite loop, 1 "
        f"untimed + {steps} timed steps, ~{steps * batch / d2l.examples_per_s:.0f} s "
        "at the d2l loop's rate plus its first step"
    )
    t0 = time.perf_counter()
    # train_model's lines start with the model's name
    suite = suite_loop(
        entry,
        data,
        device,
        batch,
        steps,
        progress=lambda line: progress(f"{name}: suite loop, {line.split(' ', 1)[1]}"),
    )
    progress(f"{name}: suite loop done in {time.perf_counter() - t0:.1f} s")
    return {
        "model": name,
        "input": f"{entry.input_size}x{entry.input_size}",
        "batch": batch,
        "d2l steps": d2l.timed_steps,
        "d2l loop examples/s": d2l.examples_per_s,
        "suite steps": suite.timed_steps,
        "suite examples/s": suite.examples_per_s,
        "suite / d2l": suite.examples_per_s / d2l.examples_per_s,
    }


def header(device: torch.device, loops: Loops) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    mode = training_mode(device)
    warmups = f"{loops.warmup} untimed warm-up step{'' if loops.warmup == 1 else 's'}"
    return "\n".join(
        [
            f"device {where}, torch {torch.__version__}; each loop {loops.steps} timed steps: the "
            f"d2l loop's after {warmups}, the suite's after its untimed first step",
            f"d2l loop: {D2L_MODE.describe()}, {D2L_MODE.backends(device).describe(device)}; "
            f"DataLoader with {loops.workers} workers, host sync every batch",
            f"suite loop: {mode.describe()}, {mode.backends(device).describe(device)}; data on the "
            "device",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = StrictParser(prog="python -m bench.checks.baseline", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet18_d2l,lenet")
    p.add_argument("--gpu", action="store_true")
    p.add_argument(
        "--batch-size", type=at_least(1, "--batch-size"), help="default 256 on a GPU, 16 on the CPU"
    )
    p.add_argument(
        "--steps", type=int, help="timed steps of each loop (default 100 on a GPU, 5 on the CPU)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        help="untimed steps of the d2l loop (default 10 on a GPU, 1 on the CPU)",
    )
    p.add_argument(
        "--workers", type=int, default=D2L_WORKERS, help="DataLoader workers of the d2l loop"
    )
    p.add_argument("--data-dir", type=Path)
    args = p.parse_args(argv)
    defaults = GPU_DEFAULTS if args.gpu else CPU_DEFAULTS
    loops = Loops(
        defaults.batch_size if args.batch_size is None else args.batch_size,
        defaults.steps if args.steps is None else args.steps,
        defaults.warmup if args.warmup is None else args.warmup,
        args.workers,
    )
    try:
        if loops.batch_size < 1 or loops.steps < 1 or loops.warmup < 0 or loops.workers < 0:
            raise ValueError(
                "--batch-size and --steps must be at least 1, --warmup and --workers at least 0"
            )
        models = archs.select_models(args.models)
        device = pick_device(args.gpu)
        data_dir = find_data_dir(args.data_dir)
    except (ValueError, DataError, NoCudaError, archs.UnknownModelError) as exc:
        print(f"baseline: error: {exc}", file=sys.stderr)
        return 2
    from bench.training.data import load_fashion_mnist

    data = to_device(load_fashion_mnist(data_dir), device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(data_dir, Path(tmp))
        for name in models:
            rows.append(
                compare_loops(archs.get_entry(name), root, data, device, loops, progress=say)
            )
    print(header(device, loops))
    print(tabulate(rows, headers="keys", floatfmt=",.2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
