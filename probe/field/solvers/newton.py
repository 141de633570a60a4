"""Safeguarded Newton-Krylov in the linear tail, plain steps everywhere else.

Plain iteration z <- f(z) stays the reference and the definition of a basin (METHOD.md
section 1). Where it contracts slowly (a step ratio ||dz_t|| / ||dz_{t-1}|| near 1), this
solver solves f(z) = z by Newton's method instead, (J_f - I) dz = -(f(z) - z), with GMRES
on Jacobian-vector products:

- a seed takes plain steps until its residual fell :data:`CALM` times in a row with a settled
  step ratio (changing by less than :data:`SETTLE` a step), or its log residual fell on
  average (weight :data:`TREND`) for :data:`DRIFT` steps (a dominant complex pair makes the
  ratio oscillate), and, after a refused Newton step, until its back-off (8, 16, ...
  :data:`MAX_BACKOFF` plain steps) ran out;
- JVPs are *forward differences*, J_f v ~ (f(z + h v) - f(z)) / h: each costs one
  f-evaluation and rides in the engine's batched f call beside the other seeds' plain steps
  (each evaluation is counted as an f-evaluation or as a JVP, never both);
- a latent of at most :data:`DENSE` dimensions takes its whole Jacobian in one such call
  (k JVPs), proposes dz = -(J_f - I)^-1 (f(z) - z) at once and refuses it when an eigenvalue
  of J_f has modulus >= 1 (near a saddle or an unstable region Newton would aim at it);
- a larger latent builds an Arnoldi basis of (J_f - I), one direction per engine step, and
  after at most :data:`KRYLOV` directions, or once the GMRES residual is below
  :data:`FORCING` of ||f(z) - z||, proposes the GMRES step -- refused when a Ritz value of
  J_f on the Krylov space has modulus >= 1;
- either step is also refused when dz is longer than :data:`REACH` times the distance plain
  iteration is still expected to travel, ||f(z) - z|| / (1 - q) with q the last step ratio
  (a jump that far may leave the basin); a refusal costs nothing more: the seed takes the
  plain step from its point, already known;
- a proposed point is kept only if its squared residual is below :data:`ACCEPT` times the old
  one; otherwise the seed takes the plain step from the old point and backs off; a kept point
  starts the next Newton iteration there -- for a dense latent first a *chord* step with the
  Jacobian already taken (one f-evaluation, no JVPs), and a fresh Jacobian only if that step
  does not halve the residual;
- convergence is the plain rule ||f(z) - z||^2 < tol at two consecutive evaluations of
  which the last is a *plain* step (the end point is f(z), as for plain iteration).
  ``find_attractors`` then checks the spectral radius of every fixed point and redoes the
  seeds of an unstable one by plain iteration, so no saddle is reported.

The whole state is in named row tensors (Krylov basis and Hessenberg matrix included), so
a run checkpoints and resumes like any other solver.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..cycles import CycleWatch
from . import Step, points, register

__all__ = ["Newton", "KRYLOV", "DENSE", "CALM", "SETTLE", "FORCING", "ACCEPT", "REACH", "MAX_BACKOFF"]

#: Most Krylov directions (JVPs) per Newton step; a latent of at most this many dimensions gets all of them.
KRYLOV = 24
DENSE = 32          #: a latent of at most this many dimensions takes its whole Jacobian per Newton step instead
#: Consecutive falling residuals, each with a step ratio within SETTLE of the previous one, before Newton;
#: or DRIFT steps of a falling trend (the log residual's fall averaged with weight TREND). Measured on the
#: bundled fmnist-k16 (64 encoded test images; benchmarks/results/solver_cpu.md): (20, 0.01) alone refuses 25
#: of 118 Newton steps but never starts the two slowest seeds (their ratio oscillates: a complex pair);
#: DRIFT 40 starts them (the last seed ends at engine step 296 instead of 410); DRIFT 25, or (5, 0.05) and
#: (10, 0.02), start earlier but have 40-70% of their Newton steps refused and end later.
CALM = 20
SETTLE = 0.01
TREND = 0.1
DRIFT = 40
FORCING = 1e-3      #: GMRES stops once its residual is below this share of ||f(z) - z||
ACCEPT = 0.5        #: a Newton point is kept when its squared residual is below ACCEPT x the old one
REACH = 4.0         #: the longest Newton step, in distances plain iteration is still expected to travel
FIRST_BACKOFF, MAX_BACKOFF = 8, 64   #: plain steps a seed waits after its first / a repeated refusal
PLAIN, KRYLOV_MODE, TRIAL = 0, 1, 2


def _fd_step(base: Tensor) -> Tensor:
    """Forward-difference step per row for unit directions: sqrt(eps) of the point's scale."""
    eps = torch.finfo(base.dtype).eps
    return math.sqrt(eps) * (1.0 + base.double().norm(dim=1))


