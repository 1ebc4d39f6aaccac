"""The regression gate: fail a change that makes a gated model bigger or slower.

    python -m bench.gate                    # check against bench/baselines/gate.json
    python -m bench.gate --update-baseline  # measure and rewrite this device's baseline

Exact figures (parameters and MACs of each gated model) must equal the baseline's. Speed
(inference and training throughput per model and mode) is measured in ``--rounds`` rounds;
in each round every model's inference and its training are each timed between two
calibrations (a fixed fp32 matmul) and their throughput (best block) divided by the
calibrations' mean, which cancels the machine's speed: a slower machine, or a slower moment
of a shared one, slows both alike. A figure is the upper quartile of its rounds' ratios:
interference on a shared machine only ever slows a round, and a real regression slows every
round, so the upper quartile ignores up to a quarter of slowed rounds and still moves with
the code. It is compared with the baseline's for the same device. A figure fails when it is
slower by more than its threshold: the larger of ``--floor`` (7%) and ``--iqr-multiple`` (2)
times the relative IQR of the rounds' ratios (the noisier of baseline and now), capped at
``--cap`` (12%) so a real 25% slowdown is never excused as noise. A figure that fails is
re-measured in as many rounds again and judged on all of them before the gate fails; a
baseline is recorded over twice the rounds. On the CPU, glibc is asked to keep freed memory
(see ``heap.py``), so page faults do not make one process read faster than the next.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

import archs
from bench.measure.devices import NoCudaError, pick_device
from bench.measure.heap import keep_freed_memory
from bench.measure.modes import Mode, ModeError, parse_modes
from bench.measure.static_profile import profile_model
from bench.measure.throughput import SpeedConfig, measure_speed
from bench.measure.timers import Timer, measure_throughput
from bench.run.options import StrictParser, at_least
from bench.run.provenance import cpu_signature, device_description, git_commit, now

BASELINE = Path(__file__).resolve().parent / "baselines" / "gate.json"
CPU_MODELS = "lenet,lenet_bn,small_cnn,densenet"
GPU_MODELS = "lenet,lenet_bn,resnet18_d2l,densenet"


@dataclass(frozen=True)
class GateConfig:
    models: list[str]
    modes: list[Mode]
    device: torch.device
    batch: int
    rounds: int
    repeats: int
    floor: float
    iqr_multiple: float
    cap: float


def device_key(device: torch.device) -> str:
    """The device a speed baseline holds for. On the CPU the name alone is not enough (a VM
    may show only "AMD EPYC" for several generations), so the CPU family and model and the
    instruction set torch's kernels dispatch to are part of it."""
    if device.type == "cuda":
        return f"cuda: {device_description(device)}"
    return f"cpu: {device_description(device)} ({cpu_signature()})"


def calibration(device: torch.device, repeats: int) -> float:
    """Multiply-adds per second of a fixed 512x512x512 fp32 matmul (best block)."""
    n = 512
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    timing = measure_throughput(
        lambda: a @ b, Timer(device), warmup=2, repeats=repeats, min_block_s=0.05
    )
    return n**3 / min(timing.samples)


def measure_round(cfg: GateConfig) -> dict[str, float]:
    """Throughput / calibration for every gated model, mode and kind, in one round.

    Each kind (inference, training) is timed between two calibrations and divided by their
    mean, so both see the same moment of the machine; each throughput is its best block
    (interference on a shared machine only ever slows a block down), and the gate later
    takes the upper quartile over rounds."""
    ratios = {}
    for name in cfg.models:
        entry = archs.get_entry(name)
        for mode in cfg.modes:
            cal = calibration(cfg.device, cfg.repeats)
            for kind in ("infer", "train"):
                speed_cfg = SpeedConfig(
                    cfg.batch,
                    cfg.repeats,
                    warmup=1,
                    min_block_s=0.05,
                    latency_samples=0,
                    kinds=(kind,),
                )
                result = measure_speed(
                    entry, mode, cfg.device, speed_cfg, (entry.input_size, entry.input_size)
                )
                if result.errors:
                    raise RuntimeError(f"{name} {mode.name}: {result.errors}")
                (m,) = result.measurements
                cal_after = calibration(cfg.device, cfg.repeats)
                best = m.batch_size / min(m.timing.samples)
                mean_cal = (cal + cal_after) / 2
                ratios[(name, mode.name, f"{kind}_throughput")] = best / mean_cal * 1e9
                cal = cal_after
    return ratios


