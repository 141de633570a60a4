"""Seeds -> end points -> distinct attractors, with their stability (METHOD.md section 2).

Only seeds that converge become attractors. A seed that ends in a cycle or at
``max_steps`` is reported as such (``status``), and its end point is kept in
``end_points``: for a map that never contracts (TAEF2) those end points are the one
dictionary there is, but they are not attractors. With an accelerated solver
(``anderson``, ``mixed``) every fixed point is checked by the spectral radius, and the
seeds of an unstable one are redone by plain iteration, so no saddle is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..maps.base import LatentMap
from ..result import Result, model_fingerprint
from . import distributed
from .assemble import run_search
from .config import FieldConfig
from .diagnose import Diagnosis
from .status import CONVERGED, STATUS

__all__ = ["AttractorSet", "find_attractors"]

_PER_SEED = ("assignment", "steps", "status", "period", "end_points", "residuals", "first_residual")


@dataclass
class AttractorSet(Result):
    """Fixed points found by iterating seeds, their basins and stability."""

    points: Tensor            #: [K, *latent_shape] fixed points, largest basin first
    counts: Tensor            #: [K] basin sizes (seeds ending there)
    stable: Tensor            #: [K] spectral radius < 1: an attractor, not a saddle
    spectral_radius: Tensor   #: [K] of J_f at each point
    assignment: Tensor        #: [N] index into points, -1 for seeds that did not converge
    steps: Tensor             #: [N] f-evaluations per seed
    status: Tensor            #: [N] codes into STATUS (converged, cycle, unconverged, diverged)
    period: Tensor            #: [N] cycle period, 0 when not in a cycle
    end_points: Tensor        #: [N, *latent_shape] where each seed stopped (after max_steps if unconverged)
    residuals: Tensor         #: [N] last ||z_{t+1} - z_t||^2
    first_residual: Tensor    #: [N] ||f(z_0) - z_0||
    diagnosis: Diagnosis
    merge: dict               #: the rule, its threshold and meaning: counts are meaningless without it
    config: dict              #: the resolved FieldConfig (plus "seeds": how they were drawn)
    map: dict                 #: map.describe() of the model
    timing: dict              #: f_evals, jvps, seconds, evals_per_second, processes, redone
    model: dict | None = None  #: the model's fingerprint (class, config, weight checksum, latent shape)
    seed_mean: Tensor | None = None  #: [*latent_shape] for seed_dist "data": the mean the seeds were matched to
    seed_std: Tensor | None = None   #: [*latent_shape] and the per-dimension spread (seeds rebuild from these)

    def __len__(self) -> int:
        return len(self.points)

    @property
    def verdict(self) -> str:
        return self.diagnosis.verdict

    @property
    def converged(self) -> Tensor:
        """[N] seeds that reached a fixed point."""
        return self.status == CONVERGED

    @property
    def attractors(self) -> Tensor:
        """Only the stable points."""
        return self.points[self.stable]

    def status_counts(self) -> dict[str, int]:
        return {name: int((self.status == code).sum()) for code, name in enumerate(STATUS)}

    def __repr__(self) -> str:
        return (f"AttractorSet({len(self)} fixed points, {int(self.stable.sum())} stable, {len(self.status)} seeds, "
                f"merge {self.merge['rule']} {self.merge['threshold']:g}, {self.verdict})")

    def summary(self) -> list[str]:
        k, s = len(self), int(self.stable.sum())
        rule = f"{self.merge['rule']} {'>' if self.merge['rule'] == 'cosine' else '<='} {self.merge['threshold']:g}"
        conv = self.steps[self.status == CONVERGED].float()
        st = conv if len(conv) else self.steps.float()
        t = self.timing
        return [f"fixed points: {k} (merge: {rule}); stable (attractors): {s}" + (f" = {100 * s / k:.3g}%" if k else ""),
                "seeds: " + ", ".join(f"{v} {n}" for n, v in self.status_counts().items()),
                f"steps{'' if len(conv) else ' (no seed converged)'}: median {float(st.median()):.0f}, "
                f"p95 {float(st.quantile(0.95)):.0f}",
                f"solver {self.config.get('solver', 'plain')}: {t['f_evals']} f-evaluations + {t.get('jvps', 0)} JVPs "
                f"in {t['seconds']:.1f} s ({t['evals_per_second']:.1f} f-evaluations/s, {t['processes']} process(es))",
                self.diagnosis.line]

    def to_rows(self) -> list[dict]:
        """One row per fixed point: index, basin size, stability, spectral radius."""
        return [{"attractor": i, "count": int(self.counts[i]), "stable": bool(self.stable[i]),
                 "spectral_radius": float(self.spectral_radius[i])} for i in range(len(self))]

    # -- the Result contract ------------------------------------------------------------
    def _tensors(self) -> dict:
        tensors = {k: getattr(self, k) for k in ("points", "counts", "stable", "spectral_radius", *_PER_SEED)}
        tensors["median_rel_step"] = self.diagnosis.median_rel_step
        if self.seed_mean is not None and self.seed_std is not None:
            tensors.update(seed_mean=self.seed_mean, seed_std=self.seed_std)
        return tensors

    def seeds(self, start: int = 0, stop: int | None = None) -> Tensor | None:
        """The Gaussian seeds ``start..stop`` this set iterated, rebuilt (None for given seeds)."""
        from .seeds import gaussian_seeds

        how = self.config.get("seeds", self.config.get("seed_dist", "normal"))
        if how not in ("normal", "data") or (how == "data" and self.seed_mean is None):
            return None
        shape, n = tuple(self.end_points.shape[1:]), len(self.status)
        return gaussian_seeds(n, shape, int(self.config.get("seed", 0)), start, n if stop is None else stop,
                              mean=self.seed_mean, std=self.seed_std)

    def _meta(self) -> dict:
        return {"config": self.config, "model": self.model, "merge": self.merge, "map": self.map,
                "timing": self.timing, "status_counts": self.status_counts(), "diagnosis": self.diagnosis.meta(),
                "summary": self.summary()}

    @classmethod
    def _from_saved(cls, tensors: dict, meta: dict) -> AttractorSet:
        diag = Diagnosis.from_meta(meta["diagnosis"], tensors["median_rel_step"])
        timing = dict(meta["timing"])
        timing.setdefault("f_evals", timing.get("n_evals", 0))
        return cls(**{k: tensors[k] for k in ("points", "counts", "stable", "spectral_radius", *_PER_SEED)},
                   diagnosis=diag, merge=meta["merge"], config=meta["config"], map=meta["map"], timing=timing,
                   model=meta.get("model"), seed_mean=tensors.get("seed_mean"), seed_std=tensors.get("seed_std"))

    def decode(self, map: LatentMap, batch_size: int = 32, which: str = "points") -> Tensor:
        """Decoded images [K, C, H, W] in [0, 1] of the points (or ``which="end_points"``)."""
        from .plot import decode

        z = getattr(self, which)
        return decode(map, z, batch_size) if len(z) else torch.zeros(0)

    def plot(self, map: LatentMap, path: str | Path | None = None, max_points: int = 64):
        """A grid of decoded attractors with basin sizes (unconverged end points if none): the
        ``matplotlib.figure.Figure``, also written as a PNG when ``path`` is given."""
        from .plot import plot_set

        return plot_set(self, map, None if path is None else Path(path), max_points)


def find_attractors(map: LatentMap, cfg: FieldConfig | None = None, *, seeds=None, data_latents: Tensor | None = None,
                    out: str | Path | None = None, progress: bool = False, **overrides) -> AttractorSet:
    """Iterate seeds to their end points, merge the converged ones into attractors, check stability.

    Settings: ``cfg`` (a :class:`FieldConfig`, default the paper's) with ``overrides`` (its
    field names, e.g. ``n_seeds=256, solver="anderson"``), resolved once against the map's
    family (``cfg.resolve(map)``); the set records the resolved config. Seeds are N(0, I)
    (``seed_dist="normal"``, the paper), matched to ``data_latents`` (``"data"``), or given
    (``seeds`` [N, *latent_shape], a tensor or numpy array, e.g. encoded images; they keep
    their dtype when it is the map's). With ``out`` the set is saved there, and with
    ``cfg.checkpoint_every`` > 0 the search checkpoints into ``out/checkpoint/`` and resumes
    when called again with the same settings (also after Ctrl-C, which saves first).
    """
    from .iterate import configure

    cfg = configure(map, cfg, overrides)
    parts, map = run_search(map, cfg, seeds=seeds, data_latents=data_latents, out=out, progress=progress)
    rank = distributed.world()[0]
    result = AttractorSet(**parts, model=model_fingerprint(map)) if rank == 0 else None
    if result is not None and out is not None:
        result.save(out)
    result = distributed.broadcast(result)
    distributed.barrier()
    if out is not None:
        from . import checkpoint

        checkpoint.clear(checkpoint.path_for(out, *distributed.world()))
    return result

