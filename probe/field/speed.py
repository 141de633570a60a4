"""Fast paths for f(z) = E(D(z)): reduced precision, channels_last, torch.compile, batch size from memory.

:func:`fast_map` wraps any :class:`LatentMap` in a :class:`FastMap` whose *state* stays in
float32 (seeds, iterates and residuals are compared in fp32, as the convergence rule
needs) while E and D *compute* in ``dtype`` (bf16 on a GPU is ~1.6x faster than fp32
eager, see issue 8). :func:`choose_batch_size` sizes a batch from the free memory of the
device and the per-seed memory of one small trial run; :func:`apply_chunked` evaluates
f in chunks and halves the chunk on out-of-memory instead of failing.

Nothing here hard-codes a device: CUDA uses ``torch.cuda.mem_get_info`` and the
allocator's peak; the CPU uses available RAM (cgroup limit included) and a count of the
live tensors during the trial run.
"""
from __future__ import annotations

import copy
import weakref
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..errors import ProbeError
from ..maps.base import LatentMap

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16, "fp64": torch.float64, "float64": torch.float64}
#: Share of free memory a batch may take: the GPU is ours; the CPU's RAM is shared with the OS and others.
FRACTION = {"cuda": 0.8, "cpu": 0.5}
MAX_BATCH = 1024  # beyond this a step is no faster per seed, and the tail of a run stays long


def as_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) not in DTYPES:
        raise ProbeError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[str(dtype)]


