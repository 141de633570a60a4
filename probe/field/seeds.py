"""Seeds in latent space: N(0, I) as in the paper, or matched to encoded data.

A trained autoencoder's latent scale can be far from 1: on a third-party CIFAR-10
autoencoder all 64 N(0, I) seeds fell into one attractor while 64 seeds matched to the
mean and per-dimension spread of encoded images found 61. Seeds are drawn in fixed
blocks, each from its own generator, so seed ``i`` is the same whatever the device,
the batch size or the number of processes, and any shard can draw only its own part.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import ProbeError

__all__ = ["gaussian_seeds", "data_stats", "BLOCK"]

BLOCK = 256


def _block_generator(seed: int, block: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(block)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def gaussian_seeds(n: int, shape: tuple[int, ...], seed: int = 0, start: int = 0, stop: int | None = None,
                   mean: Tensor | None = None, std: Tensor | None = None) -> Tensor:
    """Seeds ``start..stop`` of ``n``: N(0, I), or ``mean + std * N(0, I)`` per dimension (CPU float32)."""
    stop = n if stop is None else stop
    if not 0 <= start <= stop <= n:
        raise ProbeError(f"seed range {start}..{stop} is not inside 0..{n}")
    parts = []
    for b in range(start // BLOCK, -(-stop // BLOCK)):
        lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
        block = torch.randn(hi - lo, *shape, generator=_block_generator(seed, b))
        parts.append(block[max(start, lo) - lo: min(stop, hi) - lo])
    z = torch.cat(parts) if parts else torch.zeros(0, *shape)
    if mean is not None:
        z = z * (std.float() if std is not None else 1.0) + mean.float()
    return z


def data_stats(latents: Tensor, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and spread of encoded data [M, *shape]."""
    if not isinstance(latents, Tensor) or tuple(latents.shape[1:]) != tuple(shape) or len(latents) < 2:
        got = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
        raise ProbeError(f"data latents must be [M >= 2, {', '.join(map(str, shape))}] for data-matched seeds, got {got}")
    x = latents.detach().float().cpu()
    if not bool(torch.isfinite(x).all()):
        raise ProbeError("data latents contain NaN or inf")
    return x.mean(0), x.std(0)
