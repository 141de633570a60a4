"""``probe.load(spec)``: any local directory, Hub id, TAESD pair or bundled name -> LatentMap.

There is no allow-list of model names: a spec is resolved by what it *is*.

- ``builtin:<name>``              a model shipped inside the package (``probe/builtin/<name>``)
- ``open_clip:<arch>/<pretrained>`` an open_clip image encoder (needs a surrogate decoder)
- a local directory               dispatched on its files (see :func:`load_dir`)
- ``owner/name`` Hub id           fetched with huggingface_hub (fails fast when offline)
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

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


def _call(target: str, *args, **kwargs):
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)(*args, **kwargs)


def builtin_names() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / MANIFEST).is_file()) if BUILTIN_DIR.is_dir() else []


def load(spec: str | Path | LatentMap, *, device: str | None = None, dtype: str | None = None, **options) -> LatentMap:
    """Resolve ``spec`` to a :class:`LatentMap` on ``device`` (default CPU) in ``dtype``.

    Options go to the adapter (e.g. ``sample=True`` for a VAE posterior sample,
    ``subfolder="vae"``, ``variant="taef1"``).
    """
    if isinstance(spec, LatentMap):
        m = spec
    else:
        m = _resolve(str(spec), **options)
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


def _resolve(spec: str, **options) -> LatentMap:
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        folder = BUILTIN_DIR / name
        if not (folder / MANIFEST).is_file():
            raise ProbeError(f"no bundled model {name!r}; bundled: {', '.join(builtin_names()) or 'none'}")
        return load_dir(folder, **options)
    if spec.startswith("open_clip:"):
        return _call("probe.maps.clip:load_open_clip", spec.split(":", 1)[1], **options)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ProbeError(f"{spec} is a file; give the directory that holds the model")
        return load_dir(path, **options)
    if _looks_like_hub_id(spec):
        return _call("probe.maps.hub:load_hub", spec, **options)
    raise ProbeError(f"unknown model {spec!r}: not a local directory, not a Hub id (owner/name), "
                     f"not builtin:<name> (bundled: {', '.join(builtin_names()) or 'none'})")


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))


def load_dir(folder: str | Path, **options) -> LatentMap:
    """Dispatch a local directory on what it holds."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        adapter = meta.get("adapter")
        if adapter not in SAVED_ADAPTERS:
            raise ProbeError(f"{manifest}: unknown adapter {adapter!r}; known: {', '.join(SAVED_ADAPTERS)}")
        return _call(SAVED_ADAPTERS[adapter], folder, meta, **options)
    from .taesd import find_taesd_pair

    if find_taesd_pair(folder) is not None:
        return _call("probe.maps.taesd:load_taesd", folder, **options)
    if (folder / "config.json").is_file() or (folder / "vae" / "config.json").is_file():
        return _call("probe.maps.diffusers_ae:load_diffusers", folder, **options)
    raise ProbeError(f"{folder} holds no model: expected a diffusers autoencoder (config.json), a pipeline with "
                     f"vae/config.json, a TAESD pair (<name>_encoder.pth + <name>_decoder.pth) or {MANIFEST}")