def _memory_format(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


class FastMap(LatentMap):
    """``inner`` computing in ``compute_dtype`` (optionally channels_last and compiled); fp32 outside.

    ``dtype`` reports the *state* dtype (float32), so the iteration engine keeps its
    iterates and residuals in full precision; only E and D run in reduced precision.
    """

    def __init__(self, inner: LatentMap, compute_dtype: torch.dtype | None = None, channels_last: bool = False,
                 compile: bool | str = False, state_dtype: torch.dtype = torch.float32):
        super().__init__()
        if isinstance(inner, FastMap):
            inner = inner.inner
        self.inner = inner
        self.compute_dtype = compute_dtype or inner.dtype
        self.state_dtype, self.channels_last = state_dtype, bool(channels_last)
        self.compile_mode = (compile if isinstance(compile, str) else "default") if compile else None
        for attr in ("image_channels", "image_size", "downsample", "name", "field_defaults"):
            setattr(self, attr, getattr(inner, attr))
        self.inner.to(dtype=self.compute_dtype)
        if self.channels_last:
            self.inner.to(memory_format=torch.channels_last)
        fn = self._raw_f
        if self.compile_mode:
            # dynamic=None: the first shape compiles static, a second batch size (the run's tail,
            # after compaction) recompiles once with a symbolic batch dimension.
            fn = torch.compile(fn, mode=None if self.compile_mode == "default" else self.compile_mode)
        self._fn = fn

    def _raw_f(self, z: Tensor) -> Tensor:
        return self.inner._encode(self.inner._decode(z))

    def _in(self, x: Tensor) -> Tensor:
        return _memory_format(x.to(self.inner.device, self.compute_dtype), self.channels_last)

    def _out(self, y: Tensor) -> Tensor:
        return y.to(self.state_dtype).contiguous()

    def _encode(self, x: Tensor) -> Tensor:
        return self._out(self.inner._encode(self._in(x)))

    def _decode(self, z: Tensor) -> Tensor:
        return self._out(self.inner._decode(self._in(z)))

    def f(self, z: Tensor) -> Tensor:
        return self._out(self._fn(self._in(z)))

    def check_images(self, x: Tensor) -> Tensor:
        return self.inner.check_images(x)

    def latent_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        return self.inner.latent_shape(resolution)

    def default_resolution(self) -> int:
        return self.inner.default_resolution()

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def dtype(self) -> torch.dtype:
        return self.state_dtype

    def to(self, *args, **kwargs):
        """A device moves the model; a dtype sets the *compute* dtype (the state stays float32)."""
        dev, dt, *_ = torch._C._nn._parse_to(*args, **kwargs)
        if dev is not None:
            self.inner.to(dev)
        if dt is not None:
            self.compute_dtype = dt
            self.inner.to(dtype=dt)
        return self

    def describe(self) -> dict:
        return {**self.inner.describe(), "dtype": str(self.compute_dtype).replace("torch.", ""),
                "fast_path": {"compute_dtype": str(self.compute_dtype).replace("torch.", ""),
                              "state_dtype": str(self.state_dtype).replace("torch.", ""),
                              "channels_last": self.channels_last, "compile": self.compile_mode}}


def fast_map(map: LatentMap, dtype: str | torch.dtype | None = None, channels_last: bool = False,
             compile: bool | str = False, copy_model: bool = True) -> LatentMap:
    """``map`` with E and D in ``dtype`` (e.g. "bf16"), channels_last and/or torch.compile.

    With no option set the map is returned as it is. ``copy_model`` (default) leaves the
    original untouched, so an fp32 reference and a bf16 variant can run side by side.
    ``compile`` may be a torch.compile mode ("max-autotune", "reduce-overhead").
    """
    if not isinstance(map, LatentMap):
        raise ProbeError(f"map must be a LatentMap (see probe.load / probe.wrap), got {type(map).__name__}")
    dt = as_dtype(dtype)
    if dt is None and not channels_last and not compile:
        return map
    inner = map.inner if isinstance(map, FastMap) else map
    inner = copy.deepcopy(inner) if copy_model else inner
    return FastMap(inner, dt, channels_last=channels_last, compile=compile)


# -- memory -----------------------------------------------------------------------

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
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except ImportError:  # psutil is optional: /proc/meminfo says the same on Linux
        avail = 2 ** 31
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    cg = _cgroup_free()
    return max(0, min(avail, cg) if cg is not None else avail)


class _LiveBytes:
    """Peak bytes of live tensors created while active (CPU: there is no allocator peak to read)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        outer = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                from torch.utils._pytree import tree_map

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
            weakref.finalize(t, self._release, key)  # fires when the tensor (not just a name) dies
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


def sample_cost(map: LatentMap, shape: tuple[int, ...], trial: int = 2) -> tuple[int, int]:
    """(bytes per seed, fixed bytes) of one f-evaluation, from trial batches of 1 and ``trial``.

    Runs the map's own (unwrapped) computation so that a compiled f is not traced here.
    """
    f = map._raw_f if isinstance(map, FastMap) else map.f
    cast = map._in if isinstance(map, FastMap) else (lambda z: z.to(map.device, map.dtype))
    trial = max(2, int(trial))
    p1 = _peak_bytes(f, cast(torch.randn(1, *shape)))
    pb = _peak_bytes(f, cast(torch.randn(trial, *shape)))
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


def choose_batch_size(map: LatentMap, shape: tuple[int, ...] | None = None, n: int | None = None, *,
                      fraction: float | None = None, extra_per_sample: int = 0, max_batch: int = MAX_BATCH,
                      verify: bool | None = None, trial: int = 2) -> int:
    """Seeds per batch from the device's free memory and a trial run's per-seed cost.

    ``extra_per_sample`` adds a solver's own state (e.g. Anderson history). ``verify``
    (default: on CUDA) runs one step at the chosen size and halves it on out-of-memory.
    """
    shape = tuple(shape or map.latent_shape())
    dev = map.device
    per, fixed = sample_cost(map, shape, trial)
    per += int(extra_per_sample) + 3 * 4 * _numel(shape)  # the engine's z, f(z) and residual in fp32
    frac = FRACTION.get(dev.type, 0.5) if fraction is None else float(fraction)
    budget = frac * free_memory(dev) - fixed
    b = int(max(1, min(budget // per, max_batch, n or max_batch)))
    if verify if verify is not None else dev.type == "cuda":
        def step(k: int):
            with torch.no_grad():
                return map.f(torch.zeros(k, *shape, device=dev))
        _, b = shrink_on_oom(step, b, dev)
    return b


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def apply_chunked(f: Callable[[Tensor], Tensor], z: Tensor, chunk: int) -> tuple[Tensor, int]:
    """f over ``z`` in chunks of at most ``chunk`` rows, halving the chunk on out-of-memory.

    Returns (f(z), the chunk size that worked) so a caller keeps the smaller size.
    """
    chunk = max(1, int(chunk))
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
        out, chunk = shrink_on_oom(lambda k: f(z[lo:lo + k]), min(chunk, len(z) - lo), z.device)
        parts.append(out)
        lo += len(out)
    return torch.cat(parts), chunk


# -- reduced precision, same attractors ---------------------------------------------

def iterate_low_precision(map: LatentMap, z0: Tensor, dtype: str | torch.dtype = "bf16", tol: float | None = None,
                          max_steps: int | None = None, rtol: float | None = None, batch_size: int | None = None,
                          channels_last: bool = False, compile: bool | str = False, max_period: int = 8,
                          polish: str = "plain", low_fraction: float = 0.5):
    """Plain iteration in ``dtype`` down to its rounding floor, then fp32 to the paper's ``tol``.

    A bf16 f(z) carries ~2^-9 relative rounding, so ||f(z) - z||^2 cannot reach 1e-6 on a
    latent of norm ~100: bf16 alone ends in exact repeats or period-2 rounding cycles a
    hair from the fp32 attractor. Stage 1 runs in ``dtype`` until the relative step falls
    below ``rtol`` (default: the dtype's epsilon) or in such a cycle; stage 2 polishes those
    end points with the fp32 ``map`` under the usual rule, so the end points are fp32 fixed
    points. ``steps`` sums both stages; ``low_evals`` / ``n_evals`` says how much ran in ``dtype``.
    Stage 1 may use ``low_fraction`` of ``max_steps``; every seed that did not diverge (also
    one still wandering, e.g. in a long rounding cycle) gets the rest in fp32, so no seed
    spends more than ``max_steps`` in all. ``polish="anderson"`` runs stage 2 with the
    safeguarded Anderson solver; it is not the default because stage 1 can hand over in a
    slow pass near a saddle, and on a trained CIFAR-10 k=128 autoencoder it then ended one
    attractor at cosine 0.9965 from fp32's (benchmarks/bench_solver.py). The gain is the
    share of steps above the rounding floor: 85% of f-evaluations in bf16 on an MNIST k=128
    autoencoder, 26% on the CIFAR-10 one; the attractors matched fp32 on both (same count,
    cosine 1.0000), while 1% and 13% of seeds changed basin (rounding near basin borders).
    """
    from .iterate import DIVERGED, iterate

    if polish not in ("plain", "anderson"):
        raise ProbeError(f"polish must be 'plain' or 'anderson', got {polish!r}")
    d = getattr(map, "field_defaults", {}) or {}
    tol = d.get("tol", 1e-5) if tol is None else tol
    max_steps = int(d.get("max_steps", 500) if max_steps is None else max_steps)
    low_dt = as_dtype(dtype)
    # The switch to fp32 comes at the rounding floor, seen as a relative step below the dtype's
    # epsilon, an exact repeat or a rounding cycle. A slow pass near a saddle can look the same
    # and switch early: that costs speed, never correctness, since fp32 continues the dynamics.
    rtol = float(torch.finfo(low_dt).eps) if rtol is None else rtol
    low = fast_map(map, low_dt, channels_last=channels_last, compile=compile)
    low_steps = max(1, min(max_steps - 1, int(round(low_fraction * max_steps))))
    first = iterate(low, z0, tol=tol, max_steps=low_steps, rtol=rtol, batch_size=batch_size,
                    max_period=max(max_period, 16))  # rounding cycles can be longer than real ones
    go = first.status != DIVERGED
    out = first
    out.low_evals = first.n_evals
    if bool(go.any()):
        i = go.nonzero().flatten()
        budget = max_steps - low_steps
        if polish == "anderson":
            from .anderson import solve

            second = solve(map, first.z[i], tol=tol, max_steps=budget, batch_size=batch_size)
        else:
            second = iterate(map, first.z[i], tol=tol, max_steps=budget, batch_size=batch_size, max_period=max_period)
        for k in ("z", "status", "period", "residuals"):
            getattr(out, k)[i] = getattr(second, k).to(getattr(out, k).dtype)
        out.steps[i] += second.steps
        out.n_evals += second.n_evals
        out.seconds += second.seconds
    return out
