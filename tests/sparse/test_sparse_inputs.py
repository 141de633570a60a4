"""Every user mistake is one clear ProbeError line."""
from __future__ import annotations

import math

import pytest
import torch

from probe.config import build
from probe.errors import ProbeError
from probe.sparse import SparseConfig, code, lasso, omp, pca_basis, random_orthogonal_basis

D = torch.randn(8, 20, generator=torch.Generator().manual_seed(0))
Y = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))


def _one_line(call, *match):
    with pytest.raises(ProbeError) as e:
        call()
    text = str(e.value)
    assert "\n" not in text
    for m in match:
        assert m in text, text
    return text


def _with(tensor, index, value):
    t = tensor.clone()
    t[index] = value
    return t


@pytest.mark.parametrize("coder", [omp, lasso])
def test_mismatched_sizes(coder):
    _one_line(lambda: coder(D, torch.randn(5, 9), n_nonzero=2), "9 features", "has 8")
    _one_line(lambda: coder(D.T, Y, n_nonzero=2), "transposed")  # [n_atoms, n_features] by mistake
    _one_line(lambda: coder(D[None], Y, n_nonzero=2), "2-D")


@pytest.mark.parametrize("coder", [omp, lasso])
@pytest.mark.parametrize("k", [0, -3, 21, 2.5])
def test_bad_n_nonzero(coder, k):
    _one_line(lambda: coder(D, Y, n_nonzero=k), "n_nonzero")


@pytest.mark.parametrize("coder", [omp, lasso])
@pytest.mark.parametrize("where", ["signals", "dictionary"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_and_inf(coder, where, value):
    d, y = (D, _with(Y, (2, 3), value)) if where == "signals" else (_with(D, (0, 0), value), Y)
    _one_line(lambda: coder(d, y, n_nonzero=2), where, "NaN or inf")


@pytest.mark.parametrize("coder", [omp, lasso])
@pytest.mark.parametrize("sparsity", [0.0, -0.1, 1.5, math.nan])
def test_sparsity_outside_0_1(coder, sparsity):
    _one_line(lambda: coder(D, Y, sparsity=sparsity), "sparsity", "(0, 1]")


def test_conflicting_or_wrong_arguments():
    _one_line(lambda: omp(D, Y, 3, sparsity=0.1), "not both")
    _one_line(lambda: lasso(D, Y, alpha=0.1, n_nonzero=3), "not both")
    _one_line(lambda: lasso(D, Y, alpha=-1.0), "alpha")
    _one_line(lambda: code(D, Y, "omp", alpha=0.1), "lasso penalty")
    _one_line(lambda: code(D, Y, "ksvd", n_nonzero=2), "unknown sparse coder", "omp, lasso")
    _one_line(lambda: omp(D, Y, 2, batch_size=0), "batch_size")
    _one_line(lambda: omp(D, "signals", 2), "signals")


def test_bases_reject_impossible_sizes():
    _one_line(lambda: random_orthogonal_basis(4, 5), "n_atoms=5", "(4)")
    _one_line(lambda: random_orthogonal_basis(0), "dim")
    _one_line(lambda: pca_basis(torch.randn(1, 6), 2), "N >= 2")
    _one_line(lambda: pca_basis(_with(torch.randn(5, 6), (1, 1), math.nan), 2), "NaN")


def test_config_validates_through_build():
    assert SparseConfig().kwargs() == {"coder": "omp", "n_nonzero": None, "alpha": None,
                                      "sparsity": 0.05, "batch_size": None}
    assert SparseConfig(coder="lasso", alpha=0.1).kwargs()["sparsity"] is None
    _one_line(lambda: build(SparseConfig, coder="ksvd"), "coder must be one of")
    _one_line(lambda: build(SparseConfig, sparsity=2.0), "sparsity")
    _one_line(lambda: build(SparseConfig, coder="omp", alpha=0.1), "lasso")
