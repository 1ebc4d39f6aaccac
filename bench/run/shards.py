"""A run's work split into shards that end together: ``--shard K/N``.

The work items are each phase's keys for each model (``Phase.work``: a model's static profile, a
speed measurement per mode and batch, a profile per mode, a model's training), the keys a run
folder's rows are read back by. Each item costs what ``bench.measure.estimate`` expects of it at a
nominal peak, so every shard computes the same costs, whatever its device reads; the items are dealt
out costliest first, each to the shard with the least work so far (longest processing time first, as
schedulers balance jobs), ties by name: the same partition in every shard. Every shard still makes
every model's static profile first (the costs need its FLOPs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import archs
from bench.phases import PHASES, RunContext

# the peak the partition's costs assume: only their ratios matter, and they must be the same
# in every shard
NOMINAL_TFLOPS = 1.0

Item = tuple  # (phase, model, *rest of the phase's key)


@dataclass(frozen=True)
class Shard:
    index: int  # 1 to count
    count: int

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N; ValueError with the reason otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"--shard must be K/N (e.g. 1/4), got '{text}'")
    shard = Shard(int(m.group(1)), int(m.group(2)))
    if not 1 <= shard.index <= shard.count:
        raise ValueError(f"--shard K/N needs 1 <= K <= N, got '{text}'")
    return shard


def work_items(ctx: RunContext) -> dict[Item, float]:
    """Every item of the run and its estimated seconds at ``NOMINAL_TFLOPS``."""
    items: dict[Item, float] = {}
    for name in ctx.cfg.models:
        entry = archs.get_entry(name)
        for phase in ctx.cfg.phases:
            for key, cost in PHASES[phase].work(entry, ctx, NOMINAL_TFLOPS).items():
                items[(phase, *key)] = cost
    return items


def partition(items: dict[Item, float], count: int) -> dict[Item, int]:
    """Each item's shard (1 to ``count``): costliest first, to the least loaded shard."""
    loads = [0.0] * count
    owner: dict[Item, int] = {}
    for item, cost in sorted(items.items(), key=lambda kv: (-kv[1], [str(k) for k in kv[0]])):
        least = min(range(count), key=lambda k: (loads[k], k))
        owner[item] = least + 1
        loads[least] += cost
    return owner
