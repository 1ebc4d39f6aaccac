"""Does the harness measure what a careful person would? One process, one device, three ways:

1. the harness (``bench.speed.measure_speed``, inference only);
2. a minimal hand-written loop: warm-up, then CUDA events (or ``perf_counter`` on the CPU)
   around a fixed number of steps, the median of several such blocks;
3. ``torch.utils.benchmark.Timer.blocked_autorange`` (which synchronises CUDA itself).

    python -m bench.fidelity --gpu                       # ResNet-18 (d2l, 96x96) and LeNet, GPU default modes
    python -m bench.fidelity --models lenet --modes fp32 # on the CPU

It prints samples/s from each and the harness's ratio to the other two, and exits 1 when the
harness differs from the hand-written loop by more than ``--tolerance`` (3% by default).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.utils.benchmark as tbench
from tabulate import tabulate

import archs

from . import backends
from .modes import ModeError, parse_modes
from . import compiled
from .speed import SpeedConfig, measure_speed


def hand_loop(model, x, mode, device, warmup: int, steps: int, blocks: int) -> float:
    """Seconds per step: the loop anyone would write, sharing no code with the harness."""
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
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
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
    return statistics.median(times), step


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
    hand_s, step = hand_loop(model, x, mode, device, warmup, steps, blocks)

    with torch.no_grad(), backends.applied(mode.backends(device)):
        # Timer defaults to one thread; the harness and the loop use torch's setting
        timer = tbench.Timer(stmt="step()", globals={"step": step},
                             num_threads=torch.get_num_threads())  # fmt: skip
        measured = timer.blocked_autorange(min_run_time=1.0)
    compiled.reset(device)

    h, loop, tb = batch / harness.timing.median, batch / hand_s, batch / measured.median
    return {
        "model": name,
        "mode": mode.name,
        "batch": batch,
        "harness samples/s": h,
        "hand loop samples/s": loop,
        "torch.utils.benchmark samples/s": tb,
        "harness / hand loop": h / loop,
        "harness / utils.benchmark": h / tb,
        "harness ±% (IQR/median)": 100 * harness.timing.rel_iqr,
        "error": "",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="resnet18_d2l,lenet")
    p.add_argument("--modes", help="default: the device's default matrix")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--batch-size", type=int, help="default 256 on a GPU, 8 on the CPU")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--tolerance", type=float, default=0.03)
    args = p.parse_args(argv)
    try:
        models = archs.select_models(args.models)
        if args.gpu and not torch.cuda.is_available():
            raise ModeError("--gpu was given but no CUDA device is visible")
        device = torch.device("cuda" if args.gpu else "cpu")
        modes = parse_modes(args.modes, device)
    except (ModeError, archs.UnknownModelError) as exc:
        print(f"fidelity: error: {exc}", file=sys.stderr)
        return 2
    batch = args.batch_size or (256 if device.type == "cuda" else 8)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    rows = []
    for model in models:
        for mode in modes:
            rows.append(compare(model, mode, device, batch, args.warmup))
            print(f"{model} {mode.name}: done", file=sys.stderr, flush=True)
    print(f"device {name}, torch {torch.__version__}, batch {batch}, inference")
    print(tabulate(rows, headers="keys", floatfmt=",.3f"))
    bad = [r for r in rows if r["error"] or abs(r["harness / hand loop"] - 1) > args.tolerance]
    if bad:
        print(f"\n{len(bad)} of {len(rows)} outside ±{args.tolerance:.0%} of the hand loop "
              "(or failed)")  # fmt: skip
        return 1
    print(f"\nall {len(rows)} within ±{args.tolerance:.0%} of the hand-written loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
