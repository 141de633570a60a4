"""Resume: a long run saves its whole iteration state to its output folder every N steps.

Started again with the same command, the run finds the checkpoint, checks it was made
by the same run (a fingerprint of the config, the map and the seeds) and continues
from the saved batch, so it ends with exactly the attractors of an uninterrupted run.
One file per process; each write is atomic (probe.io), so a kill mid-write leaves the
previous checkpoint intact.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..errors import ProbeError
from ..io import load_tensors, save_tensors

__all__ = ["path_for", "tensor_digest", "fingerprint", "save", "resume", "clear"]

FOLDER = "checkpoint"
KEY = "probe_checkpoint"


def path_for(out: str | Path, rank: int = 0, size: int = 1) -> Path:
    return Path(out) / FOLDER / f"rank{rank}-of-{size}.safetensors"


def tensor_digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def fingerprint(**facts) -> str:
    """A short hash of everything that decides the outcome of a run."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save(path: Path, engine, fp: str) -> None:
    tensors, scalars = engine.state_dict()
    save_tensors(path, tensors, metadata={KEY: json.dumps({"fingerprint": fp, **scalars})},
                 what=f"the checkpoint of {engine.next_seed - engine.n_active} finished seeds")


def resume(path: Path, engine, fp: str) -> bool:
    """Load ``path`` into ``engine`` if it exists; a checkpoint of another run is an error."""
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get(KEY, "{}"))
    except Exception as e:  # a foreign or damaged file: say which, do not guess
        raise ProbeError(f"cannot read checkpoint {path}: {e}; delete it to start over") from e
    if meta.get("fingerprint") != fp:
        raise ProbeError(f"{path} is a checkpoint of a different run (other settings, model or seeds); "
                         f"use another output folder or delete {path.parent} to start over")
    engine.load_state_dict(load_tensors(path), meta)
    return True


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()  # only when no other process still has its file there
    except OSError:
        pass
