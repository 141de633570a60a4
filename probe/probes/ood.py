"""Out-of-distribution detection from latent trajectories (paper section 4.2, METHOD.md section 5).

Attractors from data: the encodings of ``n_train`` training images are iterated under
f(z) = E(D(z)) and the end points merged into Z*_train. A test image x is encoded to z_0,
iterated, and scored by the *trajectory score*

    score(x) = mean_{t = 0..T} min_{z* in Z*_train} ||z_t - z*||_2     (higher = more OOD)

where T is the step at which that sample converged, or the step budget when it did not
(an expansive map such as TAEF2 never converges: its score is then the mean over the
first ``score_steps`` steps, and the report says so).

The same harness computes the baselines on the same images and latents, so that the table
compares like with like: KNN distance in latent space, Mahalanobis distance (shrinkage
covariance), reconstruction error, the first-step residual ||f(z_0) - z_0||, the steps to
converge, and the distance of z_0 alone to the nearest attractor (the trajectory score
without its trajectory, to show what iterating adds).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import asdict, field
from ..errors import ConfigError, check
from ..field.config import FieldConfig
from ..maps.base import LatentMap
from .common import check_same_model, encode_images, model_of, nest_field, search_or_reuse
from .ood_report import OODReport
from .ood_scores import (
    METHODS,
    Mahalanobis,
    knn_distance,
    nearest_distance,
    reconstruction_error,
    trajectory_scores,
)

__all__ = ["OODConfig", "OODDetector", "REFERENCE_POINTS", "reference_points", "OODReport", "run_ood", "METHODS", "Mahalanobis",
           "knn_distance", "nearest_distance", "reconstruction_error", "trajectory_scores"]


#: What Z*_train is made of (OODConfig.reference_points).
REFERENCE_POINTS = ("attractors", "end_points")


def reference_points(found, kind: str = "attractors", threshold: float | None = None) -> tuple[Tensor, str]:
    """The points of an AttractorSet used as Z*_train, and what they are.

    ``attractors``: the set's merged fixed points (or, with ``threshold``, the converged end
    points re-merged at that threshold by the set's own rule, without a new search);
    ``end_points``: every converged end point, unmerged. When no seed converged (an expansive
    map) both fall back to the end points z_T: merged for ``attractors``, all of them otherwise.
    """
    from ..field import merge_end_points

    if kind not in REFERENCE_POINTS:
        raise ConfigError(f"reference points must be one of {', '.join(REFERENCE_POINTS)}, got {kind!r}")
    conv = found.converged
    if kind == "end_points":
        if bool(conv.any()):
            return found.end_points[conv], "unmerged end points"
        return found.end_points, "unmerged end points (none converged)"
    if bool(conv.any()) and threshold is None and len(found.points):
        return found.points, "attractors"
    rule, thr = found.merge["rule"], found.merge["threshold"] if threshold is None else threshold
    ends = found.end_points[conv] if bool(conv.any()) else found.end_points
    _, leaders = merge_end_points(ends, rule, thr)
    return ends[leaders], "attractors" if bool(conv.any()) else "end points"


@dataclass(frozen=True)
class OODConfig:
    """OOD detection settings; the attractor search (``field``) takes the map's paper defaults."""

    section = "ood"

    # the images
    n_train: int = field(1000, "training images whose encodings seed the attractor search and fit KNN / Mahalanobis")
    n_test: int = field(500, "images drawn from each test set (in-distribution and every OOD set)")
    image_batch: int = field(128, "images per batch when encoding and reconstructing")
    # the trajectory score
    reference_points: str = field("attractors", "Z*_train of the trajectory score: attractors (the training "
                                  "end points merged by field.merge / merge_threshold) or end_points (every "
                                  "converged training end point, unmerged: one per training image)")
    score_steps: int | None = field(None, "step budget T of the trajectory score (None: the search's max_steps)")
    # the KNN baseline
    knn_k: int = field(50, "K of the KNN baseline (large, as in Sun et al. 2022)")
    knn_metric: str = field("cosine", "KNN distance: cosine (L2 between unit-normalised latents, Sun et al.) or l2")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(probe_points=0), "the attractor search from the training latents "
                               "(merged into Z*_train, the paper's cosine > 0.99); its seed draws the image subsets")

    def __post_init__(self):
        nest_field(self)
        for name in ("n_train", "n_test", "knn_k", "image_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        if self.score_steps is not None and (not isinstance(self.score_steps, int) or self.score_steps < 1):
            raise ConfigError(f"score_steps must be an integer >= 1 or null, got {self.score_steps!r}")
        if self.reference_points not in REFERENCE_POINTS:
            raise ConfigError(f"reference_points must be one of {', '.join(REFERENCE_POINTS)}, "
                              f"got {self.reference_points!r}")
        if self.knn_metric not in ("cosine", "l2"):
            raise ConfigError(f"knn_metric must be cosine or l2, got {self.knn_metric!r}")


# -- the harness ---------------------------------------------------------------------
@dataclass
class OODDetector:
    """Everything fitted on the training images: attractors Z*_train, latents, Mahalanobis."""

    map: LatentMap
    config: OODConfig
    attractors: Tensor
    train_latents: Tensor
    mahalanobis: Mahalanobis
    tol: float
    max_steps: int
    score_steps: int
    attractor_info: dict

    @classmethod
    @torch.no_grad()
    def fit(cls, map: LatentMap, train_images, config: OODConfig = OODConfig(), *, reference=None,
            out: str | Path | None = None, progress: bool = False, allow_other_model: bool = False,
            overwrite: bool = False, log=None) -> OODDetector:
        """Encode the training images, find their attractors Z*_train (or take ``reference``, an
        AttractorSet; one of another model is refused unless ``allow_other_model``)."""
        res = int(train_images.resolution[0] if hasattr(train_images, "resolution") else train_images.shape[-1])
        fcfg = config.field.replace(resolution=res).resolve(map)
        assert fcfg.tol is not None and fcfg.max_steps is not None  # resolve() fills both
        score_steps = int(config.score_steps or fcfg.max_steps)
        z = encode_images(map, train_images, config.image_batch).to(map.device)
        note = None
        if reference is None:
            found = search_or_reuse(map, fcfg, Path(out) if out is not None else None, seeds=z.cpu(),
                                    progress=progress, overwrite=overwrite, log=log, what="training attractors")
        else:
            from ..field import AttractorSet

            found = AttractorSet.load(reference) if isinstance(reference, (str, Path)) else reference
            note = check_same_model(found, map, allow=allow_other_model, what="OOD reference set")
        points, kind = reference_points(found, config.reference_points)
        info = {"n_seeds": int(len(found.status)), "merge": found.merge["rule"], "merge_threshold": found.merge["threshold"],
                "status": found.status_counts(), "n_stable": int(found.stable.sum()), "diagnosis": found.summary()[-1],
                "other_model": note, "field": asdict(fcfg)}
        # an expansive map (TAEF2) has no converged seed and so no attractor: reference_points then
        # gives the training trajectories' end points z_T (merged by the same rule unless end_points)
        info.update(n_attractors=int(len(points)), reference=kind)
        return cls(map, config, points.to(map.device), z, Mahalanobis.fit(z), float(fcfg.tol), int(fcfg.max_steps),
                   score_steps, info)

    @torch.no_grad()
    def score(self, images) -> dict[str, Tensor]:
        """Every method's score ``[N]`` (CPU) plus the iteration ``status`` and ``converged`` flags."""
        cfg = self.config
        z = encode_images(self.map, images, cfg.image_batch).to(self.map.device)
        out = trajectory_scores(self.map, z, self.attractors, tol=self.tol, max_steps=self.score_steps)
        out["attractor_z0"] = nearest_distance(z, self.attractors).cpu()
        out["knn"] = knn_distance(self.train_latents, z, cfg.knn_k, cfg.knn_metric).cpu()
        out["mahalanobis"] = self.mahalanobis.score(z)
        out["reconstruction"] = reconstruction_error(self.map, images, cfg.image_batch)
        return out


def _describe(images, name: str) -> dict:
    if hasattr(images, "describe"):
        return images.describe()
    return {"name": name, "n": len(images), "shape": list(images.shape[1:])}


def run_ood(map: LatentMap, train, test_in, test_out: dict, config: OODConfig = OODConfig(),
            in_name: str = "in", log=None, *, reference=None, out: str | Path | None = None, progress: bool = False,
            allow_other_model: bool = False, overwrite: bool = False) -> OODReport:
    """Fit on ``train``, score ``test_in`` and every set in ``test_out`` ({name: images}), tabulate.

    ``out``: folder for the checkpointed attractor search of the training latents (``out/attractors``).
    """
    check(isinstance(test_out, dict) and len(test_out) > 0, "test_out must be a non-empty {name: images} mapping")
    check(in_name not in test_out, f"OOD set name {in_name!r} repeats the in-distribution name")
    say = log or (lambda msg: None)
    say(f"attractors from {len(train)} training images")
    from ..field import STATUS

    det = OODDetector.fit(map, train, config, reference=reference, out=Path(out) / "attractors" if out else None,
                          progress=progress, allow_other_model=allow_other_model, overwrite=overwrite, log=log)
    scores, converged, status, data = {}, {}, {}, {"train": _describe(train, "train")}
    for name, images in [(in_name, test_in), *test_out.items()]:
        say(f"scoring {name} ({len(images)} images)")
        s = det.score(images)
        st = s.pop("status")
        converged[name] = float(s.pop("converged").float().mean())
        status[name] = {label: int((st == code).sum()) for code, label in enumerate(STATUS)}
        for method in METHODS:
            scores.setdefault(method, {})[name] = s[method]
        data[name] = _describe(images, name)
    info = {"attractors": det.attractor_info, "tol": det.tol, "max_steps": det.max_steps,
            "score_steps": det.score_steps, "fraction_converged": converged, "status": status, "data": data,
            "methods": METHODS, "device": str(map.device)}
    return OODReport(scores=scores, in_name=in_name, out_names=list(test_out), model_=model_of(map),
                     config={**asdict(config), "field": det.attractor_info["field"]},
                     map=map.describe(), info=info)
