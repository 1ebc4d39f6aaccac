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

from .modes import Mode
from .peaks import device_peak
from .profile import LayerRow, StaticProfile, profile_model
from .provenance import device_description
from .results import RunWriter, error_row, static_rows
from .speed import SpeedConfig, measure_speed
from .speed_rows import measurement_summary, sample_records, speed_rows
from .accuracy_rows import accuracy_rows, confusion_frame, curve_rows
from .loader import Split
from .train import AccuracyConfig, train_model

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
        keys = {(m, md, int(b)) for m, md, b, metric in
                zip(speed["model"], speed["mode"], speed["batch"], speed["metric"])
                if not metric.startswith("latency_")}  # fmt: skip
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


def layers_frame(layers: list[LayerRow]) -> pd.DataFrame:
    frame = pd.DataFrame([dataclasses.asdict(r) for r in layers])
    frame["output_shape"] = ["x".join(map(str, r.output_shape)) if r.output_shape else ""
                             for r in layers]  # fmt: skip
    return frame


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _speed_config(cfg: RunConfig, batch: int, first_batch: bool) -> SpeedConfig:
    speed = SpeedConfig.for_device(cfg.device, batch)
    kinds = ("infer", "latency", "train") if first_batch else ("infer", "train")
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
        message = (f"at input {h}x{w} (the model is built for "
                   f"{entry.input_size}x{entry.input_size}): {message}")  # fmt: skip
    return message


def run_models(cfg: RunConfig, writer: RunWriter, done: Done = Done()) -> None:
    """Measure every model; each model's failures become its rows and the run goes on.
    What ``done`` holds (a resumed run's measurements) is skipped."""
    device_name = device_description(cfg.device)
    width = len(str(len(cfg.models)))
    for i, name in enumerate(cfg.models, 1):
        entry = archs.get_entry(name)
        tag = f"[{i:>{width}}/{len(cfg.models)}] {name}"
        t0 = time.perf_counter()
        profile: StaticProfile | None = None
        try:
            profile = profile_model(entry, cfg.input_size, cfg.num_classes, cfg.in_channels)
        except Exception as exc:  # one model's failure is its row's, not the run's
            writer.add([error_row(name, entry.family, "static", _fit_error(entry, cfg, exc))])
            _say(f"{tag}: static FAILED ({type(exc).__name__})")
        if "static" in cfg.phases and name in done.static:
            _say(f"{tag}: static profile already in the run folder, skipped")
        elif profile is not None and "static" in cfg.phases:
            writer.add(static_rows(profile))
            writer.add_layers(name, layers_frame(profile.layers))
            _say(f"{tag}: {profile.params / 1e6:.3f} M params, {profile.macs / 1e9:.4f} GMACs/sample "
                 f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        if "speed" in cfg.phases:
            size = cfg.input_size or (entry.input_size, entry.input_size)
            flops = profile.flops if profile else None
            for mode in cfg.modes:
                peak = device_peak(cfg.device, device_name, mode.precision)
                for j, batch in enumerate(cfg.batch_sizes):
                    if (name, mode.name, batch) in done.speed:
                        _say(f"{tag} {mode.name} b{batch}: already in the run folder, skipped")
                        continue
                    speed_cfg = _speed_config(cfg, batch, first_batch=j == 0)
                    t1 = time.perf_counter()
                    result = measure_speed(entry, mode, cfg.device, speed_cfg, size,
                                           cfg.num_classes, cfg.in_channels)  # fmt: skip
                    writer.add(speed_rows(result, entry.family, speed_cfg, flops, peak, device_name))
                    writer.add_samples(sample_records(result))
                    measured = ", ".join(measurement_summary(m) for m in result.measurements)
                    failed = "".join(f"; {k} FAILED ({e.split(':')[0]})" for k, e in result.errors.items())
                    _say(f"{tag} {mode.name} b{batch}: {measured}{failed} "
                         f"({time.perf_counter() - t1:.1f} s)")  # fmt: skip
        if "accuracy" in cfg.phases and name in done.accuracy:
            _say(f"{tag}: accuracy already in the run folder, skipped")
        elif "accuracy" in cfg.phases:
            run_accuracy(entry, cfg, writer, tag)


def run_accuracy(entry: archs.ModelEntry, cfg: RunConfig, writer: RunWriter, tag: str) -> None:
    assert cfg.accuracy is not None and cfg.data is not None  # set together by the CLI
    acc, (train, test) = cfg.accuracy, cfg.data
    size = cfg.input_size[0] if cfg.input_size else entry.input_size
    if cfg.input_size and cfg.input_size[0] != cfg.input_size[1]:
        writer.add([error_row(entry.name, entry.family, "accuracy",
                              "training needs a square --input-size", mode=acc.mode.name)])  # fmt: skip
        return
    seeds = []
    try:
        for seed in acc.seeds:
            result = train_model(entry, train, test, acc, seed, size,
                                 progress=lambda line: _say(f"{tag} {line.split(' ', 1)[1]}"))  # fmt: skip
            writer.add_curves(curve_rows(result))
            seeds.append(result)
    except Exception as exc:  # out of memory, compile error: the model's row, not the run's
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ''}"
        writer.add([error_row(entry.name, entry.family, "accuracy", message, mode=acc.mode.name)])
        _say(f"{tag} accuracy FAILED ({type(exc).__name__})")
    finally:
        if cfg.device.type == "cuda":
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
