"""iterate: per-seed stopping, cycles, divergence, recording -- against answers known in closed form."""
from __future__ import annotations

import field_maps as fm
import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.field import iterate
from probe.field.status import CONVERGED, CYCLE, DIVERGED, UNCONVERGED


def test_linear_contraction_reaches_its_fixed_point_and_stopped_seeds_cost_nothing():
    m, z_star, _ = fm.linear(dim=6, scale=0.8)
    z0 = torch.randn(12, 6) * torch.logspace(-2, 1, 12)[:, None]  # near and far seeds
    z0[0] = z_star  # already at the fixed point: stops after one evaluation
    tr = iterate(m, z0, tol=1e-12, max_steps=500)
    assert tr.converged.all()
    assert torch.allclose(tr.z, z_star.expand(12, 6), atol=1e-5)
    assert int(tr.steps[0]) == 1
    assert len(set(tr.steps.tolist())) > 3  # each seed stops at its own step
    assert tr.n_evals == int(tr.steps.sum())  # a converged seed left the batch
    assert (tr.residuals < 1e-12).all()
    with torch.no_grad():
        first = (m.f(z0) - z0).norm(dim=1)
    assert torch.allclose(tr.first_residual, first, rtol=1e-5)
    assert tr.median_rel_step[0] == pytest.approx(float((first / z0.norm(dim=1)).median()), rel=1e-5)


def test_refilling_a_small_batch_gives_the_same_answer():
    m, _, _ = fm.linear()
    z0 = torch.randn(10, 6)
    full = iterate(m, z0, tol=1e-10, max_steps=300)
    small = iterate(m, z0, tol=1e-10, max_steps=300, batch_size=3)
    # Batch composition changes only the rounding of the batched matmul (it differs by CPU:
    # one seed took 20 steps at batch 10 and 21 at batch 3 on an Intel Xeon), so a seed may
    # cross the tolerance one step apart; end points agree within 1e-5 relative.
    assert torch.equal(full.status, small.status)
    assert (full.steps - small.steps).abs().max() <= 1
    assert abs(full.n_evals - small.n_evals) <= len(z0)
    assert torch.allclose(full.z, small.z, rtol=1e-5, atol=1e-6)


def test_defaults_come_from_the_map_and_max_steps_marks_unconverged():
    m, _, _ = fm.linear(scale=0.999)
    m.field_defaults = {"tol": 1e-14, "max_steps": 7}
    tr = iterate(m, torch.randn(4, 6))
    assert (tr.status == UNCONVERGED).all() and (tr.steps == 7).all()


def test_relative_tolerance_stops_earlier_and_by_its_rule():
    m, _, _ = fm.linear(scale=0.9)
    z0 = torch.randn(8, 6) * 10
    abs_only = iterate(m, z0, tol=1e-12, max_steps=1000)
    rel = iterate(m, z0, tol=1e-12, rtol=1e-3, max_steps=1000)
    assert rel.converged.all() and (rel.steps < abs_only.steps).all()
    assert (rel.residuals.sqrt() / rel.z.norm(dim=1) < 1.1e-3).all()


def test_two_cycle_is_found_with_its_period_and_known_amplitude():
    m, a = fm.two_cycle(dim=4, beta=3.0)
    tr = iterate(m, torch.randn(16, 4), tol=1e-10, max_steps=300)
    assert (tr.status == CYCLE).all() and (tr.period == 2).all()
    assert torch.allclose(tr.z.abs(), torch.full((16, 4), a), atol=1e-5)


def test_three_cycle_is_found():
    z0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    tr = iterate(fm.three_cycle(), z0, tol=1e-10, max_steps=300)
    assert (tr.status == CYCLE).all() and (tr.period == 3).all()
    assert tr.z.dtype == torch.float64  # an fp64 map keeps fp64 end points
    assert torch.allclose(tr.z.norm(dim=1), torch.ones(8, dtype=torch.float64), atol=1e-4)


def test_a_period_50_orbit_is_a_cycle_with_its_period_and_needs_max_period_50():
    z0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tr = iterate(fm.long_cycle(50), z0, tol=1e-10, max_steps=3000)  # max_period 64 by default
    assert (tr.status == CYCLE).all() and (tr.period == 50).all()
    short = iterate(fm.long_cycle(50), z0, tol=1e-10, max_steps=600, max_period=8)
    assert (short.status == UNCONVERGED).all() and (short.period == 0).all()


def test_an_oscillating_contraction_is_not_mistaken_for_a_cycle():
    b = torch.randn(3)
    m = probe.wrap(lambda x: -0.95 * x + b, lambda z: z, (3,), check_inputs=False)
    tr = iterate(m, torch.randn(6, 3), tol=1e-12, max_steps=3000)
    assert (tr.status == CONVERGED).all()
    assert torch.allclose(tr.z, (b / 1.95).expand(6, 3), atol=1e-5)


def test_seeds_that_blow_up_are_marked_diverged_and_keep_their_last_finite_state():
    m = probe.wrap(lambda x: torch.where(x[:, :1] > 0, 1e6 * x, 0.5 * x), lambda z: z, (3,), check_inputs=False)
    z0 = torch.randn(10, 3)
    tr = iterate(m, z0, tol=1e-12, max_steps=200)
    up = z0[:, 0] > 0
    assert torch.equal(tr.status == DIVERGED, up) and tr.status_counts()["diverged"] == int(up.sum())
    assert torch.isfinite(tr.z).all() and (tr.status[~up] == CONVERGED).all()


def test_bad_seeds_and_maps_fail_in_one_line():
    m, _, _ = fm.linear()
    z0 = torch.randn(5, 6)
    z0[1, 2] = float("nan")
    z0[3, 0] = float("inf")
    with pytest.raises(ProbeError, match="2 of 5 seeds"):
        iterate(m, z0)
    wrong = probe.wrap(lambda x: x[:, :2], lambda z: z, (6,), check_inputs=False)
    with pytest.raises(ProbeError, match="changed the latent shape"):
        iterate(wrong, torch.randn(2, 6))
    with pytest.raises(ProbeError, match="LatentMap"):
        iterate(lambda z: z, torch.randn(2, 6))  # type: ignore[arg-type]


def test_recorded_trajectories_are_the_iterates():
    m, _, _ = fm.linear(scale=0.7)
    z0 = torch.randn(5, 6)
    tr = iterate(m, z0, tol=1e-10, max_steps=200, record=True, batch_size=2)
    assert tr.path is not None and tr.path_len is not None
    assert torch.equal(tr.path_len, tr.steps + 1)
    z = z0.clone()
    with torch.no_grad():
        for j in range(int(tr.steps.max()) + 1):
            live = tr.steps >= j
            assert torch.allclose(tr.path[live, j], z[live], atol=1e-5)
            z = m.f(z)
    assert torch.equal(tr.path[torch.arange(5), tr.path_len - 1], tr.z)
    assert torch.equal(tr.path[:, -1], tr.z)  # padded with the end point
    every3 = iterate(m, z0, tol=1e-10, max_steps=200, record=True, record_every=3)
    assert every3.path is not None
    assert torch.allclose(every3.path[:, 1], tr.path[:, 3]) and torch.equal(every3.trajectory(0)[-1], tr.z[0])
