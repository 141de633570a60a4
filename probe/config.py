"""Configs are frozen dataclasses with the paper's defaults; YAML files and flags fill them.

Every field carries its meaning in ``metadata["help"]`` (:func:`field`); the CLI generates its
flags from :func:`flag_specs`, and every result records the resolved config (``asdict``).

One precedence rule for every field: an explicit flag > the YAML file > the default.
Values are converted to each field's declared type wherever they come from (probe/convert.py:
YAML 1.1 reads ``1e-6`` as a string, it is a float here; ``"eight"`` for an int is a
:class:`ConfigError` naming the field and, for YAML, the line). A config nests others as fields (every probe
config has ``field: FieldConfig``): its values come as a mapping (``field: {tol: 1e-6}``), as
dotted keys (``field.tol``), or as flat keys the outer config does not have itself (``tol``).

A YAML file holds the fields at the top level, or one section per command (``run:``,
``dictionary:`` ... : the config's ``section``); a top-level ``field:`` mapping then applies
to every command that nests a FieldConfig.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from .convert import convert, type_options
from .errors import ConfigError, ProbeError, first_line

__all__ = ["field", "require_positive", "build", "apply", "read_yaml", "yaml_values", "flag_specs", "FlagSpec", "convert",
           "first_line", "asdict", "help_of", "merge"]

T = TypeVar("T")


def field(default: Any, help: str, *, choices: tuple | None = None, flag: str | None = None, **kw) -> Any:
    """A dataclass field with a help text; ``choices`` and ``flag`` (e.g. ``"--seeds"``) go to the CLI."""
    meta = {"help": help, **({"choices": tuple(choices)} if choices else {}), **({"flag": flag} if flag else {})}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def require_positive(cfg: Any, names: tuple[str, ...]) -> None:
    """Refuse ``cfg`` (a ConfigError naming the field) when one of the fields ``names`` (sizes, counts) is below 1."""
    for name in names:
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")


def asdict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def help_of(cls: type, name: str) -> str:
    return next((f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name), "")


def merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``, nested mappings merged key by key."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


@dataclasses.dataclass
class _Empty:
    """A config without fields (what a plain field nests)."""


def _nested(tp: Any) -> type | None:
    options, _ = type_options(tp)
    return options[0] if len(options) == 1 and _is_config(options[0]) else None


# -- values -> a config --------------------------------------------------------------------------
def _say(where: str, message: str, line: int | None = None) -> ConfigError:
    """``config FILE line N: message`` (just ``message`` for values from flags or code)."""
    return ConfigError(f"{where}{f' line {line}' if line else ''}: {message}" if where else message)


def _route(cls: type, values: dict, where: str) -> dict:
    """Dotted and flat keys of nested configs -> nested mappings; unknown keys are refused."""
    fields = _fields(cls)
    out: dict = {}
    for key, value in values.items():
        key = str(key)
        head, dot, rest = key.partition(".")
        inner = _nested(fields[head][1]) if dot and head in fields else None
        if inner is not None:
            out = merge(out, {head: _route(inner, {rest: value}, where)})
        elif key in fields:
            sub = _nested(fields[key][1])
            if sub is not None and isinstance(value, dict):
                value = _route(sub, value, where)
            out = merge(out, {key: value}) if isinstance(value, dict) and sub is not None else {**out, key: value}
        else:
            owner = next((n for n, (_, tp) in fields.items() if key in _fields(_nested(tp) or _Empty)), None)
            if owner is None:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(fields)}"
                raise _say(where, f"unknown setting {key!r} for {cls.__name__}{hint}")
            out = merge(out, {owner: {key: value}})
    return out


def _typed(cls: type, values: dict, where: str, lines: dict | None = None, prefix: str = "") -> dict:
    """Every value converted to its field's type (recursively); errors name the field and line."""
    fields = _fields(cls)
    out = {}
    for name, value in values.items():
        _, tp = fields[name]
        sub = _nested(tp)
        if sub is not None and isinstance(value, dict):
            out[name] = _typed(sub, value, where, lines, f"{prefix}{name}.")
            continue
        if sub is not None and not isinstance(value, sub):
            raise _say(where, f"{prefix}{name} must be a mapping of {sub.__name__} settings, got {value!r}")
        try:
            out[name] = value if sub is not None else convert(tp, value, prefix + name)
        except ConfigError as e:
            raise _say(where, str(e), (lines or {}).get(prefix + name) or (lines or {}).get(name)) from None
    return out


def apply(cls: type[T], base: T | None, values: dict, where: str = "", lines: dict | None = None) -> T:
    """``base`` (default: ``cls()``) with ``values`` (nested, dotted or flat keys) converted and applied;
    ``where`` (e.g. ``"config FILE"``) starts the error messages, ``lines`` (key -> line; the values
    of :func:`yaml_values` carry theirs) puts the line in them."""
    lines = lines if lines is not None else getattr(values, "lines", None)
    typed = _typed(cls, _route(cls, values, where), where, lines)
    return _construct(cls, base, typed, where)


class _Located(dict):
    """YAML values that know the line of each key (``.lines``, dotted key -> line)."""

    lines: dict


def _construct(cls: type[T], base: Any, typed: dict, where: str) -> T:
    changes = {}
    for name, value in typed.items():
        sub = _nested(_fields(cls)[name][1])
        if sub is not None and isinstance(value, dict):
            value = _construct(sub, getattr(base, name) if base is not None else None, value, where)
        changes[name] = value
    try:
        return dataclasses.replace(base, **changes) if base is not None else cls(**changes)
    except ConfigError as e:
        raise _say(where, first_line(e)) from e
    except (TypeError, ValueError, ProbeError) as e:  # configs that still raise ValueError or ProbeError
        raise _say(where, f"bad {cls.__name__}: {first_line(e)}") from e


