"""Data-free probing: attractors as a dictionary (paper section 4.1, METHOD.md section 4).

Gaussian seeds are iterated under f(z) = E(D(z)); the points they reach (attractors, or the
end points after ``max_steps`` when the map is expansive and has none) are flattened into
the columns of a dictionary. A held-out image is encoded, sparse-coded on that dictionary,
decoded, and compared with the image. Two references use the same number of atoms and the
same number of non-zeros: a random orthogonal basis (the paper's baseline) and PCA of
encoded data (a reference that, unlike the attractors, has seen data).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

from ..config import field
from ..errors import ProbeError
from ..maps.base import LatentMap
from .dictionary_report import AE, DictionaryReport, skey

BASES = ("attractors", "orthogonal", "pca")
CODERS = ("omp", "lasso", "both")
ATOMS_FROM = ("auto", "attractors", "end_points")
PSNR_CAP = 100.0  # dB, for reconstructions identical to the image
#: The paper's sweep halves the atom count from all of them down to 32 of 4096 (METHOD.md 4), plus 5%.
SWEEP = [1.0, 0.5, 0.25, 0.125, 0.0625, 0.05, 0.03125, 0.015625, 0.0078125]


@dataclass(frozen=True)
class DictionaryConfig:
    """Settings of one dictionary probe, with the paper's defaults (section ``dictionary`` in YAML)."""

    section: ClassVar[str] = "dictionary"

    atoms: int | None = field(None, "Gaussian seeds iterated to build the dictionary (paper: 4096 = the latent "
                                    "dimension k); None = the latent dimension of the map at this resolution")
    sparsity: float = field(0.05, "fraction of atoms non-zero in every code (paper: 5%, 205 of 4096)")
    sweep: bool = field(False, "also code at every fraction in sweep_sparsities (the sparsity-vs-MSE curve)")
    sweep_sparsities: list = field(SWEEP, "fractions for --sweep (paper: 4096, 2048, ..., 32 of 4096 atoms)")
    coder: str = field("omp", "sparse coder: omp, lasso (penalty set for the same non-zero count) or both")
    bases: list = field(list(BASES), "dictionaries to compare: attractors, orthogonal, pca")
    atoms_from: str = field("auto", "auto: attractors, or end points when the map is expansive (no attractors); "
                                    "or force attractors / end_points")
    n_images: int = field(500, "random test images per dataset (paper: 500)")
    pca_images: int = field(2000, "train-split images whose encoded latents fit the PCA reference; sets without "
                                  "a train split use a 2-fold cross-fit on the test images")
    resolution: int | None = field(None, "image side in px (None: the model's native size, else its default)")
    batch_size: int = field(64, "images per encode/decode batch")
    seed: int = field(0, "seed of the Gaussian seeds, the image draw, the orthogonal basis and atom subsets")
    tol: float | None = field(None, "iteration stops when ||z_{t+1} - z_t||^2 < tol (None: the map's family default)")
    max_steps: int | None = field(None, "iteration cap (None: the map's family default)")
    merge: str = field("cosine", "rule that merges end points into one attractor (paper: cosine)")
    merge_threshold: float = field(0.99, "merge threshold (paper: cosine > 0.99)")
    n_examples: int = field(8, "images per dataset in the reconstruction grid")

    def __post_init__(self):
        for s in [self.sparsity, *(self.sweep_sparsities if self.sweep else [])]:
            if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 < s <= 1:
                raise ProbeError(f"sparsity must be a fraction of atoms in (0, 1], got {s!r} (5% is 0.05)")
        if self.coder not in CODERS:
            raise ProbeError(f"unknown coder {self.coder!r}; choose one of {', '.join(CODERS)}")
        bad = [b for b in self.bases if b not in BASES]
        if bad or not self.bases:
            raise ProbeError(f"unknown basis {', '.join(map(str, bad)) or '(none given)'}; choose from {', '.join(BASES)}")
        if self.atoms_from not in ATOMS_FROM:
            raise ProbeError(f"atoms_from must be one of {', '.join(ATOMS_FROM)}, got {self.atoms_from!r}")
        for name in ("atoms", "n_images", "pca_images", "batch_size", "n_examples", "resolution", "max_steps"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "n_examples" else 1)):
                raise ProbeError(f"{name} must be a positive integer, got {v!r}")

    @property
    def sparsities(self) -> list[float]:
        """The main sparsity plus the sweep, largest first, without repeats."""
        values = {float(self.sparsity)} | ({float(s) for s in self.sweep_sparsities} if self.sweep else set())
        return sorted(values, reverse=True)

    @property
    def coders(self) -> list[str]:
        return ["omp", "lasso"] if self.coder == "both" else [self.coder]


