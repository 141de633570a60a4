"""Memorization coefficient, null level, generalization rank, Chamfer, and the bottleneck study."""
from __future__ import annotations

import json
from typing import cast

import pytest
import torch

import probe
from probe.errors import ConfigError, ProbeError
from probe.field import FieldConfig
from probe.probes.memorization import (
    MeasureConfig,
    chamfer_similarity,
    generalization_rank,
    max_cosine,
    measure,
    memorization_coefficient,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # On 2 cores shared by many processes, OpenMP threads spin-wait on each other and small convs
    # run 10-100x slower with 2 threads than with 1. Scoped to these tests, restored after.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _brute_cos(a, b):
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T


def test_max_cosine_matches_brute_force_and_finds_copies():
    ref = torch.rand(300, 1, 6, 6)
    q = torch.cat([ref[[17, 250]], torch.rand(5, 1, 6, 6)])
    best, arg = max_cosine(q, ref, chunk=64)  # chunking must not change the answer
    full = _brute_cos(q, ref)
    torch.testing.assert_close(best.double(), full.max(1).values, rtol=0, atol=1e-6)
    assert arg[:2].tolist() == [17, 250] and torch.allclose(best[:2], torch.ones(2))
    u8 = (ref * 255).round().to(torch.uint8)  # uint8 references are read as /255: same cosines
    torch.testing.assert_close(max_cosine(q, u8)[0], max_cosine(q, u8.float() / 255)[0])
    with pytest.raises(ProbeError, match="differ in shape"):
        max_cosine(q, torch.rand(3, 1, 5, 5))


def test_coefficient_is_the_max_not_the_papers_min():
    a, b = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    a[0, 0, 0, 0], b[0, 0, 1, 1] = 1, 1
    train = torch.cat([a, b, (a + b) / 2])
    coef = memorization_coefficient(a, train)
    assert coef.item() == pytest.approx(1.0)  # min would be 0 (a vs b)


def test_generalization_rank_counts_variance_directions():
    e = torch.eye(10)
    # centred points with variances 50 / 30 / 20 % along three orthogonal directions
    pts = torch.cat([s * e[i] * sign for i, s in enumerate([5 ** 0.5, 3 ** 0.5, 2 ** 0.5]) for sign in (1, -1)])
    pts = pts.view(6, 1, 2, 5) + 0.3  # a shared offset: the rank is about variance, not the mean
    assert generalization_rank(pts, 0.9) == 3
    assert generalization_rank(pts, 0.8) == 2
    assert generalization_rank(pts, 0.5) == 1
    assert generalization_rank(pts[:1]) == 0 and generalization_rank(pts[:2] * 0 + 1) == 0


def test_chamfer_similarity_known_values():
    x = torch.rand(4, 1, 3, 3)
    assert chamfer_similarity(x, x) == pytest.approx(1.0)
    e = torch.eye(4).view(4, 1, 2, 2)
    # {e0} vs {e0, e1}: e0 finds itself (1); from the other side e0 -> 1, e1 -> 0: mean 0.5
    assert chamfer_similarity(e[:1], e[:2]) == pytest.approx(0.5 * (1 + 0.5))
    assert chamfer_similarity(e[:1], e[:0]) != chamfer_similarity(e[:1], e[:0])  # nan when one side is empty


def _template_map(template: torch.Tensor, other: torch.Tensor):
    """Latent k = 2; D(z) = z0 * T + z1 * O, E(x) = <x, T>, <x, O> / 2 + (1/2, 0): f(z) = z/2 + (1/2, 0)
    after orthonormalising, so every seed flows to z* = (1, 0) whose image is the template T."""
    t = template.flatten() / template.flatten().norm()
    o = other.flatten() - (other.flatten() @ t) * t
    o = o / o.norm()
    shape = template.shape

    def dec(z):
        return (z[:, :1] * t + z[:, 1:] * o).view(-1, *shape)

    def enc(x):
        x = x.flatten(1)
        return torch.stack([x @ t, x @ o], 1) * 0.5 + torch.tensor([0.5, 0.0])

    return probe.wrap(enc, dec, (2,), image_channels=1, check_inputs=False), t.view(shape)


def test_measure_on_a_map_with_one_known_attractor():
    from sklearn.datasets import load_digits
    from sklearn.utils import Bunch

    x = torch.from_numpy(cast(Bunch, load_digits()).images[:, None]).float() / 16
    train, test = x[:600], x[600:900]
    m, t = _template_map(train[3], train[8])
    cfg = MeasureConfig(n_data_seeds=8, n_null=300, field=FieldConfig(n_seeds=16, tol=1e-10, max_steps=200))
    out = measure(m, train, test, cfg)
    for source in ("noise", "train", "test"):
        r = out[source]
        assert r["attractors"] == 1 and r["converged"] == r["seeds"], (source, r["status"])
        # D(z*) is the normalised template: it is training image 3 up to scale, cosine 1
        assert r["coefficient"]["mean"] == pytest.approx(1.0, abs=1e-5)
        assert r["generalization_rank"] == 0
    null = max_cosine(test, train)[0]  # n_null = all 300 test images
    assert out["null"]["mean"] == pytest.approx(float(null.mean()), abs=1e-6)
    assert 0.5 < out["null"]["mean"] < 1.0  # real digits resemble each other, but no test image is a copy
    assert out["chamfer"]["train_noise"] == pytest.approx(1.0, abs=1e-6)
    assert out["noise"]["merge"]["rule"] == "cosine" and out.config["field"]["merge_threshold"] == 0.99
    json.dumps(out.meta)  # a saved result must be plain JSON
    assert out.to_rows()[0]["source"] == "noise" and len(out.to_rows()) == 3


def test_study_trains_measures_and_resumes(tmp_path, monkeypatch):
    from probe.probes import memorization_study as ms

    cfg = ms.MemorizationConfig(dataset="digits", bottlenecks=[2, 3], epochs=2, n_train=300, n_test=60, width=2,
                                train_batch=50, n_data_seeds=6, n_null=30, count_seeds=6, count_every=1,
                                field=FieldConfig(n_seeds=8, max_steps=300))
    study = ms.run_study(cfg, tmp_path, log=None)
    assert [r["k"] for r in study.rows] == [2, 3]
    for r in study.rows:
        assert len(r["history"]) == 2 and [c["epoch"] for c in r["counts"]] == [1, 2]
        assert r["counts"][0]["merge"]["threshold"] == 0.99
        assert r["measure"]["noise"]["seeds"] == 8 and r["measure"]["train"]["seeds"] == 6
        assert isinstance(probe.load(r["folder"]), probe.LatentMap)
    for name in ("meta.json", "memorization.md", "coefficient_vs_k.png", "attractors_vs_epoch.png", "mse_vs_k.png"):
        assert (tmp_path / name).is_file(), name
    back = ms.MemorizationStudy.load(tmp_path)
    assert back.rows[1]["measure"]["null"] == study.rows[1]["measure"]["null"]
    assert "| 3 |" in back.table()

    # resuming does no training, counting or measuring again
    state = tmp_path / "k002" / "checkpoints" / "state.pt"
    stamp = state.stat().st_mtime_ns
    for name in ("measure", "count_attractors"):
        monkeypatch.setattr(ms, name, lambda *a, **k: pytest.fail("recomputed"))
    again = ms.run_study(cfg, tmp_path, log=None)
    assert again.rows[0]["measure"] == study.rows[0]["measure"]
    assert state.stat().st_mtime_ns == stamp


def test_list_flags_parse_as_their_element_type_and_count_epochs_keep_only_those_weights(tmp_path):
    from probe.cli.flags import config_from_args
    from probe.cli.main import build_parser
    from probe.probes import memorization_study as ms

    args = build_parser().parse_args(["memorization", "--bottlenecks", "2,8", "--epochs", "5",
                                      "--count-epochs", "1,2,5", "--quiet"])
    cfg = config_from_args(ms.MemorizationConfig, args)
    assert cfg.bottlenecks == [2, 8] and cfg.count_epochs == [1, 2, 5]
    assert cfg.counted_epochs() == [1, 2, 5] and cfg.train_config(2).keep_epochs == [1, 2, 5]
    with pytest.raises(ConfigError, match="count_epochs"):
        ms.MemorizationConfig(epochs=5, count_epochs=[1, 6])
    args = build_parser().parse_args(["dictionary", "m", "--datasets", "mnist", "--sweep-sparsities", "0.5,0.05", "--quiet"])
    from probe.probes.dictionary import DictionaryConfig
    assert config_from_args(DictionaryConfig, args).sweep_sparsities == [0.5, 0.05]

    cfg = ms.MemorizationConfig(dataset="digits", bottlenecks=[2], epochs=3, n_train=200, n_test=40, width=2,
                                train_batch=50, n_data_seeds=4, n_null=20, count_seeds=4, count_epochs=[1],
                                field=FieldConfig(n_seeds=4, max_steps=200))
    study = ms.run_study(cfg, tmp_path, log=None)
    assert [c["epoch"] for c in study.rows[0]["counts"]] == [1, 3]
    kept = sorted(p.name for p in (tmp_path / "k002" / "checkpoints").glob("epoch_*"))
    assert kept == ["epoch_0001", "epoch_0003"]
