"""A safeguarded Anderson solver for z* = f(z*), batched per seed, with active-set compaction.

Plain iteration z <- f(z) stays the reference (METHOD.md section 1); this solver only
reaches the same kind of end point in fewer f-evaluations where the map contracts
slowly. A naive Anderson(5) did far worse than plain iteration on trained CIFAR/MNIST
autoencoders (6-39% of seeds converged against 98-100%, end points drifting away under
plain steps; issue 8), so every step here is guarded:

- Anderson mixing per seed (type II, Walker & Ni 2011): with residuals r = f(x) - x and
  the last ``m`` differences dX, dR, take gamma = argmin ||r - dR gamma|| (a regularised
  m x m solve per seed, batched) and x+ = x + beta r - (dX + beta dR) gamma.
- Safeguard: a mixed step is kept only if the residual at the new point is smaller than
  at the old one; otherwise the seed goes back to the old point, takes the plain step
  f(x_old) (already computed, so it costs nothing), restarts its history and takes a
  growing number of plain steps (1, 2, 4, ... ``MAX_BACKOFF``) before mixing again.
- Mixing waits for ``calm`` consecutive falling residuals (the final linear phase); after
  a refusal it waits again.
- Convergence is the plain rule ||f(z) - z||^2 < tol, re-checked after one plain step
  (the end point is f(z), as for plain iteration), so a point the mixing merely passed
  through is never reported.
- Any solver can land on saddles: :func:`check_end_points` measures the spectral radius
  of J_f at the end points; only radius < 1 is an attractor (``find_attractors`` does the
  same for its merged points).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ProbeError
from ..maps.base import LatentMap
from .iterate import (CONVERGED, DIVERGED, RUNNING, UNCONVERGED, Trajectories, check_seeds, curve_step, iterate,
                      median_curve, run)
from .speed import apply_chunked, choose_batch_size

KEYS = ("idx", "x", "t", "px", "pr", "pres", "has_prev", "aa", "confirm", "dX", "dR", "cnt", "wait", "backoff", "calm")
#: After a refused mixed step a seed takes ``backoff`` plain steps before mixing again, and the
#: backoff doubles (up to this cap) with every refusal: where mixing keeps failing (the long
#: transients of trained autoencoders, where even the plain residual rises for a while) the
#: solver becomes plain iteration plus a few wasted evaluations, instead of stalling.
MAX_BACKOFF = 64
#: Mixing starts only after this many consecutive steps with a falling residual. Trained
#: autoencoders spend most steps passing near saddles (residual ratio ~1, then rising);
#: mixing there lands on the saddle, so it waits for the final, steadily contracting phase.
#: On a 1-epoch Fashion-MNIST k=16 autoencoder (128 seeds), 5 gave 98% agreement with plain
#: iteration's end points and 20 gave 100% (3 attractors, as plain), for 10% fewer f-evaluations.
CALM = 20


@dataclass
class AndersonTrajectories(Trajectories):
    """:class:`Trajectories` plus what the safeguard did."""

    rejected: Tensor | None = None   #: [N] mixed steps the safeguard refused (each cost one f-evaluation)
    settings: dict | None = None     #: m, beta, safeguard, restart_every, lam, tol, max_steps, batch_size
    spectral_radius: Tensor | None = None  #: [N] of J_f at the end point (NaN where not converged), if checked
    redone: Tensor | None = None     #: [N] seeds whose Anderson end point was unstable, redone by plain iteration


def _mix(x: Tensor, r: Tensor, dX: Tensor, dR: Tensor, cnt: Tensor, beta: float, lam: float) -> Tensor:
    """One Anderson step per row from the last min(cnt, m) differences (rows with cnt 0: damped plain step)."""
    b, m, _ = dX.shape
    valid = torch.arange(m, device=x.device)[None, :] < cnt.clamp(max=m)[:, None]          # [B, m]
    dRd = dR.double()
    gram = torch.bmm(dRd, dRd.transpose(1, 2))                                            # [B, m, m]
    both = valid[:, :, None] & valid[:, None, :]
    gram = torch.where(both, gram, torch.zeros_like(gram))
    scale = (gram.diagonal(dim1=1, dim2=2).sum(1) / cnt.clamp(1, m)).clamp_min(1e-300)      # mean ||dR_j||^2
    # Tikhonov term relative to the data keeps nearly collinear differences from blowing gamma up;
    # unused slots get a unit diagonal so their gamma is exactly 0.
    diag = torch.where(valid, lam * scale[:, None], torch.ones_like(scale)[:, None].expand(b, m))
    gram = gram + torch.diag_embed(diag)
    rhs = torch.where(valid, torch.bmm(dRd, r.double()[:, :, None])[:, :, 0], torch.zeros(b, m, dtype=torch.float64,
                                                                                         device=x.device))
    gamma = torch.linalg.solve(gram, rhs).to(x.dtype)                                    # [B, m]
    return x + beta * r - torch.bmm(gamma[:, None, :], dX + beta * dR)[:, 0]


class AndersonSolver:
    """The state of solving N seeds: per-seed history, the active batch, the queue, the outputs."""

    def __init__(self, map: LatentMap, z0: Tensor, *, tol: float, max_steps: int, m: int = 5, beta: float = 1.0,
                 safeguard: bool = True, restart_every: int | None = None, lam: float = 1e-8,
                 batch_size: int | None = None, calm: int = CALM, curve_every: int | None = None):
        self.map, self.z0 = map, check_seeds(z0).detach().float().cpu()
        self.tol, self.max_steps, self.m, self.beta = float(tol), int(max_steps), int(m), float(beta)
        self.safeguard, self.lam = bool(safeguard), float(lam)
        self.calm = int(calm) if safeguard else 0
        self.restart_every = int(restart_every) if restart_every else None
        n, self.shape = len(self.z0), tuple(self.z0.shape[1:])
        self.k = math.prod(self.shape)
        self.dev = map.device
        self.batch_size = int(batch_size or choose_batch_size(
            map, self.shape, n, extra_per_sample=(2 * self.m + 4) * self.k * 4))
        self.chunk = self.batch_size  # shrinks if f runs out of memory mid-run
        self.curve_every = int(curve_every or curve_step(n, self.max_steps))  # as iterate.Engine: shards agree
        self.out = {"z": torch.zeros(n, *self.shape), "steps": torch.zeros(n, dtype=torch.long),
                    "status": torch.full((n,), RUNNING, dtype=torch.int8),
                    "residuals": torch.full((n,), float("nan")), "first_residual": torch.full((n,), float("nan")),
                    "rejected": torch.zeros(n, dtype=torch.long), "period": torch.zeros(n, dtype=torch.long),
                    "history": torch.full((n, math.ceil(self.max_steps / self.curve_every)), float("nan"))}
        self.next, self.n_evals, self.wall_steps = 0, 0, 0
        self.elapsed = 0.0  # seconds of solving, across resumes (iterate.run keeps it)
        self.act = self._rows(torch.zeros(0, self.k), torch.zeros(0, dtype=torch.long))

    def _rows(self, x: Tensor, idx: Tensor) -> dict[str, Tensor]:
        b, d = len(x), self.dev
        x = x.to(d, torch.float32)
        zeros = torch.zeros(b, dtype=torch.long, device=d)
        false = torch.zeros(b, dtype=torch.bool, device=d)
        return {"idx": idx.to(d), "x": x, "t": zeros, "px": torch.zeros_like(x), "pr": torch.zeros_like(x),
                "pres": torch.full((b,), float("inf"), device=d), "has_prev": false, "aa": false.clone(),
                "confirm": false.clone(), "dX": torch.zeros(b, self.m, self.k, device=d),
                "dR": torch.zeros(b, self.m, self.k, device=d), "cnt": zeros.clone(), "wait": zeros.clone(),
                "backoff": torch.ones(b, dtype=torch.long, device=d), "calm": zeros.clone()}

    @property
    def done(self) -> bool:
        return self.next >= len(self.z0) and len(self.act["idx"]) == 0

    def _refill(self) -> None:
        free = self.batch_size - len(self.act["idx"])
        if free > 0 and self.next < len(self.z0):
            lo, hi = self.next, min(len(self.z0), self.next + free)
            self.next = hi
            new = self._rows(self.z0[lo:hi].flatten(1), torch.arange(lo, hi))
            self.act = {k: torch.cat([self.act[k], new[k]]) for k in KEYS}

    def _f(self, x: Tensor) -> Tensor:
        z = x.view(len(x), *self.shape)
        g, self.chunk = apply_chunked(self.map.f, z, self.chunk)
        if tuple(g.shape) != tuple(z.shape):
            raise ProbeError(f"f changed the latent shape from {self.shape} to {tuple(g.shape[1:])}; "
                             f"do the seeds match the map's latent shape at this resolution?")
        return g.float().flatten(1)

    @torch.no_grad()
    def step(self) -> int:
        """One f-evaluation of every active seed, then its next point; returns how many seeds stopped."""
        self._refill()
        a = self.act
        if len(a["idx"]) == 0:
            return 0
        x, t = a["x"], a["t"]
        g = self._f(x)
        r = g - x
        res = (r * r).sum(1)
        finite = torch.isfinite(res)
        self.n_evals += len(x)
        self.wall_steps += 1
        self._bookkeep(a["idx"], t, res, (res.sqrt() / x.norm(dim=1).clamp_min(1e-30)))

        worse = ~finite | (res >= a["pres"]) if self.safeguard else ~finite
        reject = a["aa"] & worse               # the mixed step did not help: back to the plain step
        diverged = ~a["aa"] & ~finite          # a plain step went non-finite: as plain iteration would
        ok = finite & ~reject
        small = ok & (res < self.tol)
        conv = small & a["confirm"]
        t1 = t + 1
        unconv = (t1 >= self.max_steps) & ~conv & ~diverged
        stop = conv | diverged | unconv
        pres_old = a["pres"]

        # -- the next point of every row -------------------------------------------------
        g_prev = a["px"] + a["pr"]             # f(previous point): the plain step the safeguard falls back to
        push = ok & a["has_prev"]
        if bool(push.any()):
            slot = (a["cnt"] % self.m)[push]
            rows = push.nonzero().flatten()
            a["dX"][rows, slot] = (x - a["px"])[push]
            a["dR"][rows, slot] = (r - a["pr"])[push]
            a["cnt"] = torch.where(push, a["cnt"] + 1, a["cnt"])
        if self.restart_every:
            a["cnt"] = torch.where(a["cnt"] >= self.restart_every, 0, a["cnt"])
        a["cnt"] = torch.where(reject, 0, a["cnt"])
        a["wait"] = torch.where(reject, a["backoff"], (a["wait"] - 1).clamp_min(0))
        a["backoff"] = torch.where(reject, (2 * a["backoff"]).clamp(max=MAX_BACKOFF),
                                   torch.where(a["aa"] & ok, (a["backoff"] // 2).clamp_min(1), a["backoff"]))
        a["calm"] = torch.where(ok & (res < pres_old), a["calm"] + 1, 0)
        mix = ok & ~small & (a["cnt"] > 0) & (a["wait"] == 0) & (a["calm"] >= self.calm)
        x_new = torch.where(small[:, None], g, x + self.beta * r)   # a candidate is re-checked by one plain step
        if bool(mix.any()):
            rows = mix.nonzero().flatten()
            xm = _mix(x[rows], r[rows], a["dX"][rows], a["dR"][rows], a["cnt"][rows], self.beta, self.lam)
            bad = ~torch.isfinite(xm).all(1)
            xm = torch.where(bad[:, None], g[rows], xm)
            x_new[rows] = xm
            mix[rows[bad]] = False
        x_new = torch.where(reject[:, None], g_prev, x_new)
        x_new = torch.where(diverged[:, None], x, x_new)
        a["px"] = torch.where(ok[:, None], x, a["px"])
        a["pr"] = torch.where(ok[:, None], r, a["pr"])
        a["pres"] = torch.where(ok, res, torch.where(reject, float("inf"), a["pres"]))
        a["has_prev"] = ok | (a["has_prev"] & ~reject)
        a["aa"], a["confirm"] = mix, small & ~conv
        a["x"], a["t"] = x_new, t1

        i = a["idx"].cpu()
        o = self.out
        o["rejected"][i] += reject.cpu().long()
        if bool(stop.any()):
            end = torch.where(ok[:, None], g, torch.where(reject[:, None], g_prev, x))
            code = torch.where(conv, CONVERGED, torch.where(diverged, DIVERGED, UNCONVERGED))
            s = stop.cpu()
            o["z"][i[s]] = end[stop].cpu().view(-1, *self.shape)
            o["steps"][i[s]] = t1[stop].cpu()
            o["status"][i[s]] = code[stop].to(torch.int8).cpu()
            o["residuals"][i[s]] = torch.where(ok, res, pres_old)[stop].float().cpu()
            keep = ~stop
            self.act = {k: a[k][keep] for k in KEYS}
        return int(stop.sum())

    def _bookkeep(self, idx: Tensor, t: Tensor, res: Tensor, rel: Tensor) -> None:
        i, tc = idx.cpu(), t.cpu()
        first = tc == 0
        if bool(first.any()):
            self.out["first_residual"][i[first]] = res.sqrt().cpu()[first]
        on = (tc % self.curve_every) == 0
        self.out["history"][i[on], tc[on] // self.curve_every] = rel.float().cpu()[on]

    # -- resume (the same interface as iterate.Engine, so checkpoint.py can save it) ---------
    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {f"out.{k}": v for k, v in self.out.items()}
        tensors.update({f"act.{k}": v.cpu() for k, v in self.act.items()})
        return tensors, {"next": self.next, "n_evals": self.n_evals, "wall_steps": self.wall_steps,
                         "elapsed": self.elapsed}

    def load_state_dict(self, tensors: dict[str, Tensor], scalars: dict) -> None:
        for k in self.out:
            if tensors[f"out.{k}"].shape != self.out[k].shape:
                raise ProbeError(f"checkpoint does not match this run ({k} has shape {tuple(tensors[f'out.{k}'].shape)})")
            self.out[k] = tensors[f"out.{k}"].clone()
        self.act = {k: tensors[f"act.{k}"].to(device=self.dev, dtype=self.act[k].dtype) for k in KEYS}
        for k in ("next", "n_evals", "wall_steps"):
            setattr(self, k, int(scalars[k]))
        self.elapsed = float(scalars.get("elapsed", 0.0))

    def result(self, seconds: float) -> AndersonTrajectories:
        if not self.done:
            raise ProbeError("the solver has not finished")
        o = self.out
        settings = {"solver": "anderson", "m": self.m, "beta": self.beta, "safeguard": self.safeguard,
                    "restart_every": self.restart_every, "lam": self.lam, "calm": self.calm, "tol": self.tol,
                    "max_steps": self.max_steps, "batch_size": self.batch_size}
        return AndersonTrajectories(z=o["z"], steps=o["steps"], status=o["status"], period=o["period"],
                                    residuals=o["residuals"], first_residual=o["first_residual"],
                                    median_rel_step=median_curve(o["history"]), curve_every=self.curve_every,
                                    n_evals=self.n_evals, seconds=seconds, rejected=o["rejected"], settings=settings)


def _check_shape(map: LatentMap, z0: Tensor) -> None:
    """Seeds of the wrong size fail inside f with a matmul error; say it plainly instead."""
    if map.downsample is None and isinstance(z0, Tensor) and z0.dim() >= 2:  # not resolution dependent
        try:
            want = tuple(map.latent_shape())
        except Exception:  # noqa: BLE001 - a map that cannot say keeps the shape check inside f
            return
        if tuple(z0.shape[1:]) != want:
            raise ProbeError(f"seeds have latent shape {tuple(z0.shape[1:])}, {map.name} expects {want}")


def solve(map: LatentMap, z0: Tensor, tol: float | None = None, max_steps: int | None = None, m: int = 5,
          beta: float = 1.0, safeguard: bool = True, restart_every: int | None = None, lam: float = 1e-8,
          batch_size: int | None = None, calm: int = CALM, progress: bool = False) -> AndersonTrajectories:
    """Solve z = f(z) from each seed in ``z0`` [N, *latent_shape] by safeguarded Anderson(m) mixing.

    ``tol`` / ``max_steps`` default to ``map.field_defaults`` and mean what they mean for
    :func:`probe.field.iterate` (``steps`` counts f-evaluations, rejected steps included).
    ``beta`` < 1 damps the step; ``restart_every`` clears each seed's history that often;
    ``calm`` is how many consecutive falling residuals a seed needs before it mixes (0: mix
    from the start); ``safeguard=False`` is naive Anderson (no refusal, no waiting; for
    comparison only). End points are not yet
    attractors: check them with :func:`check_end_points` (or let ``find_attractors`` do it).
    """
    if not isinstance(map, LatentMap):
        raise ProbeError(f"map must be a LatentMap (see probe.load / probe.wrap), got {type(map).__name__}")
    d = getattr(map, "field_defaults", {}) or {}
    tol = d.get("tol", 1e-5) if tol is None else tol
    max_steps = d.get("max_steps", 500) if max_steps is None else max_steps
    if not tol > 0 or int(max_steps) < 1:
        raise ProbeError(f"need tol > 0 and max_steps >= 1 (got {tol}, {max_steps})")
    if int(m) < 1 or not 0 < beta <= 1 or lam < 0:
        raise ProbeError(f"need m >= 1, 0 < beta <= 1 and lam >= 0 (got m={m}, beta={beta}, lam={lam})")
    _check_shape(map, z0)
    solver = AndersonSolver(map, z0, tol=tol, max_steps=max_steps, m=m, beta=beta, safeguard=safeguard,
                            restart_every=restart_every, lam=lam, batch_size=batch_size, calm=calm)
    run(solver, progress=progress)
    return solver.result(solver.elapsed)


def check_end_points(map: LatentMap, traj: Trajectories, n_iter: int = 30, merge_threshold: float | None = 0.99,
                     batch_size: int | None = None, seed: int = 0) -> Tensor:
    """Spectral radius of J_f at each converged end point ([N], NaN where not converged).

    With ``merge_threshold`` (cosine, the paper's rule) end points are grouped first and
    one radius is measured per group; ``None`` measures every end point. Only radius < 1
    makes an attractor: a saddle that Anderson reached keeps radius > 1 here.
    """
    from .merge import merge_end_points
    from .stability import spectral_radius

    rho = torch.full((len(traj.z),), float("nan"))
    conv = traj.converged.nonzero().flatten()
    if len(conv) == 0:
        return rho
    if merge_threshold is None:
        rho[conv] = spectral_radius(map, traj.z[conv], n_iter=n_iter, seed=seed, batch_size=batch_size)
        return rho
    labels, leaders = merge_end_points(traj.z[conv], "cosine", merge_threshold)
    per_group = spectral_radius(map, traj.z[conv][leaders], n_iter=n_iter, seed=seed, batch_size=batch_size)
    rho[conv] = per_group[labels]
    return rho


def attractor_mask(map: LatentMap, traj: Trajectories, **kw) -> Tensor:
    """[N] True where a seed converged to a stable fixed point (spectral radius of J_f < 1)."""
    rho = check_end_points(map, traj, **kw)
    return traj.converged & (rho < 1)


def solve_stable(map: LatentMap, z0: Tensor, tol: float | None = None, max_steps: int | None = None,
                 n_iter: int = 30, merge_threshold: float | None = 0.99, check_map: LatentMap | None = None,
                 **solve_options) -> AndersonTrajectories:
    """:func:`solve`, then the stability check; seeds that ended on an unstable fixed point
    (a saddle Anderson can reach and plain iteration cannot) are redone by plain iteration
    from their seed, so every converged end point is one plain iteration could reach.

    ``check_map`` (default ``map``) computes the spectral radius: give the fp32 map when
    ``map`` runs in bf16, whose rounding would swamp the Jacobian-vector products.
    """
    check_map = check_map or map
    traj = solve(map, z0, tol=tol, max_steps=max_steps, **solve_options)
    rho = check_end_points(check_map, traj, n_iter=n_iter, merge_threshold=merge_threshold)
    redo = traj.converged & ~(rho < 1)
    if bool(redo.any()):
        i = redo.nonzero().flatten()
        tol_, steps_ = traj.settings["tol"], traj.settings["max_steps"]
        plain = iterate(map, z0[i], tol=tol_, max_steps=steps_, batch_size=traj.settings["batch_size"])
        spent = traj.steps[i].clone()
        for k in ("z", "steps", "status", "period", "residuals"):
            getattr(traj, k)[i] = getattr(plain, k).to(getattr(traj, k).dtype)
        traj.steps[i] += spent  # steps count every f-evaluation the seed cost, the wasted ones too
        traj.n_evals += plain.n_evals
        traj.seconds += plain.seconds
        sub = check_end_points(check_map, plain, n_iter=n_iter, merge_threshold=merge_threshold)
        rho[i] = sub
    traj.spectral_radius, traj.redone = rho, redo
    return traj
