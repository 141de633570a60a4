"""Checks and conversions shared by the sparse coders.

Every user mistake (shapes, NaN, a sparsity out of range) becomes one
``ProbeError`` line here, so the coders themselves only see clean tensors.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ProbeError

#: Working memory a CPU batch may use; on CUDA half the free memory is used instead.
CPU_BATCH_BYTES = 1 << 30


def _as_tensor(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach()
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ProbeError(f"{name} must be a tensor or array, got {type(x).__name__}") from e


def prepare(dictionary, signals, device=None) -> tuple[Tensor, Tensor, bool]:
    """``(D [n_features, n_atoms], Y [n_samples, n_features], was_1d)`` on one device and float dtype.

    fp64 stays fp64 (the exactness checks against scikit-learn need it); half
    precision and integers are lifted to fp32, since Cholesky updates in fp16 fail.
    """
    d = _as_tensor(dictionary, "dictionary")
    y = _as_tensor(signals, "signals")
    if d.dim() != 2:
        raise ProbeError(f"dictionary must be 2-D [n_features, n_atoms] (atoms in columns), got shape {tuple(d.shape)}")
    was_1d = y.dim() == 1
    if was_1d:
        y = y.unsqueeze(0)
    if y.dim() != 2:
        raise ProbeError(f"signals must be 2-D [n_samples, n_features], got shape {tuple(y.shape)}")
    n_features, n_atoms = d.shape
    if n_atoms == 0 or n_features == 0:
        raise ProbeError(f"dictionary is empty: shape {tuple(d.shape)}")
    if y.shape[1] != n_features:
        hint = " (is the dictionary transposed? atoms go in columns)" if y.shape[1] == n_atoms else ""
        raise ProbeError(f"signals have {y.shape[1]} features but the dictionary has {n_features} "
                         f"(dictionary is [n_features, n_atoms]){hint}")
    if d.is_complex() or y.is_complex():
        raise ProbeError("complex dictionaries or signals are not supported")
    dtype = torch.promote_types(d.dtype, y.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    device = torch.device(device) if device is not None else d.device
    d = d.to(device=device, dtype=dtype)
    y = y.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(d).all()):
        raise ProbeError("dictionary contains NaN or inf")
    if not bool(torch.isfinite(y).all()):
        bad = int((~torch.isfinite(y)).any(1).sum())
        raise ProbeError(f"signals contain NaN or inf ({bad} of {y.shape[0]} rows)")
    return d, y, was_1d


#: The paper's sparsity: 5% of the atoms (205 of 4096).
DEFAULT_SPARSITY = 0.05


def resolve_n_nonzero(n_atoms: int, n_nonzero=None, sparsity=None) -> int:
    """The number of atoms to use: ``n_nonzero``, else ``round(sparsity * n_atoms)``, else 5%.

    The paper's 5% of 4096 atoms is 204.8, reported as 205: rounding, not flooring.
    """
    if n_nonzero is not None and sparsity is not None:
        raise ProbeError(f"give n_nonzero or sparsity, not both (got {n_nonzero} and {sparsity})")
    if n_nonzero is not None:
        if isinstance(n_nonzero, bool) or not isinstance(n_nonzero, int):
            try:
                if float(n_nonzero) != int(n_nonzero):
                    raise ValueError
                n_nonzero = int(n_nonzero)
            except (TypeError, ValueError):
                raise ProbeError(f"n_nonzero must be an integer, got {n_nonzero!r}") from None
        if not 1 <= n_nonzero <= n_atoms:
            raise ProbeError(f"n_nonzero must be between 1 and the number of atoms ({n_atoms}), got {n_nonzero}")
        return n_nonzero
    if sparsity is None:
        sparsity = DEFAULT_SPARSITY
    try:
        sparsity = float(sparsity)
    except (TypeError, ValueError):
        raise ProbeError(f"sparsity must be a number in (0, 1], got {sparsity!r}") from None
    if not (0.0 < sparsity <= 1.0) or math.isnan(sparsity):
        raise ProbeError(f"sparsity must be in (0, 1] (a fraction of the atoms), got {sparsity}")
    return max(1, min(n_atoms, round(sparsity * n_atoms)))


def atom_gram(d: Tensor, normalize: bool = True) -> tuple[Tensor, Tensor]:
    """``G = D^T D`` of the atoms scaled to unit norm, and the norms that map codes back.

    Unit atoms are what OMP's "most correlated atom" means. The norms come from G's
    diagonal, so no scaled copy of D is made; a zero atom keeps norm 1 and stays zero
    (its correlation with any residual is 0, so it is never picked).
    """
    g = _symmetric_product(d)
    if not normalize:
        return g, torch.ones(d.shape[1], dtype=d.dtype, device=d.device)
    norms = torch.diagonal(g).sqrt()
    norms = torch.where(norms > 0, norms, torch.ones_like(norms))
    return g.div_(norms[:, None]).div_(norms[None, :]), norms


def _symmetric_product(d: Tensor, block: int = 1024) -> Tensor:
    """``d^T d`` from the blocks on and above the diagonal only (a third fewer flops at 4 blocks)."""
    n = d.shape[1]
    if n <= block:
        return d.T @ d
    out = d.new_empty(n, n)
    for i in range(0, n, block):
        for j in range(i, n, block):
            part = d[:, i:i + block].T @ d[:, j:j + block]
            out[i:i + block, j:j + block] = part
            if j != i:
                out[j:j + block, i:i + block] = part.T
    return out


def batch_rows(n_rows: int, bytes_per_row: int, device: torch.device, batch_size: int | None) -> int:
    """Signals per batch: ``batch_size`` if given, else as many as fit the memory budget."""
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ProbeError(f"batch_size must be a positive integer, got {batch_size!r}")
        return max(1, min(batch_size, n_rows))
    budget = CPU_BATCH_BYTES
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 2
    return max(1, min(n_rows, budget // max(1, bytes_per_row)))
