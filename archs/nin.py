"""Network in Network (Lin, Chen & Yan, 2013) as d2l builds it."""

from __future__ import annotations

from torch import nn

from .registry import SeedRecipe, TrainSettings, register_model


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(),
    )


@register_model(
    family="nin",
    year=2013,
    paper="Lin, Chen & Yan, Network In Network (2013)",
    note="001 §3.3 (also 000, 004 §4): d2l's NiN at 224x224",
    input_size=224,
    seed_recipe=SeedRecipe(lr=0.1, epochs=10, batch_size=128),
    train=TrainSettings(lr=0.01),
)
def nin(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Four NiN blocks, the last with ``num_classes`` channels, then global average pooling.

    Note 004 writes ``nn.AdaptiveAvgPool2d(1, 1)``, which raises (the module takes one
    ``output_size`` argument); this uses ``AdaptiveAvgPool2d((1, 1))`` as note 001 does.
    """
    return nn.Sequential(
        nin_block(in_channels, 96, kernel_size=11, stride=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, stride=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, stride=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, num_classes, kernel_size=3, stride=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )
