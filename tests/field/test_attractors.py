"""find_attractors and AttractorSet on maps with known attractors, saddles and cycles."""
from __future__ import annotations

from typing import Any

import field_maps as fm
import pytest
import torch

from probe.errors import ProbeError
from probe.field import AttractorSet, find_attractors, gaussian_seeds
from probe.maps.convae import ConvAE, ConvAEConfig

FAST: dict[str, Any] = dict(power_iters=12, probe_points=4)


def test_linear_contraction_has_one_attractor_at_the_computable_point():
    m, z_star, rho = fm.linear(dim=6, scale=0.8)
    r = find_attractors(m, n_seeds=40, tol=1e-12, max_steps=500, **FAST)
    assert len(r) == 1 and r.counts.tolist() == [40] and (r.assignment == 0).all()
    assert torch.allclose(r.points[0], z_star, atol=1e-5)
    assert bool(r.stable[0]) and float(r.spectral_radius[0]) == pytest.approx(rho, rel=1e-3)
    assert r.merge["rule"] == "cosine" and r.merge["threshold"] == 0.99


def test_hopfield_finds_its_three_attractors_with_their_basins_and_stability():
    m, attractors, rho_attr, _, _ = fm.hopfield(k=3, dim=5, beta=6.0)
    n = 96
    r = find_attractors(m, n_seeds=n, seed=3, tol=1e-12, max_steps=300, **FAST)
    assert len(r) == 3 and r.stable.all() and int(r.counts.sum()) == n
    assert (r.counts[:-1] >= r.counts[1:]).all()  # largest basin first
    # match found points to the known ones, then check every basin: a seed ends at the pattern
    # with the largest overlap x_j . z_0 (the softmax keeps the order, the dynamics are symmetric)
    match = torch.cdist(r.points, attractors).argmin(1)
    assert sorted(match.tolist()) == [0, 1, 2]
    assert torch.allclose(r.points, attractors[match], atol=1e-5)
    assert torch.allclose(r.spectral_radius, torch.full((3,), rho_attr), rtol=1e-3)
    z0 = gaussian_seeds(n, (5,), seed=3)
    assert torch.equal(match[r.assignment], z0[:, :3].argmax(1))
    assert torch.equal(r.counts, torch.bincount(r.assignment, minlength=3))


def test_a_seed_placed_on_the_saddle_is_a_fixed_point_but_not_an_attractor():
    m, _, _, centroid, rho_saddle = fm.hopfield(k=3, dim=5, beta=6.0)
    r = find_attractors(m, seeds=centroid.repeat(4, 1), tol=1e-12, max_steps=50, **FAST)
    assert len(r) == 1 and not bool(r.stable[0]) and len(r.attractors) == 0
    assert float(r.spectral_radius[0]) == pytest.approx(rho_saddle, rel=1e-3)


def test_cycles_are_reported_never_counted_as_attractors():
    m, a = fm.two_cycle(dim=4)
    r = find_attractors(m, n_seeds=24, tol=1e-10, max_steps=300, **FAST)
    assert len(r) == 0 and r.points.shape == (0, 4)
    assert r.status_counts() == {"converged": 0, "cycle": 24, "unconverged": 0, "diverged": 0}
    assert (r.assignment == -1).all() and (r.period == 2).all()
    assert torch.allclose(r.end_points.abs(), torch.full((24, 4), a), atol=1e-5)


def test_save_load_round_trip(tmp_path):
    m, *_ = fm.hopfield()
    r = find_attractors(m, n_seeds=32, tol=1e-10, max_steps=100, **FAST)
    r.save(tmp_path / "set")
    back = AttractorSet.load(tmp_path / "set")
    for name in ("points", "counts", "stable", "spectral_radius", "assignment", "steps", "status", "period",
                 "end_points", "residuals", "first_residual"):
        assert torch.equal(getattr(back, name), getattr(r, name)), name
    assert torch.equal(back.diagnosis.median_rel_step, r.diagnosis.median_rel_step)
    assert back.diagnosis.line == r.diagnosis.line and back.verdict == "contractive"
    assert back.config["tol"] == 1e-10 and back.config["n_seeds"] == 32 and back.map["name"] == "hopfield"
    assert back.merge == r.merge and back.summary() == r.summary() and len(back) == 3
    with pytest.raises(ProbeError, match="no result at"):
        AttractorSet.load(tmp_path / "missing")


