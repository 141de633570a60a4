"""The one core protocol: a latent map.

Every model family is an adapter to :class:`LatentMap`; iteration, attractors,
sparse coding, OOD and comparison only ever see ``encode`` / ``decode`` and the
latent shape.

Convention at the public boundary: images are float tensors ``[B, C, H, W]`` in
``[0, 1]`` with ``C = image_channels`` (3 for every RGB model; the paper's
grayscale conv autoencoders use 1 and also accept RGB, converted to luminance).
Each adapter converts to its model's own convention internally.
"""
from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn

from ..errors import ProbeError
from ..images import LUMA, to_channels  # noqa: F401  (LUMA re-exported for old imports)

#: The paper's iteration settings per model family (METHOD.md section 1). Their home is
#: here (maps/ sits below field/); ``probe.field.config`` reads them.
FOUNDATION_DEFAULTS = {"tol": 1e-5, "max_steps": 500}
SMALL_AE_DEFAULTS = {"tol": 1e-6, "max_steps": 3000}
FAMILIES = {"foundation": FOUNDATION_DEFAULTS, "small": SMALL_AE_DEFAULTS}


def family_settings(family: str | None = None, field_defaults: dict | None = None) -> dict:
    """tol / max_steps of a family name (``small``, ``foundation``), updated by explicit ``field_defaults``."""
    if family is not None and family not in FAMILIES:
        raise ProbeError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)} "
                         f"(or give field_defaults={{'tol': ..., 'max_steps': ...}})")
    out = dict(FAMILIES[family or "foundation"])
    if field_defaults is not None:
        if not isinstance(field_defaults, dict) or set(field_defaults) - set(out):
            raise ProbeError(f"field_defaults must be a dict with keys tol and/or max_steps, got {field_defaults!r}")
        out.update({k: v for k, v in field_defaults.items() if v is not None})
    return out


