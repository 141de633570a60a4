"""Results save as ``tensors.safetensors`` + ``meta.json`` in a folder, atomically.

A write goes to a temporary file first and is renamed into place, so a full
disk or Ctrl-C never leaves a half-written result behind an older good one.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import ProbeError


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if e.errno == errno.ENOSPC:
            raise ProbeError(f"disk full while writing {path}; earlier results in {path.parent} are intact") from e
        raise ProbeError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, tensors, paths, numpy scalars -> plain JSON values."""
    import dataclasses

    import numpy as np

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (torch.dtype, torch.device, Path)):
        return str(obj)
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return str(obj)
    return obj


def save_json(path: str | Path, data: Any) -> None:
    text = json.dumps(to_jsonable(data), indent=2, sort_keys=False)
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"no such file: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ProbeError(f"{path} is not valid JSON: {e}") from e


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"no such file: {path}")
    return load_file(str(path))


def save_result(folder: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write ``folder/tensors.safetensors`` and ``folder/meta.json``; returns the folder."""
    folder = Path(folder)
    save_tensors(folder / "tensors.safetensors", tensors)
    save_json(folder / "meta.json", meta)
    return folder


def load_result(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ProbeError(f"no result folder at {folder}")
    return load_tensors(folder / "tensors.safetensors"), load_json(folder / "meta.json")
