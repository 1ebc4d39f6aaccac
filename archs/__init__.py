"""The architecture registry. Every family module is imported here so registration is visible;
``zoos`` adds torchvision's and timm's models as the sources ``tv:`` and ``timm:``."""

from . import alexnet, densenet, googlenet, lenet, nin, resnet, small_cnn, vgg, zoos  # noqa: F401
from .registry import (
    MAX_GLOB_MODELS,
    ModelEntry,
    ModelSource,
    ModelSourceError,
    SeedRecipe,
    TrainSettings,
    UnknownModelError,
    build_model,
    get_entry,
    list_families,
    list_models,
    list_models_in_family,
    list_sources,
    register_model,
    registered_entries,
    registering_as,
    registry_scope,
    unregister_model,
)
from .selection import select_models

__all__ = [
    "MAX_GLOB_MODELS",
    "ModelEntry",
    "ModelSource",
    "ModelSourceError",
    "SeedRecipe",
    "TrainSettings",
    "UnknownModelError",
    "build_model",
    "get_entry",
    "list_families",
    "list_models",
    "list_models_in_family",
    "list_sources",
    "register_model",
    "registered_entries",
    "registering_as",
    "registry_scope",
    "select_models",
    "unregister_model",
]
