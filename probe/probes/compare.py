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
import torch.nn.functional as F
from torch import Tensor

from ..config import field
from ..errors import ConfigError, ProbeError
from ..field.config import FieldConfig
from ..maps.base import LatentMap
from .common import check_same_model, decode_latents, encode_images, nest_field, search_or_reuse, unit_columns
from .dictionary import ATOMS_FROM, dictionary_atoms, n_nonzero, orthogonal_basis
from .tables import markdown_table, mean_ci, paired, verdict

SIDES = ("A", "B")
KIND = "ComparisonReport"


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


# -- measures ----------------------------------------------------------------------------
def _unit_rows(x: Tensor) -> Tensor:
    x = x.detach().flatten(1).double()
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-30)


def chamfer(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Best cosine of each row of ``a`` to ``b`` [len(a)] and of each row of ``b`` to ``a`` [len(b)].

    Their means are the two directions of the Chamfer similarity; their average is the symmetric one.
    """
    if not len(a) or not len(b):
        raise ProbeError(f"Chamfer similarity needs two non-empty sets, got {len(a)} and {len(b)} points")
    s = _unit_rows(a) @ _unit_rows(b.to(a.device)).T
    return s.max(1).values.float().cpu(), s.max(0).values.float().cpu()


def nearest_mse(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel MSE of each image of ``a`` to its nearest image in ``b``, and the reverse."""
    a, b = a.flatten(1).double(), b.flatten(1).double().to(a.device)
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2) / a.shape[1]
    return d.min(1).values.float().cpu(), d.min(0).values.float().cpu()


def destinations(aset: Any) -> Tensor:
    """Where each seed stopped: its attractor when it converged, else its end point [N, D]."""
    ends = aset.end_points.flatten(1).clone()
    ok = aset.assignment >= 0
    if len(aset.points):
        ends[ok] = aset.points.flatten(1)[aset.assignment[ok]]
    return ends


def basin_agreement(set_a: Any, set_b: Any, threshold: float = 0.99, seed: int = 0) -> dict[str, Any]:
    """Per seed: do A and B send it to the same place (cosine > ``threshold``)? And the ARI of the basins.

    Both sets must come from the same seeds in the same latent space. ``reference`` is the same
    agreement with B's seeds shuffled: the level two unrelated partitions reach by chance.
    """
    from sklearn.metrics import adjusted_rand_score

    from ..field.merge import merge_end_points

    da, db = destinations(set_a), destinations(set_b)
    if da.shape != db.shape:
        raise ProbeError(f"basin agreement needs the same seeds: {tuple(da.shape)} vs {tuple(db.shape)} end points")
    ua, ub = _unit_rows(da), _unit_rows(db)
    agree = ((ua * ub).sum(1) > threshold).float()
    perm = torch.randperm(len(ub), generator=torch.Generator().manual_seed(seed))
    ref = ((ua * ub[perm]).sum(1) > threshold).float()
    # basins = seeds grouped by where they stop under the merge rule (= the assignment for converged seeds)
    la, _ = merge_end_points(da, "cosine", threshold)
    lb, _ = merge_end_points(db, "cosine", threshold)
    return {"agree": agree, "reference": ref, "ari": float(adjusted_rand_score(la.numpy(), lb.numpy())),
            "basins": [int(la.max()) + 1, int(lb.max()) + 1],
            "both_converged": int(((set_a.assignment >= 0) & (set_b.assignment >= 0)).sum())}


def to_convention(x: Tensor, channels: int, size: int) -> Tensor:
    """Images in [0, 1] -> ``channels`` (RGB <-> luminance) and ``size`` x ``size`` px (antialiased bilinear)."""
    from ..images import luminance

    if x.shape[1] == 3 and channels == 1:
        x = luminance(x)
    elif x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()


