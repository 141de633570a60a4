"""Probes built on the latent vector field: dictionary, memorization, OOD, comparison, basins.

The front door, one function per probe, is :mod:`probe.probes.api` (re-exported as
``probe.dictionary``, ``probe.ood``, ``probe.compare``, ``probe.memorization``, ``probe.basins``).
"""

__all__: list[str] = []
