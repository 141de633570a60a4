"""An image set: uint8 images with optional labels, and the few transforms every probe needs.

Images stay uint8 ``[N, C, H, W]`` until a batch is taken, so a 60k-image set costs 47 MB
rather than 188 MB, and every transform is exact and reproducible. ``float()`` and
``batches()`` give the public-boundary convention of :mod:`probe.maps.base`: float32 in [0, 1].
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ProbeError
from ..images import RESIZE_METHODS, check_resize, crop_square, resize, to_channels

RESIZE_MODES = ("center-crop", "stretch")
FILTERS = RESIZE_METHODS  # the resampling filters (see probe.images.resize)


def subset_indices(total: int, n: int, seed: int = 0) -> np.ndarray:
    """The rule behind every random subset: the first ``n`` of ``default_rng(seed).permutation(total)``.

    Loaders that decode lazily (folders, HF datasets) use it too, so ``load_images(spec, n=...)``
    picks the same images as ``load_images(spec).subset(n)``.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ProbeError(f"n must be a positive integer, got {n!r}")
    if n > total:
        raise ProbeError(f"asked for n={n} images but the set has only {total}")
    return np.random.default_rng(seed).permutation(total)[:n]


def as_nchw(array, what: str = "images") -> Tensor:
    """uint8 images in any common layout -> uint8 tensor ``[N, C, H, W]`` (C = 1 or 3).

    Accepts [N,H,W], [N,H,W,C] and [N,C,H,W] with C in {1, 3, 4} (alpha is dropped), uint8 or
    float in [0, 1] / bool. Channels-last wins when both readings fit, as image files store it.
    """
    a = array.numpy() if isinstance(array, Tensor) else np.asarray(array)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[-1] in (1, 3, 4):
        a = a.transpose(0, 3, 1, 2)
    elif not (a.ndim == 4 and a.shape[1] in (1, 3, 4)):
        raise ProbeError(f"{what} must be [N,H,W], [N,H,W,C] or [N,C,H,W] with C in 1/3/4, got shape {a.shape}")
    if a.shape[1] == 4:
        a = a[:, :3]
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
        if lo < 0 or hi > 1:
            raise ProbeError(f"float {what} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        a = np.rint(a * 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ProbeError(f"{what} must be uint8 (or float in [0, 1]), got dtype {a.dtype}")
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())  # never alias a cached, read-only array


def resize_images(images: Tensor, resolution: int, mode: str = "center-crop", filter: str = "bilinear") -> Tensor:
    """uint8 ``[N,C,H,W]`` -> ``[N,C,r,r]``: centre crop to a square (or stretch), then resize
    with ``filter`` (:data:`probe.images.RESIZE_METHODS`)."""
    if not isinstance(resolution, (int, np.integer)) or isinstance(resolution, bool) or resolution < 1:
        raise ProbeError(f"resolution must be a positive integer, got {resolution!r}")
    if mode not in RESIZE_MODES:
        raise ProbeError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    check_resize(filter)
    if mode == "center-crop":
        images = crop_square(images)
    return resize(images, int(resolution), filter)


def convert_channels(images: Tensor, channels: int) -> Tensor:
    """uint8 ``[N,C,H,W]``: RGB -> luminance (:data:`probe.images.LUMA`) or gray -> RGB."""
    if channels not in (1, 3):
        raise ProbeError(f"channels must be 1 or 3, got {channels!r}")
    return to_channels(images, channels).contiguous()


