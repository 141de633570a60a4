"""Batched iteration of f(z) = E(D(z)) with per-seed stopping (METHOD.md section 1).

Each seed stops at its own step: at a fixed point (||z_{t+1} - z_t||^2 < tol, the
paper's rule, or the optional relative rule), in a short cycle, at ``max_steps``, or
when it goes non-finite. A stopped seed leaves the active batch and the next pending
seed takes its place, so the batch stays full and finished seeds cost nothing more.
:class:`Engine` holds the whole state, so a run can checkpoint and resume exactly.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ProbeError
from ..maps.base import LatentMap

STATUS = ("converged", "cycle", "unconverged", "diverged")
CONVERGED, CYCLE, UNCONVERGED, DIVERGED, RUNNING = 0, 1, 2, 3, 4
#: A seed is in a cycle once z_{t+1} ~ z_{t+1-p} held this many periods (and at least
#: 16 steps) without the step length shrinking: a slowly contracting oscillation
#: (eigenvalue near -1) also returns close to itself, but its steps keep shrinking.
CYCLE_PERIODS, CYCLE_MIN_STEPS, CYCLE_SHRINK = 4, 16, 0.99
HISTORY_BUDGET = 2 ** 27  # floats of relative-step history kept per process (512 MB)


@dataclass
class Trajectories:
    """The outcome of :func:`iterate` for N seeds (all tensors on the CPU)."""

    z: Tensor                 #: [N, *shape] final states (the end points)
    steps: Tensor             #: [N] f-evaluations each seed took
    status: Tensor            #: [N] codes into STATUS
    period: Tensor            #: [N] cycle period (0 when not in a cycle)
    residuals: Tensor         #: [N] last ||z_{t+1} - z_t||^2
    first_residual: Tensor    #: [N] ||f(z_0) - z_0||
    median_rel_step: Tensor   #: [T] median ||f(z) - z|| / ||z|| over the seeds still running at step t+1
    curve_every: int          #: median_rel_step[j] is at step j * curve_every + 1
    n_evals: int              #: f-evaluations in all
    seconds: float            #: wall time of the iteration
    path: Tensor | None = None      #: [N, L, *shape] z at steps 0, r, 2r, ..., final (padded with the final)
    path_len: Tensor | None = None  #: [N] valid entries of ``path`` per seed
    record_every: int = 1

    @property
    def converged(self) -> Tensor:
        return self.status == CONVERGED

    @property
    def evals_per_second(self) -> float:
        return self.n_evals / self.seconds if self.seconds > 0 else float("nan")

    def status_counts(self) -> dict[str, int]:
        return {name: int((self.status == code).sum()) for code, name in enumerate(STATUS)}

    def trajectory(self, i: int) -> Tensor:
        """The recorded states of seed ``i`` (needs ``record=True``)."""
        if self.path is None:
            raise ProbeError("no trajectories were recorded; call iterate(..., record=True)")
        return self.path[i, : int(self.path_len[i])]


def curve_step(n: int, max_steps: int) -> int:
    """Keep every k-th relative step so that the history of n seeds stays within its budget."""
    return max(1, math.ceil(n * max_steps / HISTORY_BUDGET))


def auto_batch_size(map: LatentMap, shape: tuple[int, ...], n: int, device: torch.device) -> int:
    """Seeds per batch so that decoder activations fit: ~four live 64-channel maps per image."""
    if map.downsample and len(shape) == 3:
        pixels = (shape[-1] * map.downsample) * (shape[-2] * map.downsample)
    elif map.image_size:
        pixels = map.image_size ** 2
    else:
        return max(1, min(n, 4096))  # a vector map without images (toy dynamics)
    per_seed = pixels * 64 * 4 * 4
    budget = 2 ** 31
    if device.type == "cuda":
        budget = torch.cuda.mem_get_info(device)[0] // 4
    return max(1, min(n, budget // per_seed))


def check_seeds(z0: Tensor) -> Tensor:
    if not isinstance(z0, Tensor):
        raise ProbeError(f"seeds must be a torch.Tensor, got {type(z0).__name__}")
    if z0.dim() < 2 or z0.shape[0] == 0:
        raise ProbeError(f"seeds must be [N, *latent_shape] with N >= 1, got shape {tuple(z0.shape)}")
    bad = int((~torch.isfinite(z0.reshape(len(z0), -1))).any(1).sum())
    if bad:
        raise ProbeError(f"{bad} of {len(z0)} seeds contain NaN or inf")
    return z0


class Engine:
    """The resumable state of iterating N seeds: outputs so far, the active batch, the queue."""

    def __init__(self, map: LatentMap, z0: Tensor, *, tol: float, max_steps: int, rtol: float | None = None,
                 batch_size: int | None = None, max_period: int = 8, record_every: int = 0,
                 curve_every: int | None = None):
        self.map, self.z0 = map, check_seeds(z0).detach().to("cpu")
        self.tol, self.rtol, self.max_steps = float(tol), rtol, int(max_steps)
        self.P, self.record_every = int(max_period), int(record_every)
        n, self.shape = len(z0), tuple(z0.shape[1:])
        self.dev, self.dtype = map.device, map.dtype
        self.batch_size = int(batch_size or auto_batch_size(map, self.shape, n, self.dev))
        self.curve_every = int(curve_every or curve_step(n, self.max_steps))
        self.out = {
            "z": torch.zeros(n, *self.shape), "steps": torch.zeros(n, dtype=torch.long),
            "status": torch.full((n,), RUNNING, dtype=torch.int8), "period": torch.zeros(n, dtype=torch.long),
            "residuals": torch.full((n,), float("nan")), "first_residual": torch.full((n,), float("nan")),
            "history": torch.full((n, math.ceil(self.max_steps / self.curve_every)), float("nan")),
        }
        self.next, self.ptr, self.n_evals, self.wall_steps = 0, 0, 0, 0
        self.elapsed = 0.0  # seconds of iteration, across resumes
        self.act = self._empty_batch()
        self._records: list[tuple[Tensor, Tensor, Tensor]] = []
        self._pending: list[tuple[Tensor, Tensor, Tensor]] = []

    # -- the active batch -------------------------------------------------------
    def _empty_batch(self) -> dict[str, Tensor]:
        z = torch.zeros(0, *self.shape, device=self.dev, dtype=self.dtype)
        long = lambda: torch.zeros(0, dtype=torch.long, device=self.dev)  # noqa: E731
        return {"z": z, "idx": long(), "t": long(), "run": long(), "run_p": long(),
                "run_res0": torch.zeros(0, device=self.dev),
                "ring": torch.zeros(self.P if self.P >= 2 else 0, 0, *self.shape, device=self.dev, dtype=self.dtype)}

    @property
    def done(self) -> bool:
        return self.next >= len(self.z0) and len(self.act["idx"]) == 0

    def _refill(self) -> None:
        free = self.batch_size - len(self.act["idx"])
        if free <= 0 or self.next >= len(self.z0):
            return
        lo, hi = self.next, min(len(self.z0), self.next + free)
        self.next = hi
        z = self.z0[lo:hi].to(self.dev, self.dtype)
        k = hi - lo
        ring = torch.zeros(self.act["ring"].shape[0], k, *self.shape, device=self.dev, dtype=self.dtype)
        if self.P >= 2:
            ring[self.ptr] = z
        zeros = torch.zeros(k, dtype=torch.long, device=self.dev)
        new = {"z": z, "idx": torch.arange(lo, hi, device=self.dev), "t": zeros, "run": zeros, "run_p": zeros,
               "run_res0": torch.zeros(k, device=self.dev), "ring": ring}
        self.act = {key: torch.cat([self.act[key], new[key]], dim=1 if key == "ring" else 0) for key in self.act}
        if self.record_every:
            self._record(new["idx"], zeros, z)

    # -- one step -----------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> int:
        """One f-evaluation of every active seed; returns how many seeds stopped."""
        self._refill()
        a = self.act
        z, t = a["z"], a["t"]
        if len(z) == 0:
            return 0
        fz = self.map.f(z)
        if tuple(fz.shape) != tuple(z.shape):
            raise ProbeError(f"f changed the latent shape from {tuple(z.shape[1:])} to {tuple(fz.shape[1:])}; "
                             f"do the seeds match the map's latent shape at this resolution?")
        fz = fz.to(self.dtype)
        zf, fzf = z.float().flatten(1), fz.float().flatten(1)
        res = ((fzf - zf) ** 2).sum(1)
        rel = res.sqrt() / zf.norm(dim=1).clamp_min(1e-30)
        finite = torch.isfinite(res)
        conv = finite & (res < self.tol)
        if self.rtol is not None:
            conv |= finite & (rel < self.rtol)
        cyc, cyc_p = self._cycles(a, fzf, res, conv)
        unconv = finite & ~conv & ~cyc & (t + 1 >= self.max_steps)
        stop = conv | cyc | unconv | ~finite
        if self.P >= 2:  # the oldest slot becomes z_{t+1}
            self.ptr = (self.ptr + 1) % self.P
            a["ring"][self.ptr] = fz
        self._bookkeep(a["idx"], t, res, rel)
        if self.record_every:
            due = (((t + 1) % self.record_every) == 0) | stop
            self._record(a["idx"][due], t[due] + 1, fz[due])
        self.n_evals += len(z)
        self.wall_steps += 1
        a["z"], a["t"] = fz, t + 1
        if bool(stop.any()):
            code = torch.where(conv, CONVERGED, torch.where(cyc, CYCLE, torch.where(unconv, UNCONVERGED, DIVERGED)))
            end = torch.where(finite.view(-1, *[1] * (z.dim() - 1)), fz, z)  # a diverged seed keeps its last finite z
            i = a["idx"][stop].cpu()
            o = self.out
            o["z"][i] = end[stop].float().cpu()
            o["steps"][i] = (t[stop] + 1).cpu()
            o["status"][i] = code[stop].to(torch.int8).cpu()
            o["period"][i] = torch.where(cyc, cyc_p, 0)[stop].cpu()
            o["residuals"][i] = res[stop].cpu()
            keep = ~stop
            self.act = {k: (v[:, keep] if k == "ring" else v[keep]) for k, v in a.items()}
        return int(stop.sum())

    def _cycles(self, a: dict, fzf: Tensor, res: Tensor, conv: Tensor) -> tuple[Tensor, Tensor]:
        """Period p >= 2 detection: z_{t+1} ~ z_{t+1-p} held for a window, step length not shrinking."""
        t = a["t"]
        none = torch.zeros_like(t)
        if self.P < 2:
            return none.bool(), none
        cyc_p = none
        for p in range(self.P, 1, -1):  # descending, so the smallest period wins
            past = a["ring"][(self.ptr - (p - 1)) % self.P].float().flatten(1)
            hit = (((fzf - past) ** 2).sum(1) < self.tol) & (t >= p - 1) & ~conv
            cyc_p = torch.where(hit, p, cyc_p)
        same = (cyc_p > 0) & (cyc_p == a["run_p"])
        start = (cyc_p > 0) & ~same
        run = torch.where(same, a["run"] + 1, torch.where(start, 1, 0))
        res0 = torch.where(start, res, a["run_res0"])
        window = torch.maximum(CYCLE_PERIODS * cyc_p, torch.full_like(cyc_p, CYCLE_MIN_STEPS))
        window = torch.div(window + cyc_p - 1, cyc_p.clamp_min(1), rounding_mode="floor") * cyc_p  # same phase
        due = same & (run - 1 >= window)
        cyc = due & (res >= CYCLE_SHRINK * res0)
        restart = due & ~cyc  # still shrinking: maybe a slow oscillating contraction, keep watching
        a["run"] = torch.where(restart, 1, run)
        a["run_res0"] = torch.where(restart, res, res0)
        a["run_p"] = cyc_p
        return cyc, cyc_p

    def _bookkeep(self, idx: Tensor, t: Tensor, res: Tensor, rel: Tensor) -> None:
        i, tc = idx.cpu(), t.cpu()
        first = tc == 0
        if bool(first.any()):
            self.out["first_residual"][i[first]] = res[first.to(res.device)].sqrt().cpu()
        on = (tc % self.curve_every) == 0
        self.out["history"][i[on], tc[on] // self.curve_every] = rel.float().cpu()[on]

    # -- recording ----------------------------------------------------------------
    def _record(self, idx: Tensor, t: Tensor, z: Tensor) -> None:
        r = self.record_every
        pos = torch.div(t + r - 1, r, rounding_mode="floor")  # off-grid final states take the next slot
        self._pending.append((idx, pos, z.detach().clone()))
        if sum(p[2].numel() for p in self._pending) > 2 ** 24:
            self._flush()

    def _flush(self) -> None:
        """Move buffered states off the device in one chunk, so long runs do not fill it."""
        if self._pending:
            idx, pos, z = (torch.cat([p[k] for p in self._pending]) for k in range(3))
            self._records.append((idx.cpu(), pos.cpu(), z.float().cpu()))
            self._pending = []

    def paths(self) -> tuple[Tensor, Tensor]:
        self._flush()
        n = len(self.z0)
        length = torch.div(self.out["steps"] + self.record_every - 1, self.record_every, rounding_mode="floor") + 1
        path = torch.zeros(n, int(length.max()), *self.shape)
        for idx, pos, z in self._records:
            path[idx, pos] = z
        last = length - 1
        for j in range(path.shape[1]):  # pad with the final state
            pad = j > last
            if bool(pad.any()):
                path[pad, j] = path[pad, last[pad]]
        return path, length

    # -- resume ---------------------------------------------------------------------
    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {f"out.{k}": v for k, v in self.out.items()}
        tensors.update({f"act.{k}": v.cpu() for k, v in self.act.items()})
        return tensors, {"next": self.next, "ptr": self.ptr, "n_evals": self.n_evals, "wall_steps": self.wall_steps,
                         "elapsed": self.elapsed}

    def load_state_dict(self, tensors: dict[str, Tensor], scalars: dict) -> None:
        for k in self.out:
            if tensors[f"out.{k}"].shape != self.out[k].shape:
                raise ProbeError(f"checkpoint does not match this run ({k} has shape {tuple(tensors[f'out.{k}'].shape)})")
            self.out[k] = tensors[f"out.{k}"].clone()
        self.act = {k: tensors[f"act.{k}"].to(device=self.dev, dtype=self.act[k].dtype) for k in self.act}
        for k in ("next", "ptr", "n_evals", "wall_steps"):
            setattr(self, k, int(scalars[k]))
        self.elapsed = float(scalars.get("elapsed", 0.0))

    def result(self, seconds: float) -> Trajectories:
        if not self.done:
            raise ProbeError("iteration has not finished")
        o = self.out
        curve = median_curve(o["history"])
        path, length = self.paths() if self.record_every else (None, None)
        return Trajectories(z=o["z"], steps=o["steps"], status=o["status"], period=o["period"],
                            residuals=o["residuals"], first_residual=o["first_residual"], median_rel_step=curve,
                            curve_every=self.curve_every, n_evals=self.n_evals, seconds=seconds, path=path,
                            path_len=length, record_every=max(1, self.record_every))


def median_curve(history: Tensor) -> Tensor:
    """Per step, the median relative step over the seeds still running then ([N, T] -> [T'])."""
    ran = ~torch.isnan(history).all(0)
    if not bool(ran.any()):
        return torch.zeros(0)
    return history[:, : int(ran.nonzero().max()) + 1].nanmedian(0).values


def _budget_used(engine) -> int:
    """Steps spent or given back: max_steps per stopped seed, t per running seed."""
    stopped = int((engine.out["status"] != RUNNING).sum())
    t = engine.act.get("t")
    return stopped * engine.max_steps + (int(t.sum()) if t is not None else 0)


def run(engine: Engine, progress: bool = False, every=None, callback=None) -> float:
    """Step ``engine`` to the end; ``callback(engine)`` every ``every`` steps. Returns the seconds
    of this call (``engine.elapsed``, where the engine keeps one, also counts earlier runs)."""
    bar = None
    if progress:  # the bar counts the step budget N * max_steps; a seed that stops early gives back its rest
        from tqdm.auto import tqdm

        bar = tqdm(total=len(engine.z0) * engine.max_steps, initial=_budget_used(engine), unit="eval", unit_scale=True,
                   desc="iterating", dynamic_ncols=True)
    t0, evals0, base = time.perf_counter(), engine.n_evals, getattr(engine, "elapsed", None)
    try:
        while not engine.done:
            engine.step()
            if base is not None:
                engine.elapsed = base + time.perf_counter() - t0
            if bar is not None:
                bar.update(_budget_used(engine) - bar.n)
                finished = len(engine.z0) - len(engine.act["idx"]) - (len(engine.z0) - engine.next)
                bar.set_postfix(seeds_done=finished, active=len(engine.act["idx"]),
                                evals_s=f"{(engine.n_evals - evals0) / (time.perf_counter() - t0):.3g}", refresh=False)
            if callback is not None and every and engine.wall_steps % every == 0 and not engine.done:
                callback(engine)
    finally:
        if bar is not None:
            bar.close()
    return time.perf_counter() - t0


def iterate(map: LatentMap, z0: Tensor, tol: float | None = None, max_steps: int | None = None,
            rtol: float | None = None, record: bool = False, batch_size: int | None = None, record_every: int = 1,
            progress: bool = False, max_period: int = 8) -> Trajectories:
    """Iterate z_{t+1} = f(z_t) from each seed in ``z0`` [N, *latent_shape] until it stops.

    ``tol`` / ``max_steps`` default to ``map.field_defaults`` (the paper's settings).
    ``record=True`` keeps every ``record_every``-th state of every seed on the CPU.
    Seeds that go NaN/inf are marked ``diverged``; cycles of period 2..``max_period`` are
    marked ``cycle`` (``max_period=1`` turns that off).
    """
    if not isinstance(map, LatentMap):
        raise ProbeError(f"map must be a LatentMap (see probe.load / probe.wrap), got {type(map).__name__}")
    defaults = getattr(map, "field_defaults", {}) or {}
    tol = defaults.get("tol", 1e-5) if tol is None else tol
    max_steps = defaults.get("max_steps", 500) if max_steps is None else max_steps
    if not tol > 0 or int(max_steps) < 1 or int(record_every) < 1:
        raise ProbeError(f"need tol > 0, max_steps >= 1 and record_every >= 1 (got {tol}, {max_steps}, {record_every})")
    engine = Engine(map, z0, tol=tol, rtol=rtol, max_steps=max_steps, batch_size=batch_size, max_period=max_period,
                    record_every=record_every if record else 0)
    return engine.result(run(engine, progress=progress))