# -- YAML --------------------------------------------------------------------------------------
def _key_lines(node: Any, prefix: str = "", out: dict | None = None) -> dict:
    """dotted key -> 1-based line of each key in a composed YAML mapping."""
    import yaml

    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = f"{prefix}{key.value}"
            out.setdefault(name, key.start_mark.line + 1)
            _key_lines(value, name + ".", out)
    return out


def read_yaml(path: str | Path, with_lines: bool = False) -> Any:
    """A YAML mapping from ``path`` (with ``{dotted key: line}`` when ``with_lines``); syntax errors name the line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text)) if with_lines else {}
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"config {path}{where}: not valid YAML ({e.problem or e.context})") from e
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"config {path} cannot be read as YAML: {first_line(e)}") from e
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of field: value, got {type(data).__name__}")
    return (data, lines) if with_lines else data


def yaml_values(cls: type, path: str | Path, section: str | None = None) -> tuple[dict, dict]:
    """The values for ``cls`` in the YAML file and their lines: its ``section`` (default ``cls.section``)
    or the top level; a top-level ``field:`` mapping is shared by every config that nests a FieldConfig."""
    data, lines = read_yaml(path, with_lines=True)
    section = section if section is not None else getattr(cls, "section", None)
    fields = _fields(cls)
    sections = {k for k, v in data.items() if isinstance(v, dict) and k not in fields}
    shared = data.get("field") if isinstance(data.get("field"), dict) and "field" in fields else None
    if section and isinstance(data.get(section), dict) and section not in fields:
        values, prefix = data[section], section + "."
    elif sections and section and sections != {"field"}:
        raise ConfigError(f"config {path} has no '{section}:' section for {cls.__name__} "
                          f"(sections: {', '.join(sorted(sections))})")
    elif len(sections) == 1 and not section:
        (name,) = sections
        values, prefix = data[name], name + "."
    else:
        values, prefix = data, ""
    if shared is not None and values is not data:
        values = {**values, "field": merge(shared, values.get("field") or {})}
    lines = {k[len(prefix):]: v for k, v in lines.items() if k.startswith(prefix)} | (
        {k: v for k, v in lines.items() if k.startswith("field.")} if shared is not None else {})
    located = _Located(values)
    located.lines = lines
    return located, lines


# -- the one entry point -----------------------------------------------------------------------
def build(cls: type[T], path: str | Path | None = None, section: str | None = None, **overrides: Any) -> T:
    """``cls`` from its defaults, then the YAML file at ``path``, then the non-None ``overrides``
    (flat, dotted or nested keys: explicit flags). Every value is converted to its field's type."""
    typed: dict = {}
    where = f"config {path}" if path is not None else ""
    if path is not None:
        values, lines = yaml_values(cls, path, section)
        typed = _typed(cls, _route(cls, values, where), where, lines)
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        typed = merge(typed, _typed(cls, _route(cls, given, ""), ""))
    return _construct(cls, None, typed, where)


# -- flags -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """One command-line flag of a config field (nested fields included)."""

    flag: str                 #: "--max-steps" (``metadata["flag"]`` overrides, e.g. "--seeds")
    path: tuple[str, ...]     #: ("field", "max_steps"): where the value goes (``build(**{".".join(path): v})``)
    type: Any                 #: the declared type, e.g. ``int | None``
    kind: str                 #: "bool" (--x / --no-x), "list" (comma separated) or "value"
    help: str
    choices: tuple | None
    default: Any              #: the dataclass default (flags themselves default to None: not given)

    @property
    def dest(self) -> str:
        return ".".join(self.path)

    def parse(self, text: str) -> Any:
        """The flag's text as the field's type; a ConfigError naming the flag and the field."""
        try:
            value = convert(self.type, text, self.dest)
        except ConfigError as e:
            raise ConfigError(f"{self.flag}: {first_line(e)}") from None
        if self.choices is not None and value not in self.choices and value is not None:
            raise ConfigError(f"{self.flag}: {self.dest} must be one of {', '.join(map(str, self.choices))}, "
                              f"got {text!r}")
        return value

    def argparse_type(self):
        """``parse`` for ``argparse`` (which reports ArgumentTypeError as ``argument --x: message``)."""
        import argparse

        def parse(text: str) -> Any:
            try:
                return self.parse(text)
            except ConfigError as e:
                raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None

        parse.__name__ = self.dest
        return parse


def flag_specs(cls: type, prefix: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> Iterator[FlagSpec]:
    """One FlagSpec per field of ``cls`` and of its nested configs (outer names win a clash: the
    nested one becomes ``--<outer>-<name>``)."""
    fields = _fields(cls)
    outer = set(fields)
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else
                         f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
                for f, _ in fields.values()}
    for name, (f, tp) in fields.items():
        if name in skip:
            continue
        sub = _nested(tp)
        if sub is not None:
            for spec in flag_specs(sub, (*prefix, name), skip):
                if spec.path[-1] in outer and not f.metadata.get("flag"):
                    spec = dataclasses.replace(spec, flag=f"--{name}-{spec.flag[2:]}")
                yield spec
            continue
        options, _ = type_options(tp)
        base = options[0] if len(options) == 1 else tp
        origin = typing.get_origin(base)
        choices = f.metadata.get("choices") or (typing.get_args(base) if origin is typing.Literal else None)
        kind = "bool" if base is bool else "list" if origin in (list, tuple) or base in (list, tuple) else "value"
        yield FlagSpec(flag=f.metadata.get("flag") or "--" + name.replace("_", "-"), path=(*prefix, name), type=tp,
                       kind=kind, help=f.metadata.get("help", ""), choices=tuple(choices) if choices else None,
                       default=defaults[name])
