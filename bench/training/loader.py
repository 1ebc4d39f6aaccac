"""Fashion-MNIST resident on the device as uint8; normalisation, augmentation and resizing are
done there, a batch at a time. No DataLoader, no worker processes, no host copies in the loop."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from bench.training.data import FashionMNIST

MEAN, STD = 0.2860, 0.3530  # of the training images (note 003 uses the same)
PAD = 2  # random crops: 28x28 windows of the image padded by 2 pixels


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, 28, 28) uint8 on the device
    labels: torch.Tensor  # (N,) int64 on the device

    def __len__(self) -> int:
        return len(self.labels)


def to_device(
    data: FashionMNIST,
    device: torch.device,
    train_limit: int | None = None,
    eval_limit: int | None = None,
) -> tuple[Split, Split]:
    """The training and test splits on ``device``; a limit keeps the first N images."""
    train = Split(
        data.train_images[:train_limit].to(device), data.train_labels[:train_limit].to(device)
    )
    test = Split(data.test_images[:eval_limit].to(device), data.test_labels[:eval_limit].to(device))
    return train, test


def model_input(
    images: torch.Tensor,
    size: int,
    *,
    augment: bool,
    generator: torch.Generator | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
    in_channels: int = 1,
) -> torch.Tensor:
    """uint8 (B, 28, 28) -> normalised float (B, in_channels, size, size), optionally augmented
    with random horizontal flips and random crops, then resized (bilinear) to the model's input
    size. With ``in_channels`` above 1 the grey channel is repeated (a model built for colour
    input sees grey images), on the device, after the resize."""
    x = images.float().div_(255).sub_(MEAN).div_(STD)
    if augment:
        b, device = x.shape[0], x.device
        flip = torch.rand(b, device=device, generator=generator) < 0.5
        x = torch.where(flip[:, None, None], x.flip(-1), x)
        padded = F.pad(x, (PAD,) * 4, value=-MEAN / STD)  # pad with black, normalised
        dy, dx = torch.randint(0, 2 * PAD + 1, (2, b), device=device, generator=generator)
        grid = torch.arange(28, device=device)
        rows = (dy[:, None] + grid)[:, :, None]
        cols = (dx[:, None] + grid)[:, None, :]
        x = padded[torch.arange(b, device=device)[:, None, None], rows, cols]
    x = x.unsqueeze(1)
    if size != 28:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    # the expanded view has stride 0 across channels; contiguous() makes the copies
    x = x.expand(-1, in_channels, -1, -1)
    return x.contiguous(memory_format=memory_format)


def batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool,
    drop_last: bool,
    generator: torch.Generator | None,
    device: torch.device,
) -> Iterator[torch.Tensor]:
    order = (
        torch.randperm(n, device=device, generator=generator)
        if shuffle
        else torch.arange(n, device=device)
    )
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]
