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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..config import field
from ..errors import ConfigError, ProbeError, first_line
from ..field.config import FieldConfig
from ..maps.base import LatentMap
from ..sparse._inputs import resolve_n_nonzero
from .common import (
    check_same_model,
    decode_latents,
    encode_images,
    model_of,
    nest_field,
    resolution_of,
    search_or_reuse,
    slug,
    unit_columns,
)
from .dictionary_atoms import MIN_ATOMS, dictionary_atoms, distinct_directions, orthogonal_basis, pca_reference
from .dictionary_report import AE, DictionaryReport, skey

__all__ = ["DictionaryConfig", "run_dictionary", "evaluate_dataset", "dictionary_atoms", "orthogonal_basis",
           "pca_reference", "n_nonzero", "BASES", "CODERS", "ATOMS_FROM", "MIN_ATOMS"]

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

    sparsity: float = field(0.05, "fraction of atoms non-zero in every code (paper: 5%, 205 of 4096)")
    sweep: bool = field(False, "also code at every fraction in sweep_sparsities (the sparsity-vs-MSE curve)")
    sweep_sparsities: list[float] = field(SWEEP, "fractions for --sweep (paper: 4096, 2048, ..., 32 of 4096 atoms)")
    coder: str = field("omp", "sparse coder: omp, lasso (penalty set for the same non-zero count) or both")
    bases: list[str] = field(list(BASES), "dictionaries to compare: attractors, orthogonal, pca")
    atoms_from: str = field("auto", "auto: attractors, or end points when the map is expansive (no attractors); "
                                    "or force attractors / end_points")
    n_images: int = field(500, "random test images per dataset (paper: 500)")
    pca_images: int = field(2000, "train-split images whose encoded latents fit the PCA reference; sets without "
                                  "a train split use a 2-fold cross-fit on the test images")
    image_batch: int = field(64, "images per encode/decode batch")
    n_examples: int = field(8, "images per dataset in the reconstruction grid")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(), "the attractor search: 4096 Gaussian seeds (the paper's N), the "
                                              "family's tol / max_steps, merge cosine > 0.99; its seed also draws "
                                              "the images, the orthogonal basis and atom subsets")

    def __post_init__(self):
        nest_field(self)
        for s in [self.sparsity, *(self.sweep_sparsities if self.sweep else [])]:
            if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 < s <= 1:
                raise ConfigError(f"sparsity must be a fraction of atoms in (0, 1], got {s!r} (5% is 0.05)")
        if self.coder not in CODERS:
            raise ConfigError(f"unknown coder {self.coder!r}; choose one of {', '.join(CODERS)}")
        bad = [b for b in self.bases if b not in BASES]
        if bad or not self.bases:
            raise ConfigError(f"unknown basis {', '.join(map(str, bad)) or '(none given)'}; choose from {', '.join(BASES)}")
        if self.atoms_from not in ATOMS_FROM:
            raise ConfigError(f"atoms_from must be one of {', '.join(ATOMS_FROM)}, got {self.atoms_from!r}")
        for name in ("n_images", "pca_images", "image_batch", "n_examples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "n_examples" else 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")

    @property
    def sparsities(self) -> list[float]:
        """The main sparsity plus the sweep, largest first, without repeats."""
        values = {float(self.sparsity)} | ({float(s) for s in self.sweep_sparsities} if self.sweep else set())
        return sorted(values, reverse=True)

    @property
    def coders(self) -> list[str]:
        return ["omp", "lasso"] if self.coder == "both" else [self.coder]


def n_nonzero(sparsity: float, n_atoms: int) -> int:
    """The non-zeros of a code: probe.sparse's one rounding rule (5% of 4096 -> 205, as in the paper)."""
    return resolve_n_nonzero(n_atoms, sparsity=sparsity)


