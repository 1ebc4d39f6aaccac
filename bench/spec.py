"""A run's identity as a value: what was asked for, resolved (the models by name with their
sources, the device's default modes and batch sizes filled in), and nothing of the machine.

``run.json["spec"]`` holds it; a resumed run continues the folder whose spec is equal, each shard
of a launch gets the launch's spec with its ``shard`` set, a merge checks that shards share one
spec but for the shard, and ``python -m bench --spec run.json`` runs it again. This module
imports nothing of the suite: options build a spec, the session builds the run's state from it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

SPEC_VERSION = 1


class SpecError(ValueError):
    """A spec that cannot be read: a missing or unknown field, a value of the wrong kind."""


@dataclass(frozen=True)
class ModelRef:
    """A model as the run resolved it: its registered ``name``, its ``source`` (``archbench``,
    ``torchvision``, ``timm``, ``file`` or a distribution's name), and ``select``, the
    ``--models`` token that registers and selects it again in a new process (the name itself,
    or ``/abs/path/file.py:builder`` for a model from a file)."""

    name: str
    source: str
    select: str


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's figures. ``None`` where the device's default applies
    at run time (``repeats``, ``warmup``, ``ddp_processes`` on GPUs: every GPU). A phase's
    own fields keep their defaults when the phase does not run (the accuracy phase's budget,
    seeds, limits and cap; the ddp phase's processes), so they never tell two runs apart."""

    models: tuple[ModelRef, ...]
    phases: tuple[str, ...]
    device: str  # "cpu" or "cuda"
    modes: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    input_size: tuple[int, int] | None = None  # None: each model's own
    num_classes: int = 10
    in_channels: int = 1
    repeats: int | None = None
    warmup: int | None = None
    compiled_latency: bool = False
    trace: bool = False
    threads: int | None = None  # torch.set_num_threads; None: torch's own
    # the accuracy phase's
    budget: str | None = None  # epochs=N, steps=N or seconds=S
    seeds: tuple[int, ...] = (0,)
    train_limit: int | None = None
    eval_limit: int | None = None
    accuracy_cap_s: float | None = None  # None: no cap
    train_compile: bool = False
    data_dir: str | None = None  # None: the usual places (``bench.training.data``)
    accuracy_processes: int = 1
    ddp_processes: int | None = None
    shard: tuple[int, int] | None = None  # (K, N): the K-th of N shards

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def without_shard(self) -> RunSpec:
        return dataclasses.replace(self, shard=None)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (lists for tuples), with the format's version."""
        return {"version": SPEC_VERSION, **json.loads(json.dumps(dataclasses.asdict(self)))}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        """The spec ``to_json`` wrote; ``SpecError`` naming what is wrong otherwise."""
        if not isinstance(data, dict):
            raise SpecError(f"a spec is a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError(f"spec version {version}: this archbench reads version {SPEC_VERSION}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise SpecError(f"unknown spec fields: {', '.join(unknown)}")
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise SpecError(f"the spec lacks {', '.join(missing)}")
        try:
            values = {name: _value(name, value) for name, value in data.items()}
        except (TypeError, ValueError) as exc:
            raise SpecError(f"the spec's {exc}") from None
        return cls(**values)


_TUPLES = {"phases": str, "modes": str, "batch_sizes": int, "seeds": int}
_PAIRS = ("input_size", "shard")


def _value(name: str, value: Any) -> Any:
    if name == "models":
        return tuple(ModelRef(**m) if isinstance(m, dict) else ModelRef(m, "", m) for m in value)
    if name in _TUPLES:
        kind = _TUPLES[name]
        if not isinstance(value, list | tuple) or not all(isinstance(v, kind) for v in value):
            raise TypeError(f"{name} must be a list of {kind.__name__}, got {value!r}")
        return tuple(value)
    if name in _PAIRS:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise TypeError(f"{name} must be a pair of integers, got {value!r}")
        return (int(value[0]), int(value[1]))
    return value
