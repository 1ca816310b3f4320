"""Reading settings documents and explaining why one is invalid, shared by the service's settings
(``detector.config``) and the gateway's (``detector.gateway.config``): YAML files read as mappings, and pydantic
errors turned into one line per key with its dotted path, a did-you-mean for an unknown key and where the value
came from. Imports nothing heavy, so the gateway stays a light process."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(Exception):
    """Settings are missing, unknown or invalid; the message names the key."""


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """The YAML mapping in ``path`` (empty file: ``{}``); ``ConfigError`` naming ``what`` and the file otherwise."""
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {path} must hold a mapping, not {type(loaded).__name__}")
    return loaded


def _origin_of(loc: Sequence[str], origins: Mapping[tuple[str, ...], str]) -> str:
    for end in range(len(loc), 0, -1):
        if tuple(loc[:end]) in origins:
            return origins[tuple(loc[:end])]
    below = [origin for key, origin in origins.items() if key[: len(loc)] == tuple(loc)]
    return below[-1] if below else "embedded defaults"


def _suggest(loc: Sequence[int | str], root: type[BaseModel]) -> str:
    """``; did you mean 'max_batch'?`` for a mistyped key, from the settings class that the key's parent maps to."""
    model: Any = root
    in_container = False  # the last key named a list or a mapping: this part is an index or a mapping key
    for part in loc[:-1]:
        if in_container:
            in_container = False
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return ""
        annotation = fields[part].annotation
        candidates = [a for a in (annotation, *typing.get_args(annotation)) if hasattr(a, "model_fields")]
        if not candidates:
            return ""
        model = candidates[0]
        in_container = typing.get_origin(annotation) in (list, dict)
    fields = getattr(model, "model_fields", None)
    if not fields:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(fields), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _without_kind_tags(loc: Sequence[int | str]) -> list[str]:
    """The key path without pydantic's union tags: ``rules.sources.cam.zones``, not ``...cam.fixed.zones``."""
    parts = [str(p) for p in loc]
    return [
        part
        for i, part in enumerate(parts)
        if not (
            part in ("fixed", "moving")
            and i >= 1
            and (parts[i - 1] == "default_source" or parts[i - 2 : i - 1] == ["sources"])
        )
    ]


def describe_invalid(
    exc: ValidationError, root: type[BaseModel], origins: Mapping[tuple[str, ...], str] | None = None
) -> str:
    """Each invalid key of a ``root`` document on a line: its dotted path, what is wrong (a did-you-mean for an
    unknown key) and, with ``origins``, where the value came from (file, environment, --set)."""
    lines = []
    for err in exc.errors():
        parts = _without_kind_tags(err["loc"])
        where = ".".join(parts) or "config"
        source = f" [from {_origin_of(parts, origins or {})}]"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown setting{_suggest(parts, root)}{source}")
        else:
            lines.append(f"{where}: {err['msg']} (got {err.get('input')!r}){source}")
    return "invalid settings:\n  " + "\n  ".join(lines)
