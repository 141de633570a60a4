"""anderson with projective jumps (anderson.EXTRAPOLATE, an experiment off by default) against plain iteration."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from field_maps import hopfield

import probe
from probe.field import find_attractors, iterate
from probe.field.solvers import anderson

FAST: dict[str, Any] = dict(power_iters=10, probe_points=2)


@pytest.fixture
def jumps(monkeypatch):
    """The bench's "anderson jumps 4": jumps f(z) + 4 (f(z) - z), memory 10, 10 calm steps before mixing."""
    monkeypatch.setattr(anderson, "EXTRAPOLATE", 4.0)
    monkeypatch.setattr(anderson, "MEMORY", 10)
    monkeypatch.setattr(anderson, "CALM", 10)


def slow_tanh(dim: int = 12, top: float = 0.98, seed: int = 0):
    """f(z) = tanh(A z + b), A symmetric with eigenvalues in [0, top] (as J_f of the trained conv AEs): one attractor."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    a = ((q * torch.linspace(0.0, top, dim, dtype=torch.float64)) @ q.T).float()
    b = (0.3 * torch.randn(dim, generator=g, dtype=torch.float64)).float()
    return probe.wrap(lambda x: torch.tanh(x @ a.T + b), lambda z: z, (dim,), check_inputs=False, name="slow tanh")


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.flatten(1).double(), dim=1)


def same_attractors(r, ref) -> bool:
    cos = unit(r.points) @ unit(ref.points).T
    return len(r) == len(ref) and float(cos.max(1).values.min()) > 0.9999 and float(cos.max(0).values.min()) > 0.9999


def test_jumps_are_off_by_default():
    assert anderson.EXTRAPOLATE == 0.0
    m = slow_tanh(dim=4)
    r = iterate(m, torch.zeros(2, 4), max_steps=3, solver="anderson")
    assert r.n_evals == 6


def test_jumps_reach_the_plain_attractor_of_a_slow_contraction_in_fewer_evaluations(jumps):
    m = slow_tanh()
    z0 = 3 * torch.randn(16, 12, generator=torch.Generator().manual_seed(0))
    plain = find_attractors(m, seeds=z0, tol=1e-10, max_steps=3000, batch_size=16, **FAST)
    x = find_attractors(m, seeds=z0, tol=1e-10, max_steps=3000, batch_size=16, solver="anderson", **FAST)
    assert len(plain) == 1 and same_attractors(x, plain) and bool(x.stable.all()) and bool(x.converged.all())
    assert x.timing["redone"] == 0 and x.timing["jvps"] > 0  # the stability check's JVPs are counted
    assert x.timing["f_evals"] == int(x.steps.sum()) < 0.7 * plain.timing["f_evals"]
    assert bool((x.residuals < 1e-10).all())


def test_jumps_never_report_a_saddle(jumps):
    m, attractors, _, centroid, rho_saddle = hopfield()
    assert rho_saddle > 1
    z0 = centroid + 1e-3 * torch.randn(24, 5, generator=torch.Generator().manual_seed(0))
    plain = find_attractors(m, seeds=z0, tol=1e-10, max_steps=300, **FAST)
    x = find_attractors(m, seeds=z0, tol=1e-10, max_steps=300, solver="anderson", **FAST)
    assert bool(x.stable.all()) and len(x) == len(plain)
    assert float(torch.cdist(x.points, attractors).min(1).values.max()) < 1e-3


def test_jumps_find_plain_attractors_on_the_bundled_fmnist_k16(jumps, monkeypatch):
    from probe.maps.registry import builtin_names

    if "fmnist-k16" not in builtin_names():
        pytest.skip("bundled model fmnist-k16 not present")
    m = probe.load("builtin:fmnist-k16")
    z0 = 60 * torch.randn(8, *m.latent_shape(), generator=torch.Generator().manual_seed(0))
    plain = find_attractors(m, seeds=z0, batch_size=8, **FAST)
    x = find_attractors(m, seeds=z0, batch_size=8, solver="anderson", **FAST)
    assert bool(plain.stable.all()) and bool(x.stable.all()) and same_attractors(x, plain)
    assert x.timing["f_evals"] > 0 and x.timing["jvps"] > 0
    monkeypatch.setattr(anderson, "EXTRAPOLATE", 0.0)
    no_jumps = find_attractors(m, seeds=z0, batch_size=8, solver="anderson", **FAST)
    assert x.timing["f_evals"] < 0.85 * no_jumps.timing["f_evals"] < 0.85 * plain.timing["f_evals"]
