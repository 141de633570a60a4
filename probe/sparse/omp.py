"""Batched Orthogonal Matching Pursuit (the paper's coder for the attractor dictionary).

OMP picks, n_nonzero times, the atom most correlated with the residual and refits
the signal on all atoms picked so far by least squares. This is Batch-OMP
(Rubinstein, Zibulevsky, Elad 2008): the Gram matrix G = D^T D is computed once and
the residual is never formed; only its correlations alpha = D^T r are tracked,

    alpha_k = alpha_{k-1} - z_k * G[:, I] l_k,

where l_k is the newest row of L^{-1} (see ``_active.py``) and z = L^{-1} D_I^T y.
The codes come out at the end as L^{-T} z.

Normalisation: scikit-learn's ``orthogonal_mp`` *assumes* unit-norm columns and
picks by the raw correlation |d_j^T r|, so a long atom is picked more often just for
being long. Here atoms are scaled to unit norm internally (picking by the cosine, the
usual OMP) and the codes are returned for the atoms as given: ``omp(D, Y, s)`` equals
``orthogonal_mp(D / ||D||, Y.T, n_nonzero_coefs=s).T / ||D||``. With unit-norm atoms
the two agree exactly.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._active import ActiveSet
from ._inputs import atom_gram, batch_rows, prepare, resolve_n_nonzero


def omp(dictionary, signals, n_nonzero: int | None = None, *, sparsity: float | None = None,
        batch_size: int | None = None, device=None) -> Tensor:
    """Sparse codes ``[n_samples, n_atoms]`` with at most ``n_nonzero`` non-zeros each.

    ``dictionary`` is ``[n_features, n_atoms]`` (atoms in columns), ``signals``
    ``[n_samples, n_features]`` (a single 1-D signal gives a 1-D code). Give
    ``n_nonzero`` or ``sparsity`` (fraction of the atoms; the paper uses 5%).
    Works in fp32 or fp64 (whichever the inputs are) on the dictionary's device or
    ``device``; signals are processed ``batch_size`` at a time (default: as many as
    fit in memory). A signal stops early, as in scikit-learn, when its residual is
    orthogonal to every atom or the next atom is in the span of the chosen ones.
    """
    d, y, was_1d = prepare(dictionary, signals, device)
    n_atoms = d.shape[1]
    s = resolve_n_nonzero(n_atoms, n_nonzero, sparsity)
    g, norms = atom_gram(d)
    codes = y.new_zeros(y.shape[0], n_atoms)
    per_row = y.element_size() * (2 * s * s + 6 * n_atoms + 4 * s)  # L^{-1} twice, correlations, products
    step = batch_rows(y.shape[0], per_row, y.device, batch_size)
    for start in range(0, y.shape[0], step):
        rows = slice(start, start + step)
        idx, gamma, used = _omp_batch(g, (y[rows] @ d) / norms, (y[rows] ** 2).sum(1), s)
        codes[rows].scatter_add_(1, idx, torch.where(used, gamma / norms[idx], torch.zeros_like(gamma)))
    return codes[0] if was_1d else codes


def _omp_batch(gram: Tensor, alpha0: Tensor, y_norm2: Tensor, s: int) -> tuple[Tensor, Tensor, Tensor]:
    """One batch: returns atom indices, their coefficients and which slots are used."""
    rows = alpha0.shape[0]
    act = ActiveSet(gram, rows, s)
    alpha = alpha0.clone()
    z = alpha0.new_zeros(rows, s)
    done = torch.zeros(rows, dtype=torch.bool, device=alpha0.device)
    ar = torch.arange(rows, device=alpha0.device)
    eps = act.eps
    for k in range(s):
        # argmax |alpha| from the two extremes: two reads of alpha instead of abs's write and read
        hi, hi_at = alpha.max(1)
        lo, lo_at = alpha.min(1)
        lam = torch.where(hi >= -lo, hi_at, lo_at)
        top = torch.maximum(hi, -lo)
        # scikit-learn's two early stops: the best atom is already chosen (the residual is
        # orthogonal to the span), or its correlation is at rounding level (relative here,
        # so that the result does not depend on the scale of the signal)
        again = (act.idx[:, :k] == lam[:, None]).any(1) if k else torch.zeros_like(done)
        done |= again | (top * top <= eps * y_norm2)
        ok, w, l = act.add(lam, ~done)
        done |= ~ok
        if bool(done.all()):
            break
        zk = (alpha0[ar, lam] - (w * z[:, :k]).sum(1)) / l
        z[:, k] = torch.where(ok, zk, torch.zeros_like(zk))
        if k + 1 < s:
            newest = act.linv[:, k, : k + 1]  # identity rows (value 0 at used slots) where not ok
            act.gram_times(newest * z[:, k, None], into=alpha)
    m = act.width()
    gamma = act.linv_t_times(z[:, :m])
    return act.idx[:, :m], gamma, act.used(m)
