"""Merge rules: which end points count as the same attractor (METHOD.md section 2).

The rule changes the count a lot (one re-implementation found 1 vs 300 attractors on
the same model), so every count is reported with its rule and threshold.

Leader clustering in seed order: each end point joins the most similar attractor found
so far if the rule accepts it, else it founds a new one. The order is the global seed
order, so the result does not depend on batching or on the number of processes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import ProbeError

__all__ = ["merge_end_points", "RULES"]

RULES = {
    "cosine": "cosine similarity > threshold (the paper: 0.99)",
    "euclidean": "Euclidean distance <= threshold",
}


def _score(a: Tensor, b: Tensor, rule: str) -> Tensor:
    """Higher = more alike: the cosine, or minus the distance."""
    if rule == "cosine":
        return a @ b.T
    return -torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def merge_end_points(x: Tensor, rule: str = "cosine", threshold: float = 0.99, block: int = 1024) -> tuple[Tensor, Tensor]:
    """Group end points ``x`` [M, ...] -> (``labels`` [M], ``leaders`` [K]: the first member of each group)."""
    if rule not in RULES:
        raise ProbeError(f"unknown merge rule {rule!r}; known: {', '.join(f'{k} ({v})' for k, v in RULES.items())}")
    x = x.detach().to("cpu", torch.float64).flatten(1)
    if rule == "cosine":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-30)
    cut = float(threshold) if rule == "cosine" else -float(threshold)
    labels = np.full(len(x), -1, dtype=np.int64)
    leaders: list[int] = []
    lead = x[:0]
    for lo in range(0, len(x), block):
        xb = x[lo:lo + block]
        if len(leaders):
            best_old, arg_old = (t.numpy() for t in _score(xb, lead, rule).max(1))
        else:
            best_old, arg_old = np.full(len(xb), -np.inf), np.full(len(xb), -1)
        inner = _score(xb, xb, rule).numpy()
        k0, new = len(leaders), []
        for i in range(len(xb)):
            best, lab = best_old[i], arg_old[i]
            if new:
                s = inner[i, new]
                j = int(s.argmax())
                if s[j] > best:  # strictly better: ties keep the earlier attractor
                    best, lab = s[j], k0 + j
            if (best > cut) if rule == "cosine" else (best >= cut):
                labels[lo + i] = lab
            else:
                new.append(i)
                labels[lo + i] = k0 + len(new) - 1
        leaders += [lo + i for i in new]
        lead = torch.cat([lead, xb[new]])
    return torch.from_numpy(labels), torch.tensor(leaders, dtype=torch.long)
