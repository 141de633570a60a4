"""The one module that talks to the Hugging Face Hub: offline switches, reachability, and image
sets through HF ``datasets.load_dataset`` (Hub names, local parquet / imagefolder data).

Models (probe/maps/hub.py, the open_clip weights) and datasets read the same switches here:
``HF_HUB_OFFLINE`` (and the libraries' own ``HF_DATASETS_OFFLINE`` / ``TRANSFORMERS_OFFLINE``),
read when asked, not at import; ``HF_ENDPOINT``. Offline or unreachable, a name that is not in the
local cache fails at once, in one line. No library's constants are changed: a dataset cached in
the Hub cache is read from its local snapshot folder instead.

The paper's other held-out sets (Laion2B, EuroSAT, CIFAR100, PatchCamelyon, Places365) exist
only on the Hub.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ProbeError
from .folder import stack_pictures
from .imageset import ImageSet, subset_indices

IMAGE_COLUMNS = ("image", "img", "images", "picture", "photo", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label", "class", "target")
TRUE = {"1", "ON", "YES", "TRUE"}
LOCAL_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json"}
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
#: Seconds for the reachability check of the endpoint (huggingface_hub alone retries for ~25 s).
CONNECT_TIMEOUT = 3.0


def offline() -> bool:
    """HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE / TRANSFORMERS_OFFLINE) as set now."""
    return any((os.environ.get(v) or "").strip().upper() in TRUE for v in OFFLINE_VARS)


offline_env = offline  # the name data/ used before


def endpoint() -> str:
    """HF_ENDPOINT as set now, else huggingface_hub's endpoint."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def unreachable(url: str | None = None, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when ``url`` (default the Hub endpoint) answers one HEAD request, else the reason in a few words."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(url or endpoint(), timeout=timeout)
        return None
    except Exception as e:  # noqa: BLE001 - DNS failure, refused, timeout, proxy error: all mean "offline"
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def hub_reachable(timeout: float = CONNECT_TIMEOUT) -> bool:
    return unreachable(timeout=timeout) is None