def gmres_solve(h: Tensor, beta: Tensor, cols: Tensor) -> tuple[Tensor, Tensor]:
    """min_y ||beta e1 - H y|| per row over its first ``cols`` columns (float64, batched):
    (y [B, m], residual [B]). Unused columns are padded so that their y is 0."""
    b, m1, m = h.shape
    dev = h.device
    c = torch.arange(m, device=dev)
    pad = c[None, :] >= cols[:, None]                          # [B, m] unused columns
    hp = torch.where(pad[:, None, :], torch.zeros_like(h), h)
    rows = torch.arange(m1, device=dev)
    eye = (rows[:, None] == c[None, :] + 1)                    # unused column c -> a 1 in row c + 1
    hp = hp + (pad[:, None, :] & eye[None]).to(h.dtype)
    rhs = torch.zeros(b, m1, 1, dtype=h.dtype, device=dev)
    rhs[:, 0, 0] = beta
    y = torch.linalg.lstsq(hp, rhs, driver="gelsd" if dev.type == "cpu" else None).solution[:, :, 0]
    y = torch.where(pad, torch.zeros_like(y), y)
    resid = (rhs[:, :, 0] - torch.bmm(h, y[:, :, None])[:, :, 0]).norm(dim=1)
    return y, resid


def ritz_radius(h: Tensor, cols: Tensor) -> Tensor:
    """Largest |Ritz value| of J_f = (J_f - I) + I on each row's Krylov space of ``cols`` directions."""
    b, _, m = h.shape
    sq = h[:, :m, :m]
    c = torch.arange(m, device=h.device)
    pad = c[None, :] >= cols[:, None]
    both = pad[:, :, None] | pad[:, None, :]
    sq = torch.where(both, torch.zeros_like(sq), sq)
    sq = sq - torch.diag_embed(pad.to(sq.dtype))  # an unused column adds the eigenvalue -1 of J_f - I (0 of J_f)
    return (torch.linalg.eigvals(sq.cpu()) + 1).abs().max(1).values.to(h.device)