# -- encode / code / decode -----------------------------------------------------------
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
                     fit_images=None, log: Callable[[str], None] | None = None,
                     end_points: Tensor | None = None) -> DictionaryReport:
    """Encode, code, decode one image set on every basis, coder and sparsity.

    ``images`` / ``fit_images`` are ImageSets (``fit_images``: train-split images for PCA, or None
    for a 2-fold cross-fit on ``images``); ``end_points`` [N, D]: the unmerged end points, coded
    as one more basis when the attractors are too few for a 5% code.
    """
    dev, bs = map.device, cfg.image_batch
    x = images.float()
    shape = tuple(map.latent_shape(x.shape[-1]))
    z = encode_images(map, x, bs).reshape(len(x), -1).to(dev)
    n_atoms, dim = atoms.shape
    bases: dict[str, list[tuple[Tensor | None, Tensor]]] = {}  # basis -> [(rows it codes, dictionary)]
    if "attractors" in cfg.bases:
        bases["attractors"] = [(None, unit_columns(atoms.T.to(dev)))]
    if end_points is not None:
        bases["end_points"] = [(None, unit_columns(end_points.reshape(len(end_points), -1).float().T.to(dev)))]
    if "orthogonal" in cfg.bases:
        bases["orthogonal"] = [(None, orthogonal_basis(n_atoms, dim, cfg.field.seed, dev))]
    pca_fit = "not used"
    if "pca" in cfg.bases and fit_images is not None:  # fit on data the evaluated images are not part of
        zfit = encode_images(map, fit_images.float(), bs).reshape(len(fit_images.images), -1)
        bases["pca"] = [(None, pca_reference(zfit, n_atoms, dev))]
        pca_fit = (f"{len(zfit)} images of split '{getattr(fit_images, 'split', 'train')}' of "
                   f"{getattr(fit_images, 'source', '?')}, none of them evaluated")
    elif "pca" in cfg.bases:
        if len(z) < 4:
            raise ProbeError(f"{name}: the PCA reference needs a train split or at least 4 test images, got {len(z)}")
        half = torch.arange(len(z), device=dev) % 2 == 0
        bases["pca"] = [(m, pca_reference(z[~m], n_atoms, dev)) for m in (half, ~half)]
        pca_fit = f"2-fold cross-fit on the {len(z)} test images (no train split)"
    ae = decode_latents(map, z.reshape(-1, *shape), bs)
    values: dict[tuple, Tensor] = {(name, AE, m): v for m, v in _metrics(x, ae, z, z).items()}
    n_ex = min(cfg.n_examples, len(x))
    examples: dict[tuple, Tensor] = {(name, "original"): _as_uint8(x[:n_ex]), (name, AE): _as_uint8(ae[:n_ex])} \
        if n_ex else {}
    atoms_per = {b: min(B.shape[1] for _, B in parts) for b, parts in bases.items()}
    # the same non-zero count for every basis (never more than the latent has dimensions); the
    # unmerged end points are a dictionary of their own size and get their own 5%
    own = {b: (atoms_per[b] if b == "end_points" else n_atoms) for b in bases}
    # near-copies of one attractor add no direction: never more non-zeros than distinct directions
    most = {b: atoms_info.get("end_point_directions", dim) if b == "end_points" else dim for b in bases}
    nonzeros = {skey(s): {b: max(1, min(n_nonzero(s, own[b]), atoms_per[b], most[b])) for b in bases}
                for s in cfg.sparsities}
    for coder in cfg.coders:
        for s in cfg.sparsities:
            for b in bases:
                if b == "end_points" and coder == "lasso":
                    continue  # near-duplicate atoms (copies of one attractor) leave lasso's active set singular
                t0, k = time.perf_counter(), nonzeros[skey(s)][b]
                zhat = torch.empty_like(z)
                for mask, B in bases[b]:
                    rows = slice(None) if mask is None else mask
                    zhat[rows] = _code(B, z[rows], coder, min(k, B.shape[1]))
                xhat = decode_latents(map, zhat.reshape(-1, *shape), bs)
                for m, v in _metrics(x, xhat, z, zhat).items():
                    values[(name, b, coder, skey(s), m)] = v
                if n_ex and coder == cfg.coders[0] and s == cfg.sparsity:
                    examples[(name, b)] = _as_uint8(xhat[:n_ex])
                if log:
                    label = atoms_info["atoms_are"] if b == "attractors" else b.replace("_", " ")
                    log(f"  {name}: {coder} {label} {100 * s:.4g}% ({k} non-zeros): "
                        f"MSE {values[(name, b, coder, skey(s), 'mse')].mean():.5f} [{time.perf_counter() - t0:.1f} s]")
    info = {"spec": name, "source": getattr(images, "source", name), "n": len(x), "resolution": int(x.shape[-1]),
            "pca_fit": pca_fit, "atoms": atoms_per, "n_nonzero": nonzeros,
            "images": getattr(images, "describe", lambda: {})()}
    return DictionaryReport(_cfg_record(cfg, list(bases)), map.describe(), atoms_info, {name: info}, values, examples,
                            model_of(map))


