"""The newton solver (plain steps, Newton-Krylov on forward-difference JVPs in the linear tail) against plain."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from field_maps import hopfield

import probe
from probe.field import SOLVERS, find_attractors, iterate
from probe.field.solvers import newton

FAST: dict[str, Any] = dict(power_iters=10, probe_points=2)


def slow_tanh(dim: int = 12, top: float = 0.97, seed: int = 0, shift: float = 0.3):
    """f(z) = tanh(A z + b), A symmetric with eigenvalues in [-0.5, top]: one attractor, a slow linear tail."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    a = ((q * torch.linspace(-0.5, top, dim, dtype=torch.float64)) @ q.T).float()
    b = (shift * torch.randn(dim, generator=g, dtype=torch.float64)).float()
    return probe.wrap(lambda x: torch.tanh(x @ a.T + b), lambda z: z, (dim,), check_inputs=False, name="slow tanh")


def two_wells(dim: int = 6):
    """f(z) = tanh(beta z) per coordinate, slope just above 1 at 0: attractors +-a per coordinate (2^dim of them),
    0 a repeller; slow contraction near +-a."""
    return probe.wrap(lambda z: torch.tanh(1.3 * z), lambda z: z, (dim,), check_inputs=False, name="two wells")


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.flatten(1).double(), dim=1)


@pytest.mark.parametrize("dim", [12, 48])  # the whole Jacobian per Newton step, or Arnoldi one JVP a step
def test_newton_is_registered_and_counts_its_jvps(dim):
    assert "newton" in SOLVERS
    m = slow_tanh(dim=dim)
    z0 = 2 * torch.randn(8, dim, generator=torch.Generator().manual_seed(1))
    r = iterate(m, z0, tol=1e-10, max_steps=2000, batch_size=8, solver="newton")
    assert r.config["solver"] == "newton" and bool(r.converged.all())
    assert r.n_jvps > 0  # forward differences are counted as JVPs, not as f-evaluations
    if dim > newton.DENSE:  # one f call per seed and step, of either kind
        assert r.n_evals + r.n_jvps == int(r.steps.sum())
    else:  # a Jacobian step takes dim JVPs in one engine step
        assert (r.n_evals + r.n_jvps - int(r.steps.sum())) % (dim - 1) == 0


@pytest.mark.parametrize("dim", [12, 48])
def test_newton_reaches_plain_attractors_in_fewer_evaluations_on_a_slow_contraction(dim):
    m = slow_tanh(dim=dim, top=0.99, shift=0.02)  # nearly linear: the rate of plain iteration is ~0.99
    z0 = 0.3 * torch.randn(16, dim, generator=torch.Generator().manual_seed(0))
    plain = find_attractors(m, seeds=z0, tol=1e-10, max_steps=5000, batch_size=16, **FAST)
    nk = find_attractors(m, seeds=z0, tol=1e-10, max_steps=5000, batch_size=16, solver="newton", **FAST)
    assert len(nk) == len(plain) == 1 and bool(nk.stable.all()) and bool(nk.converged.all())
    assert float((unit(nk.points) * unit(plain.points)).sum(1).min()) > 0.9999
    assert float((nk.points - plain.points).norm()) < 1e-3
    assert nk.timing["f_evals"] + nk.timing["jvps"] < 0.7 * (plain.timing["f_evals"] + plain.timing["jvps"])
    assert float(nk.steps.float().max()) < 0.5 * float(plain.steps.float().max())


def test_newton_finds_the_same_attractors_as_plain_with_many_basins():
    m = two_wells()
    z0 = torch.randn(32, 6, generator=torch.Generator().manual_seed(3))
    plain = find_attractors(m, seeds=z0, tol=1e-12, max_steps=3000, batch_size=32, merge_threshold=0.999, **FAST)
    nk = find_attractors(m, seeds=z0, tol=1e-12, max_steps=3000, batch_size=32, merge_threshold=0.999,
                         solver="newton", **FAST)
    assert len(nk) == len(plain) and bool(nk.stable.all()) == bool(plain.stable.all())
    cos = unit(nk.points) @ unit(plain.points).T
    assert float(cos.max(1).values.min()) > 0.9999 and float(cos.max(0).values.min()) > 0.9999
    basin = (unit(nk.end_points) * unit(plain.end_points)).sum(1) > 0.9999
    assert float(basin.double().mean()) == 1.0  # the seeds are deep in their basins: none moves


