"""The suite's one logger, ``archbench``: progress and messages on stderr, one format
(``archbench: MESSAGE``), flushed line by line so a job's log shows where it is. ``--quiet``
keeps warnings alone (what did not go as asked: an interruption, a model not measured, how to
resume); ``--verbose`` adds the details (the resolved spec, each group of rows written)."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("archbench")


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is logged (a test's
    captured stream, a job's redirected one), not the one it was made with."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


_handler = _Stderr()
_handler.setFormatter(logging.Formatter("archbench: %(message)s"))
logger.addHandler(_handler)
logger.setLevel(logging.INFO)
logger.propagate = False


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    """Warnings alone with ``quiet``, the details too with ``verbose``, else progress."""
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


def say(text: str) -> None:
    """A progress line."""
    logger.info(text)


def warn(text: str) -> None:
    """What did not go as asked, shown even with ``--quiet``."""
    logger.warning(text)
