"""The small two-convolution CNN of note 003's Fashion-MNIST project (32x32 input)."""

from __future__ import annotations

from torch import nn

from .registry import SeedRecipe, TrainSettings, register_model


@register_model(
    family="small_cnn",
    year=2024,
    paper="none: the seed note's own baseline",
    note="003 §4: two 3x3 conv + max-pool stages, FC 2048-64-10, images resized to 32x32",
    input_size=32,
    seed_recipe=SeedRecipe(lr=0.001, epochs=10, batch_size=128),  # Adam in the note
    train=TrainSettings(lr=0.05),
)
def small_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Note 003's ``CNN``: conv(16)-pool, conv(32)-pool, Linear(32*8*8, 64), dropout, Linear.

    The note flattens with ``x.view`` inside ``forward``; here it is an ``nn.Flatten`` layer so
    the per-layer table shows it.
    """
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Flatten(),
        nn.Sequential(
            nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, num_classes)
        ),
    )
