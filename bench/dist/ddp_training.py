"""The accuracy phase's training under DistributedDataParallel: every seed of one model trained
by N processes that torchrun starts, each on its share of every batch.

``python -m torch.distributed.run --nproc-per-node N -m bench.dist.ddp_training JOB`` where JOB is
the JSON of ``TrainJob``. Each process loads Fashion-MNIST onto its device and trains with the
recipe of ``bench.training.loop``: the batch is the model's one, split across the processes (so the
learning rate, the schedule and the steps are those of one process, and the accuracy is
comparable with it), the batches' order is the same on every process, their flips and crops
each process's own. Process 0 prints the progress lines and writes the result JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist

import archs
from archs import ModelEntry

from bench.training.data import load_fashion_mnist
from bench.training.loader import to_device
from bench.measure.modes import parse_mode
from bench.dist.torchrun import model_spec, torchrun
from bench.training.loop import AccuracyConfig, Budget, EpochRecord, OverCap, SeedResult, train_model
from bench.training.process_group import TrainingGroup


@dataclass(frozen=True)
class TrainJob:
    model: str  # a name archs.select_models resolves (a user's file spec included)
    data_dir: str  # the Fashion-MNIST files the parent run checked
    accuracy: dict  # the AccuracyConfig but its device (``settings_of``)
    size: int  # input height and width
    gpu: bool
    threads: int  # CPU threads per process
    out: str  # where process 0 writes the result


def settings_of(cfg: AccuracyConfig) -> dict:
    settings = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name != "device"}
    return settings | {
        "budget": [cfg.budget.kind, cfg.budget.value],
        "seeds": list(cfg.seeds),
        "mode": cfg.mode.name,
    }


def config_of(settings: dict, device: torch.device) -> AccuracyConfig:
    return AccuracyConfig(
        **settings
        | {
            "budget": Budget(*settings["budget"]),
            "seeds": tuple(settings["seeds"]),
            "mode": parse_mode(settings["mode"]),
            "device": device,
        }
    )


def seed_json(result: SeedResult) -> dict:
    return {f.name: getattr(result, f.name) for f in fields(result)} | {
        "epochs": [asdict(e) for e in result.epochs],
        "confusion": result.confusion.tolist() if result.confusion is not None else None,
    }


def seed_of(data: dict) -> SeedResult:
    return SeedResult(
        **data
        | {
            "epochs": [EpochRecord(**e) for e in data["epochs"]],
            "confusion": None if data["confusion"] is None else torch.tensor(data["confusion"]),
        }
    )


@dataclass(frozen=True)
class GroupResult:
    seeds: list[SeedResult]
    setting: str  # the training's settings as its processes saw them (their CPU threads)


def train_in_processes(
    entry: ModelEntry,
    cfg: AccuracyConfig,
    data_dir: Path,
    size: int,
    processes: int,
    threads: int,
    say: Callable[[str], None],
) -> GroupResult:
    """Every seed of ``entry`` trained by ``processes`` torchrun processes (``threads`` CPU
    threads each on the CPU, a GPU each on GPUs); raises ``OverCap`` as ``train_model`` does,
    ``TorchrunError`` when the processes fail."""
    with tempfile.TemporaryDirectory() as tmp:
        job = TrainJob(
            model=model_spec(entry),
            data_dir=str(data_dir),
            accuracy=settings_of(cfg),
            size=size,
            gpu=cfg.device.type == "cuda",
            threads=threads,
            out=str(Path(tmp) / "result.json"),
        )
        torchrun("bench.dist.ddp_training", json.dumps(asdict(job)), processes, on_line=say)
        outcome = json.loads(Path(job.out).read_text())
    if "over_cap" in outcome:
        raise OverCap(*outcome["over_cap"])
    return GroupResult([seed_of(s) for s in outcome["seeds"]], outcome["setting"])


def main(spec: str) -> None:
    job = TrainJob(**json.loads(spec))
    group, device = TrainingGroup.started(job.gpu)
    if not job.gpu:
        torch.set_num_threads(job.threads)
    cfg = config_of(job.accuracy, device)
    train, test = to_device(
        load_fashion_mnist(Path(job.data_dir)), device, cfg.train_limit, cfg.eval_limit
    )
    (name,) = archs.select_models(job.model)
    entry = archs.get_entry(name)

    def say(line: str) -> None:
        if group.rank == 0:
            print(line, flush=True)

    outcome: dict = {"seeds": [], "setting": cfg.describe()}
    try:
        for seed in cfg.seeds:
            result = train_model(entry, train, test, cfg, seed, job.size, say, group)
            outcome["seeds"].append(seed_json(result))
    except OverCap as over:  # every process raises it: the estimate is the group's
        outcome = {"over_cap": [over.estimate_s, over.examples_per_s, over.cap_s]}
    if group.rank == 0:
        Path(job.out).write_text(json.dumps(outcome))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
