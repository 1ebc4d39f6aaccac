"""The phases a run goes through, in order: a phase is a value that turns a model into rows
(``bench.phases.base.Phase``). The suite's own are registered here; one defined anywhere else
is registered with ``register_phase`` (its metrics with ``runfolder.schema.register_phase_schema``)
and then runs, resumes, shards and merges as they do, and the report shows its rows in a table
built from the schema (docs/extending.md, "Adding a phase"). An installed package registers its
phases through the ``archbench.phases`` entry-point group: every process of a run imports them,
a launcher's jobs included."""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points

from bench.phases.accuracy import AccuracyPhase
from bench.phases.base import Phase, RunAborted, RunConfig, RunContext
from bench.phases.ddp import DdpPhase
from bench.phases.profile import ProfilePhase
from bench.phases.speed import SpeedPhase
from bench.phases.static import StaticPhase

PHASES: dict[str, Phase] = {
    phase.name: phase
    for phase in (StaticPhase(), SpeedPhase(), DdpPhase(), ProfilePhase(), AccuracyPhase())
}
# what runs without --phases: the profile phase is asked for by name (see docs/profile-phase.md:
# on the CPU it adds about as much time as the speed phase)
DEFAULT_PHASES: tuple[str, ...] = ("static", "speed", "accuracy")
_OWN = frozenset(PHASES)


ENTRY_POINT_GROUP = "archbench.phases"
_PLUGINS_LOADED: list[bool] = []


def load_phase_plugins() -> None:
    """Import each module named in the ``archbench.phases`` entry-point group, once: it
    registers its phases and their metrics as it is imported. One that fails to load is a
    warning; the others still load."""
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED.append(True)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as exc:
            warnings.warn(
                f"the {ENTRY_POINT_GROUP} entry point '{point.name}' failed to load "
                f"({type(exc).__name__}: {exc}); its phases are left out",
                stacklevel=2,
            )


def register_phase(phase: Phase) -> None:
    """Add ``phase`` to the phases ``--phases`` can name; it runs after those registered
    before it. A name taken by another phase is refused; the same phase again is a no-op."""
    if not getattr(phase, "name", "") or not phase.name.isidentifier():
        raise ValueError(f"a phase needs a name that is an identifier, got {phase!r}")
    known = PHASES.get(phase.name)
    if known is not None and type(known) is not type(phase):
        raise ValueError(f"phase '{phase.name}' is registered already ({type(known).__name__})")
    PHASES[phase.name] = phase


def unregister_phase(name: str) -> None:
    """Forget the phase ``name`` (``KeyError`` if it is not registered); the suite's own stay."""
    if name in _OWN:
        raise ValueError(f"'{name}' is one of the suite's own phases")
    del PHASES[name]


__all__ = [
    "DEFAULT_PHASES",
    "PHASES",
    "Phase",
    "RunAborted",
    "load_phase_plugins",
    "RunConfig",
    "RunContext",
    "register_phase",
    "unregister_phase",
]