class LatentMap(nn.Module):
    """Encoder E and decoder D of an autoencoder; f(z) = E(D(z)) is the iterated map.

    Subclasses implement :meth:`_encode`, :meth:`_decode` and :meth:`latent_shape`.
    """

    #: Channels of the images at the boundary (3 = RGB, 1 = grayscale).
    image_channels: int = 3
    #: Native resolution for fixed-size models (e.g. 28 for Fashion-MNIST), else None.
    image_size: int | None = None
    #: Spatial downsampling factor from pixels to latent (None for vector latents).
    downsample: int | None = None
    #: Human-readable name of what was loaded (class and source).
    name: str = "latent-map"
    #: The paper's iteration settings for this family (METHOD.md section 1): foundation
    #: models tol 1e-5 / 500 steps; the small conv autoencoders override with 1e-6 / 3000.
    field_defaults: dict = FOUNDATION_DEFAULTS

    # -- to implement -------------------------------------------------------
    def _encode(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:  # pragma: no cover
        """Shape of one latent (no batch dimension) for images of ``resolution`` px."""
        raise NotImplementedError

    # -- public protocol ----------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Images ``[B, C, H, W]`` in [0, 1] -> latents ``[B, *latent_shape]``."""
        x = self.check_images(x)
        return self._encode(x.to(self.device, self.dtype))

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``[B, *latent_shape]`` -> images ``[B, C, H, W]`` (nominally in [0, 1])."""
        if z.dim() < 2:
            raise ProbeError(f"latents must have a batch dimension, got shape {tuple(z.shape)}")
        return self._decode(z.to(self.device, self.dtype))

    def f(self, z: Tensor) -> Tensor:
        """The latent map f(z) = E(D(z)) (no range checks: decoded images may leave [0, 1])."""
        z = z.to(self.device, self.dtype)
        return self._encode(self._decode(z))

    def forward(self, z: Tensor) -> Tensor:
        return self.f(z)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return getattr(self, "_device", torch.device("cpu"))

    @property
    def dtype(self) -> torch.dtype:
        for t in self.parameters():
            if t.is_floating_point():
                return t.dtype
        return getattr(self, "_dtype", torch.float32)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- many images at once (contract 4) -------------------------------------
    @torch.no_grad()
    def encode_batched(self, x: Tensor, batch_size: int = 64) -> Tensor:
        """:meth:`encode` in chunks of ``batch_size``, without gradients; latents come back on CPU.

        ``x``: float ``[N, C, H, W]`` in [0, 1] (uint8 is divided by 255), on any device.
        """
        _check_batch_size(batch_size)
        if isinstance(x, Tensor) and x.dtype == torch.uint8:
            x = x.float() / 255
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ProbeError(f"images must be a [N, C, H, W] tensor, got {getattr(x, 'shape', type(x).__name__)}")
        return torch.cat([self.encode(x[i:i + batch_size].float()).cpu() for i in range(0, len(x), batch_size)]) \
            if len(x) else x.new_zeros((0, *self.latent_shape(int(x.shape[-1]))))

    @torch.no_grad()
    def decode_batched(self, z: Tensor, batch_size: int = 64) -> Tensor:
        """:meth:`decode` in chunks of ``batch_size``, without gradients; images come back on CPU."""
        _check_batch_size(batch_size)
        if not isinstance(z, Tensor) or z.dim() < 2 or not len(z):
            raise ProbeError(f"latents must be a non-empty [N, ...] tensor, got {getattr(z, 'shape', type(z).__name__)}")
        return torch.cat([self.decode(z[i:i + batch_size]).cpu() for i in range(0, len(z), batch_size)])

    def weights_sha256(self) -> str:
        """sha256 over the state dict (names, dtypes, shapes and bytes, in name order); cached until a
        tensor is replaced or changed in place (a training step), so results of a big model stay cheap."""
        state = sorted(self.state_dict().items())
        key = tuple((name, t.data_ptr(), t._version, str(t.dtype), str(t.device)) for name, t in state)
        cached = self.__dict__.get("_sha256")
        if cached is not None and cached[0] == key:
            return cached[1]
        h = hashlib.sha256()
        for name, t in state:
            t = t.detach().cpu().contiguous()
            h.update(f"{name}|{str(t.dtype)}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        self.__dict__["_sha256"] = (key, h.hexdigest())
        return h.hexdigest()

    def fingerprint(self) -> dict:
        """What identifies this map in a result: class, name, config, weights sha256, latent shape."""
        facts = self.describe()
        config = {k: v for k, v in facts.items() if k not in ("name", "class")}
        config.update(field_defaults=dict(self.field_defaults), downsample=self.downsample)
        try:
            shape = list(self.latent_shape())
        except ProbeError:
            shape = None
        return {"class": type(self).__name__, "name": self.name, "config": config,
                "weights_sha256": self.weights_sha256(), "latent_shape": shape,
                "resolution": self.default_resolution()}

    def default_resolution(self) -> int:
        return self.image_size or 256

    # -- input validation ---------------------------------------------------
    def check_images(self, x: Tensor) -> Tensor:
        """Validate shape and range; convert RGB to luminance for grayscale models."""
        if not isinstance(x, Tensor):
            raise ProbeError(f"images must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ProbeError(f"images must be [B, C, H, W], got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ProbeError(f"images must be float in [0, 1], got dtype {x.dtype} (divide uint8 by 255)")
        if x.shape[1] != self.image_channels:  # 3 -> 1 by luminance, 1 -> 3 repeated; never the batch size
            x = to_channels(x, self.image_channels, what=f"{self.name} images")
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ProbeError(
                f"{self.name} takes {self.image_size}x{self.image_size} images, got {x.shape[-2]}x{x.shape[-1]}")
        if self.downsample and (x.shape[-1] % self.downsample or x.shape[-2] % self.downsample):
            raise ProbeError(f"image height and width must be multiples of {self.downsample}, got {tuple(x.shape[-2:])}")
        if torch.isnan(x).any():
            raise ProbeError("images contain NaN")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ProbeError(f"images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        return x

    def describe(self) -> dict:
        """Facts about the map that every result records."""
        return {"name": self.name, "class": type(self).__name__, "image_channels": self.image_channels,
                "image_size": self.image_size, "parameters": self.n_parameters(), "dtype": str(self.dtype).replace("torch.", "")}


def _check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ProbeError(f"batch_size must be a positive integer, got {batch_size!r}")


def __getattr__(name):  # CallableMap and wrap live in maps/wrap.py; this old address keeps working
    if name in ("CallableMap", "wrap"):
        import importlib

        return getattr(importlib.import_module(".wrap", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