def _cfg_record(cfg: DictionaryConfig, bases: list[str] | None = None) -> dict:
    return {**dataclasses.asdict(cfg), "sparsities": cfg.sparsities, "bases": bases or list(cfg.bases)}


# -- the probe ---------------------------------------------------------------------------
def run_dictionary(map: LatentMap, attractors: Any, datasets: list[str], cfg: DictionaryConfig | None = None, *,
                   out: str | Path | None = None, log: Callable[[str], None] | None = None, progress: bool = False,
                   allow_other_model: bool = False, overwrite: bool = False,
                   image_options: dict | None = None) -> DictionaryReport:
    """The data-free dictionary probe on ``datasets`` (specs for :func:`probe.data.load_images`).

    ``attractors``: an AttractorSet, a folder holding one, or None to search them with
    ``cfg.field`` (checkpointed into and saved to ``out/attractors`` when ``out`` is given). A set
    made by another model is refused unless ``allow_other_model``. With ``out``, every finished
    dataset is saved to ``out/datasets/<name>`` and reused on the next run with the same settings.
    """
    from ..data import load_images

    cfg = cfg or DictionaryConfig()
    datasets = list(dict.fromkeys(datasets))  # a set named twice is coded once
    if not datasets:
        raise ProbeError("give at least one dataset")
    res = resolution_of(map, cfg.field.resolution)
    shape = tuple(map.latent_shape(res))
    out = Path(out) if out is not None else None
    opts = dict(image_options or {})
    done, todo = {}, {}
    for spec in datasets:  # load every set first: a bad name fails before minutes of iteration
        folder = out / "datasets" / slug(spec) if out else None
        if folder is not None and (folder / "meta.json").is_file() and not overwrite:
            done[spec] = DictionaryReport.load(folder)
            continue
        todo[spec] = load_images(spec, split="test", n=cfg.n_images, seed=cfg.field.seed, resolution=res,
                                 channels=map.image_channels, **opts)
    note = None
    if attractors is None:
        aset = search_or_reuse(map, cfg.field.replace(resolution=res), out / "attractors" if out else None,
                               data_latents=_seed_statistics(map, datasets[0], cfg, res, opts),
                               progress=progress, overwrite=overwrite, log=log)
    else:
        from ..field import AttractorSet

        aset = AttractorSet.load(attractors) if isinstance(attractors, (str, Path)) else attractors
        note = check_same_model(aset, map, allow=allow_other_model, what="attractor set given as the dictionary")
    atoms, atoms_info = dictionary_atoms(aset, shape, cfg.atoms_from)
    atoms_info["other_model"] = note
    ends = None
    if atoms_info["degenerate"] and atoms_info["atoms_are"] == "attractors" and len(aset.end_points) > len(atoms):
        ends = aset.end_points.reshape(len(aset.end_points), -1).float().cpu()
        atoms_info.update(end_point_directions=distinct_directions(ends), end_points_coded=True)
        if log:
            log(f"note: only {atoms_info['n_atoms']} {atoms_info['atoms_are']} (< {MIN_ATOMS}): a "
                f"{100 * cfg.sparsity:.3g}% code of them is degenerate; the {len(ends)} unmerged end points are "
                f"coded as atoms too")
    reports = []
    for spec in datasets:
        if spec in done and out is not None:
            r = done[spec]
            _check_resume(r, cfg, map, atoms_info, out / "datasets" / slug(spec), ends is not None)
            if log:
                log(f"{spec}: already in {out}, not recomputed")
        else:
            if log:
                log(f"{spec}: {cfg.n_images} images at {res} px, {atoms.shape[0]} {atoms_info['atoms_are']} as atoms")
            r = evaluate_dataset(map, spec, todo[spec], atoms, atoms_info, cfg,
                                 _fit_images(spec, todo[spec], cfg, res, map, opts), log, end_points=ends)
            if out is not None:
                r.save(out / "datasets" / slug(spec))
        reports.append(r)
    return DictionaryReport.merge(reports)


