"""Data-free model comparison through attractor sets (METHOD.md section 6, the paper's future work).

Two models are compared by what their latent maps converge to, without any data:

- in a **shared latent space** (same latent shape, and the same architecture family or declared
  so): the symmetric Chamfer similarity of the two attractor sets (mean over A of the best cosine
  to B, and the reverse, averaged), and how often the *same Gaussian seed* ends at the same
  attractor in both (cosine above the merge threshold: the rule that merges end points within
  one model) together with the adjusted Rand index of the two basin partitions;
- in **pixel space** (any pair): each model's decoded attractors are converted to the other's
  input convention, encoded by it, coded on its attractor dictionary with OMP at 5% sparsity,
  decoded and compared with the originals (both directions), next to the same coding on a
  random orthogonal basis of the other's latent space (the paper's baseline) and the other's
  plain autoencoder (the floor); plus the Chamfer similarity of the two decoded sets (pixel
  correlation: cosine of mean-centred images) and their nearest-neighbour pixel MSE.

Every number has a reference row (random points, shuffled seeds, shuffled pixels) so that its
size means something. For an expansive map (TAEF2) there are no attractors: the end points after
``max_steps`` stand in for them, and the report says so.
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
from ..errors import ConfigError
from ..field.config import FieldConfig
from ..maps.base import LatentMap
from .common import check_same_model, decode_latents, encode_images, model_of, nest_field, search_or_reuse, unit_columns
from .compare_measures import basin_agreement, chamfer, destinations, nearest_mse, same_space, to_convention
from .compare_report import ComparisonReport
from .dictionary import ATOMS_FROM, dictionary_atoms, n_nonzero, orthogonal_basis

__all__ = ["CompareConfig", "compare", "ComparisonReport", "chamfer", "nearest_mse", "destinations",
           "basin_agreement", "to_convention", "same_space"]

SIDES = ("A", "B")


@dataclass(frozen=True)
class CompareConfig:
    """How the two attractor sets are found and compared; defaults follow the paper where it has one."""

    section: ClassVar[str] = "compare"

    sparsity: float = field(0.05, "fraction of the other model's atoms non-zero in each cross-code (paper: 5%)")
    atoms_from: str = field("auto", "auto: attractors, or end points when a map is expansive; or force "
                                    "attractors / end_points")
    same_space: bool | None = field(None, "None: shared when the latent shapes match and the architecture "
                                          "class is the same; True / False: declare it")
    pixel: bool = field(True, "also compare in pixel space when the latent space is shared (always done "
                              "when it is not)")
    image_batch: int = field(64, "images per encode/decode batch")
    max_grid: int = field(16, "attractors per model in the side-by-side grid")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(n_seeds=1024), "the attractor search in each model: 1024 Gaussian "
                               "seeds (the same in both when the latent space is shared); its merge_threshold "
                               "also matches attractors across the models; its seed draws every reference")

    def __post_init__(self):
        nest_field(self)
        if not 0 < self.sparsity <= 1:
            raise ConfigError(f"sparsity must be a fraction of atoms in (0, 1], got {self.sparsity!r} (5% is 0.05)")
        if self.field.merge != "cosine":
            raise ConfigError(f"compare matches attractors by cosine: field.merge must be cosine, got {self.field.merge!r}")
        if self.atoms_from not in ATOMS_FROM:
            raise ConfigError(f"atoms_from must be one of {', '.join(ATOMS_FROM)}, got {self.atoms_from!r}")
        for name in ("image_batch", "max_grid"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")


# -- the probe -----------------------------------------------------------------------------
def _resolution(map: LatentMap, aset: Any, cfg: CompareConfig) -> int:
    if map.image_size is not None:
        return map.image_size
    given = (getattr(aset, "config", None) or {}).get("resolution") if aset is not None else None
    return int(given or cfg.field.resolution or map.default_resolution())


def _attractors(map, aset, cfg: CompareConfig, res: int, side: str, out: Path | None, log, progress: bool,
                allow_other_model: bool, overwrite: bool):
    if aset is not None:
        return aset, check_same_model(aset, map, allow=allow_other_model, what=f"attractor set given for {side}")
    if log:
        log(f"{side}: {cfg.field.n_seeds} Gaussian seeds in {map.name} at {res} px")
    t0 = time.perf_counter()
    folder = out / f"attractors_{side.lower()}" if out is not None else None
    aset = search_or_reuse(map, cfg.field.replace(resolution=res), folder, progress=progress, overwrite=overwrite,
                           log=log, what=f"attractors of {side}")
    if log:
        log(f"{side}: {len(aset)} fixed points, {int(aset.stable.sum())} stable, dynamics {aset.verdict} "
            f"[{time.perf_counter() - t0:.1f} s]")
    return aset, None


def _same_seeds(a: Any, b: Any) -> str | None:
    """None when both sets iterated the same Gaussian seeds, else why not."""
    ca, cb = a.config or {}, b.config or {}
    for k in ("seeds", "seed_dist", "seed", "n_seeds"):
        if ca.get(k) != cb.get(k):
            return f"the sets were iterated from different seeds ({k}: {ca.get(k)!r} vs {cb.get(k)!r})"
    if ca.get("seeds") == "given":
        return "the seeds were given (e.g. encoded data), so their identity cannot be checked"
    return None


@torch.no_grad()
def _via(x: Tensor, dst: LatentMap, res: int, basis: Tensor | None, k: int, bs: int) -> Tensor:
    """Images of one model through ``dst``: encode, code on ``basis`` (None: no coding), decode."""
    from ..sparse.omp import omp

    z = encode_images(dst, to_convention(x, dst.image_channels, res), bs).flatten(1)
    if basis is not None:
        z = omp(basis, z.to(basis.device), k) @ basis.T
    return decode_latents(dst, z.reshape(-1, *dst.latent_shape(res)), bs)


def _shuffle_pixels(x: Tensor, seed: int) -> Tensor:
    # the reference keeps each image's intensities and loses its structure; one generator per
    # side (not one shared) so that compare(A, B) and compare(B, A) draw the same references
    g = torch.Generator().manual_seed(seed)
    return torch.stack([r[torch.randperm(len(r), generator=g)] for r in x])


def _u8(x: Tensor) -> Tensor:
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def compare(map_a: LatentMap, map_b: LatentMap, cfg: CompareConfig | None = None, *, attractors_a: Any = None,
            attractors_b: Any = None, specs: tuple[str, str] = ("A", "B"), out: str | Path | None = None,
            log: Callable[[str], None] | None = None, progress: bool = False, allow_other_model: bool = False,
            overwrite: bool = False) -> ComparisonReport:
    """Compare two latent maps through their attractor sets (see the module docstring).

    ``attractors_a`` / ``attractors_b``: AttractorSets or folders holding them; None computes
    them with ``cfg.field`` (the same Gaussian seeds for both when the shapes match) and, with
    ``out``, checkpoints and saves them to ``out/attractors_a`` / ``_b``, reused by a rerun with the
    same settings. A given set made by another model is refused unless ``allow_other_model``.
    """
    cfg = cfg or CompareConfig()
    maps = {"A": map_a, "B": map_b}
    given = {"A": attractors_a, "B": attractors_b}
    sets, res, shapes = {}, {}, {}
    for s in SIDES:
        if isinstance(given[s], (str, Path)):
            from ..field import AttractorSet

            given[s] = AttractorSet.load(given[s])
        res[s] = _resolution(maps[s], given[s], cfg)
        shapes[s] = tuple(maps[s].latent_shape(res[s]))
    shared, why = same_space(map_a, map_b, shapes["A"], shapes["B"], cfg.same_space)
    notes = {}
    for s in SIDES:
        if s == "B" and map_b is map_a and given["B"] is None and res["A"] == res["B"]:
            sets["B"], notes["B"] = sets["A"], None  # the same model and seeds: the iteration is deterministic
        else:
            sets[s], notes[s] = _attractors(maps[s], given[s], cfg, res[s], s, None if out is None else Path(out),
                                            log, progress, allow_other_model, overwrite)
    atoms, info = {}, {}
    for s in SIDES:
        atoms[s], info[s] = dictionary_atoms(sets[s], shapes[s], cfg.atoms_from)
        info[s]["other_model"] = notes[s]
    models = {s: {"spec": str(specs[i]), "map": maps[s].describe(), "resolution": res[s],
                  "latent_shape": list(shapes[s]), "channels": maps[s].image_channels, "atoms": info[s],
                  "field": sets[s].config, "model": model_of(maps[s])} for i, s in enumerate(SIDES)}
    values: dict[tuple, Tensor] = {}
    scalars: dict[str, Any] = {}
    images: dict[str | tuple, Tensor] = {s: _u8(decode_latents(maps[s], atoms[s][:cfg.max_grid].reshape(-1, *shapes[s]), cfg.image_batch))
              for s in SIDES}
    if shared:
        _latent_space(sets, info, cfg, values, scalars, log)
    if not shared or cfg.pixel:
        t0 = time.perf_counter()
        _pixel_space(maps, atoms, res, shapes, cfg, values, scalars, images)
        if log:
            log(f"pixel space: cross-codes and set distances [{time.perf_counter() - t0:.1f} s]")
    return ComparisonReport(dataclasses.asdict(cfg), models, {"shared": shared, "why": why}, scalars, values, images)


def _latent_space(sets, info, cfg: CompareConfig, values: dict, scalars: dict, log) -> None:
    """Chamfer similarity of the two sets and, on the same seeds, basin agreement (into ``values``)."""
    from ..field.seeds import gaussian_seeds

    # the whole set of stable points (or end points), not the dictionary subset capped at D
    full = {s: (sets[s].end_points if info[s]["atoms_are"] == "end points" else sets[s].attractors).flatten(1)
            for s in SIDES}
    values[("latent", "A->B", "max_cos")], values[("latent", "B->A", "max_cos")] = chamfer(full["A"], full["B"])
    for s, other in (("A", "B"), ("B", "A")):
        rnd = gaussian_seeds(len(full[other]), (full[s].shape[1],), seed=cfg.field.seed + 1)
        values[("latent", f"{s}->{other}", "ref_max_cos")] = chamfer(full[s], rnd)[0]
    why_not = _same_seeds(sets["A"], sets["B"])
    if why_not is not None:
        scalars["agreement_skipped"] = why_not
        if log:
            log(f"basin agreement skipped: {why_not}")
        return
    ag = basin_agreement(sets["A"], sets["B"], cfg.field.merge_threshold, cfg.field.seed)
    values[("latent", "agree")], values[("latent", "agree_ref")] = ag["agree"], ag["reference"]
    scalars.update(ari=ag["ari"], basins=ag["basins"], both_converged=ag["both_converged"])


def _pixel_space(maps, atoms, res, shapes, cfg: CompareConfig, values: dict, scalars: dict, images: dict) -> None:
    """Cross-codes both ways with references, and distances between the decoded sets (into ``values``)."""
    decoded = {s: decode_latents(maps[s], atoms[s].reshape(-1, *shapes[s]), cfg.image_batch) for s in SIDES}
    scalars["n_nonzero"] = {s: n_nonzero(cfg.sparsity, len(atoms[s])) for s in SIDES}
    for src, dst in (("A", "B"), ("B", "A")):
        dev = maps[dst].device
        bases = {"attractors": unit_columns(atoms[dst].T.to(dev)),
                 "orthogonal": orthogonal_basis(len(atoms[dst]), atoms[dst].shape[1], cfg.field.seed, dev),
                 "autoencoder": None}
        x = decoded[src]
        for name, basis in bases.items():
            y = _via(x, maps[dst], res[dst], basis, min(scalars["n_nonzero"][dst], atoms[dst].shape[1]), cfg.image_batch)
            back = to_convention(y, x.shape[1], x.shape[-1])  # measured as the source model sees images
            values[("pixel", f"{src}->{dst}", name, "mse")] = (back - x).pow(2).flatten(1).mean(1)
            if name != "autoencoder":
                images[(f"{src}->{dst}", name)] = _u8(back[:cfg.max_grid])
    common = scalars["common"] = {"channels": min(m.image_channels for m in maps.values()), "size": min(res.values())}
    flat = {s: to_convention(decoded[s], common["channels"], common["size"]).flatten(1) for s in SIDES}
    flat.update({s + "~": _shuffle_pixels(flat[s], cfg.field.seed) for s in SIDES})
    # images in [0, 1] all point into the positive orthant (raw cosines sit near 1 for anything):
    # the cosine of mean-centred images, i.e. their pixel correlation, is what tells them apart
    centred = {s: v - v.mean(1, keepdim=True) for s, v in flat.items()}
    values[("set", "A->B", "max_cos")], values[("set", "B->A", "max_cos")] = chamfer(centred["A"], centred["B"])
    values[("set", "A->B", "nn_mse")], values[("set", "B->A", "nn_mse")] = nearest_mse(flat["A"], flat["B"])
    for s, other in (("A", "B"), ("B", "A")):
        values[("set", f"{s}->{other}", "ref_max_cos")] = chamfer(centred[s], centred[other + "~"])[0]
        values[("set", f"{s}->{other}", "ref_nn_mse")] = nearest_mse(flat[s], flat[other + "~"])[0]
