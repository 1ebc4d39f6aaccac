"""The seed notes' training loop (d2l's ``train_ch6``) against the suite's, side by side.

    python -m bench.baseline --gpu                 # ResNet-18 (d2l, 96x96) and LeNet, batch 256
    python -m bench.baseline --models lenet --steps 50

The d2l loop: a torchvision ``FashionMNIST`` dataset with ``ToTensor`` (and ``Resize`` for
models above 28x28), a ``DataLoader`` with 4 workers, fp32, and a host sync every batch (the
loss and the accuracy read back as Python numbers, as d2l's ``Accumulator`` does). The suite's
loop: ``bench.train`` (data resident on the device, bf16 autocast and channels_last on a GPU).
Both train the same model at the same batch size in the same process on the same device;
each is timed over ``--steps`` steps after ``--warmup`` untimed ones. It prints examples/s of
each and the suite's speed-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import sys
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate
from torch import nn

import archs

from .data import FILES, DataError, find_data_dir
from .data import _file_in as data_file
from .loader import to_device
from .modes import Mode
from .train import AccuracyConfig, Budget, train_model, xavier_init


def torchvision_root(data_dir: Path, root: Path) -> Path:
    """torchvision's FashionMNIST wants the uncompressed files in ROOT/FashionMNIST/raw."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in FILES.values():
        path = data_file(data_dir, f)
        payload = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        (raw / f.stem).write_bytes(payload)
    return root


def d2l_loop(entry: archs.ModelEntry, root: Path, device: torch.device, batch: int,
             warmup: int, steps: int, workers: int) -> float:  # fmt: skip
    """examples/s of d2l's train_ch6 inner loop."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    trans = [transforms.ToTensor()]
    if entry.input_size != 28:
        trans.insert(0, transforms.Resize(entry.input_size))
    dataset = datasets.FashionMNIST(str(root), train=True, transform=transforms.Compose(trans))
    loader = DataLoader(dataset, batch, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=workers > 0)  # fmt: skip
    torch.manual_seed(0)
    net = entry.build()
    xavier_init(net)
    net = net.to(device).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    done, t0, timed = 0, 0.0, 0
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
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
            if done == warmup + steps:
                break
    return timed / (time.perf_counter() - t0)


def suite_loop(entry: archs.ModelEntry, data, device: torch.device, batch: int, steps: int) -> float:
    """examples/s of the suite's loop over ``steps`` timed steps (its first step is untimed)."""
    train, test = data
    gpu = device.type == "cuda"
    cfg = AccuracyConfig(
        budget=Budget("epochs", 1), seeds=(0,), device=device,
        mode=Mode("bf16", True) if gpu else Mode("fp32"),
        train_limit=batch * (steps + 1), eval_limit=batch, eval_batch=batch,
    )  # fmt: skip
    entry = dataclasses.replace(entry, train=archs.TrainSettings(lr=0.01, batch_size=batch))
    return train_model(entry, train, test, cfg, seed=0).examples_per_s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet18_d2l,lenet")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=100, help="timed steps of each loop")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps of the d2l loop")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the d2l loop")
    p.add_argument("--data-dir", type=Path)
    args = p.parse_args(argv)
    try:
        models = archs.select_models(args.models)
        if args.gpu and not torch.cuda.is_available():
            raise DataError("--gpu was given but no CUDA device is visible")
        data_dir = find_data_dir(args.data_dir)
    except (DataError, archs.UnknownModelError) as exc:
        print(f"baseline: error: {exc}", file=sys.stderr)
        return 2
    from .data import load_fashion_mnist

    device = torch.device("cuda" if args.gpu else "cpu")
    data = to_device(load_fashion_mnist(data_dir), device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(data_dir, Path(tmp))
        for name in models:
            entry = archs.get_entry(name)
            d2l = d2l_loop(entry, root, device, args.batch_size, args.warmup, args.steps, args.workers)
            suite = suite_loop(entry, data, device, args.batch_size, args.steps)
            rows.append({"model": name, "input": f"{entry.input_size}x{entry.input_size}",
                         "batch": args.batch_size, "d2l loop examples/s": d2l,
                         "suite examples/s": suite, "suite / d2l": suite / d2l})  # fmt: skip
            print(f"{name}: done", file=sys.stderr, flush=True)
    where = torch.cuda.get_device_name() if args.gpu else "CPU"
    print(f"device {where}, torch {torch.__version__}; {args.steps} timed steps each; d2l loop: "
          f"fp32, DataLoader with {args.workers} workers, host sync every batch; suite: "
          f"{'bf16 autocast + channels_last' if args.gpu else 'fp32'}, data on the device")  # fmt: skip
    print(tabulate(rows, headers="keys", floatfmt=",.2f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
