"""Models from code: FILE.py:factory / package.module:factory, and the errors a user can cause."""
from __future__ import annotations

import textwrap

import pytest
import torch

import probe
from probe import ProbeError
from probe.maps.code import parse_code_spec, parse_model_args

MODELS = '''
import torch
from torch import nn

import probe


class SpatialAE(nn.Module):
    """A conv AE with a spatial latent k x 4 x 4 on 1 x 16 x 16 images; says its own size."""
    image_size, image_channels = 16, 1

    def __init__(self, k=4):
        super().__init__()
        self.enc = nn.Conv2d(1, k, 4, 4)
        self.dec = nn.Sequential(nn.ConvTranspose2d(k, 1, 4, 4), nn.Sigmoid())

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)


class MnistVAE(nn.Module):
    """Flattens with view(-1, 784) and returns (mean, logvar), as most MNIST VAEs do."""

    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(784, 8), nn.Linear(4, 784)

    def encode(self, x):
        h = self.fc(x.view(-1, 784))
        return h[:, :4], h[:, 4:]

    def decode(self, z):
        return torch.sigmoid(self.out(z)).view(-1, 1, 28, 28)


def build(k=4):
    return SpatialAE(k)


def vae():
    return MnistVAE()


def pair():
    ae = SpatialAE(2)
    return ae.enc, ae.dec


def wrapped():
    ae = SpatialAE(3)
    return probe.wrap(ae.encode, ae.decode, (3, 4, 4), modules=[ae], name="mine")


def boom():
    raise RuntimeError("checkpoint missing")


def number():
    return 3
'''


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(textwrap.dedent(MODELS))
    return path


def test_parse_specs_and_model_args():
    assert parse_code_spec("dir/m.py:build") == ("dir/m.py", "build", True)
    assert parse_code_spec("pkg.mod:make_ae") == ("pkg.mod", "make_ae", False)
    for not_code in ("builtin:fmnist-k16", "owner/name", "./folder", "hf:cifar10:x/y", "m.py"):
        assert parse_code_spec(not_code) is None
    assert parse_model_args(["k=8", "lr=0.5", "gray=true", "name=ae", "none=null"]) == \
        {"k": 8, "lr": 0.5, "gray": True, "name": "ae", "none": None}
    with pytest.raises(ProbeError, match="key=value"):
        parse_model_args(["k8"])


def test_module_with_encode_decode(models):
    m = probe.load(f"{models}:build", model_args={"k": 3})
    assert m.latent_shape() == (3, 4, 4) and (m.image_channels, m.image_size) == (1, 16)
    assert m.field_defaults == {"tol": 1e-6, "max_steps": 3000}  # a fixed-size model: the small family
    z = m.encode(torch.rand(5, 3, 16, 16))  # RGB -> luminance, batch kept
    assert z.shape == (5, 3, 4, 4) and m.n_parameters() > 0
    assert m.fingerprint()["latent_shape"] == [3, 4, 4]


def test_flattening_vae_gets_gray_and_keeps_the_batch(models):
    m = probe.load(f"{models}:vae", image_size=28)
    assert m.image_channels == 1 and m.latent_shape() == (4,)  # 3 channels tried first: 3 latents per image
    for c in (1, 3):
        assert m.encode(torch.rand(4, c, 28, 28)).shape == (4, 4)  # the mean of (mean, logvar)


def test_pair_and_latent_map_results(models):
    m = probe.load(f"{models}:pair", image_size=8, channels=1)
    assert m.latent_shape() == (2, 2, 2) and m.decode(torch.zeros(1, 2, 2, 2)).shape == (1, 1, 8, 8)
    w = probe.load(f"{models}:wrapped")
    assert w.name == "mine" and w.latent_shape() == (3, 4, 4)


@pytest.mark.parametrize("spec, message", [
    ("{p}:nope", r"has no function 'nope'; it defines .*build"),
    ("{d}/absent.py:build", "no such file"),
    ("{p}:boom", r"boom\(\) raised RuntimeError: checkpoint missing"),
    ("{p}:number", "returned int; return a LatentMap"),
    ("{p}", "is Python code: name the function"),
    ("no_such_pkg_xyz.models:build", "no module named 'no_such_pkg_xyz'"),
])
def test_errors_are_one_line(models, spec, message):
    with pytest.raises(ProbeError, match=message) as e:
        probe.load(spec.format(p=models, d=models.parent), image_size=16)
    assert "\n" not in str(e.value)


def test_factory_without_size_and_weights_file(models, tmp_path):
    with pytest.raises(ProbeError, match="--image-size"):
        probe.load(f"{models}:vae")
    weights = tmp_path / "ae.pth"
    torch.save({}, weights)
    with pytest.raises(ProbeError, match=r"holds weights, not a model: write a function .* FILE.py:build") as e:
        probe.load(weights)
    assert "\n" not in str(e.value)


def test_a_module_object_loads_directly(models):
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_models_direct", models)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    m = probe.load(mod.build(2))
    assert m.latent_shape() == (2, 4, 4)
