"""Model comparison on pairs whose relation is known exactly.

The toy map f(z) = tanh(g z) (decode to 0.5 + 0.2 W z with orthonormal W, encode back) has one
attractor in each orthant, at (+-a, ..., +-a) with a = tanh(g a), and the orthant of a seed is its
basin. Rotating the encoder's coordinates by 45 degrees in the first plane moves the attractors to
(+-sqrt(2) a, 0, +-a) and its permutation: the best cosine of every attractor of one model to the
other's is then (1 + sqrt(2)) / 3 exactly, and no seed ends at matching points in both.
"""
from __future__ import annotations

import math

import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.field import AttractorSet, FieldConfig
from probe.probes.compare import CompareConfig, ComparisonReport, basin_agreement, chamfer, compare, to_convention
from probe.probes.dictionary import n_nonzero

ROTATED = (1 + math.sqrt(2)) / 3
C45 = math.cos(math.pi / 4)
R45 = torch.tensor([[C45, -C45, 0.0], [C45, C45, 0.0], [0.0, 0.0, 1.0]])
CFG = CompareConfig(field=FieldConfig(n_seeds=48, max_steps=200), image_batch=16, max_grid=4)


def orthant_map(dim=3, side=4, channels=1, rotation=None, gain=2.0, seed=0, name=None):
    """f(z) = R^T tanh(g R z): attractors at R^T (+-a, ..., +-a), basins = orthants of R z."""
    g = torch.Generator().manual_seed(seed)
    w = torch.linalg.qr(torch.randn(channels * side * side, dim, generator=g, dtype=torch.float64))[0].float()
    r = torch.eye(dim) if rotation is None else rotation
    # products as broadcast sums: forward-mode AD of a matmul (the stability check) is slow on this torch
    mul = lambda x, m: (x[:, :, None] * m).sum(1)  # noqa: E731 - x @ m
    return probe.wrap(lambda x: mul(torch.tanh(gain * mul(mul((x.flatten(1) - 0.5) / 0.2, w), r.T)), r),
                      lambda z: (0.5 + 0.2 * mul(z, w.T)).view(-1, channels, side, side), (dim,),
                      image_channels=channels, image_size=side, name=name or f"orthant{dim}-{seed}-{gain}")


def cheap_set(map, n_seeds=64, seed=0, **kw):
    """Attractors with a short stability check: the tanh corners have spectral radius 0.17."""
    from probe.field import find_attractors

    return find_attractors(map, n_seeds=n_seeds, seed=seed, max_steps=kw.pop("max_steps", 200), power_iters=4,
                           probe_points=kw.pop("probe_points", 2), **kw)


@pytest.fixture(scope="module")
def toy():
    return orthant_map()


@pytest.fixture(scope="module")
def sets(toy):
    """Each toy model with its attractor set from the same 64 Gaussian seeds (computed once per module)."""
    maps = {"toy": toy, "rotated": orthant_map(rotation=R45, name="rotated"), "rescaled": orthant_map(gain=3.0),
            "rgb2": orthant_map(dim=2, side=4, channels=3, seed=1, name="rgb2"),
            "rgb3": orthant_map(dim=3, side=4, channels=3, seed=1, name="rgb3")}
    return {k: (m, cheap_set(m)) for k, m in maps.items()}


def pair(sets, a, b, cfg=CFG, **kw):
    (ma, sa), (mb, sb) = sets[a], sets[b]
    return compare(ma, mb, cfg, attractors_a=sa, attractors_b=sb, **kw)


# -- measures -------------------------------------------------------------------------
def test_chamfer_known_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 1.0]])
    ab, ba = chamfer(a, b)
    assert torch.allclose(ab, torch.full((2,), 1 / math.sqrt(2)))
    assert torch.allclose(ba, torch.tensor([1 / math.sqrt(2)]))
    ab, ba = chamfer(a, 3 * a)  # cosine ignores scale
    assert torch.allclose(ab, torch.ones(2)) and torch.allclose(ba, torch.ones(2))
    with pytest.raises(ProbeError, match="non-empty"):
        chamfer(a, a[:0])


