"""One engine for every solver: the queue of seeds, the active batch, per-seed stopping, outputs.

Each seed stops at its own step: at a fixed point (||z_{t+1} - z_t||^2 < tol, the
paper's rule, or the optional relative rule), in a cycle, at ``max_steps``, or when it
goes non-finite. A stopped seed leaves the active batch and the next pending seed takes
its place, so the batch stays full and finished seeds cost nothing more. The solver
(``cfg.solver``, see :mod:`probe.field.solvers`) only decides the next point of each
row; the engine keeps the whole state in named tensors, so a run of any solver
checkpoints and resumes exactly (:meth:`Engine.state_dict`).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ProbeError
from ..maps.base import LatentMap
from .compute import compute_map
from .config import FieldConfig
from .memory import apply_chunked, choose_batch_size
from .solvers import make_solver
from .status import CONVERGED, CYCLE, DIVERGED, RUNNING, UNCONVERGED

__all__ = ["Engine", "state_dtype", "curve_step", "median_curve", "HISTORY_BUDGET"]

HISTORY_BUDGET = 2 ** 27  # floats of relative-step history kept per process (512 MB)
HISTORY_EVERY = 4  # the relative step of every seed is kept every this many steps
_DT = {"fp64": torch.float64, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


#: A seed computing in bf16/fp16 switches to the map's own dtype once its relative step is below
#: FLOOR x the low dtype's epsilon (its rounding floor), or after LOW_SHARE of max_steps.
FLOOR, LOW_SHARE = 4.0, 0.5
_LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}


def state_dtype(cfg: FieldConfig, map: LatentMap) -> torch.dtype:
    """The dtype seeds, iterates and end points are kept in: fp64 or fp32 (reduced precision computes only;
    the map's own fp32/fp64 then polishes)."""
    if cfg.dtype in _LOW:
        return map.dtype if map.dtype in (torch.float32, torch.float64) else torch.float32
    return torch.float64 if cfg.dtype == "fp64" else torch.float32


def curve_step(n: int, max_steps: int) -> int:
    """Keep every k-th relative step (at least every HISTORY_EVERY-th) within the history budget of n seeds."""
    return max(HISTORY_EVERY, math.ceil(n * max_steps / HISTORY_BUDGET))


def median_curve(history: Tensor) -> Tensor:
    """Per step, the median relative step over the seeds still running then ([N, T] -> [T'])."""
    ran = ~torch.isnan(history).all(0)
    if not bool(ran.any()):
        return torch.zeros(0)
    return history[:, : int(ran.nonzero().max()) + 1].nanmedian(0).values


def check_seeds(z0, shape: tuple[int, ...] | None = None) -> Tensor:
    if not isinstance(z0, Tensor):
        try:
            import numpy as np

            if isinstance(z0, np.ndarray):
                z0 = torch.from_numpy(np.ascontiguousarray(z0))
        except ImportError:  # pragma: no cover
            pass
    if not isinstance(z0, Tensor):
        raise ProbeError(f"seeds must be a torch.Tensor or numpy array, got {type(z0).__name__}")
    if not z0.is_floating_point():
        z0 = z0.float()
    if z0.dim() < 2 or z0.shape[0] == 0:
        raise ProbeError(f"seeds must be [N, *latent_shape] with N >= 1, got shape {tuple(z0.shape)}")
    if shape is not None and tuple(z0.shape[1:]) != tuple(shape):
        raise ProbeError(f"seeds have latent shape {tuple(z0.shape[1:])}, the map expects {tuple(shape)}")
    bad = int((~torch.isfinite(z0.reshape(len(z0), -1))).any(1).sum())
    if bad:
        raise ProbeError(f"{bad} of {len(z0)} seeds contain NaN or inf")
    return z0


def _pixels(map: LatentMap, shape: tuple[int, ...]) -> int | None:
    if map.downsample and len(shape) == 3:
        return shape[-1] * map.downsample * shape[-2] * map.downsample
    return map.image_size ** 2 if map.image_size else None


class Engine:
    """The resumable state of iterating N seeds with one solver: outputs, active rows, queue."""

    def __init__(self, map: LatentMap, z0: Tensor, cfg: FieldConfig, *, record_every: int = 0,
                 curve_every: int | None = None):
        self.cfg, self.map = cfg, map
        self.dtype = state_dtype(cfg, map)
        self.z0 = check_seeds(z0).detach().to("cpu", self.dtype)
        self.shape = tuple(self.z0.shape[1:])
        if cfg.tol is None or cfg.max_steps is None or cfg.dtype is None:
            raise ProbeError("the engine needs a resolved FieldConfig (cfg.resolve(map))")
        self.tol, self.rtol, self.max_steps = float(cfg.tol), cfg.rtol, int(cfg.max_steps)
        self.record_every = int(record_every)
        self.dev = map.device
        # f is evaluated with the map itself, or a copy computing in cfg.dtype / compiled; a low dtype
        # (bf16, fp16) computes each seed down to its rounding floor, then the map's own dtype polishes
        low = _LOW.get(cfg.dtype)
        compute = self.dtype if low is not None else _DT[cfg.dtype]
        self.step_map = compute_map(map, compute, compile=cfg.compile) if compute != map.dtype or cfg.compile else map
        self.low_map = compute_map(map, low, compile=cfg.compile) if low is not None else None
        self.floor = FLOOR * float(torch.finfo(low).eps) if low is not None else 0.0
        self.low_steps = max(1, int(LOW_SHARE * self.max_steps))
        self.low_evals = 0
        self.solver = make_solver(cfg.solver, self)
        n = len(self.z0)
        self.batch_size = int(cfg.batch_size or choose_batch_size(
            self.step_map.f, self.shape, n, self.dev, self.dtype,
            extra_per_sample=getattr(self.solver, "bytes_per_seed", lambda: 0)(), pixels=_pixels(map, self.shape)))
        self.chunk = self.batch_size  # f is evaluated in chunks of this size; halves on out-of-memory
        self.curve_every = int(curve_every or curve_step(n, self.max_steps))
        self.out = {
            "end_points": torch.zeros(n, *self.shape, dtype=self.dtype), "steps": torch.zeros(n, dtype=torch.long),
            "status": torch.full((n,), RUNNING, dtype=torch.int8), "period": torch.zeros(n, dtype=torch.long),
            "residuals": torch.full((n,), float("nan"), dtype=self.dtype),
            "first_residual": torch.full((n,), float("nan"), dtype=self.dtype),
            "rejected": torch.zeros(n, dtype=torch.long),
            "history": torch.full((n, math.ceil(self.max_steps / self.curve_every) + 1), float("nan")),
        }
        self.next_seed, self.f_evals, self.jvps, self.wall_steps = 0, 0, 0, 0
        self.elapsed = 0.0  # seconds of iteration, across resumes
        self.rows = self._new_rows(self.z0[:0], torch.zeros(0, dtype=torch.long))
        self.last_res = torch.zeros(0, dtype=torch.float64)  # of the rows, for the progress estimate
        self._fresh = 0      # rows appended by the last refill whose first residual is still to record
        self._deadline = math.inf  # the wall step at which the oldest active row reaches max_steps
        self._records: list[tuple[Tensor, Tensor, Tensor]] = []

    # -- rows -----------------------------------------------------------------------
    def _new_rows(self, z: Tensor, seed: Tensor) -> dict[str, Tensor]:
        z = z.to(self.dev, self.dtype)
        rows = {"seed": seed.to(self.dev), "z": z, "step": torch.zeros(len(z), dtype=torch.long, device=self.dev)}
        if self.low_map is not None:
            rows["full_precision"] = torch.zeros(len(z), dtype=torch.bool, device=self.dev)
        rows.update(self.solver.new_rows(z))
        return rows

    @property
    def n_active(self) -> int:
        return len(self.rows["seed"])

    @property
    def done(self) -> bool:
        return self.next_seed >= len(self.z0) and self.n_active == 0

    def _refill(self) -> None:
        free = self.batch_size - self.n_active
        if free <= 0 or self.next_seed >= len(self.z0):
            return
        lo, hi = self.next_seed, min(len(self.z0), self.next_seed + free)
        self.next_seed = hi
        new = self._new_rows(self.z0[lo:hi], torch.arange(lo, hi))
        self.rows = {k: torch.cat([self.rows[k], new[k]]) for k in self.rows}
        self._fresh = hi - lo
        self._deadline = min(self._deadline, self.wall_steps + self.max_steps)
        if self.record_every:
            self._record(new["seed"], new["step"], new["z"])

    def f(self, z: Tensor, map: LatentMap | None = None) -> Tensor:
        """f of every row of ``z`` (chunked; out of memory halves the chunk and the batch), counted."""
        if map is None and self.low_map is not None and len(z) == self.n_active:
            full = self.rows["full_precision"]
            if not bool(full.all()):  # rows above their rounding floor compute in the low dtype
                low = ~full
                fz = torch.empty_like(z)
                if bool(full.any()):
                    fz[full] = self.f(z[full], self.step_map)
                fz[low] = self.f(z[low], self.low_map)
                self.low_evals += int(low.sum())
                return fz
        m = map or self.step_map
        fz, chunk = apply_chunked(m.f, z, self.chunk)
        if chunk < self.chunk:
            self.chunk = self.batch_size = chunk
        if tuple(fz.shape) != tuple(z.shape):
            raise ProbeError(f"f changed the latent shape from {tuple(z.shape[1:])} to {tuple(fz.shape[1:])}; "
                             f"do the seeds match the map's latent shape at this resolution?")
        self.f_evals += len(z)
        return fz if fz.dtype == self.dtype else fz.to(self.dtype)

    # -- one step -------------------------------------------------------------------
    def step(self) -> int:
        """One step of every active seed; returns how many seeds stopped."""
        if torch.is_grad_enabled():  # the run loop turns grad off once; a direct call gets it here
            with torch.no_grad():
                return self._step()
        return self._step()

    def _step(self) -> int:
        """One step of every active seed; returns how many seeds stopped.

        Kept lean (a handful of tensor ops beyond f): the relative-step history is written
        every ``curve_every`` steps only, and non-finite residuals are caught in one pass."""
        self._refill()
        rows = self.rows
        if self.n_active == 0:
            return 0
        z_prev, t = rows["z"], rows["step"]
        full = rows.get("full_precision")
        watch = self.rtol is not None or self.wall_steps % self.curve_every == 0 or self._fresh or full is not None
        zz = z_prev.flatten(1).pow(2).sum(1).clamp_min(1e-60) if watch else None
        out = self.solver.step(rows)
        res = out.res
        self.wall_steps += 1
        o = self.out
        seed = rows["seed"]
        if watch:
            rel = (res / zz).sqrt()
            if self._fresh:
                k, fresh = self._fresh, seed[-self._fresh:].cpu()
                o["first_residual"][fresh] = res[-k:].sqrt().to("cpu", self.dtype)
                o["history"][fresh, 0] = rel[-k:].float().cpu()
                self._fresh = 0
            if (self.wall_steps - 1) % self.curve_every == 0:  # slot ceil(t / c): one per row and c steps
                o["history"][seed.cpu(), torch.div(t + self.curve_every - 1, self.curve_every,
                                                   rounding_mode="floor").cpu()] = rel.float().cpu()
        if out.rejected is not None:
            o["rejected"].index_add_(0, seed.cpu(), out.rejected.long().cpu())
        clean = torch.nan_to_num(res, nan=-1.0, posinf=-1.0, neginf=-1.0)  # non-finite -> -1: stops below
        if out.converged is None and self.rtol is None and full is None:
            stop = clean < self.tol
        else:
            conv = (clean < self.tol) & (clean >= 0) if out.converged is None else out.converged
            if self.rtol is not None:
                conv = conv | (rel < self.rtol)
            if full is not None:  # only the polish in the map's own dtype converges (or cycles)
                conv = conv & full
                if out.cycle is not None:
                    out.cycle = (out.cycle[0] & full, out.cycle[1])
                rows["full_precision"] = full | (rel < self.floor) | (t + 1 >= self.low_steps)
            stop = conv | (clean < 0)
        if out.cycle is not None:
            stop = stop | out.cycle[0]
        t1 = t + 1
        rows["step"] = t1
        if self.wall_steps >= self._deadline:
            stop = stop | (t1 >= self.max_steps)
        if self.record_every:
            due = ((t1 % self.record_every) == 0) | stop
            self._record(seed[due], t1[due], out.end[due])
        if not bool(stop.any()):
            self.last_res = res
            return 0
        sidx = stop.nonzero().squeeze(1)  # indices once: boolean masks would redo nonzero per tensor
        kidx = (~stop).nonzero().squeeze(1)
        clean_s = clean.index_select(0, sidx)
        finite = clean_s >= 0
        conv_s = (clean_s < self.tol) & finite if out.converged is None and self.rtol is None and full is None \
            else conv.index_select(0, sidx) & finite
        code = torch.where(conv_s, CONVERGED, UNCONVERGED)
        if out.cycle is not None:
            cyc = out.cycle[0].index_select(0, sidx)
            code = torch.where(cyc & ~conv_s, CYCLE, code)
        code = torch.where(finite, code, DIVERGED)
        end = out.end.index_select(0, sidx)
        if not bool(finite.all()):  # diverged: the last finite z
            end = torch.where(finite.view(-1, *[1] * (end.dim() - 1)), end, z_prev.index_select(0, sidx))
        i = seed.index_select(0, sidx).cpu()
        o["end_points"][i] = end.to("cpu", self.dtype)
        o["steps"][i] = t1.index_select(0, sidx).cpu()
        o["status"][i] = code.to(torch.int8).cpu()
        if out.cycle is not None:
            o["period"][i] = torch.where(cyc, out.cycle[1].index_select(0, sidx), 0).cpu()
        o["residuals"][i] = res.index_select(0, sidx).to("cpu", self.dtype)
        self.rows = {k: v.index_select(0, kidx) for k, v in rows.items()}
        self.last_res = res.index_select(0, kidx)
        self._deadline = (self.wall_steps + self.max_steps - int(self.rows["step"].max())) if self.n_active else math.inf
        return len(sidx)

    # -- recording ------------------------------------------------------------------
    def _record(self, seed: Tensor, t: Tensor, z: Tensor) -> None:
        r = self.record_every
        pos = torch.div(t + r - 1, r, rounding_mode="floor")  # off-grid final states take the next slot
        self._records.append((seed.cpu(), pos.cpu(), z.detach().to("cpu", self.dtype)))

    def paths(self) -> tuple[Tensor, Tensor]:
        n = len(self.z0)
        length = torch.div(self.out["steps"] + self.record_every - 1, self.record_every, rounding_mode="floor") + 1
        path = torch.zeros(n, int(length.max()), *self.shape, dtype=self.dtype)
        for seed, pos, z in self._records:
            path[seed, pos] = z
        last = length - 1
        for j in range(path.shape[1]):  # pad with the final state
            pad = j > last
            if bool(pad.any()):
                path[pad, j] = path[pad, last[pad]]
        return path, length

    # -- resume ---------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {f"out.{k}": v for k, v in self.out.items()}
        tensors.update({f"rows.{k}": v.cpu() for k, v in self.rows.items()})
        scalars = {"next_seed": self.next_seed, "f_evals": self.f_evals, "jvps": self.jvps,
                   "wall_steps": self.wall_steps, "elapsed": self.elapsed, "batch_size": self.batch_size,
                   "solver": self.cfg.solver, "low_evals": self.low_evals, **{f"solver.{k}": v for k, v in self.solver.state().items()}}
        return tensors, scalars

    def load_state_dict(self, tensors: dict[str, Tensor], scalars: dict) -> None:
        if scalars.get("solver", self.cfg.solver) != self.cfg.solver:
            raise ProbeError(f"the checkpoint is of solver {scalars.get('solver')!r}, this run uses {self.cfg.solver!r}")
        for k in self.out:
            saved = tensors.get(f"out.{k}")
            if saved is None or saved.shape != self.out[k].shape:
                raise ProbeError(f"checkpoint does not match this run ({k} missing or of another shape)")
            self.out[k] = saved.clone().to(self.out[k].dtype)
        missing = [k for k in self.rows if f"rows.{k}" not in tensors]
        if missing:
            raise ProbeError(f"checkpoint does not match this run (no {', '.join(missing)} rows)")
        self.rows = {k: tensors[f"rows.{k}"].to(device=self.dev, dtype=self.rows[k].dtype) for k in self.rows}
        for k in ("next_seed", "f_evals", "jvps", "wall_steps"):
            setattr(self, k, int(scalars[k]))
        self.elapsed = float(scalars.get("elapsed", 0.0))
        self.low_evals = int(scalars.get("low_evals", 0))
        self.batch_size = self.chunk = max(self.n_active, int(scalars.get("batch_size", self.batch_size)), 1)
        self.solver.load_state({k[7:]: v for k, v in scalars.items() if k.startswith("solver.")})
        self.last_res = torch.full((self.n_active,), float("nan"), dtype=torch.float64)
        self._deadline = (self.wall_steps + self.max_steps - int(self.rows["step"].max())) if self.n_active else math.inf
