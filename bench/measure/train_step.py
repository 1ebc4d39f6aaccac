"""One training step's backward and optimizer step, as every figure that trains takes it."""

from __future__ import annotations

import torch


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
