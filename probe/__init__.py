"""probe: look inside pretrained autoencoders through their latent vector field.

f(z) = E(D(z)) defines a dynamical system in latent space; its attractors tell what
the model memorized or generalized, form a data-free dictionary, and trajectories
toward them flag out-of-distribution inputs (Fumero et al., ICLR 2026).

The front door: ``load`` / ``wrap`` a model, ``iterate`` and ``find_attractors`` on it,
the probes ``dictionary``, ``ood``, ``compare``, ``memorization``, ``basins``, any saved
result back with ``load_result`` and as a page with ``write_report``. Heavy parts import
on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError, ProbeError
from .maps.base import LatentMap
from .maps.registry import load, register_adapter
from .maps.wrap import CallableMap, wrap

__version__ = "0.2.0"

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from .field.attractors import AttractorSet, find_attractors
    from .field.config import FieldConfig
    from .field.iterate import Trajectories, iterate
    from .probes.api import basins, compare, dictionary, memorization, ood
    from .report import write_report
    from .result import Result, load_result

_LAZY = {
    "iterate": "probe.field.iterate",
    "Trajectories": "probe.field.iterate",
    "find_attractors": "probe.field.attractors",
    "AttractorSet": "probe.field.attractors",
    "FieldConfig": "probe.field.config",
    "dictionary": "probe.probes.api",
    "ood": "probe.probes.api",
    "compare": "probe.probes.api",
    "memorization": "probe.probes.api",
    "basins": "probe.probes.api",
    "load_result": "probe.result",
    "Result": "probe.result",
    "write_report": "probe.report",
}


def __getattr__(name):  # heavy parts import on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'probe' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["load", "wrap", "register_adapter", "LatentMap", "CallableMap", "ProbeError", "ConfigError",
           "iterate", "Trajectories", "find_attractors", "AttractorSet", "FieldConfig", "dictionary", "ood",
           "compare", "memorization", "basins", "load_result", "Result", "write_report"]
