"""Memorization vs generalization from attractors (paper section 3, METHOD.md section 3).

For one trained autoencoder, :func:`measure` iterates three kinds of seeds to attractors:
N(0, I) noise (the paper), encoded training images and encoded held-out test images, and
reports for each

- the memorization coefficient: for every decoded attractor D(z*), the cosine to its nearest
  training image (the max over the training set; the paper's formula says min, its words say
  closest, and only the max is meaningful), as mean and std over attractors;
- the generalization rank: singular vectors of the centred decoded attractors needed for
  ``variance`` (90%) of their variance;

next to the null level (the same max-cosine statistic for held-out test images, which were
never trained on), and the Chamfer similarity between data and noise attractors.
:mod:`probe.probes.memorization_study` sweeps bottlenecks and epochs over these.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import field
from ..errors import ConfigError, ProbeError
from ..field.config import FieldConfig
from ..maps.base import LatentMap
from ..result import Result
from .common import (
    as_float_images,
    decode_latents,
    encode_images,
    model_of,
    nest_field,
    resolved_config,
    search_or_reuse,
)

__all__ = ["MeasureConfig", "Memorization", "measure", "count_attractors", "max_cosine", "memorization_coefficient",
           "generalization_rank", "chamfer_similarity", "SOURCES"]

SOURCES = ("noise", "train", "test")


@dataclass(frozen=True)
class MeasureConfig:
    """How one model is measured; iteration follows the map's defaults (1e-6 / 3000 steps)."""

    n_data_seeds: int = field(256, "training images and test images encoded as seeds (each)")
    n_null: int = field(1000, "held-out test images for the null level (their max cosine to the training set)")
    variance: float = field(0.9, "variance fraction that defines the generalization rank")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(n_seeds=256), "the attractor search: 256 N(0, I) noise seeds; the data "
                               "seeds use the same settings; its seed also draws the image subsets")

    def __post_init__(self):
        nest_field(self)
        if min(self.n_data_seeds, self.n_null) < 1:
            raise ConfigError("n_data_seeds and n_null must be >= 1")
        if not 0 < self.variance <= 1:
            raise ConfigError(f"variance must be in (0, 1], got {self.variance}")


@dataclass
class Memorization(Result):
    """The memorization facts of one model: per seed source (noise, train, test) the attractor count,
    convergence, memorization coefficient and generalization rank; the null level; Chamfer similarities."""

    config: dict
    model_: dict
    facts: dict  #: {"noise" | "train" | "test": {...}, "null": {...}, "chamfer": {...}, "n_train", "n_test"}

    def __getitem__(self, key: str):
        return self.facts[key]

    def _meta(self) -> dict:
        return {"config": self.config, "model": self.model_, "facts": self.facts}

    @classmethod
    def _from_saved(cls, tensors: dict, meta: dict) -> Memorization:
        return cls(meta["config"], meta["model"], meta["facts"])

    def to_rows(self) -> list[dict]:
        rows = []
        for source in SOURCES:
            r = self.facts[source]
            rows.append({"source": source, "seeds": r["seeds"], "attractors": r["attractors"],
                         "converged": r["converged"], "coefficient_mean": r["coefficient"]["mean"],
                         "coefficient_std": r["coefficient"]["std"], "generalization_rank": r["generalization_rank"],
                         "null_mean": self.facts["null"]["mean"], "null_std": self.facts["null"]["std"]})
        return rows