def test_seeds_are_the_same_in_any_slice_and_data_matched_seeds_take_the_data_scale():
    full = gaussian_seeds(600, (3, 2), seed=5)
    parts = torch.cat([gaussian_seeds(600, (3, 2), seed=5, start=a, stop=b) for a, b in ((0, 7), (7, 300), (300, 600))])
    assert torch.equal(full, parts) and not torch.equal(full, gaussian_seeds(600, (3, 2), seed=6))
    data = 4.0 + 0.1 * torch.randn(500, 3)
    m, *_ = fm.linear(dim=3)
    r = find_attractors(m, n_seeds=300, seed_dist="data", data_latents=data, tol=1e-10, max_steps=1, **FAST)
    z0 = gaussian_seeds(300, (3,), mean=data.mean(0), std=data.std(0))
    assert z0.mean(0).sub(4).abs().max() < 0.03 and z0.std(0).sub(0.1).abs().max() < 0.02
    assert r.config["seed_dist"] == "data"


def test_bad_settings_fail_in_one_line():
    m, *_ = fm.linear()
    with pytest.raises(ProbeError, match="merge must be one of"):
        find_attractors(m, n_seeds=4, merge="manhattan")
    with pytest.raises(ProbeError, match="needs data_latents"):
        find_attractors(m, n_seeds=4, seed_dist="data")
    with pytest.raises(ProbeError, match="latent shape"):
        find_attractors(m, seeds=torch.randn(4, 3))


def test_decode_and_plot_a_real_conv_autoencoder(tmp_path):
    torch.manual_seed(0)
    m = ConvAE(ConvAEConfig(image_size=16, image_channels=1, width=4, bottleneck=4)).eval()
    r = find_attractors(m, n_seeds=8, max_steps=50, power_iters=4, probe_points=1)
    images = r.decode(m)
    assert images.shape == (len(r), 1, 16, 16) and images.min() >= 0 and images.max() <= 1
    fig = r.plot(m, tmp_path / "grid.png")
    assert len(fig.axes) >= len(r) and (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    none = find_attractors(m, n_seeds=4, tol=1e-30, max_steps=1, power_iters=4, probe_points=1)
    assert len(none) == 0 and none.plot(m, tmp_path / "ends.png") is not None and (tmp_path / "ends.png").stat().st_size > 0


@pytest.mark.slow
def test_trained_conv_autoencoder_is_contractive():
    from probe.maps.registry import builtin_names

    if "fmnist-k16" not in builtin_names():
        pytest.skip("bundled model fmnist-k16 not present")
    import probe

    m = probe.load("builtin:fmnist-k16")
    r = find_attractors(m, n_seeds=16, power_iters=20, probe_points=2)  # the family's tol 1e-6, 3000 steps
    assert r.verdict == "contractive" and r.converged.all()
    assert len(r) >= 1 and r.stable.all() and (r.spectral_radius < 1).all()


def test_data_matched_seeds_are_saved_with_their_statistics_and_rebuild(tmp_path):
    m, *_ = fm.hopfield()
    data = torch.randn(50, *m.latent_shape()) * 3 + 1
    r = find_attractors(m, n_seeds=12, seed_dist="data", data_latents=data, tol=1e-10, max_steps=200,
                        power_iters=10, probe_points=2)
    assert r.seed_mean is not None and r.seed_std is not None
    r.save(tmp_path / "a")
    back = AttractorSet.load(tmp_path / "a")
    expect = gaussian_seeds(12, tuple(m.latent_shape()), 0, mean=data.mean(0), std=data.std(0))
    rebuilt, part = back.seeds(), back.seeds(3, 5)
    assert rebuilt is not None and part is not None
    assert torch.allclose(rebuilt, expect, rtol=1e-6, atol=1e-6)
    assert torch.allclose(part, expect[3:5], rtol=1e-6, atol=1e-6)
    given = find_attractors(m, seeds=expect, tol=1e-10, max_steps=200, power_iters=10, probe_points=2)
    assert given.seeds() is None  # given seeds are not rebuilt, they are the caller's
