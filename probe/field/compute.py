"""How f(z) = E(D(z)) is computed: in which dtype, memory format, compiled or not.

:func:`compute_map` wraps any :class:`LatentMap` in a :class:`ComputeMap` whose *state*
dtype (what the engine keeps seeds, iterates and residuals in) can differ from the dtype
E and D *compute* in: bf16 or fp16 compute with fp32 state is what the ``mixed`` solver
iterates with before its fp32 polish. ``channels_last`` and ``torch.compile`` are the
other two knobs (both pay off on a GPU).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor

from ..errors import ProbeError
from ..maps.base import LatentMap

__all__ = ["DTYPES", "as_dtype", "ComputeMap", "compute_map"]

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16, "fp64": torch.float64, "float64": torch.float64}
NAMES = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16", torch.float16: "fp16"}


def as_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) not in DTYPES:
        raise ProbeError(f"unknown dtype {dtype!r}; use one of fp32, fp64, bf16, fp16")
    return DTYPES[str(dtype)]


def _memory_format(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


class ComputeMap(LatentMap):
    """``inner`` computing in ``compute_dtype`` (optionally channels_last and compiled), ``state_dtype`` outside."""

    def __init__(self, inner: LatentMap, compute_dtype: torch.dtype | None = None, channels_last: bool = False,
                 compile: bool | str = False, state_dtype: torch.dtype | None = None):
        super().__init__()
        if isinstance(inner, ComputeMap):
            inner = inner.inner
        self.inner = inner
        self.compute_dtype = compute_dtype or inner.dtype
        low = self.compute_dtype in (torch.bfloat16, torch.float16)
        self.state_dtype = state_dtype or (torch.float32 if low else self.compute_dtype)
        self.channels_last = bool(channels_last)
        self.compile_mode = (compile if isinstance(compile, str) else "default") if compile else None
        for attr in ("image_channels", "image_size", "downsample", "name", "field_defaults"):
            setattr(self, attr, getattr(inner, attr))
        self.inner.to(dtype=self.compute_dtype)
        if self.channels_last:
            self.inner.to(memory_format=torch.channels_last)
        fn = self._raw_f
        if self.compile_mode:
            fn = torch.compile(fn, mode=None if self.compile_mode == "default" else self.compile_mode)
        self._fn = fn

    def _raw_f(self, z: Tensor) -> Tensor:
        return self.inner._encode(self.inner._decode(z))

    def _in(self, x: Tensor) -> Tensor:
        return _memory_format(x.to(self.inner.device, self.compute_dtype), self.channels_last)

    def _out(self, y: Tensor) -> Tensor:
        return y.to(self.state_dtype).contiguous()

    def _encode(self, x: Tensor) -> Tensor:
        return self._out(self.inner._encode(self._in(x)))

    def _decode(self, z: Tensor) -> Tensor:
        return self._out(self.inner._decode(self._in(z)))

    def f(self, z: Tensor) -> Tensor:
        return self._out(self._fn(self._in(z)))

    def check_images(self, x: Tensor) -> Tensor:
        return self.inner.check_images(x)

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        return self.inner.latent_shape(resolution)

    def default_resolution(self) -> int:
        return self.inner.default_resolution()

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.state_dtype

    def to(self, *args, **kwargs):
        """A device moves the model; a dtype sets the *compute* dtype (the state dtype stays)."""
        dev, dt, *_ = torch._C._nn._parse_to(*args, **kwargs)  # type: ignore[attr-defined]
        if dev is not None:
            self.inner.to(dev)
        if dt is not None:
            self.compute_dtype = dt
            self.inner.to(dtype=dt)
        return self

    def describe(self) -> dict:
        return {**self.inner.describe(), "compute": {"dtype": NAMES.get(self.compute_dtype, str(self.compute_dtype)),
                                                     "state_dtype": NAMES.get(self.state_dtype, str(self.state_dtype)),
                                                     "channels_last": self.channels_last,
                                                     "compile": self.compile_mode}}


def compute_map(map: LatentMap, dtype: str | torch.dtype | None = None, channels_last: bool = False,
                compile: bool | str = False, copy_model: bool = True) -> LatentMap:
    """``map`` with E and D in ``dtype`` (e.g. "bf16"), channels_last and/or torch.compile.

    With nothing to change the map is returned as it is. ``copy_model`` (default) leaves
    the original untouched, so an fp32 reference and a bf16 variant can run side by side.
    """
    if not isinstance(map, LatentMap):
        raise ProbeError(f"map must be a LatentMap (see probe.load / probe.wrap), got {type(map).__name__}")
    dt = as_dtype(dtype)
    if (dt is None or dt == map.dtype) and not channels_last and not compile:
        return map
    inner = map.inner if isinstance(map, ComputeMap) else map
    inner = copy.deepcopy(inner) if copy_model else inner
    return ComputeMap(inner, dt, channels_last=channels_last, compile=compile)
