"""LeNet (LeCun et al., 1998) as the seed notes build it, and BN-LeNet (Ioffe & Szegedy, 2015)."""

from __future__ import annotations

from torch import nn

from .registry import SeedRecipe, TrainSettings, register_model

_LENET_PAPER = "LeCun et al., Gradient-based learning applied to document recognition (1998)"
_BN_PAPER = "Ioffe & Szegedy, Batch Normalization (2015)"


@register_model(
    family="lenet",
    year=1998,
    paper=_LENET_PAPER,
    note="001 §2.1 (also 000, 003 §5.1, 004 §1): d2l's sigmoid + average-pooling LeNet at 28x28",
    input_size=28,
    seed_recipe=SeedRecipe(lr=0.9, epochs=10, batch_size=256),
    train=TrainSettings(lr=0.6),
)
def lenet(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """d2l's LeNet-5: sigmoid activations, 2x2 average pooling, padding 2 on the first conv.

    Note 001 trains it with ``train_ch6(net, test_iter, test_iter, ...)``, i.e. on the test set;
    the suite trains on the training set.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.Sigmoid(),
        nn.Linear(120, 84),
        nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )


@register_model(
    family="lenet",
    year=2015,
    paper=_BN_PAPER,
    note=(
        "001 §3.5 and 000 'batch normalization': LeNet with BatchNorm, no padding, Linear(256, 120)"
    ),
    input_size=28,
    seed_recipe=SeedRecipe(
        lr=1.0, epochs=10, batch_size=256, test_acc=0.821, examples_per_s=24521.9
    ),
    train=TrainSettings(lr=0.3),
)
def lenet_bn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """BN-LeNet: BatchNorm after every conv and hidden linear layer, before the sigmoid.

    Note 001 builds it from a hand-written ``BatchNorm`` class (momentum 0.9 on the old
    statistics); note 000 uses ``nn.BatchNorm2d``/``nn.BatchNorm1d``, which is what this is.
    The first conv has no padding, so the flattened features are 16*4*4 = 256.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5),
        nn.BatchNorm2d(6),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.BatchNorm2d(16),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120),
        nn.BatchNorm1d(120),
        nn.Sigmoid(),
        nn.Linear(120, 84),
        nn.BatchNorm1d(84),
        nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )
