"""One run: every selected model through every selected phase, written as it goes."""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

import archs

from . import failures
from .accuracy_rows import accuracy_rows, confusion_frame, curve_rows
from .estimate import ASSUMED_EFFICIENCY, ModelWork, Progress, duration, estimate_phases
from .loader import Split
from .modes import Mode
from .peaks import device_peak
from .profile import LayerRow, StaticProfile, profile_model
from .provenance import device_description
from .results import RunWriter, error_row, result_row, static_rows
from .speed import SpeedConfig, measure_speed
from .speed_rows import measurement_summary, sample_records, speed_rows
from .train import AccuracyConfig, OverCap, train_model

PHASES = ("static", "speed", "accuracy")


@dataclass(frozen=True)
class Done:
    """What a resumed run folder already holds; those measurements are skipped."""

    static: frozenset[str] = frozenset()
    speed: frozenset[tuple[str, str, int]] = frozenset()  # (model, mode, batch)
    accuracy: frozenset[str] = frozenset()

    @classmethod
    def from_results(cls, results: pd.DataFrame) -> Done:
        speed = results[results["phase"] == "speed"]
        # a speed measurement's rows carry its requested batch; latency rows carry 1
        keys = {
            (m, md, int(b))
            for m, md, b, metric in zip(
                speed["model"], speed["mode"], speed["batch"], speed["metric"]
            )
            if not metric.startswith("latency_")
        }
        return cls(
            static=frozenset(results.loc[results["phase"] == "static", "model"]),
            speed=frozenset(keys),
            accuracy=frozenset(results.loc[results["phase"] == "accuracy", "model"]),
        )


@dataclass(frozen=True)
class RunConfig:
    models: list[str]
    phases: tuple[str, ...]
    device: torch.device
    modes: list[Mode]
    batch_sizes: tuple[int, ...]
    input_size: tuple[int, int] | None = None  # None: each model's own
    num_classes: int = 10
    in_channels: int = 1
    repeats: int | None = None  # None: the device's default
    warmup: int | None = None
    accuracy: AccuracyConfig | None = None  # set when the accuracy phase runs
    data: tuple[Split, Split] | None = None  # training and test splits on the device
    compiled_latency: bool = False  # batch-1 latency in compiled modes too (a compile each)


def layers_frame(layers: list[LayerRow]) -> pd.DataFrame:
    frame = pd.DataFrame([dataclasses.asdict(r) for r in layers])
    frame["output_shape"] = [
        "x".join(map(str, r.output_shape)) if r.output_shape else "" for r in layers
    ]
    return frame


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class RunAborted(Exception):
    """A sticky CUDA error: nothing more can run on the device in this process. What was
    measured is saved; the failed model's remaining figures are error rows, so a resumed run
    (a new process) skips it."""

    def __init__(self, model: str, error: str):
        super().__init__(f"{model}: {error}")
        self.model = model
        self.error = error


def _speed_config(cfg: RunConfig, mode: Mode, batch: int, first_batch: bool) -> SpeedConfig:
    speed = SpeedConfig.for_device(cfg.device, batch)
    # batch-1 latency once per mode, at the first batch size; compiled modes only when asked,
    # since each is one more compile
    latency = first_batch and (mode.compile == "none" or cfg.compiled_latency)
    kinds = ("infer", "latency", "train") if latency else ("infer", "train")
    return dataclasses.replace(
        speed,
        kinds=kinds,
        repeats=cfg.repeats or speed.repeats,
        warmup=speed.warmup if cfg.warmup is None else cfg.warmup,
    )


def _fit_error(entry: archs.ModelEntry, cfg: RunConfig, exc: Exception) -> str:
    message = f"{type(exc).__name__}: {exc}"
    if cfg.input_size and cfg.input_size != (entry.input_size, entry.input_size):
        h, w = cfg.input_size
        message = (
            f"at input {h}x{w} (the model is built for "
            f"{entry.input_size}x{entry.input_size}): {message}"
        )
    return message


def _speed_runs(cfg: RunConfig) -> list[tuple[Mode, int, SpeedConfig]]:
    return [
        (mode, batch, _speed_config(cfg, mode, batch, first_batch=j == 0))
        for mode in cfg.modes
        for j, batch in enumerate(cfg.batch_sizes)
    ]