def summarise(values: list[float]) -> dict[str, object]:
    q25, q75 = np.percentile(values, [25, 75])
    # the upper quartile: noise slows some rounds, a regression slows all of them
    return {"ratio": q75, "rel_iqr": (q75 - q25) / statistics.median(values), "rounds": values}


Figure = tuple[str, str, str]  # (model, mode, metric)


def nested(figures: dict[Figure, object]) -> dict[str, dict[str, dict[str, object]]]:
    """{(model, mode, metric): x} as {model: {mode: {metric: x}}}, the baseline file's shape."""
    out: dict[str, dict[str, dict[str, object]]] = {}
    for (model, mode, metric), value in figures.items():
        out.setdefault(model, {}).setdefault(mode, {})[metric] = value
    return out


def flat(figures: dict[str, dict[str, dict[str, object]]]) -> dict[Figure, object]:
    return {
        (model, mode, metric): value
        for model, modes in figures.items()
        for mode, metrics in modes.items()
        for metric, value in metrics.items()
    }


def measure_rounds(cfg: GateConfig, rounds: int) -> dict[Figure, list[float]]:
    per_round = []
    for i in range(rounds):
        per_round.append(measure_round(cfg))
        print(f"gate: round {i + 1}/{rounds} measured", file=sys.stderr, flush=True)
    return {key: [r[key] for r in per_round] for key in per_round[0]}


def measure(cfg: GateConfig, rounds: int) -> dict[str, object]:
    exact = {}
    for name in cfg.models:
        p = profile_model(archs.get_entry(name))
        exact[name] = {"params": p.params, "macs": p.macs}
    values = measure_rounds(cfg, rounds)
    return {"exact": exact, "speed": nested({key: summarise(v) for key, v in values.items()})}


def confirm(current: dict, models: set[str], cfg: GateConfig) -> None:
    """Re-measure the models with a failing figure in as many rounds again; their figures are
    then judged on all the rounds, so a passing moment of noise cannot fail the gate alone."""
    subset = dataclasses.replace(cfg, models=[m for m in cfg.models if m in models])
    print(
        f"gate: confirming {', '.join(sorted(models))} in {cfg.rounds} more rounds",
        file=sys.stderr,
        flush=True,
    )
    for (model, mode, metric), values in measure_rounds(subset, cfg.rounds).items():
        figures = current["speed"][model][mode]
        figures[metric] = summarise(figures[metric]["rounds"] + values)


def threshold(base_rel_iqr: float, rel_iqr: float, cfg: GateConfig) -> float:
    return min(max(cfg.floor, cfg.iqr_multiple * max(base_rel_iqr, rel_iqr)), cfg.cap)


def compare(current: dict, baseline: dict, key: str, cfg: GateConfig) -> tuple[list[dict], bool]:
    rows, failed = [], False
    for model, figures in current["exact"].items():
        base = baseline.get("exact", {}).get(model)
        for metric, value in figures.items():
            if base is None:
                status = "new (no baseline)"
            elif base[metric] == value:
                status = "ok"
            else:
                status, failed = "FAIL (changed)", True
            rows.append(
                {
                    "model": model,
                    "mode": "-",
                    "figure": metric,
                    "baseline": base[metric] if base else "-",
                    "now": value,
                    "now / baseline": value / base[metric] if base else "-",
                    "threshold": "exact",
                    "status": status,
                }
            )
    device_base = flat(baseline.get("speed", {}).get(key, {}).get("figures", {}))
    for (model, mode, metric), measured in flat(current["speed"]).items():
        base = device_base.get((model, mode, metric))
        row = {
            "model": model,
            "mode": mode,
            "figure": f"{metric} / calibration",
            "now": measured["ratio"],
        }
        if base is None:
            row.update(
                {
                    "baseline": "-",
                    "now / baseline": "-",
                    "threshold": "-",
                    "status": "new (no baseline for this device)",
                }
            )
        else:
            ratio = measured["ratio"] / base["ratio"]
            limit = threshold(base["rel_iqr"], measured["rel_iqr"], cfg)
            status = "ok"
            if ratio < 1 - limit:
                status, failed = "FAIL (slower)", True
            elif ratio > 1 + limit:
                status = "faster (update the baseline?)"
            row.update(
                {
                    "baseline": base["ratio"],
                    "now / baseline": ratio,
                    "threshold": f"-{100 * limit:.1f}%",
                    "status": status,
                }
            )
        rows.append(row)
    return rows, failed


