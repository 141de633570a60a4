"""The work behind :func:`~probe.field.attractors.find_attractors`: seeds, the engine run with
checkpoints, then merging, stability (and re-verification for accelerated solvers), diagnosis."""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch
from torch import Tensor

from ..errors import ProbeError
from . import checkpoint, distributed
from .config import FieldConfig
from .diagnose import diagnose
from .engine import Engine, check_seeds, curve_step, median_curve, state_dtype
from .loop import run
from .merge import RULES, merge_end_points
from .runtime import check_device, threads
from .seeds import data_stats, gaussian_seeds
from .stability import jvps_per_point, spectral_radius
from .status import CONVERGED

__all__ = ["run_search"]

_CAT = ("end_points", "steps", "status", "period", "residuals", "first_residual", "history", "rejected")


def _seeds_for(cfg: FieldConfig, shape, lo: int, hi: int, seeds: Tensor | None, stats, dtype) -> Tensor:
    if seeds is not None:
        return seeds[lo:hi].detach().cpu().to(dtype)
    mean, std = stats if stats is not None else (None, None)
    return gaussian_seeds(cfg.n_seeds, shape, cfg.seed, lo, hi, mean=mean, std=std).to(dtype)


def run_search(map, cfg: FieldConfig, *, seeds=None, data_latents=None, out=None,
               progress=False) -> tuple[dict[str, Any], Any]:
    """(the AttractorSet's fields -- empty on processes other than the main one --, the map on its
    device) for a resolved ``cfg``."""
    assert cfg.tol is not None and cfg.max_steps is not None, "run_search needs cfg.resolve(map)"
    max_steps = int(cfg.max_steps)
    rank, size = distributed.world()
    device = check_device(cfg.device) or distributed.process_device()
    if device is not None:
        map = map.to(device)
    shape = tuple(map.latent_shape(cfg.resolution))
    if seeds is not None:
        seeds = check_seeds(seeds, shape)
        cfg = dataclasses.replace(cfg, n_seeds=len(seeds))
    stats = None
    if seeds is None and cfg.seed_dist == "data":
        if data_latents is None:
            raise ProbeError("seed_dist='data' needs data_latents (encoded images) to match their mean and spread")
        stats = data_stats(data_latents, shape)
    dtype = state_dtype(cfg, map)
    lo, hi = distributed.shard(cfg.n_seeds, rank, size)
    with threads(cfg.threads):
        engine = Engine(map, _seeds_for(cfg, shape, lo, hi, seeds, stats, dtype), cfg,
                        curve_every=curve_step(cfg.n_seeds, max_steps))
        save = None
        if out is not None and cfg.checkpoint_every:
            path = checkpoint.path_for(out, rank, size)
            digest = checkpoint.tensor_digest(seeds) if seeds is not None else (
                checkpoint.tensor_digest(torch.cat(stats)) if stats is not None else None)
            skip = ("batch_size", "checkpoint_every", "threads", "device")
            fp = checkpoint.fingerprint(config={k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip},
                                        map=map.describe(), shape=shape, seeds=digest, shard=(lo, hi))
            checkpoint.resume(path, engine, fp)
            save = lambda e: checkpoint.save(path, e, fp)  # noqa: E731
        run(engine, progress=progress and rank == 0, every=cfg.checkpoint_every, save=save)
        if save is not None:
            save(engine)  # a kill during merging or stability does not redo the iteration
        shards = distributed.gather({**engine.out, "f_evals": engine.f_evals, "jvps": engine.jvps,
                                     "seconds": engine.elapsed})
        parts: dict[str, Any] = {}
        if rank == 0:
            parts = assemble(map, cfg, shards, seeds, stats, shape, size, dtype)
    return parts, map


def _merge(cfg: FieldConfig, status: Tensor, end: Tensor, residuals: Tensor, shape):
    """Converged end points -> (points, counts, assignment) with groups ordered by basin size."""
    conv = (status == CONVERGED).nonzero().flatten()
    labels, _ = merge_end_points(end[conv], cfg.merge, cfg.merge_threshold)
    k = int(labels.max()) + 1 if len(labels) else 0
    counts = torch.bincount(labels, minlength=k)
    first = torch.full((k,), len(status), dtype=torch.long).scatter_reduce(0, labels, conv, "amin")
    # a group's point is its best-converged member (smallest residual; ties -> the earliest seed)
    order_in = torch.argsort(residuals[conv], stable=True)
    rep = torch.full((k,), -1, dtype=torch.long)
    for j in reversed(order_in.tolist()):
        rep[labels[j]] = conv[j]
    order = sorted(range(k), key=lambda g: (-int(counts[g]), int(first[g])))
    new_id = torch.empty(k, dtype=torch.long)
    new_id[torch.tensor(order, dtype=torch.long)] = torch.arange(k)
    assignment = torch.full((len(status),), -1, dtype=torch.long)
    if k:
        assignment[conv] = new_id[labels]
    points = end[rep[order]] if k else torch.zeros(0, *shape, dtype=end.dtype)
    return points, counts[order] if k else counts, assignment


