"""Does the harness measure what a careful person would? One process, one device, three ways:

1. the harness (``bench.measure.throughput.measure_speed``, inference only);
2. a minimal hand-written loop: warm-up, then CUDA events (or ``perf_counter`` on the CPU)
   around a fixed number of steps, the median of several such blocks;
3. ``torch.utils.benchmark.Timer.blocked_autorange`` (which synchronises CUDA itself).

    python -m bench.checks.fidelity --gpu     # ResNet-18 (96x96), LeNet; GPU modes
    python -m bench.checks.fidelity --models lenet --modes fp32   # on the CPU

It prints samples/s from each, the harness's ratio to the other two and the spreads (IQR/median
of each method's timed blocks). On a GPU it exits 1 when the harness differs from the
hand-written loop by more than ``--tolerance`` (3% by default). A shared CPU is noisier than 3%
(the same loop reads a few percent apart from one minute to the next, far more while other
processes compete for the cores), so there it exits 1 only when the harness is outside the
spread of the measurements: its ratio to the hand loop further from 1 than ``K`` times the
harness's and the hand loop's spreads combined, or than the tolerance where that is wider.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.utils.benchmark as tbench
from tabulate import tabulate

import archs
from bench.measure import backends, compiled
from bench.measure.devices import NoCudaError, pick_device
from bench.measure.modes import ModeError, parse_modes
from bench.measure.throughput import CPU_BATCH, GPU_BATCH, SpeedConfig, measure_speed
from bench.run.options import StrictParser, at_least

# On the CPU the harness fails only beyond K combined spreads (IQR/median; one IQR spans the
# middle half of the blocks). The ratio of two medians varies less than the blocks do, but the
# two are measured one after the other and the machine drifts in between: K = 2 allows for that
# and still catches a bias a few times the noise.
K = 2.0


def rel_iqr(samples: list[float]) -> float:
    q25, q50, q75 = np.percentile(samples, [25, 50, 75])
    return float((q75 - q25) / q50)


def combined_spread(*spreads: float) -> float:
    """Independent relative spreads add in quadrature."""
    return math.sqrt(sum(s * s for s in spreads))


def gpu_verdict(ratio: float, tolerance: float) -> bool:
    """The harness agrees with the hand loop within ``tolerance``."""
    return abs(ratio - 1) <= tolerance


def cpu_verdict(ratio: float, spread: float, tolerance: float, k: float = K) -> bool:
    """The harness agrees with the hand loop within ``k`` times the combined ``spread``, or
    within ``tolerance`` where the machine is quieter than that."""
    return abs(ratio - 1) <= max(tolerance, k * spread)


def hand_loop(
    model, x, mode, device, warmup: int, steps: int, blocks: int
) -> tuple[list[float], Callable[[], object]]:
    """Seconds per step of each block, and the step: the loop anyone would write, sharing no
    code with the harness."""
    dtype = mode.autocast_dtype

    def step():
        if dtype is None:
            return model(x)
        with torch.autocast(device.type, dtype=dtype):
            return model(x)

    times = []
    with torch.no_grad(), backends.applied(mode.backends(device)):
        for _ in range(warmup):
            step()
        for _ in range(blocks):
            if device.type == "cuda":
                torch.cuda.synchronize()
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                for _ in range(steps):
                    step()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3 / steps)
            else:
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                times.append((time.perf_counter() - t0) / steps)
    return times, step


def compare(name: str, mode, device: torch.device, batch: int, warmup: int) -> dict[str, object]:
    entry = archs.get_entry(name)
    size = (entry.input_size, entry.input_size)
    cfg = SpeedConfig.for_device(device, batch)
    cfg = SpeedConfig(batch, cfg.repeats, warmup, cfg.min_block_s, cfg.latency_samples, ("infer",))
    result = measure_speed(entry, mode, device, cfg, size)
    if result.errors:
        return {"model": name, "mode": mode.name, "error": result.errors["infer"]}
    (harness,) = result.measurements

    compiled.reset(device)
    torch.manual_seed(0)
    model = entry.build().to(device=device, memory_format=mode.memory_format).eval()
    model = compiled.compile_model(model, mode)
    x = torch.randn(batch, 1, *size, device=device).contiguous(memory_format=mode.memory_format)
    # as many steps per block as the harness used, so both time the same amount of work
    steps, blocks = harness.timing.iters_per_sample, len(harness.timing.samples)
    hand_times, step = hand_loop(model, x, mode, device, warmup, steps, blocks)

    with torch.no_grad(), backends.applied(mode.backends(device)):
        # Timer defaults to one thread; the harness and the loop use torch's setting
        timer = tbench.Timer(
            stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads()
        )
        measured = timer.blocked_autorange(min_run_time=1.0)
    compiled.reset(device)

    h = batch / harness.timing.median
    loop = batch / statistics.median(hand_times)
    tb = batch / measured.median
    spread = combined_spread(harness.timing.rel_iqr, rel_iqr(hand_times))
    return {
        "model": name,
        "mode": mode.name,
        "batch": batch,
        "harness samples/s": h,
        "hand loop samples/s": loop,
        "torch.utils.benchmark samples/s": tb,
        "harness / hand loop": h / loop,
        "harness / utils.benchmark": h / tb,
        "harness ±%": 100 * harness.timing.rel_iqr,
        "hand loop ±%": 100 * rel_iqr(hand_times),
        "utils.benchmark ±%": 100 * measured.iqr / measured.median,
        "spread ±%": 100 * spread,
        "error": "",
    }


def main(argv: list[str] | None = None) -> int:
    p = StrictParser(prog="python -m bench.checks.fidelity", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet18_d2l,lenet")
    p.add_argument("--modes", help="default: the device's default matrix")
    p.add_argument("--gpu", action="store_true")
    p.add_argument(
        "--batch-size", type=int, help=f"default {GPU_BATCH} on a GPU, {CPU_BATCH} on the CPU"
    )
    p.add_argument("--warmup", type=at_least(0, "--warmup"), default=10)
    p.add_argument("--tolerance", type=float, default=0.03)
    args = p.parse_args(argv)
    try:
        models = archs.select_models(args.models)
        device = pick_device(args.gpu)
        modes = parse_modes(args.modes, device)
    except (ModeError, NoCudaError, archs.UnknownModelError) as exc:
        print(f"fidelity: error: {exc}", file=sys.stderr)
        return 2
    batch = args.batch_size or (GPU_BATCH if device.type == "cuda" else CPU_BATCH)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    rows = []
    for model in models:
        for mode in modes:
            rows.append(compare(model, mode, device, batch, args.warmup))
            print(f"{model} {mode.name}: done", file=sys.stderr, flush=True)
    print(
        f"device {name}, torch {torch.__version__}, batch {batch}, inference; ±%: IQR/median "
        "of the timed blocks; spread: the harness's and the hand loop's, combined"
    )
    print(tabulate(rows, headers="keys", floatfmt=",.3f"))
    return verdict(rows, device, args.tolerance)


def verdict(rows: list[dict[str, object]], device: torch.device, tolerance: float) -> int:
    """Print the verdict; 0 when every row agrees (by the device's rule), else 1."""
    if device.type == "cuda":
        rule = f"within ±{tolerance:.0%} of the hand-written loop"
        agrees = [gpu_verdict(r["harness / hand loop"], tolerance) for r in rows if not r["error"]]
    else:
        rule = (
            f"within the spread of the hand-written loop (±{K:g} x spread, at least "
            f"±{tolerance:.0%})"
        )
        agrees = [
            cpu_verdict(r["harness / hand loop"], r["spread ±%"] / 100, tolerance)
            for r in rows
            if not r["error"]
        ]
    failed = sum(1 for r in rows if r["error"])
    bad = failed + agrees.count(False)
    if bad:
        print(f"\n{bad} of {len(rows)} not {rule}" + (f" ({failed} failed)" if failed else ""))
        return 1
    print(f"\nall {len(rows)} {rule}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
