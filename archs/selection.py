"""What a user typed, resolved to registered models: ``all``, names, globs and families, of the
suite's models or of a zoo, and builders in files (imported here, so their models register)."""

from __future__ import annotations

import fnmatch

from .registry import (
    ModelSource,
    ModelSourceError,
    UnknownModelError,
    is_registered,
    list_models,
    list_models_in_family,
    load_entry_points,
    natural_key,
    split_prefix,
    suggest,
    zoo_entry,
)
from .user_models import is_file_spec, load_file_builder


def select_models(spec: str | list[str], max_glob: int | None = None) -> list[str]:
    """Resolve what a user typed: ``all``, names, globs (``resnet*``) and family names, of the
    registered models or of a zoo (``tv:mobilenet*``, ``timm:convnext_*``, ``tv:resnet``),
    and builders in files (``path/to/file.py:builder``).

    ``spec`` is a comma-separated string or a list of such tokens. The result keeps the order
    the user gave, without duplicates. A token that matches nothing raises UnknownModelError;
    a glob matching more than ``max_glob`` models, ModelSourceError.
    """
    tokens = spec.split(",") if isinstance(spec, str) else list(spec)
    tokens = [t.strip() for t in tokens if t.strip()]
    if not tokens:
        raise UnknownModelError("", [])
    load_entry_points()
    chosen: list[str] = []
    for token in tokens:
        matches = _matches(token)
        if not matches:
            raise UnknownModelError(token, suggest(token))
        if max_glob is not None and len(matches) > max_glob and any(c in token for c in "*?["):
            raise ModelSourceError(
                f"'{token}' matches {len(matches)} models (more than {max_glob}): narrow the "
                "pattern, or add --yes to run them all"
            )
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def _matches(token: str) -> list[str]:
    if is_file_spec(token):
        return [load_file_builder(token)]
    if token == "all":
        return list_models()
    if is_registered(token):
        return [token]
    source, rest = split_prefix(token)
    if source is None:
        if any(ch in token for ch in "*?["):
            return list_models(include=token)
        return list_models_in_family(token)
    names = source.names()
    if any(ch in rest for ch in "*?["):
        found = [n for n in names if fnmatch.fnmatchcase(n, rest)]
    elif rest in names:
        found = [rest]
    else:  # a family of the zoo's
        found = [n for n in names if _family_of(source, n) == rest]
    return [f"{source.prefix}:{n}" for n in sorted(found, key=natural_key)]


def _family_of(source: ModelSource, name: str) -> str | None:
    entry = zoo_entry(f"{source.prefix}:{name}")
    return entry.family if entry else None
