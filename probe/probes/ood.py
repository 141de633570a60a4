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

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import asdict, field
from ..errors import ConfigError, ProbeError, check
from ..field.config import FieldConfig
from ..maps.base import LatentMap
from .common import check_same_model, nest_field, search_or_reuse

EXACT = "donot_use_mm_for_euclid_dist"

#: Methods in table order; every score is "higher = more OOD".
METHODS = {
    "trajectory": "attractor trajectory score: mean over z_0..z_T of the L2 distance to the nearest training attractor",
    "attractor_z0": "L2 distance of z_0 = E(x) to the nearest training attractor (no iteration)",
    "knn": "distance to the K-th nearest training latent",
    "mahalanobis": "Mahalanobis distance to the training latents (Ledoit-Wolf shrinkage covariance)",
    "reconstruction": "reconstruction error: mean over pixels of (D(E(x)) - x)^2",
    "first_residual": "first-step residual ||f(z_0) - z_0||_2",
    "steps": "steps to converge (the step budget when not converged)",
}


@dataclass(frozen=True)
class OODConfig:
    """OOD detection settings; the attractor search (``field``) takes the map's paper defaults."""

    section = "ood"

    n_train: int = field(1000, "training images whose encodings seed the attractor search and fit KNN / Mahalanobis")
    n_test: int = field(500, "images drawn from each test set (in-distribution and every OOD set)")
    score_steps: int | None = field(None, "step budget T of the trajectory score (None: the search's max_steps)")
    knn_k: int = field(50, "K of the KNN baseline (large, as in Sun et al. 2022)")
    knn_metric: str = field("cosine", "KNN distance: cosine (L2 between unit-normalised latents, Sun et al.) or l2")
    image_batch: int = field(128, "images per batch when encoding and reconstructing")
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
        if self.knn_metric not in ("cosine", "l2"):
            raise ConfigError(f"knn_metric must be cosine or l2, got {self.knn_metric!r}")


# -- batches ----------------------------------------------------------------------
def _image_batches(images, batch_size: int, device) -> Iterator[Tensor]:
    """ImageSet or float tensor [N, C, H, W] in [0, 1] -> float batches on ``device``."""
    if hasattr(images, "batches"):
        yield from images.batches(batch_size, device=device)
        return
    if not isinstance(images, Tensor):
        raise ProbeError(f"images must be an ImageSet or a float tensor [N, C, H, W], got {type(images).__name__}")
    if images.dtype == torch.uint8:
        raise ProbeError("images must be float in [0, 1], got uint8 (divide by 255 or pass an ImageSet)")
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size].to(device)


@torch.no_grad()
def encode_all(map: LatentMap, images, batch_size: int = 128) -> Tensor:
    """Latents ``[N, *latent]`` of all images, on the map's device."""
    check(len(images) > 0, "no images to encode")
    return torch.cat([map.encode(x) for x in _image_batches(images, batch_size, map.device)])


# -- scores -----------------------------------------------------------------------
def nearest_distance(z: Tensor, points: Tensor, chunk: int = 4096) -> Tensor:
    """min_k ||z_i - points_k||_2 for flattened latents, in chunks to bound memory.

    The direct (non-matmul) distance is used: near convergence the distances are tiny and the
    matmul expansion ||a||^2 - 2ab + ||b||^2 would bury them in rounding error.
    """
    p = points.reshape(len(points), -1).to(z.device, torch.float32)
    z = z.reshape(len(z), -1).float()
    return torch.cat([torch.cdist(z[i:i + chunk], p, compute_mode=EXACT).min(1).values
                      for i in range(0, len(z), chunk)])


def knn_distance(train: Tensor, z: Tensor, k: int = 50, metric: str = "cosine", chunk: int = 1024) -> Tensor:
    """Distance of each z to its k-th nearest training latent.

    ``cosine`` compares unit-normalised latents (L2 between them = sqrt(2 - 2 cos), the
    deep-nearest-neighbour OOD score of Sun et al. 2022); ``l2`` uses raw latents.
    """
    train, z = train.reshape(len(train), -1).float(), z.reshape(len(z), -1).float().to(train.device)
    if k > len(train):
        raise ProbeError(f"knn_k = {k} exceeds the {len(train)} training latents; lower knn_k or raise n_train")
    if metric == "cosine":
        train, z = torch.nn.functional.normalize(train, dim=1), torch.nn.functional.normalize(z, dim=1)
    elif metric != "l2":
        raise ProbeError(f"knn metric must be cosine or l2, got {metric!r}")
    return torch.cat([torch.cdist(z[i:i + chunk], train, compute_mode=EXACT).kthvalue(k, dim=1).values
                      for i in range(0, len(z), chunk)])


