"""Basins of attraction on a map whose basins are known: a nearest-class-mean field on real digits."""
from __future__ import annotations

import pytest
import torch

import probe
from probe.cli.main import main
from probe.errors import ProbeError
from probe.field import FieldConfig
from probe.probes.basins import Basins, BasinsConfig, find_basins, run_basins


@pytest.fixture(autouse=True)
def _one_thread():
    # On 2 shared cores OpenMP threads spin-wait on each other; scoped to these tests, restored after.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def digits():
    """Real scikit-learn digits of classes 0, 1 and 7 as an ImageSet (8x8, uint8)."""
    from probe.data import load_images

    s = load_images("digits", split="all")
    keep = torch.nonzero((s.labels == 0) | (s.labels == 1) | (s.labels == 7)).flatten()
    return s.take(keep)


def class_mean_map(means: torch.Tensor, beta: float = 40.0):
    """Latent k = number of classes. D(z) = sum_c z_c M_c; E(x) = softmax(beta * cos(x, M_c)).
    f pushes a latent toward the one-hot code of the class mean its image is closest to, so the
    basin of each image is its nearest class mean by cosine: the answer is known."""
    m = means.flatten(1)
    mu = m / m.norm(dim=1, keepdim=True)

    def enc(x):
        x = x.flatten(1)
        return torch.softmax(beta * (x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ mu.T, dim=1)

    def dec(z):
        return (z @ m).view(-1, *means.shape[1:])

    return probe.wrap(enc, dec, (len(means),), image_channels=1, image_size=means.shape[-1], check_inputs=False)


def test_basins_are_the_nearest_class_means(digits, tmp_path):
    x = digits.float()
    classes = [0, 1, 7]
    means = torch.stack([x[digits.labels == c].mean(0) for c in classes])
    m = class_mean_map(means)
    res = run_basins(m, digits, tmp_path, BasinsConfig(galleries=2, per_gallery=5, field=FieldConfig(max_steps=200, tol=1e-10)))

    assert len(res.points) == 3 and bool(res.stable.all())
    assert int((res.assignment < 0).sum()) == 0
    # each attractor decodes to (almost) one class mean; map attractor -> class by that
    dec = m.decode(res.points)
    which = torch.stack([torch.nn.functional.cosine_similarity(dec.flatten(1), mu.flatten()[None], dim=1)
                         for mu in means], 1).argmax(1)
    assert sorted(which.tolist()) == [0, 1, 2]
    flat = x.flatten(1)
    nearest = (torch.nn.functional.normalize(flat, dim=1) @ torch.nn.functional.normalize(means.flatten(1), dim=1).T).argmax(1)
    assert torch.equal(which[res.assignment], nearest)
    assert res.counts.tolist() == [int((nearest == which[k]).sum()) for k in range(3)]

    # class mix and purity against the true labels
    for k in range(3):
        mix = res.class_mix(k)
        assert sum(mix.values()) == int(res.counts[k])
        assert next(iter(mix)) == str(classes[int(which[k])])  # majority class is the attractor's class
    truth = torch.tensor(classes)[nearest]
    assert res.purity() == pytest.approx(float((truth == digits.labels).float().mean()))
    assert res.purity() > 0.9

    # files: result, table, galleries (attractor first, then members), overview
    rows = [l for l in (tmp_path / "basins.md").read_text().splitlines() if l[:3] in ("| 0", "| 1", "| 2")]
    assert len(rows) == 3
    assert sorted(p.name for p in (tmp_path / "galleries").iterdir()) == ["basin_000.png", "basin_001.png"]
    assert (tmp_path / "attractors.png").is_file()
    back = Basins.load(tmp_path)
    assert torch.equal(back.assignment, res.assignment) and back.class_mix(0) == res.class_mix(0)
    assert back.meta["merge"]["rule"] == "cosine"


def test_unlabelled_tensor_input_and_bad_input():
    x = torch.rand(12, 1, 4, 4)
    m = class_mean_map(x[:2], beta=60.0)
    res = find_basins(m, x, BasinsConfig(field=FieldConfig(max_steps=200, tol=1e-10)))
    assert res.class_mix(0) == {} and res.purity() != res.purity()  # nan without labels
    assert int(res.counts.sum()) + int((res.assignment < 0).sum()) == 12
    with pytest.raises(ProbeError, match="non-empty"):
        find_basins(m, torch.rand(0, 1, 4, 4))


def test_cli_on_a_saved_conv_autoencoder(tmp_path, capsys):
    from probe.maps.convae import ConvAE

    ConvAE(image_size=8, width=2, bottleneck=3).save(tmp_path / "ae")
    rc = main(["basins", str(tmp_path / "ae"), "--images", "digits", "--n-images", "30", "--max-steps", "100",
               "--galleries", "1", "--out", str(tmp_path / "out")])
    assert rc == 0
    assert "galleries and basins.md" in capsys.readouterr().out
    assert (tmp_path / "out" / "manifest.json").is_file()
    res = Basins.load(tmp_path / "out")
    assert len(res.assignment) == 30 and res.classes is not None
    assert res.meta["images"]["name"] == "digits" and res.meta["config"]["n_images"] == 30
