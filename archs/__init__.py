"""The architecture registry. Every family module is imported here so registration is visible."""

from . import alexnet, densenet, googlenet, lenet, nin, resnet, small_cnn, vgg  # noqa: F401
from .registry import (
    ModelEntry,
    SeedRecipe,
    TrainSettings,
    UnknownModelError,
    build_model,
    get_entry,
    list_families,
    list_models,
    list_models_in_family,
    register_model,
    select_models,
)

__all__ = [
    "ModelEntry",
    "SeedRecipe",
    "TrainSettings",
    "UnknownModelError",
    "build_model",
    "get_entry",
    "list_families",
    "list_models",
    "list_models_in_family",
    "register_model",
    "select_models",
]
