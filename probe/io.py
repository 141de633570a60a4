"""Where results go: :class:`OutputFolder` (contract 6), and the one atomic writer from probe/files.py.

Every file probe writes goes through :func:`atomic_write` (temporary file + rename, mode
0666 & ~umask, one-line failures, stale temporary files of dead processes removed); every
command writes into an :class:`OutputFolder`, checked, locked and fingerprinted before any
computation, so a finished result is never replaced silently.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any

from .errors import ProbeError
from .files import (
    _TMP,
    _pid_alive,
    _reason,
    atomic_write,
    clean_stale_temps,
    load_json,
    load_tensors,
    save_csv,
    save_figure,
    save_json,
    save_tensors,
    save_text,
    to_jsonable,
    write_failure,
)

__all__ = ["OutputFolder", "atomic_write", "save_json", "load_json", "save_text", "save_figure", "save_csv",
           "save_tensors", "load_tensors", "to_jsonable", "write_failure", "clean_stale_temps"]

SETTINGS, LOCK = "settings.json", ".lock"
#: settings that change how a result is computed, not what it is: a rerun that differs only here resumes
IGNORED = ("batch_size", "device", "threads", "checkpoint_every", "compile", "progress", "no_progress", "quiet",
           "json", "overwrite", "out")


def _strip(obj: Any, ignore: tuple[str, ...]) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v, ignore) for k, v in obj.items() if k not in ignore}
    return obj


def _flat(obj: Any, prefix: str = "") -> dict:
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict = {}
    for k, v in obj.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _differences(old: Any, new: Any, most: int = 3) -> str:
    a, b = _flat(old), _flat(new)
    diff = [f"{k} {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in sorted(set(a) | set(b), key=str)
            if a.get(k, "(unset)") != b.get(k, "(unset)")]
    return ", ".join(diff[:most]) + (f" and {len(diff) - most} more" if len(diff) > most else "")


def _make(folder: Path, message: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProbeError(f"{message.format(folder)}: {_reason(folder / LOCK, e)}") from e


def _holder(lock: Path) -> dict | None:
    """The live process named in ``lock`` (another host's counts as live), else None."""
    try:
        holder = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        return None
    pid = holder.get("pid") if isinstance(holder, dict) else None
    live = isinstance(pid, int) and (holder.get("host") != socket.gethostname() or _pid_alive(pid))
    return holder if live else None


class OutputFolder:
    """A command's output folder, checked, locked and fingerprinted before any computation.

    ``with OutputFolder(args.out, settings, overwrite=args.overwrite) as out:`` creates the folder
    (a file there, a read-only disk... is one line now, not after the work), takes ``.lock`` (a second
    live writer stops with one line; the lock of a dead pid is taken over) and compares ``settings``
    (JSON-able, e.g. ``{"model": fp, "config": asdict(cfg)}``; keys in ``IGNORED`` do not count) with
    the folder's ``settings.json``:

    * the same settings and a finished result: ``out.finished`` is True (load it and say ``out.note``);
    * the same settings, unfinished: the run resumes in ``out.path`` (``out.resumed``, ``out.note``);
    * other settings or foreign files: one line naming ``--overwrite``;
    * ``overwrite=True``: the new result is written to a sibling staging folder (``out.path``) that
      replaces the old folder only when the ``with`` block ends without an error.

    The block ending without an error marks the result finished. Under several processes (``RANK`` set),
    only rank 0 locks and writes; the others read the same decision (``main=False``).
    """

    def __init__(self, path: str | Path, settings: dict, overwrite: bool = False, *,
                 ignore: tuple[str, ...] = IGNORED, main: bool | None = None):
        self.target = Path(path)
        self.settings = _strip(to_jsonable(settings), ignore)
        self.overwrite = bool(overwrite)
        self.main = int(os.environ.get("RANK", "0") or 0) == 0 if main is None else main
        self.staging = self.target.parent / f".{self.target.name}.staging"
        self.path = self.staging if self.overwrite else self.target
        self.finished = self.resumed = False
        self.note = ""
        self._locks: list[Path] = []
        self._made_staging = False

    # -- entering ------------------------------------------------------------------------------
    def __enter__(self) -> OutputFolder:
        if self.target.exists() and not self.target.is_dir():
            raise ProbeError(f"--out {self.target} is a file, not a folder; choose another --out")
        try:
            if self.main:
                self._recover()
                _make(self.target, "cannot use {} as the output folder")
                self._lock(self.target)
            state = self._read(self.target)
            if self.overwrite:
                self._enter_staging(state)
            else:
                self._decide(state)
            if self.main and not self.finished:
                clean_stale_temps(self.path)
                self._write_settings(finished=False)
        except BaseException:
            self._unlock()
            if self._made_staging:
                shutil.rmtree(self.staging, ignore_errors=True)  # nothing of ours to resume there
            raise
        return self

    def _decide(self, state: dict | None) -> None:
        where = self.target
        if state is None:
            return
        if state["settings"] != self.settings:
            if not state.get("finished") and not self._work_in(where):
                return  # a run that stopped before it computed anything (a bad input): nothing to lose
            diff = _differences(state["settings"], self.settings)
            raise ProbeError(f"{where} holds a result made with other settings ({diff}); "
                             f"pass --overwrite to replace it (the old one stays until the new one is complete) "
                             f"or choose another --out")
        if state.get("finished"):
            self.finished = True
            self.note = f"reusing the finished result in {where} (same settings; --overwrite computes it again)"
        else:
            self.resumed = True
            self.note = f"resuming the unfinished run in {where} (same settings)"

    def _enter_staging(self, old: dict | None) -> None:
        state = self._read(self.staging) if self.staging.is_dir() else None
        if state is not None and state["settings"] == self.settings and not state.get("finished"):
            self.resumed = True
            self.note = f"resuming the unfinished --overwrite run in {self.staging}"
        elif self.main and self.staging.exists():
            shutil.rmtree(self.staging)
        if self.main:
            self._made_staging = not self.staging.exists()
            _make(self.staging, f"cannot stage the new result of {self.target} in {{}}")
            self._lock(self.staging)

    @staticmethod
    def _work_in(folder: Path) -> bool:
        """Whether ``folder`` holds anything besides its settings, lock and temporary files."""
        return any(n not in (SETTINGS, LOCK) and not _TMP.match(n) for n in os.listdir(folder))

    def _read(self, folder: Path) -> dict | None:
        """``settings.json`` of ``folder``; None for an empty folder; foreign files are refused."""
        path = folder / SETTINGS
        if path.is_file():
            state = load_json(path)
            if isinstance(state, dict) and "settings" in state:
                return state
            raise ProbeError(f"{path} is not a probe settings file; pass --overwrite to replace {folder} "
                             f"or choose another --out")
        if folder == self.target and not self.overwrite:
            names = sorted(n for n in os.listdir(folder) if n != LOCK and not _TMP.match(n)) if folder.is_dir() else []
            if names:
                raise ProbeError(f"{folder} already holds files this command did not make ({', '.join(names[:4])}"
                                 f"{' ...' if len(names) > 4 else ''}); pass --overwrite to replace them "
                                 f"or choose another --out")
        return None

    # -- the lock ------------------------------------------------------------------------------
    def _lock(self, folder: Path) -> None:
        """Take ``folder/.lock``: written whole to a temporary file, then linked into place (atomic)."""
        path, host = folder / LOCK, socket.gethostname()
        tmp = folder / f"{LOCK}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_text(json.dumps({"pid": os.getpid(), "host": host}))
            for _ in range(2):
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    holder = _holder(path)
                    if holder is not None:
                        raise ProbeError(f"{folder} is in use by another probe process (pid {holder['pid']} on "
                                         f"{holder.get('host')}); wait for it to finish or choose another --out "
                                         f"(delete {path} if that process is gone)") from None
                    path.unlink(missing_ok=True)  # a stale lock of a dead process: take it over
                    continue
                self._locks.append(path)
                return
        except OSError as e:
            raise ProbeError(f"cannot use {folder} as the output folder: {_reason(path, e)}") from e
        finally:
            tmp.unlink(missing_ok=True)
        raise ProbeError(f"could not lock {folder}: another process keeps taking {path}; choose another --out")

    def _unlock(self) -> None:
        for path in self._locks:
            try:
                if json.loads(path.read_text()).get("pid") == os.getpid():
                    path.unlink()
            except (OSError, ValueError):
                pass
        self._locks.clear()

    # -- finishing -----------------------------------------------------------------------------
    def _write_settings(self, finished: bool) -> None:
        save_json(self.path / SETTINGS, {"settings": self.settings, "finished": finished},
                  what=f"the settings of {self.target}")

    def finish(self) -> None:
        """Mark the result finished; with ``overwrite``, the staging folder replaces the old one now."""
        if self.finished or not self.main:
            self.finished = True
            return
        self._write_settings(finished=True)
        if self.overwrite:
            self._swap()
            self._locks = [self.target / LOCK]
            self.path = self.target
        self.finished = True

    def _swap(self) -> None:
        """The complete staging folder becomes the target; the old target goes."""
        old = self.target.parent / f".{self.target.name}.replaced-{os.getpid()}"
        try:
            if self.target.exists():
                os.replace(self.target, old)
            os.replace(self.staging, self.target)
        except OSError as e:
            if old.exists() and not self.target.exists():
                os.replace(old, self.target)
            raise ProbeError(f"the new result is complete in {self.staging} but could not replace "
                             f"{self.target}: {_reason(self.target, e)}") from e
        shutil.rmtree(old, ignore_errors=True)

    def _recover(self) -> None:
        """Finish what a kill interrupted: a complete staging folder that was never swapped in, old copies."""
        state = None
        if (self.staging / SETTINGS).is_file():
            try:
                state = load_json(self.staging / SETTINGS)
            except ProbeError:
                pass
        if isinstance(state, dict) and state.get("finished") and _holder(self.staging / LOCK) is None:
            self._swap()
            (self.target / LOCK).unlink(missing_ok=True)
        if self.target.parent.is_dir():
            for old in self.target.parent.glob(f".{self.target.name}.replaced-*"):
                pid = old.name.rpartition("-")[2]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self.finish()
        finally:
            self._unlock()
        return False
