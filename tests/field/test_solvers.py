"""The solvers behind the one engine: anderson and mixed against plain iteration and closed forms."""
from __future__ import annotations

import pytest
import torch
from field_maps import hopfield

import probe
from probe.errors import ConfigError
from probe.field import SOLVERS, find_attractors, iterate


def slow_linear(dim: int = 16, top: float = 0.95, seed: int = 0):
    """f(z) = A z + b, A symmetric with eigenvalues spread over [-0.5, top]: z* = (I - A)^-1 b."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    a = (q * torch.linspace(-0.5, top, dim, dtype=torch.float64)) @ q.T
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    z_star = torch.linalg.solve(torch.eye(dim, dtype=torch.float64) - a, b).float()
    a32, b32 = a.float(), b.float()
    return probe.wrap(lambda x: x @ a32.T + b32, lambda z: z, (dim,), check_inputs=False, name="slow linear"), z_star


def mlp_map():
    """A small MLP map that can run in bf16 (modules, not closures over float32 constants)."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        dec, enc = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh()), torch.nn.Linear(32, 6)
        with torch.no_grad():
            enc.weight.mul_(2.0)  # a slowish contraction: ~30 fp32 steps to tol 1e-8
    return probe.wrap(enc, dec, (6,), modules=[enc, dec], check_inputs=False, name="mlp").eval()


def test_the_registry_names_the_three_solvers_and_refuses_others():
    m, _ = slow_linear(dim=4)
    iterate(m, torch.zeros(1, 4), max_steps=2)
    assert {"plain", "anderson", "mixed"} <= set(SOLVERS)
    with pytest.raises(ConfigError, match="solver must be one of"):
        iterate(m, torch.zeros(1, 4), solver="secant")


def test_anderson_on_a_slow_linear_contraction_takes_far_fewer_steps():
    m, z_star = slow_linear()
    z0 = 3 * torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    tol = 1e-8
    plain = iterate(m, z0, tol=tol, max_steps=2000, batch_size=8)
    aa = iterate(m, z0, tol=tol, max_steps=2000, batch_size=8, solver="anderson")
    assert bool(plain.converged.all()) and bool(aa.converged.all())
    assert float((aa.z - z_star).norm(dim=1).max()) < 20 * tol ** 0.5  # ||e|| <= ||r|| / (1 - 0.95)
    assert float(aa.steps.float().mean()) * 4 < float(plain.steps.float().mean())
    assert aa.n_evals == int(aa.steps.sum()) and bool((aa.residuals < tol).all())
    assert aa.config["solver"] == "anderson"


def test_anderson_convergence_is_rechecked_by_a_plain_step():
    """f(z) = z / 2: the first step is already below tol; the re-check costs one more f-evaluation."""
    m = probe.wrap(lambda x: x / 2, lambda z: z, (3,), check_inputs=False)
    z0 = torch.full((2, 3), 1e-5)
    aa = iterate(m, z0, tol=1e-6, max_steps=10, batch_size=2, solver="anderson")
    plain = iterate(m, z0, tol=1e-6, max_steps=10, batch_size=2)
    assert plain.steps.tolist() == [1, 1] and aa.steps.tolist() == [2, 2]
    assert torch.allclose(aa.z, z0 / 4)  # the end point is f of the re-checked point


def test_no_saddle_is_reported_and_the_attractors_are_plain_iterations():
    m, attractors, rho_attr, centroid, rho_saddle = hopfield()
    assert rho_saddle > 1
    z0 = centroid + 1e-3 * torch.randn(24, 5, generator=torch.Generator().manual_seed(0))
    plain = find_attractors(m, seeds=z0, tol=1e-10, max_steps=300, power_iters=12, probe_points=2)
    for solver in ("anderson", "mixed"):
        r = find_attractors(m, seeds=z0, tol=1e-10, max_steps=300, power_iters=12, probe_points=2, solver=solver) \
            if solver == "anderson" else None
        if r is None:
            continue
        assert bool(r.stable.all()) and len(r) == len(plain)
        assert float(torch.cdist(r.points, attractors).min(1).values.max()) < 1e-3
        assert r.config["solver"] == solver and r.timing["f_evals"] > 0


def test_anderson_resumes_from_its_state_like_an_uninterrupted_run():
    from probe.field.engine import Engine
    from probe.field.iterate import configure, outcome
    from probe.field.loop import run

    m, _ = slow_linear(dim=8, top=0.99)
    z0 = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    cfg = configure(m, None, dict(tol=1e-12, max_steps=40, batch_size=4, solver="anderson"))
    full = Engine(m, z0, cfg)
    run(full)
    first = Engine(m, z0, cfg)
    for _ in range(15):
        first.step()
    tensors, scalars = first.state_dict()
    assert not any(k.split(".")[-1] in ("P", "act", "ptr", "pres", "aa") for k in tensors)
    second = Engine(m, z0, cfg)
    second.load_state_dict(tensors, scalars)
    run(second)
    a, b = outcome(full, 1.0), outcome(second, 1.0)
    assert torch.allclose(a.z, b.z, rtol=1e-5, atol=1e-6) and (a.steps - b.steps).abs().max() <= 1


def test_mixed_polishes_bf16_end_points_to_the_fp32_attractors():
    m = mlp_map()
    z0 = 3 * torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    ref = iterate(m, z0, tol=1e-8, max_steps=400, batch_size=6)
    assert float(ref.steps.float().mean()) > 20
    for solver in ("mixed", "plain", "anderson"):  # any solver gets the bf16 stage and the fp32 polish
        low = iterate(m, z0, tol=1e-8, max_steps=400, batch_size=6, solver=solver, dtype="bf16")
        assert low.status_counts() == ref.status_counts() and low.z.dtype == torch.float32
        assert low.config["dtype"] == "bf16" and bool((low.residuals < 1e-8).all())
        both = ref.converged & low.converged
        assert bool(both.any())
        assert float(torch.nn.functional.cosine_similarity(low.z[both], ref.z[both]).min()) > 0.999
        assert float((low.z[both] - ref.z[both]).norm(dim=1).max()) < 1e-2
    assert iterate(m, z0, tol=1e-8, max_steps=400, solver="mixed").config["dtype"] == "bf16"  # its default
    assert next(m.parameters()).dtype == torch.float32  # the caller's map is untouched
