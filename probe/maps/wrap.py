"""Any pair of tensor callables as a :class:`LatentMap` (:func:`wrap`).

What is not given is found by calling the model once on a blank input: the latent
shape by encoding a blank image, the image channels and size by decoding a zero
latent. The batch size is checked on every call, so an encoder that flattens with
``x.view(-1, 784)`` fails in one line instead of returning three latents per image.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch._C._nn import _parse_to  # what nn.Module.to itself uses to read its arguments

from ..errors import ProbeError
from .base import LatentMap, family_settings

#: Resolution at which a resolution-free map (latent shape a function of the size) is probed.
PROBE_RESOLUTION = 64


def first_tensor(out, what: str = "encoder"):
    """The tensor a model returns: itself, the first of a tuple (a VAE's ``(mean, logvar)``),
    a diffusers output's ``latent_dist.mean`` / ``latents`` / ``sample``."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    dist = getattr(out, "latent_dist", None)
    if dist is not None and isinstance(getattr(dist, "mean", None), Tensor):
        return dist.mean
    for key in ("latents", "sample", "mean"):
        if isinstance(getattr(out, key, None), Tensor):
            return getattr(out, key)
    raise ProbeError(f"the {what} returned {type(out).__name__}, not a tensor (or a tuple starting with one)")


class CallableMap(LatentMap):
    """A latent map from any pair of tensor callables (see :func:`wrap`)."""

    def __init__(self, encode: Callable[[Tensor], Tensor], decode: Callable[[Tensor], Tensor],
                 latent_shape: Sequence[int] | Callable[[int], Sequence[int]], image_channels: int = 3,
                 image_size: int | None = None, name: str = "wrapped", modules: Sequence[nn.Module] = (),
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, check_inputs: bool = True,
                 field_defaults: dict | None = None, family: str | None = None):
        super().__init__()
        self._enc, self._dec = encode, decode
        self._latent_shape = latent_shape
        self.image_channels, self.image_size, self.name = image_channels, image_size, name
        self.check_inputs = check_inputs
        self.family = family or "foundation"
        self.field_defaults = family_settings(self.family, field_defaults)
        self.inner = nn.ModuleList([m for m in modules if isinstance(m, nn.Module)])
        self._device, self._dtype = torch.device(device), dtype

    def _encode(self, x: Tensor) -> Tensor:
        z = first_tensor(self._enc(x), "encoder")
        if self.check_inputs and z.shape[0] != x.shape[0]:
            raise ProbeError(f"{self.name}: the encoder returned {z.shape[0]} latents for {x.shape[0]} images "
                             f"of shape {tuple(x.shape[1:])} (does it reshape with view(-1, ...)? give "
                             f"image_channels / --channels to match the model)")
        return z

    def _decode(self, z: Tensor) -> Tensor:
        return first_tensor(self._dec(z), "decoder")

    def check_images(self, x: Tensor) -> Tensor:
        return super().check_images(x) if self.check_inputs else x

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        s = self._latent_shape(resolution or self.default_resolution()) if callable(self._latent_shape) else self._latent_shape
        return tuple(int(v) for v in s)

    def describe(self) -> dict:
        return {**super().describe(), "family": self.family}

    def to(self, *args, **kwargs):  # remember device/dtype for parameter-free callables
        out = super().to(*args, **kwargs)
        dev, dt, *_ = _parse_to(*args, **kwargs)
        if dev is not None:
            self._device = torch.device(dev)
        if dt is not None:
            self._dtype = dt
        return out


def _one_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


@torch.no_grad()
def _encode_blank(encode, channels: int, size: int, device, dtype) -> tuple[int, ...]:
    x = torch.zeros(2, channels, size, size, device=device, dtype=dtype)
    z = first_tensor(encode(x), "encoder")
    if z.shape[0] != 2:
        raise ValueError(f"{z.shape[0]} latents for 2 images")
    return tuple(int(v) for v in z.shape[1:])


def infer_latent_shape(encode, image_size: int, channels: int | None, device, dtype,
                       decode=None) -> tuple[tuple[int, ...], int]:
    """(latent shape, channels) from encoding a blank image. Unknown channels: those of the image
    that ``decode`` returns, else the first of 3, 1 that the encoder takes without changing the batch."""
    tried, found = [], []
    for c in ([channels] if channels else [3, 1]):
        try:
            found.append((_encode_blank(encode, c, image_size, device, dtype), c))
        except Exception as e:  # noqa: BLE001 - the user's model may raise anything on the wrong input
            tried.append(f"{c} channel{'s' * (c != 1)}: {type(e).__name__}: {_one_line(e)}")
    if not found:
        raise ProbeError(f"encoding a blank {image_size}x{image_size} image failed ({'; '.join(tried)}); "
                         f"give image_size / channels (--image-size, --channels) that the model takes")
    if len(found) > 1 and decode is not None:
        for shape, c in found:
            image = infer_image(decode, shape, device, dtype)
            if image is not None and image[0] == c:
                return shape, c
    return found[0]


@torch.no_grad()
def infer_image(decode, latent_shape: Sequence[int], device, dtype) -> tuple[int, int | None] | None:
    """(channels, size or None when not square) of the image decoded from a zero latent, or None."""
    try:
        y = first_tensor(decode(torch.zeros(2, *latent_shape, device=device, dtype=dtype)), "decoder")
    except Exception:  # noqa: BLE001 - inference is a convenience; the explicit arguments still work
        return None
    if y.dim() != 4 or y.shape[0] != 2:
        return None
    return int(y.shape[1]), int(y.shape[2]) if y.shape[2] == y.shape[3] else None


def wrap(encode: Callable[[Tensor], Tensor], decode: Callable[[Tensor], Tensor],
         latent_shape: Sequence[int] | Callable[[int], Sequence[int]] | None = None, *,
         image_channels: int | None = None, image_size: int | None = None, family: str | None = None,
         field_defaults: dict | None = None, **options) -> CallableMap:
    """Turn any pair of tensor callables into a :class:`LatentMap`.

    ``latent_shape``: the shape of one latent, a function of the resolution, or None to find it
    by encoding a blank ``image_size`` image. ``image_channels`` / ``image_size``: found by
    decoding a zero latent when not given (3 channels and any size when that is not possible).
    ``family``: the iteration settings, ``"small"`` (tol 1e-6 / 3000 steps, the paper's small conv
    autoencoders) or ``"foundation"`` (1e-5 / 500); default ``"small"`` when the latent shape is
    fixed and the inputs are images (fixed-size models), ``"foundation"`` when the latent shape
    is a function of the resolution (fully convolutional models such as SD VAEs) or the inputs
    are not images (``check_inputs=False``). ``field_defaults={"tol": ..., "max_steps": ...}``
    overrides either. Other options: ``name``, ``modules`` (nn.Modules to move with ``.to()``),
    ``device``, ``dtype``, ``check_inputs`` (False for maps whose "images" are not images).
    """
    device, dtype = torch.device(options.get("device", "cpu")), options.get("dtype", torch.float32)
    check = options.get("check_inputs", True)
    if latent_shape is None:
        if image_size is None:
            raise ProbeError("wrap needs latent_shape, or image_size to find it by encoding a blank image")
        latent_shape, image_channels = infer_latent_shape(encode, image_size, image_channels, device, dtype, decode)
    if check and (image_channels is None or (image_size is None and not callable(latent_shape))):
        shape = latent_shape(PROBE_RESOLUTION) if callable(latent_shape) else latent_shape
        found = infer_image(decode, shape, device, dtype)
        if found is not None:
            image_channels = image_channels or found[0]
            if not callable(latent_shape) and image_size is None:
                image_size = found[1]
    if image_channels is not None and image_channels < 1:
        raise ProbeError(f"image_channels must be >= 1, got {image_channels}")
    if family is None:
        family = "small" if check and not callable(latent_shape) else "foundation"
    return CallableMap(encode, decode, latent_shape, image_channels=image_channels or 3, image_size=image_size,
                       family=family, field_defaults=field_defaults, **options)
