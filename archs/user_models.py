"""The user's own models in a file: ``--models path/to/file.py:builder``.

They register with ``archs.register_model``, the decorator the suite's models use: the file is
imported (its decorators run, their models taking the source ``file``) and ``builder`` must be
one of the functions it registered. (Installed packages' models come through the
``archbench.models`` entry-point group: ``archs.registry``.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from . import registry

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
    registered = {e.builder: e.name for e in registry.registered_entries("file")}
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
    try:
        with registry.registering_as("file"):
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise registry.ModelSourceError(
            f"--models {token}: importing {path} failed: {type(exc).__name__}: {exc}"
        ) from None
    _LOADED_FILES[path] = module
    return module
