"""Seeds -> end points -> distinct attractors, with their stability (METHOD.md section 2).

Only seeds that converge become attractors. A seed that ends in a cycle or at
``max_steps`` is reported as such (``status``), and its end point is kept in
``end_points``: for a map that never contracts (TAEF2) those end points are the one
dictionary there is, but they are not attractors.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import asdict
from ..errors import ProbeError
from ..io import load_result, save_result
from ..maps.base import LatentMap
from . import checkpoint, distributed
from .config import FieldConfig
from .diagnose import Diagnosis, diagnose
from .iterate import CONVERGED, STATUS, Engine, curve_step, median_curve, run
from .merge import RULES, merge_end_points
from .seeds import data_stats, gaussian_seeds
from .stability import spectral_radius

_PER_SEED = ("assignment", "steps", "status", "period", "end_points", "residuals", "first_residual")


@dataclass
class AttractorSet:
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
    config: dict              #: the resolved FieldConfig
    map: dict                 #: map.describe() of the model
    timing: dict              #: n_evals, seconds, evals_per_second, processes

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
        lines = [f"fixed points: {k} (merge: {rule}); stable (attractors): {s}"
                 + (f" = {100 * s / k:.3g}%" if k else ""),
                 "seeds: " + ", ".join(f"{v} {n}" for n, v in self.status_counts().items()),
                 f"steps{'' if len(conv) else ' (no seed converged)'}: median {float(st.median()):.0f}, "
                 f"p95 {float(st.quantile(0.95)):.0f}",
                 f"throughput: {self.timing['evals_per_second']:.1f} f-evaluations/s ({self.timing['n_evals']} in "
                 f"{self.timing['seconds']:.1f} s, {self.timing['processes']} process(es))",
                 self.diagnosis.line]
        return lines

    # -- io -------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        tensors = {k: getattr(self, k) for k in ("points", "counts", "stable", "spectral_radius", *_PER_SEED)}
        tensors.update(median_rel_step=self.diagnosis.median_rel_step)
        meta = {"kind": "AttractorSet", "version": 1, "merge": self.merge, "config": self.config, "map": self.map,
                "timing": self.timing, "status_counts": self.status_counts(), "diagnosis": self.diagnosis.meta(),
                "summary": self.summary()}
        return save_result(folder, tensors, meta)

    @classmethod
    def load(cls, folder: str | Path) -> "AttractorSet":
        tensors, meta = load_result(folder)
        if meta.get("kind") != "AttractorSet":
            raise ProbeError(f"{folder} does not hold an AttractorSet (kind {meta.get('kind')!r})")
        diag = Diagnosis.from_meta(meta["diagnosis"], tensors.pop("median_rel_step"))
        return cls(**tensors, diagnosis=diag, merge=meta["merge"], config=meta["config"], map=meta["map"],
                   timing=meta["timing"])

    def decode(self, map: LatentMap, batch_size: int = 32, which: str = "points") -> Tensor:
        """Decoded images [K, C, H, W] in [0, 1] of the points (or ``which="end_points"``)."""
        from .plot import _decode

        z = getattr(self, which)
        return _decode(map, z, batch_size) if len(z) else torch.zeros(0)

    def plot(self, map: LatentMap, path: str | Path, max_points: int = 64) -> Path:
        """A PNG grid of decoded attractors with basin sizes (unconverged end points if none)."""
        from .plot import plot_set

        return plot_set(self, map, Path(path), max_points)


def find_attractors(map: LatentMap, n_seeds: int = 4096, seed: int = 0, seeds: Tensor | None = None,
                    tol: float | None = None, max_steps: int | None = None, merge: str = "cosine",
                    merge_threshold: float = 0.99, resolution: int | None = None, device=None,
                    seed_dist: str = "normal", data_latents: Tensor | None = None, batch_size: int | None = None,
                    out: str | Path | None = None, checkpoint_every: int | None = None, rtol: float | None = None,
                    max_period: int = 8, power_iters: int = 30, probe_points: int = 8,
                    progress: bool = False) -> AttractorSet:
    """Iterate seeds to their end points, merge the converged ones into attractors, check stability.

    Seeds are N(0, I) (``seed_dist="normal"``, the paper), matched to ``data_latents``
    (``"data"``), or given (``seeds`` [N, *latent_shape], e.g. encoded images). With
    ``out`` the set is saved there and, with ``checkpoint_every``, the run resumes.
    """
    try:
        cfg = FieldConfig(n_seeds=len(seeds) if seeds is not None else n_seeds, seed=seed, seed_dist=seed_dist,
                          resolution=resolution, tol=tol, rtol=rtol, max_steps=max_steps, max_period=max_period,
                          merge=merge, merge_threshold=merge_threshold, power_iters=power_iters,
                          probe_points=probe_points, batch_size=batch_size, checkpoint_every=checkpoint_every)
    except (TypeError, ValueError) as e:
        raise ProbeError(f"bad settings: {e}") from e
    return search(map, cfg, seeds=seeds, data_latents=data_latents, device=device, out=out, progress=progress)


def _seeds_for(cfg: FieldConfig, shape, lo: int, hi: int, seeds: Tensor | None, stats) -> Tensor:
    if seeds is not None:
        return seeds[lo:hi].detach().float().cpu()
    mean, std = stats if stats is not None else (None, None)
    return gaussian_seeds(cfg.n_seeds, shape, cfg.seed, lo, hi, mean=mean, std=std)


def search(map: LatentMap, cfg: FieldConfig, *, seeds: Tensor | None = None, data_latents: Tensor | None = None,
           device=None, out: str | Path | None = None, progress: bool = False) -> AttractorSet:
    """:func:`find_attractors` from a :class:`FieldConfig` (what ``probe run`` calls)."""
    if not isinstance(map, LatentMap):
        raise ProbeError(f"map must be a LatentMap (see probe.load / probe.wrap), got {type(map).__name__}")
    rank, size = distributed.world()
    device = device or distributed.process_device()
    if device is not None:
        map = map.to(torch.device(device))
    shape = tuple(map.latent_shape(cfg.resolution))
    d = getattr(map, "field_defaults", {}) or {}
    cfg = dataclasses.replace(cfg, tol=cfg.tol or d.get("tol", 1e-5), max_steps=cfg.max_steps or d.get("max_steps", 500))
    if seeds is not None:
        if tuple(seeds.shape[1:]) != shape:
            raise ProbeError(f"seeds have latent shape {tuple(seeds.shape[1:])}, the map expects {shape}")
        cfg = dataclasses.replace(cfg, n_seeds=len(seeds))
    stats = None
    if seeds is None and cfg.seed_dist == "data":
        if data_latents is None:
            raise ProbeError("seed_dist='data' needs data_latents (encoded images) to match their mean and spread")
        stats = data_stats(data_latents, shape)
    lo, hi = distributed.shard(cfg.n_seeds, rank, size)
    engine = Engine(map, _seeds_for(cfg, shape, lo, hi, seeds, stats), tol=cfg.tol, rtol=cfg.rtol,
                    max_steps=cfg.max_steps, batch_size=cfg.batch_size, max_period=cfg.max_period,
                    curve_every=curve_step(cfg.n_seeds, cfg.max_steps))
    ckpt, save_ckpt = None, None
    if out is not None and cfg.checkpoint_every:
        ckpt = checkpoint.path_for(out, rank, size)
        digest = checkpoint.tensor_digest(seeds) if seeds is not None else (
            checkpoint.tensor_digest(torch.cat(stats)) if stats is not None else None)
        fp = checkpoint.fingerprint(config={k: v for k, v in asdict(cfg).items() if k not in ("batch_size", "checkpoint_every")},
                                    map=map.describe(), shape=shape, seeds=digest, shard=(lo, hi))
        checkpoint.resume(ckpt, engine, fp)
        save_ckpt = lambda e: checkpoint.save(ckpt, e, fp)  # noqa: E731
    seconds = run(engine, progress=progress and rank == 0, every=cfg.checkpoint_every, callback=save_ckpt)
    if save_ckpt is not None:
        save_ckpt(engine)  # a kill during merging or stability does not redo the iteration
    shards = distributed.gather({**engine.out, "n_evals": engine.n_evals, "seconds": engine.elapsed or seconds})
    result = None
    if rank == 0:
        result = _assemble(map, cfg, shards, seeds, stats, shape, size)
        if out is not None:
            result.save(out)
    result = distributed.broadcast(result)
    distributed.barrier()
    if ckpt is not None:
        checkpoint.clear(ckpt)
    return result


def _assemble(map, cfg: FieldConfig, shards: list[dict], seeds, stats, shape, size: int) -> AttractorSet:
    """On the main process: all end points in seed order -> merged, stability-checked attractors."""
    cat = {k: torch.cat([s[k] for s in shards]) for k in ("z", "steps", "status", "period", "residuals",
                                                          "first_residual", "history")}
    status, end = cat["status"], cat["z"]
    conv = (status == CONVERGED).nonzero().flatten()
    labels, _ = merge_end_points(end[conv], cfg.merge, cfg.merge_threshold)
    k = int(labels.max()) + 1 if len(labels) else 0
    counts = torch.bincount(labels, minlength=k)
    first = torch.full((k,), len(status), dtype=torch.long).scatter_reduce(0, labels, conv, "amin")
    # a group's point is its best-converged member (smallest residual; ties -> the earliest seed)
    rank_in = torch.argsort(cat["residuals"][conv], stable=True)
    rep = torch.full((k,), -1, dtype=torch.long)
    for j in reversed(rank_in.tolist()):
        rep[labels[j]] = conv[j]
    order = sorted(range(k), key=lambda g: (-int(counts[g]), int(first[g])))
    new_id = torch.empty(k, dtype=torch.long)
    new_id[torch.tensor(order, dtype=torch.long)] = torch.arange(k)
    assignment = torch.full((len(status),), -1, dtype=torch.long)
    assignment[conv] = new_id[labels] if k else assignment[conv]
    points = end[rep[order]] if k else torch.zeros(0, *shape)
    bs = max(1, (cfg.batch_size or 64) // 2)
    rho = spectral_radius(map, points, n_iter=cfg.power_iters, seed=cfg.seed, batch_size=bs)
    n_probe = min(cfg.probe_points, len(status))
    probe = torch.linspace(0, len(status) - 1, n_probe).round().long().unique() if n_probe else torch.zeros(0, dtype=torch.long)
    z0 = torch.cat([_seeds_for(cfg, shape, int(i), int(i) + 1, seeds, stats) for i in probe]) if len(probe) else end[:0]
    rho_start = spectral_radius(map, z0, n_iter=cfg.power_iters, seed=cfg.seed + 1, batch_size=bs)
    rho_end = spectral_radius(map, end[probe], n_iter=cfg.power_iters, seed=cfg.seed + 2, batch_size=bs)
    diag = diagnose(status, cat["steps"], median_curve(cat["history"]), curve_step(cfg.n_seeds, cfg.max_steps),
                    rho_start, rho_end, cfg.tol, cfg.max_steps, cfg.rtol)
    n_evals, seconds = sum(s["n_evals"] for s in shards), max(s["seconds"] for s in shards)
    timing = {"n_evals": n_evals, "seconds": seconds, "processes": size,
              "evals_per_second": n_evals / seconds if seconds > 0 else float("nan"), "finished": time.time()}
    merge = {"rule": cfg.merge, "threshold": cfg.merge_threshold, "meaning": RULES[cfg.merge],
             "merged": int(len(conv)), "into": k}
    return AttractorSet(points=points, counts=counts[order] if k else counts, stable=rho < 1, spectral_radius=rho,
                        assignment=assignment, steps=cat["steps"], status=status, period=cat["period"],
                        end_points=end, residuals=cat["residuals"], first_residual=cat["first_residual"],
                        diagnosis=diag, merge=merge, config={**asdict(cfg), "seeds": "given" if seeds is not None else cfg.seed_dist},
                        map=map.describe(), timing=timing)