def test_to_convention_channels_and_size():
    x = torch.rand(2, 3, 8, 8)
    y = to_convention(x, 1, 4)
    assert y.shape == (2, 1, 4, 4) and 0 <= float(y.min()) and float(y.max()) <= 1
    assert torch.allclose(to_convention(torch.full((1, 1, 4, 4), 0.3), 3, 8), torch.full((1, 3, 8, 8), 0.3))


# -- shared latent space ----------------------------------------------------------------
def test_model_against_itself_is_identical(sets):
    r = pair(sets, "toy", "toy")
    assert r.shared["shared"]
    assert r.stat(("latent", "A->B", "max_cos")).mean == pytest.approx(1, abs=1e-6)
    assert r.stat(("latent", "B->A", "max_cos")).mean == pytest.approx(1, abs=1e-6)
    assert r.stat(("latent", "agree")).mean == 1 and r.scalars["ari"] == pytest.approx(1)
    assert r.scalars["basins"] == [8, 8]  # 2^3 orthants
    # the reference rows sit clearly below the identical pair
    assert r.stat(("latent", "agree_ref")).mean < 0.5 and r.stat(("latent", "A->B", "ref_max_cos")).mean < 0.95
    # fixed points decode and re-encode to themselves: one atom (itself) codes each exactly
    for d in ("A->B", "B->A"):
        assert r.stat(("pixel", d, "attractors", "mse")).mean < 1e-8
        assert r.stat(("pixel", d, "orthogonal", "mse")).mean > 1e-4
    assert r.stat(("set", "A->B", "max_cos")).mean == pytest.approx(1, abs=1e-6)
    assert r.stat(("set", "A->B", "nn_mse")).mean == pytest.approx(0, abs=1e-12)


def test_rotated_model_known_similarity_and_no_agreement(sets):
    r = pair(sets, "toy", "rotated")
    assert r.shared["shared"]
    for d in ("A->B", "B->A"):
        assert torch.allclose(r.values[("latent", d, "max_cos")], torch.full((8,), ROTATED), atol=1e-4)  # all 8 corners
    assert r.stat(("latent", "agree")).mean == 0  # best cosine 0.80 < 0.99: no seed ends at matching points
    assert 0 < r.scalars["ari"] < 1  # the orthants overlap with the rotated orthants, but differ
    assert r.stat(("pixel", "A->B", "attractors", "mse")).mean > 1e-5


def test_rescaled_model_has_the_same_attractor_directions(sets):
    # tanh(3z) has its attractors at (+-0.995, ...): other points, the same directions and basins
    r = pair(sets, "toy", "rescaled")
    assert r.stat(("latent", "A->B", "max_cos")).mean == pytest.approx(1, abs=1e-6)
    assert r.stat(("latent", "agree")).mean == 1 and r.scalars["ari"] == pytest.approx(1)


def test_basin_agreement_function_and_shuffled_reference(sets):
    s = sets["toy"][1]
    ag = basin_agreement(s, s)
    assert float(ag["agree"].mean()) == 1 and ag["ari"] == pytest.approx(1)
    assert float(ag["reference"].mean()) < 0.4  # 8 balanced basins: chance is about 1/8
    # by hand: B's seed i ends at A's corner when the rotated orthant of seed i is A's orthant of seed i
    rot = sets["rotated"][1]
    assert float(basin_agreement(s, rot)["agree"].mean()) == 0
    with pytest.raises(ProbeError, match="same seeds"):
        basin_agreement(s, sets["rgb2"][1])


def test_sets_from_different_seeds_skip_agreement(sets):
    toy, a = sets["toy"]
    b = cheap_set(toy, seed=1)
    r = compare(toy, toy, CFG, attractors_a=a, attractors_b=b)
    assert ("latent", "agree") not in r.values and "seed" in r.scalars["agreement_skipped"]
    assert r.stat(("latent", "A->B", "max_cos")).mean == pytest.approx(1, abs=1e-6)  # the same 8 corners
    assert "No basin agreement: the sets were iterated from different seeds (seed: 0 vs 1)" in r.to_markdown()


