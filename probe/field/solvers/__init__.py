"""Solvers behind one engine: a name -> class registry (``FieldConfig.solver`` picks one).

A solver owns only what differs between methods: the per-seed state it adds to the
engine's rows (``new_rows``) and one step of every active seed (``step``), which calls
``engine.f`` (f-evaluations are counted there) and returns a :class:`Step`. The engine
does the rest the same way for all of them: queue and refill, stopping at ``max_steps``,
the per-seed outputs, history, progress, checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...errors import ConfigError

__all__ = ["Step", "SOLVERS", "register", "make_solver", "points"]

SOLVERS: dict[str, type] = {}


@dataclass
class Step:
    """What one step of the active rows produced (the solver has already moved ``rows["z"]``)."""

    end: Tensor                          #: [B, *shape] the end point of each row if it stops now
    res: Tensor                          #: [B] ||f(z) - z||^2 at the evaluated point
    converged: Tensor | None = None      #: [B] stop as converged (None: the plain rule res < tol)
    cycle: tuple[Tensor, Tensor] | None = None  #: (mask, period) of rows confirmed in a cycle
    rejected: Tensor | None = None       #: [B] steps the safeguard refused (counted per seed)


def points(rows: dict[str, Tensor]) -> tuple[Tensor, torch.Size, Tensor]:
    """The active rows' points ``z`` [B, *shape], their shape, and the points flattened to [B, k]."""
    z = rows["z"]
    return z, z.shape, z.flatten(1)


def register(name: str):
    def deco(cls):
        SOLVERS[name] = cls
        cls.name = name
        return cls
    return deco


def make_solver(name: str, engine):
    from . import anderson, mixed, newton, plain  # noqa: F401 - registers them

    if name not in SOLVERS:
        raise ConfigError(f"solver must be one of {', '.join(sorted(SOLVERS))}, got {name!r}")
    return SOLVERS[name](engine)
