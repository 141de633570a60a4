"""spectral_radius: power iteration + Arnoldi on JVPs against dense eigenvalues."""
from __future__ import annotations

import math
import warnings

import field_maps as fm
import numpy as np
import pytest
import torch

import probe
from probe.field import spectral_radius


def _matrix_map(a: torch.Tensor):
    return probe.wrap(lambda x: x @ a.T, lambda z: z, (a.shape[0],), check_inputs=False)


def test_dominant_complex_pair_gives_its_modulus():
    # a rotation by 0.7 rad scaled by 0.8 dominates 0.5 and -0.3: power iteration alone would oscillate
    a = torch.zeros(4, 4)
    a[:2, :2] = 0.8 * torch.tensor([[math.cos(0.7), -math.sin(0.7)], [math.sin(0.7), math.cos(0.7)]])
    a[2, 2], a[3, 3] = 0.5, -0.3
    assert torch.allclose(spectral_radius(_matrix_map(a), torch.randn(3, 4)), torch.full((3,), 0.8), atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_non_normal_matrix_matches_dense_eigenvalues(seed):
    a = torch.randn(6, 6, generator=torch.Generator().manual_seed(seed)) / 6 ** 0.5
    want = float(np.abs(np.linalg.eigvals(a.double().numpy())).max())
    assert float(spectral_radius(_matrix_map(a), torch.randn(1, 6), n_iter=20)) == pytest.approx(want, rel=1e-4)


def test_hopfield_attractor_and_saddle():
    m, attractors, rho_attr, centroid, rho_saddle = fm.hopfield(k=3, dim=5, beta=6.0)
    rho = spectral_radius(m, torch.stack([attractors[0].float(), centroid]))
    assert float(rho[0]) == pytest.approx(rho_attr, rel=1e-3)  # c (diag p - p p^T) at the attractor
    assert float(rho[1]) == pytest.approx(rho_saddle, rel=1e-3)  # c / K = 2 at the centroid: unstable


def test_finite_differences_agree_with_forward_mode():
    m, attractors, *_ = fm.hopfield()
    z = torch.randn(4, 5)
    ad = spectral_radius(m, z, method="autograd")
    fd = spectral_radius(m, z, method="fd")
    assert torch.allclose(ad, fd, rtol=1e-2, atol=1e-5)


def test_a_map_that_drops_tangents_falls_back_to_finite_differences():
    m, _, _, centroid, rho_saddle = fm.hopfield()

    def f(z):
        with torch.inference_mode():  # forward-mode AD silently sees no tangent here
            return m.f(z)

    blind = probe.wrap(f, lambda z: z, (5,), check_inputs=False, name="blind")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rho = spectral_radius(blind, centroid[None])
    assert any("finite differences" in str(x.message) for x in w)
    assert float(rho) == pytest.approx(rho_saddle, rel=1e-2)


def test_batching_and_empty_input():
    m, _, _ = fm.linear()
    z = torch.randn(5, 6)
    assert torch.allclose(spectral_radius(m, z), spectral_radius(m, z, batch_size=2), rtol=1e-5)
    assert spectral_radius(m, z[:0]).shape == (0,)


def test_the_three_jvps_agree_on_a_smooth_map():
    from probe.field.stability import jvp_autograd, jvp_fd, jvp_reverse

    torch.manual_seed(0)
    dec, enc = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh()), torch.nn.Linear(16, 4)
    m = probe.wrap(enc, dec, (4,), modules=[enc, dec], check_inputs=False).eval()
    z, v = torch.randn(3, 4), torch.randn(3, 4)
    ad = jvp_autograd(m, z, v)
    assert torch.allclose(jvp_reverse(m, z, v), ad, rtol=1e-5, atol=1e-6)
    assert torch.allclose(jvp_fd(m, z, v), ad, rtol=1e-2, atol=1e-3)


def test_a_flat_map_is_not_a_disagreement_between_ad_and_differences():
    # J_f v is 1e-20 v: differences round to exactly 0 and AD gives 1e-20; both say "zero", no warning
    c = torch.ones(6)
    flat = probe.wrap(lambda z: c + 1e-20 * z, lambda z: z, (6,), check_inputs=False, name="flat")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rho = spectral_radius(flat, torch.zeros(1, 6))
    assert not [x for x in w if "disagrees" in str(x.message)]
    assert float(rho) < 1e-6
