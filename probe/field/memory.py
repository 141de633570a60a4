"""Batch sizes from memory, and out-of-memory handled by halving the batch (issue 11 item 5).

CUDA: the batch is sized from ``torch.cuda.mem_get_info`` and the allocator's peak of a
trial step. CPU: from a memory budget (a share of available RAM, cgroup limit included,
capped at :data:`CPU_BUDGET`) and a count of the live tensors of a trial step. Either
way, an out-of-memory error during the run halves the chunk f is evaluated in and the
run continues with the smaller batch.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ProbeError

__all__ = ["free_memory", "choose_batch_size", "is_oom", "shrink_on_oom", "apply_chunked", "sample_cost"]

#: Share of free memory a batch may take: the GPU is ours; the CPU's RAM is shared with the OS and others.
FRACTION = {"cuda": 0.8, "cpu": 0.5}
#: Most bytes one batch may hold on the CPU, whatever RAM is free: a larger batch is no faster per seed there.
CPU_BUDGET = 2 ** 31
MAX_BATCH = 1024  # beyond this a step is no faster per seed, and the tail of a run stays long


def _cgroup_free() -> int | None:
    """Memory left under a cgroup v2 limit (containers), or None when unlimited."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def free_memory(device: str | torch.device = "cpu") -> int:
    """Bytes a run may still allocate on ``device``: free GPU memory (plus what the caching
    allocator holds unused), or available RAM bounded by the cgroup limit."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    avail = 2 ** 31
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    cg = _cgroup_free()
    return max(0, min(avail, cg) if cg is not None else avail)


class _LiveBytes:
    """Peak bytes of live tensors created while active (CPU: there is no allocator peak to read)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_map

        outer = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tree_map(outer._track, out)
                return out

        self.mode, self.live, self.now, self.peak = Mode(), {}, 0, 0

    def _track(self, t):
        if isinstance(t, Tensor) and t.device.type != "meta":
            s = t.untyped_storage()
            key = s.data_ptr()
            if key in self.live:
                self.live[key][1] += 1
            else:
                self.live[key] = [s.nbytes(), 1]
                self.now += s.nbytes()
                self.peak = max(self.peak, self.now)
            weakref.finalize(t, self._release, key)
        return t

    def _release(self, key):
        entry = self.live.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                self.now -= entry[0]
                del self.live[key]

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


def _peak_bytes(f: Callable[[Tensor], Tensor], z: Tensor) -> int:
    if z.device.type == "cuda":
        torch.cuda.synchronize(z.device)
        base = torch.cuda.memory_allocated(z.device)
        torch.cuda.reset_peak_memory_stats(z.device)
        with torch.no_grad():
            f(z)
        torch.cuda.synchronize(z.device)
        return int(torch.cuda.max_memory_allocated(z.device) - base)
    with torch.no_grad(), _LiveBytes() as live:
        f(z)
    return int(live.peak)


def sample_cost(f: Callable[[Tensor], Tensor], shape: tuple[int, ...], device, dtype, trial: int = 2) -> tuple[int, int]:
    """(bytes per seed, fixed bytes) of one f-evaluation, from trial batches of 1 and ``trial``."""
    trial = max(2, int(trial))
    p1 = _peak_bytes(f, torch.randn(1, *shape).to(device, dtype))
    pb = _peak_bytes(f, torch.randn(trial, *shape).to(device, dtype))
    per = max((pb - p1) / (trial - 1), pb / trial / 2, 1.0)  # slope; guard against allocator noise
    return int(per), int(max(0, p1 - per))


def is_oom(e: BaseException) -> bool:
    """Out of memory on any device (CUDA raises OutOfMemoryError; the CPU allocator a RuntimeError)."""
    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def shrink_on_oom(run: Callable[[int], object], batch: int, device: str | torch.device = "cpu") -> tuple[object, int]:
    """``run(batch)``, halving ``batch`` on out-of-memory until it fits; returns (result, batch that fit)."""
    device, batch = torch.device(device), int(batch)
    while True:
        try:
            return run(batch), batch
        except Exception as e:  # noqa: BLE001 - only OOM is handled, everything else re-raises
            if not is_oom(e):
                raise
            _free_cache(device)
            if batch <= 1:
                raise ProbeError(f"out of memory on {device} even for one seed; use a smaller resolution "
                                 f"or a device with more memory") from e
            batch //= 2


def choose_batch_size(f: Callable[[Tensor], Tensor], shape: tuple[int, ...], n: int, device, dtype, *,
                      extra_per_sample: int = 0, max_batch: int = MAX_BATCH, pixels: int | None = None) -> int:
    """Seeds per batch: the device's memory budget over a seed's cost (CUDA: a trial step's
    peak; CPU: ~four live 64-channel maps of ``pixels`` per image, or of the latent size).

    ``extra_per_sample`` adds a solver's own state per seed (e.g. Anderson's history).
    On CUDA the chosen size is tried once and halved on out-of-memory.
    """
    device = torch.device(device)
    numel = 1
    for s in shape:
        numel *= int(s)
    if device.type == "cuda":
        per, fixed = sample_cost(f, tuple(shape), device, dtype)
    else:  # a trial under a dispatch mode costs seconds on a CPU: estimate ~four live 64-channel maps per image
        per, fixed = (pixels or numel) * 64 * 4 * 4, 0
    per += int(extra_per_sample) + 4 * numel * torch.finfo(dtype).bits // 8  # z, f(z), step, the end point
    budget = FRACTION.get(device.type, 0.5) * free_memory(device)
    if device.type != "cuda":
        budget = min(budget, CPU_BUDGET)
    b = int(max(1, min((budget - fixed) // per, max_batch, n)))
    if device.type == "cuda":
        def step(k: int):
            with torch.no_grad():
                return f(torch.zeros(k, *shape, device=device, dtype=dtype))
        _, b = shrink_on_oom(step, b, device)
    return b


def apply_chunked(f: Callable[[Tensor], Tensor], z: Tensor, chunk: int) -> tuple[Tensor, int]:
    """f over ``z`` in chunks of at most ``chunk`` rows, halving the chunk on out-of-memory.

    Returns (f(z), the chunk size that worked) so that the caller keeps the smaller size.
    """
    if len(z) <= chunk:
        try:
            return f(z), chunk
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            _free_cache(z.device)
            if len(z) <= 1:
                raise ProbeError(f"out of memory on {z.device} even for one seed; use a smaller resolution") from e
            chunk = max(1, len(z) // 2)
    parts, lo = [], 0
    while lo < len(z):
        want = min(chunk, len(z) - lo)
        out, fit = shrink_on_oom(lambda k, lo=lo: f(z[lo:lo + k]), want, z.device)
        if fit < want:  # only an out-of-memory shrinks the chunk, not a short last piece
            chunk = fit
        assert isinstance(out, Tensor)
        parts.append(out)
        lo += len(out)
    return torch.cat(parts), chunk
