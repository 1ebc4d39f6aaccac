"""torch.compile as the suite uses it: one call, a fresh dynamo state per model, and proof that
a figure labelled compiled ran compiled code.

Every compiled module goes through one shared code object (dynamo's wrapper of the module
call; for the registry's models ``nn.Sequential.forward`` too), and dynamo keeps one cache entry
on it per model structure, static shape and train/eval mode. Past ``recompile_limit`` entries
dynamo would silently run the frame eager. So dynamo is reset for each model (and seed, and
out-of-memory retry), a limit hit raises instead of falling back
(``fail_on_recompile_limit_hit``), and a first call that compiled no graph is an error.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import torch
from torch import nn

from bench.measure.modes import Mode


class RanEager(RuntimeError):
    """A model compiled by the suite ran without compiled code."""


def reset(device: torch.device) -> None:
    """Forget every compiled graph (CUDA-graph pools included) and free cached memory."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def compile_model(model: nn.Module, mode: Mode) -> nn.Module:
    """``model`` compiled in ``mode``'s compile mode with static shapes (each batch size its own
    graph); ``model`` itself when the mode is eager."""
    if mode.compile == "none":
        return model
    return torch.compile(model, mode=mode.compile_option, dynamic=False)


def _fail_on_limit_flag() -> str:
    config = torch._dynamo.config
    # torch 2.6 renamed the cache-size limit to the recompile limit
    return (
        "fail_on_recompile_limit_hit"
        if hasattr(config, "fail_on_recompile_limit_hit")
        else "fail_on_cache_limit_hit"
    )


@contextlib.contextmanager
def no_eager_fallback() -> Iterator[None]:
    """Inside the block, hitting dynamo's recompile limit raises instead of running eager."""
    with torch._dynamo.config.patch(**{_fail_on_limit_flag(): True}):
        yield


def compiled_graphs() -> int:
    """Graphs dynamo has compiled since the last ``reset``."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def graph_breaks() -> int:
    return int(sum(torch._dynamo.utils.counters["graph_break"].values()))


def check_compiled(mode: Mode) -> None:
    """Raise ``RanEager`` when ``mode`` is compiled but dynamo has compiled nothing since the
    last reset: the call that should have compiled ran eager."""
    if mode.compile != "none" and compiled_graphs() == 0:
        raise RanEager(f"mode '{mode.name}' compiled no graph: the model ran eager")
