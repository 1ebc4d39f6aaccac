"""The processes that train one model together under DistributedDataParallel, as the accuracy
phase's training sees them: which share of each batch and of the test set is this process's,
and the decisions every process must take alike (stop, diverged, over the cap), taken over all
of them so that none waits on a collective the others have left."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class TrainingGroup:
    rank: int = 0
    size: int = 1
    distributed: bool = False  # a process group is initialised (torchrun)

    @classmethod
    def started(cls, gpu: bool) -> tuple[TrainingGroup, torch.device]:
        """Join torchrun's process group (NCCL with one GPU a process, gloo on the CPU): the
        group and this process's device."""
        dist.init_process_group("nccl" if gpu else "gloo")
        if gpu:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        return cls(dist.get_rank(), dist.get_world_size(), True), device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel (its gradients averaged over the processes)."""
        if not self.distributed:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def part(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's consecutive share of a batch's indices (shares differ by one at most)."""
        return torch.tensor_split(idx, self.size)[self.rank] if self.distributed else idx

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when it is on any."""
        return self.largest(float(flag), device) > 0

    def largest(self, value: float, device: torch.device) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, dist.ReduceOp.MAX)
        return float(t.item())

    def summed(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``t`` summed over the processes (a copy on ``t``'s own device)."""
        if not self.distributed:
            return t
        total = t.to(device, copy=True)
        dist.all_reduce(total)
        return total.to(t.device)

    def share_buffers(self, model: nn.Module) -> None:
        """Process 0's buffers (BatchNorm's running statistics) on every process, so that all
        evaluate one model: each updated its own in the last training step."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)
