"""Which inputs does latent feature K capture? Answered with the field, not with the decoder alone.

Feature K is a latent channel (spatial latents ``[C, H, W]``, its activation the mean, or max,
over positions) or a coordinate (vector latents). Every image is encoded and iterated to its
attractor (METHOD.md section 2: the image's basin). For the basins whose attractor has the
highest K, the report shows the images that flow in, the decoded attractor, and the decoded
attractor with K set to zero and to its largest value over the encoded images (per position
for a channel): what the feature adds where the model's own dynamics settle, rather than what
the decoder makes of a latent with every other channel zeroed (an input it never saw).

    report = find_feature_images(map, images, FeaturesConfig(feature=3))
    report.save("features-out"); report.plot(map).savefig("features.png"); report.to_csv("features.csv")
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import asdict, field
from ..errors import ConfigError, ProbeError
from ..field.config import FieldConfig
from ..result import Result, model_fingerprint
from .common import as_float_images, decode_latents, encode_images, nest_field

REDUCE = ("mean", "max")


@dataclass(frozen=True)
class FeaturesConfig:
    """Which feature, how its activation is read, and how much of each basin to show."""

    section = "features"

    feature: int = field(0, "K: the latent channel (spatial latents) or coordinate (vector latents) to explain")
    reduce: str = field("mean", "activation of a channel: its 'mean' or 'max' over latent positions")
    top_basins: int = field(4, "basins shown, those whose attractor has the highest K first")
    gallery: int = field(8, "images shown per basin (highest K first)")
    split: str = field("test", "split of the image set")
    n_images: int | None = field(None, "a seeded random subset of this many images (None = every image)")
    image_batch: int = field(64, "images encoded at once")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(), "the iteration of every encoded image (the seeds are the images)")

    def __post_init__(self):
        nest_field(self)
        if not isinstance(self.feature, int) or isinstance(self.feature, bool) or self.feature < 0:
            raise ConfigError(f"feature must be an integer >= 0, got {self.feature!r}")
        if self.reduce not in REDUCE:
            raise ConfigError(f"reduce must be one of {', '.join(REDUCE)}, got {self.reduce!r}")
        for name in ("top_basins", "gallery", "image_batch"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")


def feature_activation(z: Tensor, k: int, reduce: str = "mean") -> Tensor:
    """[N] activation of feature ``k``: coordinate k of vector latents, channel k reduced over positions."""
    if z.dim() < 2 or not 0 <= k < z.shape[1]:
        raise ProbeError(f"feature {k} does not exist: latents have {z.shape[1] if z.dim() > 1 else 0} "
                         f"{'channels' if z.dim() > 2 else 'coordinates'} (0..{z.shape[1] - 1 if z.dim() > 1 else 0})")
    a = z[:, k].reshape(len(z), -1).float()
    return a.mean(1) if reduce == "mean" else a.amax(1)


def set_feature(z: Tensor, k: int, value: Tensor | float) -> Tensor:
    """A copy of latents ``z`` with feature ``k`` (channel or coordinate) set to ``value``."""
    out = z.clone()
    out[:, k] = value
    return out


@dataclass
class FeatureReport(Result):
    """Images ranked by feature K, their attractors, and what K adds at the top attractors."""

    feature: int
    reduce: str
    names: list              #: [N] name of each image (file name or index)
    activation: Tensor       #: [N] K of each encoded image
    end_activation: Tensor   #: [N] K of the point each image's iteration ended at
    assignment: Tensor       #: [N] attractor of each image (-1: its iteration did not converge)
    status: Tensor           #: [N] iteration status code (probe.field.STATUS)
    attractor_activation: Tensor  #: [A] K of each attractor
    stable: Tensor           #: [A] spectral radius < 1
    counts: Tensor           #: [A] images in each basin
    top: list                #: attractors shown, highest K first
    gallery: Tensor          #: [G, C, H, W] uint8 images of the shown basins, in order of ``top``
    gallery_basin: Tensor    #: [G] the basin (attractor index) of each gallery image
    decoded: Tensor          #: [T, 3, C, H, W] decoded attractor, with K = 0, with K = its largest value
    k_max: float             #: the largest activation of K over the encoded images
    config: dict             #: the resolved FeaturesConfig
    model: dict | None = None
    images: dict | None = None  #: what the image set was (name, source, n, ops)

    # -- the Result contract ---------------------------------------------------------------
    def _tensors(self) -> dict:
        return {k: getattr(self, k) for k in ("activation", "end_activation", "assignment", "status",
                                              "attractor_activation", "stable", "counts", "gallery",
                                              "gallery_basin", "decoded")}

    def _meta(self) -> dict:
        return {"config": self.config, "model": self.model, "feature": self.feature, "reduce": self.reduce,
                "names": list(self.names), "top": list(self.top), "k_max": self.k_max, "images": self.images}

    @classmethod
    def _from_saved(cls, tensors, meta):
        return cls(feature=meta["feature"], reduce=meta["reduce"], names=meta["names"], top=meta["top"],
                   k_max=meta["k_max"], config=meta["config"], model=meta["model"], images=meta.get("images"),
                   **{k: tensors[k] for k in ("activation", "end_activation", "assignment", "status",
                                              "attractor_activation", "stable", "counts", "gallery",
                                              "gallery_basin", "decoded")})

    def to_rows(self) -> list[dict]:
        """One row per image, highest K first: image -> attractor -> activation of K."""
        from ..field.iterate import STATUS

        order = torch.argsort(self.activation, descending=True, stable=True)
        rows = []
        for rank, i in enumerate(order.tolist(), 1):
            a = int(self.assignment[i])
            rows.append({"image": str(self.names[i]), "rank": rank, "activation": float(self.activation[i]),
                         "attractor": a, "attractor_activation": float(self.attractor_activation[a]) if a >= 0 else None,
                         "end_activation": float(self.end_activation[i]),
                         "attractor_stable": bool(self.stable[a]) if a >= 0 else None,
                         "shown": a in self.top, "status": STATUS[int(self.status[i])]})
        return rows

    # -- reading it ---------------------------------------------------------------------------
    def scores(self) -> Tensor:
        """[N] per image: K of its attractor (of its end point when it did not converge)."""
        a = self.assignment.clamp_min(0)
        return torch.where(self.assignment >= 0, self.attractor_activation[a], self.end_activation)

    def summary(self) -> list[str]:
        n, conv = len(self.activation), int((self.assignment >= 0).sum())
        lines = [f"feature {self.feature} ({self.reduce} over positions): {n} images, {conv} converged to "
                 f"{len(self.counts)} attractors; K over the images {float(self.activation.min()):.3g} .. "
                 f"{self.k_max:.3g}"]
        if conv and len(self.counts) > conv / 2:
            # measured on a CIFAR-10 conv AE (benchmarks/results/features_planted.md): with basins of one or
            # two images the attractors are the map's artefacts and K there says little about the inputs
            lines.append(f"note: {len(self.counts)} attractors for {conv} converged images: the map hardly merges "
                         f"images into basins, so K at an attractor says little; read the ranking by activation")
        lines += ["", "| attractor | K at attractor | images | mean K of its images | stable |", "|---|---|---|---|---|"]
        for a in self.top:
            members = self.activation[self.assignment == a]
            lines.append(f"| {a} | {float(self.attractor_activation[a]):.3g} | {int(self.counts[a])} | "
                         f"{float(members.mean()) if len(members) else float('nan'):.3g} | "
                         f"{'yes' if bool(self.stable[a]) else 'no'} |")
        return lines

    def plot(self, map=None, path=None, tile: float = 1.1):
        """The gallery as a ``matplotlib.figure.Figure``: one row per shown basin, its images (with
        their K), then the decoded attractor, with K = 0 and with K = max. Saved when ``path``."""
        from matplotlib.figure import Figure

        rows = max(1, len(self.top))
        shown = max([int((self.gallery_basin == a).sum()) for a in self.top] or [0])
        cols = max(1, shown) + 3  # no empty columns when basins are small
        fig = Figure(figsize=(tile * cols, tile * rows + 0.6), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for r, a in enumerate(self.top):
            imgs = self.gallery[self.gallery_basin == a]
            acts = self.activation[self.assignment == a].sort(descending=True).values
            for c, img in enumerate(imgs):
                _show(axes[r, c], img.float() / 255, f"K={float(acts[c]):.2g}" if c < len(acts) else "")
            titles = (f"attractor {a}\nK={float(self.attractor_activation[a]):.2g}", "K = 0", f"K = {self.k_max:.2g}")
            for j, title in enumerate(titles):
                _show(axes[r, cols - 3 + j], self.decoded[r, j], title)
            axes[r, 0].text(-0.15, 0.5, f"basin {a}\n{int(self.counts[a])} images", transform=axes[r, 0].transAxes,
                            ha="right", va="center", fontsize=7)
        fig.suptitle(f"feature {self.feature}: the basins whose attractor has the highest K\nimages flowing in | "
                     f"decoded attractor | with K = 0 | with K at its largest value", fontsize=7)
        if path is not None:
            from ..io import save_figure

            save_figure(fig, path)
        return fig


def _show(ax, img: Tensor, title: str) -> None:
    x = img.detach().float().clamp(0, 1).permute(1, 2, 0).numpy()
    ax.imshow(x[..., 0] if x.shape[-1] == 1 else x, cmap="gray" if x.shape[-1] == 1 else None, vmin=0, vmax=1)
    ax.set_title(title, fontsize=6)


def find_feature_images(map, images, cfg: FeaturesConfig | None = None, *, names=None, progress: bool = False,
                        **overrides) -> FeatureReport:
    """Rank ``images`` (an ImageSet or ``[N, C, H, W]``) by feature K, iterate them to their attractors,
    and decode the attractors with the highest K with K zeroed and at its maximum (module docstring)."""
    from ..field import find_attractors

    cfg = cfg or FeaturesConfig()
    if overrides:
        import dataclasses

        cfg = dataclasses.replace(cfg, **overrides)
    x = as_float_images(images)
    z = encode_images(map, x, batch_size=cfg.image_batch)
    k = cfg.feature
    act = feature_activation(z, k, cfg.reduce)
    k_max_map = z[:, k].amax(0)  # per position for a channel, a number for a coordinate
    fcfg = cfg.field.resolve(map)
    aset = find_attractors(map, fcfg, seeds=z.to(map.dtype), progress=progress)
    att_act = feature_activation(aset.points.float(), k, cfg.reduce) if len(aset.points) else torch.zeros(0)
    end_act = feature_activation(aset.end_points.float(), k, cfg.reduce)
    top = torch.argsort(att_act, descending=True, stable=True)[:cfg.top_basins].tolist()
    gallery, basin = [], []
    for a in top:
        members = torch.nonzero(aset.assignment == a).flatten()
        members = members[torch.argsort(act[members], descending=True, stable=True)][:cfg.gallery]
        gallery.append(x[members])
        basin += [a] * len(members)
    decoded = torch.zeros(0)
    if top:
        pts = aset.points[top].float()
        variants = torch.cat([pts, set_feature(pts, k, 0.0), set_feature(pts, k, k_max_map)])
        dec = decode_latents(map, variants)
        decoded = dec.view(3, len(top), *dec.shape[1:]).transpose(0, 1).contiguous()
    described = images.describe() if hasattr(images, "describe") else {"n": len(x)}
    return FeatureReport(
        feature=k, reduce=cfg.reduce, names=list(names) if names is not None else _names(images, len(x)),
        activation=act, end_activation=end_act, assignment=aset.assignment.to(torch.int64), status=aset.status,
        attractor_activation=att_act, stable=aset.stable, counts=aset.counts, top=top,
        gallery=(torch.cat(gallery) * 255).round().to(torch.uint8) if gallery else torch.zeros(0, *x.shape[1:], dtype=torch.uint8),
        gallery_basin=torch.tensor(basin, dtype=torch.int64), decoded=decoded,
        k_max=float(feature_activation(set_feature(z[:1], k, k_max_map), k, cfg.reduce)[0]),
        config={**asdict(cfg), "field": aset.config}, model=model_fingerprint(map), images=described)


def _names(images, n: int) -> list[str]:
    if getattr(images, "names", None) is not None:
        return list(images.names)
    idx = getattr(images, "indices", None) if not isinstance(images, Tensor) else None
    return [str(int(i)) for i in idx] if idx is not None else [str(i) for i in range(n)]
