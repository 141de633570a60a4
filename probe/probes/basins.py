"""Basins of attraction as an answer to "which inputs does this part of the model capture?".

Every image of a set is encoded and iterated to its attractor (METHOD.md section 2: a basin is
all seeds that end at the same attractor). Per attractor we report how many images it
captures, their class mix when the set has labels, and a gallery: the decoded attractor
first, then images from its basin.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import asdict, field
from ..errors import ConfigError, ProbeError
from ..field.config import FieldConfig
from ..io import save_json, save_text
from ..maps.base import LatentMap
from ..result import Result
from .common import as_float_images, decode_latents, encode_images, model_of, nest_field, search_or_reuse

__all__ = ["BasinsConfig", "Basins", "find_basins", "run_basins"]


@dataclass(frozen=True)
class BasinsConfig:
    """Which images, how they are iterated and merged, and how much of each basin to show."""

    section = "basins"

    split: str = field("test", "split of the image set")
    n_images: int | None = field(None, "a seeded random subset of this many images (None = every image)")
    galleries: int = field(24, "galleries written, largest basins first")
    per_gallery: int = field(23, "images shown per basin, next to the decoded attractor")
    image_batch: int = field(256, "images encoded at once")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(), "the iteration of every encoded image (the seeds are the images); "
                                              "its seed draws the image subset and the gallery picks")

    def __post_init__(self):
        nest_field(self)
        if self.galleries < 0 or self.per_gallery < 1 or self.image_batch < 1:
            raise ConfigError("galleries must be >= 0, per_gallery and image_batch >= 1")


@dataclass
class Basins(Result):
    """Attractors reached from a set of images, and which images each captures."""

    points: Tensor      #: [K, *latent] the attractors (and fixed points), largest basin first
    stable: Tensor      #: [K] spectral radius < 1
    counts: Tensor      #: [K] images in each basin
    assignment: Tensor  #: [N] basin of each image, -1 when its iteration did not converge
    labels: Tensor      #: [N] class of each image, -1 when the set has no labels
    indices: Tensor     #: [N] index of each image in its set (after the subset)
    classes: list | None
    meta: dict          #: config, map, images, merge rule, status counts

    def class_mix(self, k: int) -> dict[str, int]:
        """Class name -> number of images in basin ``k`` (most common first)."""
        lab = self.labels[self.assignment == k]
        if len(lab) == 0 or int(lab.min()) < 0:
            return {}
        vals, cnt = torch.unique(lab, return_counts=True)
        names = self.classes or [str(i) for i in range(int(vals.max()) + 1)]
        return {names[int(v)]: int(c) for c, v in sorted(zip(cnt.tolist(), vals.tolist(), strict=True), reverse=True)}

    def purity(self) -> float:
        """Share of converged images whose basin's majority class is their own (nan without labels)."""
        total = int((self.assignment >= 0).sum())
        if total == 0 or int(self.labels.min()) < 0:
            return float("nan")
        return sum(max(self.class_mix(k).values(), default=0) for k in range(len(self.points))) / total

    def rows(self) -> list[dict]:
        return [{"attractor": k, "images": int(self.counts[k]), "stable": bool(self.stable[k]),
                 "classes": self.class_mix(k)} for k in range(len(self.points))]

    def table(self, top: int = 30) -> str:
        merge = self.meta["merge"]
        lines = [f"{len(self.points)} attractors from {len(self.assignment)} images of {self.meta['images'].get('name')} "
                 f"(merge {merge['rule']} {'>' if merge['rule'] == 'cosine' else '<='} {merge['threshold']}); "
                 f"{int((self.assignment < 0).sum())} images did not converge; class purity {self.purity():.3f}", "",
                 "| attractor | images | stable | class mix |", "|---|---|---|---|"]
        for r in self.rows()[:top]:
            mix = ", ".join(f"{c} {n}" for c, n in list(r["classes"].items())[:4]) or "-"
            lines.append(f"| {r['attractor']} | {r['images']} | {'yes' if r['stable'] else 'no'} | {mix} |")
        return "\n".join(lines)

    # -- the Result contract -------------------------------------------------------------
    def _tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("points", "stable", "counts", "assignment", "labels", "indices")}

    def _meta(self) -> dict:
        return {"model": None, **self.meta, "classes": self.classes, "basins": self.rows()}

    @classmethod
    def _from_saved(cls, tensors: dict, meta: dict) -> Basins:
        keep = {k: v for k, v in meta.items() if k not in ("kind", "version", "probe_version", "files", "classes",
                                                           "basins")}
        return cls(**{k: tensors[k] for k in ("points", "stable", "counts", "assignment", "labels", "indices")},
                   classes=meta["classes"], meta=keep)

    def to_rows(self) -> list[dict]:
        return [{"attractor": r["attractor"], "images": r["images"], "stable": r["stable"],
                 **{f"class {c}": n for c, n in r["classes"].items()}} for r in self.rows()]

    def save(self, folder: str | Path) -> Path:
        folder = super().save(folder)
        save_text(folder / "basins.md", self.table() + "\n")
        return folder

    def galleries(self, map: LatentMap, images, folder: str | Path, n: int = 24, per: int = 23, seed: int = 0) -> list[Path]:
        """One PNG per basin (largest first): the decoded attractor, then up to ``per`` of its images."""
        from ..images import save_grid

        folder = Path(folder)
        x = images.images if hasattr(images, "images") else images
        gen = torch.Generator().manual_seed(seed)
        paths = []
        for k in range(min(n, len(self.points))):
            members = torch.nonzero(self.assignment == k).flatten()
            members = members[torch.randperm(len(members), generator=gen)[:per]]
            attractor = decode_latents(map, self.points[k:k + 1])
            tiles = torch.cat([attractor, as_float_images(x[members])])
            names = self.classes or []
            caps = [f"A{k} n={int(self.counts[k])}"] + [
                names[int(self.labels[i])] if names and int(self.labels[i]) >= 0 else f"#{int(self.indices[i])}"
                for i in members]
            paths.append(save_grid(_upscale(tiles), folder / f"basin_{k:03d}.png", nrow=8, labels=caps))
        return paths


