"""ImageSet transforms: subsets, channels, resizing, batches (synthetic images with known answers)."""
import numpy as np
import pytest
import torch

from probe import ProbeError
from probe.data import ImageSet, subset_indices
from probe.data.imageset import as_nchw


def make(n=10, c=3, h=6, w=6):
    imgs = torch.arange(n * c * h * w, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, c, h, w)
    return ImageSet(imgs, torch.arange(n) % 3, ["a", "b", "c"], name="toy", source="test", split="test")


def test_subset_is_the_documented_permutation_and_deterministic():
    s = make(20)
    a, b = s.subset(7, seed=3), s.subset(7, seed=3)
    want = np.random.default_rng(3).permutation(20)[:7]
    assert a.indices is not None and b.indices is not None and a.labels is not None and s.labels is not None
    assert a.indices.tolist() == want.tolist() == b.indices.tolist()
    assert torch.equal(a.images, s.images[torch.from_numpy(want)])
    assert torch.equal(a.labels, s.labels[torch.from_numpy(want)])
    other = s.subset(7, seed=4).indices
    assert other is not None and other.tolist() != want.tolist()
    assert a.describe()["ops"] == ["subset(n=7, seed=3)"]
    # a subset of a subset still names positions in the original set
    nested = a.subset(3, seed=0).indices
    assert nested is not None and nested.tolist() == want[np.random.default_rng(0).permutation(7)[:3]].tolist()


def test_subset_larger_than_set_is_an_error():
    with pytest.raises(ProbeError, match="only 10"):
        make(10).subset(11)
    with pytest.raises(ProbeError, match="positive"):
        subset_indices(10, 0)


def test_float_and_batches_cover_the_set_in_unit_range():
    s = make(10)
    x = s.float()
    assert x.dtype == torch.float32 and x.shape == (10, 3, 6, 6)
    assert torch.allclose(x * 255, s.images.float())
    parts = list(s.batches(4))
    assert [len(p) for p in parts] == [4, 4, 2]
    assert torch.equal(torch.cat(parts), x)
    assert next(s.batches(4, dtype=torch.float64)).dtype == torch.float64


def test_channels_luminance_and_gray_to_rgb():
    rgb = torch.zeros(3, 3, 2, 2, dtype=torch.uint8)
    rgb[0, 0], rgb[1, 1], rgb[2, 2] = 255, 255, 255  # pure red, green, blue
    gray = ImageSet(rgb).to_channels(1)
    assert gray.images.shape == (3, 1, 2, 2)
    assert gray.images[:, 0, 0, 0].tolist() == [76, 150, 29]  # round(255 * 0.299 / 0.587 / 0.114)
    back = gray.to_channels(3)
    assert back.images.shape == (3, 3, 2, 2) and torch.equal(back.images[:, 0], back.images[:, 2])
    with pytest.raises(ProbeError, match="1 or 3"):
        gray.to_channels(2)


@pytest.mark.parametrize("filter", ["lanczos", "bilinear"])
def test_resize_center_crops_before_resizing(filter):
    img = torch.zeros(1, 3, 30, 50, dtype=torch.uint8)
    img[..., 10:40] = 200  # the centred 30x30 square is flat; the side bands are black
    s = ImageSet(img)
    crop = s.resize(16, filter=filter)
    assert crop.images.shape == (1, 3, 16, 16)
    assert crop.images.min() == 200 and crop.images.max() == 200
    stretch = s.resize(16, mode="stretch", filter=filter)
    assert stretch.images[..., 0].max() < 100  # the black bands survive when stretched
    assert crop.describe()["height"] == 16 and "resize(16" in crop.ops[-1]
    with pytest.raises(ProbeError, match="mode"):
        s.resize(16, mode="pad")


def test_resize_downscale_keeps_mean_of_smooth_image():
    ramp = torch.linspace(0, 255, 64).round().to(torch.uint8).expand(1, 1, 64, 64).contiguous()
    small = ImageSet(ramp).resize(16)
    assert abs(small.images.float().mean() - ramp.float().mean()) < 1.5
    assert (small.images[0, 0, 0, 1:].int() - small.images[0, 0, 0, :-1].int()).min() >= 0  # still a ramp


def test_layouts_and_bad_images():
    nhwc = np.random.default_rng(0).integers(0, 256, (4, 5, 7, 3), dtype=np.uint8)
    assert torch.equal(as_nchw(nhwc), torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    assert as_nchw(nhwc.transpose(0, 3, 1, 2)).shape == (4, 3, 5, 7)
    assert as_nchw(nhwc[..., 0]).shape == (4, 1, 5, 7)
    assert as_nchw(np.ones((2, 4, 4, 4), np.uint8)).shape == (2, 3, 4, 4)  # RGBA: alpha dropped
    assert as_nchw(np.full((1, 2, 2), 0.5)).unique().tolist() == [128]
    with pytest.raises(ProbeError, match=r"\[0, 1\]"):
        as_nchw(np.full((1, 2, 2), 2.0))
    with pytest.raises(ProbeError, match="uint8"):
        ImageSet(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ProbeError, match="labels"):
        ImageSet(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), labels=torch.arange(3))


def test_describe_records_what_a_result_needs():
    d = make(10).subset(4).to_channels(1).resize(3).describe()
    assert d == {"name": "toy", "source": "test", "split": "test", "n": 4, "channels": 1, "height": 3, "width": 3,
                 "labels": True, "classes": ["a", "b", "c"],
                 "ops": ["subset(n=4, seed=0)", "to_channels(1)", "resize(3, mode=center-crop, filter=bilinear)"]}


def test_save_npz_round_trips_through_load_images(tmp_path):
    from probe.data import load_images

    s = make(10).subset(5, seed=1)
    back = load_images(s.save(tmp_path / "part.npz"))
    assert back.labels is not None and s.labels is not None
    assert torch.equal(back.images, s.images) and torch.equal(back.labels, s.labels) and back.classes == s.classes
    assert "subset(n=5, seed=1)" in back.source
    with pytest.raises(ProbeError, match=".npz"):
        s.save(tmp_path / "part.pt")


def test_batches_land_on_the_requested_device(device):
    x = next(make(6).batches(4, device=device))
    assert x.device.type == torch.device(device).type and x.shape == (4, 3, 6, 6)
