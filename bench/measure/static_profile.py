"""The static profile of a model: parameters, MACs/FLOPs (fvcore) and a per-layer table.

All counts are per sample: the model is traced in eval mode on one random input of its size.
fvcore counts one multiply-add as one "flop"; here that count is called ``macs`` and
``flops = 2 * macs``. One handle is our own: an eval-mode BatchNorm is one multiply-add per
element (its scale and shift fold into one per channel at inference), where fvcore counts two.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version

import pandas as pd
import torch
from torch import nn

from archs import ModelEntry
from bench.measure.failures import describe

with warnings.catch_warnings():
    # fvcore's import touches torch.jit.script, deprecated in recent torch; nothing to act on.
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import batchnorm_flop_jit, get_shape

FVCORE_VERSION = version("fvcore")
METHOD = (
    f"fvcore {FVCORE_VERSION} jit trace (BatchNorm 1 MAC/element), batch 1, eval mode, fp32, CPU"
)

# Uncounted operators that only move, reshape or copy data (dropout: the identity in eval mode).
NO_ARITHMETIC = frozenset(
    f"aten::{op}"
    for op in (
        "Int",
        "ScalarImplicit",
        "cat",
        "chunk",
        "clone",
        "constant_pad_nd",
        "contiguous",
        "copy_",
        "detach",
        "dropout",
        "expand",
        "flatten",
        "narrow",
        "permute",
        "reshape",
        "select",
        "size",
        "slice",
        "split",
        "split_with_sizes",
        "squeeze",
        "stack",
        "t",
        "transpose",
        "unbind",
        "unsqueeze",
        "view",
    )
)


ATTENTION = "aten::scaled_dot_product_attention"
# what the fused attention computes that ATTENTION's handle does not count, as listed
ATTENTION_SOFTMAX = "aten::softmax (in scaled_dot_product_attention)"
# fvcore's names (by_operator) of the operators that multiply matrices or convolve
PRODUCT_OPERATORS = ("conv", "linear", "matmul", "bmm", "einsum", "scaled_dot_product_attention")


@dataclass(frozen=True)
class LayerRow:
    path: str  # dotted module path, "" for the whole model
    type: str
    depth: int  # 0 for the model, 1 for its children, ...
    output_shape: tuple[int, ...] | None  # per-sample batch of 1; None if never called
    params: int
    macs: int


@dataclass(frozen=True)
class StaticProfile:
    model: str
    family: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    params: int
    params_trainable: int
    macs: int
    macs_by_operator: dict[str, int]
    unsupported_ops: dict[str, int]  # operator -> calls left uncounted (see flop_analysis)
    layers: list[LayerRow] = field(repr=False)
    activation_elems: int = 0  # elements output by the leaf layers, per sample
    method: str = METHOD

    @property
    def leaf_layers(self) -> int:
        """Modules with no children: the layers a forward pass runs one by one."""
        parents = {row.path.rpartition(".")[0] for row in self.layers if row.path}
        return sum(1 for row in self.layers if row.path and row.path not in parents)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def param_size_mb_fp32(self) -> float:
        return self.params * 4 / 1e6

    @property
    def macs_conv_linear(self) -> int:
        return self.macs_by_operator.get("conv", 0) + self.macs_by_operator.get("linear", 0)

    @property
    def macs_products(self) -> int:
        """Convolutions, linear layers and matrix products (attention's included): what
        torchvision's published ``_ops`` counts; ``macs`` adds normalisation and pooling."""
        return sum(self.macs_by_operator.get(op, 0) for op in PRODUCT_OPERATORS)


def resolve_input_size(entry: ModelEntry, input_size: int | tuple[int, int] | None):
    if input_size is None:
        return entry.input_size, entry.input_size
    if isinstance(input_size, int):
        return input_size, input_size
    return input_size


def profile_model(
    entry: ModelEntry,
    input_size: int | tuple[int, int] | None = None,
    num_classes: int = 10,
    in_channels: int = 1,
) -> StaticProfile:
    """Build ``entry`` and count it at ``input_size`` (default: the size its note uses).

    Raises what the model raises when the input does not fit it (for example a fixed-size
    flatten at another resolution); the caller records that as the model's error.
    """
    height, width = resolve_input_size(entry, input_size)
    torch.manual_seed(0)
    model = entry.build(num_classes, in_channels, (height, width)).eval()
    x = torch.randn(1, in_channels, height, width)

    shapes = _output_shapes(model, x)
    attention = AttentionMacs()
    analysis = flop_analysis(model, x, attention)
    fvcore_logger = logging.getLogger("fvcore")
    level = fvcore_logger.level
    fvcore_logger.setLevel(logging.ERROR)  # unsupported ops are returned, not logged
    try:
        by_module = analysis.by_module()
        by_operator = dict(analysis.by_operator())
        unsupported = dict(sorted(analysis.unsupported_ops().items()))
    finally:
        fvcore_logger.setLevel(level)
    if attention.calls:
        unsupported[ATTENTION_SOFTMAX] = attention.calls

    layers = [
        LayerRow(
            path=path,
            type=type(module).__name__,
            depth=0 if path == "" else path.count(".") + 1,
            output_shape=shapes.get(path),
            params=sum(p.numel() for p in module.parameters()),
            macs=int(by_module.get(path, 0)),
        )
        for path, module in model.named_modules()
    ]
    leaves = {path for path, m in model.named_modules() if not any(True for _ in m.children())}
    activation_elems = sum(
        math.prod(row.output_shape) for row in layers if row.path in leaves and row.output_shape
    )
    return StaticProfile(
        activation_elems=activation_elems,
        model=entry.name,
        family=entry.family,
        input_shape=(in_channels, height, width),
        params=sum(p.numel() for p in model.parameters()),
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=int(analysis.total()),
        macs_by_operator={k: int(v) for k, v in by_operator.items()},
        unsupported_ops=unsupported,
        layers=layers,
    )


def flop_analysis(
    model: nn.Module, x: torch.Tensor, attention: AttentionMacs | None = None
) -> FlopCountAnalysis:
    """fvcore's analysis with our BatchNorm handle, reporting every operator it leaves uncounted.

    fvcore reports an operator with no handle as unsupported, except those on its own ignore
    list (``aten::relu``, ``aten::cat``, ``aten::flatten``, ``aten::dropout``, ``aten::view``,
    ...), which it drops silently. That list is emptied here, so ``unsupported_ops()`` holds
    every ``aten::`` operator that was called and not counted, ReLU included; data movement and
    shape bookkeeping among them are told apart only when printed (``NO_ARITHMETIC``). fvcore
    still skips ``prim::`` nodes (constants, list construction): graph plumbing, not operators.
    """
    analysis = (
        FlopCountAnalysis(model, x)
        .set_op_handle("aten::batch_norm", _batch_norm_macs)
        .set_op_handle(ATTENTION, attention or AttentionMacs())
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
        .tracer_warnings("none")
    )
    # fvcore has no public way to un-ignore an operator; tests/test_profile.py notices a change
    analysis._ignored_ops = set()
    return analysis


def _batch_norm_macs(inputs: list[torch._C.Value], outputs: list[torch._C.Value]) -> int:
    """One multiply-add per output element when running statistics are used (eval mode), with
    or without affine parameters: (x - mean) / sqrt(var + eps) * weight + bias is
    x * scale + shift with per-channel constants. When batch statistics are computed (training
    mode, never traced by ``profile_model``, or a BatchNorm without running statistics) nothing
    folds and fvcore's count stands."""
    uses_batch_statistics = inputs[5].toIValue()  # aten::batch_norm's `training` argument
    if uses_batch_statistics:
        return int(batchnorm_flop_jit(inputs, outputs))
    return math.prod(get_shape(outputs[0]))


class AttentionMacs:
    """fvcore's handle of ``F.scaled_dot_product_attention`` (timm's and torchvision's ViTs):
    its two matrix products, query x key^T and weights x value, as fvcore counts ``matmul``.
    The softmax and scaling inside it are not counted, like every softmax; ``calls`` counts
    the attention calls traced, so that ``profile_model`` lists those softmaxes as uncounted."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, inputs: list[torch._C.Value], outputs: list[torch._C.Value]) -> int:
        self.calls += 1
        return _attention_macs(inputs)


def _attention_macs(inputs: list[torch._C.Value]) -> int:
    query, key, value = (get_shape(v) for v in inputs[:3])
    heads = math.prod(query[:-2])
    length, source = query[-2], key[-2]
    return heads * length * source * (query[-1] + value[-1])


def _output_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape of every module, from one forward pass with hooks (first call wins)."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for path, module in model.named_modules():

        def hook(_module, _inputs, output, path=path):
            if path not in shapes and isinstance(output, torch.Tensor):
                shapes[path] = tuple(output.shape)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def format_unsupported(unsupported: dict[str, int]) -> str:
    """Every uncounted operator with its calls, those that compute nothing (``NO_ARITHMETIC``)
    listed apart: ``not counted: max_pool2d x2, relu x4; no arithmetic: flatten x1``."""
    groups = {
        "not counted": {op: n for op, n in unsupported.items() if op not in NO_ARITHMETIC},
        "no arithmetic": {op: n for op, n in unsupported.items() if op in NO_ARITHMETIC},
    }
    return "; ".join(
        f"{label}: " + ", ".join(f"{op.removeprefix('aten::')} x{n}" for op, n in ops.items())
        for label, ops in groups.items()
        if ops
    )


def layers_frame(layers: list[LayerRow]) -> pd.DataFrame:
    """The per-layer table (runfolder.schema.LAYER_COLUMNS), shapes written ``CxHxW``."""
    frame = pd.DataFrame([dataclasses.asdict(r) for r in layers])
    frame["output_shape"] = [
        "x".join(map(str, r.output_shape)) if r.output_shape else "" for r in layers
    ]
    return frame


def profile_error(entry: ModelEntry, input_size: tuple[int, int] | None, exc: Exception) -> str:
    """Why ``entry`` could not be profiled, naming the input size when it is not its own."""
    message = describe(exc)
    if input_size and input_size != (entry.input_size, entry.input_size):
        h, w = input_size
        message = (
            f"at input {h}x{w} (the model is built for "
            f"{entry.input_size}x{entry.input_size}): {message}"
        )
    return message
