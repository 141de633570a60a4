"""One contract for every result: a folder with ``meta.json`` (+ ``tensors.safetensors``) that loads back.

A result type subclasses :class:`Result` and implements three methods:

* ``_tensors(self) -> dict[str, Tensor]``: the tensors to save (may be empty: no tensor file);
* ``_meta(self) -> dict``: everything else, JSON-able (``probe.io.to_jsonable`` is applied). It must
  hold ``"config"`` (the resolved config, e.g. ``asdict(cfg.resolve(map))``) and ``"model"`` (the
  model fingerprint, ``model_fingerprint(map)``; a dict of them for results of several models,
  ``None`` for results of no model). The keys ``kind``, ``version``, ``probe_version`` and
  ``files`` are the base's;
* ``_from_saved(cls, tensors, meta) -> Self`` (a classmethod): the result back from what was saved.
  A missing key in ``tensors`` or ``meta`` is reported as one line naming the file; bump ``version``
  when the saved layout changes and read older layouts here (``meta["version"]``).

and may override ``to_rows(self) -> list[dict]`` (the tidy table: one flat dict per row, keys are
column names, never joined strings; the default is one row of the scalar entries of ``_meta``) and
``plot(self, ...)`` (build a ``matplotlib.figure.Figure``; save it with ``probe.io.save_figure``).

The base gives ``kind`` (the class name), ``meta`` (= ``header()``, the header as saved; a subclass
that keeps its own ``meta`` attribute shadows it), ``save(folder)``,
``Cls.load(folder)``, ``to_csv(path)`` and :func:`load_result` (any kind, without importing its
module: known kinds are imported on demand from ``KNOWN_KINDS``). Saving writes the tensors first
and ``meta.json`` last, each atomically; ``meta.json`` records a digest of the tensors that is also
in the tensor file's header, so a folder whose two files do not belong together is refused.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import ProbeError, first_line
from .io import load_json, load_tensors, save_csv, save_json, save_tensors, to_jsonable

__all__ = ["Result", "load_result", "model_fingerprint", "same_model", "KNOWN_KINDS"]

META, TENSORS = "meta.json", "tensors.safetensors"
_DIGEST = "probe_digest"
_RESERVED = ("kind", "version", "probe_version", "files")
#: kind -> the module that defines it, imported by load_result on first use (result.py imports no layer above it)
KNOWN_KINDS = {
    "AttractorSet": "probe.field.attractors",
    "DictionaryReport": "probe.probes.dictionary_report",
    "OODReport": "probe.probes.ood",
    "ComparisonReport": "probe.probes.compare",
    "Basins": "probe.probes.basins",
    "Memorization": "probe.probes.memorization",
    "MemorizationStudy": "probe.probes.memorization_study",
    "FeatureReport": "probe.probes.features",
}
_OLD_KINDS = {"dictionary-report": "DictionaryReport"}  # kind strings written before the Result contract
_REGISTRY: dict[str, type[Result]] = {}
R = TypeVar("R", bound="Result")


@functools.lru_cache(maxsize=1)
def _probe_version() -> str:
    try:
        from importlib.metadata import version

        return version("latent-probe")
    except Exception:  # not installed (a source checkout on sys.path)
        return "unknown"


def tensor_digest(tensors: dict) -> str:
    """A short hash of names, dtypes, shapes and bytes: ties a tensor file to its meta.json."""
    import torch

    h = hashlib.blake2b(digest_size=12)
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return h.hexdigest()


def model_fingerprint(map: Any) -> dict | None:
    """``map.fingerprint()`` (class, name, config, weight checksum, latent shape); ``describe()`` before it exists."""
    if map is None:
        return None
    for name in ("fingerprint", "describe"):
        fn = getattr(map, name, None)
        if callable(fn):
            return to_jsonable(fn())
    return {"class": type(map).__name__}


def same_model(a: dict | None, b: dict | None) -> bool:
    """Two fingerprints of one model: the same class and weight checksum (the latent shape follows the
    resolution, the name the spelling of a path); for a map without parameters (all hash alike), or
    fingerprints without a checksum, the whole fingerprint."""
    if not a or not b:
        return False
    key = next((k for k in ("weights_sha256", "checksum") if a.get(k) is not None and b.get(k) is not None), None)
    config = a.get("config")
    if key is not None and (config or {}).get("parameters") != 0:
        return a[key] == b[key] and a.get("class") == b.get("class")
    return to_jsonable(a) == to_jsonable(b)


class _Saved(dict):
    """A loaded mapping whose missing keys are one-line errors naming the file."""

    def __init__(self, data: dict, path: Path, what: str):
        super().__init__(data)
        self.path, self.what = path, what

    def __missing__(self, key):
        raise ProbeError(f"{self.path} has no {self.what} {key!r}: it is incomplete or from another program; "
                         f"re-create it by running the command again")


class _Header:
    """``result.meta`` is ``result.header()``, unless a subclass keeps its own ``meta`` (a non-data descriptor)."""

    def __get__(self, obj, cls=None):
        return self if obj is None else obj.header()


class Result:
    """Base of every saved result (AttractorSet, DictionaryReport, OODReport, ...)."""

    version: ClassVar[int] = 1
    min_version: ClassVar[int] = 1  #: oldest saved layout ``_from_saved`` still reads
    kind: ClassVar[str] = "Result"

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.kind = cls.__name__
        _REGISTRY[cls.kind] = cls

    # -- what subclasses implement -------------------------------------------------------------
    def _tensors(self) -> dict:
        return {}

    def _meta(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement _meta()")

    @classmethod
    def _from_saved(cls: type[R], tensors: dict, meta: dict) -> R:
        raise NotImplementedError(f"{cls.__name__} must implement _from_saved(tensors, meta)")

    # -- what the base gives -------------------------------------------------------------------
    def header(self) -> dict:
        """The header as saved: kind, version, probe_version, config, model and the subclass's entries."""
        body = to_jsonable(self._meta())
        missing = [k for k in ("config", "model") if k not in body]
        if missing:
            raise TypeError(f"{self.kind}._meta() must hold {' and '.join(missing)} (the Result contract)")
        clash = [k for k in _RESERVED if k in body]
        if clash:
            raise TypeError(f"{self.kind}._meta() uses reserved keys {clash}")
        return {"kind": self.kind, "version": self.version, "probe_version": _probe_version(), **body}

    meta = _Header()

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/tensors.safetensors`` (when there are tensors), then ``folder/meta.json``."""
        folder = Path(folder)
        meta = self.header()
        tensors = self._tensors()
        files = {}
        if tensors:
            digest = tensor_digest(tensors)
            path = save_tensors(folder / TENSORS, tensors, metadata={_DIGEST: digest},
                                what=f"the {self.kind} tensors")
            files[TENSORS] = {"bytes": path.stat().st_size, "digest": digest}
        save_json(folder / META, {**meta, "files": files}, what=f"the {self.kind} header")
        return folder

    @classmethod
    def load(cls: type[R], folder: str | Path) -> R:
        """The result saved in ``folder``; ``Result.load`` accepts any kind (as :func:`load_result`)."""
        folder = Path(folder)
        meta = _read_meta(folder)
        kind = meta["kind"]
        target = _class_of(kind, folder)
        if cls is not Result and not issubclass(target, cls):
            raise ProbeError(f"{folder} holds a {kind}, not a {cls.kind}; "
                             f"load it with probe.load_result({str(folder)!r})")
        version = meta.get("version", 1)
        if not isinstance(version, int) or version > target.version:
            raise ProbeError(f"{folder} holds a {kind} of version {version}, newer than this probe reads "
                             f"(version {target.version}); upgrade probe (pip install -U latent-probe)")
        if version < target.min_version:
            raise ProbeError(f"{folder} holds a {kind} of version {version}, older than this probe reads "
                             f"(from version {target.min_version}); re-create it by running the command again")
        tensors = _read_tensors(folder, meta)
        try:
            return typing.cast(R, target._from_saved(_Saved(tensors, folder / TENSORS, "tensor"),
                                                     _Saved(meta, folder / META, "key")))
        except ProbeError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
            raise ProbeError(f"{folder} is not a readable {kind} ({type(e).__name__}: {first_line(e)}); "
                             f"re-create it by running the command again") from e

    def to_rows(self) -> list[dict]:
        """The tidy table of this result: one flat dict per row (default: the scalar entries of the meta)."""
        body = to_jsonable(self._meta())
        return [{"kind": self.kind, **{k: v for k, v in body.items() if k not in ("config", "model")
                                       and (isinstance(v, (int, float, str, bool)) or v is None)}}]

    def to_csv(self, path: str | Path) -> Path:
        rows = self.to_rows()
        if not rows:
            raise ProbeError(f"{self.kind} has no rows to write to {path}")
        return save_csv(path, rows, what=f"the {self.kind} table")

    def plot(self, *args: Any, **kwargs: Any) -> Any:
        """Draw this result (subclasses build a ``matplotlib.figure.Figure``); the base has no figure."""
        raise ProbeError(f"{self.kind} has no plot")


def load_result(folder: str | Path) -> Result:
    """Any saved result, as an instance of its own class (dispatch on the saved ``kind``)."""
    return Result.load(folder)


def _read_meta(folder: Path) -> dict:
    if not folder.exists():
        raise ProbeError(f"no result at {folder}: the folder does not exist (give the --out folder of an earlier run)")
    if not folder.is_dir():
        raise ProbeError(f"{folder} is a file; a result is a folder holding {META} (give the --out folder of a run)")
    path = folder / META
    if not path.is_file():
        if (folder / "checkpoint").is_dir() or (folder / "settings.json").is_file():
            raise ProbeError(f"{folder} holds an unfinished run (no {META} yet): "
                             f"run the same command again to finish it")
        raise ProbeError(f"{folder} is not a probe result (no {META}); give the --out folder of a probe command")
    meta = load_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise ProbeError(f"{path} names no result kind: {folder} is not a probe result")
    meta["kind"] = _OLD_KINDS.get(meta["kind"], meta["kind"])
    return meta


def _class_of(kind: str, folder: Path) -> type[Result]:
    if kind not in _REGISTRY and kind in KNOWN_KINDS:
        try:
            importlib.import_module(KNOWN_KINDS[kind])
        except ImportError as e:
            raise ProbeError(f"{folder} holds a {kind}, whose module {KNOWN_KINDS[kind]} cannot be imported: "
                             f"{first_line(e)}") from e
    if kind not in _REGISTRY:
        known = ", ".join(sorted(set(KNOWN_KINDS) | set(_REGISTRY)))
        raise ProbeError(f"{folder} holds a result of kind {kind!r} that this probe does not know "
                         f"(known: {known}); upgrade probe or import the module that defines it")
    return _REGISTRY[kind]


def _read_tensors(folder: Path, meta: dict) -> dict:
    path = folder / TENSORS
    files = meta.get("files")
    expected = files.get(TENSORS) if isinstance(files, dict) else None
    if files is not None and expected is None:
        return {}
    if not path.is_file():
        if files is None:  # written before the Result contract, without tensors
            return {}
        raise ProbeError(f"{path} is missing: the result in {folder} is incomplete; re-create it by running the "
                         f"command again")
    if expected is not None and path.stat().st_size != expected.get("bytes"):
        raise ProbeError(f"{path} is truncated or replaced ({path.stat().st_size} bytes, {META} says "
                         f"{expected.get('bytes')}); re-create it by running the command again")
    tensors = load_tensors(path)
    if expected is not None and expected.get("digest") is not None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            digest = (f.metadata() or {}).get(_DIGEST)
        if digest != expected["digest"]:
            raise ProbeError(f"{path} does not belong to {folder / META} (another run's tensors); "
                             f"re-create the result by running the command again")
    return tensors

