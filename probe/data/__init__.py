"""Image sets for the probes: ``load_images(spec)`` -> :class:`ImageSet` (uint8 ``[N, C, H, W]``).

Built-in names load offline (``dataset_names()``); folders, ``.npz`` and parquet files load from
disk; any other name goes to HF ``datasets``.
"""
from __future__ import annotations

from .imageset import ImageSet, subset_indices
from .sets import SPEC_HELP, dataset_names, load_images

__all__ = ["ImageSet", "load_images", "dataset_names", "subset_indices", "SPEC_HELP"]