# -- pixel space --------------------------------------------------------------------------
def test_pixel_space_on_different_latent_shapes_is_symmetric_in_form(sets):
    ab, ba = pair(sets, "toy", "rgb2"), pair(sets, "rgb2", "toy")
    assert not ab.shared["shared"] and "latent shapes differ" in ab.shared["why"]
    assert not any(k[0] == "latent" for k in ab.values)
    assert ab.scalars["common"] == {"channels": 1, "size": 4}
    for basis in ("attractors", "orthogonal", "autoencoder"):
        assert torch.allclose(ab.values[("pixel", "A->B", basis, "mse")], ba.values[("pixel", "B->A", basis, "mse")])
        assert torch.allclose(ab.values[("pixel", "B->A", basis, "mse")], ba.values[("pixel", "A->B", basis, "mse")])
    for m in ("max_cos", "nn_mse", "ref_max_cos", "ref_nn_mse"):
        assert torch.allclose(ab.values[("set", "A->B", m)], ba.values[("set", "B->A", m)])
    assert len(ab.values[("pixel", "A->B", "attractors", "mse")]) == 8  # A's dictionary: all 8 corners (issue 14: no cap)
    assert len(ab.values[("pixel", "B->A", "attractors", "mse")]) == 4
    assert ab.scalars["n_nonzero"] == {"A": 1, "B": 1}  # round(5% of 8), at least one


def test_same_space_declarations(sets):
    with pytest.raises(ProbeError, match="latent shapes differ"):
        pair(sets, "toy", "rgb2", CompareConfig(same_space=True))
    r = pair(sets, "toy", "toy", CompareConfig(same_space=False))
    assert not r.shared["shared"] and "declared" in r.shared["why"] and ("latent", "agree") not in r.values
    r = pair(sets, "toy", "rgb3", CompareConfig(pixel=False))  # same class, same latent shape
    assert r.shared["shared"] and ("pixel", "A->B", "attractors", "mse") not in r.values
    with pytest.raises(ProbeError, match="made by 'rgb2'.*--allow-other-model"):
        compare(sets["toy"][0], sets["toy"][0], CFG, attractors_a=sets["rgb2"][1])
    r = compare(sets["toy"][0], sets["rgb3"][0], CFG, attractors_a=sets["rgb3"][1], allow_other_model=True)
    assert "rgb3" in r.models["A"]["atoms"]["other_model"]  # the report says whose set it is


def test_computed_sets_report_roundtrip_markdown_and_grid(toy, tmp_path):
    r = compare(toy, orthant_map(rotation=R45, name="rotated"), CFG, specs=("toy", "rotated"), out=tmp_path)
    assert (tmp_path / "attractors_a" / "meta.json").is_file()
    r.save(tmp_path / "report")
    back = ComparisonReport.load(tmp_path / "report")
    assert back.to_markdown() == r.to_markdown() and back.summary() == r.summary()
    md = r.to_markdown()
    for text in ("Chamfer similarity", "shuffled", "random orthogonal basis", "autoencoder, no coding", "`rotated`"):
        assert text in md
    png = r.grids(tmp_path)
    from PIL import Image

    assert Image.open(png).size[0] > 2 * 4 * 64  # two panels of max_grid = 4 atoms, tiles >= 64 px
    again = compare(toy, orthant_map(rotation=R45, name="rotated"), CFG, out=tmp_path)  # reuses the sets
    assert torch.equal(again.values[("latent", "agree")], r.values[("latent", "agree")])
    with pytest.raises(ProbeError, match="other settings"):
        compare(toy, toy, CompareConfig(field=FieldConfig(n_seeds=8)), out=tmp_path)  # fails before iterating
    with pytest.raises(ProbeError, match="not a ComparisonReport|does not hold"):
        ComparisonReport.load(tmp_path / "attractors_a")


def test_config_errors():
    with pytest.raises(ProbeError, match="sparsity"):
        CompareConfig(sparsity=5)
    with pytest.raises(ProbeError, match="atoms_from"):
        CompareConfig(atoms_from="all")


