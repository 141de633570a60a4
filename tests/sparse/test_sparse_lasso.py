"""Lasso (LARS path) against scikit-learn's Lasso and lars_path."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso, lars_path

from probe.sparse import code, lasso


def _problem(n_features=30, n_atoms=60, n_samples=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_features, n_atoms)), rng.standard_normal((n_samples, n_features))


def _sk_lasso(d, y, alphas):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at tiny tol is sklearn's, not ours
        return np.stack([Lasso(alpha=float(a), fit_intercept=False, tol=1e-10, max_iter=100_000).fit(d, t).coef_
                         for a, t in zip(alphas, y, strict=False)])


@pytest.mark.parametrize("alpha", [2.0, 0.3, 0.05, 0.005])  # 2.0 is above alpha_max: all zeros
def test_fixed_penalty_matches_sklearn_lasso(alpha):
    d, y = _problem(n_samples=6)
    ours = lasso(torch.from_numpy(d), torch.from_numpy(y), alpha=alpha).numpy()
    ref = _sk_lasso(d, y, [alpha] * len(y))
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    if alpha == 2.0:
        assert not ours.any()


@pytest.mark.parametrize("s", [1, 7, 20])
def test_penalty_per_signal_gives_exactly_s_nonzeros_and_is_the_lasso_solution(s):
    d, y = _problem(seed=2)
    unit = d / np.linalg.norm(d, axis=0)
    codes, alpha = lasso(torch.from_numpy(d), torch.from_numpy(y), n_nonzero=s, return_alpha=True)
    codes, alpha = codes.numpy(), alpha.numpy()
    assert ((codes != 0).sum(1) == s).all()
    # the codes are for the atoms as given; on unit atoms they are sklearn's lasso at that penalty
    on_unit = codes * np.linalg.norm(d, axis=0)
    np.testing.assert_allclose(on_unit, _sk_lasso(unit, y, alpha), atol=1e-4)
    for a, t in zip(alpha, y, strict=False):  # and that penalty is on the first stretch of the path with s atoms
        alphas, _, coefs = lars_path(unit, t, method="lasso")
        assert ((coefs != 0).sum(0)[alphas > a * (1 + 1e-9)] < s).all()


def test_fp32_agrees_with_fp64():
    d, y = _problem(seed=3)
    c64 = lasso(torch.from_numpy(d), torch.from_numpy(y), n_nonzero=8)
    c32 = lasso(torch.from_numpy(d).float(), torch.from_numpy(y).float(), n_nonzero=8)
    assert c32.dtype == torch.float32 and ((c32 != 0).sum(1) == 8).all()
    assert ((c32 != 0) == (c64 != 0)).all(1).float().mean() >= 0.9
    torch.testing.assert_close(c32.double(), c64, atol=1e-3, rtol=1e-3)


def test_rescaling_atoms_does_not_change_the_support_in_sparsity_mode():
    d, y = _problem(seed=4)
    lengths = np.random.default_rng(5).uniform(0.2, 5.0, d.shape[1])
    a = lasso(torch.from_numpy(d), torch.from_numpy(y), sparsity=0.1)
    b = lasso(torch.from_numpy(d * lengths), torch.from_numpy(y), sparsity=0.1)
    torch.testing.assert_close(b, a / torch.from_numpy(lengths), atol=1e-9, rtol=1e-7)


def test_more_atoms_than_the_signal_supports_ends_at_least_squares():
    d, y = _problem(n_features=10, n_atoms=30, n_samples=4, seed=6)
    codes = lasso(torch.from_numpy(d), torch.from_numpy(y), n_nonzero=20)
    assert ((codes != 0).sum(1) <= 10).all()
    fit = codes @ torch.from_numpy(d).T
    torch.testing.assert_close(fit, torch.from_numpy(y), atol=1e-8, rtol=0)


def test_dispatch_and_batches():
    d, y = _problem(seed=7, n_samples=9)
    direct = lasso(torch.from_numpy(d), torch.from_numpy(y), n_nonzero=5)
    via = code(torch.from_numpy(d), torch.from_numpy(y), "lasso", n_nonzero=5, batch_size=4)
    torch.testing.assert_close(via, direct, atol=1e-12, rtol=0)
    ones = code(torch.from_numpy(d), torch.from_numpy(y), "omp", n_nonzero=5)
    assert ((ones != 0).sum(1) == 5).all()


def _kkt(d, y, codes, alpha):
    """Largest relative violation of the lasso optimality conditions, computed in fp64."""
    corr = (y - codes @ d.T) @ d / d.shape[0]  # = alpha * sign on the support, |.| <= alpha off it
    on = codes != 0
    off_worst = np.max(np.where(on, 0, np.abs(corr)) / alpha[:, None])
    on_worst = np.max(np.where(on, np.abs(corr * np.sign(codes) / alpha[:, None] - 1), 0))
    return max(off_worst - 1, on_worst)


def test_fp32_batch_stays_optimal_through_near_ties():
    # signal 339 of this set has two atoms joining 5e-6 apart; in a batch, fp32 rounding once
    # put that root below the floor, the atom went unnoticed and overtook C (10% off optimal)
    rng = np.random.default_rng(0)
    d = rng.standard_normal((1024, 1024))
    d /= np.linalg.norm(d, axis=0)
    y = rng.standard_normal((500, 1024))[[*range(290, 302), 339]]
    codes, alpha = lasso(torch.from_numpy(d).float(), torch.from_numpy(y).float(), n_nonzero=51, return_alpha=True)
    codes, alpha = codes.double().numpy(), alpha.double().numpy()
    assert ((codes != 0).sum(1) == 51).all()
    assert _kkt(d, y, codes, alpha) < 1e-3


def test_duplicate_atoms_are_set_aside_not_the_end_of_the_path():
    # attractor dictionaries hold near-copies; a copy of an active atom cannot join (it is in
    # their span) but the walk must go on to the requested sparsity
    d, y = _problem(n_features=20, n_atoms=30, n_samples=6, seed=9)
    dup = np.concatenate([d, d[:, :5]], 1)
    codes, alpha = lasso(torch.from_numpy(dup), torch.from_numpy(y), n_nonzero=10, return_alpha=True)
    assert ((codes != 0).sum(1) == 10).all()
    # the lasso fit D a is unique even when the coefficients are not: it matches sklearn's
    unit = dup / np.linalg.norm(dup, axis=0)
    ref = _sk_lasso(unit, y, alpha.numpy())
    fit = (codes.numpy() * np.linalg.norm(dup, axis=0)) @ unit.T
    np.testing.assert_allclose(fit, ref @ unit.T, atol=1e-5)


def test_lasso_and_omp_take_the_non_zero_count_in_the_same_place():
    from probe.sparse import omp

    rng = np.random.default_rng(3)
    d, y = torch.from_numpy(rng.normal(size=(20, 40))), torch.from_numpy(rng.normal(size=(5, 20)))
    for coder in (omp, lasso):
        codes = coder(d, y, 3)
        assert ((codes != 0).sum(1) <= 3).all() and ((codes != 0).sum(1) >= 1).all(), coder.__name__
    with pytest.raises(TypeError):
        lasso(d, y, 3, 0.1)  # the penalty goes by name: alpha=0.1  # pyright: ignore[reportCallIssue]
