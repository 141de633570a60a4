"""Finding and reading results: the one place that knows how results are saved.

Results are read with ``probe.result.load_result`` where that exists, else with each class's
own ``load``; a result whose object cannot be rebuilt still shows its saved settings, with the
reason. A folder that is not itself a result is searched (a few levels deep) for results.
:data:`SECTIONS` is the one table of the page's sections: each one's heading, the module that draws
it and the saved kinds it shows (``KINDS`` and the page order are derived from it).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ProbeError
from ..io import load_json

__all__ = ["Found", "Section", "SECTIONS", "discover", "read", "section_of", "first_line"]


class Section(NamedTuple):
    """One kind of section of the page: its heading, the module that draws it, and the saved kinds
    it shows (kind -> "module:Class" of the legacy loader, None where there is none)."""

    heading: str
    module: str
    kinds: dict[str, str | None]


#: section name -> Section, in the order the page shows them
SECTIONS = {
    "attractors": Section("Attractor set", "probe.report.attractors",
                          {"AttractorSet": "probe.field.attractors:AttractorSet"}),
    "dictionary": Section("Dictionary probe", "probe.report.dictionary",
                          dict.fromkeys(("DictionaryReport", "dictionary-report"),
                                        "probe.probes.dictionary_report:DictionaryReport")),
    "ood": Section("OOD detection", "probe.report.ood", {"OODReport": "probe.probes.ood:OODReport"}),
    "compare": Section("Model comparison", "probe.report.compare",
                       {"ComparisonReport": "probe.probes.compare:ComparisonReport"}),
    "basins": Section("Basins of images", "probe.report.basins", {"Basins": "probe.probes.basins:Basins"}),
    "memorization": Section("Memorization", "probe.report.memorization", {
        "MemorizationStudy": "probe.probes.memorization_study:MemorizationStudy", "Memorization": None}),
    "features": Section("Feature probe", "probe.report.features", {"FeatureReport": None}),
    "other": Section("Result", "probe.report.generic", {}),
}
#: saved kind -> (section name, "module:Class" of the legacy loader)
KINDS = {kind: (name, loader) for name, section in SECTIONS.items() for kind, loader in section.kinds.items()}
ORDER = tuple(SECTIONS)
#: the files that make a folder a result, in the order they are tried
META_FILES = ("meta.json", "study.json", "memorization.json")
SKIP_DIRS = {"galleries", "__pycache__", ".git", "checkpoints"}


@dataclass
class Found:
    """One result on disk: its folder, saved meta, the rebuilt object (or why not)."""

    folder: Path
    kind: str
    meta: dict
    result: Any = None
    error: str | None = None
    files: list[Path] = field(default_factory=list)  #: PNG / markdown / CSV beside it

    @property
    def section(self) -> str:
        return section_of(self.kind)


def first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def section_of(kind: str) -> str:
    if kind in KINDS:
        return KINDS[kind][0]
    return "features" if "feature" in kind.lower() else "other"


def _meta(folder: Path) -> tuple[dict, Path] | None:
    for name in META_FILES:
        path = folder / name
        if path.is_file():
            meta = load_json(path)
            if not isinstance(meta, dict):
                raise ProbeError(f"{path} does not hold a result (not a JSON object)")
            if name == "memorization.json":
                meta = {"kind": "Memorization", **meta}
            if "kind" in meta:
                return meta, path
    return None


def _load_object(folder: Path, kind: str, meta: dict, path: Path):
    """The result object: through the shared contract if present, else the class's own loader."""
    if path.name == "memorization.json":  # `probe memorization` before the Result contract: a bare dict
        return meta
    errors = []
    try:
        from ..result import load_result  # the one result contract (issue 13), once it exists
    except ImportError:
        load_result = None
    if load_result is not None:
        try:
            return load_result(folder)
        except Exception as e:  # an older save format: the legacy loader below may still read it
            errors.append(first_line(e))
    target = KINDS.get(kind, (None, None))[1]
    if target is None:
        if errors:
            raise ProbeError(errors[0])
        return None
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls).load(folder)


def read(folder: str | Path) -> Found:
    """One result folder -> :class:`Found`; a ProbeError when the folder holds no result."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProbeError(f"no result folder at {folder}")
    found = _meta(folder)
    if found is None:
        raise ProbeError(f"{folder} holds no result (no {', '.join(META_FILES)} with a kind)")
    meta, path = found
    kind = str(meta["kind"])
    out = Found(folder, kind, meta, files=_loose(folder))
    try:
        out.result = _load_object(folder, kind, meta, path)
    except Exception as e:
        out.error = f"could not be read back ({first_line(e)}); its saved settings are shown"
    return out


def _loose(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".png", ".md", ".csv", ".jpg"))


def discover(folder: str | Path, depth: int = 3) -> tuple[list[Found], list[str]]:
    """Every result in ``folder`` (itself, or folders below it), and one line per damaged one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ProbeError(f"no result folder at {folder}")
    results: list[Found] = []
    problems: list[str] = []

    def walk(d: Path, left: int):
        try:
            results.append(read(d))
            return  # a result's subfolders hold its galleries and runs, not other results
        except ProbeError as e:
            if any((d / n).is_file() for n in META_FILES):
                problems.append(f"{d}: {first_line(e)}")
                return
        if left > 0:
            for sub in sorted(p for p in d.iterdir() if p.is_dir() and p.name not in SKIP_DIRS
                              and not p.name.startswith(".")):
                walk(sub, left - 1)

    walk(folder, depth)
    results = _drop_parts(results)
    results.sort(key=lambda f: (ORDER.index(f.section), str(f.folder)))
    return results, problems


def _drop_parts(results: list[Found]) -> list[Found]:
    """A dictionary result per dataset (the probe's resume cache) is shown once, inside the merged one."""
    def sets(f: Found) -> set:
        d = f.meta.get("datasets")
        return set(d) if f.section == "dictionary" and isinstance(d, dict) else set()

    return [f for f in results if not any(g is not f and sets(f) and sets(f) < sets(g) for g in results)]
