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

import torch
from torch import Tensor

from ..config import asdict, field
from ..errors import ProbeError
from ..maps.base import LatentMap

SOURCES = ("noise", "train", "test")


@dataclass(frozen=True)
class MeasureConfig:
    """How one model is measured; iteration follows the map's defaults (1e-6 / 3000 steps)."""

    n_seeds: int = field(256, "N(0, I) noise seeds")
    n_data_seeds: int = field(256, "training images and test images encoded as seeds (each)")
    n_null: int = field(1000, "held-out test images for the null level (their max cosine to the training set)")
    seed_dist: str = field("normal", "noise seeds from N(0, I) ('normal', the paper) or matched to the data latents ('data')")
    merge: str = field("cosine", "merge rule for end points (the paper: cosine)")
    merge_threshold: float = field(0.99, "merge threshold (the paper: cosine > 0.99)")
    tol: float | None = field(None, "convergence tolerance (default: the map's, 1e-6 for conv autoencoders)")
    max_steps: int | None = field(None, "iteration budget per seed (default: the map's, 3000)")
    variance: float = field(0.9, "variance fraction that defines the generalization rank")
    seed: int = field(0, "seed for noise seeds and image subsets")

    def __post_init__(self):
        if min(self.n_seeds, self.n_data_seeds, self.n_null) < 1:
            raise ValueError("n_seeds, n_data_seeds and n_null must be >= 1")
        if not 0 < self.variance <= 1:
            raise ValueError(f"variance must be in (0, 1], got {self.variance}")


def _unit_rows(x: Tensor) -> Tensor:
    x = x.flatten(1).double()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _as_float(images) -> Tensor:
    x = images.images if hasattr(images, "images") else images
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ProbeError("images must be an ImageSet or a [N, C, H, W] tensor")
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def max_cosine(queries: Tensor, references, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """For each query image, the largest cosine to any reference image and that image's index."""
    q = _unit_rows(_as_float(queries))
    ref = references.images if hasattr(references, "images") else references
    if tuple(ref.shape[1:]) != tuple(queries.shape[1:]):
        raise ProbeError(f"queries {tuple(queries.shape[1:])} and references {tuple(ref.shape[1:])} differ in shape")
    best = torch.full((len(q),), -2.0, dtype=torch.float64)
    arg = torch.zeros(len(q), dtype=torch.int64)
    for i in range(0, len(ref), chunk):
        sim = q @ _unit_rows(_as_float(ref[i:i + chunk])).T
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


@torch.no_grad()
def encode_images(map: LatentMap, images, batch_size: int = 256) -> Tensor:
    x = _as_float(images)
    return torch.cat([map.encode(x[i:i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)])


def measure(map: LatentMap, train_images, test_images, cfg: MeasureConfig = MeasureConfig(), *, device=None,
            keep: dict | None = None) -> dict:
    """Memorization facts of one model (see the module docstring); ``keep`` receives the AttractorSets."""
    from ..field import find_attractors

    train_x, test_x = _as_float(train_images), _as_float(test_images)
    g = torch.Generator().manual_seed(cfg.seed)
    pick = lambda n, k: torch.randperm(n, generator=g)[: min(k, n)]  # noqa: E731
    data_seeds = {"train": encode_images(map, train_x[pick(len(train_x), cfg.n_data_seeds)]),
                  "test": encode_images(map, test_x[pick(len(test_x), cfg.n_data_seeds)])}
    kw = dict(tol=cfg.tol, max_steps=cfg.max_steps, merge=cfg.merge, merge_threshold=cfg.merge_threshold, device=device)
    out: dict = {"config": asdict(cfg), "map": map.describe(), "n_train": len(train_x), "n_test": len(test_x)}
    decoded: dict[str, Tensor] = {}
    for source in SOURCES:
        if source == "noise":
            aset = find_attractors(map, n_seeds=cfg.n_seeds, seed=cfg.seed, seed_dist=cfg.seed_dist,
                                   data_latents=data_seeds["train"] if cfg.seed_dist == "data" else None, **kw)
        else:
            aset = find_attractors(map, seeds=data_seeds[source], **kw)
        if keep is not None:
            keep[source] = aset
        pts = aset.attractors
        with torch.no_grad():
            dec = torch.cat([map.decode(pts[i:i + 256]).float().clamp(0, 1).cpu() for i in range(0, len(pts), 256)]) \
                if len(pts) else train_x[:0]
        decoded[source] = dec
        coef = memorization_coefficient(dec, train_x) if len(dec) else torch.zeros(0)
        status = aset.status_counts()
        out[source] = {"seeds": len(aset.status), "attractors": int(aset.stable.sum()), "fixed_points": len(aset),
                       "converged": status.get("converged", 0), "status": status,
                       "median_steps": float(aset.steps.float().median()), "verdict": aset.verdict,
                       "coefficient": _stats(coef), "coefficient_values": coef.tolist(),
                       "generalization_rank": generalization_rank(dec, cfg.variance), "merge": aset.merge}
    null_x = test_x[pick(len(test_x), cfg.n_null)]
    out["null"] = _stats(max_cosine(null_x, train_x)[0])
    out["chamfer"] = {"train_noise": chamfer_similarity(decoded["train"], decoded["noise"]),
                      "test_noise": chamfer_similarity(decoded["test"], decoded["noise"]),
                      "space": "decoded images, cosine"}
    return out


def count_attractors(map: LatentMap, cfg: MeasureConfig, n_seeds: int, device=None) -> dict:
    """Distinct stable attractors reached from ``n_seeds`` N(0, I) seeds, with the merge rule."""
    from ..field import find_attractors

    aset = find_attractors(map, n_seeds=n_seeds, seed=cfg.seed, tol=cfg.tol, max_steps=cfg.max_steps,
                           merge=cfg.merge, merge_threshold=cfg.merge_threshold, device=device)
    return {"attractors": int(aset.stable.sum()), "fixed_points": len(aset),
            "converged": aset.status_counts().get("converged", 0), "seeds": n_seeds, "merge": aset.merge}
