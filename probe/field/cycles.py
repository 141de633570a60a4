"""Cheap cycle detection for plain steps: anchors, set only where the step stopped shrinking.

Every :data:`CHECK_EVERY` steps, a seed whose squared step did not fall below
:data:`STALL` times its value at the previous check (and that ran :data:`MIN_STEPS`
steps) is *anchored*: its current point is kept. Three stages follow, so that seeds that
keep contracting cost nothing and anchored ones almost nothing:

1. coarse: at each later check, f(z) is compared with the anchor (one distance per seed
   every CHECK_EVERY steps). A period-p cycle comes back at lag lcm(CHECK_EVERY, p). An
   anchor lives 3 * CHECK_EVERY steps, then the seed is re-anchored with twice the life,
   up to CHECK_EVERY * ``max_period`` (an anchor taken while the orbit was still settling
   onto its cycle never comes back within tol; short lives catch short periods early).
2. exact: a seed that came back is re-anchored and compared at every step; its first
   return gives the smallest period p (up to ``max_period``).
3. confirm: the cycle is reported once the seed is back on the anchor after a whole
   window (at least ``WINDOW_PERIODS * p`` and :data:`MIN_STEPS` steps) and its step did
   not shrink meanwhile: a slowly contracting oscillation (an eigenvalue near -1) also
   comes back close to itself, but its steps keep shrinking, so it returns to stage 1.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CycleWatch", "CHECK_EVERY"]

CHECK_EVERY, STALL, MIN_STEPS, WINDOW_PERIODS, SHRINK = 8, 0.9, 16, 2, 0.99
EXACT = -1  # return_period while the exact period is being looked for (stage 2); 0: stage 1; p > 0: stage 3


class CycleWatch:
    """Per-seed anchors for cycles of period 2..``max_period`` (``max_period`` 1: off)."""

    def __init__(self, max_period: int, tol: float):
        self.max_period, self.tol = int(max_period), float(tol)
        self.on = self.max_period >= 2
        self.watching = False  # some row holds an anchor (python flags: no tensor work while none does)
        self.exact = False     # some row is in stage 2 or 3 (compared at every step)

    def new_rows(self, z: Tensor) -> dict[str, Tensor]:
        if not self.on:
            return {}
        b, dev = len(z), z.device
        return {"anchor": torch.zeros_like(z), "anchor_step": torch.full((b,), -1, dtype=torch.long, device=dev),
                "anchor_res": torch.zeros(b, device=dev, dtype=torch.float64),
                "return_period": torch.zeros(b, dtype=torch.long, device=dev),
                "anchor_life": torch.zeros(b, dtype=torch.long, device=dev),
                "check_res": torch.full((b,), float("inf"), device=dev, dtype=torch.float64)}

    def _back(self, rows: dict, fz: Tensor, mask: Tensor, plain: Tensor | None) -> Tensor:
        back = mask & ((fz - rows["anchor"]).flatten(1).pow(2).sum(1) < self.tol)
        return back & plain if plain is not None else back

    def update(self, rows: dict, fz: Tensor, res: Tensor, wall_step: int, plain: Tensor | None = None
               ) -> tuple[Tensor, Tensor] | None:
        """After the step z -> fz of every row (``rows["step"]`` not yet advanced): (mask,
        period) of the rows confirmed in a cycle now, or None. ``plain`` marks the rows whose
        step was a plain f-step (an anchor of any other row is dropped)."""
        if not self.on:
            return None
        check = wall_step % CHECK_EVERY == 0
        if not (self.exact or check):
            return None
        found = None
        t1 = rows["step"] + 1  # fz is z_{t+1}
        if self.exact:
            p = rows["return_period"]
            back = self._back(rows, fz, (p != 0) & (rows["anchor_step"] >= 0), plain)
            if bool(back.any()):
                lag = t1 - rows["anchor_step"]
                first = back & (p == EXACT) & (lag <= self.max_period)
                p = torch.where(first, lag, p)
                q = p.clamp_min(1)
                window = torch.div(torch.clamp(WINDOW_PERIODS * q, min=MIN_STEPS) + q - 1, q, rounding_mode="floor") * q
                due = back & ~first & (p > 0) & (lag % q == 0) & (lag >= window)
                cycle = due & (res >= SHRINK * rows["anchor_res"].to(res.dtype))
                rows["return_period"] = p
                self._anchor(rows, due & ~cycle, fz, res, t1, 0)  # still shrinking: back to stage 1
                if bool(cycle.any()):
                    found = (cycle, p)
        if check:
            p, a_step = rows["return_period"], rows["anchor_step"]
            lag = t1 - a_step
            anchored = a_step >= 0
            if self.watching:
                coarse = anchored & (p == 0)
                back = self._back(rows, fz, coarse & (lag > 0), plain)
                expired = coarse & ~back & (lag >= rows["anchor_life"])
                renew = expired & (rows["anchor_life"] < CHECK_EVERY * self.max_period)
                stale = (expired & ~renew) | \
                    (anchored & (p == EXACT) & (lag > self.max_period)) | \
                    (anchored & (p > 0) & (lag > 2 * MIN_STEPS + 4 * p))
                if plain is not None:
                    stale |= anchored & ~plain
                rows["anchor_step"] = torch.where(stale, -1, a_step)
                rows["return_period"] = torch.where(stale, 0, p)
                self._anchor(rows, back, fz, res, t1, EXACT)
                if bool(renew.any()):
                    life = torch.clamp(2 * rows["anchor_life"], max=CHECK_EVERY * self.max_period)
                    self._anchor(rows, renew, fz, res, t1, 0)
                    rows["anchor_life"] = torch.where(renew, life, rows["anchor_life"])
            res64 = res.to(torch.float64)
            stalled = (rows["anchor_step"] < 0) & (res64 >= STALL * rows["check_res"]) & (t1 >= MIN_STEPS) \
                & torch.isfinite(res64)
            if plain is not None:
                stalled &= plain
            if bool(stalled.any()):
                self._anchor(rows, stalled, fz, res, t1, 0)
                rows["anchor_life"] = torch.where(stalled, 3 * CHECK_EVERY, rows["anchor_life"])
            rows["check_res"] = res64
            anchored = rows["anchor_step"] >= 0
            self.watching = bool(anchored.any())
            self.exact = self.watching and bool((anchored & (rows["return_period"] != 0)).any())
        return found

    def _anchor(self, rows: dict, mask: Tensor, fz: Tensor, res: Tensor, t1: Tensor, stage: int) -> None:
        if not bool(mask.any()):
            return
        rows["anchor"] = torch.where(mask.view(-1, *[1] * (fz.dim() - 1)), fz, rows["anchor"])
        rows["anchor_step"] = torch.where(mask, t1, rows["anchor_step"])
        rows["anchor_res"] = torch.where(mask, res.to(torch.float64), rows["anchor_res"])
        rows["return_period"] = torch.where(mask, stage, rows["return_period"])
        self.watching = True
        self.exact = self.exact or stage == EXACT
