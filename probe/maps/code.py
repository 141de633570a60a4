"""Models built by your own code: ``FILE.py:factory`` or ``package.module:factory``.

The factory is called with the ``model_args`` (``--model-arg key=value``) and may return

- a :class:`LatentMap` (e.g. from :func:`probe.wrap`): used as it is;
- an ``nn.Module`` with ``encode`` and ``decode`` methods: the latent shape is found by
  encoding one blank image, whose size and channels come from the module's ``image_size`` /
  ``image_channels`` attributes, else from ``image_size`` / ``channels`` (``--image-size`` /
  ``--channels``), else (channels only) by trying 3, then 1; a ``family`` or ``field_defaults``
  attribute sets the iteration settings (see :func:`probe.wrap`);
- an ``(encoder, decoder)`` pair of callables, or a module with ``encoder`` / ``decoder``
  submodules: the same, with the pair as E and D.

An encoder that returns a tuple (a VAE's ``(mean, logvar)``) is read as its first element.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ProbeError
from .base import LatentMap
from .wrap import wrap

_MODULE_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*$")


def parse_code_spec(spec: str) -> tuple[str, str, bool] | None:
    """``(file or module, factory, is_file)`` for a code spec, else None."""
    target, sep, factory = str(spec).rpartition(":")
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*", factory):
        return None
    if target.endswith(".py"):
        return target, factory, True
    if _MODULE_SPEC.match(spec):
        return target, factory, False
    return None


def parse_model_args(items) -> dict:
    """``["k=v", ...]`` (the ``--model-arg`` flags) -> dict; values are read as YAML scalars
    (``4`` int, ``0.5`` float, ``true`` bool, ``null`` None, anything else a string)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip().isidentifier():
            raise ProbeError(f"--model-arg takes key=value with a Python name as key, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}".rstrip(": ")


def _import_file(path: Path):
    if not path.is_file():
        raise ProbeError(f"no such file: {path} (a model spec FILE.py:factory names a Python file)")
    name = f"probe_user_{abs(hash(str(path.resolve())))}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ProbeError(f"{path} cannot be imported as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - user code may raise anything
        raise ProbeError(f"importing {path} failed: {_one_line(e)}") from e
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _import_module(name: str, factory: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise ProbeError(f"no module named {e.name!r} (from the model spec {name}:{factory}; is it installed, "
                         f"or did you mean a file, path/to/{name.split('.')[-1]}.py:{factory}?)") from e
    except Exception as e:  # noqa: BLE001
        raise ProbeError(f"importing {name} failed: {_one_line(e)}") from e


def load_code(spec: str, *, model_args: dict | None = None, image_size: int | None = None,
              channels: int | None = None, **options) -> LatentMap:
    """Import the file or module of ``spec``, call its factory with ``model_args``, and wrap the result."""
    parsed = parse_code_spec(spec)
    if parsed is None:
        raise ProbeError(f"{spec!r} is not FILE.py:factory or package.module:factory")
    target, factory, is_file = parsed
    module = _import_file(Path(target).expanduser()) if is_file else _import_module(target, factory)
    fn = getattr(module, factory, None)
    if not callable(fn):
        names = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ProbeError(f"{target} has no function {factory!r}" + (f"; it defines {', '.join(names)}" if names else ""))
    try:
        obj = fn(**(model_args or {}))
    except Exception as e:  # noqa: BLE001 - the factory is user code
        raise ProbeError(f"{spec}({', '.join(f'{k}={v!r}' for k, v in (model_args or {}).items())}) raised "
                         f"{_one_line(e)}") from e
    return as_latent_map(obj, what=spec, image_size=image_size, channels=channels, **options)


def as_latent_map(obj: Any, *, what: str, image_size: int | None = None, channels: int | None = None,
                  **options) -> LatentMap:
    """A factory's result as a LatentMap (see the module docstring for what it may be)."""
    if isinstance(obj, LatentMap):
        return obj
    if options:
        raise ProbeError(f"{what}: options {', '.join(sorted(options))} do not apply to a model from code")
    owner: nn.Module | None = None
    enc: Any
    dec: Any
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(callable(o) for o in obj):
        enc, dec = obj[0], obj[1]
        modules = [m for m in obj if isinstance(m, nn.Module)]
    elif isinstance(obj, nn.Module) and callable(getattr(obj, "encode", None)) and callable(getattr(obj, "decode", None)):
        enc, dec, owner = obj.encode, obj.decode, obj
        modules = [obj]
    elif isinstance(obj, nn.Module) and isinstance(getattr(obj, "encoder", None), nn.Module) \
            and isinstance(getattr(obj, "decoder", None), nn.Module):
        enc, dec, owner = obj.encoder, obj.decoder, obj
        modules = [obj]
    else:
        raise ProbeError(f"{what} returned {type(obj).__name__}; return a LatentMap (probe.wrap), an nn.Module "
                         f"with encode/decode methods, or an (encoder, decoder) pair")
    for m in modules:
        m.eval()
    attr = (lambda key: getattr(owner, key, None)) if owner is not None else (lambda key: None)
    size = attr("image_size") or image_size
    chans = attr("image_channels") or channels
    if size is None:
        raise ProbeError(f"{what}: the model has no image_size attribute; give the size it takes "
                         f"(--image-size N, or image_size=N)")
    params = [p for m in modules for p in m.parameters()]
    return wrap(enc, dec, None, image_size=int(size), image_channels=chans, modules=modules,
                family=attr("family"), field_defaults=attr("field_defaults"),
                name=f"{type(owner if owner is not None else enc).__name__} ({what})",
                device=params[0].device if params else "cpu", dtype=params[0].dtype if params else torch.float32)
