"""Run folders under an output folder: naming a new one, finding the one to resume, and what a
resumed run's provenance keeps of the first."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_dir(out: Path) -> Path:
    """``out/YYYYmmdd-HHMMSS`` (``-1``, ``-2`` ... when taken), made."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(100):
        run_dir = out / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"could not make a new run folder under {out}")


def find_resumable(out: Path, same_run: Callable[[dict], bool]) -> Path | None:
    """The newest run folder under ``out`` whose run.json ``same_run`` accepts (the caller
    compares the run's spec)."""
    candidates = sorted(out.glob("*/run.json"), key=lambda p: p.parent.name)
    for run_json in reversed(candidates):
        try:
            info = json.loads(run_json.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and same_run(info):
            return run_json.parent
    return None


def read_provenance(run_dir: Path) -> dict[str, object]:
    path = run_dir / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def resumed_provenance(previous: dict[str, object], current: dict[str, object]) -> dict:
    """A resumed run's provenance: this process's, with the first start kept and each resume's
    time listed."""
    return dict(
        current,
        started=previous.get("started", current.get("started")),
        resumed=[*previous.get("resumed", []), now()],  # type: ignore[misc]
    )


def drop_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` without each of ``options`` and its value (``--out DIR`` or ``--out=DIR``)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in options)):
            kept.append(arg)
    return kept
