"""Every file probe writes goes through :func:`atomic_write` (re-exported as ``probe.io.atomic_write``).

``atomic_write(path, write)`` calls ``write(tmp)`` on a temporary file next to ``path``
(``.NAME.PID-XXXXXXXX.tmp``, created with the usual 0666 & ~umask mode, 0644 by default)
and renames it into place, so a full disk, Ctrl-C or a kill never leaves a half-written
file behind an older good one. A failure (disk full, read-only, a file where a folder
should be, a ``SafetensorError``) is one :class:`ProbeError` line that says what was
being saved, where, and which finished files are kept. Temporary files of a killed
process (dead pid) are removed on the next write to that folder.

Readers (:func:`load_json`, :func:`load_tensors`) turn a damaged or foreign file into one line
naming it and what to do; they never suggest unsafe loading (pickle).
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ProbeError, first_line

__all__ = ["atomic_write", "save_json", "load_json", "save_text", "save_figure", "save_csv", "save_tensors",
           "load_tensors", "to_jsonable", "write_failure", "clean_stale_temps"]

_TMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")
_cleaned: set[Path] = set()
_in_flight: set[str] = set()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove our temporary files in ``folder`` whose writing process is gone; returns them."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = _TMP.match(name)
        if m and name not in _in_flight and (int(m.group(1)) == os.getpid() or not _pid_alive(int(m.group(1)))):
            try:
                os.unlink(folder / name)
                removed.append(folder / name)
            except OSError:
                pass
    return removed


def _errno_of(e: BaseException) -> int | None:
    if isinstance(e, OSError) and e.errno:
        return e.errno
    m = re.search(r"os error (\d+)", str(e))  # safetensors reports io errors as text
    return int(m.group(1)) if m else None


def _file_in_the_way(path: Path) -> Path | None:
    for p in [path, *path.parents]:
        if p.exists() and not p.is_dir():
            return p
    return None


def _reason(path: Path, e: BaseException) -> str:
    """Why writing ``path`` failed, in words, with what to do."""
    code = _errno_of(e)
    blocker = _file_in_the_way(path.parent)
    if blocker is not None or code == errno.ENOTDIR:
        return f"{blocker or path.parent} is a file, not a folder (choose another --out)"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "the disk is full (free some space or choose another --out)"
    if code == errno.EROFS:
        return "the file system is read-only (choose another --out)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied (choose a writable --out)"
    return getattr(e, "strerror", None) or first_line(e)


def write_failure(path: str | Path, what: str, e: BaseException) -> ProbeError:
    """The one-line error for a failed write of ``what`` to ``path``, naming the finished files kept."""
    path = Path(path)
    kept = []
    if path.parent.is_dir():
        kept = sorted(n for n in os.listdir(path.parent) if not n.startswith(".") and n != path.name)
    tail = (f"; finished files kept in {path.parent}: {', '.join(kept[:6])}{' ...' if len(kept) > 6 else ''}"
            if kept else "")
    return ProbeError(f"could not save {what} to {path}: {_reason(path, e)}{tail}")


def atomic_write(path: str | Path, write: Callable[[str], Any], what: str | None = None) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file that then replaces ``path``.

    ``what`` names the content in the error message (default: the file name).
    """
    path = Path(path)
    what = what or path.name
    name = f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    tmp = path.parent / name
    _in_flight.add(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent not in _cleaned:
            clean_stale_temps(path.parent)
            _cleaned.add(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies: 0644, not 0600
        mode = os.fstat(fd).st_mode & 0o777
        os.close(fd)
        write(str(tmp))
        os.chmod(tmp, mode)  # some writers (safetensors) recreate the file with 0600
        os.replace(tmp, path)
        return path
    except ProbeError:
        raise
    except Exception as e:
        if isinstance(e, OSError) or type(e).__name__ == "SafetensorError" or _errno_of(e) is not None:
            raise write_failure(path, what, e) from e
        raise
    finally:
        _in_flight.discard(name)
        if tmp.exists():  # after a failure or an interrupt; gone after the rename
            try:
                os.unlink(tmp)
            except OSError:
                pass


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tensors, paths, numpy scalars -> plain JSON values (non-finite floats as strings)."""
    import numpy as np
    import torch

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return str(obj)
    return obj


def save_text(path: str | Path, text: str, what: str | None = None) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), what)


def save_json(path: str | Path, data: Any, what: str | None = None) -> Path:
    return save_text(path, json.dumps(to_jsonable(data), indent=2) + "\n", what)


def save_figure(fig: Any, path: str | Path, dpi: int = 110, what: str | None = None) -> Path:
    """A ``matplotlib.figure.Figure`` saved atomically (the format from the suffix, PNG by default)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi), what or f"figure {Path(path).name}")


def save_csv(path: str | Path, rows: list[dict], what: str | None = None) -> Path:
    """A tidy table: one row per dict, the columns in order of first appearance."""
    import csv
    import io

    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: to_jsonable(v) for k, v in row.items()} for row in rows)
    return save_text(path, buf.getvalue(), what or f"table {Path(path).name}")


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"no such file: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProbeError(f"{path} is damaged (not valid JSON: {first_line(e)}); "
                         f"re-create it by running the command again") from e
    except OSError as e:
        raise ProbeError(f"cannot read {path}: {e.strerror or e}") from e


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None,
                 what: str | None = None) -> Path:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata), what)


def load_tensors(path: str | Path) -> dict:
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"no such file: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # SafetensorError, OSError: a truncated or foreign file
        raise ProbeError(f"{path} is damaged or not a safetensors file ({first_line(e)}); "
                         f"re-create it by running the command again") from e
