"""A value as its declared type: how YAML values and flag text become each config field's type.

YAML 1.1 reads ``1e-6`` as a string and a flag is always text: :func:`convert` turns either into
the field's declared type (``int``, ``float``, ``bool``, ``str``, ``Path``, ``Literal[...]``,
``list[T]`` / ``tuple[T, ...]`` from a list or ``"a,b"``, ``X | None``) or raises a
:class:`ConfigError` naming the field, what it must be and what it got. ``2.5`` and ``"eight"``
are not integers; ``1e3`` is.
"""
from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["convert", "type_options"]


def type_options(tp: Any) -> tuple[list, bool]:
    """``int | None`` -> ([int], True)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = list(typing.get_args(tp))
        return [a for a in args if a is not type(None)], type(None) in args
    return [tp], tp is type(None)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (list, tuple) or tp in (list, tuple):
        return "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp)))


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            value = float(text)  # 1e3 is an integer; 2.5 and "eight" are not
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError


def _to_bool(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, bool):
        return value
    raise ValueError


def _number_or_text(tp: type, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    return tp(value.strip() if isinstance(value, str) and tp is float else value)


_SCALARS = {int: _to_int, bool: _to_bool, float: lambda v: _number_or_text(float, v),
            str: lambda v: _number_or_text(str, v),
            Path: lambda v: Path(v) if isinstance(v, (str, Path)) else _raise()}


def _raise() -> Any:
    raise ValueError


def _one(tp: Any, value: Any) -> Any:
    """``value`` as ``tp``, or ValueError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp in _SCALARS:
        return _SCALARS[tp](value)
    if origin is typing.Literal:
        for choice in typing.get_args(tp):
            try:
                if _one(type(choice), value) == choice:
                    return choice
            except ValueError:
                pass
        raise ValueError
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError
        args = typing.get_args(tp)
        elem = args[0] if args else Any
        items = [_one(elem, v) for v in value]
        return tuple(items) if (origin or tp) is tuple else items
    if (tp is dict or origin is dict) and isinstance(value, dict):
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ValueError


def convert(tp: Any, value: Any, name: str) -> Any:
    """``value`` converted to the declared type ``tp`` of the field ``name``; a ConfigError naming it."""
    options, nullable = type_options(tp)
    if value is None or (nullable and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if nullable:
            return None
        raise ConfigError(f"{name} must be {_type_name(options[0])}, got nothing (null)")
    for option in options:
        try:
            return _one(option, value)
        except (ValueError, TypeError):
            continue
    raise ConfigError(f"{name} must be {' or '.join(_type_name(o) for o in options)}, got {value!r}")
