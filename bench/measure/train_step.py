"""The training step every figure that trains times: the speed phase's training throughput,
the profile phase's step and its parts, and the ddp phase's steps over N processes.

SGD (lr 1e-3, momentum 0.9) over the model's parameters; the forward pass and the
cross-entropy loss under the mode's autocast; under fp16 a ``GradScaler`` scales the loss and
unscales the step, as a real fp16 training loop must (without it small gradients underflow).
The parts can be called apart (the profile phase times them one by one) or together."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from bench.measure.modes import Mode


def backward_and_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> None:
    """Zero the gradients, backpropagate ``loss`` and step; through ``scaler`` under fp16."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


class TrainStep:
    """One SGD step of ``model`` on ``(x, y)`` in ``mode``. ``params``: what the optimizer
    steps (the eager module's, when ``model`` is its compiled wrapper)."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        mode: Mode,
        device: torch.device,
        params: Iterable[nn.Parameter] | None = None,
    ) -> None:
        self.model, self.x, self.y, self.mode, self.device = model, x, y, mode, device
        self.optimizer = torch.optim.SGD(
            model.parameters() if params is None else params, lr=1e-3, momentum=0.9
        )
        self.scaler = torch.amp.GradScaler(device.type) if mode.precision == "fp16" else None

    def forward(self) -> torch.Tensor:
        """The loss of the batch."""
        with self.mode.autocast(self.device):
            return F.cross_entropy(self.model(self.x), self.y)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def optimize(self) -> None:
        """The optimizer's step, then the gradients zeroed for the next step."""
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self) -> None:
        if self.mode.cuda_graphs:  # a new step for the CUDA graphs of reduce-overhead modes
            torch.compiler.cudagraph_mark_step_begin()
        backward_and_step(self.forward(), self.optimizer, self.scaler)
