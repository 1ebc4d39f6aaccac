"""AlexNet (Krizhevsky et al., 2012): d2l's single-tower version and note 000's CIFAR-10
redesign."""

from __future__ import annotations

from torch import nn

from .registry import SeedRecipe, TrainSettings, register_model

_PAPER = "Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep CNNs (2012)"


def _features(first: nn.Conv2d) -> list[nn.Module]:
    """The five-conv trunk shared by both variants; only the first conv differs."""
    return [
        first,
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
    ]


def classifier(in_features: int, num_classes: int) -> list[nn.Module]:
    """The two 4096-wide dropout-regularised hidden layers and the output layer, which VGG
    keeps from AlexNet."""
    return [
        nn.Linear(in_features, 4096),
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(4096, num_classes),
    ]


@register_model(
    family="alexnet",
    year=2012,
    paper=_PAPER,
    note="001 §3.1: d2l's AlexNet for 1x224x224 Fashion-MNIST (conv1 11x11/4 padding 1, FC 6400)",
    input_size=224,
    seed_recipe=SeedRecipe(lr=0.01, epochs=10, batch_size=128),
    train=TrainSettings(lr=0.005),
)
def alexnet(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """The paper's single-tower layer widths (96-256-384-384-256) without LRN.

    With padding 1 at 224x224 the last feature map is 5x5, so the first FC layer takes 6400
    features, not the paper's 9216 (6x6 at 227x227): at 3 channels and 1000 classes this model
    has 2816 x 4096 fewer weights than the paper's 62.4M.
    """
    first = nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1)
    return nn.Sequential(*_features(first), *classifier(256 * 5 * 5, num_classes))


@register_model(
    family="alexnet",
    year=2012,
    paper=_PAPER,
    note="000 'AlexNet': the note's CIFAR-10 redesign for 32x32 (conv1 5x5/1, FC 2304)",
    input_size=32,
    train=TrainSettings(lr=0.005),
)
def alexnet_cifar(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Note 000's ``AlexNetCIFAR10``: a 5x5 stride-1 first conv keeps 32x32, the trunk ends at 3x3.

    The note trains it on 3-channel CIFAR-10; the registry defaults to 1 channel like every
    entry (Fashion-MNIST resized to 32x32), ``in_channels=3`` gives the note's model.
    """
    first = nn.Conv2d(in_channels, 96, kernel_size=5, stride=1, padding=2)
    return nn.Sequential(*_features(first), *classifier(256 * 3 * 3, num_classes))
