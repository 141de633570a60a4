"""Toy latent maps with answers known in closed form, wrapped with probe.wrap.

Each is f(z) = E(D(z)) with D the identity and E the dynamics, so the attractors, the
saddle, the cycle and the Jacobian spectra can be written down independently of probe.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

import probe


def _wrap(fn, dim: int, name: str, **kw):
    return probe.wrap(fn, lambda z: z, (dim,), check_inputs=False, name=name, **kw)


def linear(dim: int = 6, scale: float = 0.8, seed: int = 0):
    """f(z) = A z + b with ||A||_2 = scale < 1: one attractor z* = (I - A)^-1 b."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    a = scale * a / torch.linalg.matrix_norm(a, 2)
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    a32, b32 = a.float(), b.float()
    m = _wrap(lambda x: x @ a32.T + b32, dim, "linear contraction")
    z_star = torch.linalg.solve(torch.eye(dim, dtype=torch.float64) - a, b)
    rho = float(np.abs(np.linalg.eigvals(a.numpy())).max())
    return m, z_star.float(), rho


def hopfield(k: int = 3, dim: int = 5, beta: float = 6.0, r: float = 1.0):
    """Modern Hopfield update f(z) = X^T softmax(beta X z) with K orthogonal patterns X = r [e_1 .. e_K].

    With c = beta r^2 the attractor near pattern j is z = r p, p_j = a, p_other = (1 - a)/(K - 1),
    a solving a = 1 / (1 + (K - 1) exp(c ((1 - a)/(K - 1) - a))). The centroid z = r/K (1..1, 0..)
    is a fixed point with J = c (diag(p) - p p^T): eigenvalue c/K (K - 1 times) and 0 -- a saddle
    whenever c/K > 1.
    """
    x = torch.zeros(k, dim)
    x[:, :k] = r * torch.eye(k)
    m = _wrap(lambda z: torch.softmax(beta * z @ x.T, dim=-1) @ x, dim, "hopfield")
    c = beta * r * r
    lo, hi = 0.5, 1.0  # the stable root is the one near 1 (bisection on g(a) = a - rhs(a))
    g = lambda a: a - 1.0 / (1.0 + (k - 1) * math.exp(c * ((1 - a) / (k - 1) - a)))  # noqa: E731
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if g(mid) < 0 else (lo, mid)
    a = (lo + hi) / 2
    attractors = torch.zeros(k, dim, dtype=torch.float64)
    for j in range(k):
        p = torch.full((k,), (1 - a) / (k - 1), dtype=torch.float64)
        p[j] = a
        attractors[j, :k] = r * p
    p = attractors[0, :k].numpy() / r
    rho_attr = float(np.abs(np.linalg.eigvalsh(c * (np.diag(p) - np.outer(p, p)))).max())
    centroid = torch.zeros(dim)
    centroid[:k] = r / k
    return m, attractors.float(), rho_attr, centroid, c / k


def two_cycle(dim: int = 4, beta: float = 3.0):
    """f(z) = -tanh(beta z) per coordinate: 0 repels (slope -beta); every coordinate ends on the
    2-cycle +-a -> -+a with a = tanh(beta a)."""
    lo, hi = 0.1, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mid < math.tanh(beta * mid) else (lo, mid)
    return _wrap(lambda z: -torch.tanh(beta * z), dim, "two-cycle"), (lo + hi) / 2


def three_cycle():
    """Rotation by 120 degrees with radius r -> sqrt(r): every nonzero seed ends on a 3-cycle on the unit circle
    (float64: in float32 the rounded rotation misses its start by ~1e-5 after three steps)."""
    return long_cycle(3)


def slow(fn_map, seconds: float):
    """The same map, sleeping per call: lets a test kill a run half-way."""
    inner = fn_map.f

    def fn(z):
        time.sleep(seconds)
        return inner(z)

    return probe.wrap(fn, lambda z: z, fn_map.latent_shape(), check_inputs=False, name=fn_map.name)


def long_cycle(period: int = 50):
    """Rotation by 2 pi / period with radius r -> sqrt(r): every nonzero seed ends on a period-``period``
    orbit on the unit circle (0 is a repelling fixed point)."""
    a = 2 * math.pi / period
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)

    def f(z):
        return (z @ rot.T.to(z.dtype)) / z.norm(dim=1, keepdim=True).sqrt()

    return _wrap(f, 2, f"{period}-cycle", dtype=torch.float64)