@register("newton")
class Newton:
    def __init__(self, engine, krylov: int | None = None, calm: int | None = None):
        self.engine = engine
        self.k = math.prod(int(s) for s in engine.shape)
        #: a latent of at most DENSE dimensions takes its whole Jacobian in one batched call per Newton step
        self.dense = self.k <= DENSE
        self.m = 1 if self.dense else max(1, min(int(krylov or KRYLOV), self.k))
        self.calm = int(CALM if calm is None else calm)
        self.cycles = CycleWatch(engine.cfg.max_period, engine.tol)
        #: Newton steps proposed, kept, and refused by reason (this process, this run; not checkpointed)
        self.counts = {"started": 0, "kept": 0, "worse": 0, "unstable": 0, "far": 0, "broken": 0}

    def bytes_per_seed(self) -> int:
        item = torch.finfo(self.engine.dtype).bits // 8
        if self.dense:  # the stored Jacobian (float64) and the k probes of a Jacobian step
            return 8 * self.k * self.k + (2 * self.k + 6) * self.k * item
        return (self.m + 7) * self.k * item + 8 * (self.m + 1) * self.m

    def new_rows(self, z: Tensor) -> dict[str, Tensor]:
        b, dev, flat = len(z), z.device, z.flatten(1)
        zeros = torch.zeros(b, dtype=torch.long, device=dev)
        false = torch.zeros(b, dtype=torch.bool, device=dev)
        def f64(value: float) -> Tensor:
            return torch.full((b,), value, device=dev, dtype=torch.float64)

        return {"mode": zeros.clone(), "base": torch.zeros_like(flat), "base_r": torch.zeros_like(flat),
                "base_res": f64(math.inf), "prev_res": f64(math.inf), "ratio": f64(1.0), "trend": f64(0.0),
                "calm": zeros.clone(), "drift": zeros.clone(), "wait": zeros.clone(),
                "backoff": torch.full_like(zeros, FIRST_BACKOFF), "verifying": false.clone(), "cols": zeros.clone(),
                "beta": f64(0.0), "basis": torch.zeros(b, self.m + 1, flat.shape[1], device=dev, dtype=z.dtype),
                "hess": torch.zeros(b, self.m + 1, self.m, device=dev, dtype=torch.float64),
                "jac": torch.zeros(b, *((self.k, self.k) if self.dense else (1, 1)), device=dev, dtype=torch.float64),
                "chord": false.clone(), **self.cycles.new_rows(z)}

    # -- one engine step: one batched f call ---------------------------------------------
    def step(self, rows) -> Step:
        e, a = self.engine, rows
        z, shape, x = points(rows)
        mode = a["mode"]
        kry = mode == KRYLOV_MODE
        any_kry = bool(kry.any())
        kr = kry.nonzero().flatten()
        jac = v = None
        if not any_kry:
            g = e.f(z).flatten(1)
        elif self.dense:  # the Newton rows' whole Jacobian by forward differences, in the same call
            other = (~kry).nonzero().flatten()
            base = a["base"][kr]
            h = _fd_step(base)
            eye = torch.eye(self.k, device=x.device, dtype=x.dtype)
            probes = (base[:, None, :] + h.to(x.dtype)[:, None, None] * eye[None]).reshape(-1, self.k)
            low = e.low_map is not None  # rows still in bf16/fp16 take their own step through the engine
            both = (probes if low else torch.cat([x[other], probes])).view(-1, *shape[1:])
            # in pieces of the engine's chunk: a longer call would come back with the last piece's size as
            # the chunk that "worked" (memory.apply_chunked), shrinking the engine's batch for good
            out = torch.cat([e.f(both[lo:lo + e.chunk], e.step_map) for lo in range(0, len(both), e.chunk)]).flatten(1)
            n_jvp = len(kr) * self.k
            e.f_evals -= n_jvp
            e.jvps += n_jvp
            n_other = 0 if low else len(other)
            if low:
                g = e.f(z).flatten(1)
                e.f_evals -= len(kr)
                g = torch.where(kry[:, None], x + a["base_r"], g)
            else:
                g = x + a["base_r"]            # the Newton rows: f(base), known (x is their base)
                g[other] = out[:n_other]
            fb = (base + a["base_r"][kr]).double()
            jac = ((out[n_other:].view(len(kr), self.k, self.k).double() - fb[:, None, :])
                   / h[:, None, None]).transpose(1, 2)
        else:  # Newton rows evaluate f at their point plus h times the newest Krylov direction
            idx = torch.arange(len(x), device=x.device)
            v = a["basis"][idx, a["cols"].clamp(max=self.m)]
            h = _fd_step(a["base"]).to(x.dtype)
            g = e.f(torch.where(kry[:, None], a["base"] + h[:, None] * v, x).view(shape)).flatten(1)
            e.f_evals -= len(kr)
            e.jvps += len(kr)
            g_seen = g
            g = torch.where(kry[:, None], a["base"] + a["base_r"], g)
            jac = g_seen  # the JVP evaluations, used below
        r = g - x
        res = (r.double() * r.double()).sum(1)
        finite = torch.isfinite(res)
        plainrow = mode == PLAIN
        trial = mode == TRIAL

        # convergence: the plain rule at two consecutive evaluations, the last a plain step
        small = finite & (res < e.tol) & ~kry
        converged = small & a["verifying"] & plainrow
        cycle = self.cycles.update(a, g.view(shape), res.to(x.dtype), e.wall_steps, plain=plainrow)

        x_new = g.clone()            # plain rows: z <- f(z)
        end = g
        res_seen = torch.where(kry, a["base_res"], res)
        new_mode = mode.clone()
        refuse = torch.zeros_like(finite)
        old_g = a["base"] + a["base_r"]   # the plain step from a Newton row's base point

        # -- trial rows: keep the Newton point if its residual dropped enough -----------------
        if bool(trial.any()):
            keep = trial & finite & (res < ACCEPT * a["base_res"])
            # a chord step (the stored Jacobian) that did not help: a fresh Jacobian at the same point
            fresh = trial & ~keep & a["chord"]
            back = trial & ~keep & ~fresh
            refuse |= back
            self.counts["kept"] += int(keep.sum())
            self.counts["worse"] += int(back.sum())
            x_new = torch.where(back[:, None], old_g, x_new)   # refused: the plain step from the old point
            end = torch.where(back[:, None], old_g, end)
            res_seen = torch.where(back, a["base_res"], res_seen)
            new_mode = torch.where(back | (keep & small), PLAIN, new_mode)  # kept and small: a plain step verifies
            a["backoff"] = torch.where(keep, (a["backoff"] // 2).clamp_min(FIRST_BACKOFF), a["backoff"])
            a["prev_res"] = torch.where(keep, res, a["prev_res"])
            again = keep & ~small      # kept, not small: Newton again from there
            if bool(again.any()):
                x_new = torch.where(again[:, None], x, x_new)
                self._start(a, again, x, r, res)
                new_mode = torch.where(again, KRYLOV_MODE, new_mode)
                if self.dense:  # first a chord step with the Jacobian already taken (one f-evaluation, no JVPs)
                    ch = again.nonzero().flatten()
                    ident = torch.eye(self.k, dtype=torch.float64, device=x.device)
                    sol = torch.linalg.solve_ex(a["jac"][ch] - ident, -r[ch].double()[:, :, None])
                    dz = torch.where((sol.info == 0)[:, None], sol.result[:, :, 0], float("nan"))
                    ok = self._guard(a, ch, torch.zeros(len(ch), dtype=torch.float64, device=x.device), dz)
                    go = ch[ok]
                    x_new[go] = (x[go].double() + dz[ok]).to(x.dtype)
                    new_mode[go] = TRIAL
                    a["chord"][go] = True
            if bool(fresh.any()):
                x_new = torch.where(fresh[:, None], a["base"], x_new)
                end = torch.where(fresh[:, None], old_g, end)
                res_seen = torch.where(fresh, a["base_res"], res_seen)
                new_mode = torch.where(fresh, KRYLOV_MODE, new_mode)
                a["chord"] = a["chord"] & ~fresh

        # -- Newton rows: the Jacobian (dense) or one more Arnoldi direction, then maybe the step --
        if any_kry:
            if self.dense:
                assert jac is not None
                decide, ok_step, point = self._dense_newton(a, kr, jac, len(x))
            else:
                assert jac is not None and v is not None
                decide, ok_step, point = self._arnoldi(a, kry, jac, v, x)
            cont = kry & ~decide
            refuse |= decide & ~ok_step
            x_new = torch.where(ok_step[:, None], point, x_new)
            new_mode = torch.where(ok_step, TRIAL, new_mode)
            x_new = torch.where(cont[:, None], x, x_new)                 # still at the base point
            x_new = torch.where((decide & ~ok_step)[:, None], old_g, x_new)  # refused: the plain step
            new_mode = torch.where(decide & ~ok_step, PLAIN, new_mode)
            end = torch.where(kry[:, None], old_g, end)  # what the engine sees: the base point's plain step

        # -- plain rows: watch the step ratio; start Newton when it settled ------------------
        if bool(plainrow.any()):
            prev = a["prev_res"]
            q = (res / prev.clamp_min(1e-300)).sqrt()
            fall = plainrow & finite & (res < prev)
            # the log residual's fall per step, averaged over ~1 / TREND steps (a complex pair oscillates)
            d = torch.nan_to_num((prev.clamp_min(1e-300) / res.clamp_min(1e-300)).log(), nan=0.0, posinf=0.0,
                                 neginf=0.0)
            trend = torch.where(torch.isfinite(prev), (1 - TREND) * a["trend"] + TREND * d, a["trend"])
            a["trend"] = torch.where(plainrow, trend, a["trend"])
            settled = ((q - a["ratio"]).abs() < SETTLE) & fall
            a["calm"] = torch.where(plainrow, torch.where(settled, a["calm"] + 1, 0), a["calm"])
            a["drift"] = torch.where(plainrow, torch.where(trend > 0, a["drift"] + 1, 0), a["drift"])
            a["ratio"] = torch.where(plainrow & finite, q, a["ratio"])
            a["prev_res"] = torch.where(plainrow, res, a["prev_res"])
            a["wait"] = torch.where(plainrow, (a["wait"] - 1).clamp_min(0), a["wait"])
            start = plainrow & finite & ~small & ((a["calm"] >= self.calm) | (a["drift"] >= DRIFT)) & (a["wait"] == 0)
            fp = a.get("full_precision")
            if fp is not None:  # forward differences need the map's own dtype
                start &= fp
            if bool(start.any()):
                x_new = torch.where(start[:, None], x, x_new)
                self._start(a, start, x, r, res)
                new_mode = torch.where(start, KRYLOV_MODE, new_mode)
        if bool(refuse.any()):
            a["wait"] = torch.where(refuse, a["backoff"], a["wait"])
            a["backoff"] = torch.where(refuse, (2 * a["backoff"]).clamp(max=MAX_BACKOFF), a["backoff"])
            a["calm"] = torch.where(refuse, 0, a["calm"])
            a["drift"] = torch.where(refuse, 0, a["drift"])
            a["prev_res"] = torch.where(refuse, a["base_res"], a["prev_res"])
        a["verifying"] = small & ~converged & (new_mode == PLAIN) & ~refuse
        a["mode"] = new_mode
        a["z"] = x_new.view(shape)
        return Step(end=end.view(shape), res=res_seen.to(x.dtype), converged=converged, cycle=cycle,
                    rejected=refuse if bool(refuse.any()) else None)

    def _guard(self, a, rows: Tensor, rho: Tensor, dz: Tensor) -> Tensor:
        """Which proposed steps to try: J_f stable on the Krylov space, dz finite and not too far."""
        q = a["ratio"][rows].clamp(0.0, 0.999)
        reach = REACH * a["beta"][rows] / (1 - q)
        finite = torch.isfinite(dz).all(1) & torch.isfinite(rho)
        stable, near = rho < 1, dz.norm(dim=1) <= reach
        self.counts["broken"] += int((~finite).sum())
        self.counts["unstable"] += int((finite & ~stable).sum())
        self.counts["far"] += int((finite & stable & ~near).sum())
        return finite & stable & near

    def _dense_newton(self, a, kr: Tensor, jac: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """(decided, to try, proposed point) per row from the Newton rows' whole Jacobians ``jac``."""
        dev = jac.device
        rho = torch.full((len(kr),), float("inf"), dtype=torch.float64, device=dev)
        dz = torch.full((len(kr), self.k), float("nan"), dtype=torch.float64, device=dev)
        fj = torch.isfinite(jac).flatten(1).all(1).nonzero().flatten()
        if len(fj):
            rho[fj] = torch.linalg.eigvals(jac[fj].cpu()).abs().max(1).values.to(dev)
            ident = torch.eye(self.k, dtype=torch.float64, device=dev)
            sol = torch.linalg.solve_ex(jac[fj] - ident, -a["base_r"][kr][fj].double()[:, :, None])
            dz[fj] = torch.where((sol.info == 0)[:, None], sol.result[:, :, 0], float("nan"))
        ok = self._guard(a, kr, rho, dz)
        a["jac"][kr] = jac
        a["chord"][kr] = False
        decide = torch.zeros(n, dtype=torch.bool, device=dev)
        decide[kr] = True
        ok_full = torch.zeros_like(decide)
        ok_full[kr] = ok
        point = a["base"].clone()
        point[kr] = (a["base"][kr].double() + torch.nan_to_num(dz)).to(point.dtype)
        return decide, ok_full, point

    def _arnoldi(self, a, kry: Tensor, g: Tensor, v: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One more Arnoldi direction of (J_f - I) per Newton row from its JVP evaluation ``g``; then
        (decided, to try, proposed point) for rows whose space is full or whose GMRES residual is small."""
        n, dev = len(x), x.device
        finite = torch.isfinite(g).all(1)
        ok_col = kry & finite
        h = _fd_step(a["base"])
        fb = (a["base"] + a["base_r"]).double()
        w = (g.double() - fb) / h[:, None] - v.double()   # (J_f - I) v
        w = torch.where(ok_col[:, None], w, torch.zeros_like(w))
        j = a["cols"]
        col_valid = torch.arange(self.m + 1, device=dev)[None, :] <= j[:, None]  # basis vectors 0..j
        basis = a["basis"].double()
        hcol = torch.zeros(n, self.m + 1, dtype=torch.float64, device=dev)
        for _ in range(2):  # classical Gram-Schmidt twice
            c = torch.where(col_valid, torch.bmm(basis, w[:, :, None])[:, :, 0], torch.zeros_like(hcol))
            w = w - torch.bmm(c[:, None, :], basis)[:, 0]
            hcol = hcol + c
        nw = w.norm(dim=1)
        hcol.scatter_(1, (j + 1).clamp(max=self.m)[:, None], nw[:, None])
        rws = ok_col.nonzero().flatten()
        if len(rws):
            a["hess"][rws, :, j.clamp(max=self.m - 1)[rws]] = hcol[rws]
            a["basis"][rws, (j + 1).clamp(max=self.m)[rws]] = (w / nw.clamp_min(1e-300)[:, None]).to(x.dtype)[rws]
            a["cols"] = torch.where(ok_col, j + 1, j)
        cols = a["cols"]
        decide = (kry & ~finite) | (ok_col & ((cols >= self.m) | (nw <= 1e-10 * hcol.abs().sum(1).clamp_min(1e-300))))
        y = torch.zeros(n, self.m, dtype=torch.float64, device=dev)
        if len(rws):
            y_k, resid = gmres_solve(a["hess"][rws], a["beta"][rws], cols[rws])
            y[rws] = y_k
            decide[rws] |= resid <= FORCING * a["beta"][rws]
        ok = torch.zeros_like(decide)
        point = x
        dr = (decide & ok_col).nonzero().flatten()
        if len(dr):
            # (J_f - I) V y ~ r from the basis of r: the Newton step solves (J_f - I) dz = -r
            dz = -torch.bmm(y[dr, None, :], a["basis"][dr, : self.m].double())[:, 0]
            rho = ritz_radius(a["hess"][dr], cols[dr])
            ok[dr] = self._guard(a, dr, rho, dz)
            point = x.clone()
            point[dr] = (a["base"][dr].double() + dz).to(x.dtype)
        self.counts["broken"] += int((kry & ~finite).sum())
        return decide, ok, point

    def _start(self, a, mask: Tensor, x: Tensor, r: Tensor, res: Tensor) -> None:
        """Begin a Newton iteration at x (f(x) - x = r known) for the rows in ``mask``."""
        self.counts["started"] += int(mask.sum())
        a["base"] = torch.where(mask[:, None], x, a["base"])
        a["base_r"] = torch.where(mask[:, None], r, a["base_r"])
        a["base_res"] = torch.where(mask, res, a["base_res"])
        beta = res.clamp_min(0).sqrt()
        a["beta"] = torch.where(mask, beta, a["beta"])
        a["cols"] = torch.where(mask, 0, a["cols"])
        rws = mask.nonzero().flatten()
        if not self.dense:
            a["hess"][rws] = 0
            a["basis"][rws] = 0
            a["basis"][rws, 0] = (r[rws].double() / beta[rws].clamp_min(1e-300)[:, None]).to(x.dtype)

    def state(self) -> dict:
        return {"watching": self.cycles.watching, "exact": self.cycles.exact}

    def load_state(self, scalars: dict) -> None:
        self.cycles.watching = bool(scalars.get("watching", True))
        self.cycles.exact = bool(scalars.get("exact", True))
