"""The dictionary probe on maps whose answer is known, plus its result object, CLI and errors."""
from __future__ import annotations

import csv
import io
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import probe
from probe.errors import ProbeError
from probe.probes import dictionary as dictionary_mod
from probe.probes.dictionary import DictionaryConfig, dictionary_atoms, n_nonzero, run_dictionary
from probe.probes.dictionary_report import DictionaryReport
from probe.probes.tables import mean_ci, paired

D_LATENT, SIDE = 8, 4  # latent vectors of 8, images 1 x 4 x 4 = 16 pixels


def linear_map(seed: int = 0):
    """D(z) = 0.5 + W z, E(x) = W^T (x - 0.5) with orthonormal W: E(D(z)) = z exactly."""
    g = torch.Generator().manual_seed(seed)
    w, _ = torch.linalg.qr(torch.randn(SIDE * SIDE, D_LATENT, generator=g, dtype=torch.float64))
    w = w.float()
    return probe.wrap(lambda x: (x.flatten(1) - 0.5) @ w, lambda z: (0.5 + z @ w.T).view(-1, 1, SIDE, SIDE),
                      (D_LATENT,), image_channels=1, image_size=SIDE, name="linear-toy"), w


def fake_attractors(points, ends=None, verdict="contractive", stable=None):
    """An attractor set with the fields the dictionary probe reads (as probe.field.AttractorSet has them)."""
    ends = points if ends is None else ends
    stable = torch.ones(len(points), dtype=torch.bool) if stable is None else stable
    return types.SimpleNamespace(points=points, stable=stable, end_points=ends, verdict=verdict,
                                 merge={"rule": "cosine", "threshold": 0.99}, config={"tol": 1e-6, "max_steps": 10})


@pytest.fixture
def subspace_set(tmp_path):
    """Images D(z) whose latents lie in the span of 3 known directions: the 'attractors'."""
    m, w = linear_map()
    g = torch.Generator().manual_seed(1)
    atoms = torch.linalg.qr(torch.randn(D_LATENT, 3, generator=g))[0].T  # [3, 8]
    z = 0.12 * torch.randn(200, 3, generator=g) @ atoms
    x = m.decode(z)
    assert 0.0 < float(x.min()) and float(x.max()) < 1.0
    path = tmp_path / "subspace.npz"
    np.savez(path, images=(x[:, 0] * 255).round().to(torch.uint8).numpy())
    return m, atoms, str(path)


CFG: dict[str, Any] = dict(n_images=100, sparsity=1.0, image_batch=50, n_examples=4)


def test_nonzeros_follow_the_paper():
    assert n_nonzero(0.05, 4096) == 205          # METHOD.md: 205 of 4096
    assert n_nonzero(0.03125, 2048) == 64
    assert n_nonzero(0.001, 100) == 1            # never an empty code
    assert DictionaryConfig(sparsity=0.05, sweep=True).sparsities[:2] == [1.0, 0.5]


def test_attractor_atoms_reconstruct_their_own_subspace(subspace_set):
    m, atoms, spec = subspace_set
    rep = run_dictionary(m, fake_attractors(atoms.clone()), [spec], DictionaryConfig(**CFG))
    x = probe.data.load_images(spec, n=100).float()
    z = m.encode(x)
    # known answer: with every atom in the code OMP is least squares onto the atoms' span
    coef = torch.linalg.lstsq(atoms.T, z.T).solution
    expected = (m.decode((atoms.T @ coef).T).clamp(0, 1) - x).pow(2).flatten(1).mean(1)
    got = rep.per_image(spec, "attractors")
    assert torch.allclose(got, expected, atol=1e-8)
    att, orth = rep.stat(spec, "attractors"), rep.stat(spec, "orthogonal")
    assert att.mean < 1e-5 < orth.mean / 100  # 3 random directions miss most of the signal
    assert rep.stat(spec, "pca").mean < 1e-4  # PCA has seen data from the same subspace
    assert rep.compare()[spec]["better"] == "attractors better"
    assert f"vs orthogonal: lower mse on {spec} (" in rep.verdict_markdown()
    info = rep.datasets[spec]
    assert info["atoms"] == {"attractors": 3, "orthogonal": 3, "pca": 3}
    assert info["pca_fit"].startswith("100 images") and "none of them evaluated" in info["pca_fit"]
    assert rep.attractors["atoms_are"] == "attractors" and rep.attractors["n_found"] == 3


