"""The dynamics verdict on maps whose dynamics are known: contractive, mixed, expansive."""
from __future__ import annotations

import math
from typing import Any

import field_maps as fm
import pytest
import torch

import probe
from probe.field import diagnose, find_attractors
from probe.field.status import UNCONVERGED

FAST: dict[str, Any] = dict(power_iters=12, probe_points=4)


def _cat_map():
    """Arnold's cat map (x, y) -> (2x + y, x + y) mod 1 on two tori: J has eigenvalues
    (3 +- sqrt 5) / 2 everywhere, so the spectral radius is 2.618 and nothing converges."""
    a = torch.tensor([[2.0, 1.0], [1.0, 1.0]], dtype=torch.float64)

    def f(z):
        return torch.remainder(z.view(-1, 2, 2) @ a.T, 1.0).view(-1, 4)

    return probe.wrap(f, lambda z: z, (4,), check_inputs=False, name="cat map", dtype=torch.float64)


def test_expansive_map_gets_the_expansive_verdict_and_no_attractors():
    m = _cat_map()
    r = find_attractors(m, n_seeds=16, tol=1e-10, max_steps=100, **FAST)
    assert r.verdict == "expansive" and len(r) == 0
    assert (r.status == UNCONVERGED).all() and (r.assignment == -1).all()
    assert torch.allclose(r.diagnosis.rho_end.double(), torch.full((4,), (3 + 5 ** 0.5) / 2, dtype=torch.float64),
                          rtol=1e-3)
    assert "expansive" in r.diagnosis.line and "no attractors" in r.diagnosis.line
    assert r.diagnosis.median_rel_step[-1] > 0.1  # the step never shrinks


def test_contractive_map_gets_the_contractive_verdict():
    m, _, _ = fm.linear()
    r = find_attractors(m, n_seeds=16, tol=1e-10, max_steps=300, **FAST)
    assert r.verdict == "contractive" and r.diagnosis.fractions["converged"] == 1.0
    curve = r.diagnosis.median_rel_step
    assert curve[-1] < 1e-3 * curve[0]


def test_half_converging_half_cycling_is_mixed():
    # the first coordinate is kept; its sign picks a contraction or the 2-cycle for the rest
    def f(z):
        rest = torch.where(z[:, :1] > 0, 0.5 * z[:, 1:], -torch.tanh(3 * z[:, 1:]))
        return torch.cat([z[:, :1], rest], 1)

    m = probe.wrap(f, lambda z: z, (3,), check_inputs=False)
    r = find_attractors(m, n_seeds=32, tol=1e-10, max_steps=300, **FAST)
    frac = r.diagnosis.fractions
    assert r.verdict == "mixed" and frac["converged"] + frac["cycle"] == 1.0 and 0.2 < frac["cycle"] < 0.8
    assert (r.period[r.status == 1] == 2).all()


def test_a_budget_too_short_to_tell_is_undetermined_never_expansive():
    m, _, _ = fm.linear(scale=0.97)
    r = find_attractors(m, n_seeds=8, tol=1e-14, max_steps=40, **FAST)
    assert r.diagnosis.fractions["converged"] == 0 and r.verdict == "undetermined"
    assert r.diagnosis.line.startswith("undetermined (100% of seeds still moving at step 40)")
    assert "raise max_steps" in r.diagnosis.line


def test_diagnose_reports_its_evidence_in_one_line():
    status = torch.full((32,), UNCONVERGED, dtype=torch.int8)
    curve = torch.tensor([0.063, 0.061, 0.060, 0.061])
    d = diagnose(status, torch.full((32,), 300), curve, 100, torch.tensor([1.5, 1.6]), torch.tensor([1.7, 1.9]),
                 tol=1e-5, max_steps=300)
    assert d.verdict == "expansive" and "\n" not in d.line
    for text in ("0% of 32 seeds converged within 300 steps", "6.3% at step 1", "6.1% at step 301", "1.5-1.9"):
        assert text in d.line
    assert d.fractions["unconverged"] == 1.0 and math.isclose(sum(d.fractions.values()), 1.0)


def test_contractive_needs_stable_fixed_points():
    """f(z) = 1.5 z: 0 is the only fixed point and it repels; a loose tol stops every seed at once."""
    m = probe.wrap(lambda z: 1.5 * z, lambda z: z, (3,), check_inputs=False)
    r = find_attractors(m, seeds=1e-3 * torch.randn(8, 3), tol=1e-2, max_steps=50, **FAST)
    assert r.diagnosis.fractions["converged"] == 1.0 and len(r) >= 1 and not bool(r.stable.any())
    assert r.verdict != "contractive" and "0 of" in r.diagnosis.line and "stable" in r.diagnosis.line


def test_the_bundled_model_at_five_steps_is_undetermined_not_expansive():
    from probe.maps.registry import builtin_names

    if "fmnist-k16" not in builtin_names():
        pytest.skip("bundled model fmnist-k16 not present")
    m = probe.load("builtin:fmnist-k16")
    r = find_attractors(m, n_seeds=16, max_steps=5, **FAST)
    assert r.verdict == "undetermined" and r.verdict != "expansive"
    assert r.diagnosis.line.startswith("undetermined (") and "still moving at step 5" in r.diagnosis.line