@dataclass
class Mahalanobis:
    """Mean and Ledoit-Wolf shrunk precision of training latents; ``score`` = sqrt((z-mu)^T P (z-mu)).

    Shrinkage keeps the precision finite when latents outnumber training images (d > n).
    """

    mean: Tensor
    precision: Tensor
    shrinkage: float

    @classmethod
    def fit(cls, train: Tensor) -> Mahalanobis:
        from sklearn.covariance import LedoitWolf

        x = train.reshape(len(train), -1).double().cpu().numpy()
        check(len(x) >= 2, f"Mahalanobis needs at least 2 training latents, got {len(x)}")
        lw = LedoitWolf(assume_centered=False).fit(x)
        return cls(torch.from_numpy(lw.location_), torch.from_numpy(lw.precision_), float(lw.shrinkage_))

    def score(self, z: Tensor) -> Tensor:
        d = z.reshape(len(z), -1).double().cpu() - self.mean
        return ((d @ self.precision) * d).sum(1).clamp_min(0).sqrt().float()


@torch.no_grad()
def reconstruction_error(map: LatentMap, images, batch_size: int = 128) -> Tensor:
    """Per image mean over pixels of (D(E(x)) - x)^2, x as the map sees it (e.g. RGB -> gray)."""
    out = []
    for x in _image_batches(images, batch_size, map.device):
        x = map.check_images(x).to(map.device, map.dtype)
        out.append((map.decode(map.encode(x)) - x).float().pow(2).flatten(1).mean(1).cpu())
    return torch.cat(out)


#: Floats of recorded trajectory held at once (256 MB): seeds are scored in chunks of this size.
PATH_BUDGET = 2 ** 26


