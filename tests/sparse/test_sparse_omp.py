"""OMP against scikit-learn's orthogonal_mp: same supports, same residuals (fp64)."""
from __future__ import annotations

import warnings
from typing import cast

import numpy as np
import pytest
import torch
from sklearn.linear_model import orthogonal_mp

from probe.sparse import omp, random_orthogonal_basis


def _problem(n_features=48, n_atoms=96, n_samples=40, seed=0, unit=True):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((n_features, n_atoms))
    if unit:
        d /= np.linalg.norm(d, axis=0)
    return d, rng.standard_normal((n_samples, n_features))


def _sklearn(d, y, s):
    with warnings.catch_warnings():  # "ended prematurely" where a signal is fully explained early
        warnings.simplefilter("ignore", RuntimeWarning)
        # cast: sklearn's inferred return type also has the (coef, path) tuple of return_path=True
        return cast(np.ndarray, orthogonal_mp(d, y.T, n_nonzero_coefs=s)).T.reshape(y.shape[0], d.shape[1])


def _supports(codes):
    return [frozenset(np.flatnonzero(c)) for c in codes]


@pytest.mark.parametrize("s", [1, 10, 40])  # 40 >= 96 / 3 takes the dense G product
def test_same_supports_and_residuals_as_sklearn(s):
    d, y = _problem()
    ref = _sklearn(d, y, s)
    ours = omp(torch.from_numpy(d), torch.from_numpy(y), s).numpy()
    assert _supports(ours) == _supports(ref)
    assert all(len(sup) == s for sup in _supports(ours))
    r_ref, r_ours = y - ref @ d.T, y - ours @ d.T
    rel = np.linalg.norm(r_ours - r_ref, axis=1) / np.linalg.norm(r_ref, axis=1)
    assert rel.max() < 1e-6
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_atoms_of_any_length_are_normalised_and_codes_returned_for_them():
    d, y = _problem(seed=1)
    lengths = np.random.default_rng(2).uniform(0.1, 10.0, d.shape[1])
    long = d * lengths  # the same directions, unequal norms
    ours = omp(torch.from_numpy(long), torch.from_numpy(y), 8).numpy()
    ref = _sklearn(d, y, 8) / lengths  # sklearn on unit atoms, mapped back to the long ones
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    np.testing.assert_allclose(ours @ long.T, ref @ long.T, atol=1e-9)


def test_fp32_agrees_with_fp64():
    d, y = _problem(seed=3)
    c64 = omp(torch.from_numpy(d), torch.from_numpy(y), 10)
    c32 = omp(torch.from_numpy(d).float(), torch.from_numpy(y).float(), 10)
    assert c32.dtype == torch.float32
    same = np.mean([a == b for a, b in zip(_supports(c32.numpy()), _supports(c64.numpy()), strict=False)])
    assert same >= 0.95
    r64 = torch.from_numpy(y) - c64 @ torch.from_numpy(d).T
    r32 = torch.from_numpy(y).float() - c32 @ torch.from_numpy(d).float().T
    assert torch.allclose(r32.norm(dim=1).double(), r64.norm(dim=1), rtol=1e-3)


def test_batches_give_the_same_codes():
    d, y = _problem(seed=4, n_samples=23)
    one = omp(torch.from_numpy(d), torch.from_numpy(y), 6)
    many = omp(torch.from_numpy(d), torch.from_numpy(y), 6, batch_size=5)
    assert _supports(one.numpy()) == _supports(many.numpy())
    torch.testing.assert_close(one, many, atol=1e-12, rtol=0)  # BLAS may sum in another order


def test_recovers_a_known_sparse_code_on_an_orthonormal_basis():
    basis = random_orthogonal_basis(32, seed=5, dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    truth = torch.zeros(10, 32, dtype=torch.float64)
    for row in truth:
        row[torch.randperm(32, generator=g)[:4]] = torch.rand(4, generator=g, dtype=torch.float64) + 0.5
    codes = omp(basis, truth @ basis.T, 4)
    torch.testing.assert_close(codes, truth, atol=1e-12, rtol=0)


def test_stops_early_when_the_signal_is_explained_like_sklearn():
    d, _ = _problem(seed=7)
    y = np.stack([d[:, 3] * 2.0 - d[:, 50], np.zeros(d.shape[0])])  # two atoms; a zero signal
    ours = omp(torch.from_numpy(d), torch.from_numpy(y), 5).numpy()
    ref = _sklearn(d, y, 5)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert _supports(ours) == [frozenset({3, 50}), frozenset()]


def test_one_signal_numpy_input_and_sparsity():
    d, y = _problem(seed=8)
    code = omp(d, y[0], sparsity=0.05)  # 5% of 96 atoms = 4.8 -> 5
    assert code.shape == (96,) and int((code != 0).sum()) == 5
    torch.testing.assert_close(code, omp(torch.from_numpy(d), torch.from_numpy(y[:1]), 5)[0])


def test_runs_on_the_requested_device(device):
    d, y = _problem(seed=9, n_samples=8)
    here = omp(torch.from_numpy(d).float(), torch.from_numpy(y).float(), 6)
    there = omp(torch.from_numpy(d).float().to(device), torch.from_numpy(y).float().to(device), 6)
    assert there.device.type == torch.device(device).type
    assert _supports(there.cpu().numpy()) == _supports(here.numpy())
    torch.testing.assert_close(there.cpu(), here, atol=1e-4, rtol=1e-4)
