"""The baseline dictionaries: random orthogonal (QR of a Gaussian) and PCA."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA

from probe.sparse import pca_basis, random_orthogonal_basis


def test_random_basis_is_orthonormal_seeded_and_typed():
    q = random_orthogonal_basis(40, 25, seed=3, dtype=torch.float64)
    assert q.shape == (40, 25) and q.dtype == torch.float64
    torch.testing.assert_close(q.T @ q, torch.eye(25, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.equal(q, random_orthogonal_basis(40, 25, seed=3, dtype=torch.float64))
    assert not torch.allclose(q, random_orthogonal_basis(40, 25, seed=4, dtype=torch.float64))
    square = random_orthogonal_basis(16)
    assert square.shape == (16, 16) and square.dtype == torch.float32
    torch.testing.assert_close(square @ square.T, torch.eye(16), atol=1e-5, rtol=0)


def test_random_basis_is_haar_not_plain_qr():
    # plain QR makes R's diagonal positive only by convention of the library; folding its signs
    # in gives Q = G R^{-1} with diag(R) > 0, the Haar-distributed factor
    gauss = torch.randn(12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = random_orthogonal_basis(12, seed=0, dtype=torch.float64)
    r = q.T @ gauss
    assert (torch.diagonal(r) > 0).all()
    torch.testing.assert_close(torch.triu(r), r, atol=1e-10, rtol=0)


def test_same_basis_on_every_device(device):
    a = random_orthogonal_basis(10, 4, seed=1)
    b = random_orthogonal_basis(10, 4, seed=1, device=device)
    torch.testing.assert_close(b.cpu(), a)


def test_pca_recovers_known_axes_like_sklearn():
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2])
    data = (rng.standard_normal((400, 6)) * scales) @ axes.T + 7.0  # an offset the mean takes out
    basis = pca_basis(torch.from_numpy(data), 3).numpy()
    pca = PCA(n_components=3).fit(data)
    assert pca.components_ is not None
    ref = pca.components_.T
    signs = np.sign(ref[np.abs(ref).argmax(0), np.arange(3)])
    np.testing.assert_allclose(basis, ref * signs, atol=1e-10)
    assert (np.abs(np.abs(basis.T @ axes[:, :3]).diagonal() - 1) < 0.02).all()


def test_pca_of_few_samples_gives_fewer_atoms():
    z = torch.randn(5, 2, 3, 3)  # N = 5 latents of shape 2x3x3: rank 4 once centred
    basis = pca_basis(z, 10)
    assert basis.shape == (18, 4)
    torch.testing.assert_close(basis.T @ basis, torch.eye(4), atol=1e-5, rtol=0)
