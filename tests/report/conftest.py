"""Results of every kind, built once per session with probe's own functions on tiny maps,
and a reader that checks a report page's structure."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import probe

SIDE, DIM = 4, 3


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # On 2 shared cores OpenMP threads spin-wait on each other; restored after the session.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def orthant_map(rotation=None, gain=2.0, seed=0, name="orthant"):
    """f(z) = R^T tanh(g R z): one attractor per orthant (spectral radius 0.17), images 1 x 4 x 4."""
    g = torch.Generator().manual_seed(seed)
    w = torch.linalg.qr(torch.randn(SIDE * SIDE, DIM, generator=g, dtype=torch.float64))[0].float()
    r = torch.eye(DIM) if rotation is None else rotation
    mul = lambda x, m: (x[:, :, None] * m).sum(1)  # noqa: E731 - x @ m, cheap under forward-mode AD
    return probe.wrap(lambda x: mul(torch.tanh(gain * mul(mul((x.flatten(1) - 0.5) / 0.2, w), r.T)), r),
                      lambda z: (0.5 + 0.2 * mul(z, w.T)).view(-1, 1, SIDE, SIDE), (DIM,),
                      image_channels=1, image_size=SIDE, name=name)


def images(toy, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return toy.decode(0.8 * torch.randn(n, DIM, generator=g)).clamp(0, 1)


@pytest.fixture(scope="session")
def toy():
    return orthant_map()


@pytest.fixture(scope="session")
def built(tmp_path_factory, toy):
    """A folder holding one result of each kind (as `probe demo` and the commands lay them out)."""
    from probe.field import find_attractors

    root = tmp_path_factory.mktemp("results")
    aset = find_attractors(toy, n_seeds=48, seed=0, out=root / "attractors", power_iters=4, probe_points=2,
                           max_steps=200)
    npz = root / "blobs.npz"
    np.savez(npz, images=(images(toy, 40, 1)[:, 0] * 255).round().to(torch.uint8).numpy())
    return {"root": root, "aset": aset, "npz": str(npz)}


@pytest.fixture(scope="session")
def dictionary_folder(built, toy):
    from probe.probes.dictionary import DictionaryConfig, run_dictionary

    cfg = DictionaryConfig(n_images=20, sparsity=0.5, coder="both", n_examples=4, pca_images=20)
    report = run_dictionary(toy, built["aset"], [built["npz"]], cfg)
    return report.save(built["root"] / "dictionary")


@pytest.fixture(scope="session")
def ood_folder(built, toy):
    from probe.field import FieldConfig
    from probe.probes.ood import OODConfig, run_ood

    g = torch.Generator().manual_seed(3)
    cfg = OODConfig(n_train=40, n_test=30, knn_k=5, field=FieldConfig(power_iters=2, max_steps=100, probe_points=0))
    report = run_ood(toy, images(toy, 40, 4), images(toy, 30, 5), {"uniform": torch.rand(30, 1, SIDE, SIDE, generator=g)},
                     cfg)
    return report.save(built["root"] / "ood")


@pytest.fixture(scope="session")
def compare_folder(built, toy):
    from probe.field import FieldConfig
    from probe.probes.compare import CompareConfig, compare

    c = math.cos(math.pi / 4)
    rot = torch.tensor([[c, -c, 0.0], [c, c, 0.0], [0.0, 0.0, 1.0]])
    cfg = CompareConfig(max_grid=4, field=FieldConfig(n_seeds=48, max_steps=200, batch_size=16, power_iters=4))
    report = compare(toy, orthant_map(rotation=rot, name="rotated"), cfg, specs=("toy", "rotated"))
    return report.save(built["root"] / "compare" / "report")


@pytest.fixture(scope="session")
def basins_folder(built):
    """Real scikit-learn digits 0, 1, 7 in a nearest-class-mean field: basins with labels and galleries."""
    from probe.data import load_images
    from probe.field import FieldConfig
    from probe.probes.basins import BasinsConfig, run_basins

    s = load_images("digits", split="all")
    s = s.take(torch.nonzero((s.labels == 0) | (s.labels == 1) | (s.labels == 7)).flatten()[:60])
    x = s.images.float() / 255 if s.images.dtype == torch.uint8 else s.images
    means = torch.stack([x[s.labels == c].mean(0) for c in (0, 1, 7)])
    mu = means.flatten(1) / means.flatten(1).norm(dim=1, keepdim=True)
    enc = lambda v: torch.softmax(40 * (v.flatten(1) / v.flatten(1).norm(dim=1, keepdim=True).clamp_min(1e-12)) @ mu.T, 1)  # noqa
    m = probe.wrap(enc, lambda z: (z @ means.flatten(1)).view(-1, *means.shape[1:]), (3,), image_channels=1,
                   image_size=means.shape[-1], check_inputs=False, name="class-means")
    run_basins(m, s, built["root"] / "basins", BasinsConfig(galleries=3, per_gallery=6, field=FieldConfig(max_steps=100, power_iters=4)))
    return built["root"] / "basins"


@pytest.fixture(scope="session")
def memorization_folder(built):
    """A two-row study of tiny random conv autoencoders, each row from probe's own measure()."""
    from probe.field import FieldConfig
    from probe.maps.convae import ConvAE
    from probe.probes.memorization import MeasureConfig, count_attractors, measure
    from probe.probes.memorization_study import MemorizationStudy

    g = torch.Generator().manual_seed(6)
    train, test = torch.rand(24, 1, 28, 28, generator=g), torch.rand(24, 1, 28, 28, generator=g)
    cfg = MeasureConfig(n_data_seeds=8, n_null=8, field=FieldConfig(n_seeds=8, max_steps=20, power_iters=2))
    rows = []
    for k in (2, 4):
        with torch.random.fork_rng():
            torch.manual_seed(k)
            m = ConvAE(width=4, bottleneck=k)
        one = measure(m, train, test, cfg)
        one.save(built["root"] / "memorization" / f"k{k:03d}" / "memorization")
        counts = [{**count_attractors(m, cfg, 8), "epoch": 0}]  # before training: a random init
        rows.append({"k": k, "train_mse": 0.1 / k, "test_mse": 0.12 / k, "measure": one.facts, "counts": counts})
    study = MemorizationStudy({"dataset": "random", "epochs": 0, "n_seeds": 8, "n_train": 24}, rows)
    return study.save(built["root"] / "memorization")


@pytest.fixture(scope="session")
def features_folder(built, toy):
    from probe.field import FieldConfig
    from probe.probes.features import FeaturesConfig, find_feature_images

    cfg = FeaturesConfig(feature=0, top_basins=2, gallery=4, field=FieldConfig(max_steps=200, power_iters=4))
    return find_feature_images(toy, images(toy, 30, 7), cfg).save(built["root"] / "features")