def same_space(map_a: LatentMap, map_b: LatentMap, shape_a, shape_b, declared: bool | None) -> tuple[bool, str]:
    """Whether coordinates of A and B can be compared directly, and why."""
    if tuple(shape_a) != tuple(shape_b):
        if declared:
            raise ProbeError(f"--same-space: the latent shapes differ ({tuple(shape_a)} vs {tuple(shape_b)})")
        return False, f"latent shapes differ: {tuple(shape_a)} vs {tuple(shape_b)}"
    if declared is not None:
        return bool(declared), "declared " + ("shared" if declared else "not shared") + " by the user"
    ca, cb = type(map_a).__name__, type(map_b).__name__
    if ca == cb:
        return True, (f"same architecture class ({ca}) and latent shape {tuple(shape_a)}; independently trained "
                      f"models need not align their coordinates: read the latent rows against their references")
    return False, f"different architectures ({ca} vs {cb}); declare --same-space to compare coordinates"


# -- the report ----------------------------------------------------------------------------
@dataclass
class ComparisonReport:
    """Result of :func:`compare`.

    ``values`` holds per-item numbers (per attractor, per seed) under keys such as
    ``latent|A->B|max_cos``, ``latent|agree``, ``pixel|A->B|attractors|mse``,
    ``set|A->B|max_cos`` (centred pixel cosine); ``images`` uint8 decoded attractors and their
    cross-codes for the grid.
    """

    config: dict
    models: dict            #: side -> spec, map.describe(), resolution, latent shape, convention, atoms info
    shared: dict            #: {"shared": bool, "why": str}
    scalars: dict           #: ARI, basin counts, non-zeros, common convention ...
    values: dict[str, Tensor]
    images: dict[str, Tensor]

    def stat(self, key: str):
        return mean_ci(self.values[key])

    # -- io -------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        from ..io import save_result

        tensors = {**{f"v|{k}": v for k, v in self.values.items()}, **{f"i|{k}": v for k, v in self.images.items()}}
        meta = {"kind": KIND, "version": 1, "config": self.config, "models": self.models, "shared": self.shared,
                "scalars": self.scalars}
        return save_result(folder, tensors, meta)

    @classmethod
    def load(cls, folder: str | Path) -> ComparisonReport:
        from ..io import load_result

        tensors, meta = load_result(folder)
        if meta.get("kind") != KIND:
            raise ProbeError(f"{folder} does not hold a {KIND} (kind {meta.get('kind')!r})")
        return cls(meta["config"], meta["models"], meta["shared"], meta["scalars"],
                   {k[2:]: v for k, v in tensors.items() if k.startswith("v|")},
                   {k[2:]: v for k, v in tensors.items() if k.startswith("i|")})

    # -- tables -----------------------------------------------------------------------
    def _side_line(self, s: str) -> str:
        m, a = self.models[s], self.models[s]["atoms"]
        ends = a["atoms_are"] == "end points"
        what = a["atoms_are"] + (f" after {a['max_steps']} steps (NOT attractors)" if ends else "")
        return (f"- **{s}** = `{m['spec']}` ({m['map']['name']}; latent {tuple(m['latent_shape'])}, images "
                f"{m['channels']} x {m['resolution']} px): {a['n_fixed_points']} fixed points, {a['n_stable']} stable, "
                f"from {a['n_seeds']} seeds (merge cosine > {self.config['field']['merge_threshold']}); dynamics "
                f"{a['verdict']}; dictionary = {a['n_atoms']} {what}")

    def _row3(self, name: str, key: str, ref: str | None, digits: int = 4) -> list[str]:
        ab, ba = self.stat(key.format("A->B")), self.stat(key.format("B->A"))
        sym = (ab.mean + ba.mean) / 2
        row = [name, ab.format(digits), ba.format(digits), f"{sym:.{digits}g}"]
        if ref is not None:
            rab, rba = self.stat(ref.format("A->B")), self.stat(ref.format("B->A"))
            row.append(f"{(rab.mean + rba.mean) / 2:.{digits}g} (A->B {rab.mean:.3g}, B->A {rba.mean:.3g})")
        return row

    def to_markdown(self) -> str:
        sc, thr = self.scalars, self.config["field"]["merge_threshold"]
        out = ["## Model comparison: A vs B\n", self._side_line("A"), self._side_line("B"),
               f"- latent space: **{'shared' if self.shared['shared'] else 'not shared'}** ({self.shared['why']})\n"]
        if "latent|A->B|max_cos" in self.values:
            head = ["measure (latent space)", "A->B", "B->A", "symmetric", "reference"]
            rows = [self._row3("Chamfer similarity (mean best cosine)", "latent|{}|max_cos", "latent|{}|ref_max_cos")]
            note = "Chamfer reference: Gaussian N(0, I) points, as many as the other set."
            if "latent|agree" in self.values:
                agree, ref = self.stat("latent|agree"), self.stat("latent|agree_ref")
                rows += [[f"basin agreement (same seed, ends match: cosine > {thr})", "", "", agree.format(4),
                          f"{ref.mean:.4g} (B's seeds shuffled)"],
                         ["adjusted Rand index of the basins", "", "", f"{sc['ari']:.4g}",
                          "0 (chance, by construction)"]]
                note += (f" Agreement over {agree.n} seeds ({sc['both_converged']} converged in both); "
                         f"basins: A {sc['basins'][0]}, B {sc['basins'][1]}.")
            else:
                note += f" No basin agreement: {sc['agreement_skipped']}."
            out += [markdown_table(head, rows), "\n" + note + "\n"]
        if "pixel|A->B|attractors|mse" in self.values:
            out.append(f"Pixel space: each model's dictionary images converted to the other's convention, "
                       f"encoded, OMP-coded on the other's dictionary at {100 * self.config['sparsity']:g}% "
                       f"sparsity, decoded, converted back; MSE against the originals (mean [95% CI] over images).\n")
            rows = []
            for d in ("A->B", "B->A"):
                src, dst = d.split("->")
                k, n = sc["n_nonzero"][dst], self.models[dst]["atoms"]["n_atoms"]
                base = f"pixel|{d}|"
                for basis, label in (("attractors", f"{dst}'s {self.models[dst]['atoms']['atoms_are']}"),
                                     ("orthogonal", f"random orthogonal basis of {dst}'s latent (reference)")):
                    rows.append([f"{src}'s images via {dst}", label, f"{k} of {n}",
                                 self.stat(base + basis + "|mse").format()])
                rows.append([f"{src}'s images via {dst}", f"{dst}'s autoencoder, no coding (floor)", "all",
                             self.stat(base + "autoencoder|mse").format()])
                diff = paired(self.values[base + "attractors|mse"], self.values[base + "orthogonal|mse"])
                rows.append([f"{src}'s images via {dst}", "dictionary vs orthogonal (paired)", "",
                             verdict(diff, "dictionary", "orthogonal")])
            out += [markdown_table(["direction", "dictionary", "non-zeros", "pixel MSE"], rows), ""]
            c = sc["common"]
            head = ["measure (decoded sets)", "A->B", "B->A", "symmetric", "reference (B's / A's pixels shuffled)"]
            rows = [self._row3("Chamfer similarity of pixel correlation (centred cosine)", "set|{}|max_cos",
                               "set|{}|ref_max_cos"),
                    self._row3("nearest-neighbour pixel MSE", "set|{}|nn_mse", "set|{}|ref_nn_mse")]
            out += [f"Decoded sets compared at {c['channels']} x {c['size']} px:\n", markdown_table(head, rows), ""]
        return "\n".join(out)

    def summary(self) -> list[str]:
        lines = [f"latent space {'shared' if self.shared['shared'] else 'not shared'}: {self.shared['why']}"]
        if "latent|A->B|max_cos" in self.values:
            ab, ba = self.stat("latent|A->B|max_cos").mean, self.stat("latent|B->A|max_cos").mean
            lines.append(f"Chamfer similarity {(ab + ba) / 2:.4f} (A->B {ab:.4f}, B->A {ba:.4f})")
        if "latent|agree" in self.values:
            lines.append(f"basin agreement {self.stat('latent|agree').mean:.4f} (B's seeds shuffled "
                         f"{self.stat('latent|agree_ref').mean:.4f}); ARI {self.scalars['ari']:.4f}")
        if "pixel|A->B|attractors|mse" in self.values:
            for d in ("A->B", "B->A"):
                lines.append(f"cross-reconstruction {d}: MSE {self.stat(f'pixel|{d}|attractors|mse').mean:.5f} "
                             f"(orthogonal {self.stat(f'pixel|{d}|orthogonal|mse').mean:.5f}, "
                             f"autoencoder {self.stat(f'pixel|{d}|autoencoder|mse').mean:.5f})")
            ab, ba = self.stat("set|A->B|max_cos").mean, self.stat("set|B->A|max_cos").mean
            lines.append(f"decoded sets: Chamfer pixel correlation {(ab + ba) / 2:.4f}")
        return lines

    # -- pictures -------------------------------------------------------------------
    def grids(self, folder: str | Path) -> Path:
        """``folder/compare.png``: A's column and B's column side by side, each with three rows:
        decoded dictionary, coded via the other model's attractors, coded via its orthogonal basis."""
        from PIL import Image, ImageDraw

        from ..images import grid
        from ..io import _atomic_write

        panels = []
        for s, other in (("A", "B"), ("B", "A")):
            rows = [(k, lab) for k, lab in ((f"{s}", f"{s}"), (f"{s}->{other}|attractors", f"via {other}"),
                                            (f"{s}->{other}|orthogonal", "orth.")) if k in self.images]
            n = len(self.images[s])
            ims = torch.cat([self.images[k][:n] for k, _ in rows]).float() / 255
            side = max(64, ims.shape[-1])
            ims = F.interpolate(ims, size=(side, side), mode="nearest")
            labels = [f"{lab} #{i}" for _, lab in rows for i in range(n)]
            panels.append((s, grid(ims, nrow=n, labels=labels)))
        w = sum(p.width for _, p in panels) + 30
        h = max(p.height for _, p in panels) + 16
        canvas = Image.new("RGB", (w, h), "white")
        draw, x = ImageDraw.Draw(canvas), 0
        for s, p in panels:
            draw.text((x + 4, 2), f"{s}: {self.models[s]['map']['name']}", fill="black")
            canvas.paste(p, (x, 16))
            x += p.width + 30
        path = Path(folder) / "compare.png"
        _atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))
        return path


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
                  "field": sets[s].config} for i, s in enumerate(SIDES)}
    values: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    images = {s: _u8(decode_latents(maps[s], atoms[s][:cfg.max_grid].reshape(-1, *shapes[s]), cfg.image_batch))
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
    values["latent|A->B|max_cos"], values["latent|B->A|max_cos"] = chamfer(full["A"], full["B"])
    for s, other in (("A", "B"), ("B", "A")):
        rnd = gaussian_seeds(len(full[other]), (full[s].shape[1],), seed=cfg.field.seed + 1)
        values[f"latent|{s}->{other}|ref_max_cos"] = chamfer(full[s], rnd)[0]
    why_not = _same_seeds(sets["A"], sets["B"])
    if why_not is not None:
        scalars["agreement_skipped"] = why_not
        if log:
            log(f"basin agreement skipped: {why_not}")
        return
    ag = basin_agreement(sets["A"], sets["B"], cfg.field.merge_threshold, cfg.field.seed)
    values["latent|agree"], values["latent|agree_ref"] = ag["agree"], ag["reference"]
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
            values[f"pixel|{src}->{dst}|{name}|mse"] = (back - x).pow(2).flatten(1).mean(1)
            if name != "autoencoder":
                images[f"{src}->{dst}|{name}"] = _u8(back[:cfg.max_grid])
    common = scalars["common"] = {"channels": min(m.image_channels for m in maps.values()), "size": min(res.values())}
    flat = {s: to_convention(decoded[s], common["channels"], common["size"]).flatten(1) for s in SIDES}
    flat.update({s + "~": _shuffle_pixels(flat[s], cfg.field.seed) for s in SIDES})
    # images in [0, 1] all point into the positive orthant (raw cosines sit near 1 for anything):
    # the cosine of mean-centred images, i.e. their pixel correlation, is what tells them apart
    centred = {s: v - v.mean(1, keepdim=True) for s, v in flat.items()}
    values["set|A->B|max_cos"], values["set|B->A|max_cos"] = chamfer(centred["A"], centred["B"])
    values["set|A->B|nn_mse"], values["set|B->A|nn_mse"] = nearest_mse(flat["A"], flat["B"])
    for s, other in (("A", "B"), ("B", "A")):
        values[f"set|{s}->{other}|ref_max_cos"] = chamfer(centred[s], centred[other + "~"])[0]
        values[f"set|{s}->{other}|ref_nn_mse"] = nearest_mse(flat[s], flat[other + "~"])[0]
