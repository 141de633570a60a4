"""Drive an :class:`~probe.field.engine.Engine` to the end: honest progress, checkpoints, Ctrl-C.

The progress bar counts f-evaluations against the work *expected*, re-estimated about
once a second from the convergence seen so far: each running seed is extrapolated from
its residual's log-linear decay since its first step (to ``tol``, capped at
``max_steps``), and each seed still queued is expected to cost the mean of the finished
and extrapolated seeds. The total therefore moves as the run learns, instead of counting
``N * max_steps`` and jumping at the end.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import torch

from .status import RUNNING

__all__ = ["run", "expected_evals"]


def expected_evals(engine) -> int:
    """f-evaluations the whole run is expected to take, from what it has seen so far."""
    o, rows, m = engine.out, engine.rows, engine.max_steps
    finished = o["steps"][o["status"] != RUNNING].double()
    guesses = [finished]
    remaining = 0.0
    if engine.n_active and len(engine.last_res) == engine.n_active:
        t = rows["step"].double().cpu()
        res = engine.last_res.double().cpu().clamp_min(1e-300)
        r0 = o["first_residual"][rows["seed"].cpu()].double().pow(2).clamp_min(1e-300)
        rate = (res.log() - r0.log()) / t.clamp_min(1)            # log residual per step (< 0: shrinking)
        # rows without a decay to go by yet take the finished seeds' mean (or the budget, before any finished)
        fallback = (float(finished.mean()) if len(finished) else float(m)) - t
        known = (rate < -1e-9) & (t >= 2)
        need = torch.where(known, (math.log(engine.tol) - res.log()) / rate.clamp(max=-1e-9), fallback)
        need = torch.nan_to_num(need, nan=m, posinf=m).clamp_min(1)
        total = torch.minimum(t + need, torch.full_like(t, m))
        remaining = float((total - t).clamp_min(0).sum())
        guesses.append(total)
    pool = torch.cat(guesses)
    per_seed = float(pool.mean()) if len(pool) else float(m)
    queued = len(engine.z0) - engine.next_seed
    return int(engine.f_evals + remaining + queued * per_seed)


def run(engine, progress: bool = False, every: int = 0, save: Callable | None = None, desc: str = "iterating") -> float:
    """Step ``engine`` to the end; ``save(engine)`` every ``every`` steps and once more on
    Ctrl-C (then re-raised). Returns the seconds of this call (``engine.elapsed`` counts all runs)."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=None, initial=engine.f_evals, unit="eval", unit_scale=True, desc=desc,  # total: once seen
                   dynamic_ncols=True, file=sys.stderr)
    t0, base, evals0 = time.perf_counter(), engine.elapsed, engine.f_evals
    try:
        with torch.no_grad():
            _steps(engine, bar, save, every, t0, base, evals0)
    except KeyboardInterrupt:
        if save is not None:
            save(engine)
        raise
    finally:
        if bar is not None:
            if engine.done:
                bar.total = bar.n = engine.f_evals
                bar.set_postfix(done=f"{len(engine.z0)}/{len(engine.z0)}", refresh=False)
            bar.close()
    return time.perf_counter() - t0


def _steps(engine, bar, save, every: int, t0: float, base: float, evals0: int) -> None:
    shown = t0
    while not engine.done:
        engine.step()
        now = time.perf_counter()
        engine.elapsed = base + now - t0
        if bar is not None and now - shown > 0.5:
            shown = now
            bar.total = max(engine.f_evals, expected_evals(engine))
            bar.n = engine.f_evals
            bar.set_postfix(done=f"{engine.next_seed - engine.n_active}/{len(engine.z0)}",
                            evals_s=f"{(engine.f_evals - evals0) / max(now - t0, 1e-9):.3g}", refresh=False)
            bar.refresh()
        if save is not None and every and engine.wall_steps % every == 0 and not engine.done:
            save(engine)
