"""Mixed precision: plain iteration in bf16/fp16 down to its rounding floor, then an fp32 polish.

A bf16 f(z) carries ~2^-9 relative rounding, so ||f(z) - z||^2 cannot reach 1e-6 on a
latent of norm ~100: bf16 alone ends in exact repeats or rounding cycles a hair from the
fp32 attractor. Each seed therefore iterates in the low dtype (``cfg.dtype`` when it is
bf16 or fp16, else bf16) until its relative step falls below :data:`FLOOR` times the
dtype's epsilon (or it used :data:`LOW_SHARE` of ``max_steps``), then continues with the
full-precision map under the usual rule, so every end point is a full-precision fixed
point and the steps of both stages count against the one budget. Measured earlier on
trained conv AEs (benchmarks/results/solver_cpu.md): the attractors matched fp32 (same
count, cosine 1.0000) while 1-13% of seeds changed basin (rounding near basin borders).
"""
from __future__ import annotations

import torch

from ..compute import compute_map
from ..cycles import CycleWatch
from . import Step, register

__all__ = ["Mixed"]

FLOOR, LOW_SHARE = 4.0, 0.5
_LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}


@register("mixed")
class Mixed:
    def __init__(self, engine):
        self.engine = engine
        cfg = engine.cfg
        self.low_dtype = _LOW.get(cfg.dtype, torch.bfloat16)
        self.low_map = compute_map(engine.map, self.low_dtype, compile=cfg.compile)
        self.floor = FLOOR * float(torch.finfo(self.low_dtype).eps)
        self.low_steps = max(1, int(LOW_SHARE * engine.max_steps))
        self.cycles = CycleWatch(cfg.max_period, engine.tol)
        self.low_evals = 0

    def new_rows(self, z):
        return {"full_precision": torch.zeros(len(z), dtype=torch.bool, device=z.device), **self.cycles.new_rows(z)}

    def step(self, rows) -> Step:
        e, z, full = self.engine, rows["z"], rows["full_precision"]
        if bool(full.all()):
            fz = e.f(z, e.map)
        elif not bool(full.any()):
            fz = e.f(z, self.low_map)
            self.low_evals += len(z)
        else:
            fz = torch.empty_like(z)
            fz[full] = e.f(z[full], e.map)
            fz[~full] = e.f(z[~full], self.low_map)
            self.low_evals += int((~full).sum())
        res = (fz - z).flatten(1).pow(2).sum(1)
        converged = (res < e.tol) & full
        cycle = self.cycles.update(rows, fz, res, e.wall_steps, plain=full)
        rel = (res / z.flatten(1).pow(2).sum(1).clamp_min(1e-60)).sqrt()
        rows["full_precision"] = full | (rel < self.floor) | (rows["step"] + 1 >= self.low_steps)
        rows["z"] = fz
        return Step(end=fz, res=res, converged=converged, cycle=cycle)

    def state(self) -> dict:
        return {"watching": self.cycles.watching, "exact": self.cycles.exact, "low_evals": self.low_evals}

    def load_state(self, scalars: dict) -> None:
        self.cycles.watching = bool(scalars.get("watching", True))
        self.cycles.exact = bool(scalars.get("exact", True))
        self.low_evals = int(scalars.get("low_evals", 0))
