"""Batched lasso by the LARS homotopy (the paper's second coder, at OMP's sparsity).

scikit-learn's objective, per signal y:

    1/(2 n_features) ||y - D a||^2 + alpha ||a||_1.

Its solution is piecewise linear in alpha. LARS-lasso (Efron et al. 2004) walks that
path from alpha_max = max|D^T y| / n_features down: on each segment the active atoms
keep |correlation| equal to the current penalty C = alpha * n_features and move along
d = G_II^{-1} sign; the segment ends when another atom's correlation catches up (it
joins) or an active coefficient crosses zero (it leaves). Because every point on the
path is an exact lasso solution, the penalty that gives *exactly* s non-zeros is read
off the path, per signal, with no search over alpha: OMP and lasso then compare at
equal sparsity, as the paper asks. The same walk, stopped at a given alpha, solves the
fixed-penalty problem.

Sparsity mode scales atoms to unit norm first (as OMP does), so that an atom's length
does not buy it a place in the code; codes are returned for the atoms as given and the
penalties for the unit-norm problem. With ``alpha=`` the atoms are used as given, so the
result is scikit-learn's ``Lasso(alpha, fit_intercept=False)`` on the same data.
"""
from __future__ import annotations

import math
import warnings
from typing import Literal, overload

import torch
from torch import Tensor

from ..errors import ProbeError
from ._active import ActiveSet
from ._inputs import atom_gram, batch_rows, prepare, resolve_n_nonzero

#: Active-set slots reserved up front in fixed-penalty mode (more are added on demand).
START_CAPACITY = 256


@overload
def lasso(dictionary, signals, n_nonzero: int | None = None, *, sparsity: float | None = None,
          alpha: float | None = None, batch_size: int | None = None, device=None,
          return_alpha: Literal[False] = False) -> Tensor: ...
@overload
def lasso(dictionary, signals, n_nonzero: int | None = None, *, sparsity: float | None = None,
          alpha: float | None = None, batch_size: int | None = None, device=None,
          return_alpha: Literal[True]) -> tuple[Tensor, Tensor]: ...
@overload
def lasso(dictionary, signals, n_nonzero: int | None = None, *, sparsity: float | None = None,
          alpha: float | None = None, batch_size: int | None = None, device=None,
          return_alpha: bool = False) -> Tensor | tuple[Tensor, Tensor]: ...
