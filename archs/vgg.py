"""VGG (Simonyan & Zisserman, 2014): VGG-11 as d2l builds it and VGG-16 from note 003."""

from __future__ import annotations

from torch import nn

from .alexnet import classifier
from .registry import SeedRecipe, TrainSettings, register_model

_PAPER = "Simonyan & Zisserman, Very Deep Convolutional Networks (2014)"

# (number of 3x3 convs, output channels) per block, as d2l's ``conv_arch``.
VGG11_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
VGG16_ARCH = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def _vgg(arch: tuple[tuple[int, int], ...], num_classes: int, in_channels: int) -> nn.Sequential:
    blocks = []
    for num_convs, out_channels in arch:
        blocks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *blocks,
        nn.Flatten(),
        *classifier(in_channels * 7 * 7, num_classes),
    )


@register_model(
    family="vgg",
    year=2014,
    paper=_PAPER,
    note="001 §3.2 (also 000 'VGG'): d2l's VGG-11 at 224x224",
    input_size=224,
    seed_recipe=SeedRecipe(lr=0.05, epochs=10, batch_size=128),
    train=TrainSettings(lr=0.005),
)
def vgg11(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """VGG-11 (configuration A), no BatchNorm. Note 004's copy pads the 3x3 convs by 2, a bug
    that grows every map; this uses padding 1 as notes 000, 001 and the paper do."""
    return _vgg(VGG11_ARCH, num_classes, in_channels)


@register_model(
    family="vgg",
    year=2014,
    paper=_PAPER,
    note="003 §5.3: VGG-16 (configuration D) written out layer by layer",
    input_size=224,
    train=TrainSettings(lr=0.005),
)
def vgg16(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """VGG-16 (configuration D), no BatchNorm, built with the same blocks as VGG-11.

    Note 003 puts ReLU before Dropout in the classifier exactly as here; its layers are grouped
    into the same five blocks for the per-layer table.
    """
    return _vgg(VGG16_ARCH, num_classes, in_channels)