def test_expansive_maps_use_end_points_and_say_so(subspace_set):
    m, atoms, spec = subspace_set
    ends = torch.randn(20, D_LATENT)
    rep = run_dictionary(m, fake_attractors(atoms[:0], ends, "expansive"), [spec],
                         DictionaryConfig(**{**CFG, "sparsity": 0.25}, bases=["attractors", "orthogonal"]))
    a = rep.attractors
    assert a["atoms_are"] == "end points" and a["n_found"] == 20
    assert a["n_atoms"] == 20  # every end point is an atom; the orthogonal basis has at most D = 8
    assert rep.datasets[spec]["atoms"] == {"attractors": 20, "orthogonal": D_LATENT}
    assert rep.datasets[spec]["n_nonzero"]["0.25"] == {"attractors": 5, "orthogonal": 5}  # 25% of 20, both
    md = rep.to_markdown()
    assert "END POINTS" in md.splitlines()[0] and "20 end points found from 20 Gaussian seeds" in md
    assert "| omp · end points | omp · orthogonal | omp: orthogonal − end points (paired) |" in md


def test_report_round_trip_table_csv_and_figures(subspace_set, tmp_path):
    m, atoms, spec = subspace_set
    cfg = DictionaryConfig(**{**CFG, "sparsity": 0.5}, sweep=True, sweep_sparsities=[1.0, 0.5])
    rep = run_dictionary(m, fake_attractors(atoms), [spec], cfg)
    rep.save(tmp_path / "rep")
    back = DictionaryReport.load(tmp_path / "rep")
    assert back.to_markdown() == rep.to_markdown()
    assert torch.equal(back.per_image(spec, "pca", sparsity=1.0), rep.per_image(spec, "pca", sparsity=1.0))
    table = [r for r in rep.to_markdown().splitlines() if r.startswith("| ")]
    assert len(table) == 2 and "omp · attractors" in table[0]  # header + one row per dataset
    rows = list(csv.DictReader(io.StringIO(rep.to_csv())))
    assert len(rows) == 3 + 2 * 3 * 3  # autoencoder x 3 metrics + sparsities x bases x metrics
    s = mean_ci(rep.per_image(spec, "orthogonal", sparsity=1.0))
    row = next(r for r in rows if r["basis"] == "orthogonal" and r["sparsity"] == "1.0" and r["metric"] == "mse")
    assert float(row["mean"]) == pytest.approx(s.mean) and float(row["hi"]) == pytest.approx(s.hi)
    import matplotlib

    backend = matplotlib.get_backend()
    for draw, name in ((rep.plot, "curve.png"), (rep.plot_reconstructions, "grid.png")):
        saved = draw(tmp_path / name)
        assert isinstance(saved, Path) and saved.read_bytes()[:4] == b"\x89PNG"
    assert matplotlib.get_backend() == backend  # figures through matplotlib.figure.Figure: no backend switch


def test_intervals_are_student_t():
    s = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.half == pytest.approx(3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=1e-5)
    d = paired([1.0, 1.0, 1.0], [2.0, 2.1, 1.9])
    assert d.mean == pytest.approx(1.0) and d.lo > 0


