"""Stability: the spectral radius of J_f at a point, by power iteration on JVPs (METHOD.md section 2).

A fixed point is an attractor only when every eigenvalue of J_f(z*) has modulus < 1.
Power iteration needs only Jacobian-vector products, never the k x k Jacobian; its
last iterates are refined by Arnoldi (Rayleigh-Ritz on the Krylov space), which also
resolves a dominant complex pair.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ProbeError
from ..maps.base import LatentMap

__all__ = ["spectral_radius", "jvps_per_point", "choose_jvp", "jvp_autograd", "jvp_reverse", "jvp_fd", "METHODS"]

METHODS = ("auto", "autograd", "reverse", "fd")


def _norms(x: Tensor) -> Tensor:
    return x.float().flatten(1).norm(dim=1)


def _bcast(s: Tensor, like: Tensor) -> Tensor:
    return s.view(-1, *[1] * (like.dim() - 1)).to(like.dtype)


def jvp_autograd(map: LatentMap, z: Tensor, v: Tensor) -> Tensor:
    """J_f(z) v by forward-mode AD (dual numbers)."""
    import torch.autograd.forward_ad as fwd

    with torch.no_grad(), fwd.dual_level():  # no_grad stops reverse-mode graphs, forward AD still runs
        tangent = fwd.unpack_dual(map.f(fwd.make_dual(z, v.to(z.dtype)))).tangent
    if tangent is None:  # e.g. an adapter running under torch.inference_mode drops the tangent
        raise RuntimeError("the map's output carries no tangent")
    return tangent


def jvp_reverse(map: LatentMap, z: Tensor, v: Tensor) -> Tensor:
    """J_f(z) v exactly by two reverse-mode passes (the transpose of a VJP): on CPU often cheaper
    than forward-mode AD, whose kernels for linear layers run through Python decompositions."""
    with torch.enable_grad():
        x = z.detach().requires_grad_(True)
        y = map.f(x)
        u = torch.zeros_like(y, requires_grad=True)
        (g,) = torch.autograd.grad(y, x, u, create_graph=True)
        (out,) = torch.autograd.grad(g, u, v.to(g.dtype))
    return out.detach()


def jvp_fd(map: LatentMap, z: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """J_f(z) v by central differences; the step balances truncation and rounding error."""
    eps = torch.finfo(z.dtype).eps
    h = scale * eps ** (1 / 3) * _norms(z).clamp_min(1.0) / _norms(v).clamp_min(1e-30)
    hv = _bcast(h, v) * v
    with torch.no_grad():
        return (map.f(z + hv) - map.f(z - hv)) / (2 * _bcast(h, v))


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    if out.is_cuda:
        torch.cuda.synchronize(out.device)
    return out, time.perf_counter() - t0


def choose_jvp(map: LatentMap, z: Tensor, v: Tensor, method: str = "auto") -> Callable[[LatentMap, Tensor, Tensor], Tensor]:
    """The JVP to use. ``auto`` tries an exact one on the first batch -- two reverse passes
    (:func:`jvp_reverse`), else forward-mode AD, whose first call costs seconds of setup --
    and central differences beside it: differences when they agree and cost less, or when
    the exact JVP fails or disagrees with reliable differences (an adapter under
    ``torch.inference_mode`` drops gradients and tangents); the exact JVP otherwise."""
    if method not in METHODS:
        raise ProbeError(f"unknown JVP method {method!r}; use one of {', '.join(METHODS)}")
    if method == "autograd":
        return jvp_autograd
    if method == "fd":
        return jvp_fd
    if method == "reverse":
        return jvp_reverse
    exact = None
    for candidate in (jvp_reverse, jvp_autograd):
        try:
            ad, t_ad = _timed(candidate, map, z, v)
            exact = candidate
            break
        except (RuntimeError, NotImplementedError, TypeError) as e:
            why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
    if exact is None:
        warnings.warn(f"automatic differentiation failed on {map.name} ({why}); "
                      f"using finite differences for Jacobian-vector products", stacklevel=3)
        return jvp_fd
    fd, t_fd = _timed(jvp_fd, map, z, v)
    fd_half = jvp_fd(map, z, v, 0.5)
    # relative to the larger of the two products: where J_f v is (numerically) zero, differences give exactly 0
    # and AD a tiny number, which is agreement, not an error of 1e20
    floor = 1e-6 * float(v.float().norm())
    scale = max(float(fd.float().norm()), float(ad.float().norm()), floor) + 1e-30
    fd_noise = float((fd - fd_half).float().norm()) / scale  # differences are reliable when stable under h -> h/2
    err = float((ad - fd).float().norm()) / scale
    if err > 0.3 and fd_noise < 0.05:
        warnings.warn(f"automatic differentiation disagrees with finite differences on {map.name} (relative "
                      f"error {err:.2g}); using finite differences", stacklevel=3)
        return jvp_fd
    if err < 1e-3 and fd_noise < 1e-3 and t_fd < t_ad:
        return jvp_fd
    return exact


def _arnoldi_radius(jvp, map: LatentMap, z: Tensor, v: Tensor, m: int) -> Tensor:
    """Largest |Ritz value| of J_f on the Krylov space of ``v`` (batched Arnoldi, float64 bookkeeping)."""
    b = len(z)
    basis = [v.flatten(1).double() / _norms(v).double().clamp_min(1e-300)[:, None]]
    h = torch.zeros(b, m + 1, m, dtype=torch.float64, device=v.device)
    for j in range(m):
        w = jvp(map, z, basis[j].view_as(v).to(v.dtype)).detach().flatten(1).double()
        for _ in range(2):  # Gram-Schmidt twice: orthogonality holds in floating point
            for i in range(j + 1):
                c = (basis[i] * w).sum(1)
                h[:, i, j] += c
                w = w - c[:, None] * basis[i]
        n = w.norm(dim=1)
        h[:, j + 1, j] = n
        # an invariant subspace (n ~ 0) leaves a zero vector: later columns add only zero eigenvalues
        basis.append(torch.where(n[:, None] > 1e-12 * h[:, : j + 1, j].abs().sum(1, keepdim=True).clamp_min(1e-300),
                                 w / n.clamp_min(1e-300)[:, None], torch.zeros_like(w)))
    return torch.linalg.eigvals(h[:, :m, :m].cpu()).abs().max(1).values.float()


def jvps_per_point(shape: tuple[int, ...], n_iter: int) -> int:
    """JVPs :func:`spectral_radius` spends on one point of latent ``shape``."""
    return min(int(n_iter), math.prod(shape))


def spectral_radius(map: LatentMap, z: Tensor, n_iter: int = 30, seed: int = 0, method: str = "auto",
                    batch_size: int | None = None) -> Tensor:
    """Spectral radius of J_f at each point of ``z`` [B, *latent_shape] -> [B] (float32, CPU).

    ``n_iter`` JVPs per point: the first half are power iterations that turn a random
    vector toward the dominant eigenvectors, the second half build a Krylov basis from
    there (Arnoldi) whose largest Ritz value gives the modulus even for a dominant
    complex pair, where plain power iteration only oscillates. A latent of at most
    ``n_iter`` dimensions needs no power phase: Arnoldi over the whole space (``dim``
    JVPs) gives the exact spectrum. Points are independent (f acts per sample), so a
    batch iterates together; ``seed`` fixes the start vectors. :func:`jvps_per_point`
    says how many JVPs a point costs.
    """
    if z.dim() < 2:
        raise ProbeError(f"points must be [B, *latent_shape], got shape {tuple(z.shape)}")
    if int(n_iter) < 2:
        raise ProbeError(f"n_iter must be >= 2, got {n_iter}")
    if len(z) == 0:
        return torch.zeros(0)
    bs = int(batch_size or len(z))
    gen = torch.Generator().manual_seed(int(seed))
    v0 = torch.randn(z.shape, generator=gen)  # drawn once on the CPU: the same on any device / batching
    out, jvp = [], None
    for lo in range(0, len(z), bs):
        zb = z[lo:lo + bs].to(map.device, map.dtype)
        v = v0[lo:lo + bs].to(map.device, map.dtype)
        v = v / _bcast(_norms(v).clamp_min(1e-30), v)
        if jvp is None:
            jvp = choose_jvp(map, zb, v, method)
        dim = math.prod(z.shape[1:])
        if dim <= int(n_iter):  # the Krylov space is the whole space after dim steps: exact
            out.append(_arnoldi_radius(jvp, map, zb, v, dim))
            continue
        for _ in range(int(n_iter) // 2):
            w = jvp(map, zb, v).detach()
            v = w / _bcast(_norms(w).clamp_min(1e-30), w)
        out.append(_arnoldi_radius(jvp, map, zb, v, int(n_iter) - int(n_iter) // 2))
    return torch.cat(out)
