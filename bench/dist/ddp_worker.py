"""One process of the ddp phase's measurement, started by torchrun: training steps of a model
wrapped in DistributedDataParallel on synthetic data, timed together by all processes.

``python -m torch.distributed.run --nproc-per-node N -m bench.dist.ddp_worker SPEC`` where SPEC is
the JSON of ``DdpJob``. Each process trains on its own batch (the global batch is N times
it); after the warm-up all processes meet at a barrier, run the timed steps, and the slowest
process's time is the figure's (an all-reduce of the maxima). Rank 0 writes the result JSON.
Gloo on CPUs, NCCL on GPUs (one GPU per process: ``LOCAL_RANK``). The step is the speed
phase's (``bench.measure.train_step``: a GradScaler under fp16), under the mode's backend
switches (cuDNN autotuning on, TF32 only in tf32 modes), so ``ddp_*`` and ``train_throughput``
are measured alike.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import archs

from bench.measure import backends
from bench.measure.modes import parse_mode
from bench.measure.train_step import TrainStep


@dataclass(frozen=True)
class DdpJob:
    model: str  # a name archs.select_models resolves (a user's file spec included)
    mode: str
    batch: int  # per process
    steps: int
    warmup: int
    input_size: tuple[int, int]
    in_channels: int
    num_classes: int
    gpu: bool
    threads: int  # CPU threads per process
    out: str  # where rank 0 writes the result


@dataclass(frozen=True)
class DdpResult:
    processes: int
    backend: str
    seconds: float  # the timed steps, the slowest process's
    per_process_seconds: list[float]

    def throughput(self, job: DdpJob) -> float:
        """Samples per second of all processes together."""
        return self.processes * job.batch * job.steps / self.seconds


def main(spec: str) -> None:
    job = DdpJob(**{**json.loads(spec), "input_size": tuple(json.loads(spec)["input_size"])})
    backend = "nccl" if job.gpu else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if job.gpu:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(job.threads)
    mode = parse_mode(job.mode)
    (name,) = archs.select_models(job.model)
    torch.manual_seed(0)
    model = mode.place(
        archs.get_entry(name).build(job.num_classes, job.in_channels, job.input_size), device
    )
    ddp = DistributedDataParallel(model.train(), device_ids=[device.index] if job.gpu else None)
    generator = torch.Generator(device=device).manual_seed(rank)
    x = mode.inputs(
        torch.randn(job.batch, job.in_channels, *job.input_size, device=device, generator=generator)
    )
    y = torch.randint(0, job.num_classes, (job.batch,), device=device, generator=generator)
    # the speed phase's training step, under the same backend switches as its figures
    step = TrainStep(ddp, x, y, mode, device)
    with backends.applied(mode.backends(device)):
        for _ in range(job.warmup):
            step()
        if job.gpu:
            torch.cuda.synchronize(device)
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(job.steps):
            step()
        if job.gpu:
            torch.cuda.synchronize(device)
    elapsed = torch.tensor([time.perf_counter() - t0], dtype=torch.float64, device=device)
    gathered = [torch.zeros_like(elapsed) for _ in range(world)]
    dist.all_gather(gathered, elapsed)
    if rank == 0:
        times = [float(t.item()) for t in gathered]
        result = DdpResult(world, backend, max(times), times)
        with open(job.out, "w") as f:
            json.dump(asdict(result), f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
