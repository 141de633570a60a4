"""Plain iteration z <- f(z): the paper's method, and the definition of a basin (METHOD.md section 1)."""
from __future__ import annotations

from ..cycles import CycleWatch
from . import Step, register

__all__ = ["Plain"]


@register("plain")
class Plain:
    """One f-evaluation per seed and step; cycles of period 2..max_period are watched for cheaply."""

    def __init__(self, engine):
        self.engine = engine
        self.cycles = CycleWatch(engine.cfg.max_period, engine.tol)

    def new_rows(self, z):
        return self.cycles.new_rows(z)

    def step(self, rows) -> Step:
        z = rows["z"]
        fz = self.engine.f(z)
        res = (fz - z).flatten(1).pow(2).sum(1)
        cycle = self.cycles.update(rows, fz, res, self.engine.wall_steps)
        rows["z"] = fz
        return Step(end=fz, res=res, cycle=cycle)

    def state(self) -> dict:
        return {"watching": self.cycles.watching, "exact": self.cycles.exact}

    def load_state(self, scalars: dict) -> None:
        self.cycles.watching = bool(scalars.get("watching", True))
        self.cycles.exact = bool(scalars.get("exact", True))