def n_nonzero(sparsity: float, n_atoms: int) -> int:
    """round(sparsity * n_atoms), at least one (5% of 4096 -> 205, as in the paper)."""
    return max(1, int(math.floor(sparsity * n_atoms + 0.5)))


def resolution_of(map: LatentMap, cfg: DictionaryConfig) -> int:
    if map.image_size is not None:
        if cfg.resolution not in (None, map.image_size):
            raise ProbeError(f"{map.name} takes {map.image_size} px images only; drop --resolution {cfg.resolution}")
        return map.image_size
    return cfg.resolution or map.default_resolution()


# -- the dictionary ---------------------------------------------------------------
def dictionary_atoms(aset: Any, latent_shape: tuple[int, ...], atoms_from: str = "auto",
                     seed: int = 0) -> tuple[Tensor, dict]:
    """Flattened atoms ``[n_atoms, D]`` from an :class:`~probe.field.AttractorSet`, and what they are.

    Atoms are the stable fixed points (attractors). ``auto`` takes the end points after
    ``max_steps`` instead when the map is expansive or has no stable point: those are then the
    only data-free dictionary there is, and every table says so. The atom count is capped at
    the latent dimension D so that the orthogonal baseline (at most D orthonormal directions)
    has as many atoms; a seeded random subset is kept then.
    """
    points, ends = getattr(aset, "points", None), getattr(aset, "end_points", None)
    if points is None or ends is None:
        raise ProbeError(f"not an attractor set: {type(aset).__name__} lacks points or end_points")
    for name, t in (("attractors", points), ("end points", ends)):
        if t.numel() and tuple(t.shape[1:]) != tuple(latent_shape):
            raise ProbeError(f"attractor set does not fit this map: its {name} have latent shape {tuple(t.shape[1:])}, "
                             f"the map's latents are {tuple(latent_shape)} (compute them at the same resolution)")
    stable = getattr(aset, "stable", None)
    attractors = points[stable.bool()] if stable is not None and len(stable) == len(points) else points
    verdict = str(getattr(aset, "verdict", "unknown"))
    use_ends = atoms_from == "end_points" or (atoms_from == "auto" and (verdict == "expansive" or not len(attractors)))
    chosen = ends if use_ends else attractors
    if not len(chosen):
        raise ProbeError(f"the attractor set holds no stable attractors (dynamics {verdict}, {len(points)} fixed "
                         f"points); use atoms_from=end_points to code with the end points")
    flat = chosen.detach().reshape(len(chosen), -1).float().cpu()
    found, dim = flat.shape
    if found > dim:
        keep = torch.randperm(found, generator=torch.Generator().manual_seed(seed))[:dim]
        flat = flat[keep.sort().values]
    merge, fcfg = getattr(aset, "merge", {}) or {}, getattr(aset, "config", {}) or {}
    info = {"atoms_are": "end points" if use_ends else "attractors", "n_found": found, "n_atoms": len(flat),
            "n_fixed_points": len(points), "n_stable": len(attractors), "n_seeds": len(ends),
            "latent_dim": dim, "latent_shape": list(latent_shape), "verdict": verdict,
            "merge": merge.get("rule"), "merge_threshold": merge.get("threshold"),
            "tol": fcfg.get("tol"), "max_steps": fcfg.get("max_steps")}
    return flat, info


def _unit_columns(basis: Tensor) -> Tensor:
    # atoms are chosen by correlation with the residual: unequal norms would favour long atoms
    return basis / basis.norm(dim=0, keepdim=True).clamp_min(1e-12)


