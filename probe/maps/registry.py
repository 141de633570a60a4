"""``probe.load(spec)``: a model spec -> LatentMap, through a registry of adapters.

There is no allow-list of model names: a spec is resolved by what it *is*. Each model family
is an adapter ``(name, sniff, load)``: ``sniff(spec) -> bool`` says whether the spec is its
kind, ``load(spec, **options) -> LatentMap`` loads it. The built-in families register here;
another package adds one with :func:`register_adapter`, or without importing probe through the
``probe.adapters`` entry-point group (the entry point names an object with ``sniff`` and
``load``, e.g. a module, or a function returning such an object). Adapters are asked in order
of ``priority``, lower first: ``builtin:`` / ``open_clip:`` at 0, registered ones at 50, then
code specs (60), files and folders (100) and Hub ids (110). Built-in specs:

- ``builtin:<name>``                 a model shipped inside the package (``probe/builtin/<name>``)
- ``open_clip:<arch>/<pretrained>``  an open_clip image encoder (needs a surrogate decoder)
- ``FILE.py:factory``, ``package.module:factory``  a model built by your code (:mod:`.code`)
- a local directory                  ``probe_map.json``, a TAESD pair, or a diffusers ``config.json``
- ``owner/name`` Hub id              fetched with huggingface_hub (fails fast when offline)
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProbeError
from .base import LatentMap

#: Adapters that save themselves in probe's own format (``probe_map.json`` with
#: ``{"adapter": key}``) and the module:function that loads such a folder.
SAVED_ADAPTERS = {
    "convae": "probe.maps.convae:load_saved",
    "clip_surrogate": "probe.maps.clip:load_saved",
}
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin"
MANIFEST = "probe_map.json"
ENTRY_POINT_GROUP = "probe.adapters"
WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".pkl")


@dataclass(frozen=True)
class Adapter:
    """One model family: ``sniff(spec) -> bool`` and ``load(spec, **options) -> LatentMap``."""

    name: str
    sniff: Callable[[str], bool]
    load: Callable[..., Any]
    priority: int = 50


_ADAPTERS: dict[str, Adapter] = {}
_entry_points_read = False


def register_adapter(name: str, sniff: Callable[[str], bool], load: Callable[..., Any], *, priority: int = 50,
                     replace: bool = False) -> Adapter:
    """Add a model family to :func:`load`; ``replace=True`` overrides an adapter of the same name."""
    if not isinstance(name, str) or not name or not callable(sniff) or not callable(load):
        raise ProbeError(f"register_adapter needs a name and two callables (sniff, load), got {name!r}")
    if name in _ADAPTERS and not replace:
        raise ProbeError(f"an adapter named {name!r} is already registered (pass replace=True to override it)")
    _ADAPTERS[name] = Adapter(name, sniff, load, int(priority))
    return _ADAPTERS[name]


def adapters() -> list[Adapter]:
    """Every registered adapter (entry points included), in the order :func:`load` asks them."""
    _read_entry_points()
    return sorted(_ADAPTERS.values(), key=lambda a: a.priority)


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _ADAPTERS:
            continue
        try:
            obj = ep.load()
            if not hasattr(obj, "sniff") and callable(obj):
                obj = obj()
            register_adapter(ep.name, getattr(obj, "sniff"), getattr(obj, "load"),  # noqa: B009 - any object
                             priority=getattr(obj, "priority", 50))
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not break the built-in families
            _ADAPTERS[ep.name] = Adapter(ep.name, lambda s: False, _broken(ep, e), 1000)


def _broken(ep, error: Exception):
    def load(*a, **k):
        raise ProbeError(f"adapter {ep.name!r} ({ep.value}, entry point {ENTRY_POINT_GROUP}) failed to load: "
                         f"{type(error).__name__}: {error}")
    return load


def _call(target: str, *args, **kwargs):
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)(*args, **kwargs)


def builtin_names() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / MANIFEST).is_file()) if BUILTIN_DIR.is_dir() else []


def load(spec: str | Path | LatentMap | Any, *, model_args: dict | None = None, image_size: int | None = None,
         channels: int | None = None, device: str | None = None, dtype: str | None = None, **options) -> LatentMap:
    """Resolve ``spec`` to a :class:`LatentMap` on ``device`` (default CPU) in ``dtype``.

    ``model_args`` are keyword arguments for a ``FILE.py:factory`` spec; ``image_size`` /
    ``channels`` say what a model from code takes when it does not say so itself. Other options
    go to the adapter (e.g. ``sample=True`` for a VAE posterior sample, ``subfolder="vae"``,
    ``variant="taef1"``). An nn.Module with encode/decode, or an (encoder, decoder) pair, is
    wrapped as a factory's result would be.
    """
    code_opts = {k: v for k, v in (("model_args", model_args), ("image_size", image_size), ("channels", channels))
                 if v is not None}
    if isinstance(spec, LatentMap):
        m = spec
    elif not isinstance(spec, (str, Path)):
        from .code import as_latent_map

        m = as_latent_map(spec, what=type(spec).__name__, image_size=image_size, channels=channels, **options)
    else:
        m = _resolve(str(spec), code_opts, **options)
    if device is not None or dtype is not None:
        m = m.to(device=device or m.device, dtype=_dtype(dtype) if dtype else m.dtype)
    return m.eval()


def _dtype(name):
    import torch

    if isinstance(name, torch.dtype):
        return name
    table = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp64": torch.float64, "float64": torch.float64}
    if name not in table:
        raise ProbeError(f"unknown dtype {name!r}; use one of {', '.join(table)}")
    return table[name]


def _resolve(spec: str, code_opts: dict, **options) -> LatentMap:
    for a in adapters():
        try:
            claimed = bool(a.sniff(spec))
        except Exception as e:  # noqa: BLE001 - a plug-in's sniff is foreign code
            raise ProbeError(f"adapter {a.name!r} failed on {spec!r}: {type(e).__name__}: {e}") from e
        if claimed:
            if a.name == "code":
                return a.load(spec, **code_opts, **options)
            # other families: model_args are the adapter's options (e.g. subfolder=vae); a size or
            # channel count that contradicts what the model declares is an error, not ignored
            m = a.load(spec, **{**(code_opts.get("model_args") or {}), **options})
            for key, attr in (("image_size", "image_size"), ("channels", "image_channels")):
                want, has = code_opts.get(key), getattr(m, attr, None)
                if want is not None and has is not None and int(want) != int(has):
                    raise ProbeError(f"{spec} takes {attr.replace('_', ' ')} {has}, not {want}; drop --{key.replace('_', '-')}")
            return m
    raise ProbeError(f"unknown model {spec!r}: not FILE.py:factory or package.module:factory, not a local "
                     f"directory, not a Hub id (owner/name), not builtin:<name> (bundled: "
                     f"{', '.join(builtin_names()) or 'none'})")


# -- the built-in families ---------------------------------------------------------
def _load_builtin(spec: str, **options) -> LatentMap:
    name = spec.split(":", 1)[1]
    folder = BUILTIN_DIR / name
    if not (folder / MANIFEST).is_file():
        raise ProbeError(f"no bundled model {name!r}; bundled: {', '.join(builtin_names()) or 'none'}")
    return load_dir(folder, **options)


def _is_file(spec: str) -> bool:
    p = Path(spec).expanduser()
    return p.exists() and not p.is_dir()


def _load_file(spec: str, **options) -> LatentMap:
    p = Path(spec).expanduser()
    if p.suffix == ".py":
        raise ProbeError(f"{spec} is Python code: name the function that builds the model, {spec}:FACTORY")
    if p.suffix.lower() in WEIGHT_SUFFIXES:
        raise ProbeError(f"{spec} holds weights, not a model: write a function that builds the model and loads "
                         f"them (def build(): m = MyAE(); m.load_state_dict(torch.load('{p.name}')); return m) "
                         f"in a .py file and give FILE.py:build")
    raise ProbeError(f"{spec} is a file; give the directory that holds the model, or FILE.py:factory")


def _is_dir(spec: str) -> bool:
    return Path(spec).expanduser().is_dir()


def _is_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and not Path(spec).exists()


def _is_code(spec: str) -> bool:
    from .code import parse_code_spec

    return parse_code_spec(spec) is not None


def _load_code(spec: str, **options) -> LatentMap:
    from .code import load_code

    return load_code(spec, **options)


register_adapter("builtin", lambda s: s.startswith("builtin:"), _load_builtin, priority=0)
register_adapter("open_clip", lambda s: s.startswith("open_clip:"),
                 lambda s, **o: _call("probe.maps.clip:load_open_clip", s.split(":", 1)[1], **o), priority=0)
register_adapter("code", _is_code, _load_code, priority=60)  # after plug-ins: "pkg.mod:fn" may be their scheme
register_adapter("file", _is_file, _load_file, priority=100)
register_adapter("folder", _is_dir, lambda s, **o: load_dir(Path(s).expanduser(), **o), priority=100)
register_adapter("hub", _is_hub_id, lambda s, **o: _call("probe.maps.hub:load_hub", s, **o), priority=110)


def load_dir(folder: str | Path, **options) -> LatentMap:
    """Dispatch a local directory on what it holds."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        adapter = meta.get("adapter")
        if adapter in SAVED_ADAPTERS:
            return _call(SAVED_ADAPTERS[adapter], folder, meta, **options)
        if adapter in _ADAPTERS or (adapter and adapter in {a.name for a in adapters()}):
            return _ADAPTERS[adapter].load(str(folder), **options)
        raise ProbeError(f"{manifest}: unknown adapter {adapter!r}; known: "
                         f"{', '.join([*SAVED_ADAPTERS, *_ADAPTERS])}")
    from .taesd import find_taesd_pair

    if find_taesd_pair(folder) is not None:
        return _call("probe.maps.taesd:load_taesd", folder, **options)
    if (folder / "config.json").is_file() or (folder / "vae" / "config.json").is_file():
        return _call("probe.maps.diffusers_ae:load_diffusers", folder, **options)
    raise ProbeError(f"{folder} holds no model: expected a diffusers autoencoder (config.json), a pipeline with "
                     f"vae/config.json, a TAESD pair (<name>_encoder.pth + <name>_decoder.pth), {MANIFEST}, "
                     f"or give FILE.py:factory for a model built by code")
