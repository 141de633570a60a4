"""One entry point for both coders, and the config the dictionary probe can embed."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..config import field
from ..errors import ConfigError, ProbeError
from .lasso import lasso
from .omp import omp

CODERS = ("omp", "lasso")


@dataclass(frozen=True)
class SparseConfig:
    """How signals are coded on a dictionary (paper section 4.1: OMP with 5% of the atoms)."""

    section = "sparse"

    coder: str = field("omp", "sparse coder: omp (the paper's) or lasso (penalty set per signal to the same sparsity)")
    sparsity: float = field(0.05, "fraction of the atoms that may be non-zero (paper: 5%, 205 of 4096)")
    n_nonzero: int | None = field(None, "number of non-zero atoms; replaces sparsity when set")
    alpha: float | None = field(None, "lasso only: a fixed penalty (scikit-learn's objective); replaces sparsity")
    batch_size: int | None = field(None, "signals coded at once; None fits batches to memory")

    def __post_init__(self):
        if self.coder not in CODERS:
            raise ConfigError(f"coder must be one of {', '.join(CODERS)}, got {self.coder!r}")
        if not 0.0 < float(self.sparsity) <= 1.0:
            raise ConfigError(f"sparsity must be in (0, 1], got {self.sparsity}")
        if self.n_nonzero is not None and self.n_nonzero < 1:
            raise ConfigError(f"n_nonzero must be >= 1, got {self.n_nonzero}")
        if self.alpha is not None and (self.coder != "lasso" or self.alpha < 0):
            raise ConfigError("alpha is a lasso penalty >= 0 (set coder: lasso)")
        if self.alpha is not None and self.n_nonzero is not None:
            raise ConfigError("give alpha (a fixed penalty) or n_nonzero, not both")

    def kwargs(self) -> dict:
        """Arguments for :func:`code`; n_nonzero or alpha, when set, take the place of sparsity."""
        exact = self.n_nonzero is not None or self.alpha is not None
        return {"coder": self.coder, "n_nonzero": self.n_nonzero, "alpha": self.alpha,
                "sparsity": None if exact else self.sparsity, "batch_size": self.batch_size}


def code(dictionary, signals, coder: str = "omp", *, n_nonzero: int | None = None,
         sparsity: float | None = None, alpha: float | None = None,
         batch_size: int | None = None, device=None) -> Tensor:
    """Codes ``[n_samples, n_atoms]`` of ``signals`` on ``dictionary [n_features, n_atoms]``.

    ``coder`` is ``"omp"`` or ``"lasso"``; both use ``n_nonzero`` atoms (or the fraction
    ``sparsity``, default the paper's 5%), so the two compare at equal sparsity.
    ``alpha`` (lasso only) codes at a fixed penalty instead.
    """
    if coder == "omp":
        if alpha is not None:
            raise ProbeError("alpha is a lasso penalty; OMP takes n_nonzero or sparsity")
        return omp(dictionary, signals, n_nonzero, sparsity=sparsity, batch_size=batch_size, device=device)
    if coder == "lasso":
        return lasso(dictionary, signals, sparsity=sparsity, alpha=alpha, n_nonzero=n_nonzero,
                     batch_size=batch_size, device=device)
    raise ProbeError(f"unknown sparse coder {coder!r}; choose one of: {', '.join(CODERS)}")
