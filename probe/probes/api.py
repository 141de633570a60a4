"""The front door: one function per probe, as ``probe.dictionary(...)``, ``probe.ood(...)`` ...

Each takes a model (a LatentMap or any spec :func:`probe.load` reads), the data it needs (image
sets, tensors or specs for :func:`probe.data.load_images`), an optional config and keyword
overrides of that config or of its FieldConfig (``tol=1e-5``, ``n_seeds=512``, ``solver="anderson"``,
``sparsity=0.1`` ...); with ``out`` the attractor searches checkpoint there and resume. Every
function imports its probe on first use, so ``import probe`` stays light.

These live here and not in ``probe/probes/__init__.py``: a function named like a submodule
(``dictionary``, ``ood``, ...) would be replaced by that submodule on its first import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["dictionary", "ood", "compare", "memorization", "basins"]


def _map(model: Any):
    from ..maps.base import LatentMap

    if isinstance(model, LatentMap):
        return model
    from ..maps.registry import load

    return load(model)


def _config(cls: type, cfg: Any, overrides: dict) -> Any:
    from ..config import apply

    return apply(cls, cfg if cfg is not None else cls(), overrides) if overrides else (cfg or cls())


def _images(data: Any, map, split: str, n: int | None, seed: int, resolution: int | None = None):
    """An ImageSet or tensor unchanged; a spec loaded at the map's image size and channels."""
    if not isinstance(data, (str, Path)):
        return data
    from ..data import load_images

    return load_images(str(data), split=split, n=n, seed=seed, resolution=map.image_size or resolution,
                       channels=map.image_channels)


def dictionary(model: Any, datasets: str | list[str], cfg: Any = None, *, attractors: Any = None,
               out: str | Path | None = None, progress: bool = False, log=None, allow_other_model: bool = False,
               **overrides: Any):
    """Attractors from Gaussian noise as a sparse-coding dictionary, against an orthogonal basis and PCA
    (paper section 4.1) on ``datasets`` (specs, e.g. ``"fashion-mnist,mnist"``): a DictionaryReport."""
    from .dictionary import DictionaryConfig, run_dictionary

    sets = [d.strip() for d in datasets.split(",")] if isinstance(datasets, str) else list(datasets)
    return run_dictionary(_map(model), attractors, [d for d in sets if d], _config(DictionaryConfig, cfg, overrides),
                          out=out, log=log, progress=progress, allow_other_model=allow_other_model)


def ood(model: Any, train: Any, test_in: Any, test_out: dict | str, cfg: Any = None, *, in_name: str = "in",
        reference: Any = None, out: str | Path | None = None, progress: bool = False, log=None, **overrides: Any):
    """OOD detection from latent trajectories (paper section 4.2): fit on ``train``, score ``test_in`` and
    every set of ``test_out`` (``{name: images}`` or comma-separated specs): an OODReport."""
    from .ood import OODConfig, run_ood

    m = _map(model)
    c = _config(OODConfig, cfg, overrides)
    if isinstance(test_out, str):
        test_out = {s.strip(): s.strip() for s in test_out.split(",") if s.strip()}
    seed, res = c.field.seed, c.field.resolution
    return run_ood(m, _images(train, m, "train", c.n_train, seed, res), _images(test_in, m, "test", c.n_test, seed, res),
                   {k: _images(v, m, "test", c.n_test, seed, res) for k, v in test_out.items()}, c,
                   in_name=in_name, log=log, reference=reference, out=out, progress=progress)


def compare(model_a: Any, model_b: Any, cfg: Any = None, *, attractors_a: Any = None, attractors_b: Any = None,
            out: str | Path | None = None, progress: bool = False, log=None, **overrides: Any):
    """Data-free comparison of two models through their attractor sets: a ComparisonReport."""
    from .compare import CompareConfig
    from .compare import compare as run

    a = _map(model_a)
    b = a if model_b is model_a or model_b == model_a else _map(model_b)
    def spec(m: Any, side: str) -> str:
        return str(m) if isinstance(m, (str, Path)) else str(getattr(m, "name", side))

    specs = (spec(model_a, "A"), spec(model_b, "B"))
    return run(a, b, _config(CompareConfig, cfg, overrides), attractors_a=attractors_a, attractors_b=attractors_b,
               specs=specs, out=out, log=log, progress=progress)


def memorization(model: Any, train: Any, test: Any, cfg: Any = None, *, out: str | Path | None = None,
                 progress: bool = False, **overrides: Any):
    """Memorization coefficient, null level and generalization rank of one model (paper section 3):
    a Memorization result. ``train`` / ``test``: image sets, tensors or one spec for both splits."""
    from .memorization import MeasureConfig, measure

    m = _map(model)
    c = _config(MeasureConfig, cfg, overrides)
    return measure(m, _images(train, m, "train", None, c.field.seed), _images(test, m, "test", None, c.field.seed),
                   c, out=out, progress=progress)


def basins(model: Any, images: Any, cfg: Any = None, *, out: str | Path | None = None, progress: bool = False,
           **overrides: Any):
    """Every image iterated to its attractor: basin sizes, class mixes and (with ``out``) galleries: Basins."""
    from .basins import BasinsConfig, find_basins, run_basins

    m = _map(model)
    c = _config(BasinsConfig, cfg, overrides)
    x = _images(images, m, c.split, c.n_images, c.field.seed, c.field.resolution)
    if out is not None:
        return run_basins(m, x, out, c, progress=progress)
    return find_basins(m, x, c, progress=progress)