def _unit_rows(x: Tensor) -> Tensor:
    x = x.flatten(1).double()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def max_cosine(queries: Tensor, references, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """For each query image, the largest cosine to any reference image and that image's index."""
    q = _unit_rows(as_float_images(queries))
    ref = references.images if hasattr(references, "images") else references
    if tuple(ref.shape[1:]) != tuple(queries.shape[1:]):
        raise ProbeError(f"queries {tuple(queries.shape[1:])} and references {tuple(ref.shape[1:])} differ in shape")
    best = torch.full((len(q),), -2.0, dtype=torch.float64)
    arg = torch.zeros(len(q), dtype=torch.int64)
    for i in range(0, len(ref), chunk):
        sim = q @ _unit_rows(as_float_images(ref[i:i + chunk])).T
        v, j = sim.max(1) if sim.numel() else (best, arg)
        take = v > best
        best, arg = torch.where(take, v, best), torch.where(take, j + i, arg)
    return best.float(), arg


def memorization_coefficient(decoded: Tensor, train_images) -> Tensor:
    """Per decoded attractor: max cosine to the training set (METHOD.md: the max, not the paper's min)."""
    return max_cosine(decoded, train_images)[0]


def generalization_rank(decoded: Tensor, variance: float = 0.9) -> int:
    """Singular vectors of the centred decoded attractors that explain ``variance`` of their variance."""
    if len(decoded) < 2:
        return 0
    x = decoded.detach().flatten(1).double()
    s2 = torch.linalg.svdvals(x - x.mean(0)) ** 2
    if float(s2.sum()) == 0:
        return 0
    frac = torch.cumsum(s2, 0) / s2.sum()
    return int((frac < variance - 1e-12).sum()) + 1


def chamfer_similarity(a: Tensor, b: Tensor) -> float:
    """Symmetric Chamfer similarity of two image sets: mean best cosine from a to b and b to a, averaged."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return 0.5 * (float(max_cosine(a, b)[0].mean()) + float(max_cosine(b, a)[0].mean()))


def _stats(v: Tensor) -> dict:
    v = v.float()
    return {"mean": float(v.mean()) if len(v) else float("nan"),
            "std": float(v.std(unbiased=False)) if len(v) else float("nan")}


def measure(map: LatentMap, train_images, test_images, cfg: MeasureConfig = MeasureConfig(), *,
            out: str | Path | None = None, progress: bool = False, overwrite: bool = False,
            keep: dict | None = None) -> Memorization:
    """Memorization facts of one model (see the module docstring); ``keep`` receives the AttractorSets.

    ``out``: a folder whose ``attractors_<source>`` sub-folders hold the checkpointed searches.
    """
    train_x, test_x = as_float_images(train_images), as_float_images(test_images)
    g = torch.Generator().manual_seed(cfg.field.seed)
    pick = lambda n, k: torch.randperm(n, generator=g)[: min(k, n)]  # noqa: E731
    data_seeds = {"train": encode_images(map, train_x[pick(len(train_x), cfg.n_data_seeds)]),
                  "test": encode_images(map, test_x[pick(len(test_x), cfg.n_data_seeds)])}
    facts: dict = {"n_train": len(train_x), "n_test": len(test_x)}
    decoded: dict[str, Tensor] = {}
    for source in SOURCES:
        folder = Path(out) / f"attractors_{source}" if out is not None else None
        data = data_seeds["train"] if source == "noise" and cfg.field.seed_dist == "data" else None
        aset = search_or_reuse(map, cfg.field, folder, seeds=None if source == "noise" else data_seeds[source],
                               data_latents=data, progress=progress, overwrite=overwrite,
                               what=f"attractors from {source}")
        if keep is not None:
            keep[source] = aset
        pts = aset.attractors
        dec = decode_latents(map, pts, 256) if len(pts) else train_x[:0]
        decoded[source] = dec
        coef = memorization_coefficient(dec, train_x) if len(dec) else torch.zeros(0)
        status = aset.status_counts()
        facts[source] = {"seeds": len(aset.status), "attractors": int(aset.stable.sum()), "fixed_points": len(aset),
                         "converged": status.get("converged", 0), "status": status,
                         "median_steps": float(aset.steps.float().median()), "verdict": aset.verdict,
                         "coefficient": _stats(coef), "coefficient_values": coef.tolist(),
                         "generalization_rank": generalization_rank(dec, cfg.variance), "merge": aset.merge}
    null_x = test_x[pick(len(test_x), cfg.n_null)]
    facts["null"] = _stats(max_cosine(null_x, train_x)[0])
    facts["chamfer"] = {"train_noise": chamfer_similarity(decoded["train"], decoded["noise"]),
                        "test_noise": chamfer_similarity(decoded["test"], decoded["noise"]),
                        "space": "decoded images, cosine"}
    return Memorization(resolved_config(cfg, map), model_of(map), facts)


def count_attractors(map: LatentMap, cfg: MeasureConfig, n_seeds: int, *, out: str | Path | None = None) -> dict:
    """Distinct stable attractors reached from ``n_seeds`` N(0, I) seeds, with the merge rule."""
    aset = search_or_reuse(map, cfg.field.replace(n_seeds=n_seeds), Path(out) if out is not None else None)
    return {"attractors": int(aset.stable.sum()), "fixed_points": len(aset),
            "converged": aset.status_counts().get("converged", 0), "seeds": n_seeds, "merge": aset.merge}