def orthogonal_basis(n_atoms: int, dim: int, seed: int, device) -> Tensor:
    """The paper's data-free baseline: ``n_atoms`` random orthonormal directions ``[D, n_atoms]``."""
    from ..sparse.bases import random_orthogonal_basis

    return random_orthogonal_basis(dim, n_atoms, seed=seed, dtype=torch.float32, device=device)


def pca_reference(fit: Tensor, n_atoms: int, device) -> Tensor:
    """Top-``n_atoms`` principal directions of encoded data ``[D, <= n_atoms]`` (fewer if the fit is small)."""
    from ..sparse.bases import pca_basis

    return _unit_columns(pca_basis(fit.to(device), n_atoms).float())


# -- encode / code / decode -----------------------------------------------------------
@torch.no_grad()
def _encode(map: LatentMap, x: Tensor, bs: int) -> Tensor:
    return torch.cat([map.encode(x[i:i + bs]).float() for i in range(0, len(x), bs)])


@torch.no_grad()
def _decode(map: LatentMap, z: Tensor, bs: int) -> Tensor:
    # images live in [0, 1]; a decoder may overshoot, and every viewer clamps, so we do too
    return torch.cat([map.decode(z[i:i + bs]).float().clamp(0, 1).cpu() for i in range(0, len(z), bs)])


def _metrics(x: Tensor, xhat: Tensor, z: Tensor, zhat: Tensor) -> dict[str, Tensor]:
    from ..images import mse, psnr

    # a perfect reconstruction has infinite PSNR; cap it so means and intervals stay finite
    return {"mse": mse(xhat, x), "psnr": psnr(xhat, x).clamp(max=PSNR_CAP),
            "latent_rel": ((zhat - z).norm(dim=1) / z.norm(dim=1).clamp_min(1e-12)).cpu()}


def _code(basis: Tensor, z: Tensor, coder: str, k: int) -> Tensor:
    from ..sparse import code

    return code(basis, z, coder=coder, n_nonzero=k) @ basis.T


def _as_uint8(x: Tensor) -> Tensor:
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def evaluate_dataset(map: LatentMap, name: str, images, atoms: Tensor, atoms_info: dict, cfg: DictionaryConfig,
                     fit_images=None, log: Callable[[str], None] | None = None) -> DictionaryReport:
    """Encode, code, decode one image set on every basis, coder and sparsity.

    ``images`` / ``fit_images`` are ImageSets (``fit_images``: train-split images for PCA,
    or None for a 2-fold cross-fit on ``images``).
    """
    dev, bs = map.device, cfg.batch_size
    x = images.float()
    shape = tuple(map.latent_shape(x.shape[-1]))
    z = _encode(map, x, bs).reshape(len(x), -1).to(dev)
    n_atoms, dim = atoms.shape
    bases: dict[str, list[tuple[Tensor | None, Tensor]]] = {}  # basis -> [(rows it codes, dictionary)]
    if "attractors" in cfg.bases:
        bases["attractors"] = [(None, _unit_columns(atoms.T.to(dev)))]
    if "orthogonal" in cfg.bases:
        bases["orthogonal"] = [(None, orthogonal_basis(n_atoms, dim, cfg.seed, dev))]
    pca_fit = "not used"
    if "pca" in cfg.bases and fit_images is not None:  # fit on data the evaluated images are not part of
        zfit = _encode(map, fit_images.float(), bs).reshape(len(fit_images.images), -1)
        bases["pca"] = [(None, pca_reference(zfit, n_atoms, dev))]
        pca_fit = (f"{len(zfit)} images of split '{getattr(fit_images, 'split', 'train')}' of "
                   f"{getattr(fit_images, 'source', '?')}, none of them evaluated")
    elif "pca" in cfg.bases:
        if len(z) < 4:
            raise ProbeError(f"{name}: the PCA reference needs a train split or at least 4 test images, got {len(z)}")
        half = torch.arange(len(z), device=dev) % 2 == 0
        bases["pca"] = [(m, pca_reference(z[~m], n_atoms, dev)) for m in (half, ~half)]
        pca_fit = f"2-fold cross-fit on the {len(z)} test images (no train split)"
    ae = _decode(map, z.reshape(-1, *shape), bs)
    values = {f"{name}|{AE}|{m}": v for m, v in _metrics(x, ae, z, z).items()}
    n_ex = min(cfg.n_examples, len(x))
    examples = {f"{name}|original": _as_uint8(x[:n_ex]), f"{name}|{AE}": _as_uint8(ae[:n_ex])} if n_ex else {}
    atoms_per = {b: min(B.shape[1] for _, B in parts) for b, parts in bases.items()}
    nonzeros = {skey(s): {b: min(n_nonzero(s, n_atoms), atoms_per[b]) for b in bases} for s in cfg.sparsities}
    for coder in cfg.coders:
        for s in cfg.sparsities:
            for b in bases:
                t0, k = time.perf_counter(), nonzeros[skey(s)][b]
                zhat = torch.empty_like(z)
                for mask, B in bases[b]:
                    rows = slice(None) if mask is None else mask
                    zhat[rows] = _code(B, z[rows], coder, min(k, B.shape[1]))
                xhat = _decode(map, zhat.reshape(-1, *shape), bs)
                for m, v in _metrics(x, xhat, z, zhat).items():
                    values[f"{name}|{b}|{coder}|{skey(s)}|{m}"] = v
                if n_ex and coder == cfg.coders[0] and s == cfg.sparsity:
                    examples[f"{name}|{b}"] = _as_uint8(xhat[:n_ex])
                if log:
                    label = atoms_info["atoms_are"] if b == "attractors" else b
                    log(f"  {name}: {coder} {label} {100 * s:.4g}% ({k} non-zeros): "
                        f"MSE {values[f'{name}|{b}|{coder}|{skey(s)}|mse'].mean():.5f} [{time.perf_counter() - t0:.1f} s]")
    info = {"spec": name, "source": getattr(images, "source", name), "n": len(x), "resolution": int(x.shape[-1]),
            "pca_fit": pca_fit, "atoms": atoms_per, "n_nonzero": nonzeros,
            "images": getattr(images, "describe", lambda: {})()}
    return DictionaryReport(_cfg_record(cfg), map.describe(), atoms_info, {name: info}, values, examples)


