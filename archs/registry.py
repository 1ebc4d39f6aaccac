"""The architecture registry: one entry per model, selection as users type it.

Modelled on torchvision's ``_api.py`` and timm's ``_registry.py``: a dict of entries filled by a
``register_model`` decorator that refuses duplicates, ``build_model(name, ...)``, and
``select_models(spec)`` that understands ``all``, exact names, globs and family names.

Models come from four sources (``ModelEntry.source``): the suite's own (``archbench``),
installed packages that register theirs through the ``archbench.models`` entry-point group
(the distribution's name), a user's file (``path/to/file.py:builder``, source ``file``), and
the zoos in ``archs.zoos`` (``tv:NAME``, ``timm:NAME``), whose entries are made when named.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points

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
    year: int | None
    paper: str
    note: str  # which seed note (or zoo builder) the code follows
    input_size: int  # square input side the model is built for (the note's, the zoo's)
    builder: Builder  # builder(num_classes=10, in_channels=1[, input_size=(H, W)]) -> nn.Module
    seed_recipe: SeedRecipe | None = None
    train: TrainSettings = TrainSettings()
    source: str = "archbench"
    # a builder that sizes the model to its input (a ViT's position embeddings) takes
    # input_size=(H, W); the others build one model for every size
    sized: bool = False

    def build(
        self, num_classes: int = 10, in_channels: int = 1, input_size: tuple[int, int] | None = None
    ) -> nn.Module:
        sized = {"input_size": input_size} if self.sized and input_size else {}
        return self.builder(num_classes=num_classes, in_channels=in_channels, **sized)


_REGISTRY: dict[str, ModelEntry] = {}
# where register_model is being called from: the suite, an entry-point package, a user's file
_CURRENT_SOURCE = ["archbench"]


class ModelSourceError(ValueError):
    """A model source that cannot give what was asked (a file that does not load, a zoo that is
    not installed, a pattern matching too many models): one line for the user."""


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
    input_size: int,
    year: int | None = None,
    paper: str = "",
    note: str = "",
    seed_recipe: SeedRecipe | None = None,
    train: TrainSettings = TrainSettings(),
    name: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``fn`` under its function name (or ``name``); a duplicate raises ValueError.

    The suite's models, a user's file and installed packages (``archbench.models`` entry
    points) all register this way; ``fn(num_classes=..., in_channels=...)`` builds the model.
    """

    def decorator(fn: Builder) -> Builder:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(
                f"model '{key}' is already registered (by {_REGISTRY[key].source}); "
                "give it another name: register_model(name=...)"
            )
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
            source=_CURRENT_SOURCE[-1],
        )
        return fn

    return decorator


def natural_key(name: str) -> list[object]:
    """resnet18 < resnet34 < resnet101 (not resnet101 < resnet18)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class ModelSource:
    """A zoo named by a prefix (``tv:resnet50``): its model names and an entry for each.

    ``names()`` and ``entry()`` raise ModelSourceError when the zoo is not installed; ``entry``
    takes a name without the prefix and returns None for a name the zoo lacks.
    """

    prefix: str
    describe: Callable[[], str]  # one line for --list: what it is, how many models
    names: Callable[[], list[str]]
    entry: Callable[[str], ModelEntry | None]


_SOURCES: dict[str, ModelSource] = {}
_ZOO_ENTRIES: dict[str, ModelEntry] = {}  # zoo models named so far, by their prefixed name
# a glob matching more models than this is refused unless the caller allows it (--yes)
MAX_GLOB_MODELS = 50


def register_source(source: ModelSource) -> None:
    _SOURCES[source.prefix] = source


def list_sources() -> list[ModelSource]:
    return list(_SOURCES.values())


def list_models(include: str = "*") -> list[str]:
    """The registered models (the suite's, installed packages', loaded files'), not the zoos'."""
    load_entry_points()
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, include)]
    return sorted(names, key=natural_key)


def list_families() -> list[str]:
    load_entry_points()
    return sorted({e.family for e in _REGISTRY.values()}, key=natural_key)


def get_entry(name: str) -> ModelEntry:
    load_entry_points()
    if name in _REGISTRY:
        return _REGISTRY[name]
    entry = zoo_entry(name)
    if entry is None:
        raise UnknownModelError(name, suggest(name))
    return entry


def build_model(name: str, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return get_entry(name).build(num_classes=num_classes, in_channels=in_channels)


def split_prefix(name: str) -> tuple[ModelSource | None, str]:
    prefix, colon, rest = name.partition(":")
    return (_SOURCES.get(prefix), rest) if colon else (None, name)


def zoo_entry(name: str) -> ModelEntry | None:
    if name in _ZOO_ENTRIES:
        return _ZOO_ENTRIES[name]
    source, rest = split_prefix(name)
    if source is None:
        return None
    entry = source.entry(rest)
    if entry is not None:
        _ZOO_ENTRIES[name] = entry
    return entry


def suggest(name: str) -> list[str]:
    source, rest = split_prefix(name)
    if source is not None:
        candidates = [f"{source.prefix}:{n}" for n in source.names()]
    else:
        # a family may share its name with a model (lenet): each name is suggested once
        candidates = list(dict.fromkeys(list_models() + list_families()))
    return difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)


def list_models_in_family(family: str) -> list[str]:
    load_entry_points()
    return sorted((n for n, e in _REGISTRY.items() if e.family == family), key=natural_key)


_ENTRY_POINTS_LOADED: list[bool] = []
ENTRY_POINT_GROUP = "archbench.models"


def load_entry_points() -> None:
    """Import each module named in the ``archbench.models`` entry-point group, once: its
    ``register_model`` decorators add its models, with the distribution's name as source. One
    that fails is a warning; the others still load."""
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED.append(True)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        source = point.dist.name if point.dist is not None else point.name
        with registering_as(source):
            try:
                point.load()
            except Exception as exc:
                warnings.warn(
                    f"the {ENTRY_POINT_GROUP} entry point '{point.name}' of {source} failed to "
                    f"load ({type(exc).__name__}: {exc}); its models are left out",
                    stacklevel=2,
                )


@contextlib.contextmanager
def registering_as(source: str) -> Iterator[None]:
    """Models registered inside take ``source`` (``file``, a distribution's name)."""
    _CURRENT_SOURCE.append(source)
    try:
        yield
    finally:
        _CURRENT_SOURCE.pop()


def unregister_model(name: str) -> None:
    """Forget the model ``name`` (``KeyError`` if it is not registered)."""
    del _REGISTRY[name]


@contextlib.contextmanager
def registry_scope() -> Iterator[None]:
    """Models registered inside are forgotten on the way out (a test's own models)."""
    before = set(_REGISTRY)
    try:
        yield
    finally:
        for name in set(_REGISTRY) - before:
            del _REGISTRY[name]


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered model (the suite's, a package's, a loaded file's)."""
    return name in _REGISTRY


def registered_entries(source: str | None = None) -> list[ModelEntry]:
    """The registered models' entries, of ``source`` only when given."""
    return [e for e in _REGISTRY.values() if source is None or e.source == source]