def _seed_statistics(map: LatentMap, spec: str, cfg: DictionaryConfig, res: int, opts: dict) -> Tensor | None:
    """For ``seed_dist='data'``: encoded train-split images of the first set, whose per-dimension mean and
    spread the Gaussian seeds then match (only these statistics of the data reach the seeds)."""
    if cfg.field.seed_dist != "data":
        return None
    from ..data import load_images

    try:
        train = load_images(spec, split="train", channels=map.image_channels, **opts)
    except ProbeError as e:
        raise ProbeError(f"seed_dist 'data' matches the seeds to encoded train-split images of {spec}, "
                         f"which has none ({first_line(e)}); use seed_dist 'normal'") from e
    train = train.subset(min(len(train), cfg.pca_images), seed=cfg.field.seed).resize(res)
    return encode_images(map, train, cfg.image_batch)


def _fit_images(spec: str, test, cfg: DictionaryConfig, res: int, map: LatentMap, opts: dict):
    """Train-split images for the PCA reference, none of them among ``test``; None if there are none."""
    if "pca" not in cfg.bases:
        return None
    from ..data import load_images

    try:
        train = load_images(spec, split="train", channels=map.image_channels, **opts)
    except ProbeError:  # no train split (imagenet1k-500, photos...): cross-fit on the test images instead
        return None
    train = train.subset(min(len(train), cfg.pca_images), seed=cfg.field.seed).resize(res)
    # a folder or .npz ignores the split and hands back the test images: keep only unseen ones
    seen = {bytes(im.numpy()) for im in test.images}
    keep = [i for i, im in enumerate(train.images) if bytes(im.numpy()) not in seen]
    return train.take(keep) if len(keep) >= 2 else None


#: settings that change speed, not results: a finished dataset is reused across them
_SPEED = ("image_batch", "batch_size", "device", "threads", "compile", "checkpoint_every")


def _results_part(d: Any) -> Any:
    from ..io import to_jsonable

    d = to_jsonable(d)
    if isinstance(d, dict):
        return {k: _results_part(v) for k, v in d.items() if k not in _SPEED}
    return d


def _check_resume(r: DictionaryReport, cfg, map, atoms_info, folder, with_ends: bool):
    """A finished dataset is reused only if settings, model and dictionary are those of this run."""
    bases = list(cfg.bases) + (["end_points"] if with_ends else [])
    now_cfg = _cfg_record(cfg, [b for b in ("attractors", "end_points", "orthogonal", "pca") if b in bases])
    for what, was, now in (("settings", r.config, now_cfg), ("model", r.map, map.describe()),
                           ("dictionary", r.attractors, atoms_info)):
        was, now = _results_part(was), _results_part(now)
        diff = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
        if diff:
            raise ProbeError(f"{folder} was made with different {what} ({', '.join(diff)}); "
                             f"use another --out, or --overwrite to recompute it")
