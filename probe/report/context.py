"""What a report needs besides the saved files: the model, loaded once, when it can be.

Pictures of latents (decoded attractors, film strips of trajectories) need the model's
decoder. A result records which model made it (``meta["model"]`` / ``meta["map"]``, and
``probe run``'s ``manifest.json`` holds the spec); a model that cannot be loaded from there
(a ``probe.wrap`` of local functions, weights that moved) is named on the page with the reason,
and the rest of the report is drawn without it. ``write_report(..., model=...)`` supplies it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import load_json
from .read import first_line

__all__ = ["Context", "model_facts"]


def model_facts(meta: dict) -> dict:
    """The saved description of the model: the fingerprint (Result contract) or ``map.describe()``."""
    for key in ("model", "map"):
        v = meta.get(key)
        if isinstance(v, dict) and v:
            return v
    return {}


def _specs(meta: dict, folder: Path) -> list[str]:
    """Where the model might load from, most explicit first."""
    facts = model_facts(meta)
    out = [facts.get("spec"), facts.get("source"), meta.get("spec"), (meta.get("map") or {}).get("spec")]
    for d in (folder, folder.parent):
        manifest = d / "manifest.json"
        if manifest.is_file():
            try:
                out.append(load_json(manifest).get("spec"))
            except Exception:  # a damaged manifest is only one of several hints
                pass
    name = facts.get("name")
    if isinstance(name, str):
        out.append(name.split(" (")[0].strip())
    seen: list[str] = []
    for s in out:
        if isinstance(s, str) and s and s not in seen:
            seen.append(s)
    return seen


@dataclass
class Context:
    """Shared by the sections of one report: the model cache and the report's options."""

    model: Any = None            #: a LatentMap or a spec given by the caller (used for every result)
    trajectories: int = 4        #: film strips per attractor set (0 = none)
    device: str | None = None
    _cache: dict = field(default_factory=dict)

    def map_for(self, meta: dict, folder: Path) -> tuple[Any, str]:
        """(the model or None, a sentence on where it came from or why it is missing)."""
        from ..maps.base import LatentMap

        if isinstance(self.model, LatentMap):
            return self.model, f"model given to the report: {self.model.name}"
        specs = [self.model] if isinstance(self.model, str) else _specs(meta, folder)
        if not specs:
            return None, "the result does not record which model made it"
        errors = []
        for spec in specs:
            if spec not in self._cache:
                self._cache[spec] = self._load(spec)
            m, err = self._cache[spec]
            if m is not None:
                return self._check(m, meta, spec)
            errors.append(f"{spec}: {err}")
        return None, "the model it records does not load (" + "; ".join(errors) + ")"

    def _load(self, spec: str):
        from ..maps.registry import load

        try:
            return load(spec, device=self.device) if self.device else load(spec), None
        except Exception as e:  # any failure only means: no pictures of latents
            return None, first_line(e)

    def _check(self, m, meta: dict, spec: str) -> tuple[Any, str]:
        want = model_facts(meta).get("weights_sha256")
        if want:
            try:
                have = m.weights_sha256()
            except Exception:  # a map without a state dict: nothing to compare
                have = want
            if have != want:
                return None, (f"{spec} loads, but its weights differ from the ones that made this result "
                              f"(sha256 {have[:12]} vs {want[:12]}); pictures of latents are left out")
        return m, f"model loaded from {spec}"
