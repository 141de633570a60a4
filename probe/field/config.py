"""The settings of one attractor search, with the paper's defaults (METHOD.md sections 1-2).

:class:`FieldConfig` is the only home of the iteration settings. Every probe config
nests one (``cfg.field``) instead of copying its fields, every command that searches
attractors generates its flags from it, and every result records ``cfg.resolve(map)``.

``tol``, ``max_steps`` and ``dtype`` default to ``None``: :meth:`FieldConfig.resolve`
fills them from the map's family (``map.field_defaults``: 1e-5 / 500 for foundation
models, 1e-6 / 3000 for the small conv autoencoders) and its parameters' dtype.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..config import field
from ..errors import ConfigError
from ..maps.base import FOUNDATION_DEFAULTS  # the paper's two families (METHOD.md section 1)

__all__ = ["FieldConfig", "family_defaults", "SOLVERS", "DTYPES", "MERGE_RULES", "SEED_DISTS"]

MERGE_RULES = ("cosine", "euclidean")
SEED_DISTS = ("normal", "data")
SOLVERS = ("plain", "anderson", "mixed", "newton")
DTYPES = ("fp32", "fp64", "bf16", "fp16")


def family_defaults(map: Any) -> dict:
    """tol and max_steps of the map's family: its ``field_defaults``, else the foundation-model pair."""
    d = dict(FOUNDATION_DEFAULTS)
    d.update({k: v for k, v in (getattr(map, "field_defaults", None) or {}).items() if k in d and v is not None})
    return d


@dataclass(frozen=True)
class FieldConfig:
    """How seeds are drawn, iterated, told apart and checked for stability."""

    section = "field"  # the key of this config's section in a YAML file

    n_seeds: int = field(4096, "number of Gaussian seeds; the paper uses 4096 = the latent size of a 256 px SD VAE")
    seed: int = field(0, "random seed of the Gaussian seeds (the same seeds on any device or process count)")
    seed_dist: str = field("normal", "seeds from N(0, I) ('normal', the paper) or matched to the mean and "
                                     "per-dimension spread of encoded data ('data')")
    resolution: int | None = field(None, "image size in pixels that sets the latent shape (default: the map's)")
    tol: float | None = field(None, "converged when ||z_{t+1} - z_t||^2 < tol (default: the map's family, 1e-5 or 1e-6)")
    rtol: float | None = field(None, "also converged when ||z_{t+1} - z_t|| / ||z_t|| < rtol (off by default)")
    max_steps: int | None = field(None, "f-evaluations allowed per seed (default: the map's family, 500 or 3000)")
    max_period: int = field(64, "longest cycle period looked for; cycles are never attractors (1 turns detection off)")
    merge: str = field("cosine", "rule that merges end points into one attractor: 'cosine' (the paper) or 'euclidean'")
    merge_threshold: float = field(0.99, "cosine above which (or distance below which) end points merge")
    solver: str = field("plain", "'plain' iteration (the paper's; it defines the basins), 'anderson' (safeguarded, "
                                 "end points re-verified), 'mixed' (bf16/fp16 iteration, then an fp32 polish) or "
                                 "'newton' (plain steps, Newton-Krylov in the linear tail; end points re-verified)")
    dtype: str | None = field(None, "dtype f computes in: fp32, fp64, bf16, fp16 (default: the map's; for 'mixed' "
                                    "the low dtype before the polish, default bf16)")
    compile: bool = field(False, "torch.compile f = E(D(z)) (pays off on a GPU for long runs)")
    batch_size: int | None = field(None, "seeds iterated at once (default: sized from free memory)")
    device: str | None = field(None, "cpu, cuda or cuda:N (default: where the map is)")
    threads: int | None = field(None, "CPU threads for torch (default: torch's choice)")
    power_iters: int = field(30, "Jacobian-vector products per spectral-radius estimate (power iteration)")
    probe_points: int = field(8, "seeds whose start and end points sample the spectral radius for the diagnosis")
    checkpoint_every: int = field(100, "save a resumable checkpoint every N steps into the output folder (0: never)")

    def __post_init__(self):
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"{name} {what}, got {getattr(self, name)!r}")

        for name in ("n_seeds", "seed", "max_period", "power_iters", "probe_points", "checkpoint_every"):
            need(isinstance(getattr(self, name), int) and not isinstance(getattr(self, name), bool), name,
                 "must be an integer")
        for name in ("max_steps", "batch_size", "resolution", "threads"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1), name,
                 "must be an integer >= 1")
        for name in ("tol", "rtol"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, (int, float)) and math.isfinite(v) and v > 0), name,
                 "must be a finite number > 0")
        need(self.n_seeds >= 1, "n_seeds", "must be >= 1")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.max_period >= 1, "max_period", "must be >= 1 (1 turns cycle detection off)")
        need(self.power_iters >= 2, "power_iters", "must be >= 2")
        need(self.probe_points >= 0, "probe_points", "must be >= 0")
        need(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: no checkpoints)")
        need(self.seed_dist in SEED_DISTS, "seed_dist", f"must be one of {', '.join(SEED_DISTS)}")
        need(self.merge in MERGE_RULES, "merge", f"must be one of {', '.join(MERGE_RULES)}")
        need(self.solver in SOLVERS, "solver", f"must be one of {', '.join(SOLVERS)}")
        need(self.dtype is None or self.dtype in DTYPES, "dtype", f"must be one of {', '.join(DTYPES)}")
        need(isinstance(self.compile, bool), "compile", "must be true or false")
        need(isinstance(self.merge_threshold, (int, float)) and math.isfinite(self.merge_threshold),
             "merge_threshold", "must be a finite number")
        if self.merge == "cosine":
            need(-1.0 <= self.merge_threshold <= 1.0, "merge_threshold", "is a cosine and must lie in [-1, 1]")
        else:
            need(self.merge_threshold >= 0, "merge_threshold", "is a euclidean distance and must be >= 0")

    def replace(self, **changes: Any) -> FieldConfig:
        """A copy with ``changes`` (``None`` values are ignored, so CLI defaults do not override)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def resolve(self, map: Any) -> FieldConfig:
        """tol, max_steps and dtype filled from the map's family and parameters: what a result records."""
        d = family_defaults(map)
        dtype = self.dtype
        if dtype is None and self.solver == "mixed":
            dtype = "bf16"  # the dtype mixed iterates in before its polish in the map's own dtype
        if dtype is None:
            dtype = {"torch.float64": "fp64", "torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(
                str(getattr(map, "dtype", "torch.float32")), "fp32")
        return dataclasses.replace(self, tol=self.tol if self.tol is not None else d["tol"],
                                   max_steps=self.max_steps if self.max_steps is not None else d["max_steps"],
                                   dtype=dtype)

    @property
    def merge_rule(self) -> str:
        """The merge rule in words, e.g. 'cosine > 0.99': counts are meaningless without it."""
        return f"{self.merge} {'>' if self.merge == 'cosine' else '<='} {self.merge_threshold:g}"
