"""Dynamics diagnosis: does this autoencoder's latent map contract at all?

Not every autoencoder does. On the real TAEF2 weights no seed converges within 1,000
steps at the paper's tolerance, the median relative step stays near 6% and J_f has
spectral radius 1.5-1.9 along trajectories: that map is expansive, and a run on it
must say so instead of reporting attractors. The verdict rests on three pieces of
evidence: how the seeds ended, the decay of the median relative step, and the
spectral radius of J_f sampled at seeds and at their end points.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .iterate import STATUS

VERDICTS = ("contractive", "mixed", "expansive")


@dataclass
class Diagnosis:
    verdict: str              #: one of VERDICTS
    line: str                 #: the verdict with its evidence, in one line
    fractions: dict           #: status name -> fraction of seeds
    median_rel_step: Tensor   #: [T] median ||f(z) - z|| / ||z|| of running seeds per step
    curve_every: int          #: median_rel_step[j] is at step j * curve_every + 1
    rho_start: Tensor         #: [P] spectral radius of J_f at sampled seeds
    rho_end: Tensor           #: [P] ... and at the same seeds' end points

    def meta(self) -> dict:
        return {"verdict": self.verdict, "line": self.line, "fractions": self.fractions,
                "curve_every": self.curve_every, "rho_start": self.rho_start.tolist(),
                "rho_end": self.rho_end.tolist()}

    @classmethod
    def from_meta(cls, meta: dict, curve: Tensor) -> "Diagnosis":
        return cls(meta["verdict"], meta["line"], meta["fractions"], curve, int(meta["curve_every"]),
                   torch.tensor(meta["rho_start"], dtype=torch.float32),
                   torch.tensor(meta["rho_end"], dtype=torch.float32))


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _median(x: Tensor) -> float:
    x = x[torch.isfinite(x)]
    return float(x.median()) if len(x) else math.nan


def diagnose(status: Tensor, steps: Tensor, median_rel_step: Tensor, curve_every: int, rho_start: Tensor,
             rho_end: Tensor, tol: float, max_steps: int, rtol: float | None = None) -> Diagnosis:
    """The verdict on a run from its per-seed outcomes and sampled spectral radii."""
    n = max(1, len(status))
    frac = {name: int((status == code).sum()) / n for code, name in enumerate(STATUS)}
    fc, fy, fd = frac["converged"], frac["cycle"], frac["diverged"]
    r_end = _median(rho_end)
    curve = median_rel_step[torch.isfinite(median_rel_step)]
    decay = float(curve[-1] / curve[0]) if len(curve) and float(curve[0]) > 0 else math.nan
    if fc >= 0.9:
        verdict, why = "contractive", "seeds settle on fixed points"
    elif fc + fy <= 0.1 and (fd >= 0.5 or r_end > 1):
        verdict, why = "expansive", "J_f stretches space along the trajectories: there are no attractors to report"
    elif fc + fy <= 0.1 and r_end < 1 and decay < 0.5:
        verdict, why = "contractive", f"but too slow for {max_steps} steps: raise max_steps"
    elif fy >= 0.5:
        verdict, why = "mixed", "most seeds end in cycles, which are not attractors"
    else:
        verdict, why = "mixed", "only part of latent space flows to fixed points"
    rule = f"tol {tol:g}" + (f", rtol {rtol:g}" if rtol else "")
    conv_steps = steps[status == 0]
    parts = [f"{_pct(fc)} of {len(status)} seeds converged within {max_steps} steps ({rule}"
             + (f", median {int(conv_steps.float().median())} steps)" if len(conv_steps) else ")"),
             f"{_pct(fy)} in cycles", f"{_pct(frac['unconverged'])} unconverged"]
    if fd:
        parts.append(f"{_pct(fd)} diverged")
    if len(curve):
        parts.append(f"median relative step {_pct(float(curve[0]))} at step 1 -> "
                     f"{_pct(float(curve[-1]))} at step {(len(curve) - 1) * curve_every + 1}")
    rho = torch.cat([rho_start, rho_end])
    rho = rho[torch.isfinite(rho)]
    if len(rho):
        parts.append(f"spectral radius of J_f along trajectories {float(rho.min()):.3g}-{float(rho.max()):.3g} "
                     f"(end points median {r_end:.3g})")
    line = f"{verdict}: " + "; ".join(parts) + f" -> {why}"
    return Diagnosis(verdict, line, frac, median_rel_step, int(curve_every), rho_start.float(), rho_end.float())