def assemble(map, cfg: FieldConfig, shards: list[dict], seeds, stats, shape, size: int, dtype) -> dict:
    """On the main process: all end points in seed order -> merged, stability-checked attractors."""
    assert cfg.tol is not None and cfg.max_steps is not None, "assemble needs cfg.resolve(map)"
    cat = {k: torch.cat([s[k] for s in shards]) for k in _CAT}
    f_evals, jvps = sum(s["f_evals"] for s in shards), sum(s["jvps"] for s in shards)
    seconds = max(s["seconds"] for s in shards)
    t0 = time.perf_counter()
    bs = max(1, min(cfg.batch_size or 64, 256))
    points, counts, assignment = _merge(cfg, cat["status"], cat["end_points"], cat["residuals"], shape)
    rho = spectral_radius(map, points, n_iter=cfg.power_iters, seed=cfg.seed, batch_size=bs)
    per_point = jvps_per_point(shape, cfg.power_iters)
    jvps += len(points) * per_point
    redone = 0
    if cfg.solver != "plain" and len(points) and not bool((rho < 1).all()):
        # an accelerated solver may land on a saddle: its seeds are redone by plain iteration
        bad = (~(rho < 1)).nonzero().flatten()
        idx = torch.isin(assignment, bad).nonzero().flatten()
        z0 = torch.cat([_seeds_for(cfg, shape, int(i), int(i) + 1, seeds, stats, dtype) for i in idx])
        plain = dataclasses.replace(cfg, solver="plain")
        eng = Engine(map, z0, plain, curve_every=curve_step(cfg.n_seeds, cfg.max_steps))
        run(eng)
        for k in ("end_points", "status", "period", "residuals"):
            cat[k][idx] = eng.out[k].to(cat[k].dtype)
        cat["steps"][idx] += eng.out["steps"]
        f_evals += eng.f_evals
        redone = len(idx)
        points, counts, assignment = _merge(cfg, cat["status"], cat["end_points"], cat["residuals"], shape)
        rho = spectral_radius(map, points, n_iter=cfg.power_iters, seed=cfg.seed, batch_size=bs)
        jvps += len(points) * per_point
    stable = rho < 1
    status, end = cat["status"], cat["end_points"]
    n_conv = int((status == CONVERGED).sum())
    share = float(counts[stable].sum()) / n_conv if n_conv and len(points) else None
    used = {"jvps": 0}

    def sample_rho():
        n_probe = min(cfg.probe_points, len(status))
        if not n_probe:
            return torch.zeros(0), torch.zeros(0)
        probe = torch.linspace(0, len(status) - 1, n_probe).round().long().unique()
        z0 = torch.cat([_seeds_for(cfg, shape, int(i), int(i) + 1, seeds, stats, dtype) for i in probe])
        both = spectral_radius(map, torch.cat([z0, end[probe]]), n_iter=cfg.power_iters, seed=cfg.seed + 1,
                               batch_size=bs)
        used["jvps"] = 2 * len(probe) * per_point
        return both[: len(probe)], both[len(probe):]

    diag = diagnose(status, cat["steps"], median_curve(cat["history"]), curve_step(cfg.n_seeds, cfg.max_steps),
                    sample_rho, None, cfg.tol, cfg.max_steps, cfg.rtol, stable_share=share,
                    n_points=len(points), n_stable=int(stable.sum()))
    jvps += used["jvps"]
    timing = {"f_evals": f_evals, "jvps": jvps, "seconds": seconds, "check_seconds": time.perf_counter() - t0,
              "processes": size, "evals_per_second": f_evals / seconds if seconds > 0 else float("nan"),
              "redone": redone, "rejected": int(cat["rejected"].sum()), "finished": time.time()}
    merge = {"rule": cfg.merge, "threshold": cfg.merge_threshold, "meaning": RULES[cfg.merge],
             "merged": n_conv, "into": len(points)}
    return dict(points=points, counts=counts, stable=stable, spectral_radius=rho, assignment=assignment,
                steps=cat["steps"], status=status, period=cat["period"], end_points=end,
                residuals=cat["residuals"], first_residual=cat["first_residual"], diagnosis=diag, merge=merge,
                config={**dataclasses.asdict(cfg), "seeds": "given" if seeds is not None else cfg.seed_dist},
                map=map.describe(), timing=timing,
                seed_mean=None if stats is None else stats[0], seed_std=None if stats is None else stats[1])
