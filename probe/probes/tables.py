"""Means with 95% intervals, paired comparisons, and markdown tables for probe reports.

Intervals are Student-t intervals of the mean (per-image values are independent draws
from a held-out set); a comparison of two bases on the same images uses the paired
differences, which is much tighter than comparing two separate intervals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ProbeError

__all__ = ["Stat", "mean_ci", "paired", "verdict", "markdown_table"]


@dataclass(frozen=True)
class Stat:
    """Mean of ``n`` values with its 95% interval [lo, hi]."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half(self) -> float:
        return (self.hi - self.lo) / 2

    def format(self, digits: int = 4) -> str:
        """``mean [lo, hi]`` with ``digits`` significant digits."""
        if self.n == 0 or math.isnan(self.mean):
            return "n/a"
        return f"{_g(self.mean, digits)} [{_g(self.lo, digits)}, {_g(self.hi, digits)}]"

    def as_dict(self) -> dict:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}


def _g(x: float, digits: int) -> str:
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.{max(digits - 1, 1)}e}"


def _t975(dof: int) -> float:
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, dof))
    except ImportError:  # scipy ships with scikit-learn; the normal quantile is the large-n limit
        return 1.959964


def mean_ci(values) -> Stat:
    """Mean and two-sided 95% Student-t interval of ``values`` (NaN/inf are an error)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        return Stat(float("nan"), float("nan"), float("nan"), 0)
    if not np.isfinite(a).all():
        raise ProbeError(f"cannot summarize values containing NaN or inf ({int((~np.isfinite(a)).sum())} of {a.size})")
    m = float(a.mean())
    if a.size == 1:
        return Stat(m, m, m, 1)
    half = _t975(a.size - 1) * float(a.std(ddof=1)) / math.sqrt(a.size)
    return Stat(m, m - half, m + half, int(a.size))


def paired(a, b) -> Stat:
    """95% interval of the mean of ``b - a`` over the same items (positive: ``a`` is lower)."""
    a = torch.as_tensor(a, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(b, dtype=torch.float64).reshape(-1)
    if a.shape != b.shape:
        raise ProbeError(f"paired comparison needs the same items, got {a.numel()} and {b.numel()} values")
    return mean_ci(b - a)


def verdict(diff: Stat, lower: str, higher: str) -> str:
    """Words for a paired difference ``higher_value - lower_value``: who is lower, or a tie."""
    if diff.n == 0:
        return "n/a"
    if diff.lo > 0:
        return f"{lower} lower"
    if diff.hi < 0:
        return f"{higher} lower"
    return "no clear difference"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table; every row must have as many cells as the header."""
    for r in rows:
        if len(r) != len(header):
            raise ProbeError(f"table row has {len(r)} cells, header has {len(header)}")
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731 - a cell may contain a pipe
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
