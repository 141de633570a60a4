"""What every probe shares: images in, latents out (batched), folder names, and whose attractors these are."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, ProbeError

__all__ = ["as_float_images", "encode_images", "decode_latents", "slug", "model_of", "check_same_model", "nest_field",
           "search_or_reuse", "SEARCH_SETTINGS",
           "unit_columns", "resolution_of"]


def as_float_images(images) -> Tensor:
    """An ImageSet or a ``[N, C, H, W]`` tensor (uint8, or float in [0, 1]) as float in [0, 1]."""
    x = images.images if hasattr(images, "images") else images
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ProbeError(f"images must be an ImageSet or a [N, C, H, W] tensor, got {type(x).__name__}")
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def encode_images(map, images, batch_size: int = 64) -> Tensor:
    """Latents ``[N, *latent]`` (float32, CPU) of every image, in batches, without gradients."""
    x = as_float_images(images)
    if not len(x):
        raise ProbeError("no images to encode")
    return map.encode_batched(x, batch_size=batch_size).float()


def decode_latents(map, z: Tensor, batch_size: int = 64, clamp: bool = True) -> Tensor:
    """Images ``[N, C, H, W]`` (float32, CPU), clamped to [0, 1] as every viewer shows them (unless not ``clamp``)."""
    if not len(z):
        return torch.zeros(0)
    x = map.decode_batched(z.to(map.device, map.dtype), batch_size=batch_size).float()
    return x.clamp(0, 1) if clamp else x


def unit_columns(basis: Tensor) -> Tensor:
    # atoms are chosen by correlation with the residual: unequal norms would favour long atoms
    return basis / basis.norm(dim=0, keepdim=True).clamp_min(1e-12)


def resolution_of(map, resolution: int | None) -> int:
    """The image size a probe runs at: the map's own when it has one (another is refused)."""
    if map.image_size is not None:
        if resolution not in (None, map.image_size):
            raise ProbeError(f"{map.name} takes {map.image_size} px images only; drop --resolution {resolution}")
        return map.image_size
    return resolution or map.default_resolution()


def slug(spec: str) -> str:
    """A folder name for a model or data spec; paths get their name plus a short hash of the full path."""
    spec = str(spec)
    if spec.startswith("builtin:"):
        spec = spec[len("builtin:"):]
    elif "/" in spec or "\\" in spec:
        digest = hashlib.sha1(spec.encode()).hexdigest()[:8]
        spec = f"{Path(spec.rstrip('/')).name}-{digest}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_") or "model"


def model_of(map) -> dict:
    """The fingerprint of ``map`` that results record (``map.fingerprint()``, else ``describe()``)."""
    from ..result import model_fingerprint

    return model_fingerprint(map) or {}


def resolved_config(cfg: Any, map, field: Any = None) -> dict:
    """A probe's config as its results record it: its field settings (``field``, else ``cfg.field``)
    resolved against ``map``'s family defaults."""
    from ..config import asdict

    return {**asdict(cfg), "field": asdict((field or cfg.field).resolve(map))}


def check_same_model(aset: Any, map, *, allow: bool = False, what: str = "attractor set") -> str | None:
    """Refuse a set made by another model (one line) unless ``allow``; then say whose it is.

    Returns None when the set is the map's own, else a note naming the set's model.
    """
    from ..result import same_model

    was = getattr(aset, "model", None) or getattr(aset, "map", None) or {}
    if callable(was):
        was = was()
    now = model_of(map)
    if not isinstance(was, dict) or not was:
        return None  # a set that records no model (built in Python) cannot be checked
    if "weights_sha256" not in was:  # a set saved before fingerprints: what describe() recorded
        same = _describe_match(was, map.describe())
    elif map.n_parameters() > 0:  # the weights say it; the name may hold a path spelled another way
        same = was["weights_sha256"] == now.get("weights_sha256") and was.get("latent_shape") == now.get("latent_shape")
    else:  # parameter-free maps (probe.wrap of functions) all hash alike: the whole fingerprint must match
        same = same_model(was, now)
    if same:
        return None
    whose = was.get("name") or was.get("class") or "another model"
    if not allow:
        raise ProbeError(f"the {what} was made by {whose!r}, not by {map.name!r}; give the model's own set, or "
                         f"--allow-other-model to use it anyway")
    return f"the {what} was made by another model ({whose}) and used with {map.name} on purpose"


def _describe_match(was: dict, now: dict) -> bool:
    # sets saved before fingerprints: compare what describe() recorded, never the name (it holds a path)
    keys = ("class", "parameters", "image_channels", "image_size", "config", "variant", "arch", "pretrained")
    from ..io import to_jsonable

    return all(to_jsonable(was[k]) == to_jsonable(now[k]) for k in keys if k in was and k in now)


def nest_field(cfg: Any) -> None:
    """In a probe config's ``__post_init__``: a ``field`` given as a dict becomes a FieldConfig."""
    from ..field.config import FieldConfig

    value = cfg.field
    if isinstance(value, dict):
        try:
            value = FieldConfig(**value)
        except TypeError as e:
            raise ConfigError(f"field: {e}") from e
        object.__setattr__(cfg, "field", value)
    if not isinstance(value, FieldConfig):
        raise ConfigError(f"field must be a FieldConfig (or a mapping of its settings), got {type(value).__name__}")


#: FieldConfig entries that change which attractors are found (not how fast)
SEARCH_SETTINGS = ("n_seeds", "seed", "seed_dist", "resolution", "tol", "rtol", "max_steps", "max_period", "merge",
                   "merge_threshold", "solver", "dtype")


def search_or_reuse(map, cfg, folder: Path | None, *, seeds: Tensor | None = None, data_latents: Tensor | None = None,
                    progress: bool = False, overwrite: bool = False, log=None, what: str = "attractors"):
    """The AttractorSet of ``map`` under FieldConfig ``cfg``: the finished one in ``folder`` when it was
    found with the same settings, else a (checkpointed, resumable) search into ``folder``."""
    import dataclasses

    from ..field import AttractorSet, find_attractors

    if folder is not None and (Path(folder) / "meta.json").is_file():
        aset = AttractorSet.load(folder)
        want = dataclasses.asdict(cfg.resolve(map))
        if seeds is not None:
            want["n_seeds"] = len(seeds)
        diff = [k for k in SEARCH_SETTINGS if k in aset.config and aset.config.get(k) != want.get(k)]
        try:
            check_same_model(aset, map, what=f"{what} in {folder}")
        except ProbeError:
            diff.append("model")
        if not diff:
            if log:
                log(f"{what}: reusing {folder}")
            return aset
        if not overwrite:
            raise ProbeError(f"{folder} holds {what} found with other settings ({', '.join(diff)}); use another "
                             f"--out, or --overwrite to replace them")
    return find_attractors(map, cfg, seeds=seeds, data_latents=data_latents, out=folder, progress=progress)
