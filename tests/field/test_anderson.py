"""The safeguarded Anderson solver against closed-form fixed points and plain iteration."""
from __future__ import annotations

import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.field.anderson import AndersonSolver, attractor_mask, check_end_points, solve, solve_stable
from probe.field.iterate import Trajectories, iterate, run

from field_maps import hopfield


def slow_linear(dim: int = 16, top: float = 0.95, seed: int = 0):
    """f(z) = A z + b, A symmetric with eigenvalues spread over [-0.5, top]: z* = (I - A)^-1 b.

    Plain iteration shrinks the error by ``top`` per step along the slowest direction.
    """
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    a = (q * torch.linspace(-0.5, top, dim, dtype=torch.float64)) @ q.T
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    z_star = torch.linalg.solve(torch.eye(dim, dtype=torch.float64) - a, b).float()
    a32, b32 = a.float(), b.float()
    return probe.wrap(lambda x: x @ a32.T + b32, lambda z: z, (dim,), check_inputs=False, name="slow linear"), z_star


def test_linear_contraction_far_fewer_steps_than_plain():
    m, z_star = slow_linear()
    z0 = 3 * torch.randn(8, 16)
    tol = 1e-8
    plain = iterate(m, z0, tol=tol, max_steps=2000, max_period=1, batch_size=8)
    aa = solve(m, z0, tol=tol, max_steps=2000, batch_size=8)
    assert isinstance(aa, Trajectories)
    assert bool(plain.converged.all()) and bool(aa.converged.all())
    # the known fixed point, to the accuracy the tolerance allows: ||e|| <= ||r|| / (1 - 0.95)
    assert float((aa.z - z_star).norm(dim=1).max()) < 20 * tol ** 0.5
    assert float((plain.z - z_star).norm(dim=1).max()) < 20 * tol ** 0.5
    assert float(aa.steps.float().mean()) * 4 < float(plain.steps.float().mean())
    assert aa.n_evals == int(aa.steps.sum())
    assert bool((aa.residuals < tol).all())
    assert bool(torch.isfinite(aa.first_residual).all())


def test_convergence_is_rechecked_by_a_plain_step():
    """f(z) = z / 2: the first step from 0 + tiny is already below tol, the re-check costs one more."""
    m = probe.wrap(lambda x: x / 2, lambda z: z, (3,), check_inputs=False)
    z0 = torch.full((2, 3), 1e-5)
    aa = solve(m, z0, tol=1e-6, max_steps=10, batch_size=2)
    plain = iterate(m, z0, tol=1e-6, max_steps=10, batch_size=2)
    assert plain.steps.tolist() == [1, 1]
    assert aa.steps.tolist() == [2, 2]
    assert torch.allclose(aa.z, z0 / 4)  # the end point is f of the re-checked point


def test_saddle_is_never_reported_as_an_attractor():
    m, attractors, rho_attr, centroid, rho_saddle = hopfield()
    assert rho_saddle > 1
    z0 = centroid + 1e-3 * torch.randn(24, 5)
    aa = solve(m, z0, tol=1e-10, max_steps=300, batch_size=24, calm=0)
    at_saddle = (aa.z - centroid).norm(dim=1) < 1e-3
    assert bool(at_saddle.any())  # mixing from the first step does reach the saddle ...
    rho = check_end_points(m, aa)
    assert bool((rho[at_saddle] > 1).all())  # ... and the stability check flags it
    assert not bool(attractor_mask(m, aa)[at_saddle].any())
    patient = solve(m, z0, tol=1e-10, max_steps=300, batch_size=24)  # waits for falling residuals
    assert float((patient.z - centroid).norm(dim=1).min()) > 1e-2
    fixed = solve_stable(m, z0, tol=1e-10, max_steps=300, batch_size=24, calm=0)
    assert bool(fixed.converged.all()) and bool(fixed.redone[at_saddle].all())
    assert bool((fixed.spectral_radius < 1).all())
    near = torch.cdist(fixed.z, attractors).min(1).values
    assert float(near.max()) < 1e-3  # every end point is one of the known attractors
    assert abs(float(fixed.spectral_radius[0]) - rho_attr) < 1e-2


def test_repeller_reached_by_mixing_is_flagged_and_plain_iteration_diverges():
    """f(z) = 2 z + 1 has one fixed point, z = -1, repelling (rho 2); mixing solves the linear equation."""
    m = probe.wrap(lambda x: 2 * x + 1, lambda z: z, (2,), check_inputs=False)
    z0 = torch.randn(4, 2)
    aa = solve(m, z0, tol=1e-10, max_steps=200, batch_size=4, calm=0)
    assert bool(aa.converged.all()) and torch.allclose(aa.z, torch.full_like(aa.z, -1.0), atol=1e-4)
    assert bool((check_end_points(m, aa) > 1.9).all())
    fixed = solve_stable(m, z0, tol=1e-10, max_steps=200, batch_size=4, calm=0)
    assert fixed.status_counts()["converged"] == 0
    patient = solve(m, z0, tol=1e-10, max_steps=200, batch_size=4)  # the residual only grows: never mixes
    assert patient.status_counts()["diverged"] == 4


def test_budget_and_resume_match_an_uninterrupted_run():
    m, _ = slow_linear(dim=8, top=0.99)
    z0 = torch.randn(6, 8)
    full = solve(m, z0, tol=1e-12, max_steps=12, batch_size=4)
    assert full.status_counts()["unconverged"] == 6 and bool((full.steps == 12).all())
    first = AndersonSolver(m, z0, tol=1e-12, max_steps=12, batch_size=4)
    for _ in range(5):
        first.step()
    tensors, scalars = first.state_dict()
    second = AndersonSolver(m, z0, tol=1e-12, max_steps=12, batch_size=4)
    second.load_state_dict(tensors, scalars)
    resumed = second.result(run(second))
    assert torch.equal(resumed.z, full.z) and torch.equal(resumed.steps, full.steps)


def test_bad_input_is_one_clear_error():
    m, _ = slow_linear(dim=4)
    with pytest.raises(ProbeError, match="beta"):
        solve(m, torch.zeros(2, 4), beta=0.0, batch_size=2)
    with pytest.raises(ProbeError, match="NaN"):
        solve(m, torch.full((2, 4), float("nan")), batch_size=2)
    with pytest.raises(ProbeError, match="latent shape"):
        solve(m, torch.zeros(2, 5), batch_size=2)