def _model_work(cfg: RunConfig, entry: archs.ModelEntry, flops: float, layers: int) -> ModelWork:
    runs = _speed_runs(cfg) if "speed" in cfg.phases else []
    first = runs[0][2] if runs else SpeedConfig.for_device(cfg.device)
    acc = cfg.accuracy
    batch = entry.train.batch_size
    train_steps = eval_examples = train_seconds = 0.0
    if "accuracy" in cfg.phases and acc is not None and cfg.data is not None:
        train, test = cfg.data
        batch = min(batch, acc.batch_cap or batch, len(train))
        seeds, budget = len(acc.seeds), acc.budget
        if budget.kind == "seconds":
            train_seconds = budget.value * seeds
        elif budget.kind == "epochs":
            train_steps = budget.value * (len(train) // batch) * seeds
        else:
            train_steps = budget.value * seeds
        epochs = budget.value if budget.kind == "epochs" else 1
        eval_examples = epochs * len(test) * seeds
    return ModelWork(
        flops_per_sample=flops,
        layers=layers,
        speed_runs=[(mode, b, sc.kinds) for mode, b, sc in runs],
        repeats=first.repeats,
        warmup=first.warmup,
        min_block_s=first.min_block_s,
        latency_samples=first.latency_samples,
        train_steps=train_steps,
        train_batch=batch,
        eval_examples=eval_examples,
        train_seconds=train_seconds,
        compile_training=acc.mode if acc is not None and acc.mode.compile != "none" else None,
        accuracy_cap_s=acc.cap_s * len(acc.seeds) if acc is not None and acc.cap_s else None,
    )


def estimate_run(
    cfg: RunConfig, profiles: dict[str, StaticProfile | None], peak_tflops: float
) -> Progress:
    """The time each model should take, from its FLOPs (``estimate``'s assumptions)."""
    estimates = {}
    for name, profile in profiles.items():
        flops = float(profile.flops) if profile else 0.0
        layers = profile.leaf_layers if profile else 1
        work = _model_work(cfg, archs.get_entry(name), flops, layers)
        estimates[name] = sum(estimate_phases(work, peak_tflops, cfg.device).values())
    return Progress(estimates)


def run_models(
    cfg: RunConfig, writer: RunWriter, done: Done = Done(), peak_tflops: float | None = None
) -> dict[str, float]:
    """Measure every model; each model's failures become its rows and the run goes on (a
    sticky CUDA error raises ``RunAborted`` after its rows are written). What ``done`` holds
    (a resumed run's measurements) is skipped. Returns the seconds spent per phase."""
    device_name = device_description(cfg.device)
    width = len(str(len(cfg.models)))
    profiles: dict[str, StaticProfile | None] = {}
    static_errors: dict[str, str] = {}
    t_static = time.perf_counter()
    for name in cfg.models:
        entry = archs.get_entry(name)
        try:
            profiles[name] = profile_model(entry, cfg.input_size, cfg.num_classes, cfg.in_channels)
        except Exception as exc:  # one model's failure is its row's, not the run's
            profiles[name] = None
            static_errors[name] = _fit_error(entry, cfg, exc)
    progress = None
    if peak_tflops:
        progress = estimate_run(cfg, profiles, peak_tflops)
        _say(
            f"estimate: about {duration(progress.total_estimate)} for "
            f"{_plural(len(cfg.models), 'model')} "
            f"(from each model's FLOPs at {ASSUMED_EFFICIENCY:.0%} of the device's "
            f"{peak_tflops:.3g} TFLOP/s, refined as models finish)"
        )
    totals = {phase: 0.0 for phase in cfg.phases}
    # every model is profiled first, for the estimate and the speed phase's FLOPs
    totals["static"] = time.perf_counter() - t_static
    for i, name in enumerate(cfg.models, 1):
        entry = archs.get_entry(name)
        tag = f"[{i:>{width}}/{len(cfg.models)}] {name}"
        t_model = time.perf_counter()
        spent: dict[str, float] = {}
        profile = profiles[name]
        if "static" in cfg.phases:
            if name in done.static:
                _say(f"{tag}: static profile already in the run folder, skipped")
            elif profile is None:
                writer.add([error_row(name, entry.family, "static", static_errors[name])])
                _say(f"{tag}: static FAILED ({static_errors[name].split(':')[0]})")
            else:
                writer.add(static_rows(profile))
                writer.add_layers(name, layers_frame(profile.layers))
                _say(
                    f"{tag}: {profile.params / 1e6:.3f} M params, "
                    f"{profile.macs / 1e9:.4f} GMACs/sample"
                )
        if "speed" in cfg.phases:
            t0 = time.perf_counter()
            _run_speed(entry, cfg, writer, done, profile, device_name, tag)
            spent["speed"] = time.perf_counter() - t0
        if "accuracy" in cfg.phases and name in done.accuracy:
            _say(f"{tag}: accuracy already in the run folder, skipped")
        elif "accuracy" in cfg.phases:
            t0 = time.perf_counter()
            run_accuracy(entry, cfg, writer, tag)
            spent["accuracy"] = time.perf_counter() - t0
        for phase, seconds in spent.items():
            totals[phase] += seconds
        took = time.perf_counter() - t_model
        line = ", ".join(f"{phase} {duration(s)}" for phase, s in spent.items() if s)
        eta = ""
        if progress is not None:
            progress.finished(name, took)
            eta = f"; about {duration(progress.seconds_left())} left"
        _say(f"{tag}: done in {duration(took)}{f' ({line})' if line else ''}{eta}")
    return totals


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _run_speed(
    entry: archs.ModelEntry,
    cfg: RunConfig,
    writer: RunWriter,
    done: Done,
    profile: StaticProfile | None,
    device_name: str,
    tag: str,
) -> None:
    name = entry.name
    size = cfg.input_size or (entry.input_size, entry.input_size)
    flops = profile.flops if profile else None
    runs = _speed_runs(cfg)
    for k, (mode, batch, speed_cfg) in enumerate(runs):
        if (name, mode.name, batch) in done.speed:
            _say(f"{tag} {mode.name} b{batch}: already in the run folder, skipped")
            continue
        peak = device_peak(cfg.device, device_name, mode.precision)
        t1 = time.perf_counter()
        result = measure_speed(
            entry, mode, cfg.device, speed_cfg, size, cfg.num_classes, cfg.in_channels
        )
        writer.add(speed_rows(result, entry.family, speed_cfg, flops, peak, device_name))
        writer.add_samples(sample_records(result))
        measured = ", ".join(measurement_summary(m) for m in result.measurements)
        failed = "; ".join(
            f"{kind} FAILED ({e.split(':')[0]})" for kind, e in result.errors.items()
        )
        _say(
            f"{tag} {mode.name} b{batch}: {'; '.join(filter(None, [measured, failed]))} "
            f"({time.perf_counter() - t1:.1f} s)"
        )
        if result.context_lost:
            lost = f"not measured: the CUDA context was lost in {mode.name} b{batch}"
            rows = [
                error_row(name, entry.family, "speed", lost, mode=m.name, batch=b)
                for m, b, _ in runs[k + 1 :]
            ]
            if "accuracy" in cfg.phases and cfg.accuracy is not None:
                rows.append(
                    error_row(name, entry.family, "accuracy", lost, mode=cfg.accuracy.mode.name)
                )
            writer.add(rows)
            raise RunAborted(name, result.context_lost)


def run_accuracy(entry: archs.ModelEntry, cfg: RunConfig, writer: RunWriter, tag: str) -> None:
    assert cfg.accuracy is not None and cfg.data is not None  # set together by the CLI
    acc, (train, test) = cfg.accuracy, cfg.data
    size = cfg.input_size[0] if cfg.input_size else entry.input_size
    if cfg.input_size and cfg.input_size[0] != cfg.input_size[1]:
        writer.add(
            [
                error_row(
                    entry.name,
                    entry.family,
                    "accuracy",
                    "training needs a square --input-size",
                    mode=acc.mode.name,
                )
            ]
        )
        return
    seeds = []
    lost = False
    try:
        for seed in acc.seeds:
            result = train_model(
                entry,
                train,
                test,
                acc,
                seed,
                size,
                progress=lambda line: _say(f"{tag} {line.split(' ', 1)[1]}"),
            )
            writer.add_curves(curve_rows(result))
            seeds.append(result)
    except OverCap as over:
        seeds = []
        writer.add(
            [
                result_row(
                    entry.name,
                    entry.family,
                    "accuracy",
                    "not_trained_estimate",
                    over.estimate_s,
                    mode=acc.mode.name,
                    method=f"{acc.describe()}; not trained: {over}; run it with a "
                    f"longer --accuracy-cap (or 0 for none), a smaller --budget, or on a GPU with "
                    "--gpu",
                )
            ]
        )
        _say(f"{tag} accuracy not trained: {over}")
    except Exception as exc:  # out of memory, compile error: the model's row, not the run's
        writer.add(
            [
                error_row(
                    entry.name, entry.family, "accuracy", failures.describe(exc), mode=acc.mode.name
                )
            ]
        )
        _say(f"{tag} accuracy FAILED ({type(exc).__name__})")
        lost = failures.is_sticky_cuda_error(exc)
        if lost:
            raise RunAborted(entry.name, failures.describe(exc)) from None
    finally:
        if cfg.device.type == "cuda" and not lost:  # a lost context fails every CUDA call
            torch.cuda.empty_cache()
    if seeds:
        writer.add(accuracy_rows(entry.name, entry.family, seeds, acc))
        writer.add_confusion(entry.name, confusion_frame(seeds))


def find_resumable(out: Path, argv: list[str]) -> Path | None:
    """The newest run folder under ``out`` made by the same arguments (``--resume`` aside)."""
    import json

    candidates = sorted((p for p in out.glob("*/run.json")), key=lambda p: p.parent.name)
    for run_json in reversed(candidates):
        try:
            if json.loads(run_json.read_text()).get("argv") == argv:
                return run_json.parent
        except (OSError, ValueError):
            continue
    return None


def new_run_dir(out: Path) -> Path:
    from datetime import datetime

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(100):
        run_dir = out / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"could not make a new run folder under {out}")
