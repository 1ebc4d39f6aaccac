"""torchvision's and timm's classification models as registry sources: ``tv:NAME`` and
``timm:NAME``, built without pretrained weights (nothing is downloaded).

Each zoo model is built for ``num_classes`` outputs and ``in_channels`` input channels:

- timm takes both natively (``create_model(name, num_classes=..., in_chans=...)``).
- torchvision builders take ``num_classes``; a channel count other than 3 rebuilds the stem,
  the first ``Conv2d`` taking 3 channels, for that many (an adapted first layer: its MACs and
  parameters are those of the narrower convolution; with no pretrained weights there is
  nothing to fold).

A model's own input size is its default weights' crop (torchvision) or its pretrained config's
``input_size`` (timm). Models whose layers are sized to the input (ViT's position embeddings,
MaxViT's attention grid, timm's ``fixed_input_size`` models) are built at the size measured;
the others refuse an input smaller than the ``min_size`` torchvision publishes for them.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from torch import nn

from .registry import ModelEntry, ModelSource, ModelSourceError, register_source

# torchvision builders that size the model to its input, and the keyword that does it
_TV_SIZED = {"vision_transformer": "image_size", "maxvit": "input_size"}
# torchvision builders with auxiliary classifiers, which return a tuple in training mode
_TV_NO_AUX = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


@functools.cache
def _tv_names() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def _tv_describe() -> str:
    return f"torchvision {version('torchvision')}: {len(_tv_names())} classification models"


def _tv_entry(name: str) -> ModelEntry | None:
    import torchvision.models

    if name not in _tv_names():
        return None
    family = torchvision.models.get_model_builder(name).__module__.rpartition(".")[2]
    default = torchvision.models.get_model_weights(name).DEFAULT
    size = int(default.transforms.keywords.get("crop_size", 224))
    min_size = int(default.meta.get("min_size", (1, 1))[0])
    sized = _TV_SIZED.get(family)
    return ModelEntry(
        name=f"tv:{name}",
        family=family,
        year=None,
        paper="",
        note=f"torchvision.models.{name}(weights=None)",
        input_size=size,
        builder=functools.partial(_tv_build, name, sized, min_size),
        source="tv",
        sized=True,
    )


def _tv_build(
    name: str,
    sized: str | None,
    min_size: int,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: tuple[int, int] | None = None,
) -> nn.Module:
    import torchvision.models

    kwargs: dict[str, object] = dict(_TV_NO_AUX.get(name, {}))
    if sized and input_size:
        kwargs[sized] = input_size[0] if sized == "image_size" else input_size
        if sized == "image_size" and input_size[0] != input_size[1]:
            raise ValueError(f"tv:{name} takes square inputs only, got {input_size}")
    elif input_size and min(input_size) < min_size:
        raise ValueError(
            f"tv:{name} takes inputs of at least {min_size}x{min_size} (torchvision's min_size "
            f"for it), got {input_size[0]}x{input_size[1]}"
        )
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    if in_channels != 3:
        adapt_stem(model, in_channels)
    return model


def adapt_stem(model: nn.Module, in_channels: int) -> None:
    """Rebuild the first 3-channel ``Conv2d`` for ``in_channels``, all else as it was."""
    for path, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d) and conv.in_channels == 3:
            parent_path, _, attr = path.rpartition(".")
            parent = model.get_submodule(parent_path)
            setattr(
                parent,
                attr,
                nn.Conv2d(
                    in_channels,
                    conv.out_channels,
                    conv.kernel_size,
                    stride=conv.stride,
                    padding=conv.padding,
                    dilation=conv.dilation,
                    groups=conv.groups,
                    bias=conv.bias is not None,
                    padding_mode=conv.padding_mode,
                ),
            )
            return
    raise ValueError(f"{type(model).__name__} has no 3-channel Conv2d stem to adapt")


TIMM_INSTALL = "timm is not installed: pip install 'archbench[timm]' (or pip install timm)"


def _timm():
    try:
        import timm
    except ImportError:
        raise ModelSourceError(TIMM_INSTALL) from None
    return timm


@functools.cache
def _timm_modules() -> dict[str, str]:
    """Each timm model's module (its family), through timm's public listing."""
    timm = _timm()
    return {n: module for module in timm.list_modules() for n in timm.list_models(module=module)}


def _timm_names() -> list[str]:
    return sorted(_timm_modules())


def _timm_describe() -> str:
    try:
        return f"timm {version('timm')}: {len(_timm_names())} models"
    except (ModelSourceError, PackageNotFoundError):
        return f"timm: not installed ({TIMM_INSTALL.partition(': ')[2]})"


def _timm_entry(name: str) -> ModelEntry | None:
    timm = _timm()
    if name not in _timm_modules():
        return None
    cfg = timm.models.get_pretrained_cfg(name)
    size = int(cfg.input_size[-1]) if cfg is not None else 224
    fixed = bool(cfg is not None and cfg.fixed_input_size)
    return ModelEntry(
        name=f"timm:{name}",
        family=_timm_modules()[name],
        year=None,
        paper="",
        note=f"timm.create_model('{name}', pretrained=False)",
        input_size=size,
        builder=functools.partial(_timm_build, name, size if fixed else None),
        source="timm",
        sized=True,
    )


def _timm_build(
    name: str,
    fixed_size: int | None,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: tuple[int, int] | None = None,
) -> nn.Module:
    kwargs: dict[str, object] = {}
    if fixed_size and input_size and input_size != (fixed_size, fixed_size):
        kwargs["img_size"] = input_size
    return _timm().create_model(
        name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs
    )


register_source(ModelSource("tv", _tv_describe, _tv_names, _tv_entry))
register_source(ModelSource("timm", _timm_describe, _timm_names, _timm_entry))