def cached_snapshot(repo_id: str, repo_type: str = "model", revision: str | None = None,
                    cache_dir: str | None = None) -> Path | None:
    """The local snapshot folder of ``repo_id`` in the Hub cache, or None (never the network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, cache_dir=cache_dir,
                                      local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or an id the cache cannot hold: "not cached"
        return None


def _hub_source(path: str) -> str:
    """Where ``datasets`` should read Hub dataset ``path`` from: the name, or its cached snapshot."""
    import datasets.config

    if offline():
        if datasets.config.HF_HUB_OFFLINE:  # datasets read the switch itself: its own cache works
            return path
        snap = cached_snapshot(path, "dataset")
        if snap is None:
            raise ProbeError(f"dataset {path!r} is not in the local HF cache and HF_HUB_OFFLINE / "
                             f"HF_DATASETS_OFFLINE is set; load it once online or pass a folder or .npz")
        return str(snap)
    reason = unreachable()
    if reason is not None:
        snap = cached_snapshot(path, "dataset")
        if snap is None:
            raise ProbeError(f"dataset {path!r} is not in the local HF cache and the HF Hub is unreachable "
                             f"({reason}); pass a folder, .npz or a built-in set instead")
        return str(snap)
    return path


def _columns(ds, what: str) -> tuple[str, str | None, list[str] | None]:
    """The image column (an ``Image`` feature, else a usual name) and an optional label column."""
    from datasets import ClassLabel, Image

    feats = ds.features
    image = next((k for k, f in feats.items() if isinstance(f, Image)), None) or \
        next((k for k in IMAGE_COLUMNS if k in feats), None)
    if image is None:
        raise ProbeError(f"{what}: no image column (columns: {', '.join(feats)})")
    label = next((k for k, f in feats.items() if isinstance(f, ClassLabel)), None) or \
        next((k for k in LABEL_COLUMNS if k in feats), None)
    classes = feats[label].names if label and isinstance(feats[label], ClassLabel) else None
    return image, label, classes


def from_hf(ds, *, name: str, source: str, split: str, n: int | None = None, seed: int = 0,
            resolution: int | None = None, resize: str = "bilinear") -> ImageSet:
    """An ImageSet from a ``datasets.Dataset`` (the subset is taken before any image is decoded)."""
    image_col, label_col, classes = _columns(ds, name)
    keep = subset_indices(len(ds), n, seed) if n is not None else np.arange(len(ds))
    rows = ds.select(keep) if n is not None else ds
    pictures = rows[image_col] if len(rows) else []

    def getter(v):
        from PIL import Image

        return lambda: v if isinstance(v, Image.Image) else Image.fromarray(np.asarray(v, dtype=np.uint8))

    images, ops = stack_pictures([getter(v) for v in pictures], resolution, name, resize)
    labels = None
    if label_col is not None:
        raw = list(rows[label_col])
        if all(isinstance(v, (int, np.integer)) for v in raw):
            labels = torch.tensor(raw, dtype=torch.int64)
        else:  # string labels: classes in sorted order
            classes = sorted({str(v) for v in raw})
            labels = torch.tensor([classes.index(str(v)) for v in raw], dtype=torch.int64)
    return ImageSet(images, labels, classes, name=name, source=source, split=split,
                    indices=torch.from_numpy(keep.astype(np.int64)),
                    ops=([f"subset(n={n}, seed={seed})"] if n is not None else []) + ops)


def load_hf(path: str, config: str | None = None, *, split: str = "test", n: int | None = None, seed: int = 0,
            resolution: int | None = None, data_files=None, data_dir: str | None = None,
            cache_dir: str | None = None, resize: str = "bilinear") -> ImageSet:
    """``datasets.load_dataset(path, config, ...)`` as an ImageSet.

    ``path`` is a Hub name or a builder (``parquet``, ``imagefolder``) with ``data_files`` /
    ``data_dir``. For local data a single split stands in for any requested one (files have no
    split names); Hub datasets must have the split asked for.
    """
    try:
        import datasets
    except ImportError as e:
        raise ProbeError("HF datasets is not installed (pip install datasets)") from e
    local = data_files is not None or data_dir is not None or Path(path).exists()
    where = str(data_files or data_dir or path)
    try:
        if local:
            dd = datasets.load_dataset(path, config, data_files=data_files, data_dir=data_dir, cache_dir=cache_dir)
            if split in dd:
                ds, used = dd[split], split
            elif len(dd) == 1:
                key = next(iter(dd))
                ds, used = dd[key], str(key)
            else:
                raise ProbeError(f"{where} has no split {split!r}; it has {', '.join(str(k) for k in dd)}")
        else:
            ds, used = datasets.load_dataset(_hub_source(path), config, split=split, cache_dir=cache_dir), split
    except ProbeError:
        raise
    except Exception as e:  # noqa: BLE001 - datasets raises many types; the user needs one line
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if offline() and not local:
            raise ProbeError(f"dataset {path!r} is not in the local HF cache and HF_HUB_OFFLINE / "
                             f"HF_DATASETS_OFFLINE is set; load it once online or pass a folder or .npz") from e
        if isinstance(e, (ConnectionError, TimeoutError, OSError)) and not local:
            raise ProbeError(f"dataset {path!r} could not be fetched from the HF Hub (no network?): {msg}") from e
        raise ProbeError(f"cannot load dataset {path!r}{f' ({config})' if config else ''}: {msg}") from e
    source = f"hf:{path}" + (f":{config}" if config else "") + (f" ({where})" if local else "")
    name = Path(where).stem if local else path
    return from_hf(ds, name=name, source=source, split=used, n=n, seed=seed, resolution=resolution, resize=resize)
