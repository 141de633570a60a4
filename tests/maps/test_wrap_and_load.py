"""probe.wrap on plain callables, input checks at the boundary, and probe.load's dispatch errors."""
from __future__ import annotations

import pytest
import torch

import probe
from probe import ProbeError


def linear_map(scale=0.5):
    """E(x) = mean over pixels * scale, D(z) = constant image z: f(z) = scale * z, fixed point 0."""
    return probe.wrap(lambda x: x.mean((2, 3)) * scale, lambda z: z[:, :, None, None].expand(-1, -1, 8, 8),
                      latent_shape=(3,), name="linear")


def test_wrap_plain_callables():
    m = linear_map()
    x = torch.rand(4, 3, 8, 8)
    torch.testing.assert_close(m.encode(x), x.mean((2, 3)) * 0.5)
    z = torch.randn(4, 3)
    torch.testing.assert_close(m.f(z), 0.5 * z)  # known answer: f contracts by 1/2
    torch.testing.assert_close(m(z), m.f(z))
    assert m.latent_shape(64) == (3,) and m.n_parameters() == 0
    assert m.describe()["name"] == "linear"
    assert probe.load(m) is m  # an existing map passes through load


def test_wrap_resolution_dependent_shape_and_modules():
    conv = torch.nn.Conv2d(3, 2, 4, stride=4)
    up = torch.nn.ConvTranspose2d(2, 3, 4, stride=4)
    m = probe.wrap(conv, up, latent_shape=lambda r: (2, r // 4, r // 4), modules=[conv, up])
    assert m.latent_shape(32) == (2, 8, 8) and m.n_parameters() == sum(p.numel() for p in [*conv.parameters(), *up.parameters()])
    m = m.to(torch.float64)
    assert m.dtype == torch.float64 and m.encode(torch.rand(1, 3, 32, 32)).dtype == torch.float64


@pytest.mark.parametrize("bad, message", [
    (torch.rand(3, 8, 8), r"\[B, C, H, W\]"),
    (torch.rand(1, 4, 8, 8), "3 channels"),
    (torch.rand(1, 3, 8, 8) * 255, r"in \[0, 1\]"),
    ((torch.rand(1, 3, 8, 8) * 255).to(torch.uint8), "divide uint8 by 255"),
    (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
    ([[0.5]], "torch.Tensor"),
])
def test_bad_images_are_one_line_errors(bad, message):
    with pytest.raises(ProbeError, match=message) as e:
        linear_map().encode(bad)
    assert "\n" not in str(e.value)


def test_grayscale_and_fixed_size_maps():
    m = probe.wrap(lambda x: x.flatten(1), lambda z: z.view(-1, 1, 4, 4), latent_shape=(16,), image_channels=1,
                   image_size=4)
    rgb = torch.rand(2, 3, 4, 4)
    lum = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    torch.testing.assert_close(m.encode(rgb), lum.flatten(1))  # RGB is converted to luminance
    with pytest.raises(ProbeError, match="takes 4x4 images"):
        m.encode(torch.rand(1, 1, 8, 8))


def test_load_errors(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ProbeError, match="holds weights, not a model"):
        probe.load(tmp_path / "weights.bin")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ProbeError, match="is a file"):
        probe.load(tmp_path / "notes.txt")
    with pytest.raises(ProbeError, match="holds no model"):
        probe.load(tmp_path)
    with pytest.raises(ProbeError, match="unknown model"):
        probe.load("./no/such/dir")
    with pytest.raises(ProbeError, match="unknown dtype"):
        probe.load(linear_map(), dtype="fp8")


def test_wrap_family_settings():
    fixed = probe.wrap(lambda x: x.flatten(1), lambda z: z.view(-1, 1, 4, 4), (16,))
    assert (fixed.family, fixed.field_defaults) == ("small", {"tol": 1e-6, "max_steps": 3000})
    assert (fixed.image_channels, fixed.image_size) == (1, 4)  # found by decoding a zero latent
    conv = torch.nn.Conv2d(3, 2, 4, stride=4)
    free = probe.wrap(conv, torch.nn.ConvTranspose2d(2, 3, 4, stride=4), lambda r: (2, r // 4, r // 4))
    assert free.field_defaults == {"tol": 1e-5, "max_steps": 500} and free.image_size is None
    assert free.image_channels == 3
    big = probe.wrap(lambda x: x.flatten(1), lambda z: z.view(-1, 1, 4, 4), (16,), family="foundation")
    assert big.field_defaults == {"tol": 1e-5, "max_steps": 500}
    own = probe.wrap(lambda x: x.flatten(1), lambda z: z.view(-1, 1, 4, 4), (16,), field_defaults={"max_steps": 9})
    assert own.field_defaults == {"tol": 1e-6, "max_steps": 9}
    with pytest.raises(ProbeError, match="unknown model family"):
        probe.wrap(lambda x: x, lambda z: z, (3,), family="medium", check_inputs=False)


def test_wrap_never_changes_the_batch_size():
    m = probe.wrap(lambda x: x.reshape(-1, 16), lambda z: z.view(-1, 1, 4, 4), (16,))  # a view(-1, 784) encoder
    assert m.image_channels == 1
    for c in (1, 3):
        assert m.encode(torch.rand(5, c, 4, 4)).shape == (5, 16)
    rgb = probe.wrap(lambda x: x.reshape(-1, 16), lambda z: z.view(-1, 1, 4, 4), (16,), image_channels=3)
    with pytest.raises(ProbeError, match="returned 15 latents for 5 images") as e:
        rgb.encode(torch.rand(5, 3, 4, 4))
    assert "\n" not in str(e.value)
    with pytest.raises(ProbeError, match="must have 1 channel"):
        m.encode(torch.rand(5, 2, 4, 4))


def test_wrap_finds_the_latent_shape_from_a_blank_image():
    m = probe.wrap(lambda x: x.flatten(1)[:, :5], lambda z: z.new_zeros(len(z), 1, 4, 4), None, image_size=4)
    assert m.latent_shape() == (5,) and m.image_channels == 1  # the channels the decoder returns
    with pytest.raises(ProbeError, match="latent_shape, or image_size"):
        probe.wrap(lambda x: x, lambda z: z)
