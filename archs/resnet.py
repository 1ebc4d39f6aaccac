"""ResNet (He et al., 2015): d2l's ResNet-18 at 96x96 and ResNet-18..152 from note 000's blocks.

Each public variant only declares its spec (block and layers per stage); ``_resnet`` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .registry import SeedRecipe, register_model

_PAPER = "He et al., Deep Residual Learning for Image Recognition (2015)"


class Residual(nn.Module):
    """d2l's residual block: two 3x3 convs (with bias) and BN; a strided 1x1 conv shortcut."""

    def __init__(self, in_channels: int, channels: int, use_1x1conv: bool = False, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv3 = (
            nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride) if use_1x1conv else None
        )
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


def _d2l_stage(in_channels: int, channels: int, num_residuals: int, first: bool) -> nn.Sequential:
    blocks = []
    for i in range(num_residuals):
        if i == 0 and not first:
            blocks.append(Residual(in_channels, channels, use_1x1conv=True, stride=2))
        else:
            blocks.append(Residual(channels, channels))
    return nn.Sequential(*blocks)


@register_model(
    family="resnet",
    year=2015,
    paper=_PAPER,
    note="001 §3.6 (also 003 §5.5, 004 §6): d2l's ResNet-18 at 96x96",
    input_size=96,
    seed_recipe=SeedRecipe(
        lr=0.05, epochs=10, batch_size=256, test_acc=0.893, examples_per_s=5032.7
    ),
)
def resnet18_d2l(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """d2l's ResNet-18: convs with bias, BN after the stem conv, 1x1 projection without BN.

    Note 003's class version puts ReLU before the stem's BN; this follows note 001 (conv, BN,
    ReLU), which is also what d2l and the paper do.
    """
    return nn.Sequential(
        nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ),
        _d2l_stage(64, 64, 2, first=True),
        _d2l_stage(64, 128, 2, first=False),
        _d2l_stage(128, 256, 2, first=False),
        _d2l_stage(256, 512, 2, first=False),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(512, num_classes),
    )


class BasicBlock(nn.Module):
    """Note 000's basic block (ResNet-18/34): two bias-free 3x3 convs with BN; 1x1 conv + BN
    shortcut when the stride or the channel count changes."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """Note 000's bottleneck (ResNet-50/101/152): 1x1 reduce, 3x3 (carrying the stride, as in
    torchvision's "v1.5"), 1x1 expand by 4, each bias-free with BN."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()  # identity, as in the note
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


@dataclass(frozen=True)
class ResNetSpec:
    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]


def _resnet(spec: ResNetSpec, num_classes: int, in_channels: int) -> nn.Sequential:
    """Note 000 gives the blocks, not the network: the stem and stages follow the paper
    (7x7/2 conv, BN, ReLU, 3x3/2 max-pool; stages of 64-128-256-512 planes, stride 2 from the
    second), the same layout torchvision uses, so ImageNet counts can be checked against it."""
    stem = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    stages, in_planes = [], 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), spec.layers)):
        stride = 1 if i == 0 else 2
        stage = []
        for j in range(blocks):
            stage.append(spec.block(in_planes, planes, stride if j == 0 else 1))
            in_planes = planes * spec.block.expansion
        stages.append(nn.Sequential(*stage))
    head = [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(in_planes, num_classes)]
    return nn.Sequential(stem, *stages, *head)


def _register(name: str, spec: ResNetSpec) -> None:
    depth = name.removeprefix("resnet")

    def builder(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return _resnet(spec, num_classes, in_channels)

    builder.__doc__ = f"ResNet-{depth}: {spec.block.__name__} x {spec.layers} (note 000's blocks)."
    register_model(
        name=name,
        family="resnet",
        year=2015,
        paper=_PAPER,
        note=f"000 'ResNet': ResNet-{depth} from its {spec.block.__name__}, at 96x96 like d2l",
        input_size=96,
    )(builder)


for _name, _spec in {
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(Bottleneck, (3, 4, 23, 3)),
    "resnet152": ResNetSpec(Bottleneck, (3, 8, 36, 3)),
}.items():
    _register(_name, _spec)
