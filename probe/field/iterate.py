"""Iterate f(z) = E(D(z)) from given seeds with per-seed stopping (METHOD.md section 1).

:func:`iterate` is the trajectory-level entry point (``find_attractors`` adds seeds,
merging and stability on top); both resolve one :class:`FieldConfig` against the map
(``cfg.resolve(map)``) and run the same :class:`~probe.field.engine.Engine`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor

from ..errors import ConfigError, ProbeError
from ..maps.base import LatentMap
from .config import FieldConfig
from .engine import Engine, check_seeds, median_curve
from .loop import run
from .runtime import check_device, threads
from .status import CONVERGED, STATUS

__all__ = ["iterate", "Trajectories", "STATUS", "configure"]


@dataclass
class Trajectories:
    """The outcome of :func:`iterate` for N seeds (all tensors on the CPU, in the state dtype)."""

    z: Tensor                 #: [N, *shape] final states (the end points)
    steps: Tensor             #: [N] f-evaluations each seed took
    status: Tensor            #: [N] codes into STATUS
    period: Tensor            #: [N] cycle period (0 when not in a cycle)
    residuals: Tensor         #: [N] last ||z_{t+1} - z_t||^2
    first_residual: Tensor    #: [N] ||f(z_0) - z_0||
    median_rel_step: Tensor   #: [T] median ||f(z) - z|| / ||z|| over the seeds still running at step t+1
    curve_every: int          #: median_rel_step[0] is at step 1, [j] within curve_every steps before j * curve_every + 1
    n_evals: int              #: f-evaluations in all
    seconds: float            #: wall time of the iteration
    config: dict = dataclasses.field(default_factory=dict)  #: the resolved FieldConfig
    n_jvps: int = 0                 #: Jacobian-vector products (Newton-type solvers)
    rejected: Tensor | None = None  #: [N] steps the solver's safeguard refused
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
        if self.path is None or self.path_len is None:
            raise ProbeError("no trajectories were recorded; call iterate(..., record=True)")
        return self.path[i, : int(self.path_len[i])]


def configure(map, cfg: FieldConfig | None, overrides: dict) -> FieldConfig:
    """``cfg`` (default FieldConfig()) with ``overrides`` (FieldConfig field names), resolved against ``map``."""
    if not isinstance(map, LatentMap):
        raise ProbeError(f"map must be a LatentMap (see probe.load / probe.wrap), got {type(map).__name__}")
    if cfg is None:
        cfg = FieldConfig()
    if not isinstance(cfg, FieldConfig):
        raise ConfigError(f"cfg must be a FieldConfig, got {type(cfg).__name__}")
    names = {f.name for f in dataclasses.fields(FieldConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; FieldConfig has {', '.join(sorted(names))}")
    cfg = cfg.replace(**overrides)
    check_device(cfg.device)
    return cfg.resolve(map)


def outcome(engine: Engine, seconds: float) -> Trajectories:
    if not engine.done:
        raise ProbeError("iteration has not finished")
    o = engine.out
    path, length = engine.paths() if engine.record_every else (None, None)
    return Trajectories(z=o["end_points"], steps=o["steps"], status=o["status"], period=o["period"],
                        residuals=o["residuals"], first_residual=o["first_residual"],
                        median_rel_step=median_curve(o["history"]), curve_every=engine.curve_every,
                        n_evals=engine.f_evals, seconds=seconds, config=dataclasses.asdict(engine.cfg),
                        n_jvps=engine.jvps, rejected=o["rejected"], path=path, path_len=length,
                        record_every=max(1, engine.record_every))


def iterate(map: LatentMap, z0, cfg: FieldConfig | None = None, *, record: bool = False, record_every: int = 1,
            progress: bool = False, **overrides) -> Trajectories:
    """Iterate every seed of ``z0`` [N, *latent_shape] (tensor or numpy array) until it stops.

    Settings come from ``cfg`` (a :class:`FieldConfig`) and ``overrides`` (its field names,
    e.g. ``tol=1e-6, solver="anderson"``), resolved against the map's family. ``record=True``
    keeps every ``record_every``-th state of every seed. Seeds that go NaN/inf are
    ``diverged``; cycles of period 2..``max_period`` are ``cycle``.
    """
    cfg = configure(map, cfg, overrides)
    if int(record_every) < 1:
        raise ConfigError(f"record_every must be >= 1, got {record_every}")
    z0 = check_seeds(z0)
    if cfg.device is not None:
        map = map.to(check_device(cfg.device))
    with threads(cfg.threads):
        engine = Engine(map, z0, cfg, record_every=record_every if record else 0)
        seconds = run(engine, progress=progress)
    return outcome(engine, seconds)