# -- real architectures ------------------------------------------------------------------
def test_conv_autoencoders_two_inits_differ(device):
    from probe.maps.convae import ConvAE

    torch.manual_seed(0)
    a = ConvAE(image_size=8, width=4, bottleneck=4, name="conv-seed0").to(device)
    torch.manual_seed(1)
    b = ConvAE(image_size=8, width=4, bottleneck=4, name="conv-seed1").to(device)  # --device cuda: runs there
    sa, sb = cheap_set(a, n_seeds=16, max_steps=300), cheap_set(b, n_seeds=16, max_steps=300)
    same = compare(a, a, CFG, attractors_a=sa, attractors_b=sa)
    diff = compare(a, b, CFG, attractors_a=sa, attractors_b=sb)
    assert same.shared["shared"] and diff.shared["shared"]
    assert same.stat(("latent", "agree")).mean == 1
    sim = lambda r: (r.stat(("latent", "A->B", "max_cos")).mean + r.stat(("latent", "B->A", "max_cos")).mean) / 2  # noqa: E731
    assert sim(same) == pytest.approx(1, abs=1e-6) and sim(diff) < 0.99
    assert diff.stat(("latent", "agree")).mean < 1
    wide = ConvAE(image_size=8, width=8, bottleneck=4, name="conv-seed0").to(device)  # same name, other model
    with pytest.raises(ProbeError, match="made by 'conv-seed0'"):
        compare(wide, b, CFG, attractors_a=sa, attractors_b=sb)


def test_taef2_against_a_conv_autoencoder(taef2_dir):
    from probe.maps.convae import ConvAE

    taef2 = probe.load(taef2_dir)
    conv = ConvAE(image_size=8, width=4, bottleneck=8, name="conv-k8")
    st = cheap_set(taef2, n_seeds=8, max_steps=3, resolution=16, probe_points=0)  # no JVP through TAEF2
    r = compare(taef2, conv, CompareConfig(image_batch=8, max_grid=4), attractors_a=st,
                attractors_b=cheap_set(conv, n_seeds=8, max_steps=300))
    assert not r.shared["shared"]
    assert r.models["A"]["resolution"] == 16  # taken from the set
    assert r.models["A"]["atoms"]["atoms_are"] == "end points"  # no attractors after 3 steps
    assert "NOT attractors" in r.to_markdown()
    assert r.scalars["common"] == {"channels": 1, "size": 8}  # TAEF2's 3 x 16 px images met 1 x 8 px ones
    assert torch.isfinite(r.values[("pixel", "A->B", "attractors", "mse")]).all()


# -- CLI ------------------------------------------------------------------------------------
def test_cli_with_run_folders(tmp_path, capsys):
    from probe.cli.main import main
    from probe.io import save_json
    from probe.maps.convae import ConvAE

    torch.manual_seed(0)
    ConvAE(image_size=8, width=4, bottleneck=4).save(tmp_path / "m0")
    torch.manual_seed(1)
    ConvAE(image_size=8, width=4, bottleneck=2).save(tmp_path / "m1")
    cheap_set(probe.load(tmp_path / "m0"), n_seeds=8, max_steps=100).save(tmp_path / "run0")
    save_json(tmp_path / "run0" / "manifest.json", {"spec": str(tmp_path / "m0")})  # as `probe run` writes it
    cheap_set(probe.load(tmp_path / "m1"), n_seeds=8, max_steps=100).save(tmp_path / "set1")
    out = tmp_path / "out"
    (tmp_path / "cfg.yaml").write_text("compare:\n  sparsity: 0.5\n  max_grid: 4\n")
    rc = main(["compare", str(tmp_path / "run0"), str(tmp_path / "m1"), "--attractors-b", str(tmp_path / "set1"),
               "--config", str(tmp_path / "cfg.yaml"), "--out", str(out), "--quiet"])
    assert rc == 0
    assert capsys.readouterr().out == ""  # --quiet: no prose
    assert (out / "compare.md").is_file() and (out / "compare.png").is_file()
    report = ComparisonReport.load(out / "report")
    assert "latent shapes differ" in report.shared["why"]
    assert report.models["A"]["spec"] == str(tmp_path / "m0") and report.config["sparsity"] == 0.5
    assert report.scalars["n_nonzero"]["B"] == n_nonzero(0.5, report.models["B"]["atoms"]["n_atoms"])
    assert not (out / "attractors_a").exists()  # both sets were given: nothing iterated

    AttractorSet.load(tmp_path / "run0").save(tmp_path / "bare")  # a set that does not name its model
    assert main(["compare", str(tmp_path / "bare"), str(tmp_path / "m1"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not record its model" in err[0]
