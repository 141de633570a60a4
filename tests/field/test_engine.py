"""The one entry point's contract: config resolution, dtypes, numpy seeds, device, threads, progress, resume."""
from __future__ import annotations

import contextlib
import io
from typing import Any

import field_maps as fm
import numpy as np
import pytest
import torch

import probe
from probe.errors import ConfigError, ProbeError
from probe.field import FieldConfig, find_attractors, iterate
from probe.field.checkpoint import path_for

FAST: dict[str, Any] = dict(power_iters=10, probe_points=2)


def test_overrides_are_fieldconfig_names_and_the_set_records_the_resolved_config():
    m, *_ = fm.hopfield()
    m.field_defaults = {"tol": 1e-9, "max_steps": 250}
    r = find_attractors(m, FieldConfig(n_seeds=8), merge_threshold=0.95, **FAST)
    assert r.config["tol"] == 1e-9 and r.config["max_steps"] == 250 and r.config["dtype"] == "fp32"
    assert r.config["merge_threshold"] == 0.95 and r.config["n_seeds"] == 8 and r.config["solver"] == "plain"
    with pytest.raises(ConfigError, match="unknown setting.*n_seed"):
        find_attractors(m, n_seed=8)
    with pytest.raises(ConfigError, match="cfg must be a FieldConfig"):
        iterate(m, torch.zeros(1, 5), {"tol": 1e-6})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tol must be a finite number"):
        find_attractors(m, tol=float("inf"))


def test_numpy_seeds_are_accepted_and_float64_maps_keep_float64_end_points():
    m = fm.long_cycle(3)  # float64
    z0 = np.random.default_rng(0).normal(size=(4, 2)) * 3
    tr = iterate(m, z0, tol=1e-12, max_steps=300)
    assert tr.z.dtype == torch.float64 and tr.config["dtype"] == "fp64"
    lin = probe.wrap(lambda z: 0.5 * z + 1.0, lambda z: z, (3,), check_inputs=False, dtype=torch.float64)
    r = find_attractors(lin, seeds=np.zeros((5, 3)), tol=1e-20, max_steps=200, **FAST)
    assert r.points.dtype == torch.float64 and r.end_points.dtype == torch.float64 and len(r) == 1
    assert torch.allclose(r.points[0], torch.full((3,), 2.0, dtype=torch.float64), atol=1e-9)
    with pytest.raises(ProbeError, match="numpy array"):
        iterate(lin, [[0.0, 0.0, 0.0]])


def test_cuda_without_cuda_is_one_line_before_any_work():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    calls = []
    m = probe.wrap(lambda z: calls.append(1) or z, lambda z: z, (3,), check_inputs=False)
    with pytest.raises(ConfigError, match="CUDA is not available") as e:
        find_attractors(m, n_seeds=4, device="cuda")
    assert "\n" not in str(e.value) and not calls
    with pytest.raises(ConfigError, match="device must be"):
        iterate(m, torch.zeros(2, 3), device="tpu")


def test_threads_are_set_inside_and_restored_after():
    seen = []
    m = probe.wrap(lambda z: seen.append(torch.get_num_threads()) or 0.5 * z, lambda z: z, (3,), check_inputs=False)
    before = torch.get_num_threads()
    iterate(m, torch.ones(2, 3), tol=1e-12, max_steps=5, threads=1)
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_progress_bar_is_honest_and_silent_when_off():
    m, *_ = fm.hopfield()
    from probe.field.engine import Engine
    from probe.field.iterate import configure
    from probe.field.loop import expected_evals

    cfg = configure(m, None, dict(n_seeds=64, tol=1e-10, max_steps=3000, batch_size=16))
    z0 = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    e = Engine(m, z0, cfg)
    for _ in range(10):
        e.step()
    guess = expected_evals(e)
    assert guess < 64 * 3000 / 10  # not the whole budget of every seed
    while not e.done:
        e.step()
    assert guess > 0.3 * e.f_evals  # and not far below what it took
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        iterate(m, z0, tol=1e-10, max_steps=300)
    assert err.getvalue() == ""


@pytest.mark.parametrize("solver", ["plain", "anderson", "mixed"])
def test_every_solver_checkpoints_on_ctrl_c_and_resumes_to_the_same_set(tmp_path, solver):
    torch.manual_seed(0)
    dec, enc = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh()), torch.nn.Linear(16, 5)
    base = probe.wrap(enc, dec, (5,), modules=[enc, dec], check_inputs=False, name="mlp").eval()
    settings: dict[str, Any] = dict(n_seeds=24, tol=1e-10, max_steps=200, batch_size=8, solver=solver, **FAST)
    full = find_attractors(base, **settings)
    calls = {"n": 0}

    class Stop(torch.nn.Module):
        def forward(self, z):
            calls["n"] += 1
            if calls["n"] > 12:
                raise KeyboardInterrupt
            return z

    killed = probe.wrap(torch.nn.Sequential(enc, Stop()), dec, (5,), modules=[enc, dec], check_inputs=False,
                        name="mlp").eval()
    with pytest.raises(KeyboardInterrupt):
        find_attractors(killed, out=tmp_path, checkpoint_every=50, **settings)
    assert path_for(tmp_path).is_file()  # the last checkpoint was written on Ctrl-C
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    resumed = find_attractors(base, out=tmp_path, checkpoint_every=50, **settings)
    assert len(resumed) == len(full) and torch.equal(resumed.status, full.status)
    assert torch.allclose(resumed.end_points, full.end_points, rtol=1e-5, atol=1e-6)
    assert (resumed.steps - full.steps).abs().max() <= 2
    assert not path_for(tmp_path).exists() and not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