def _cfg_record(cfg: DictionaryConfig) -> dict:
    return {**dataclasses.asdict(cfg), "sparsities": cfg.sparsities}


def _slug(spec: str) -> str:
    """A folder name for a dataset spec; paths get their name plus a short hash of the full path."""
    if "/" in spec or "\\" in spec:
        digest = hashlib.sha1(spec.encode()).hexdigest()[:8]
        spec = f"{Path(spec.rstrip('/')).name}-{digest}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_") or "dataset"


# -- the probe ---------------------------------------------------------------------------
def run_dictionary(map: LatentMap, attractors: Any, datasets: list[str], cfg: DictionaryConfig | None = None, *,
                   out: str | Path | None = None, log: Callable[[str], None] | None = None) -> DictionaryReport:
    """The data-free dictionary probe on ``datasets`` (specs for :func:`probe.data.load_images`).

    ``attractors``: an AttractorSet, a folder holding one, or None to compute them from
    ``cfg.atoms`` Gaussian seeds (saved to ``out/attractors`` when ``out`` is given). With
    ``out``, every finished dataset is saved to ``out/datasets/<name>`` and reused on the
    next run with the same settings, so an interrupted run loses at most one dataset.
    """
    from ..data import load_images

    cfg = cfg or DictionaryConfig()
    datasets = list(dict.fromkeys(datasets))  # a set named twice is coded once
    if not datasets:
        raise ProbeError("give at least one dataset")
    res = resolution_of(map, cfg)
    shape = tuple(map.latent_shape(res))
    out = Path(out) if out is not None else None
    done, todo = {}, {}
    for spec in datasets:  # load every set first: a bad name fails before minutes of iteration
        folder = out / "datasets" / _slug(spec) if out else None
        if folder is not None and (folder / "meta.json").is_file():
            done[spec] = DictionaryReport.load(folder)
            continue
        todo[spec] = load_images(spec, split="test", n=cfg.n_images, seed=cfg.seed, resolution=res,
                                 channels=map.image_channels)
    aset = _attractors(map, attractors, cfg, res, out, log)
    atoms, atoms_info = dictionary_atoms(aset, shape, cfg.atoms_from, cfg.seed)
    if log and atoms_info["n_atoms"] < (atoms_info["n_seeds"] or 0):
        log(f"note: {atoms_info['n_found']} {atoms_info['atoms_are']} from {atoms_info['n_seeds']} seeds; every basis "
            f"codes with {atoms_info['n_atoms']} atoms (latent dim {atoms_info['latent_dim']})")
    reports = []
    for spec in datasets:
        if spec in done:
            r = done[spec]
            _check_resume(r, cfg, map, atoms_info, out / "datasets" / _slug(spec))
            if log:
                log(f"{spec}: already in {out}, not recomputed")
        else:
            if log:
                log(f"{spec}: {cfg.n_images} images at {res} px, {atoms.shape[0]} {atoms_info['atoms_are']} as atoms")
            r = evaluate_dataset(map, spec, todo[spec], atoms, atoms_info, cfg, _fit_images(spec, todo[spec], cfg, res, map), log)
            if out is not None:
                r.save(out / "datasets" / _slug(spec))
        reports.append(r)
    return DictionaryReport.merge(reports)


