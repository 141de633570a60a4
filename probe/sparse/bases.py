"""Reference dictionaries for the data-free probe: a random orthogonal basis and PCA.

The paper's baseline for the attractor dictionary is a random orthogonal basis of the
latent space, coded with the same number of atoms (METHOD.md section 4). Both
functions return atoms in columns, ``[dim, n_atoms]``, the layout the coders take.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ProbeError


def _check_count(name: str, value, upper: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProbeError(f"{name} must be a positive integer, got {value!r}")
    if value > upper:
        raise ProbeError(f"{name}={value} is more than {what} ({upper}): an orthonormal set cannot be that large")
    return value


def random_orthogonal_basis(dim: int, n_atoms: int | None = None, seed: int = 0,
                            dtype: torch.dtype = torch.float32, device="cpu") -> Tensor:
    """``n_atoms`` (default ``dim``) orthonormal columns ``[dim, n_atoms]``, uniformly random.

    QR of a seeded Gaussian matrix, with the signs of R's diagonal folded into Q so that
    the basis is Haar-distributed (plain QR is biased) and a given seed gives the same
    basis on every device (drawn in fp64 on the CPU, then cast and moved).
    """
    dim = _check_count("dim", dim, 1 << 62, "any size")
    n_atoms = dim if n_atoms is None else _check_count("n_atoms", n_atoms, dim, "the dimension")
    gen = torch.Generator().manual_seed(int(seed))
    gauss = torch.randn(dim, n_atoms, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    return (q * signs).to(device=device, dtype=dtype)


def pca_basis(latents, n_atoms: int) -> Tensor:
    """The top principal directions of ``latents`` as unit columns ``[dim, k]``.

    ``latents`` is ``[N, ...]`` (flattened per sample). Directions of the centred data in
    decreasing variance; the mean itself is not an atom. ``k = min(n_atoms, N - 1, dim)``:
    past the rank of the centred data the directions would be arbitrary, not principal,
    so a small fit gives fewer atoms. Each direction's sign is fixed so that its
    largest-magnitude entry is positive, so results do not flip between runs.
    """
    z = latents if isinstance(latents, Tensor) else torch.as_tensor(latents)
    if z.dim() < 2 or z.shape[0] < 2:
        raise ProbeError(f"latents must be [N, ...] with N >= 2, got shape {tuple(z.shape)}")
    z = z.detach().reshape(z.shape[0], -1)
    if not z.is_floating_point() or z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    if not bool(torch.isfinite(z).all()):
        raise ProbeError("latents contain NaN or inf")
    n, dim = z.shape
    n_atoms = min(_check_count("n_atoms", n_atoms, 1 << 62, "any size"), n - 1, dim)
    centred = z - z.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    basis = vh[:n_atoms].T
    pivot = basis.abs().argmax(0)
    signs = torch.sign(basis[pivot, torch.arange(n_atoms, device=basis.device)])
    signs[signs == 0] = 1.0
    return basis * signs
