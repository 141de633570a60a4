"""probe: look inside pretrained autoencoders through their latent vector field.

f(z) = E(D(z)) defines a dynamical system in latent space; its attractors tell what
the model memorized or generalized, form a data-free dictionary, and trajectories
toward them flag out-of-distribution inputs (Fumero et al., ICLR 2026).
"""
from __future__ import annotations

from .errors import ProbeError
from .maps.base import CallableMap, LatentMap, wrap
from .maps.registry import load

__version__ = "0.1.0"

_LAZY = {
    "iterate": "probe.field.iterate",
    "find_attractors": "probe.field.attractors",
    "AttractorSet": "probe.field.attractors",
}


def __getattr__(name):  # heavy parts import on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'probe' has no attribute {name!r}")


__all__ = ["load", "wrap", "LatentMap", "CallableMap", "ProbeError", "iterate", "find_attractors", "AttractorSet"]
