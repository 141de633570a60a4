"""Configs are frozen dataclasses with the paper's defaults; YAML files fill them.

Every field carries its meaning in ``metadata["help"]``; the CLI maps flags onto
the same fields, and every result records the resolved config (``asdict``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ProbeError

T = TypeVar("T")


def field(default: Any, help: str, **kw) -> Any:
    """A dataclass field with a help text (used by the CLI and the docs)."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ProbeError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise ProbeError(f"config {path} must be a mapping of field: value")
    return data


def build(cls: type[T], path: str | Path | None = None, **overrides: Any) -> T:
    """``cls`` from its defaults, then the YAML file at ``path``, then non-None ``overrides``."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(path)
        section = data.get(getattr(cls, "section", ""), None)
        if isinstance(section, dict):  # a shared file may hold one section per command
            data = section
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProbeError(f"config {path}: unknown field(s) {', '.join(unknown)} for {cls.__name__}; "
                             f"known: {', '.join(sorted(names))}")
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None and k in names})
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ProbeError(f"bad {cls.__name__}: {e}") from e


def asdict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def help_of(cls: type, name: str) -> str:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""
