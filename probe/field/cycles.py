"""Cheap cycle detection for plain steps: anchors, set only where the step stopped shrinking.

Every :data:`CHECK_EVERY` steps a seed whose squared step did not fall below
:data:`STALL` times its value at the previous check (and that ran at least
:data:`MIN_STEPS` steps) is *anchored*: its current point is kept. From then on each
step compares f(z) with the anchor, one distance per seed; the first return within
``tol`` gives the period p (so the smallest period is found, up to ``max_period``).
The cycle is confirmed when the seed is back on the anchor after a whole window of
periods (at least ``WINDOW_PERIODS * p`` and :data:`MIN_STEPS` steps) and its step did
not shrink meanwhile: a slowly contracting oscillation (an eigenvalue near -1) also comes
back close to itself, but its steps keep shrinking, so it is re-anchored and watched on.
An anchor that sees no return within ``max_period`` steps is dropped. Seeds that keep
contracting are never anchored and cost nothing here.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CycleWatch", "CHECK_EVERY"]

CHECK_EVERY, STALL, MIN_STEPS, WINDOW_PERIODS, SHRINK = 8, 0.9, 16, 2, 0.99
KEYS = ("anchor", "anchor_step", "anchor_res", "return_period", "check_res")


class CycleWatch:
    """Per-seed anchors for cycles of period 2..``max_period`` (``max_period`` 1: off)."""

    def __init__(self, max_period: int, tol: float):
        self.max_period, self.tol = int(max_period), float(tol)
        self.on = self.max_period >= 2
        self.watching = False  # some row holds an anchor (a python flag: no work while none does)

    def new_rows(self, z: Tensor) -> dict[str, Tensor]:
        if not self.on:
            return {}
        b, dev = len(z), z.device
        return {"anchor": torch.zeros_like(z), "anchor_step": torch.full((b,), -1, dtype=torch.long, device=dev),
                "anchor_res": torch.zeros(b, device=dev, dtype=torch.float64),
                "return_period": torch.zeros(b, dtype=torch.long, device=dev),
                "check_res": torch.full((b,), float("inf"), device=dev, dtype=torch.float64)}

    def update(self, rows: dict, fz: Tensor, res: Tensor, wall_step: int, plain: Tensor | None = None
               ) -> tuple[Tensor, Tensor] | None:
        """After the step z -> fz of every row (``rows["step"]`` not yet advanced): cycle
        mask and period of the rows confirmed in a cycle now, or None when there are none.
        ``plain`` marks the rows whose step was a plain f-step (others drop their anchor)."""
        if not self.on:
            return None
        found = None
        t1 = rows["step"] + 1  # fz is z_{t+1}
        if self.watching:
            dist = (fz - rows["anchor"]).flatten(1).pow(2).sum(1)
            back = (dist < self.tol) & (rows["anchor_step"] >= 0)
            if plain is not None:
                back &= plain
            if bool(back.any()):
                lag = t1 - rows["anchor_step"]
                p = rows["return_period"]
                first = back & (p == 0) & (lag <= self.max_period)
                p = torch.where(first, lag, p)
                window = torch.clamp(WINDOW_PERIODS * p, min=MIN_STEPS)
                window = torch.div(window + p - 1, p.clamp_min(1), rounding_mode="floor") * p
                due = back & ~first & (p > 0) & (lag % p.clamp_min(1) == 0) & (lag >= window)
                cycle = due & (res >= SHRINK * rows["anchor_res"].to(res.dtype))
                again = due & ~cycle  # still shrinking: watch on from here
                rows["return_period"] = torch.where(again, 0, p)
                self._anchor(rows, again, fz, res, t1)
                if bool(cycle.any()):
                    found = (cycle, p)
        if wall_step % CHECK_EVERY == 0:
            res64 = res.to(torch.float64)
            free = rows["anchor_step"] < 0
            stalled = free & (res64 >= STALL * rows["check_res"]) & (t1 >= MIN_STEPS) & torch.isfinite(res64)
            if plain is not None:
                stalled &= plain
            lag = t1 - rows["anchor_step"]
            p = rows["return_period"]
            stale = ~free & (((p == 0) & (lag > self.max_period)) | ((p > 0) & (lag > 2 * MIN_STEPS + 4 * p)))
            if plain is not None:
                stale |= ~free & ~plain
            rows["anchor_step"] = torch.where(stale, -1, rows["anchor_step"])
            rows["return_period"] = torch.where(stale, 0, rows["return_period"])
            self._anchor(rows, stalled, fz, res, t1)
            rows["check_res"] = res64
            self.watching = bool((rows["anchor_step"] >= 0).any())
        return found

    @staticmethod
    def _anchor(rows: dict, mask: Tensor, fz: Tensor, res: Tensor, t1: Tensor) -> None:
        if not bool(mask.any()):
            return
        rows["anchor"] = torch.where(mask.view(-1, *[1] * (fz.dim() - 1)), fz, rows["anchor"])
        rows["anchor_step"] = torch.where(mask, t1, rows["anchor_step"])
        rows["anchor_res"] = torch.where(mask, res.to(torch.float64), rows["anchor_res"])
        rows["return_period"] = torch.where(mask, 0, rows["return_period"])
