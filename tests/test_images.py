"""Sample photos, metrics with known answers, and image grids."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from probe import ProbeError
from probe.images import (
    PHOTOS,
    grid,
    load_image,
    luminance,
    mse,
    psnr,
    sample_photo,
    sample_photos,
    save_grid,
    square,
    to_pil,
)


def test_sample_photo_is_the_real_china_jpg():
    from sklearn.datasets import load_sample_image

    x = sample_photo(64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.1  # a photo, not a flat image
    # same pixels as a center crop + Lanczos resize of the original, done here by hand
    a = load_sample_image("china.jpg")
    h, w, _ = a.shape
    s = min(h, w)
    crop = Image.fromarray(a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]).resize((64, 64), Image.Resampling.LANCZOS)
    torch.testing.assert_close(x[0], torch.from_numpy(np.array(crop)).permute(2, 0, 1).float() / 255)


def test_sample_photos_are_distinct():
    xs = sample_photos(len(PHOTOS), 32)
    assert xs.shape == (len(PHOTOS), 3, 32, 32)
    flat = xs.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(len(PHOTOS)) * 1e9).min() > 1  # no two alike
    with pytest.raises(ProbeError, match="asked for"):
        sample_photos(len(PHOTOS) + 1)


def test_metrics_known_answers():
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 20 dB
    y[1, :, :2] += 0.5  # half the pixels off by 0.5: MSE 0.125
    torch.testing.assert_close(mse(x, y), torch.tensor([0.01, 0.125]))
    torch.testing.assert_close(psnr(x, y), torch.tensor([20.0, -10 * math.log10(0.125)]))
    torch.testing.assert_close(psnr(x * 255, y * 255, data_range=255.0), psnr(x, y))
    assert psnr(x, x)[0] == float("inf")
    with pytest.raises(ProbeError, match="differ in shape"):
        psnr(x, y[:1])


def test_luminance_and_square():
    x = torch.rand(1, 3, 5, 5)
    torch.testing.assert_close(luminance(x)[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    gray = np.tile(np.arange(8, dtype=np.uint8)[None], (4, 1)) * 30  # 4x8 ramp -> centre 4x4, to RGB
    s = square(gray, 4)
    assert s.shape == (1, 3, 4, 4)
    torch.testing.assert_close(s[0, 0, 0], torch.tensor([60.0, 90, 120, 150]) / 255)


def test_grid_and_round_trip_through_png(tmp_path):
    imgs = torch.rand(5, 3, 16, 16)
    path = save_grid(imgs, tmp_path / "g.png", nrow=3, labels=list("abcde"))
    back = load_image(path)
    assert back.shape == (1, 3, 2 * (16 + 12 + 2) + 2, 3 * (16 + 2) + 2)
    # the first tile is the first image, up to 8-bit rounding
    torch.testing.assert_close(back[0, :, 2:18, 2:18], imgs[0], atol=1 / 255, rtol=0)
    assert to_pil(imgs[:1, :1]).mode == "L"
    assert grid(imgs, nrow=8).size == (5 * 18 + 2, 18 + 2)
    with pytest.raises(ProbeError, match="labels"):
        grid(imgs, labels=["a"])
    with pytest.raises(ProbeError, match="cannot read image"):
        load_image(tmp_path / "missing.png")


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "lanczos", "nearest"])
def test_resize_methods_keep_dtype_range_and_batch(method):
    from probe.images import resize

    x = torch.rand(3, 1, 12, 12)
    y = resize(x, 6, method)
    assert y.shape == (3, 1, 6, 6) and y.dtype == torch.float32
    assert -0.1 <= float(y.min()) and float(y.max()) <= 1.1  # bicubic / Lanczos overshoot a little, unclipped
    u = resize((x * 255).round().to(torch.uint8), 6, method)
    assert u.dtype == torch.uint8
    torch.testing.assert_close(u.float() / 255, y.clamp(0, 1), atol=2 / 255, rtol=0)  # uint8: rounding, clipping
    flat = torch.full((2, 3, 9, 9), 0.25)
    torch.testing.assert_close(resize(flat, (4, 5), method), torch.full((2, 3, 4, 5), 0.25), atol=1e-6, rtol=0)


def test_float_resize_keeps_the_gradient():
    from probe.images import resize

    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    resize(x, 4, "bilinear").sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_resize_nearest_upscale_and_none():
    from probe.images import resize

    x = torch.arange(4.0).view(1, 1, 2, 2) / 4
    assert torch.equal(resize(x, 4, "nearest")[0, 0, :2, :2], torch.full((2, 2), 0.0))
    assert resize(x, 2, "none") is not None  # the right size passes
    with pytest.raises(ProbeError, match="resize is 'none'"):
        resize(x, 4, "none")
    with pytest.raises(ProbeError, match="unknown resize 'area'"):
        resize(x, 4, "area")


def test_one_rgb_to_gray_rule():
    from probe.images import LUMA, to_channels

    x = torch.rand(4, 3, 2, 2)
    assert to_channels(x, 1).shape == (4, 1, 2, 2) and to_channels(x[:, :1], 3).shape == (4, 3, 2, 2)
    u = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(to_channels(u, 1).float(), (u.float() * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True).round())
    with pytest.raises(ProbeError, match="must have 3 channels"):
        to_channels(torch.rand(4, 2, 2, 2), 3)
