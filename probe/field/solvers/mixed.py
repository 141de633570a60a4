"""Mixed precision: plain iteration in bf16/fp16 down to its rounding floor, then a polish in the map's dtype.

A bf16 f(z) carries ~2^-9 relative rounding, so ||f(z) - z||^2 cannot reach 1e-6 on a
latent of norm ~100: bf16 alone ends in exact repeats or rounding cycles a hair from the
fp32 attractor. The engine therefore computes each seed in the low dtype (``cfg.dtype``,
which ``FieldConfig.resolve`` sets to bf16 for this solver) until its relative step falls
below ``engine.FLOOR`` times the dtype's epsilon (or it used ``engine.LOW_SHARE`` of
``max_steps``), then continues with the map's own dtype under the usual rule, so every end
point is a full-precision fixed point and both stages count against the one budget. Any
solver gets the same staging with ``dtype="bf16"``; ``mixed`` is plain iteration with it.
Measured on trained conv AEs (benchmarks/results/solver_cpu.md): the attractors match fp32
up to seeds that rounding moves across basin borders.
"""
from __future__ import annotations

from . import register
from .plain import Plain

__all__ = ["Mixed"]


@register("mixed")
class Mixed(Plain):
    """Plain steps; the low-precision stage and the polish are the engine's (``cfg.dtype`` bf16/fp16)."""
