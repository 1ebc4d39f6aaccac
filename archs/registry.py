"""The architecture registry: one entry per model, selection as users type it.

Modelled on torchvision's ``_api.py`` and timm's ``_registry.py``: a dict of entries filled by a
``register_model`` decorator that refuses duplicates, ``build_model(name, ...)``, and
``select_models(spec)`` that understands ``all``, exact names, globs and family names.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class SeedRecipe:
    """How the seed note trained the model on Fashion-MNIST, and what it reported (if it did).

    ``test_acc`` and ``examples_per_s`` are the figures printed in the note (d2l's ``train_ch6``
    output), kept so reports can set the suite's results beside them.
    """

    lr: float
    epochs: int
    batch_size: int
    test_acc: float | None = None
    examples_per_s: float | None = None


@dataclass(frozen=True)
class TrainSettings:
    """The suite's own recipe for this model (SGD, Nesterov momentum 0.9, one-cycle schedule,
    label smoothing 0.1): peak learning rate and batch size.

    BatchNorm nets take 0.1. The others take about the seed notes' plain-SGD rate divided by
    10 (momentum 0.9 multiplies the effective step by 10), doubled where the note's is very
    low (AlexNet, VGG). LeNet's and the small CNN's rates were swept on the CPU (5 epochs,
    full data); the rest await a GPU sweep.
    """

    lr: float = 0.1
    batch_size: int = 256


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    year: int
    paper: str
    note: str  # which seed note (and which of its variants) the code follows
    input_size: int  # square input side the note trains and prints it at
    builder: Builder  # builder(num_classes=10, in_channels=1) -> nn.Module
    seed_recipe: SeedRecipe | None = None
    train: TrainSettings = TrainSettings()

    def build(self, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return self.builder(num_classes=num_classes, in_channels=in_channels)


_REGISTRY: dict[str, ModelEntry] = {}


class UnknownModelError(KeyError):
    """A name or pattern that matches no registered model; the message suggests close names."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown model '{name}'{hint} (`--list` shows them all)")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


def register_model(
    *,
    family: str,
    year: int,
    paper: str,
    note: str,
    input_size: int,
    seed_recipe: SeedRecipe | None = None,
    train: TrainSettings = TrainSettings(),
    name: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``fn`` under its function name (or ``name``); a duplicate raises ValueError."""

    def decorator(fn: Builder) -> Builder:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model '{key}' is already registered")
        _REGISTRY[key] = ModelEntry(
            name=key,
            family=family,
            year=year,
            paper=paper,
            note=note,
            input_size=input_size,
            builder=fn,
            seed_recipe=seed_recipe,
            train=train,
        )
        return fn

    return decorator


def _natural_key(name: str) -> list[object]:
    """resnet18 < resnet34 < resnet101 (not resnet101 < resnet18)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(include: str = "*") -> list[str]:
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, include)]
    return sorted(names, key=_natural_key)


def list_families() -> list[str]:
    return sorted({e.family for e in _REGISTRY.values()}, key=_natural_key)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(name, _suggest(name)) from None


def build_model(name: str, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return get_entry(name).build(num_classes=num_classes, in_channels=in_channels)


def _suggest(name: str) -> list[str]:
    # a family may share its name with a model (lenet): each name is suggested once
    candidates = list(dict.fromkeys(list_models() + list_families()))
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)


def select_models(spec: str | list[str]) -> list[str]:
    """Resolve what a user typed: ``all``, names, globs (``resnet*``) and family names.

    ``spec`` is a comma-separated string or a list of such tokens. The result keeps the order
    the user gave, without duplicates. A token that matches nothing raises UnknownModelError.
    """
    tokens = spec.split(",") if isinstance(spec, str) else list(spec)
    tokens = [t.strip() for t in tokens if t.strip()]
    if not tokens:
        raise UnknownModelError("", [])
    chosen: list[str] = []
    for token in tokens:
        if token == "all":
            matches = list_models()
        elif token in _REGISTRY:
            matches = [token]
        elif any(ch in token for ch in "*?["):
            matches = list_models(include=token)
        else:
            matches = list_models_in_family(token)
        if not matches:
            raise UnknownModelError(token, _suggest(token))
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def list_models_in_family(family: str) -> list[str]:
    return sorted((n for n, e in _REGISTRY.items() if e.family == family), key=_natural_key)