@dataclass
class ImageSet:
    """uint8 images ``[N, C, H, W]`` with optional int64 ``labels`` [N] and class names.

    ``indices`` are positions in the set as loaded (before any subset), so a result can name
    exactly which images it used; ``ops`` records the transforms applied, in order.
    """

    images: Tensor
    labels: Tensor | None = None
    classes: list[str] | None = None
    name: str = "images"
    source: str = ""
    split: str = ""
    indices: Tensor | None = None
    ops: list[str] = field(default_factory=list)
    names: list[str] | None = None  #: [N] where each image came from (file path in a folder), when known

    def __post_init__(self):
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4 \
                or self.images.shape[1] not in (1, 3):
            got = tuple(self.images.shape) if isinstance(self.images, Tensor) else type(self.images).__name__
            raise ProbeError(f"ImageSet images must be a uint8 tensor [N, C, H, W] with C = 1 or 3, got {got}"
                             + (f" {self.images.dtype}" if isinstance(self.images, Tensor) else ""))
        n = self.images.shape[0]
        if self.labels is not None:
            self.labels = torch.as_tensor(self.labels).to(torch.int64).reshape(-1)
            if len(self.labels) != n:
                raise ProbeError(f"{self.name}: {len(self.labels)} labels for {n} images")
        if self.indices is None:
            self.indices = torch.arange(n, dtype=torch.int64)
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]
        if self.names is not None:
            self.names = [str(v) for v in self.names]
            if len(self.names) != n:
                raise ProbeError(f"{self.name}: {len(self.names)} names for {n} images")

    # -- basics ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def float(self) -> Tensor:
        """float32 ``[N, C, H, W]`` in [0, 1]."""
        return self.images.float().div_(255)

    def batches(self, batch_size: int, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32) -> Iterator[Tensor]:
        """Float batches in [0, 1] on ``device``; converting per batch keeps memory at uint8 size."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ProbeError(f"batch_size must be a positive integer, got {batch_size!r}")
        for i in range(0, len(self), batch_size):
            yield self.images[i:i + batch_size].to(device).to(dtype).div_(255)

    def _with(self, op: str, **changes) -> ImageSet:
        return dataclasses.replace(self, ops=[*self.ops, op], **changes)

    # -- transforms (each returns a new set) ------------------------------------
    def take(self, idx) -> ImageSet:
        """The images at positions ``idx`` (in that order)."""
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.int64).reshape(-1)
        assert self.indices is not None  # set by __post_init__
        return self._with(f"take({len(idx)})", images=self.images[idx].contiguous(),
                          labels=None if self.labels is None else self.labels[idx],
                          indices=self.indices[idx],
                          names=None if self.names is None else [self.names[int(i)] for i in idx])

    def subset(self, n: int, seed: int = 0) -> ImageSet:
        """``n`` images chosen at random, reproducibly (see :func:`subset_indices`)."""
        idx = subset_indices(len(self), n, seed)
        out = self.take(idx)
        out.ops[-1] = f"subset(n={n}, seed={seed})"
        return out

    def to_channels(self, c: int) -> ImageSet:
        """1 = luminance (0.299 R + 0.587 G + 0.114 B), 3 = gray repeated as RGB."""
        if c == self.channels:
            return self
        return self._with(f"to_channels({c})", images=convert_channels(self.images, c))

    def resize(self, resolution: int, mode: str = "center-crop", filter: str = "bilinear") -> ImageSet:
        """Square ``resolution`` px: centre crop to a square (or ``stretch``), then resample.

        ``filter``: ``bilinear`` (torch, antialiased: torchvision's default), ``bicubic``, ``nearest``,
        ``lanczos`` (PIL, as the held-out sets were made) or ``none`` (an error unless the size is right).
        """
        check_resize(filter)
        if self.resolution == (resolution, resolution):
            return self
        return self._with(f"resize({resolution}, mode={mode}, filter={filter})",
                          images=resize_images(self.images, resolution, mode, filter))

    def save(self, path) -> Path:
        """Write a ``.npz`` that ``load_images(path)`` reads back: images [N,H,W,C], labels, classes,
        source, and the ``indices`` into the set it came from. Written atomically."""

        from ..files import atomic_write

        path = Path(path)
        if path.suffix != ".npz":
            raise ProbeError(f"an ImageSet saves as .npz, got {path}")
        assert self.indices is not None  # set by __post_init__
        # Any: pyright matches **arrays against savez_compressed's keyword allow_pickle: bool too
        arrays: dict[str, Any] = {"images": self.images.permute(0, 2, 3, 1).numpy(), "indices": self.indices.numpy(),
                  "source": np.array(" | ".join(filter(None, [self.name, self.source, self.split, *self.ops])))}
        if self.labels is not None:
            arrays["labels"] = self.labels.numpy()
        if self.classes is not None:
            arrays["classes"] = np.array(self.classes)

        def write(tmp):
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        atomic_write(path, write)
        return path

    def describe(self) -> dict:
        """Facts that a result records about the images it used."""
        return {"name": self.name, "source": self.source, "split": self.split, "n": len(self),
                "channels": self.channels, "height": self.resolution[0], "width": self.resolution[1],
                "labels": self.labels is not None, "classes": self.classes, "ops": list(self.ops)}

    def __repr__(self) -> str:
        h, w = self.resolution
        return (f"ImageSet({self.name!r}, split={self.split!r}, n={len(self)}, {self.channels}x{h}x{w}, "
                f"labels={'yes' if self.labels is not None else 'no'})")
