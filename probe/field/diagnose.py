"""Dynamics diagnosis: does this autoencoder's latent map contract at all? (verdicts earned, issue 15)

Not every autoencoder does. On the real TAEF2 weights no seed converges within 1,000
steps at the paper's tolerance, the median relative step stays near 6% and J_f has
spectral radius 1.5-1.9 along trajectories: that map is expansive, and a run on it
must say so instead of reporting attractors. The verdict rests on how the seeds ended,
on the decay of the median relative step, on the stability of the fixed points found
and, where those do not decide, on the spectral radius of J_f sampled at seeds and end
points. Each verdict must be earned:

- ``contractive`` needs 90% of the seeds converged *and* 90% of them in basins of stable
  fixed points (fixed points that are all unstable are no evidence of contraction);
- ``expansive`` needs the step to have stopped shrinking over a budget long enough to
  tell (at least :data:`MIN_STEPS_TO_TELL` steps) and the end points to stretch space;
- a budget too short to tell is ``undetermined (N% of seeds still moving at step T)``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .status import STATUS

__all__ = ["Diagnosis", "diagnose", "VERDICTS", "MIN_STEPS_TO_TELL"]

VERDICTS = ("contractive", "mixed", "expansive", "undetermined")
MIN_STEPS_TO_TELL = 50
#: The median relative step "stopped shrinking" when its last value is at least this share of its value halfway.
PLATEAU = 0.5


@dataclass
class Diagnosis:
    verdict: str              #: one of VERDICTS
    line: str                 #: the verdict with its evidence, in one line
    fractions: dict           #: status name -> fraction of seeds
    median_rel_step: Tensor   #: [T] median ||f(z) - z|| / ||z|| of running seeds per step
    curve_every: int          #: median_rel_step[0] is at step 1, [j] within curve_every steps before j * curve_every + 1
    rho_start: Tensor         #: [P] spectral radius of J_f at sampled seeds (empty when not needed)
    rho_end: Tensor           #: [P] ... and at the same seeds' end points

    def meta(self) -> dict:
        return {"verdict": self.verdict, "line": self.line, "fractions": self.fractions,
                "curve_every": self.curve_every, "rho_start": self.rho_start.tolist(),
                "rho_end": self.rho_end.tolist()}

    @classmethod
    def from_meta(cls, meta: dict, curve: Tensor) -> Diagnosis:
        return cls(meta["verdict"], meta["line"], meta["fractions"], curve, int(meta["curve_every"]),
                   torch.tensor(meta["rho_start"], dtype=torch.float32),
                   torch.tensor(meta["rho_end"], dtype=torch.float32))


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _median(x: Tensor) -> float:
    x = x[torch.isfinite(x)]
    return float(x.median()) if len(x) else math.nan


def diagnose(status: Tensor, steps: Tensor, median_rel_step: Tensor, curve_every: int,
             rho_start: Tensor | Callable[[], tuple[Tensor, Tensor]] | None, rho_end: Tensor | None,
             tol: float, max_steps: int, rtol: float | None = None, stable_share: float | None = None,
             n_points: int | None = None, n_stable: int | None = None) -> Diagnosis:
    """The verdict on a run from its per-seed outcomes.

    ``stable_share``: the share of converged seeds whose fixed point is stable (None: not
    checked). ``rho_start`` may be a callable returning (rho_start, rho_end): it is called
    only when the outcomes and the stability do not decide the verdict (it costs JVPs).
    """
    n = max(1, len(status))
    frac = {name: int((status == code).sum()) / n for code, name in enumerate(STATUS)}
    fc, fy, fd, fu = frac["converged"], frac["cycle"], frac["diverged"], frac["unconverged"]
    curve = median_rel_step[torch.isfinite(median_rel_step)]
    last_step = (len(curve) - 1) * curve_every + 1 if len(curve) else 0
    half = float(curve[len(curve) // 2]) if len(curve) else 0.0
    plateau = bool(len(curve) >= 2 and half > 0 and float(curve[-1]) >= PLATEAU * half)
    long_enough = int(max_steps) >= MIN_STEPS_TO_TELL
    stable_ok = stable_share is None or stable_share >= 0.9
    empty = torch.zeros(0)
    needs_rho = fc + fy <= 0.1 and fd < 0.5 and long_enough and plateau  # the one verdict rho can change
    if callable(rho_start):
        rho_start, rho_end = rho_start() if needs_rho else (empty, empty)
    rho_start = empty if rho_start is None else rho_start
    rho_end = empty if rho_end is None else rho_end
    r_end = _median(rho_end)
    moving = fu  # seeds still moving when the budget ran out
    undetermined = (f"undetermined ({_pct(moving)} of seeds still moving at step {int(max_steps)})", 
                    "the budget is too short to tell: raise max_steps")
    if fc >= 0.9 and stable_ok:
        verdict, why = "contractive", "seeds settle on stable fixed points"
    elif fc >= 0.9 and n_stable == 0:
        verdict, why = "undetermined", (f"no fixed point is stable (0 of {n_points}): these are not attractors; "
                                        f"the tolerance may be too loose")
    elif fc >= 0.9:
        verdict, why = "mixed", f"only {_pct(stable_share or 0)} of converged seeds end on stable fixed points"
    elif fc + fy <= 0.1 and fd >= 0.5:
        verdict, why = "expansive", "most seeds diverge: there are no attractors to report"
    elif fc + fy <= 0.1 and long_enough and plateau and r_end > 1:
        verdict, why = "expansive", "J_f stretches space along the trajectories: there are no attractors to report"
    elif fu >= 0.5 and (not long_enough or not plateau):
        verdict, why = undetermined
    elif fy >= 0.5:
        verdict, why = "mixed", "most seeds end in cycles, which are not attractors"
    elif fu >= 0.5:
        verdict, why = undetermined
    else:
        verdict, why = "mixed", "only part of latent space flows to fixed points"
    rule = f"tol {tol:g}" + (f", rtol {rtol:g}" if rtol else "")
    conv_steps = steps[status == 0]
    parts = [f"{_pct(fc)} of {len(status)} seeds converged within {max_steps} steps ({rule}"
             + (f", median {int(conv_steps.float().median())} steps)" if len(conv_steps) else ")"),
             f"{_pct(fy)} in cycles", f"{_pct(fu)} unconverged"]
    if fd:
        parts.append(f"{_pct(fd)} diverged")
    if n_points is not None and n_stable is not None:
        parts.append(f"{n_stable} of {n_points} fixed points stable")
    if len(curve):
        parts.append(f"median relative step {_pct(float(curve[0]))} at step 1 -> {_pct(float(curve[-1]))} "
                     f"at step {last_step}")
    rho = torch.cat([rho_start.flatten(), rho_end.flatten()]) if len(rho_start) + len(rho_end) else empty
    rho = rho[torch.isfinite(rho)]
    if len(rho):
        parts.append(f"spectral radius of J_f along trajectories {float(rho.min()):.3g}-{float(rho.max()):.3g} "
                     f"(end points median {r_end:.3g})")
    head = verdict if not verdict.startswith("undetermined (") else verdict
    verdict = verdict.split(" (")[0]
    line = f"{head}: " + "; ".join(parts) + f" -> {why}"
    return Diagnosis(verdict, line, frac, median_rel_step, int(curve_every), rho_start.float(), rho_end.float())