def _upscale(x: Tensor, size: int = 64) -> Tensor:
    """Small images (28 px) get captions wider than themselves; nearest upscaling keeps pixels honest."""
    if x.shape[-1] >= size:
        return x
    f = -(-size // x.shape[-1])
    return x.repeat_interleave(f, -1).repeat_interleave(f, -2)


def find_basins(map: LatentMap, images, cfg: BasinsConfig = BasinsConfig(), *, out: str | Path | None = None,
                progress: bool = False, overwrite: bool = False) -> Basins:
    """Iterate every image (an ImageSet or a [N, C, H, W] tensor) to its attractor.

    ``out``: folder of the checkpointed (resumable) search.
    """
    x = images.images if hasattr(images, "images") else images
    if not isinstance(x, Tensor) or x.dim() != 4 or len(x) == 0:
        raise ProbeError("images must be a non-empty ImageSet or [N, C, H, W] tensor")
    z = encode_images(map, x, cfg.image_batch)
    fcfg = cfg.field.replace(resolution=int(x.shape[-1]) if map.image_size is None else None)
    aset = search_or_reuse(map, fcfg, Path(out) if out is not None else None, seeds=z, progress=progress,
                           overwrite=overwrite, what="attractors of the images")
    is_set = hasattr(images, "images")  # an ImageSet; a bare tensor has no labels (and .indices means sparse)
    labels = images.labels if is_set else None
    labels = labels.long() if labels is not None else torch.full((len(x),), -1, dtype=torch.long)
    idx = images.indices if is_set else None
    idx = idx.long() if idx is not None else torch.arange(len(x))
    desc = images.describe() if is_set else {"name": "tensor", "n": len(x)}
    meta = {"config": {**asdict(cfg), "field": aset.config}, "model": model_of(map), "map": map.describe(),
            "images": desc, "merge": aset.merge, "status": aset.status_counts(), "field": aset.config}
    return Basins(aset.points, aset.stable, aset.counts, aset.assignment, labels, idx,
                  images.classes if is_set else None, meta)


def run_basins(map: LatentMap, images, out: str | Path, cfg: BasinsConfig = BasinsConfig(), *,
               progress: bool = False, overwrite: bool = False) -> Basins:
    """:func:`find_basins`, saved to ``out`` with galleries, an overview grid and ``basins.md``."""
    from ..images import save_grid

    out = Path(out)
    result = find_basins(map, images, cfg, out=out / "attractors", progress=progress, overwrite=overwrite)
    result.save(out)
    result.galleries(map, images, out / "galleries", cfg.galleries, cfg.per_gallery, cfg.field.seed)
    k = min(len(result.points), 64)
    if k:
        dec = decode_latents(map, result.points[:k])
        caps = [f"A{i} n={int(result.counts[i])}" for i in range(k)]
        save_grid(_upscale(dec), out / "attractors.png", nrow=8, labels=caps)
    save_json(out / "summary.json", {"attractors": len(result.points), "images": len(result.assignment),
                                     "purity": result.purity(), "merge": result.meta["merge"]})
    return result
