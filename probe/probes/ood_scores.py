"""The OOD scores (paper section 4.2, METHOD.md section 5): every score is "higher = more OOD".

The trajectory score of an image x with z_0 = E(x):

    score(x) = mean_{t = 0..T} min_{z* in Z*_train} ||z_t - z*||_2

and the baselines computed on the same latents: KNN distance, Mahalanobis distance (shrinkage
covariance), reconstruction error, the first-step residual, the steps to converge, and the
distance of z_0 alone to the nearest attractor.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ProbeError, check
from ..maps.base import LatentMap
from .common import as_float_images, decode_latents, encode_images

__all__ = ["METHODS", "nearest_distance", "knn_distance", "Mahalanobis", "reconstruction_error",
           "trajectory_scores", "PATH_BUDGET"]

EXACT = "donot_use_mm_for_euclid_dist"

#: Methods in table order; every score is "higher = more OOD".
METHODS = {
    "trajectory": "attractor trajectory score: mean over z_0..z_T of the L2 distance to the nearest training attractor",
    "attractor_z0": "L2 distance of z_0 = E(x) to the nearest training attractor (no iteration)",
    "knn": "distance to the K-th nearest training latent",
    "mahalanobis": "Mahalanobis distance to the training latents (Ledoit-Wolf shrinkage covariance)",
    "reconstruction": "reconstruction error: mean over pixels of (D(E(x)) - x)^2",
    "first_residual": "first-step residual ||f(z_0) - z_0||_2",
    "steps": "steps to converge (the step budget when not converged)",
}


# -- scores -----------------------------------------------------------------------
def nearest_distance(z: Tensor, points: Tensor, chunk: int = 4096) -> Tensor:
    """min_k ||z_i - points_k||_2 for flattened latents, in chunks to bound memory.

    The direct (non-matmul) distance is used: near convergence the distances are tiny and the
    matmul expansion ||a||^2 - 2ab + ||b||^2 would bury them in rounding error.
    """
    p = points.reshape(len(points), -1).to(z.device, torch.float32)
    z = z.reshape(len(z), -1).float()
    return torch.cat([torch.cdist(z[i:i + chunk], p, compute_mode=EXACT).min(1).values
                      for i in range(0, len(z), chunk)])


def knn_distance(train: Tensor, z: Tensor, k: int = 50, metric: str = "cosine", chunk: int = 1024) -> Tensor:
    """Distance of each z to its k-th nearest training latent.

    ``cosine`` compares unit-normalised latents (L2 between them = sqrt(2 - 2 cos), the
    deep-nearest-neighbour OOD score of Sun et al. 2022); ``l2`` uses raw latents.
    """
    train, z = train.reshape(len(train), -1).float(), z.reshape(len(z), -1).float().to(train.device)
    if k > len(train):
        raise ProbeError(f"knn_k = {k} exceeds the {len(train)} training latents; lower knn_k or raise n_train")
    if metric == "cosine":
        train, z = torch.nn.functional.normalize(train, dim=1), torch.nn.functional.normalize(z, dim=1)
    elif metric != "l2":
        raise ProbeError(f"knn metric must be cosine or l2, got {metric!r}")
    return torch.cat([torch.cdist(z[i:i + chunk], train, compute_mode=EXACT).kthvalue(k, dim=1).values
                      for i in range(0, len(z), chunk)])


@dataclass
class Mahalanobis:
    """Mean and Ledoit-Wolf shrunk precision of training latents; ``score`` = sqrt((z-mu)^T P (z-mu)).

    Shrinkage keeps the precision finite when latents outnumber training images (d > n).
    """

    mean: Tensor
    precision: Tensor
    shrinkage: float

    @classmethod
    def fit(cls, train: Tensor) -> Mahalanobis:
        from sklearn.covariance import LedoitWolf

        x = train.reshape(len(train), -1).double().cpu().numpy()
        check(len(x) >= 2, f"Mahalanobis needs at least 2 training latents, got {len(x)}")
        lw = LedoitWolf(assume_centered=False).fit(x)
        return cls(torch.from_numpy(lw.location_), torch.from_numpy(lw.precision_), float(lw.shrinkage_))

    def score(self, z: Tensor) -> Tensor:
        d = z.reshape(len(z), -1).double().cpu() - self.mean
        return ((d @ self.precision) * d).sum(1).clamp_min(0).sqrt().float()


@torch.no_grad()
def reconstruction_error(map: LatentMap, images, batch_size: int = 128) -> Tensor:
    """Per image mean over pixels of (D(E(x)) - x)^2, x as the map sees it (e.g. RGB -> gray)."""
    x = as_float_images(images)
    z = encode_images(map, x, batch_size)
    seen = map.check_images(x).cpu()  # as the map sees it (e.g. RGB -> luminance)
    return (decode_latents(map, z, batch_size, clamp=False) - seen).pow(2).flatten(1).mean(1)


#: Floats of recorded trajectory held at once (256 MB): seeds are scored in chunks of this size.
PATH_BUDGET = 2 ** 26


@torch.no_grad()
def trajectory_scores(map: LatentMap, z0: Tensor, attractors: Tensor, *, tol: float,
                      max_steps: int, extra_references: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Trajectory score of each z_0 with its iteration facts (steps, status, first residual).

    ``extra_references`` ({name: points}) scores the same trajectories against other reference
    sets too (``trajectory@name``, ``attractor_z0@name``), so that variants of Z*_train are
    compared on identical paths without iterating again.

    The mean runs over the recorded z_0 .. z_{steps_i} only: iterate pads a seed that stopped
    early with copies of its end point, which would pull its score toward the end-point
    distance. A seed that diverged (went NaN / inf) is scored on its finite states.
    """
    from ..field import iterate

    d = int(z0[0].numel())
    chunk = max(1, PATH_BUDGET // ((int(max_steps) + 1) * d))
    refs = {"": attractors, **{f"@{k}": v for k, v in (extra_references or {}).items()}}
    acc: dict[str, list[Tensor]] = {key: [] for key in refs}
    acc0: dict[str, list[Tensor]] = {key: [] for key in refs if key}
    steps, status, first = [], [], []
    for i in range(0, len(z0), chunk):
        traj = iterate(map, z0[i:i + chunk], tol=tol, max_steps=max_steps, record=True)
        if traj.path is None or traj.path_len is None:
            raise ProbeError("the iteration recorded no path (record=True was not honoured)")
        path = traj.path.reshape(len(traj.path), traj.path.shape[1], -1)
        n, n_pts = path.shape[:2]
        # only the recorded states count (and cost): the padding after a seed stopped is skipped
        flat = path.reshape(n * n_pts, d)
        live = (torch.arange(n_pts)[None, :] < traj.path_len.reshape(-1, 1).cpu()).reshape(-1)
        live_idx = live.nonzero().squeeze(1)
        for key, points in refs.items():
            dist = torch.full((n * n_pts,), float("nan"))
            dist[live_idx] = nearest_distance(flat[live_idx.to(flat.device)], points).cpu()
            dist = dist.reshape(n, n_pts)
            keep = torch.isfinite(dist)
            acc[key].append(torch.where(keep, dist, 0).sum(1) / keep.sum(1).clamp_min(1))
            if key:
                acc0[key].append(dist[:, 0])
        steps.append(traj.steps.float())
        status.append(traj.status.long())
        first.append(traj.first_residual.float())  # ||f(z_0) - z_0||, L2 (not squared)
    status = torch.cat(status)
    out = {"trajectory": torch.cat(acc[""]), "steps": torch.cat(steps), "status": status,
           "converged": status == 0, "first_residual": torch.cat(first)}
    out.update({f"trajectory{key}": torch.cat(v) for key, v in acc.items() if key})
    out.update({f"attractor_z0{key}": torch.cat(v) for key, v in acc0.items()})
    return out
