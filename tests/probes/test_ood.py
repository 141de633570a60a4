"""OOD detection: metrics against scikit-learn, the trajectory score on a map with known
attractors, the baselines on hand-checkable inputs, the report, and the CLI end to end."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

import probe
from probe.errors import ProbeError
from probe.field import FieldConfig
from probe.probes.metrics import auroc, bootstrap_ci, fpr95, fpr_at_tpr
from probe.probes.ood import (
    METHODS,
    Mahalanobis,
    OODConfig,
    OODDetector,
    OODReport,
    knn_distance,
    nearest_distance,
    reconstruction_error,
    run_ood,
    trajectory_scores,
)


# -- metrics ------------------------------------------------------------------------
def _sklearn(s_in, s_out):
    """Reference: in-distribution positive, confidence = -score."""
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    conf = -np.r_[s_in, s_out]
    fpr, tpr, _ = roc_curve(y, conf, drop_intermediate=False)
    return fpr[np.argmax(tpr >= 0.95)], roc_auc_score(y, conf)


@pytest.mark.parametrize("ties", [False, True])
def test_metrics_match_sklearn(ties):
    rng = np.random.default_rng(1)
    for _ in range(40):
        n_in, n_out = rng.integers(5, 400, 2)
        if ties:  # integer scores, like steps-to-converge, have many ties
            s_in, s_out = rng.integers(0, 12, n_in).astype(float), rng.integers(3, 15, n_out).astype(float)
        else:
            s_in, s_out = rng.normal(0, 1, n_in), rng.normal(rng.uniform(-1, 2), 1.5, n_out)
        ref_fpr, ref_auc = _sklearn(s_in, s_out)
        assert auroc(s_in, s_out) == pytest.approx(ref_auc, abs=1e-12)
        assert fpr95(s_in, s_out) == pytest.approx(ref_fpr, abs=1e-12)


def test_metrics_known_answers():
    s_in, s_out = torch.arange(100.0), torch.arange(100.0) + 1000
    assert auroc(s_in, s_out) == 1.0 and fpr95(s_in, s_out) == 0.0
    assert auroc(s_out, s_in) == 0.0 and fpr95(s_out, s_in) == 1.0  # inverted
    assert auroc(torch.zeros(10), torch.zeros(7)) == 0.5  # all tied = chance
    # 100 in-distribution scores 0..99: the 95% threshold is 94, so OOD scores <= 94 are accepted
    assert fpr_at_tpr(torch.arange(100.0), torch.tensor([10.0, 94.0, 94.5, 200.0])) == 0.5
    lo, hi = bootstrap_ci(np.r_[np.zeros(50), np.ones(50)], np.r_[np.zeros(50), np.ones(50)] + 0.5)
    assert lo <= 0.75 <= hi


def test_metrics_reject_bad_scores():
    with pytest.raises(ProbeError, match="NaN"):
        auroc([0.0, float("nan")], [1.0])
    with pytest.raises(ProbeError, match="empty"):
        fpr95([], [1.0])


# -- a map with known attractors ------------------------------------------------------
ATTRACTORS = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])


def two_well_map():
    """f(z) = z + (a(z) - z) / 2 with a(z) the nearest of (-2, 0), (2, 0): two attractors,
    contraction 1/2, so the distance to the nearest attractor halves at each step."""
    def decode(z):
        a = ATTRACTORS[(z[:, None] - ATTRACTORS).pow(2).sum(-1).argmin(1)]  # not cdist: no forward-mode AD
        return (z + 0.5 * (a - z)).reshape(len(z), 2, 1, 1)

    m = probe.wrap(lambda x: x.reshape(len(x), 2), decode, (2,), image_channels=2, check_inputs=False, name="two-well")
    m.field_defaults = {"tol": 1e-10, "max_steps": 200}
    return m


def as_images(z):
    return z.reshape(len(z), 2, 1, 1)


def test_trajectory_score_is_mean_distance_along_the_path():
    m = two_well_map()
    z0 = torch.tensor([[2.5, 0.0], [-2.0, 0.8], [0.3, 5.0]])
    out = trajectory_scores(m, z0, ATTRACTORS, tol=1e-10, max_steps=200)
    d0 = torch.cdist(z0, ATTRACTORS).min(1).values
    for i in range(3):
        steps = int(out["steps"][i])
        assert 10 < steps < 200 and bool(out["converged"][i])
        expected = (d0[i] * 0.5 ** torch.arange(steps + 1.0)).mean()  # d_t = d_0 / 2^t for t = 0..steps
        assert float(out["trajectory"][i]) == pytest.approx(float(expected), rel=1e-4)
    assert torch.allclose(out["first_residual"], d0 / 2, rtol=1e-5)
    # a budget cut short: the mean runs over exactly z_0..z_5
    short = trajectory_scores(m, z0, ATTRACTORS, tol=1e-10, max_steps=5)
    assert not short["converged"].any() and (short["steps"] == 5).all()
    assert torch.allclose(short["trajectory"], d0 * (0.5 ** torch.arange(6.0)).mean(), rtol=1e-5)


def test_score_separates_far_points_and_report_roundtrip(tmp_path):
    m = two_well_map()
    g = torch.Generator().manual_seed(0)
    near = lambda n: ATTRACTORS[torch.randint(0, 2, (n,), generator=g)] + 0.3 * torch.randn(n, 2, generator=g)  # noqa
    far = torch.stack([0.3 * torch.randn(40, generator=g), 6 + torch.rand(40, generator=g)], 1)
    cfg = OODConfig(n_train=60, n_test=40, knn_k=5, image_batch=16, field=FieldConfig(power_iters=2))
    det = OODDetector.fit(m, as_images(near(60)), cfg)
    assert len(det.attractors) == 2  # both wells, found from data, merged by cosine > 0.99
    assert torch.allclose(det.attractors.reshape(2, 2).abs().sort(0).values[:, 0], torch.tensor([2.0, 2.0]), atol=1e-3)
    report = run_ood(m, as_images(near(60)), as_images(near(40)), {"far": as_images(far)}, cfg, in_name="near")
    metrics = report.metrics()
    assert set(metrics) == set(METHODS)
    assert metrics["trajectory"]["far"]["auroc"] == 1.0 and metrics["trajectory"]["far"]["fpr95"] == 0.0
    # the report records what made it, saves, loads back equal, and renders
    assert report.info["attractors"]["n_attractors"] == 2 and report.config["knn_k"] == 5
    assert report.map["name"] == "two-well"
    back = OODReport.load(report.save(tmp_path / "r"))
    for method in METHODS:
        for name in ("near", "far"):
            assert torch.equal(back.scores[method][name], report.scores[method][name])
    assert back.metrics()["knn"]["far"] == pytest.approx(metrics["knn"]["far"])
    md = back.to_markdown()
    assert "far FPR95 / AUROC" in md and "2 attractor(s)" in md
    assert "| trajectory | **0.00 / 100.00 [100.0, 100.0] / 100.00 / 100.00** |" in md
    assert "far FPR95 / AUROC / AUPR-In / AUPR-Out" in md and "OpenOOD v1.5" in md
    rows = back.to_csv(tmp_path / "ood.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(METHODS) and rows[1].startswith("trajectory,near,far,0.000000,1.000000")
    assert rows[0].split(",")[7:10] == ["aupr_in", "aupr_out", "fpr95_openood"]
    png = back.plot_histograms(tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_reference_from_another_model_is_refused_unless_allowed():
    from probe.field import find_attractors

    m, other = two_well_map(), probe.wrap(lambda x: x.reshape(len(x), 2), lambda z: 0.5 * z.reshape(len(z), 2, 1, 1),
                                          (2,), image_channels=2, check_inputs=False, name="halving")
    g = torch.Generator().manual_seed(3)
    train = as_images(ATTRACTORS[torch.randint(0, 2, (20,), generator=g)] + 0.3 * torch.randn(20, 2, generator=g))
    cfg = OODConfig(n_train=20, n_test=10, knn_k=3, field=FieldConfig(power_iters=2, probe_points=0))
    theirs = find_attractors(other, cfg.field, seeds=train.reshape(20, 2), max_steps=50)
    with pytest.raises(ProbeError, match="made by 'halving'.*--allow-other-model"):
        run_ood(m, train, train[:10], {"far": as_images(torch.randn(10, 2) + 6)}, cfg, reference=theirs)
    report = run_ood(m, train, train[:10], {"far": as_images(torch.randn(10, 2) + 6)}, cfg, reference=theirs,
                     allow_other_model=True)
    assert "halving" in report.info["attractors"]["other_model"]
    assert "another model (halving)" in report.to_markdown()
    ours = find_attractors(m, cfg.field, seeds=train.reshape(20, 2))
    assert run_ood(m, train, train[:10], {"far": as_images(torch.randn(10, 2) + 6)}, cfg,
                   reference=ours).info["attractors"]["other_model"] is None


def test_expansive_map_scores_against_end_points():
    """No seed of f(z) = 1.5 z converges: the report says the reference is end points, not attractors."""
    m = probe.wrap(lambda x: x.reshape(len(x), 2), lambda z: 1.5 * z.reshape(len(z), 2, 1, 1), (2,),
                   image_channels=2, check_inputs=False)
    train = as_images(torch.tensor([[1.0, 0.1]]) + 0.01 * torch.randn(20, 2))
    cfg = OODConfig(n_train=20, n_test=10, knn_k=3, field=FieldConfig(max_steps=6, power_iters=2))
    report = run_ood(m, train, train[:10], {"other": as_images(torch.randn(10, 2))}, cfg)
    assert report.info["attractors"]["reference"] == "end points"
    assert report.info["fraction_converged"] == {"in": 0.0, "other": 0.0}
    assert (report.scores["steps"]["other"] == 6).all()
    md = report.to_markdown()
    assert "merged end points (no attractor)" in md and "there are no attractors" in md
    assert "in, other: 100.0% of trajectories did not converge within 6 steps (unconverged 10 per set)" in md


def test_report_says_when_the_score_inverts():
    s = lambda *v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    scores = {method: {"in": s(1, 2, 3, 4), "uniform": s(0.1, 0.2, 0.3, 0.4), "far": s(9, 9, 9, 9)}
              for method in METHODS}
    scores["knn"]["uniform"] = s(5, 6, 7, 8)
    report = OODReport(scores, "in", ["uniform", "far"], {"knn_k": 5, "knn_metric": "cosine"}, {"name": "toy"},
                       {"attractors": {"n_attractors": 3, "merge": "cosine", "merge_threshold": 0.99},
                        "tol": 1e-6, "max_steps": 10, "score_steps": 10,
                        "fraction_converged": {"in": 1.0, "uniform": 0.5, "far": 1.0},
                        "data": {"train": {"name": "t", "n": 9}, "in": {"n": 4}}})
    md = report.to_markdown()
    assert "uniform: the trajectory score is INVERTED (AUROC 0.00 < 50)" in md
    assert "uniform: the trajectory score (AUROC 0.00) loses to knn (AUROC 100.00)" in md
    assert "uniform: 50.0% of trajectories did not converge within 10 steps" in md
    cell = next(c for c in md.split("|") if c.strip().startswith("100.00 / 0.00 [0.0, 0.0] / "))
    assert cell.strip().endswith("(inverted)") and "far: the trajectory" not in md


# -- baselines on hand-checkable inputs --------------------------------------------------
def test_knn_distance_known_values():
    train = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    z = torch.tensor([[0.5, 0.0]])
    assert [float(knn_distance(train, z, k, "l2")[0]) for k in (1, 2, 3)] == [0.5, 0.5, 2.5]
    unit = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    got = [float(knn_distance(unit, torch.tensor([[2.0, 0.0]]), k, "cosine")[0]) for k in (1, 2, 3)]
    assert got == pytest.approx([0.0, math.sqrt(2), 2.0], abs=1e-6)  # cosine ignores the length 2
    with pytest.raises(ProbeError, match="knn_k = 4 exceeds the 3"):
        knn_distance(train, z, 4)


def test_mahalanobis_matches_sklearn_ledoit_wolf():
    from sklearn.covariance import LedoitWolf

    x = torch.randn(300, 4) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + torch.tensor([1.0, 0.0, -1.0, 2.0])
    z = torch.randn(20, 4) * 3
    ref = LedoitWolf().fit(x.double().numpy()).mahalanobis(z.double().numpy())  # squared distances
    assert torch.allclose(Mahalanobis.fit(x).score(z).double(), torch.from_numpy(ref).sqrt(), rtol=1e-5)
    nearest = nearest_distance(z, x)
    assert torch.allclose(nearest, torch.cdist(z, x).min(1).values)


def test_reconstruction_error_known_values():
    half = probe.wrap(lambda x: x.flatten(1), lambda z: 0.5 * z.reshape(len(z), 1, 4, 4), (16,), image_channels=1)
    x = torch.rand(5, 1, 4, 4)
    assert torch.allclose(reconstruction_error(half, x, batch_size=2), (0.25 * x.pow(2)).flatten(1).mean(1))
    # RGB into a gray map: compared with the luminance the map sees, so an identity AE scores 0
    ident = probe.wrap(lambda x: x.flatten(1), lambda z: z.reshape(len(z), 1, 4, 4), (16,), image_channels=1)
    assert reconstruction_error(ident, torch.rand(3, 3, 4, 4)).abs().max() < 1e-6
    u8 = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)  # uint8 reads as /255, as everywhere in probe
    assert reconstruction_error(ident, u8).abs().max() < 1e-6


def test_config_validates():
    with pytest.raises(ProbeError, match="knn_metric"):
        OODConfig(knn_metric="manhattan")
    with pytest.raises(ProbeError, match="n_train"):
        OODConfig(n_train=0)


# -- the command line ------------------------------------------------------------------
def test_cli_end_to_end_on_a_tiny_model(tmp_path, capsys):
    from probe.cli.main import main
    from probe.maps.convae import ConvAE, ConvAEConfig

    ConvAE(ConvAEConfig(image_size=28, width=4, bottleneck=4)).save(tmp_path / "tiny")
    (tmp_path / "ood.yaml").write_text("ood:\n  power_iters: 2\n  knn_k: 5\n")
    out = tmp_path / "ood"
    rc = main(["ood", str(tmp_path / "tiny"), "--train", "digits", "--test-in", "digits",
               "--test-out", "noise:uniform,noise:gaussian", "--n-train", "30", "--n-test", "16",
               "--max-steps", "20", "--config", str(tmp_path / "ood.yaml"), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.startswith("OOD detection with") and "in = digits (n=16)" in printed
    assert "noise:uniform FPR95 / AUROC" in printed and "| trajectory |" in printed
    report = OODReport.load(out)
    assert report.config["field"]["power_iters"] == 2 and report.config["knn_k"] == 5  # from the YAML
    assert report.info["data"]["train"]["split"] == "train" and report.info["data"]["digits"]["split"] == "test"
    assert set(report.scores["trajectory"]) == {"digits", "noise:uniform", "noise:gaussian"}
    assert all(len(v) == 16 for v in report.scores["knn"].values())
    rows = (out / "ood.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(METHODS)
    assert (out / "histograms.png").is_file() and "Command: `probe ood" in (out / "ood.md").read_text()
    # a user mistake is one line, not a traceback
    assert main(["ood", str(tmp_path / "tiny"), "--train", "digits", "--test-in", "digits@train",
                 "--test-out", "noise:uniform"]) == 2
    assert "is the training set itself" in capsys.readouterr().err


def test_reference_points_end_points():
    """Z*_train variant: every converged training end point, unmerged (one per image)."""
    from probe.errors import ConfigError
    from probe.probes.ood_scores import nearest_distance

    m = two_well_map()
    g = torch.Generator().manual_seed(1)
    near = as_images(ATTRACTORS[torch.randint(0, 2, (30,), generator=g)] + 0.3 * torch.randn(30, 2, generator=g))
    cfg = lambda ref: OODConfig(n_train=30, n_test=10, knn_k=5, image_batch=16,  # noqa: E731
                                field=FieldConfig(power_iters=2), reference_points=ref)
    ends = OODDetector.fit(m, near, cfg("end_points"))
    merged = OODDetector.fit(m, near, cfg("attractors"))
    assert len(ends.attractors) == 30 and ends.attractor_info["reference"] == "unmerged end points"
    assert len(merged.attractors) == 2 and merged.attractor_info["reference"] == "attractors"
    # the end points of a contractive map sit on its attractors: the same distances up to the tolerance
    z = 3 * torch.randn(20, 2, generator=g)
    assert torch.allclose(nearest_distance(z, ends.attractors), nearest_distance(z, merged.attractors), atol=1e-2)
    with pytest.raises(ConfigError):
        OODConfig(reference_points="medoids")


def test_reference_points_remerge_threshold():
    from probe.field import find_attractors
    from probe.probes.ood import reference_points

    m = two_well_map()
    g = torch.Generator().manual_seed(2)
    seeds = ATTRACTORS[torch.randint(0, 2, (20,), generator=g)] + 0.3 * torch.randn(20, 2, generator=g)
    found = find_attractors(m, FieldConfig(power_iters=2), seeds=seeds)
    pts, kind = reference_points(found, "attractors")
    assert kind == "attractors" and len(pts) == 2
    pts_tight, _ = reference_points(found, "attractors", threshold=0.9999)
    assert 2 <= len(pts_tight) <= 20  # a tighter merge never gives fewer points
    ends, kind = reference_points(found, "end_points")
    assert kind == "unmerged end points" and len(ends) == int(found.converged.sum())
