"""Evidence that the gate works: N consecutive gate runs on unchanged code, and N with each
of some models made 25% slower, each in a fresh process. Prints how many of each passed
and failed.

    python -m bench.gate_evidence --runs 10 --slow densenet:0.25,lenet:0.2

Each run is one gate on unchanged code, then one with each ``--slow`` model slowed. The
slowdown exists only here: the model is wrapped so every step also runs ``fraction`` of its
batch through it once more, backward included. What that costs depends on the model (a
small model's step is mostly per-call overhead); the defaults cost each slowed figure about
a quarter more time per sample on the CI machine, and each slowed run prints the slowdown the
gate actually measured. The extra work is skipped while fvcore traces the model, so the
size figures stay the same and only speed can catch it.
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
from bench.run.options import StrictParser, at_least

# a quarter more time per sample, or a little more, in each slowed figure on the CI machine
DEFAULT_SLOWDOWNS = "densenet:0.25,lenet:0.2"


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
    from bench import gate

    entry = archs.get_entry(model)

    def builder(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
        return ExtraWork(entry.builder(num_classes=num_classes, in_channels=in_channels), fraction)

    registry._REGISTRY[model] = dataclasses.replace(entry, builder=builder)
    return gate.main(gate_args)


def parse_slowdowns(text: str) -> list[tuple[str, float]]:
    """``densenet:0.25,lenet:0.2`` -> [("densenet", 0.25), ("lenet", 0.2)]."""
    out = []
    for item in text.split(","):
        model, _, fraction = item.partition(":")
        out.append((model.strip(), float(fraction) if fraction else 0.25))
    return out


def speed_rows(verdict: dict) -> list[dict]:
    return [
        r for r in verdict["rows"] if r["mode"] != "-" and isinstance(r["now / baseline"], float)
    ]


def main(argv: list[str] | None = None) -> int:
    p = StrictParser(prog="python -m bench.gate_evidence")
    p.add_argument("--runs", type=at_least(1, "--runs"), default=10)
    p.add_argument(
        "--slow",
        default=DEFAULT_SLOWDOWNS,
        help="models to slow, each in runs of its own, with the fraction of the "
        f"batch run again (default {DEFAULT_SLOWDOWNS})",
    )
    p.add_argument("--inner-slowed", action="store_true", help=argparse.SUPPRESS)
    args, gate_args = p.parse_known_args(argv)
    if args.inner_slowed:
        ((model, fraction),) = parse_slowdowns(args.slow)
        return slowed_gate(model, fraction, gate_args)
    slowdowns = parse_slowdowns(args.slow)
    labels = ["unchanged"] + [f"{model} slowed" for model, _ in slowdowns]
    outcomes: dict[str, list[int]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for label, slowdown in zip(labels, [None, *slowdowns]):
                out = Path(tmp) / f"{label.replace(' ', '-')}-{i}.json"
                cmd = [sys.executable, "-m", "bench.gate", "--json", str(out), *gate_args]
                if slowdown is not None:
                    cmd = [
                        sys.executable,
                        "-m",
                        "bench.gate_evidence",
                        "--inner-slowed",
                        "--slow",
                        f"{slowdown[0]}:{slowdown[1]}",
                        "--json",
                        str(out),
                        *gate_args,
                    ]
                code = subprocess.run(cmd, capture_output=True, text=True, check=False).returncode
                verdict = json.loads(out.read_text()) if out.exists() else {"rows": []}
                failing = sorted(
                    f"{r['model']} {r['figure'].split(' ')[0]}"
                    for r in verdict["rows"]
                    if str(r["status"]).startswith("FAIL")
                )
                rows = speed_rows(verdict)
                detail = ""
                if slowdown is not None:
                    detail = "; now/baseline " + ", ".join(
                        f"{r['figure'].split('_')[0]} {r['now / baseline']:.3f}"
                        for r in rows
                        if r["model"] == slowdown[0]
                    )
                elif rows:
                    lowest = min(rows, key=lambda r: r["now / baseline"])
                    detail = (
                        f"; lowest now/baseline {lowest['now / baseline']:.3f} "
                        f"({lowest['model']} {lowest['figure'].split('_')[0]}, "
                        f"threshold {lowest['threshold']})"
                    )
                outcomes[label].append(code)
                print(
                    f"run {i + 1} {label}: exit {code}, failing {failing or '-'}{detail}",
                    flush=True,
                )
    for label, codes in outcomes.items():
        print(
            f"{label}: {codes.count(0)} passed, {codes.count(1)} failed, "
            f"{len(codes) - codes.count(0) - codes.count(1)} errors, of {len(codes)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
