"""Adapters: every model family as a :class:`~probe.maps.base.LatentMap`."""
from .base import CallableMap, LatentMap, wrap

__all__ = ["LatentMap", "CallableMap", "wrap"]