def _fit_images(spec: str, test, cfg: DictionaryConfig, res: int, map: LatentMap):
    """Train-split images for the PCA reference, none of them among ``test``; None if there are none."""
    if "pca" not in cfg.bases:
        return None
    from ..data import load_images

    try:
        train = load_images(spec, split="train", channels=map.image_channels)
    except ProbeError:  # no train split (imagenet1k-500, photos...): cross-fit on the test images instead
        return None
    train = train.subset(min(len(train), cfg.pca_images), seed=cfg.seed).resize(res)
    # a folder or .npz ignores the split and hands back the test images: keep only unseen ones
    seen = {bytes(im.numpy()) for im in test.images}
    keep = [i for i, im in enumerate(train.images) if bytes(im.numpy()) not in seen]
    return train.take(keep) if len(keep) >= 2 else None


def _attractors(map, attractors, cfg, res, out, log):
    if attractors is not None and not isinstance(attractors, (str, Path)):
        return attractors
    from ..field import AttractorSet, find_attractors

    if attractors is not None:
        return AttractorSet.load(attractors)
    saved = out / "attractors" if out else None
    n = cfg.atoms or math.prod(map.latent_shape(res))
    tol = cfg.tol if cfg.tol is not None else map.field_defaults["tol"]
    steps = cfg.max_steps if cfg.max_steps is not None else map.field_defaults["max_steps"]
    if saved is not None and (saved / "meta.json").is_file():
        aset = AttractorSet.load(saved)
        want = {"n_seeds": n, "seed": cfg.seed, "tol": tol, "max_steps": steps, "merge": cfg.merge,
                "merge_threshold": cfg.merge_threshold, "resolution": res}
        diff = [k for k, v in want.items() if aset.config.get(k) != v]
        if diff:
            raise ProbeError(f"{saved} was computed with other settings ({', '.join(diff)}); "
                             f"use another --out or delete it")
        if log:
            log(f"attractors: reusing {saved}")
        return aset
    if log:
        log(f"attractors: iterating {n} Gaussian seeds at {res} px (tol {tol}, max_steps {steps})")
    aset = find_attractors(map, n_seeds=n, seed=cfg.seed, tol=tol, max_steps=steps, merge=cfg.merge,
                           merge_threshold=cfg.merge_threshold, resolution=res, device=map.device)
    if saved is not None:
        aset.save(saved)
    return aset


def _check_resume(r: DictionaryReport, cfg, map, atoms_info, folder):
    """A finished dataset is reused only if settings, model and dictionary are those of this run."""
    from .dictionary_report import _comparable

    for what, was, now in (("settings", r.config, _cfg_record(cfg)), ("model", r.map, map.describe()),
                           ("dictionary", r.attractors, atoms_info)):
        was, now = _comparable(was), _comparable(now)
        diff = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
        if diff:
            raise ProbeError(f"{folder} was made with different {what} ({', '.join(diff)}); "
                             f"use another --out or delete it")


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
