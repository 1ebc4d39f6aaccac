"""The static phase: parameters, MACs/FLOPs (fvcore) and the per-layer table of each model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from archs import ModelEntry
from bench.measure.static_profile import StaticProfile, format_unsupported, layers_frame
from bench.phases.base import PerModelPhase, RunContext, model_facts
from runfolder.rows import Row, error_row, result_row


def static_rows(entry: ModelEntry, p: StaticProfile) -> list[Row]:
    c, h, w = p.input_shape
    figures = {
        "input_channels": c,
        "input_height": h,
        "input_width": w,
        "params": p.params,
        "params_trainable": p.params_trainable,
        "param_size_fp32": round(p.param_size_mb_fp32, 4),
        "macs": p.macs,
        "flops": p.flops,
        "macs_conv_linear": p.macs_conv_linear,
        "unsupported_ops": sum(p.unsupported_ops.values()),
        "activation_elems": p.activation_elems,
    }
    facts = model_facts(entry, StaticPhase.name)
    rows = []
    for metric, value in figures.items():
        method = p.method
        if metric == "unsupported_ops" and p.unsupported_ops:
            method = f"{p.method}; {format_unsupported(p.unsupported_ops)}"
        rows.append(result_row(facts, metric, value, method))
    return rows


class StaticPhase(PerModelPhase):
    """The profile itself is made for every model before any phase runs (``RunContext.profiles``);
    this phase writes it."""

    name: ClassVar[str] = "static"
    timed_by_profiling: ClassVar[bool] = True

    def measure(self, entry: ModelEntry, ctx: RunContext) -> Iterator[list[Row]]:
        profile = ctx.profiles.get(entry.name)
        if profile is None:
            error = ctx.profile_errors[entry.name]
            ctx.say(f"static FAILED: {error}")
            yield [error_row(model_facts(entry, self.name), error)]
            return
        ctx.folder.add_layers(entry.name, layers_frame(profile.layers))
        ctx.say(
            f"static: {profile.params / 1e6:.3f} M params, {profile.macs / 1e9:.4f} GMACs/sample"
        )
        yield static_rows(entry, profile)

    def estimate_s(self, entry: ModelEntry, ctx: RunContext, peak_tflops: float) -> float:
        return 0.0  # the profiles are made, and timed, before the estimate
