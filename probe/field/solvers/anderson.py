"""Safeguarded Anderson acceleration in the linear tail, with plain steps through the transient.

Plain iteration z <- f(z) stays the reference (METHOD.md section 1); this solver only
reaches the same kind of end point in fewer f-evaluations where the map contracts
slowly. A naive Anderson(5) did far worse than plain iteration on trained CIFAR/MNIST
autoencoders (6-39% of seeds converged against 98-100%; issue 8), so every step is guarded:

- each seed takes plain steps until its residual fell :data:`CALM` times in a row (the
  final, steadily contracting phase; trained autoencoders pass near saddles before it);
- then Anderson mixing (type II, Walker & Ni 2011) over the last ``MEMORY`` differences:
  gamma = argmin ||r - dR gamma|| (a regularised m x m solve per seed, batched in float64),
  z+ = z + r - (dZ + dR) gamma;
- a mixed step is kept only if the residual at the new point is smaller than at the old
  one; otherwise the seed takes the plain step from the old point (already computed, so
  it costs nothing), forgets its history and waits a growing number of plain steps
  (1, 2, 4, ... :data:`MAX_BACKOFF`) before mixing again;
- convergence is the plain rule ||f(z) - z||^2 < tol holding at two consecutive *plain*
  steps (the end point is f(z), as for plain iteration), so a point the mixing merely
  passed through is never reported; ``find_attractors`` then checks the spectral radius
  of every fixed point and redoes the seeds of an unstable one by plain iteration.

An experiment, off by default (:data:`EXTRAPOLATE` 0; benchmarks/bench_solver.py turns it on):
*projective* steps through the transient. Plain iteration is forward Euler with step 1 on
dz/dt = f(z) - z, and on trained conv AEs consecutive steps are nearly parallel there (the
orbit follows a slow manifold past saddles, cosine 0.99+ from step to step). A seed whose
last two differences have cosine above :data:`ALIGN`, :data:`BLOCK` plain steps after its
last jump, jumps to f(z) + EXTRAPOLATE (f(z) - z), the flow ahead extrapolated; the fast
modes (eigenvalues of J_f near 0) decay in the plain steps between jumps. Seeds calm enough
to mix no longer jump.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..cycles import CycleWatch
from . import Step, points, register

__all__ = ["Anderson", "MEMORY", "CALM", "MAX_BACKOFF", "EXTRAPOLATE"]

#: Differences kept per seed, and consecutive falling residuals before a seed mixes. Measured on the
#: bundled fmnist-k16 with 64 encoded test images (median 249 plain steps, 46% of them in the transient
#: before the residual falls for good): (5, 20) 1.5x fewer f-evaluations than plain with the same 12
#: attractors and every seed in its plain basin; (10, 10), (8, 15), (5, 30) and longer memories did no better.
MEMORY = 5
CALM = 20
MAX_BACKOFF = 64   #: most plain steps a seed waits after a refused mixed step
REGULARISATION = 1e-8
#: z <- z + RELAX (f(z) - z) between mixed steps: the same fixed points, a faster transient. 1.8 halves the
#: transient (2.3x fewer f-evaluations on fmnist-k16) but moved 6% of the seeds to other basins and lost an
#: attractor with a small basin, so the default keeps plain steps (benchmarks/results/solver_cpu.md).
RELAX = 1.0
#: Projective jumps in the transient (0: off): f(z) + EXTRAPOLATE (f(z) - z) where the last two differences
#: have cosine > ALIGN, at most every BLOCK + 1 steps. Measured on fmnist-k16 and a CIFAR-10 k=64 AE with
#: MEMORY 10, CALM 10 (benchmarks/results/solver_cpu.md): (4, 0.999, 2) ~1.9x fewer evaluations with the
#: same attractors; ALIGN 0.99 or EXTRAPOLATE 8 moved seeds into attractors plain never reaches.
EXTRAPOLATE = 0.0
ALIGN = 0.999
BLOCK = 2


def mix(z: Tensor, r: Tensor, dz: Tensor, dr: Tensor, length: Tensor, beta: float = 1.0,
        lam: float = REGULARISATION) -> Tensor:
    """One Anderson step per row from its last min(length, m) differences."""
    b, m, _ = dz.shape
    valid = torch.arange(m, device=z.device)[None, :] < length.clamp(max=m)[:, None]
    drd = dr.double()
    gram = torch.bmm(drd, drd.transpose(1, 2))
    gram = torch.where(valid[:, :, None] & valid[:, None, :], gram, torch.zeros_like(gram))
    scale = (gram.diagonal(dim1=1, dim2=2).sum(1) / length.clamp(1, m)).clamp_min(1e-300)
    diag = torch.where(valid, lam * scale[:, None], torch.ones_like(scale)[:, None].expand(b, m))
    rhs = torch.where(valid, torch.bmm(drd, r.double()[:, :, None])[:, :, 0], torch.zeros(b, m, dtype=torch.float64,
                                                                                       device=z.device))
    gamma = torch.linalg.solve(gram + torch.diag_embed(diag), rhs).to(z.dtype)
    return z + beta * r - torch.bmm(gamma[:, None, :], dz + beta * dr)[:, 0]


@register("anderson")
class Anderson:
    def __init__(self, engine, memory: int | None = None, calm: int | None = None, relax: float | None = None):
        self.engine = engine
        self.memory = int(memory or MEMORY)
        self.calm = int(CALM if calm is None else calm)
        self.relax = float(relax or RELAX)
        self.jump = float(EXTRAPOLATE) if self.relax == 1.0 else 0.0
        self.waiting = False  # some row waits after a refused mixed step (python flag: no work while none does)
        #: after this many steps a seed takes plain steps only (relaxation stops; cycles are watched for)
        self.plain_after = max(200, engine.max_steps // 4)
        self.cycles = CycleWatch(engine.cfg.max_period, engine.tol)

    def bytes_per_seed(self) -> int:
        k = 1
        for s in self.engine.shape:
            k *= int(s)
        return (2 * self.memory + 4) * k * torch.finfo(self.engine.dtype).bits // 8

    def new_rows(self, z: Tensor) -> dict[str, Tensor]:
        b, dev, flat = len(z), z.device, z.flatten(1)
        zeros = torch.zeros(b, dtype=torch.long, device=dev)
        false = torch.zeros(b, dtype=torch.bool, device=dev)
        return {"prev_z": torch.zeros_like(flat), "prev_r": torch.zeros_like(flat),
                "prev_res": torch.full((b,), float("inf"), device=dev, dtype=z.dtype), "has_prev": false,
                "mixed": false.clone(), "verifying": false.clone(),
                "dz_history": torch.zeros(b, self.memory, flat.shape[1], device=dev, dtype=z.dtype),
                "dr_history": torch.zeros(b, self.memory, flat.shape[1], device=dev, dtype=z.dtype),
                "history_len": zeros, "wait": zeros.clone(), "backoff": torch.ones(b, dtype=torch.long, device=dev),
                "calm": zeros.clone(), **self.cycles.new_rows(z),
                **({"since": zeros.clone(), "jumped": false.clone()} if self.jump else {})}

    def step(self, rows) -> Step:
        e, a = self.engine, rows
        z, shape, x = points(rows)
        g = e.f(z).flatten(1)
        r = g - x
        res = (r * r).sum(1)
        if self.relax == 1.0 and not self._near_tail(a):
            return self._plain_step(a, x, g, r, res, shape)
        finite = torch.isfinite(res)
        all_finite = bool(finite.all())
        any_mixed = bool(a["mixed"].any())
        prev_res = a["prev_res"]
        if any_mixed:
            reject = a["mixed"] & (~finite | (res >= prev_res))  # the mixed step did not help: back to the plain step
            any_reject = bool(reject.any())
        else:
            reject, any_reject = torch.zeros_like(finite), False
        ok = finite & ~reject if any_reject or not all_finite else finite
        small = ok & (res < e.tol)
        converged = small & a["verifying"]
        plain = ~a["mixed"] if any_mixed else None  # cycles of f: only along plain steps
        if self.jump:
            plain = ~a["jumped"] if plain is None else plain & ~a["jumped"]
        if self.relax != 1.0:
            plain = (~a["mixed"]) & (a["step"] > self.plain_after)
        cycle = self.cycles.update(a, g.view(shape), res, e.wall_steps, plain=plain)

        w = 1.0 if self.relax == 1.0 else \
            torch.where(a["step"] < self.plain_after, self.relax, 1.0).to(x.dtype)[:, None]  # relaxation per row
        push = ok & a["has_prev"]
        rws = push.nonzero().flatten()
        if len(rws):
            slot = (a["history_len"] % self.memory)[rws]
            a["dz_history"][rws, slot] = (x - a["prev_z"])[rws]
            a["dr_history"][rws, slot] = (r - a["prev_r"])[rws]
            a["history_len"] = a["history_len"] + push
        if self.waiting:
            a["wait"] = (a["wait"] - 1).clamp_min(0)
        if any_reject:
            a["history_len"] = torch.where(reject, 0, a["history_len"])
            a["wait"] = torch.where(reject, a["backoff"], a["wait"])
            a["backoff"] = torch.where(reject, (2 * a["backoff"]).clamp(max=MAX_BACKOFF), a["backoff"])
            self.waiting = True
        if any_mixed:
            a["backoff"] = torch.where(a["mixed"] & ok, (a["backoff"] // 2).clamp_min(1), a["backoff"])
        a["calm"] = torch.where(ok & (res < prev_res), a["calm"] + 1, 0)
        mixing = ok & ~small & (a["history_len"] > 0) & (a["calm"] >= self.calm)
        if self.waiting:
            mixing &= a["wait"] == 0
        x_new = torch.where(small[:, None], g, x + w * r) if self.relax != 1.0 else g.clone()
        if bool(mixing.any()):
            mrows = mixing.nonzero().flatten()
            xm = mix(x[mrows], r[mrows], a["dz_history"][mrows], a["dr_history"][mrows], a["history_len"][mrows],
                     beta=1.0)
            bad = ~torch.isfinite(xm).all(1)
            x_new[mrows] = torch.where(bad[:, None], g[mrows], xm)
            mixing[mrows[bad]] = False
        if self.jump:
            x_new = self._jump(a, x_new, g, r, ok & ~small & ~reject & (a["calm"] < self.calm))
        end, res_seen = g, res
        if any_reject:  # back to the previous point and its (relaxed) step, which costs nothing
            g_prev = a["prev_z"] + w * a["prev_r"]
            x_new = torch.where(reject[:, None], g_prev, x_new)
            end = torch.where(reject[:, None], g_prev, g)
            res_seen = torch.where(reject, prev_res, res)  # a refused step is no divergence
        if not all_finite:
            x_new = torch.where((~ok & ~reject)[:, None], x, x_new)
        if any_reject or not all_finite:
            a["prev_z"] = torch.where(ok[:, None], x, a["prev_z"])
            a["prev_r"] = torch.where(ok[:, None], r, a["prev_r"])
            a["prev_res"] = torch.where(ok, res, torch.where(reject, float("inf"), prev_res))
            a["has_prev"] = ok | (a["has_prev"] & ~reject)
        else:
            a["prev_z"], a["prev_r"], a["prev_res"] = x, r, res
            a["has_prev"] = ok
        a["mixed"], a["verifying"] = mixing, small & ~converged
        a["z"] = x_new.view(shape)
        return Step(end=end.view(shape), res=res_seen, converged=converged, cycle=cycle,
                    rejected=reject if any_reject else None)

    def _near_tail(self, a) -> bool:
        """Some row mixed last step, or will be calm enough to mix within ``memory`` steps."""
        if not len(a["calm"]):
            return False
        return bool(a["mixed"].any()) or int(a["calm"].max()) >= self.calm - self.memory - 1

    def _plain_step(self, a, x, g, r, res, shape) -> Step:
        """The transient, where no row is near mixing: a plain step with the few counts mixing needs
        later (the difference history is rebuilt in the ``memory`` steps before a row first mixes)."""
        small = res < self.engine.tol
        converged = small & a["verifying"]
        cycle = self.cycles.update(a, g.view(shape), res, self.engine.wall_steps,
                                   plain=~a["jumped"] if self.jump else None)
        a["calm"] = torch.where(res < a["prev_res"], a["calm"] + 1, 0)
        x_new = self._jump(a, g, g, r, torch.isfinite(res) & ~small) if self.jump else g
        a["prev_z"], a["prev_r"], a["prev_res"] = x, r, res
        a["has_prev"] = torch.isfinite(res)
        a["history_len"] = torch.zeros_like(a["history_len"])
        a["verifying"] = small & ~converged
        a["z"] = x_new.view(shape)
        return Step(end=g.view(shape), res=res, converged=converged, cycle=cycle)

    def _jump(self, a, x_new: Tensor, g: Tensor, r: Tensor, eligible: Tensor) -> Tensor:
        """Projective steps: rows whose last two differences are aligned go to g + EXTRAPOLATE r
        (call before ``prev_r`` moves on)."""
        p = a["prev_r"]
        cos = (r * p).sum(1) / (r.norm(dim=1) * p.norm(dim=1)).clamp_min(1e-30)
        jump = eligible & a["has_prev"] & (a["since"] >= BLOCK) & (cos > ALIGN)
        a["since"] = torch.where(jump, 0, a["since"] + 1)
        a["jumped"] = jump
        if not bool(jump.any()):
            return x_new
        a["history_len"] = torch.where(jump, 0, a["history_len"])
        return torch.where(jump[:, None], g + self.jump * r, x_new)

    def state(self) -> dict:
        return {"watching": self.cycles.watching, "exact": self.cycles.exact, "waiting": self.waiting}

    def load_state(self, scalars: dict) -> None:
        self.cycles.watching = bool(scalars.get("watching", True))
        self.cycles.exact = bool(scalars.get("exact", True))
        self.waiting = bool(scalars.get("waiting", True))
