"""probe features on a map with a known answer: a planted patch is feature 0, and its images flow
to the attractor that carries it."""
from __future__ import annotations

import pytest
import torch

import probe
from probe import ProbeError
from probe.probes.features import FeatureReport, FeaturesConfig, feature_activation, find_feature_images, set_feature

MEMORIES = torch.tensor([[1.0, 0.2], [0.2, 0.2]])  # (patch brightness, rest brightness): with / without patch


def patch_map(beta: float = 40.0):
    """Latent [2, 1, 1]: channel 0 = brightness of the top-left 2x2 patch, channel 1 = of the rest,
    pulled to the nearest memory (a Hopfield step). f has two attractors: patch and no patch."""
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :2, :2] = 1

    def encode(x):
        feats = torch.stack([(x * mask).sum((1, 2, 3)) / 4, (x * (1 - mask)).sum((1, 2, 3)) / 60], 1)
        w = torch.softmax(-beta * (feats[:, None] - MEMORIES.to(feats)).pow(2).sum(-1), dim=1)
        return (w @ MEMORIES.to(feats))[:, :, None, None]

    def decode(z):
        return z[:, :1] * mask + z[:, 1:] * (1 - mask)
    return probe.wrap(encode, decode, (2, 1, 1), name="patch map")


def planted_images(n: int = 24, every: int = 3):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.4
    planted = torch.arange(n) % every == 0
    x[planted, :, :2, :2] = 1.0
    return x, planted


def test_activation_and_set_feature():
    z = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    torch.testing.assert_close(feature_activation(z, 1), z[:, 1].flatten(1).mean(1))
    torch.testing.assert_close(feature_activation(z, 1, "max"), z[:, 1].flatten(1).amax(1))
    torch.testing.assert_close(feature_activation(z[:, :, 0, 0], 2), z[:, 2, 0, 0])  # vector latents: a coordinate
    assert torch.equal(set_feature(z, 0, 0.0)[:, 0], torch.zeros(2, 2, 2)) and torch.equal(set_feature(z, 0, 0.0)[:, 1:], z[:, 1:])
    with pytest.raises(ProbeError, match="feature 3 does not exist: latents have 3 channels"):
        feature_activation(z, 3)


def test_planted_images_flow_to_the_attractor_with_the_feature(tmp_path):
    m = patch_map()
    assert m.field_defaults == {"tol": 1e-6, "max_steps": 3000}
    x, planted = planted_images()
    report = find_feature_images(m, x, FeaturesConfig(feature=0, top_basins=2, gallery=4))
    assert len(report.counts) == 2 and bool(report.stable.all())
    top = report.top[0]
    assert float(report.attractor_activation[top]) == pytest.approx(1.0, abs=1e-3)
    assert torch.equal(report.assignment == top, planted)  # exactly the planted images flow there
    assert torch.equal(report.scores() > 0.6, planted)
    assert report.gallery.shape == (8, 1, 8, 8) and report.gallery.dtype == torch.uint8
    assert report.gallery_basin.tolist() == [top] * 4 + [report.top[1]] * 4
    # decoded attractor, with K = 0 (no patch), with K = its largest value
    assert report.decoded.shape == (2, 3, 1, 8, 8)
    assert float(report.decoded[0, 0, 0, 0, 0]) == pytest.approx(1.0, abs=1e-3)
    assert float(report.decoded[0, 1, 0, 0, 0]) == pytest.approx(0.0, abs=1e-6)
    assert report.k_max == pytest.approx(float(report.activation.max()), abs=1e-6)
    rows = report.to_rows()
    assert len(rows) == 24 and rows[0]["activation"] >= rows[-1]["activation"]
    assert {r["image"] for r in rows if r["attractor"] == top} == {str(i) for i in range(0, 24, 3)}
    assert report.model is not None
    assert report.config["field"]["tol"] == 1e-6 and report.model["latent_shape"] == [2, 1, 1]
    # saves and loads back (Result contract), writes its CSV and its labelled figure
    report.save(tmp_path / "f")
    back = probe.result.load_result(tmp_path / "f") if hasattr(probe, "result") else FeatureReport.load(tmp_path / "f")
    assert isinstance(back, FeatureReport) and back.top == report.top
    torch.testing.assert_close(back.decoded, report.decoded)
    assert report.to_csv(tmp_path / "f.csv").read_text().splitlines()[0].startswith("image,rank,activation")
    fig = report.plot(m, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000 and "feature 0" in fig.get_suptitle()
    assert "| attractor | K at attractor |" in "\n".join(report.summary())


def test_config_errors():
    with pytest.raises(ProbeError, match="feature must be an integer >= 0"):
        FeaturesConfig(feature=-1)
    with pytest.raises(ProbeError, match="reduce must be one of mean, max"):
        FeaturesConfig(reduce="sum")
    with pytest.raises(ProbeError, match="does not exist"):
        find_feature_images(patch_map(), planted_images()[0], FeaturesConfig(feature=5))


def test_summary_warns_when_the_map_hardly_merges():
    n = 6
    report = FeatureReport(feature=0, reduce="mean", names=[str(i) for i in range(n)], activation=torch.arange(n).float(),
                           end_activation=torch.arange(n).float(), assignment=torch.arange(n),
                           status=torch.zeros(n, dtype=torch.int8), attractor_activation=torch.arange(n).float(),
                           stable=torch.ones(n, dtype=torch.bool), counts=torch.ones(n, dtype=torch.int64), top=[5],
                           gallery=torch.zeros(1, 1, 2, 2, dtype=torch.uint8), gallery_basin=torch.tensor([5]),
                           decoded=torch.zeros(1, 3, 1, 2, 2), k_max=5.0, config={"gallery": 1}, model=None)
    text = "\n".join(report.summary())
    assert "hardly merges" in text and "| 5 | 5 | 1 |" in text
