"""``probe features FILE.py:factory --images DIR --feature K`` end to end, on a model with a known answer."""
from __future__ import annotations

import csv
import textwrap

import numpy as np
import pytest
from PIL import Image

from probe.cli.main import main

MODEL = '''
import torch
from torch import nn

MEMORIES = torch.tensor([[1.0, 0.2], [0.2, 0.2]])


class PatchAE(nn.Module):
    """Latent [2, 1, 1]: brightness of the top-left 2x2 patch and of the rest, pulled to the nearest
    memory; a bare nn.Module with encode / decode and no probe import."""

    def __init__(self, beta=40.0):
        super().__init__()
        self.beta = beta
        mask = torch.zeros(1, 1, 8, 8)
        mask[..., :2, :2] = 1
        self.register_buffer("mask", mask)

    def encode(self, x):
        feats = torch.stack([(x * self.mask).sum((1, 2, 3)) / 4, (x * (1 - self.mask)).sum((1, 2, 3)) / 60], 1)
        w = torch.softmax(-self.beta * (feats[:, None] - MEMORIES).pow(2).sum(-1), dim=1)
        return (w @ MEMORIES)[:, :, None, None]

    def decode(self, z):
        return z[:, :1] * self.mask + z[:, 1:] * (1 - self.mask)


def build(beta=40.0):
    return PatchAE(beta)
'''


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "patch_models.py").write_text(textwrap.dedent(MODEL))
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    planted = set()
    for i in range(12):
        a = (rng.random((8, 8)) * 0.4 * 255).astype(np.uint8)
        if i % 3 == 0:
            a[:2, :2] = 255
            planted.add(f"scan{i:02d}.png")
        Image.fromarray(a).save(folder / f"scan{i:02d}.png")
    return tmp_path, folder, planted


def test_features_command_writes_gallery_csv_and_report(setup, capsys):
    tmp, folder, planted = setup
    out = tmp / "out"
    rc = main(["features", f"{tmp / 'patch_models.py'}:build", "--images", str(folder), "--feature", "0",
               "--image-size", "8", "--top-basins", "2", "--gallery", "4", "--model-arg", "beta=40",
               "--resize", "none", "--out", str(out), "--quiet"])
    assert rc == 0
    for name in ("features.png", "features.csv", "meta.json", "tensors.safetensors", "manifest.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "features.csv").open()))
    assert len(rows) == 12
    top = rows[0]["attractor"]
    assert {r["image"] for r in rows if r["attractor"] == top} == planted  # the planted scans, by file name
    assert float(rows[0]["attractor_activation"]) == pytest.approx(1.0, abs=1e-3)
    from probe.probes.features import FeatureReport
    from probe.result import load_result

    report = load_result(out)
    assert isinstance(report, FeatureReport) and report.config["field"]["tol"] == 1e-6
    # the same command again finds the finished result
    assert main(["features", f"{tmp / 'patch_models.py'}:build", "--images", str(folder), "--feature", "0",
                 "--image-size", "8", "--top-basins", "2", "--gallery", "4", "--model-arg", "beta=40",
                 "--resize", "none", "--out", str(out), "--json"]) == 0
    assert '"feature": 0' in capsys.readouterr().out


def test_features_errors_are_one_line(setup, capsys):
    tmp, folder, _ = setup
    rc = main(["features", f"{tmp / 'patch_models.py'}:build", "--images", str(folder), "--feature", "9",
               "--image-size", "8", "--out", str(tmp / "o2"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "feature 9 does not exist" in err and len(err.splitlines()) == 1
    rc = main(["features", f"{tmp / 'patch_models.py'}:missing", "--images", str(folder), "--out", str(tmp / "o3")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "has no function 'missing'" in err and len(err.splitlines()) == 1
