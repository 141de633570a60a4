"""The front door: each probe as one function with keyword overrides of its config or its FieldConfig."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from probe.probes import api

FAST: dict[str, Any] = dict(max_steps=40, power_iters=3, probe_points=1)


@pytest.fixture(scope="module")
def model():
    from probe.maps.convae import ConvAE

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ConvAE(image_size=8, width=2, bottleneck=3)


def test_dictionary_and_compare_take_flat_overrides(model):
    rep = api.dictionary(model, "digits", n_seeds=8, n_images=12, pca_images=20, **FAST)
    assert rep.config["field"]["n_seeds"] == 8 and rep.config["n_images"] == 12
    assert list(rep.datasets) == ["digits"] and rep.to_rows()
    cmp = api.compare(model, model, n_seeds=8, max_grid=2, **FAST)
    assert cmp.stat(("latent", "agree")).mean == 1  # a model against itself


def test_basins_memorization_and_ood_on_tensors(model, tmp_path):
    from probe.data import load_images

    digits = load_images("digits", n=40, resolution=8, channels=1)
    b = api.basins(model, digits, tol=1e-6, **FAST)
    assert len(b.assignment) == 40 and b.kind == "Basins"
    mem = api.memorization(model, digits.images[:30], digits.images[30:], n_seeds=6, n_data_seeds=4, n_null=10,
                           **FAST)
    assert mem.kind == "Memorization" and len(mem.to_rows()) == 3
    rep = api.ood(model, digits.images[:30], digits.images[30:], {"noise": torch.rand(10, 1, 8, 8)}, n_train=30,
                  knn_k=3, out=tmp_path / "ood", **FAST)
    assert set(rep.out_names) == {"noise"} and (tmp_path / "ood" / "attractors" / "meta.json").is_file()