@torch.no_grad()
def trajectory_scores(map: LatentMap, z0: Tensor, attractors: Tensor, *, tol: float,
                      max_steps: int) -> dict[str, Tensor]:
    """Trajectory score of each z_0 with its iteration facts (steps, status, first residual).

    The mean runs over the recorded z_0 .. z_{steps_i} only: iterate pads a seed that stopped
    early with copies of its end point, which would pull its score toward the end-point
    distance. A seed that diverged (went NaN / inf) is scored on its finite states.
    """
    from ..field import iterate

    d = int(z0[0].numel())
    chunk = max(1, PATH_BUDGET // ((int(max_steps) + 1) * d))
    scores, steps, status, first = [], [], [], []
    for i in range(0, len(z0), chunk):
        traj = iterate(map, z0[i:i + chunk], tol=tol, max_steps=max_steps, record=True)
        path = traj.path.reshape(len(traj.path), traj.path.shape[1], -1)
        n, n_pts = path.shape[:2]
        dist = nearest_distance(path.reshape(n * n_pts, d), attractors).reshape(n, n_pts).cpu()
        keep = (torch.arange(n_pts)[None, :] < traj.path_len.reshape(-1, 1)) & torch.isfinite(dist)
        scores.append(torch.where(keep, dist, 0).sum(1) / keep.sum(1).clamp_min(1))
        steps.append(traj.steps.float())
        status.append(traj.status.long())
        first.append(traj.first_residual.float())  # ||f(z_0) - z_0||, L2 (not squared)
    status = torch.cat(status)
    return {"trajectory": torch.cat(scores), "steps": torch.cat(steps), "status": status,
            "converged": status == 0, "first_residual": torch.cat(first)}


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
        score_steps = int(config.score_steps or fcfg.max_steps)
        z = encode_all(map, train_images, config.image_batch)
        note = None
        if reference is None:
            found = search_or_reuse(map, fcfg, Path(out) if out is not None else None, seeds=z.cpu(),
                                    progress=progress, overwrite=overwrite, log=log, what="training attractors")
        else:
            from ..field import AttractorSet

            found = AttractorSet.load(reference) if isinstance(reference, (str, Path)) else reference
            note = check_same_model(found, map, allow=allow_other_model, what="OOD reference set")
        points, kind = found.points, "attractors"
        info = {"n_seeds": int(len(found.status)), "merge": found.merge["rule"], "merge_threshold": found.merge["threshold"],
                "status": found.status_counts(), "n_stable": int(found.stable.sum()), "diagnosis": found.summary()[-1],
                "other_model": note}
        if len(points) == 0:
            # an expansive map (TAEF2) has no converged seed and so no attractor: the training
            # trajectories' end points z_T, merged by the same rule, are the only reference there is
            from ..field import merge_end_points

            _, leaders = merge_end_points(found.end_points, found.merge["rule"], found.merge["threshold"])
            points, kind = found.end_points[leaders], "end points"
        info.update(n_attractors=int(len(points)), reference=kind)
        return cls(map, config, points.to(map.device), z, Mahalanobis.fit(z), float(fcfg.tol), int(fcfg.max_steps),
                   score_steps, info)

    @torch.no_grad()
    def score(self, images) -> dict[str, Tensor]:
        """Every method's score ``[N]`` (CPU) plus the iteration ``status`` and ``converged`` flags."""
        cfg = self.config
        z = encode_all(self.map, images, cfg.image_batch)
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
    return OODReport(scores=scores, in_name=in_name, out_names=list(test_out), config=asdict(config),
                     map=map.describe(), info=info)


# -- the result ----------------------------------------------------------------------
@dataclass
class OODReport:
    """Scores of every method on the in-distribution set and each OOD set, and their metrics.

    ``scores[method][set]`` is a CPU tensor [N]; ``config`` / ``map`` / ``info`` record what
    made it (the OOD config, ``map.describe()``, attractor count and merge rule, iteration
    settings, convergence fractions, the images used).
    """

    scores: dict[str, dict[str, Tensor]]
    in_name: str
    out_names: list[str]
    config: dict
    map: dict
    info: dict

    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{method: {ood set: {"fpr95", "auroc", "auroc_lo", "auroc_hi"}}}`` (fractions, not %)."""
        if getattr(self, "_metrics", None) is not None:  # the bootstrap is the slow part: once per report
            return self._metrics
        from .metrics import auroc, bootstrap_ci, fpr95

        out = {}
        for method, per_set in self.scores.items():
            s_in = per_set[self.in_name]
            out[method] = {}
            for name in self.out_names:
                lo, hi = bootstrap_ci(s_in, per_set[name], auroc)
                out[method][name] = {"fpr95": fpr95(s_in, per_set[name]), "auroc": auroc(s_in, per_set[name]),
                                     "auroc_lo": lo, "auroc_hi": hi}
        self._metrics = out
        return out

    # -- reading ----------------------------------------------------------------------
    def header(self) -> str:
        a, i = self.info["attractors"], self.info
        d = i["data"]
        ref = "attractor(s)" if a.get("reference", "attractors") == "attractors" else "merged end points (no attractor)"
        return (f"OOD detection with {self.map.get('name')}: train = {d['train'].get('name')} "
                f"(n={d['train'].get('n')}, {a['n_attractors']} {ref}, merge {a['merge']} > "
                f"{a['merge_threshold']}), in = {self.in_name} (n={d[self.in_name].get('n')}), "
                f"tol {i['tol']:g}, attractor steps <= {i['max_steps']}, score steps T <= {i['score_steps']}, "
                f"KNN K={self.config['knn_k']} ({self.config['knn_metric']})")

    def notes(self) -> list[str]:
        """Plain statements of where the trajectory score fails, inverts or could not converge."""
        m, notes, a = self.metrics(), [], self.info["attractors"]
        if a.get("diagnosis"):
            notes.append(f"attractor search from {a.get('n_seeds')} training latents: {a['diagnosis']}")
        if a.get("reference") == "end points":
            notes.append(f"no training trajectory converged, so there are no attractors: the trajectory score "
                         f"measures distances to the {a['n_attractors']} merged end points z_T of the training "
                         f"trajectories after {self.info['max_steps']} steps instead.")
        groups: dict[tuple, list[str]] = {}  # sets with the same convergence facts share one note
        for name, frac in self.info["fraction_converged"].items():
            if frac < 1:
                counts = ", ".join(f"{k} {v}" for k, v in self.info.get("status", {}).get(name, {}).items()
                                   if k != "converged" and v)
                groups.setdefault((round(frac, 6), counts), []).append(name)
        for (frac, counts), names in groups.items():
            notes.append(f"{', '.join(names)}: {100 * (1 - frac):.1f}% of trajectories did not converge within "
                         f"{self.info['score_steps']} steps" + (f" ({counts} per set)" if counts else "") +
                         f"; their trajectory score is the mean over the states z_0..z_T they reached "
                         f"(T = {self.info['score_steps']} unless stopped early in a cycle) and their "
                         f"step count is where they stopped, not a convergence time.")
        for name in self.out_names:
            t = m["trajectory"][name]["auroc"]
            if t < 0.5:
                notes.append(f"{name}: the trajectory score is INVERTED (AUROC {100 * t:.2f} < 50): the trajectories "
                             f"of these inputs stay closer to the training attractors than those of "
                             f"in-distribution test images.")
            best = max((k for k in m if k != "trajectory"), key=lambda k: m[k][name]["auroc"])
            if m[best][name]["auroc"] > t:
                notes.append(f"{name}: the trajectory score (AUROC {100 * t:.2f}) loses to {best} "
                             f"(AUROC {100 * m[best][name]['auroc']:.2f}).")
        return notes

    def to_markdown(self) -> str:
        """The paper's table: rows = methods, columns = OOD sets, cells = FPR95 / AUROC in %."""
        m = self.metrics()
        best = {n: max(m, key=lambda k: m[k][n]["auroc"]) for n in self.out_names}
        lines = [self.header(), "", "| method | " + " | ".join(f"{n} FPR95 / AUROC" for n in self.out_names) + " |",
                 "|---|" + "---|" * len(self.out_names)]
        for method in m:
            cells = []
            for n in self.out_names:
                c = m[method][n]
                cell = (f"{100 * c['fpr95']:.2f} / {100 * c['auroc']:.2f} "
                        f"[{100 * c['auroc_lo']:.1f}, {100 * c['auroc_hi']:.1f}]")
                cell = f"**{cell}**" if best[n] == method else cell
                cells.append(cell + (" (inverted)" if c["auroc"] < 0.5 else ""))
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", "FPR95: % of OOD images accepted at the threshold keeping 95% of in-distribution images "
                  "(lower is better). AUROC in % with in-distribution as positive (higher is better; < 50 = "
                  "inverted), then its 95% bootstrap interval. Bold: best AUROC per set. Every score is "
                  "higher = more OOD."]
        lines += [f"- {k}: {v}" for k, v in METHODS.items() if k in m]
        notes = self.notes()
        if notes:
            lines += ["", "Notes:"] + [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | Path) -> Path:
        """One row per (method, OOD set): fpr95, auroc and its bootstrap 95% interval, sizes."""
        from ..io import save_text

        m, n_in = self.metrics(), len(self.scores["trajectory"][self.in_name])
        rows = ["method,in_set,ood_set,fpr95,auroc,auroc_lo,auroc_hi,n_in,n_out"]
        for method, per_set in m.items():
            for n, c in per_set.items():
                rows.append(f"{method},{self.in_name},{n},{c['fpr95']:.6f},{c['auroc']:.6f},{c['auroc_lo']:.6f},"
                            f"{c['auroc_hi']:.6f},{n_in},{len(self.scores[method][n])}")
        return save_text(path, "\n".join(rows) + "\n")

    def plot_histograms(self, path: str | Path) -> Path:
        """One panel per method: the score histogram of the in-distribution set and each OOD set."""
        from matplotlib.figure import Figure

        methods = list(self.scores)
        cols = 3
        rows = (len(methods) + cols - 1) // cols
        fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, method in zip(axes.flat, methods, strict=False):
            per_set = self.scores[method]
            allv = torch.cat([per_set[n] for n in [self.in_name, *self.out_names]]).double()
            lo, hi = float(allv.min()), float(allv.max())
            pad = 0.5 * max(hi - lo, 1e-3 * abs(hi), 1e-6) if hi - lo < 1e-9 * max(1.0, abs(hi)) else 0.0
            bins = torch.linspace(lo - pad, hi + pad, 41, dtype=torch.float64).numpy()  # constant scores: one bar
            for n in [self.in_name, *self.out_names]:
                ax.hist(per_set[n].double().numpy(), bins=bins, histtype="step", density=True,
                        linewidth=2 if n == self.in_name else 1.2, label=n + (" (in)" if n == self.in_name else ""))
            ax.set_title(method)
            ax.ticklabel_format(axis="x", useOffset=False, style="plain")
            ax.set_xlabel("score (higher = more OOD)")
        for ax in list(axes.flat)[len(methods):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"OOD scores, {self.map.get('name')}", fontsize=10)
        fig.tight_layout()
        from ..io import save_figure

        return save_figure(fig, path, dpi=90)

    # -- saving -----------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        from ..io import save_result

        tensors = {f"{method}/{n}": v.float() for method, per_set in self.scores.items() for n, v in per_set.items()}
        meta = {"kind": "OODReport", "in_name": self.in_name, "out_names": self.out_names, "config": self.config,
                "map": self.map, "info": self.info, "metrics": self.metrics(), "methods": list(self.scores)}
        return save_result(folder, tensors, meta)

    @classmethod
    def load(cls, folder: str | Path) -> OODReport:
        from ..io import load_result

        tensors, meta = load_result(folder)
        if meta.get("kind") != "OODReport":
            raise ProbeError(f"{folder} holds a {meta.get('kind', 'unknown')} result, not an OODReport")
        scores: dict[str, dict[str, Tensor]] = {m: {} for m in meta["methods"]}
        for key, v in tensors.items():
            method, n = key.split("/", 1)
            scores[method][n] = v
        return cls(scores=scores, in_name=meta["in_name"], out_names=meta["out_names"], config=meta["config"],
                   map=meta["map"], info=meta["info"])
