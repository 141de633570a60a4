"""What the dictionary's atoms are: the distinct stable attractors (or the end points of an expansive
map), and the two references with as many atoms: a random orthogonal basis and PCA of encoded data."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ProbeError
from .common import unit_columns

__all__ = ["dictionary_atoms", "orthogonal_basis", "pca_reference", "distinct_directions", "MIN_ATOMS"]

#: Fewer distinct attractors than this make a 5% code degenerate (one non-zero): issue 14.
MIN_ATOMS = 20


def dictionary_atoms(aset: Any, latent_shape: tuple[int, ...], atoms_from: str = "auto") -> tuple[Tensor, dict]:
    """Flattened atoms ``[n_atoms, D]`` from an :class:`~probe.field.AttractorSet`, and what they are.

    The atoms are the distinct stable attractors found (issue 14: as many as there are, even
    more than the latent dimension D). ``auto`` takes the end points after ``max_steps``
    instead when the map is expansive or has no stable point: those are then the only
    data-free dictionary there is, and every table says so.
    """
    points, ends = getattr(aset, "points", None), getattr(aset, "end_points", None)
    if points is None or ends is None:
        raise ProbeError(f"not an attractor set: {type(aset).__name__} lacks points or end_points")
    for name, t in (("attractors", points), ("end points", ends)):
        if t.numel() and tuple(t.shape[1:]) != tuple(latent_shape):
            raise ProbeError(f"attractor set does not fit this map: its {name} have latent shape {tuple(t.shape[1:])}, "
                             f"the map's latents are {tuple(latent_shape)} (compute them at the same resolution)")
    stable = getattr(aset, "stable", None)
    attractors = points[stable.bool()] if stable is not None and len(stable) == len(points) else points
    verdict = str(getattr(aset, "verdict", "unknown"))
    use_ends = atoms_from == "end_points" or (atoms_from == "auto" and (verdict == "expansive" or not len(attractors)))
    chosen = ends if use_ends else attractors
    if not len(chosen):
        raise ProbeError(f"the attractor set holds no stable attractors (dynamics {verdict}, {len(points)} fixed "
                         f"points); use atoms_from=end_points to code with the end points")
    flat = chosen.detach().reshape(len(chosen), -1).float().cpu()
    merge, fcfg = getattr(aset, "merge", {}) or {}, getattr(aset, "config", {}) or {}
    info = {"atoms_are": "end points" if use_ends else "attractors", "n_found": len(flat), "n_atoms": len(flat),
            "n_fixed_points": len(points), "n_stable": len(attractors), "n_seeds": len(ends),
            "latent_dim": flat.shape[1], "latent_shape": list(latent_shape), "verdict": verdict,
            "merge": merge.get("rule"), "merge_threshold": merge.get("threshold"),
            "tol": fcfg.get("tol"), "max_steps": fcfg.get("max_steps"), "degenerate": len(flat) < MIN_ATOMS,
            "seed_dist": fcfg.get("seeds", fcfg.get("seed_dist", "normal")),
            "end_points_coded": False}
    return flat, info


def orthogonal_basis(n_atoms: int, dim: int, seed: int, device) -> Tensor:
    """The paper's data-free baseline: ``min(n_atoms, dim)`` random orthonormal directions ``[D, n]``."""
    from ..sparse.bases import random_orthogonal_basis

    return random_orthogonal_basis(dim, min(n_atoms, dim), seed=seed, dtype=torch.float32, device=device)


def pca_reference(fit: Tensor, n_atoms: int, device) -> Tensor:
    """Top-``n_atoms`` principal directions of encoded data ``[D, <= n_atoms]`` (fewer if the fit is small)."""
    from ..sparse.bases import pca_basis

    return unit_columns(pca_basis(fit.to(device), min(n_atoms, fit.shape[1])).float())


def distinct_directions(points: Tensor, cosine: float = 0.999999) -> int:
    """How many of ``points`` differ in direction by more than rounding: what unmerged end points really hold."""
    u = points.double() / points.double().norm(dim=1, keepdim=True).clamp_min(1e-30)
    kept: list[int] = []
    for i in range(len(u)):
        if not kept or bool((u[kept] @ u[i] <= cosine).all()):
            kept.append(i)
    return len(kept)