def test_newton_never_reports_a_saddle_even_when_it_tries_newton_at_once(monkeypatch):
    """Seeds next to the Hopfield centroid, a saddle (rho = 2): Newton would converge to it; with CALM = 0 the
    solver proposes Newton steps from the first step, and the Ritz guard (or the re-check) must refuse them."""
    m, attractors, _, centroid, rho_saddle = hopfield()
    assert rho_saddle > 1
    z0 = centroid + 1e-3 * torch.randn(24, 5, generator=torch.Generator().manual_seed(0))
    plain = find_attractors(m, seeds=z0, tol=1e-10, max_steps=300, **FAST)
    monkeypatch.setattr(newton, "CALM", 0)
    nk = find_attractors(m, seeds=z0, tol=1e-10, max_steps=300, solver="newton", **FAST)
    assert bool(nk.stable.all()) and len(nk) == len(plain)
    assert float(torch.cdist(nk.points, attractors).min(1).values.max()) < 1e-3
    assert float((nk.end_points[nk.converged] - centroid).norm(dim=1).min()) > 0.1


def test_the_ritz_guard_sees_an_unstable_jacobian():
    """(J - I) on a full Krylov space: Ritz values of J are its eigenvalues; padding adds none of modulus 1."""
    d = torch.tensor([0.5, -0.3, 1.2])
    h = torch.zeros(1, 4, 3, dtype=torch.float64)
    h[0, :3, :3] = torch.diag(d - 1).double()
    assert abs(float(newton.ritz_radius(h, torch.tensor([3]))[0]) - 1.2) < 1e-6
    assert abs(float(newton.ritz_radius(h, torch.tensor([2]))[0]) - 0.5) < 1e-6
    y, resid = newton.gmres_solve(h, torch.tensor([1.0], dtype=torch.float64), torch.tensor([2]))
    assert float(y[0, 2]) == 0.0 and abs(float(y[0, 0]) - 1 / (0.5 - 1)) < 1e-6 and float(resid[0]) < 1e-6


@pytest.mark.parametrize("stop_at", [7, 30])
def test_newton_resumes_from_its_state_like_an_uninterrupted_run(stop_at):
    from probe.field.engine import Engine
    from probe.field.iterate import configure, outcome
    from probe.field.loop import run

    m = slow_tanh(dim=8, top=0.99, seed=2)
    z0 = 2 * torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    cfg = configure(m, None, dict(tol=1e-12, max_steps=3000, batch_size=4, solver="newton"))
    full = Engine(m, z0, cfg)
    run(full)
    first = Engine(m, z0, cfg)
    for _ in range(stop_at):  # mid-Krylov for some rows
        first.step()
    tensors, scalars = first.state_dict()
    assert "rows.basis" in tensors and "rows.hess" in tensors
    second = Engine(m, z0, cfg)
    second.load_state_dict(tensors, scalars)
    run(second)
    a, b = outcome(full, 1.0), outcome(second, 1.0)
    assert torch.equal(a.status, b.status) and bool(a.converged.all())
    assert torch.allclose(a.z, b.z, rtol=1e-5, atol=1e-5) and (a.steps - b.steps).abs().max() <= 2
    assert full.jvps > 0 and abs(full.jvps - second.jvps) <= 4


def test_newton_checkpoints_on_ctrl_c_and_resumes_to_the_same_set(tmp_path):
    from probe.field.checkpoint import path_for

    base = slow_tanh(dim=6, top=0.98, seed=4)
    settings: dict[str, Any] = dict(n_seeds=12, tol=1e-12, max_steps=3000, batch_size=4, solver="newton", **FAST)
    full = find_attractors(base, **settings)
    calls = {"n": 0}
    inner = base.f

    def f(z):
        calls["n"] += 1
        if calls["n"] > 60:
            raise KeyboardInterrupt
        return inner(z)

    killed = probe.wrap(f, lambda z: z, (6,), check_inputs=False, name="slow tanh")
    with pytest.raises(KeyboardInterrupt):
        find_attractors(killed, out=tmp_path, checkpoint_every=20, **settings)
    assert path_for(tmp_path).is_file()
    resumed = find_attractors(base, out=tmp_path, checkpoint_every=20, **settings)
    assert len(resumed) == len(full) and torch.equal(resumed.status, full.status)
    assert torch.allclose(resumed.end_points, full.end_points, rtol=1e-5, atol=1e-5)
    assert (resumed.steps - full.steps).abs().max() <= 2