def test_resume_skips_finished_sets_and_rejects_other_settings(subspace_set, tmp_path, monkeypatch):
    m, atoms, spec = subspace_set
    cfg, aset = DictionaryConfig(**CFG), fake_attractors(atoms)
    run_dictionary(m, aset, [spec], cfg, out=tmp_path)
    calls = []
    real = dictionary_mod.evaluate_dataset
    monkeypatch.setattr(dictionary_mod, "evaluate_dataset", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    rep = run_dictionary(m, aset, [spec, "digits"], cfg, out=tmp_path)
    assert calls == ["digits"] and list(rep.datasets) == [spec, "digits"]
    with pytest.raises(ProbeError, match="different settings.*sparsity"):
        run_dictionary(m, aset, [spec], DictionaryConfig(**{**CFG, "sparsity": 0.5}), out=tmp_path)


def test_interrupt_keeps_finished_datasets(subspace_set, tmp_path, monkeypatch):
    m, atoms, spec = subspace_set
    real = dictionary_mod.evaluate_dataset

    def stop_on_second(*a, **k):
        if a[1] == "digits":
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(dictionary_mod, "evaluate_dataset", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_dictionary(m, fake_attractors(atoms), [spec, "digits"], DictionaryConfig(**CFG), out=tmp_path)
    kept = [p.name for p in (tmp_path / "datasets").iterdir()]
    assert len(kept) == 1 and kept[0].startswith("subspace.npz-")  # the finished set, not the interrupted one


@pytest.mark.parametrize("kw, match", [
    (dict(sparsity=0.0), r"sparsity must be a fraction of atoms in \(0, 1\]"),
    (dict(sparsity=1.5), r"got 1.5"),
    (dict(coder="ista"), "unknown coder 'ista'"),
    (dict(bases=["attractors", "fourier"]), "unknown basis fourier"),
])
def test_bad_settings_are_one_line(kw, match):
    with pytest.raises(ProbeError, match=match) as e:
        DictionaryConfig(**kw)
    assert "\n" not in str(e.value)


def test_bad_inputs_are_one_line(subspace_set):
    m, atoms, spec = subspace_set
    with pytest.raises(ProbeError, match=r"latent shape \(5,\).*\(8,\)"):
        dictionary_atoms(fake_attractors(torch.randn(4, 5)), (D_LATENT,))
    with pytest.raises(ProbeError, match="no-such-set"):
        run_dictionary(m, fake_attractors(atoms), ["no-such-set"], DictionaryConfig(**CFG))


def test_lasso_codes_at_the_same_sparsity(subspace_set):
    m, atoms, spec = subspace_set
    cfg = DictionaryConfig(**{**CFG, "sparsity": 0.5, "n_images": 200}, coder="both", bases=["orthogonal", "pca"])
    rep = run_dictionary(m, fake_attractors(atoms), [spec], cfg)
    assert "cross-fit" in rep.datasets[spec]["pca_fit"]  # every image is evaluated: PCA fits on the other half
    assert rep.datasets[spec]["n_nonzero"]["0.5"] == {"orthogonal": 2, "pca": 2}
    omp, lasso = rep.stat(spec, "orthogonal", "omp"), rep.stat(spec, "orthogonal", "lasso")
    assert omp.mean <= lasso.mean * (1 + 1e-6)  # on an orthonormal basis OMP keeps the best 2 exactly


def test_fewer_than_20_attractors_are_degenerate_and_the_end_points_are_coded_too(subspace_set):
    m, atoms, spec = subspace_set
    ends = torch.cat([atoms.repeat(4, 1), torch.randn(6, D_LATENT)])  # 12 copies of the 3 attractors + 6 others
    cfg = DictionaryConfig(**{**CFG, "sparsity": 0.05}, bases=["attractors", "orthogonal"])
    rep = run_dictionary(m, fake_attractors(atoms, ends), [spec], cfg)
    a = rep.attractors
    assert a["degenerate"] and a["end_points_coded"] and a["end_point_directions"] == 9
    assert rep.bases == ["attractors", "end_points", "orthogonal"]
    assert rep.datasets[spec]["atoms"]["end_points"] == 18
    assert rep.datasets[spec]["n_nonzero"]["0.05"] == {"attractors": 1, "end_points": 1, "orthogonal": 1}
    md = rep.to_markdown()
    assert "DEGENERATE" in md and "unmerged end points (18 atoms, 9 distinct directions)" in md
    assert "orthogonal − attractors (paired)" in md  # the paper's comparison is still the attractors'


def test_only_stable_fixed_points_are_atoms():
    pts, ends = torch.randn(3, D_LATENT), torch.randn(5, D_LATENT)
    flat, info = dictionary_atoms(fake_attractors(pts, ends, stable=torch.tensor([True, False, True])), (D_LATENT,))
    assert torch.equal(flat, pts[[0, 2]]) and (info["n_fixed_points"], info["n_stable"]) == (3, 2)
    saddles_only = fake_attractors(pts, ends, "mixed", stable=torch.zeros(3, dtype=torch.bool))
    flat, info = dictionary_atoms(saddles_only, (D_LATENT,))
    assert info["atoms_are"] == "end points" and torch.equal(flat, ends)
    with pytest.raises(ProbeError, match="no stable attractors"):
        dictionary_atoms(saddles_only, (D_LATENT,), atoms_from="attractors")


@pytest.fixture
def tiny_model_and_set(tmp_path):
    """A saved random conv autoencoder (k=4) and 40 Fashion-MNIST-sized images in an .npz."""
    from probe.maps.convae import ConvAE

    ConvAE(width=4, bottleneck=4).save(tmp_path / "model")
    g = torch.Generator().manual_seed(2)
    np.savez(tmp_path / "blobs.npz", images=torch.randint(0, 256, (40, 28, 28), generator=g).to(torch.uint8).numpy())
    return str(tmp_path / "model"), str(tmp_path / "blobs.npz")


def test_cli_prints_the_table_writes_files_and_resumes(tiny_model_and_set, tmp_path, capsys, monkeypatch):
    import probe.field
    from probe.cli.main import main

    real = probe.field.find_attractors  # the stability check is the slow part: fewer Jacobian products
    monkeypatch.setattr(probe.field, "find_attractors", lambda *a, **k: real(*a, power_iters=3, probe_points=2, **k))
    model, data = tiny_model_and_set
    args = ["dictionary", model, "--datasets", data, "--seeds", "16", "--max-steps", "50", "--n-images", "20",
            "--sparsity", "0.25", "--bases", "attractors,orthogonal", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    out, err = capsys.readouterr()
    header = out.splitlines()[0]
    assert "ATTRACTORS" in header and "merge cosine > 0.99" in header and "tol 1e-06" in header
    assert "max_steps 50" in header and "20 images per set at 28 px" in header
    assert "| blobs.npz |" not in out and f"| {data} | 20 |" in out
    for f in ("dictionary.md", "dictionary.csv", "sparsity_mse.png", "reconstructions.png", "report/meta.json",
              "attractors/meta.json"):
        assert (tmp_path / "out" / f).is_file(), f
    assert main(args) == 0  # resumes: the attractors and the finished set are reused
    assert "reusing" in capsys.readouterr().err
    assert main([a if a != "50" else "40" for a in args]) == 2  # saved attractors from other settings
    err = capsys.readouterr().err
    assert "other settings" in err and "max_steps 50 -> 40" in err and "--overwrite" in err
    assert main(args[:-2] + ["--sparsity", "1.5", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sparsity must be a fraction" in err


def test_yaml_config_fills_the_dataclass(tmp_path):
    from probe.config import build

    (tmp_path / "c.yaml").write_text("dictionary:\n  sparsity: 0.1\n  coder: both\n")
    cfg = build(DictionaryConfig, tmp_path / "c.yaml", n_images=7, coder=None)
    assert (cfg.sparsity, cfg.coder, cfg.n_images, cfg.coders) == (0.1, "both", 7, ["omp", "lasso"])
    (tmp_path / "bad.yaml").write_text("dictionary:\n  sparsness: 0.1\n")
    with pytest.raises(ProbeError, match="unknown setting.*sparsness"):
        build(DictionaryConfig, tmp_path / "bad.yaml")


def test_cli_refuses_another_models_attractors_unless_allowed(tiny_model_and_set, tmp_path, capsys):
    from probe.cli.main import main
    from probe.field import find_attractors
    from probe.maps.convae import ConvAE

    model, data = tiny_model_and_set
    with torch.random.fork_rng():
        torch.manual_seed(5)
        other = ConvAE(width=4, bottleneck=4)
    find_attractors(other, n_seeds=6, max_steps=30, power_iters=3, probe_points=1).save(tmp_path / "theirs")
    args = ["dictionary", model, "--datasets", data, "--attractors", str(tmp_path / "theirs"), "--n-images", "10",
            "--bases", "attractors,orthogonal", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-other-model" in err[0]
    assert main([*args, "--out", str(tmp_path / "b"), "--allow-other-model"]) == 0
    assert "NOTE: the attractor set given as the dictionary was made by another model" in (
        tmp_path / "b" / "dictionary.md").read_text()


def test_sweep_points_that_coincide_are_shown_once(subspace_set, tmp_path):
    m, atoms, spec = subspace_set
    cfg = DictionaryConfig(**{**CFG, "sparsity": 1.0}, sweep=True, sweep_sparsities=[1.0, 0.5, 0.25, 0.125],
                           bases=["attractors", "orthogonal"])
    rep = run_dictionary(m, fake_attractors(atoms), [spec], cfg)
    # 3 atoms: 100% -> 3, 50% -> 2, 25% -> 1 and 12.5% -> 1 non-zero (the same codes: one point)
    assert rep.distinct_sparsities(spec) == [1.0, 0.5, 0.25]
    table = [r for r in rep.sweep_markdown().splitlines() if r.startswith(f"| {spec}")]
    assert len(table) == 3 and "1 of 3/1 of 3" in table[-1]
    assert rep.plot(tmp_path / "sweep.png") == tmp_path / "sweep.png"