def lasso(dictionary, signals, n_nonzero: int | None = None, *, sparsity: float | None = None,
          alpha: float | None = None, batch_size: int | None = None, device=None,
          return_alpha: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Lasso codes ``[n_samples, n_atoms]``, each signal at its own penalty or at ``alpha``.

    The arguments come in :func:`probe.sparse.omp`'s order: ``lasso(D, Y, 3)`` and ``omp(D, Y, 3)``
    both ask for 3 non-zeros per code; a fraction goes by name (``sparsity=0.05``).

    By default the penalty is chosen per signal so that ``n_nonzero`` atoms (or the
    fraction ``sparsity`` of them; default the paper's 5%) are non-zero: the smallest penalty on the
    first stretch of the lasso path with that many active atoms. A signal whose path
    ends first (fewer atoms than asked can explain it) keeps the least-squares end
    point. With ``alpha`` given, solves scikit-learn's objective at that penalty.
    ``return_alpha=True`` also returns the penalty used per signal (in sparsity mode, the
    penalty of the unit-norm problem). An atom in the span of the active ones (an exact
    duplicate) never joins.
    """
    d, y, was_1d = prepare(dictionary, signals, device)
    n_features, n_atoms = d.shape
    if alpha is not None:
        if n_nonzero is not None or sparsity is not None:
            raise ProbeError("give either alpha (a fixed penalty) or n_nonzero/sparsity, not both")
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise ProbeError(f"alpha must be a number >= 0, got {alpha!r}") from None
        if not (alpha >= 0 and math.isfinite(alpha)):
            raise ProbeError(f"alpha must be a finite number >= 0, got {alpha}")
        s, target = None, alpha * n_features
        normalize = False
        capacity = min(n_features, n_atoms, START_CAPACITY)
    else:
        s, target = resolve_n_nonzero(n_atoms, n_nonzero, sparsity), 0.0
        normalize = True
        capacity = s
    g, norms = atom_gram(d, normalize)
    codes = y.new_zeros(y.shape[0], n_atoms)
    penalty = y.new_zeros(y.shape[0])
    per_row = y.element_size() * (2 * capacity * capacity + 10 * n_atoms + 4 * capacity)
    step = batch_rows(y.shape[0], per_row, y.device, batch_size)
    for start in range(0, y.shape[0], step):
        rows = slice(start, start + step)
        codes[rows], penalty[rows] = _lars_batch(g, (y[rows] @ d) / norms, (y[rows] ** 2).sum(1), s, target,
                                                  capacity, n_features)
    codes = codes / norms
    penalty = penalty / n_features
    if was_1d:
        codes, penalty = codes[0], penalty[0]
    return (codes, penalty) if return_alpha else codes


def _lars_batch(gram: Tensor, xy: Tensor, y_norm2: Tensor, s: int | None, target: float,
                capacity: int, n_features: int) -> tuple[Tensor, Tensor]:
    """Walk the lasso path for one batch; returns codes (for the atoms in ``gram``) and C."""
    rows, n_atoms = xy.shape
    eps = torch.finfo(xy.dtype).eps
    inf = torch.tensor(float("inf"), dtype=xy.dtype, device=xy.device)
    out_codes = xy.new_zeros(rows, n_atoms)
    out_c = xy.new_zeros(rows)

    act = ActiveSet(gram, rows, capacity)
    coef = act.add_slot_data("coef")
    act.add_slot_data("sign")
    c = xy.clone()  # correlations D^T (y - D a) of every atom
    big, first = c.abs().max(1)
    order = torch.arange(rows, device=xy.device)  # batch row -> output row
    active = torch.zeros(rows, n_atoms, dtype=torch.bool, device=xy.device)
    last_drop = torch.full((rows,), -1, dtype=torch.long, device=xy.device)
    gmax = float(gram.diagonal().max()) if n_atoms else 1.0
    # nothing to fit: a zero signal, or a penalty above alpha_max
    done = (big <= target) | (big * big <= eps * gmax * y_norm2)
    ok, _, _ = act.add(first, ~done)
    _set_sign(act, ok, torch.sign(c.gather(1, first[:, None])[:, 0]))
    active[ok, first[ok]] = True

    steps, limit = 0, 20 * (s or min(n_features, n_atoms)) + 100
    while True:
        steps += 1
        if steps > limit:  # LARS takes about s steps plus drops; more means rounding makes it cycle
            warnings.warn(f"lasso: {int((~done).sum())} signal(s) stopped after {limit} path steps "
                          "(rounding in near-ties); their codes are the last path point. float64 avoids this.",
                          RuntimeWarning, stacklevel=3)
            done = torch.ones_like(done)
        if bool(done.any()):
            fin = done.nonzero().squeeze(1)
            out_codes[order[fin]] = _dense(act, fin, n_atoms)
            out_c[order[fin]] = big[fin].clamp(min=0)
            if bool(done.all()):
                break
            keep = (~done).nonzero().squeeze(1)
            act.keep(keep)
            c, big, active, last_drop, order, done = (t[keep] for t in (c, big, active, last_drop, order, done))
            coef = act.slots["coef"]
        r = c.shape[0]
        ar = torch.arange(r, device=c.device)
        m = act.width()
        used = act.used(m)
        direction = act.solve(act.slots["sign"][:, :m])
        u = act.gram_times(direction)

        # join: the first inactive atom whose |correlation| meets the falling C. Atom j meets
        # the boundary +-(C - g) when its gap (C -+ c_j) closes at rate (1 -+ u_j); the step is
        # gap / rate, found as the largest rate / gap (one pass, no inf/NaN bookkeeping). A gap
        # at or, by rounding, past zero counts as `floor`: the atom joins now if closing.
        # Discarding such roots as "not positive" once let atoms overtake C unnoticed.
        floor = 16 * eps * big[:, None]
        speed = (1 - u).div_((big[:, None] - c).clamp_(min=floor))
        speed = torch.maximum(speed, (1 + u).div_((big[:, None] + c).clamp_(min=floor)))
        speed.masked_fill_(c.abs() > big[:, None] + floor, float("inf"))  # overdue either way
        speed.masked_fill_(active, -1.0)
        has_drop = (last_drop >= 0).nonzero().squeeze(1)
        speed[has_drop, last_drop[has_drop]] = -1.0  # it just left; it must not re-enter at once
        fastest, j_join = speed.max(1)
        g_join = torch.where(fastest > 0, 1 / fastest, inf)
        del speed

        # leave: the first active coefficient to cross zero (one that rounding already pushed
        # past zero, against its sign, leaves now)
        cf = coef[:, :m]
        cross = -cf / direction
        cross = torch.where(cross.isfinite() & (cross > floor[:, :1]), cross, inf)
        cross = torch.where(cf * act.slots["sign"][:, :m] < 0, torch.zeros_like(cross), cross)
        cross = torch.where(used, cross, inf)
        g_drop, p_drop = cross.min(1) if m else (torch.full_like(big, float("inf")), torch.zeros_like(last_drop))

        gamma = torch.minimum(torch.minimum(g_join, g_drop), big)
        is_drop = (g_drop <= g_join) & (g_drop < big)
        # once the active atoms span the signal every correlation reaches 0 together at the
        # path end; a "join" there is rounding, not an event. n_features atoms span it all.
        is_join = ~is_drop & (g_join < big * (1 - 1e3 * eps)) & (act.n < n_features)
        if s is not None:
            finish = act.n >= s
            # a segment with s non-zeros: go to its end, unless a coefficient reaches zero
            # there (then s - 1 would remain), in which case stop half way
            gamma = torch.where(finish & is_drop, gamma / 2, gamma)
        else:
            finish = big - gamma <= target
            gamma = torch.where(finish, (big - target).clamp(min=0), gamma)
        finish |= ~is_drop & ~is_join  # the path ended (C = 0): the least-squares point

        coef[:, :m] += gamma[:, None] * direction * used
        c -= gamma[:, None] * u
        big = big - gamma

        joining = is_join & ~finish
        ok, _, _ = act.add(j_join, joining)
        sign_new = torch.sign(c[ar, j_join])
        _set_sign(act, ok, sign_new)
        active[ar[ok], j_join[ok]] = True
        last_drop = torch.where(joining, torch.full_like(last_drop, -1), last_drop)
        # an atom in the span of the active ones (a duplicate: attractor dictionaries have
        # near-copies) cannot join; it is set aside for good and the walk goes on
        aside = joining & ~ok
        active[ar[aside], j_join[aside]] = True
        for b in (is_drop & ~finish).nonzero().squeeze(1).tolist():
            slot = int(p_drop[b])
            atom = int(act.idx[b, slot])
            act.remove(b, slot)
            active[b, atom] = False
            last_drop[b] = atom
        coef = act.slots["coef"]
        done = finish
    return out_codes, out_c


def _set_sign(act: ActiveSet, ok: Tensor, sign: Tensor) -> None:
    rows = ok.nonzero().squeeze(1)
    act.slots["sign"][rows, act.n[rows] - 1] = sign[rows]


def _dense(act: ActiveSet, rows: Tensor, n_atoms: int) -> Tensor:
    m = act.width()
    coef = torch.where(act.used(m), act.slots["coef"][:, :m], torch.zeros_like(act.slots["coef"][:, :m]))
    out = coef.new_zeros(rows.shape[0], n_atoms)
    return out.scatter_add_(1, act.idx[rows, :m], coef[rows])
