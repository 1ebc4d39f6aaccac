"""The phases a run goes through, in order. A phase is a value with a name, ``run`` (a model
and the run's context in, groups of rows out, skipping the items done), ``estimate_s`` and
``work`` (its items and their cost). To add one: a module here with a class like
``StaticPhase``, its metrics in ``runfolder.schema.METRICS``, the columns naming its items in
``runfolder.schema.ITEM_KEYS`` (unless it measures once per model), and a line in
``PHASES``."""

from __future__ import annotations

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
# what runs without --phases: the profile phase is asked for by name (see README, "The profile
# phase": on the CPU it adds about as much time as the speed phase)
DEFAULT_PHASES: tuple[str, ...] = ("static", "speed", "accuracy")

__all__ = ["DEFAULT_PHASES", "PHASES", "Phase", "RunAborted", "RunConfig", "RunContext"]
