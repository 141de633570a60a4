"""The settings of one attractor search, with the paper's defaults (METHOD.md sections 1-2).

``tol`` and ``max_steps`` default to ``None``: the map's own ``field_defaults`` then
apply (1e-5 / 500 for foundation models, 1e-6 / 3000 for the small conv autoencoders).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import field

MERGE_RULES = ("cosine", "euclidean")
SEED_DISTS = ("normal", "data")


@dataclass(frozen=True)
class FieldConfig:
    """How seeds are drawn, iterated, told apart and checked for stability."""

    section = "run"  # the key of this command's section in a shared YAML file

    n_seeds: int = field(4096, "number of seeds; the paper uses 4096 = the latent size of a 256 px SD VAE")
    seed: int = field(0, "random seed of the Gaussian seeds (the same seeds on any device or process count)")
    seed_dist: str = field("normal", "seeds from N(0, I) ('normal', the paper) or matched to the mean and "
                                     "per-dimension spread of encoded data ('data')")
    resolution: int | None = field(None, "image size in pixels that sets the latent shape (default: the map's)")
    tol: float | None = field(None, "converged when ||z_{t+1} - z_t||^2 < tol (default: the map's, 1e-5 or 1e-6)")
    rtol: float | None = field(None, "also converged when ||z_{t+1} - z_t|| / ||z_t|| < rtol (off by default)")
    max_steps: int | None = field(None, "iteration budget per seed (default: the map's, 500 or 3000)")
    max_period: int = field(8, "longest cycle period looked for; period-2 cycles and up are never attractors")
    merge: str = field("cosine", "rule that merges end points into one attractor: 'cosine' (the paper) or 'euclidean'")
    merge_threshold: float = field(0.99, "cosine above which (or distance below which) end points merge")
    power_iters: int = field(30, "Jacobian-vector products per spectral-radius estimate (power iteration)")
    probe_points: int = field(8, "seeds whose start and end points sample the spectral radius for the diagnosis")
    batch_size: int | None = field(None, "seeds iterated at once (default: sized from the latent and image size)")
    checkpoint_every: int | None = field(None, "save a resumable checkpoint every N steps (needs an output folder)")

    def __post_init__(self):
        if int(self.n_seeds) < 1:
            raise ValueError(f"n_seeds must be >= 1, got {self.n_seeds}")
        if self.seed_dist not in SEED_DISTS:
            raise ValueError(f"seed_dist must be one of {', '.join(SEED_DISTS)}, got {self.seed_dist!r}")
        if self.merge not in MERGE_RULES:
            raise ValueError(f"merge must be one of {', '.join(MERGE_RULES)}, got {self.merge!r}")
        if self.merge == "cosine" and not -1.0 <= self.merge_threshold <= 1.0:
            raise ValueError(f"a cosine merge_threshold must lie in [-1, 1], got {self.merge_threshold}")
        if self.merge == "euclidean" and self.merge_threshold < 0:
            raise ValueError(f"a euclidean merge_threshold is a distance >= 0, got {self.merge_threshold}")
        for name in ("tol", "rtol"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        for name in ("max_steps", "batch_size", "checkpoint_every", "resolution"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if int(self.max_period) < 1:
            raise ValueError(f"max_period must be >= 1 (1 turns cycle detection off), got {self.max_period}")
        if int(self.power_iters) < 2:
            raise ValueError(f"power_iters must be >= 2, got {self.power_iters}")
        if int(self.probe_points) < 0:
            raise ValueError(f"probe_points must be >= 0, got {self.probe_points}")
