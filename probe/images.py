"""Every image conversion in one place: channels (luminance), resizing, metrics, grids,
and the real photos that ship with installed packages.

Tensors here follow the :class:`~probe.maps.base.LatentMap` boundary: float
``[B, C, H, W]`` in ``[0, 1]``; :func:`to_channels` and :func:`resize` also take uint8.
This module imports nothing else from probe (maps/ and data/ both build on it).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import ProbeError

#: ITU-R 601 luma weights: the one RGB -> gray rule (grayscale maps, image sets, comparisons).
LUMA = (0.299, 0.587, 0.114)
#: How images are resampled: torch's antialiased bilinear (torchvision's default), bicubic,
#: nearest, PIL's Lanczos, or ``none`` (never resample: the size must already be right).
RESIZE_METHODS = ("bilinear", "bicubic", "lanczos", "nearest", "none")
RESIZE_HELP = ("how images are resampled to the model's size: bilinear (antialiased, torchvision's default), "
               "bicubic, lanczos, nearest, or none (images must already have the size)")

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


# -- conversions ---------------------------------------------------------------
def luminance(x: Tensor) -> Tensor:
    """RGB ``[B, 3, H, W]`` -> ``[B, 1, H, W]`` by :data:`LUMA` (float in, float out; 1 channel passes)."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ProbeError(f"luminance takes 1 or 3 channels, got shape {tuple(x.shape)}")
    w = torch.tensor(LUMA, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
    return (x.to(w.dtype) * w.view(1, 3, 1, 1)).sum(1, keepdim=True)


def to_channels(x: Tensor, channels: int, what: str = "images") -> Tensor:
    """``[B, C, H, W]`` with C in {1, 3} -> ``channels``: 3 -> 1 by luminance, 1 -> 3 repeated.

    The batch size never changes; any other mismatch is an error. uint8 stays uint8 (rounded).
    """
    if x.dim() != 4:
        raise ProbeError(f"{what} must be [B, C, H, W], got shape {tuple(x.shape)}")
    c = int(x.shape[1])
    if c == channels:
        return x
    if (c, channels) == (1, 3):
        return x.expand(-1, 3, -1, -1)
    if (c, channels) == (3, 1):
        y = luminance(x)
        return y if x.is_floating_point() else y.round_().clamp_(0, 255).to(x.dtype)
    raise ProbeError(f"{what} must have {channels} channel{'s' * (channels != 1)} (or 1/3, converted), got {c} "
                     f"(shape {tuple(x.shape)})")


def crop_square(x: Tensor) -> Tensor:
    """The centre square of ``[..., H, W]``."""
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[..., top:top + s, left:left + s]


def check_resize(method: str) -> str:
    if method not in RESIZE_METHODS:
        raise ProbeError(f"unknown resize {method!r}; choose one of {', '.join(RESIZE_METHODS)}")
    return method


def resize(x: Tensor, size: int | tuple[int, int], method: str = "bilinear") -> Tensor:
    """``[B, C, H, W]`` (uint8, or float in [0, 1]) -> ``[B, C, *size]`` with ``method``
    (:data:`RESIZE_METHODS`); the dtype is kept. ``none`` only checks that the size is right.
    Float images keep their device and gradient (except ``lanczos``, done by PIL) and are not
    clipped (bicubic and Lanczos may overshoot [0, 1] a little; uint8 is rounded and clipped)."""
    check_resize(method)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if min(h, w) < 1:
        raise ProbeError(f"resize needs a positive size, got {size!r}")
    if tuple(x.shape[-2:]) == (h, w):
        return x.contiguous()
    if method == "none":
        raise ProbeError(f"images are {x.shape[-2]}x{x.shape[-1]} px, the model takes {h}x{w}, and resize is "
                         f"'none'; choose bilinear, bicubic, lanczos or nearest")
    if method == "lanczos":
        return _lanczos(x, h, w)
    kw = {} if method == "nearest" else {"align_corners": False, "antialias": True}
    if x.is_floating_point():  # differentiable (the field takes Jacobians through an encoder's resize)
        return torch.nn.functional.interpolate(x, size=(h, w), mode=method, **kw)  # bicubic may overshoot [0, 1]
    out = torch.empty((*x.shape[:2], h, w), dtype=x.dtype)
    big = max(h, x.shape[-2]) * max(w, x.shape[-1]) * max(1, x.shape[1])
    step = max(1, 2 ** 24 // big)  # uint8 sets: about 64 MB of floats at a time
    for i in range(0, len(x), step):
        y = torch.nn.functional.interpolate(x[i:i + step].float(), size=(h, w), mode=method, **kw)
        out[i:i + step] = y.round_().clamp_(0, 255).to(x.dtype)
    return out


def _lanczos(x: Tensor, h: int, w: int) -> Tensor:
    from PIL import Image

    floating = x.is_floating_point()
    a = x.detach().cpu().float().numpy() if floating else x.cpu().numpy()
    out = np.empty((*a.shape[:2], h, w), dtype=np.float32 if floating else np.uint8)
    for i in range(a.shape[0]):
        for c in range(a.shape[1]):  # per channel: PIL resizes float images ('F') only one channel at a time
            img = Image.fromarray(a[i, c])
            out[i, c] = np.asarray(img.resize((w, h), Image.Resampling.LANCZOS))
    t = torch.from_numpy(out)
    return t.clamp_(0, 1).to(x.dtype) if floating else t


def square(image, resolution: int, method: str = "lanczos") -> Tensor:
    """Center-crop a PIL image or ``[H, W(, C)]`` uint8 array to a square and resize it to
    ``[1, 3, R, R]`` in [0, 1]; grayscale is repeated to RGB. ``method`` defaults to Lanczos
    here because the sample photos of the benchmarks were measured so."""
    if resolution < 1:
        raise ProbeError(f"resolution must be positive, got {resolution}")
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    x = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)[None]
    return resize(crop_square(x), resolution, method).float() / 255


def sample_photo(resolution: int = 256) -> Tensor:
    """A real photo (scikit-learn's ``china.jpg``) as ``[1, 3, R, R]`` in [0, 1]."""
    return square(_photo_array(PHOTOS[0]), resolution)


def sample_photos(n: int = 4, resolution: int = 256) -> Tensor:
    """The first ``n`` of :data:`PHOTOS` as ``[n, 3, R, R]`` in [0, 1]."""
    if not 1 <= n <= len(PHOTOS):
        raise ProbeError(f"sample_photos has {len(PHOTOS)} photos, asked for {n}")
    return torch.cat([square(_photo_array(p), resolution) for p in PHOTOS[:n]])


def load_image(path: str | Path, resolution: int | None = None, resize: str = "bilinear") -> Tensor:
    """An image file as ``[1, 3, H, W]`` in [0, 1] (center-cropped and resized if ``resolution``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise ProbeError(f"cannot read image {path}: {e}") from e
    if resolution is not None:
        return square(img, resolution, resize)
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)[None].float() / 255


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
    tiles = [t if t.size == (w, h) else t.resize((w, h), Image.Resampling.NEAREST) for t in tiles]
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
    from .files import atomic_write

    path = Path(path)
    img = grid(images, nrow=nrow, labels=labels)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return path
