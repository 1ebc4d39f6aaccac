"""Execution modes: precision x memory layout x compile mode, named the way users type them.

A mode name joins tokens with ``+``: a precision, optionally ``cl`` (channels_last) and a
compile token. Precisions: ``fp32``, ``tf32``; ``bf16`` and ``fp16`` for autocast (also
written ``amp`` (bf16), ``bf16-mixed``, ``fp16-mixed``); ``bf16-true`` and ``fp16-true`` for
the model and its inputs cast to that dtype, no autocast, as Lightning names them and timm's
``--precision bfloat16|float16`` runs. Compile tokens: ``compile`` for torch.compile's default
mode, ``compile-ro`` for reduce-overhead, i.e. CUDA graphs, ``compile-max`` for max-autotune,
which on a GPU also records CUDA graphs, and ``compile-max-nocg`` for
max-autotune-no-cudagraphs, so that autotuning and graphs can be told apart. Examples:
``fp32``, ``bf16+cl``, ``bf16-true+cl+compile``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bench.measure import backends
from bench.measure.backends import BackendState

Precision = Literal["fp32", "tf32", "bf16", "fp16", "bf16-true", "fp16-true"]
CompileMode = Literal[
    "none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
]

_PRECISIONS: dict[str, Precision] = {
    "fp32": "fp32",
    "tf32": "tf32",
    "bf16": "bf16",
    "amp": "bf16",
    "bf16-mixed": "bf16",
    "fp16": "fp16",
    "fp16-mixed": "fp16",
    "bf16-true": "bf16-true",
    "fp16-true": "fp16-true",
}
# the dtype a pure (``-true``) precision casts the model and its inputs to
_CAST = {"bf16-true": torch.bfloat16, "fp16-true": torch.float16}
_LAYOUTS = {"cl": True, "channels_last": True, "nchw": False}
_COMPILE: dict[str, CompileMode] = {
    "compile": "default",
    "compile-ro": "reduce-overhead",
    "compile-max": "max-autotune",
    "compile-max-nocg": "max-autotune-no-cudagraphs",
}
# inductor records CUDA graphs in these modes (max-autotune sets triton.cudagraphs)
_GRAPH_MODES = ("reduce-overhead", "max-autotune")
_COMPILE_TOKEN = {v: k for k, v in _COMPILE.items()}

GPU_DEFAULT_MODES = ("fp32", "bf16", "bf16+cl", "bf16+cl+compile")
CPU_DEFAULT_MODES = ("fp32",)


class ModeError(ValueError):
    """A mode that cannot be parsed, or cannot run on the chosen device."""


@dataclass(frozen=True)
class Mode:
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: CompileMode = "none"

    @property
    def name(self) -> str:
        parts: list[str] = [self.precision]
        if self.channels_last:
            parts.append("cl")
        if self.compile != "none":
            parts.append(_COMPILE_TOKEN[self.compile])
        return "+".join(parts)

    def facts(self) -> dict[str, str]:
        """The mode's columns in the results table (runfolder.schema)."""
        return {
            "mode": self.name,
            "precision": self.precision,
            "layout": "channels_last" if self.channels_last else "nchw",
            "compile": self.compile,
        }

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def cast_dtype(self) -> torch.dtype | None:
        """The dtype of the weights and inputs of a pure precision; None: fp32 weights."""
        return _CAST.get(self.precision)

    @property
    def arithmetic(self) -> str:
        """The precision of the arithmetic, which sets the device's peak: ``bf16`` for both
        bf16 autocast and a bf16 model."""
        return self.precision.removesuffix("-true")

    def place(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` on ``device`` in this mode's layout, cast for a pure precision."""
        return model.to(device=device, memory_format=self.memory_format, dtype=self.cast_dtype)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch in this mode's dtype and layout."""
        if self.cast_dtype is not None:
            x = x.to(self.cast_dtype)
        return x.contiguous(memory_format=self.memory_format)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def cuda_graphs(self) -> bool:
        """Compiled code replays CUDA graphs on a CUDA device (a step marker is needed between
        training steps, and figures include what the graphs save)."""
        return self.compile in _GRAPH_MODES

    @property
    def compile_option(self) -> str | None:
        """The ``mode=`` argument of ``torch.compile`` (None for its default)."""
        return None if self.compile in ("none", "default") else self.compile

    def describe(self) -> str:
        precision = {
            "fp32": "fp32 (TF32 off)",
            "tf32": "fp32 weights, TF32 matmul/conv",
            "bf16": "bf16 autocast",
            "fp16": "fp16 autocast",
            "bf16-true": "bf16 weights and inputs (model cast, no autocast)",
            "fp16-true": "fp16 weights and inputs (model cast, no autocast)",
        }[self.precision]
        layout = "channels_last" if self.channels_last else "NCHW"
        compiled = "eager" if self.compile == "none" else f"torch.compile mode={self.compile}"
        if self.compile == "max-autotune":
            compiled += " (autotuned kernels and, on a GPU, CUDA graphs)"
        elif self.compile == "max-autotune-no-cudagraphs":
            compiled += " (autotuned kernels, no CUDA graphs)"
        elif self.compile == "reduce-overhead":
            compiled += " (CUDA graphs)"
        return f"{precision}, {layout}, {compiled}"

    def check_device(self, device: torch.device) -> None:
        if device.type == "cuda":
            return
        if self.precision == "tf32":
            raise ModeError(f"mode '{self.name}': TF32 exists only on CUDA devices")
        if self.compile == "reduce-overhead":
            raise ModeError(f"mode '{self.name}': reduce-overhead uses CUDA graphs, CUDA only")

    def autocast(self, device: torch.device) -> torch.autocast:
        """Autocast to this mode's dtype; a disabled context for fp32 and tf32."""
        dtype = self.autocast_dtype
        return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def backends(self, device: torch.device) -> BackendState:
        """The backend switches this mode's figures run under (``bench.measure.backends``)."""
        return backends.for_precision(self.precision, device)


def parse_mode(text: str) -> Mode:
    tokens = [t.strip().lower() for t in text.split("+") if t.strip()]
    precision: Precision | None = None
    channels_last: bool | None = None
    compile_mode: CompileMode | None = None
    for token in tokens:
        if token in _PRECISIONS and precision is None:
            precision = _PRECISIONS[token]
        elif token in _LAYOUTS and channels_last is None:
            channels_last = _LAYOUTS[token]
        elif token in _COMPILE and compile_mode is None:
            compile_mode = _COMPILE[token]
        else:
            known = sorted({*_PRECISIONS, *_LAYOUTS, *_COMPILE})
            raise ModeError(
                f"mode '{text}': '{token}' is unknown or repeated; tokens: {', '.join(known)}"
            )
    if precision is None:
        raise ModeError(
            f"mode '{text}' names no precision (fp32, tf32, bf16, fp16, bf16-true, fp16-true)"
        )
    return Mode(precision, bool(channels_last), compile_mode or "none")


def parse_modes(text: str | None, device: torch.device) -> list[Mode]:
    """Comma-separated modes, or the device's default matrix; each checked against the device."""
    if text is None:
        names = GPU_DEFAULT_MODES if device.type == "cuda" else CPU_DEFAULT_MODES
    else:
        names = tuple(n for n in text.split(",") if n.strip())
        if not names:
            raise ModeError("--modes is empty")
    modes = list(dict.fromkeys(parse_mode(n) for n in names))
    for mode in modes:
        mode.check_device(device)
    return modes
