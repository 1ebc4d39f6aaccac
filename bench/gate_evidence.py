"""Evidence that the gate works: N consecutive gate runs on unchanged code, and N with one
model made 25% slower, each in a fresh process. Prints how many of each passed and failed.

    python -m bench.gate_evidence --runs 10 --slow densenet --fraction 0.333

The slowdown exists only here: the model is wrapped so every step also runs ``fraction`` of
its batch through it once more, backward included. Time grows less than linearly with the
batch, so a third of DenseNet's batch of 64 costs about a quarter more time on the CPU; each
slowed run prints the slowdown the gate actually measured. The extra work is skipped while
fvcore traces the model, so the size figures stay the same and only speed can catch it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import archs
from archs import registry


class ExtraWork(nn.Module):
    def __init__(self, model: nn.Module, fraction: float):
        super().__init__()
        self.model = model
        self.fraction = fraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        if torch.jit.is_tracing():
            # fvcore counts the model by tracing it: without the extra work there, its size
            # figures stay the same and only the speed check can catch the change
            return out
        extra = max(1, round(len(x) * self.fraction))
        return out + 0 * self.model(x[:extra]).sum()


def slowed_gate(model: str, fraction: float, gate_args: list[str]) -> int:
    """Run the gate in this process with ``model`` slowed."""
    from . import gate

    entry = archs.get_entry(model)

    def builder(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return ExtraWork(entry.builder(num_classes=num_classes, in_channels=in_channels), fraction)

    registry._REGISTRY[model] = dataclasses.replace(entry, builder=builder)
    return gate.main(gate_args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gate_evidence")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--slow", default="densenet")
    p.add_argument("--fraction", type=float, default=1 / 3)
    p.add_argument("--inner-slowed", action="store_true", help=argparse.SUPPRESS)
    args, gate_args = p.parse_known_args(argv)
    if args.inner_slowed:
        return slowed_gate(args.slow, args.fraction, gate_args)
    outcomes = {"unchanged": [], "slowed": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for label in ("unchanged", "slowed"):
                out = Path(tmp) / f"{label}-{i}.json"
                cmd = [sys.executable, "-m", "bench.gate", "--json", str(out), *gate_args]
                if label == "slowed":
                    cmd = [sys.executable, "-m", "bench.gate_evidence", "--inner-slowed",
                           "--slow", args.slow, "--fraction", str(args.fraction),
                           "--json", str(out), *gate_args]  # fmt: skip
                code = subprocess.run(cmd, capture_output=True, text=True).returncode
                verdict = json.loads(out.read_text()) if out.exists() else {"rows": []}
                failing = sorted(f"{r['model']} {r['figure'].split(' ')[0]}" for r in verdict["rows"]
                                 if str(r["status"]).startswith("FAIL"))  # fmt: skip
                slowed = [r for r in verdict["rows"] if r["model"] == args.slow and r["mode"] != "-"]
                ratios = ", ".join(f"{r['figure'].split('_')[0]} {r['now / baseline']:.3f}"
                                   for r in slowed if isinstance(r["now / baseline"], float))  # fmt: skip
                outcomes[label].append(code)
                print(f"run {i + 1} {label}: exit {code}, failing {failing or '-'}; "
                      f"{args.slow} now/baseline: {ratios}", flush=True)
    for label, codes in outcomes.items():
        print(f"{label}: {codes.count(0)} passed, {codes.count(1)} failed, "
              f"{len(codes) - codes.count(0) - codes.count(1)} errors, of {len(codes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