def main(argv: list[str] | None = None) -> int:
    p = StrictParser(
        prog="python -m bench.gate", description="Throughput and size regression gate."
    )
    p.add_argument(
        "--models", help=f"gated models (default {CPU_MODELS} on the CPU, {GPU_MODELS} on a GPU)"
    )
    p.add_argument("--modes", help="default fp32 on the CPU, fp32,bf16+cl on a GPU")
    p.add_argument("--gpu", action="store_true")
    p.add_argument(
        "--batch",
        type=int,
        help="default 64 on the CPU (smaller batches leave the small models' steps "
        "to per-call overhead, which the calibration does not track), 256 on a GPU",
    )
    p.add_argument("--rounds", type=at_least(1, "--rounds"), default=5)
    p.add_argument(
        "--repeats",
        type=at_least(1, "--repeats"),
        default=3,
        help="timed blocks per figure per round",
    )
    p.add_argument("--floor", type=float, default=0.07)
    p.add_argument("--iqr-multiple", type=float, default=2.0)
    p.add_argument("--cap", type=float, default=0.12)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: on a shared machine, thread scheduling jitter "
        "swamps small models' steps)",
    )
    p.add_argument("--baseline", type=Path, default=BASELINE)
    p.add_argument("--update-baseline", action="store_true")
    p.add_argument("--json", type=Path, help="also write this run's figures and verdicts here")
    args = p.parse_args(argv)
    try:
        device = pick_device(args.gpu)
        models = archs.select_models(args.models or (GPU_MODELS if args.gpu else CPU_MODELS))
        modes = parse_modes(args.modes or ("fp32,bf16+cl" if args.gpu else "fp32"), device)
        if args.rounds < 2 or args.repeats < 1:
            raise ModeError("--rounds must be at least 2 and --repeats at least 1")
    except (ModeError, NoCudaError, archs.UnknownModelError) as exc:
        print(f"gate: error: {exc}", file=sys.stderr)
        return 2
    heap = "CUDA caching allocator"
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
        heap = keep_freed_memory()
    cfg = GateConfig(
        models,
        modes,
        device,
        args.batch or (256 if args.gpu else 64),
        args.rounds,
        args.repeats,
        args.floor,
        args.iqr_multiple,
        args.cap,
    )
    baseline = json.loads(args.baseline.read_text()) if args.baseline.is_file() else {}
    key = device_key(device)
    # a baseline is measured over twice the rounds: every later check is judged against it
    current = measure(cfg, 2 * cfg.rounds if args.update_baseline else cfg.rounds)
    if args.update_baseline:
        baseline.setdefault("exact", {}).update(current["exact"])
        baseline.setdefault("speed", {})[key] = {
            "recorded": now(),
            "git_commit": git_commit(),
            "torch": torch.__version__,
            "batch": cfg.batch,
            "rounds": cfg.rounds,
            "repeats": cfg.repeats,
            "cpu_threads": torch.get_num_threads(),
            "heap": heap,
            "estimator": "upper quartile of rounds",
            "figures": current["speed"],
        }
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        args.baseline.write_text(json.dumps(baseline, indent=1, sort_keys=True) + "\n")
        print(f"gate: baseline for '{key}' written to {args.baseline}")
        return 0
    rows, failed = compare(current, baseline, key, cfg)
    slower = {r["model"] for r in rows if r["status"] == "FAIL (slower)"}
    if slower:
        confirm(current, slower, cfg)
        rows, failed = compare(current, baseline, key, cfg)
    print(
        f"gate on {key}, torch {torch.__version__}, batch {cfg.batch}, {cfg.rounds} rounds, "
        f"{torch.get_num_threads()} CPU threads, {heap}; "
        "speed figures are samples/s per calibration GMAC/s, upper quartile of the rounds"
    )
    shown = [{k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    print(tabulate(shown, headers="keys", disable_numparse=True))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"device": key, "current": current, "rows": rows, "failed": failed},
                indent=1,
                default=str,
            )
        )
    base_torch = baseline.get("speed", {}).get(key, {}).get("torch")
    if base_torch and base_torch != torch.__version__:
        print(
            f"note: the speed baseline was recorded with torch {base_torch}; a slower or faster "
            "figure may be torch's doing, not this change's"
        )
    print(f"\ngate: {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
