"""A model defined in the user's own .py file goes through every command by FILE.py:factory, both as
a ``probe.wrap`` result and as a bare ``nn.Module`` with encode / decode (issue: bring your own model)."""
from __future__ import annotations

import numpy as np
import pytest

from probe.cli.main import main

MODELS = '''
import torch
from torch import nn

import probe


class AE(nn.Module):
    image_size, image_channels = 16, 1

    def __init__(self, k=4):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(256, k))
        self.dec = nn.Sequential(nn.Linear(k, 256), nn.Sigmoid(), nn.Unflatten(1, (1, 16, 16)))
        with torch.no_grad():  # a contraction: f(z) = E(D(z)) has fixed points
            self.enc[1].weight.mul_(0.05)

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)


def module(k=4):
    return AE(k)


def wrapped(k=4):
    ae = AE(k)
    return probe.wrap(ae.encode, ae.decode, (k,), modules=[ae], image_size=16, image_channels=1, family="small")
'''


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    (root / "my_models.py").write_text(MODELS)
    rng = np.random.default_rng(0)
    smooth = rng.integers(60, 120, size=(40, 16, 16), dtype=np.uint8)
    noisy = rng.integers(0, 256, size=(40, 16, 16), dtype=np.uint8)
    np.savez(root / "in.npz", images=smooth)
    np.savez(root / "out.npz", images=noisy)
    return root


def _argv(command: str, spec: str, root) -> list[str]:
    d, o = str(root / "in.npz"), str(root / "out.npz")
    short = ["--max-steps", "60", "--quiet"]
    return {
        "info": ["info", spec],
        "run": ["run", spec, "--seeds", "8", *short],
        "dictionary": ["dictionary", spec, "--datasets", d, "--seeds", "16", "--n-images", "20", "--pca-images", "20",
                       *short],
        "basins": ["basins", spec, "--images", d, "--n-images", "20", *short],
        "features": ["features", spec, "--images", d, "--n-images", "20", "--feature", "0", *short],
        "ood": ["ood", spec, "--train", d, "--test-in", d, "--test-out", o, "--n-train", "20", "--n-test", "20", "--knn-k", "5",
                *short],
        "compare": ["compare", spec, spec.replace("module", "wrapped") if "module" in spec else
                    spec.replace("wrapped", "module"), "--seeds", "8", *short],
    }[command]


@pytest.mark.parametrize("factory", ["module", "wrapped"])
@pytest.mark.parametrize("command", ["info", "run", "dictionary", "basins", "features", "ood", "compare"])
def test_every_command_takes_a_model_from_a_python_file(command, factory, place, monkeypatch, capsys):
    monkeypatch.chdir(place)
    spec = f"my_models.py:{factory}"
    out = place / "out" / f"{command}-{factory}"
    argv = _argv(command, spec, place) + ([] if command == "info" else ["--out", str(out)])
    assert main(argv) == 0, capsys.readouterr().err[-2000:]
    if command != "info":
        assert (out / "settings.json").is_file() or any(out.iterdir())
