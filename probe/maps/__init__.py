"""Adapters: every model family as a :class:`~probe.maps.base.LatentMap`."""
from .base import LatentMap
from .wrap import CallableMap, wrap

__all__ = ["LatentMap", "CallableMap", "wrap"]
