"""Many processes through HF accelerate: seeds sharded, end points gathered on the main process.

Under ``accelerate launch`` each process iterates a contiguous slice of the seeds; the
main process gathers every slice in seed order and merges, so the attractors are the
same as one process computing all seeds. A plain ``python`` run never imports accelerate.

On a CPU-only machine, ``accelerate launch --num_processes 2 --cpu`` starts ONE process
(its simple launcher needs MPI for more); ``accelerate launch --multi_gpu --num_processes 2``
starts two through torchrun, and without cuda they talk over gloo.
"""
from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["is_distributed", "world", "process_device", "shard", "gather", "broadcast", "barrier"]


_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def is_distributed() -> bool:
    return any(int(os.environ.get(v, "1") or 1) > 1 for v in _SIZE_VARS)


def _state():
    from accelerate import PartialState

    # Without cuda, accelerate only forms a process group (gloo) when told it runs on the CPU.
    cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return PartialState(cpu=cpu)


def world() -> tuple[int, int]:
    """(this process's rank, number of processes)."""
    if not is_distributed():
        return 0, 1
    s = _state()
    return s.process_index, s.num_processes


def process_device() -> torch.device | None:
    """The device accelerate assigned to this process (None when not launched by it)."""
    return _state().device if is_distributed() else None


def shard(n: int, rank: int, size: int) -> tuple[int, int]:
    """Contiguous, balanced slice [lo, hi) of n items for ``rank``."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def gather(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (objects travel pickled, tensors on the CPU)."""
    if not is_distributed():
        return [obj]
    _state()
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """The main process's ``obj`` on every process."""
    if not is_distributed():
        return obj
    _state()
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        _state().wait_for_everyone()
