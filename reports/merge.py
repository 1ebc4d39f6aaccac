"""Shards into one run folder: ``python -m reports merge RUN_DIR... --out MERGED``.

The runs must belong together: the same code commit, the same command but ``--shard`` and
``--out``, the same device; with ``--across-devices``, runs of one command on several devices
(``--gpu`` may differ), each row keeping its ``device``, compared in the report. Every item
(``runfolder.schema.ITEM_KEYS``: a model's static profile, a speed measurement per mode and
batch, ...) of a device may be held by one run only; the items the shards were dealt (run.json's
``work``) that no run holds are listed by name, and what is there is still merged. The merged
folder has its rows, per-layer and per-model files, curves and samples, and its own report.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from runfolder.folders import drop_options
from runfolder.reader import Run, load_run, phase_items
from runfolder.writer import RunWriter, as_written

# files each run holds per model, copied into the merged folder as they are
PER_MODEL_FOLDERS = ("layers", "profile", "confusion", "traces")


class MergeError(ValueError):
    """Runs that cannot be merged: one line for the user."""


@dataclass
class Merged:
    path: Path
    rows: int
    missing: list[str] = field(default_factory=list)  # items dealt to a shard, held by none


# options that say where a run goes or which share it measures, not what it measures
_PLACEMENT = ("--shard", "--out")


# a spec's fields that the device kind resolves when not given: across devices they may differ
DEVICE_RESOLVED = (
    "device",
    "modes",
    "batch_sizes",
    "budget",
    "train_limit",
    "eval_limit",
    "accuracy_cap_s",
    "ddp_processes",
)


def spec_without(spec: dict, fields: tuple[str, ...]) -> dict:
    return {k: v for k, v in spec.items() if k not in fields}


def without_shard(argv: list[str]) -> list[str]:
    """A command's arguments without ``--shard K/N`` and ``--out DIR`` (either spelling)."""
    return drop_options(argv, _PLACEMENT)


def held_items(results: pd.DataFrame) -> set[tuple]:
    """The items ``results`` hold, ``(phase, model, ...)``."""
    return {
        (phase, *item)
        for phase in dict.fromkeys(results["phase"])
        for item in phase_items(results, phase)
    }


def _check_together(runs: list[Run], across_devices: bool) -> None:
    def differing(what: str, values: list[object]) -> None:
        if len({repr(v) for v in values}) > 1:
            shown = "; ".join(f"{r.path.name}: {v}" for r, v in zip(runs, values))
            hint = "" if across_devices or what != "devices" else "; add --across-devices"
            raise MergeError(
                f"the runs do not belong together: their {what} differ ({shown}){hint}"
            )

    def command(run: Run) -> str:
        argv = without_shard(run.provenance.get("argv", []))
        # across devices, which device a run picked is the point: --gpu may differ
        return " ".join(a for a in argv if not (across_devices and a == "--gpu"))

    differing("code commits", [r.provenance.get("git_commit") for r in runs])
    if all(isinstance(r.provenance.get("spec"), dict) for r in runs):
        ignored = ("shard", *DEVICE_RESOLVED) if across_devices else ("shard",)
        differing(
            f"specs (but {', '.join(ignored)})",
            [spec_without(r.provenance["spec"], ignored) for r in runs],
        )
    else:  # run folders written before run.json held the spec: their commands
        what = (
            "commands (but --shard, --out and --gpu)"
            if across_devices
            else "commands (but --shard and --out)"
        )
        differing(what, [command(r) for r in runs])
    if not across_devices:
        differing("devices", [r.provenance.get("device_name") for r in runs])


def merge_runs(paths: list[Path], out: Path, across_devices: bool = False) -> Merged:
    """``paths``' run folders as one in ``out``; ``across_devices``: runs of the same command
    on different devices, side by side (each row keeps its device)."""
    if len(paths) < 2:
        raise MergeError("give at least two run folders to merge")
    runs = [load_run(p) for p in paths]
    _check_together(runs, across_devices)
    held: dict[tuple, str] = {}
    for run in runs:
        device = str(run.provenance.get("device_name", ""))
        for item in sorted(held_items(run.results), key=str):
            key = (device, *item)
            if key in held:
                raise MergeError(
                    f"{_name(key)} is in both {held[key]} and {run.path.name}: merge each "
                    "shard once"
                )
            held[key] = run.path.name
    dealt = {
        (str(r.provenance.get("device_name", "")), *item[1:])
        for r in runs
        for item in r.provenance.get("work", [])
    }
    missing = sorted(_name(k) for k in dealt - set(held))
    shards = sorted({str(r.provenance.get("shard", "")) for r in runs} - {""})
    if out.exists() and any(out.iterdir()):
        raise MergeError(f"--out {out} is not empty: give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    first = runs[0].provenance
    provenance = {k: v for k, v in first.items() if k not in ("shard", "work", "status")}
    provenance |= {
        "merged_from": [
            {
                "run": str(r.path),
                "shard": r.provenance.get("shard"),
                "host": r.provenance.get("host"),
                "slurm": r.provenance.get("slurm"),
            }
            for r in runs
        ],
        "shards": shards,
        "missing": missing,
    }
    if "argv" in first:
        provenance["argv"] = without_shard(first["argv"])
    if isinstance(first.get("spec"), dict):
        provenance["spec"] = {**first["spec"], "shard": None}
    if isinstance(first.get("command"), str):
        provenance["command"] = shlex.join(drop_options(shlex.split(first["command"]), _PLACEMENT))
    devices = list(dict.fromkeys(str(r.provenance.get("device_name", "")) for r in runs))
    if len(devices) > 1:
        provenance["device_folders"] = {d: str(device_folder(d)) for d in devices[1:]}
    writer = RunWriter(out, provenance)
    other_curves: dict[str, list[pd.DataFrame]] = {}
    for run in runs:
        writer.add([as_written(row) for row in run.results.to_dict("records")])
        if run.samples:
            writer.add_samples(run.samples)
        device = str(run.provenance.get("device_name", ""))
        # the first device's files are the run's own (its charts show that device); each
        # other device's go to a folder of its own, where no model's file overwrites another's
        place = out if device == devices[0] else out / device_folder(device)
        if run.curves is not None and place == out:
            writer.add_curves(run.curves.to_dict("records"))
        elif run.curves is not None:
            other_curves.setdefault(device, []).append(run.curves)
        for folder in PER_MODEL_FOLDERS:
            source = run.path / folder
            if source.is_dir():
                shutil.copytree(source, place / folder, dirs_exist_ok=True)
    for device, frames in other_curves.items():
        pd.concat(frames).to_csv(out / device_folder(device) / "curves.csv", index=False)
    writer.finish("complete" if not missing else "incomplete")
    return Merged(out, len(writer.rows), missing)


def device_folder(device: str) -> Path:
    """Where a merge across devices keeps a device's per-model files and learning curves,
    but the first device's: ``devices/NVIDIA-L4``."""
    return Path("devices") / (re.sub(r"[^A-Za-z0-9._-]+", "-", device).strip("-") or "device")


def _name(key: tuple) -> str:
    """``speed lenet fp32 8 (on AMD EPYC)`` for ``(device, phase, model, ...)``."""
    device, phase, *rest = key
    return f"{phase} {' '.join(map(str, rest))} (on {device})"
