"""Real photos that ship with installed packages, image metrics, and image grids.

Tensors here follow the :class:`~probe.maps.base.LatentMap` boundary: float
``[B, C, H, W]`` in ``[0, 1]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import ProbeError

#: Colour photos available offline, in a fixed order: scikit-learn's two sample
#: images first, then scikit-image's bundled data (no download needed).
PHOTOS = ("sklearn:china.jpg", "sklearn:flower.jpg", "skimage:astronaut", "skimage:coffee", "skimage:chelsea",
          "skimage:rocket", "skimage:hubble_deep_field", "skimage:immunohistochemistry", "skimage:retina",
          "skimage:colorwheel")


def _photo_array(name: str) -> np.ndarray:
    source, key = name.split(":", 1)
    if source == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(key)
    import skimage.data

    return getattr(skimage.data, key)()


def square(image, resolution: int) -> Tensor:
    """Center-crop a PIL image or ``[H, W(, C)]`` uint8 array to a square and resize it
    (PIL Lanczos) to ``[1, 3, R, R]`` in [0, 1]; grayscale is repeated to RGB."""
    from PIL import Image

    if resolution < 1:
        raise ProbeError(f"resolution must be positive, got {resolution}")
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s)).resize((resolution, resolution), Image.LANCZOS)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255


def sample_photo(resolution: int = 256) -> Tensor:
    """A real photo (scikit-learn's ``china.jpg``) as ``[1, 3, R, R]`` in [0, 1]."""
    return square(_photo_array(PHOTOS[0]), resolution)


def sample_photos(n: int = 4, resolution: int = 256) -> Tensor:
    """The first ``n`` of :data:`PHOTOS` as ``[n, 3, R, R]`` in [0, 1]."""
    if not 1 <= n <= len(PHOTOS):
        raise ProbeError(f"sample_photos has {len(PHOTOS)} photos, asked for {n}")
    return torch.cat([square(_photo_array(p), resolution) for p in PHOTOS[:n]])


def load_image(path: str | Path, resolution: int | None = None) -> Tensor:
    """An image file as ``[1, 3, H, W]`` in [0, 1] (center-cropped and resized if ``resolution``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise ProbeError(f"cannot read image {path}: {e}") from e
    if resolution is not None:
        return square(img, resolution)
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)[None].float() / 255


def luminance(x: Tensor) -> Tensor:
    """RGB ``[B, 3, H, W]`` -> ``[B, 1, H, W]`` with the same weights as grayscale maps use."""
    from .maps.base import LUMA

    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


# -- metrics -----------------------------------------------------------------
def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.shape != y.shape:
        raise ProbeError(f"images to compare differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() < 2:
        raise ProbeError(f"images need a batch dimension, got shape {tuple(x.shape)}")
    return x.detach().float(), y.detach().float().to(x.device)


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Per-sample mean squared error, shape ``[B]``."""
    x, y = _pair(x, y)
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-sample peak signal-to-noise ratio in dB, shape ``[B]`` (inf for identical images)."""
    return 10 * torch.log10(data_range ** 2 / mse(x, y))


# -- pictures ----------------------------------------------------------------
def to_pil(image: Tensor):
    """``[C, H, W]`` or ``[1, C, H, W]`` in [0, 1] (clipped) -> PIL image."""
    from PIL import Image

    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ProbeError(f"to_pil takes one [C, H, W] image with 1 or 3 channels, got {tuple(image.shape)}")
    a = (image.detach().float().clamp(0, 1) * 255).round().byte().cpu().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(a[..., 0] if a.shape[-1] == 1 else a))


def grid(images: Tensor | Sequence[Tensor], nrow: int = 8, labels: Sequence[str] | None = None, pad: int = 2):
    """Tile images into one PIL image, ``nrow`` per row, with an optional caption under each."""
    from PIL import Image, ImageDraw

    imgs = list(images) if not isinstance(images, Tensor) or images.dim() == 4 else [images]
    if not imgs:
        raise ProbeError("no images to put in a grid")
    if labels is not None and len(labels) != len(imgs):
        raise ProbeError(f"{len(labels)} labels for {len(imgs)} images")
    tiles = [to_pil(t).convert("RGB") for t in imgs]
    w, h = tiles[0].size
    tiles = [t if t.size == (w, h) else t.resize((w, h), Image.NEAREST) for t in tiles]
    cap = 12 if labels else 0  # the default PIL font is about 11 px high
    ncol = max(1, min(nrow, len(tiles)))
    nrows = (len(tiles) + ncol - 1) // ncol
    canvas = Image.new("RGB", (ncol * (w + pad) + pad, nrows * (h + cap + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for i, t in enumerate(tiles):
        x0, y0 = pad + (i % ncol) * (w + pad), pad + (i // ncol) * (h + cap + pad)
        canvas.paste(t, (x0, y0))
        if labels:
            text = str(labels[i])
            while len(text) > 1 and draw.textlength(text) > w:  # keep captions inside their tile
                text = text[:-1]
            draw.text((x0, y0 + h), text, fill="black")
    return canvas


def save_grid(images: Tensor | Sequence[Tensor], path: str | Path, nrow: int = 8,
              labels: Sequence[str] | None = None) -> Path:
    """Write :func:`grid` as a PNG at ``path`` (atomically); returns the path."""
    from .io import _atomic_write

    path = Path(path)
    img = grid(images, nrow=nrow, labels=labels)
    _atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return path
