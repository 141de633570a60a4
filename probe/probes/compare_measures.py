"""What the comparison measures: Chamfer similarity, nearest-neighbour MSE, where seeds end, basin
agreement, image conventions, and whether two latent spaces can be compared coordinate by coordinate."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ProbeError
from ..maps.base import LatentMap

__all__ = ["chamfer", "nearest_mse", "destinations", "basin_agreement", "to_convention", "same_space"]


def _unit_rows(x: Tensor) -> Tensor:
    x = x.detach().flatten(1).double()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-30)


def chamfer(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Best cosine of each row of ``a`` to ``b`` [len(a)] and of each row of ``b`` to ``a`` [len(b)].

    Their means are the two directions of the Chamfer similarity; their average is the symmetric one.
    """
    if not len(a) or not len(b):
        raise ProbeError(f"Chamfer similarity needs two non-empty sets, got {len(a)} and {len(b)} points")
    s = _unit_rows(a) @ _unit_rows(b.to(a.device)).T
    return s.max(1).values.float().cpu(), s.max(0).values.float().cpu()


def nearest_mse(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel MSE of each image of ``a`` to its nearest image in ``b``, and the reverse."""
    a, b = a.flatten(1).double(), b.flatten(1).double().to(a.device)
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2) / a.shape[1]
    return d.min(1).values.float().cpu(), d.min(0).values.float().cpu()


def destinations(aset: Any) -> Tensor:
    """Where each seed stopped: its attractor when it converged, else its end point [N, D]."""
    ends = aset.end_points.flatten(1).clone()
    ok = aset.assignment >= 0
    if len(aset.points):
        ends[ok] = aset.points.flatten(1)[aset.assignment[ok]]
    return ends


def basin_agreement(set_a: Any, set_b: Any, threshold: float = 0.99, seed: int = 0) -> dict[str, Any]:
    """Per seed: do A and B send it to the same place (cosine > ``threshold``)? And the ARI of the basins.

    Both sets must come from the same seeds in the same latent space. ``reference`` is the same
    agreement with B's seeds shuffled: the level two unrelated partitions reach by chance.
    """
    from sklearn.metrics import adjusted_rand_score

    from ..field.merge import merge_end_points

    da, db = destinations(set_a), destinations(set_b)
    if da.shape != db.shape:
        raise ProbeError(f"basin agreement needs the same seeds: {tuple(da.shape)} vs {tuple(db.shape)} end points")
    ua, ub = _unit_rows(da), _unit_rows(db)
    agree = ((ua * ub).sum(1) > threshold).float()
    perm = torch.randperm(len(ub), generator=torch.Generator().manual_seed(seed))
    ref = ((ua * ub[perm]).sum(1) > threshold).float()
    # basins = seeds grouped by where they stop under the merge rule (= the assignment for converged seeds)
    la, _ = merge_end_points(da, "cosine", threshold)
    lb, _ = merge_end_points(db, "cosine", threshold)
    return {"agree": agree, "reference": ref, "ari": float(adjusted_rand_score(la.numpy(), lb.numpy())),
            "basins": [int(la.max()) + 1, int(lb.max()) + 1],
            "both_converged": int(((set_a.assignment >= 0) & (set_b.assignment >= 0)).sum())}


def to_convention(x: Tensor, channels: int, size: int) -> Tensor:
    """Images in [0, 1] -> ``channels`` (RGB <-> luminance) and ``size`` x ``size`` px (antialiased bilinear)."""
    from ..images import luminance

    if x.shape[1] == 3 and channels == 1:
        x = luminance(x)
    elif x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()


def same_space(map_a: LatentMap, map_b: LatentMap, shape_a, shape_b, declared: bool | None) -> tuple[bool, str]:
    """Whether coordinates of A and B can be compared directly, and why."""
    if tuple(shape_a) != tuple(shape_b):
        if declared:
            raise ProbeError(f"--same-space: the latent shapes differ ({tuple(shape_a)} vs {tuple(shape_b)})")
        return False, f"latent shapes differ: {tuple(shape_a)} vs {tuple(shape_b)}"
    if declared is not None:
        return bool(declared), "declared " + ("shared" if declared else "not shared") + " by the user"
    ca, cb = type(map_a).__name__, type(map_b).__name__
    if ca == cb:
        return True, (f"same architecture class ({ca}) and latent shape {tuple(shape_a)}; independently trained "
                      f"models need not align their coordinates: read the latent rows against their references")
    return False, f"different architectures ({ca} vs {cb}); declare --same-space to compare coordinates"
