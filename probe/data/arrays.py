"""Image sets stored as arrays: idx files, .npz files, and fixed seeded splits.

Parsed arrays are cached per process (keyed by path, size and mtime for files), so loading a
set twice costs one copy; every :class:`ImageSet` gets its own copy and may be changed freely.
"""
from __future__ import annotations

import functools
import gzip
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from ..errors import ProbeError
from .imageset import ImageSet, as_nchw, subset_indices

T = TypeVar("T")


def from_arrays(images: np.ndarray, labels: np.ndarray | None, *, n: int | None, seed: int, **meta) -> ImageSet:
    """An ImageSet from (cached, read-only) arrays, taking the subset before copying."""
    if n is not None:
        idx = subset_indices(len(images), n, seed)
        images = images[idx]
        labels = None if labels is None else labels[idx]
        meta["indices"] = torch.from_numpy(idx.astype(np.int64))
        meta["ops"] = [f"subset(n={n}, seed={seed})"]
    lab = None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64).copy())
    return ImageSet(as_nchw(images), lab, **meta)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed train/test split: per class, a ``default_rng(seed)`` permutation puts the first
    ``round(test_fraction * class size)`` in test. Indices are sorted, so the file order is kept."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        test.append(rng.permutation(members)[: int(round(test_fraction * len(members)))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return {"train": train_idx, "test": test_idx, "all": np.arange(len(labels))}


def pick_split(name: str, split: str, splits: Mapping[str, T]) -> T:
    if split not in splits:
        raise ProbeError(f"{name} has no split {split!r}; choose one of {', '.join(splits)}")
    return splits[split]


# -- idx (MNIST-style) files ---------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:
        raise ProbeError(f"cannot read idx file {path}: {e}") from e
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ProbeError(f"{path} is not a uint8 idx file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ProbeError(f"{path} is truncated: expected {int(np.prod(shape))} values, got {arr.size}")
    return arr.reshape(shape)


@functools.lru_cache(maxsize=8)
def read_idx(path: str, size: int, mtime: float) -> np.ndarray:
    arr = _read_idx(Path(path))
    arr.flags.writeable = False
    return arr


def cached_idx(path: Path) -> np.ndarray:
    st = path.stat()
    return read_idx(str(path), st.st_size, st.st_mtime)


# -- .npz files ------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _read_npz(path: str, size: int, mtime: float) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds; its advice to allow pickle is never ours
        raise ProbeError(f"cannot read {path} as .npz ({type(e).__name__}): it is not a complete numpy .npz "
                         f"archive of plain arrays; write it with numpy.savez(path, images=...)") from e
    for a in data.values():
        a.flags.writeable = False
    return data


def read_npz(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"no such .npz file: {path}")
    st = path.stat()
    return _read_npz(str(path.resolve()), st.st_size, st.st_mtime)


def load_npz(path: str | Path, *, n: int | None = None, seed: int = 0, name: str | None = None,
             split: str = "") -> ImageSet:
    """An ImageSet from a ``.npz`` holding ``images`` and optionally ``labels``, ``classes``, ``source``."""
    path = Path(path)
    data = read_npz(path)
    if "images" not in data:
        raise ProbeError(f"{path} has no 'images' array (found: {', '.join(sorted(data)) or 'nothing'})")
    images, labels = data["images"], data.get("labels")
    if images.ndim not in (3, 4):
        raise ProbeError(f"{path}: 'images' must be [N,H,W], [N,H,W,C] or [N,C,H,W], got shape {images.shape}")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise ProbeError(f"{path}: 'labels' must be [N] with N = {len(images)}, got shape {labels.shape}")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        bad = ~np.isfinite(images.reshape(len(images), -1)).all(1)
        raise ProbeError(f"{path}: 'images' holds NaN or Inf (not finite) values in {int(bad.sum())} of "
                         f"{len(images)} images (first: index {int(bad.argmax())}); clean or drop them")
    classes = [str(c) for c in data["classes"].tolist()] if "classes" in data else None
    src = str(data["source"]) if "source" in data and data["source"].ndim == 0 else ""
    return from_arrays(images, labels, n=n, seed=seed, classes=classes, name=name or path.stem,
                       source=f"{path}" + (f" ({src})" if src else ""), split=split)


def env_path(var: str) -> Path | None:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else None
