"""The results table: the contract between ``bench`` (which writes it) and ``reports`` (which reads it).

A run's results are one tidy table, a row per measured figure::

    model | family | phase | mode | metric | value | unit | method | error

``metric`` names come from ``METRICS`` below, each with its unit, so no figure is stored
without one. A model that fails in a phase gets one row with ``metric == "error"`` and the
message in ``error``; the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

RESULT_COLUMNS: tuple[str, ...] = (
    "model",
    "family",
    "phase",
    "mode",
    "metric",
    "value",
    "unit",
    "method",
    "error",
)

LAYER_COLUMNS: tuple[str, ...] = ("path", "type", "depth", "output_shape", "params", "macs")

ERROR_METRIC = "error"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("input_channels", "channels", "input channels the model was profiled with"),
        Metric("input_height", "px", "input height the model was profiled at"),
        Metric("input_width", "px", "input width the model was profiled at"),
        Metric("params", "parameters", "all parameters"),
        Metric("params_trainable", "parameters", "parameters with requires_grad"),
        Metric("param_size_fp32", "MB", "parameters x 4 bytes / 1e6"),
        Metric("macs", "MAC/sample", "multiply-accumulates per sample, fvcore's count"),
        Metric("flops", "FLOP/sample", "2 x macs"),
        Metric("macs_conv_linear", "MAC/sample", "conv + linear multiply-accumulates only"),
        Metric("unsupported_ops", "ops", "operator calls fvcore could not count"),
        Metric(ERROR_METRIC, "", "the phase failed for this model; see the error column"),
    )
}


def unit_of(metric: str) -> str:
    return METRICS[metric].unit
