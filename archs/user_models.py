"""The user's own models: a builder in a file (``--models path/to/file.py:builder``) and the
models installed packages register through the ``archbench.models`` entry-point group.

Both register with ``archs.register_model``, the decorator the suite's models use: a file is
imported (its decorators run) and ``builder`` must be one of the functions it registered; an
entry point names a module that is imported the same way. An entry point's models take its
distribution's name as their source, a file's ``file``.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path

from . import registry

ENTRY_POINT_GROUP = "archbench.models"
_LOADED_FILES: dict[Path, object] = {}


def is_file_spec(token: str) -> bool:
    path, colon, _ = token.rpartition(":")
    return bool(colon) and path.endswith(".py")


def load_file_builder(token: str) -> str:
    """Import the file of ``path.py:builder`` and return the name ``builder`` registered as."""
    path_text, _, builder = token.rpartition(":")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise registry.ModelSourceError(f"--models {token}: no file {path_text}")
    module = _LOADED_FILES.get(path) or _import_file(path, token)
    fn = getattr(module, builder, None)
    registered = {e.builder: e.name for e in registry._REGISTRY.values() if e.source == "file"}
    if fn is None or fn not in registered:
        mine = sorted(name for f, name in registered.items() if _defined_in(f, path))
        where = f"it registers {', '.join(mine)}" if mine else "it registers no model"
        what = "has no" if fn is None else "does not register its"
        raise registry.ModelSourceError(
            f"--models {token}: {path_text} {what} '{builder}' ({where}); decorate the builder "
            "with @archs.register_model(family=..., input_size=...)"
        )
    return registered[fn]


def _defined_in(fn: object, path: Path) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and Path(code.co_filename).resolve() == path


def _import_file(path: Path, token: str) -> object:
    name = f"archbench_user_{len(_LOADED_FILES)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise registry.ModelSourceError(f"--models {token}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up
    registry._CURRENT_SOURCE.append("file")
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise registry.ModelSourceError(
            f"--models {token}: importing {path} failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        registry._CURRENT_SOURCE.pop()
    _LOADED_FILES[path] = module
    return module


def load_entry_points() -> None:
    """Import every module of the group; one that fails is a warning, the others still load."""
    for point in entry_points(group=ENTRY_POINT_GROUP):
        source = point.dist.name if point.dist is not None else point.name
        registry._CURRENT_SOURCE.append(source)
        try:
            point.load()
        except Exception as exc:
            warnings.warn(
                f"the {ENTRY_POINT_GROUP} entry point '{point.name}' of {source} failed to "
                f"load ({type(exc).__name__}: {exc}); its models are left out",
                stacklevel=2,
            )
        finally:
            registry._CURRENT_SOURCE.pop()
