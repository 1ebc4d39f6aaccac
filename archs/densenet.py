"""DenseNet (Huang et al., 2016) as d2l builds it: growth 32, four dense blocks of 4 convs."""

from __future__ import annotations

import torch
from torch import nn

from .registry import SeedRecipe, register_model


def conv_block(in_channels: int, channels: int) -> nn.Sequential:
    """Pre-activation BN-ReLU-3x3 conv."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    """Each conv block sees the concatenation of the block input and every earlier output."""

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int):
        super().__init__()
        self.net = nn.Sequential(
            *(conv_block(in_channels + i * growth_rate, growth_rate) for i in range(num_convs))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.net:
            x = torch.cat((x, blk(x)), dim=1)
        return x


def transition_block(in_channels: int, channels: int) -> nn.Sequential:
    """BN-ReLU-1x1 conv to ``channels``, then 2x2 average pooling halves height and width."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(),
        nn.Conv2d(in_channels, channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )


@register_model(
    family="densenet",
    year=2016,
    paper="Huang et al., Densely Connected Convolutional Networks (2016)",
    note=(
        "001 §3.7: d2l's DenseNet at 96x96 (growth 32, blocks 4-4-4-4, transitions halve channels)"
    ),
    input_size=96,
    seed_recipe=SeedRecipe(
        lr=0.1, epochs=10, batch_size=256, test_acc=0.885, examples_per_s=5626.3
    ),
)
def densenet(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """ResNet's stem, four dense blocks of four conv blocks (each adds 32 channels), a
    transition halving channels and size between blocks, then BN-ReLU, global pooling, Linear.
    Follows note 001 exactly; at 96x96 the last block ends at 248x3x3."""
    growth_rate, channels, convs_per_block = 32, 64, (4, 4, 4, 4)
    layers: list[nn.Module] = [
        nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
    ]
    for i, num_convs in enumerate(convs_per_block):
        layers.append(DenseBlock(num_convs, channels, growth_rate))
        channels += num_convs * growth_rate
        if i != len(convs_per_block) - 1:
            layers.append(transition_block(channels, channels // 2))
            channels //= 2
    layers += [
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    ]
    return nn.Sequential(*layers)
