"""The memorization lab: train one conv autoencoder per bottleneck k and measure each (paper Fig. 2-3).

A study owns a folder, filled model by model so that an interrupted sweep resumes::

    k016/                 the training run (probe.train) for k = 16, loadable with probe.load
    k016/memorization.json  measure() of the final model
    k016/counts.json      distinct noise attractors after each counted epoch (merge rule recorded)
    k016/attractors_noise/  the AttractorSet from noise seeds (plus _train, _test)
    study.json            config + one row per k;  memorization.md  the table
    coefficient_vs_k.png  attractors_vs_epoch.png  mse_vs_k.png  attractors_k016.png ...
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import asdict, field
from ..errors import ConfigError, ProbeError
from ..field.config import FieldConfig
from ..io import load_json, save_figure, save_json, save_text
from ..result import Result
from .common import nest_field, resolved_config
from .memorization import SOURCES, MeasureConfig, Memorization, count_attractors, measure

__all__ = ["MemorizationConfig", "MemorizationStudy", "run_study", "plot_study"]


@dataclass(frozen=True)
class MemorizationConfig:
    """A sweep over bottlenecks; training follows the paper (Adam 5e-4, wd 1e-4, StepLR)."""

    section = "memorization"

    dataset: str = field("fashion-mnist", "image set (probe.data spec with train and test splits)")
    bottlenecks: list[int] = field([2, 4, 8, 16, 32, 64, 128], "bottleneck sizes k to train and measure")
    epochs: int = field(20, "training epochs per model")
    n_train: int = field(10000, "training images (seeded subset; 0 = the whole split)")
    n_test: int = field(2000, "test images: test MSE, test-image seeds and the null level")
    width: int = field(16, "d: first conv channels (encoder d, 2d, 4d, 8d)")
    train_batch: int = field(128, "training batch size")
    lr_step: int = field(10, "StepLR step in epochs")
    augment: str = field("none", "training augmentation (none, shift, flip, shift+flip)")
    n_data_seeds: int = field(256, "train and test images used as seeds (each)")
    n_null: int = field(1000, "test images for the null level")
    count_seeds: int = field(128, "noise seeds for the attractor count after each counted epoch")
    count_every: int = field(0, "count attractors every N epochs (0 = about 8 counts per model)")
    count_epochs: list[int] = field([], "count attractors after exactly these epochs, e.g. 1,2,5,10,20,50,100,200,500 "
                               "(overrides count_every; only these epochs' weights are kept)")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(n_seeds=256), "the attractor search of every model: 256 noise seeds; "
                               "its seed also draws data subsets and initialisations; its device trains too")

    def __post_init__(self):
        nest_field(self)
        ks = list(self.bottlenecks)
        if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
            raise ConfigError(f"bottlenecks must be positive integers, got {ks}")
        if self.epochs < 1:
            raise ConfigError("epochs must be >= 1")
        if any(not isinstance(e, int) or not 1 <= e <= self.epochs for e in self.count_epochs):
            raise ConfigError(f"count_epochs must be integers in 1..{self.epochs}, got {list(self.count_epochs)}")

    def train_config(self, k: int):
        from ..train import TrainConfig

        return TrainConfig(dataset=self.dataset, n_train=self.n_train or None, n_test=self.n_test, width=self.width,
                           bottleneck=int(k), epochs=self.epochs, batch_size=self.train_batch, lr_step=self.lr_step,
                           augment=self.augment, seed=self.field.seed, device=self.field.device or "cpu",
                           keep_epochs=self.counted_epochs() if self.count_epochs else [])

    def measure_config(self) -> MeasureConfig:
        return MeasureConfig(n_data_seeds=self.n_data_seeds, n_null=self.n_null, field=self.field)

    def counted_epochs(self) -> list[int]:
        if self.count_epochs:
            return sorted({*self.count_epochs, self.epochs})
        if self.count_every:
            return sorted({*range(self.count_every, self.epochs + 1, self.count_every), self.epochs})
        every = max(1, math.ceil(self.epochs / 8))
        return sorted({1, *range(every, self.epochs + 1, every), self.epochs})


@dataclass
class MemorizationStudy(Result):
    """One row per bottleneck: MSEs, attractor counts, memorization coefficients, null level."""

    config: dict
    rows: list[dict]

    def _meta(self) -> dict:
        return {"config": self.config, "model": None, "rows": self.rows}

    @classmethod
    def _from_saved(cls, tensors: dict, meta: dict) -> MemorizationStudy:
        return cls(meta["config"], meta["rows"])

    def save(self, folder: str | Path) -> Path:
        folder = super().save(folder)
        save_text(folder / "memorization.md", self.table() + "\n")
        return folder

    def to_rows(self) -> list[dict]:
        return [{"k": r["k"], "train_mse": r["train_mse"], "test_mse": r["test_mse"],
                 **{f"{source}_{key}": r["measure"][source][key] for source in SOURCES
                    for key in ("attractors", "converged", "generalization_rank")},
                 **{f"{source}_coefficient": r["measure"][source]["coefficient"]["mean"] for source in SOURCES},
                 "null": r["measure"]["null"]["mean"]} for r in self.rows]

    def table(self) -> str:
        head = ["k", "train MSE", "test MSE", "noise attr.", "coef (noise)", "coef (train)", "coef (test)",
                "null", "rank (noise)", "Chamfer train-noise", "converged noise"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        f = lambda s: f"{s['mean']:.3f} ± {s['std']:.3f}" if not math.isnan(s["mean"]) else "n/a"  # noqa: E731
        for r in self.rows:
            m = r["measure"]
            lines.append("| " + " | ".join([
                str(r["k"]), f"{r['train_mse']:.5f}", f"{r['test_mse']:.5f}", str(m["noise"]["attractors"]),
                f(m["noise"]["coefficient"]), f(m["train"]["coefficient"]), f(m["test"]["coefficient"]),
                f(m["null"]), str(m["noise"]["generalization_rank"]), f"{m['chamfer']['train_noise']:.3f}",
                f"{m['noise']['converged']}/{m['noise']['seeds']}"]) + " |")
        merge = self.rows[0]["measure"]["noise"]["merge"] if self.rows else {}
        lines.append("")
        lines.append(f"Merge rule: {merge.get('rule', '?')} > {merge.get('threshold', '?')}. coef = max cosine of "
                     "each decoded attractor to the training set (mean ± std over attractors); null = the same for "
                     "held-out test images.")
        return "\n".join(lines)

    def plot(self, folder: str | Path) -> list[Path]:
        return plot_study(self, Path(folder))


def _results_part(d: dict) -> dict:
    # speed settings do not change a measurement: it is reused across them
    speed = ("batch_size", "device", "threads", "compile", "checkpoint_every")
    return {k: (_results_part(v) if isinstance(v, dict) else v) for k, v in d.items() if k not in speed}


def run_study(cfg: MemorizationConfig, out: str | Path, log: Callable[[str], None] | None = print,
              progress: bool = False) -> MemorizationStudy:
    """Train and measure every bottleneck (resuming whatever ``out`` already holds)."""
    from ..data import load_images
    from ..field import AttractorSet
    from ..train import train

    out = Path(out)
    train_set = load_images(cfg.dataset, split="train", n=cfg.n_train or None, seed=cfg.field.seed)
    test_set = load_images(cfg.dataset, split="test", n=cfg.n_test, seed=cfg.field.seed)
    mcfg = cfg.measure_config()
    rows = []
    for k in cfg.bottlenecks:
        folder = out / f"k{int(k):03d}"
        if log:
            log(f"k = {k}: training {cfg.epochs} epochs on {len(train_set)} {cfg.dataset} images -> {folder}")
        run = train(cfg.train_config(k), folder, train_set=train_set, test_set=test_set, log=log)
        model = run.model.eval()
        counts = _counts(run, cfg, mcfg, folder / "counts.json", log)
        mpath = folder / "memorization"
        saved = Memorization.load(mpath) if (mpath / "meta.json").is_file() else None
        want = resolved_config(mcfg, model)
        if saved is None or _results_part(saved.config) != _results_part(want) \
                or saved.facts.get("epochs") != run.epochs_done:
            saved = measure(model, train_set, test_set, mcfg, out=folder / f"search_e{run.epochs_done:04d}",
                            progress=progress)
            saved.facts["epochs"] = run.epochs_done
            saved.save(mpath)
        done = saved.facts
        if log:
            log(f"k = {k}: coefficient (noise) {done['noise']['coefficient']['mean']:.3f}, null {done['null']['mean']:.3f},"
                f" {done['noise']['attractors']} noise attractors")
        last = run.history[-1]
        rows.append({"k": int(k), "train_mse": last["train_mse"], "test_mse": last["test_mse"],
                     "history": run.history, "counts": counts, "measure": done, "folder": str(folder)})
        noise = folder / f"search_e{run.epochs_done:04d}" / "attractors_noise"
        if (noise / "meta.json").is_file():
            AttractorSet.load(noise).plot(model, out / f"attractors_k{int(k):03d}.png", max_points=32)
    study = MemorizationStudy({**asdict(cfg), "data": {"train": train_set.describe(), "test": test_set.describe()}}, rows)
    study.save(out)
    study.plot(out)
    return study


def _counts(run, cfg: MemorizationConfig, mcfg: MeasureConfig, path: Path, log) -> list[dict]:
    """Attractors per counted epoch, from the per-epoch checkpoints (appended as they are computed)."""
    key = {"count_seeds": cfg.count_seeds, **asdict(mcfg)}
    saved = load_json(path) if path.is_file() else {}
    rows = saved.get("rows", []) if saved.get("key") == key else []
    have = {r["epoch"] for r in rows}
    for epoch in cfg.counted_epochs():
        if epoch in have or epoch > run.epochs_done:
            continue
        try:
            model = run.checkpoint(epoch)
        except ProbeError:
            continue  # trained with keep_checkpoints off
        row = {"epoch": epoch, **count_attractors(model, mcfg, cfg.count_seeds)}
        rows = sorted([*rows, row], key=lambda r: r["epoch"])
        save_json(path, {"key": key, "rows": rows})
        if log:
            log(f"  epoch {epoch}: {row['attractors']} attractors from {row['seeds']} noise seeds "
                f"({row['converged']} converged)")
    return rows


def plot_study(study: MemorizationStudy, folder: Path) -> list[Path]:
    """Coefficient vs k with the null level, attractor count vs epoch, MSE vs k."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows = sorted(study.rows, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    paths = []
    c = study.config
    n_train = c.get("data", {}).get("train", {}).get("n", c.get("n_train"))
    setting = f"{c.get('dataset')}, {n_train} train images, {c.get('epochs')} epochs, d = {c.get('width')}"

    def save(fig, name):
        path = folder / name
        fig.tight_layout()
        paths.append(save_figure(fig, path))

    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    for source, style in zip(SOURCES, ("o-", "s--", "^:"), strict=True):
        mean = [r["measure"][source]["coefficient"]["mean"] for r in rows]
        std = [r["measure"][source]["coefficient"]["std"] for r in rows]
        ax.errorbar(ks, mean, yerr=std, fmt=style, capsize=3, label=f"attractors from {source}")
    null = [r["measure"]["null"]["mean"] for r in rows]
    ax.plot(ks, null, "k-", alpha=0.5, label="null: test images")
    ax.axhline(0.8, color="r", lw=0.8, ls="--", label="paper: memorizes above 0.8")
    ax.set(xscale="log", xlabel="bottleneck k", ylabel="max cosine to training set",
           title=f"memorization coefficient\n({setting})")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend(fontsize=7)
    save(fig, "coefficient_vs_k.png")

    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    for r in rows:
        if r["counts"]:
            ax.plot([c["epoch"] for c in r["counts"]], [c["attractors"] for c in r["counts"]], "o-", label=f"k={r['k']}")
    merge = rows[0]["measure"]["noise"]["merge"] if rows else {}
    epochs = [c["epoch"] for r in rows for c in r["counts"]]
    if epochs and max(epochs) >= 20 * min(epochs):  # log-spaced counts (1, 2, 5, ... 500)
        ax.set_xscale("log")
    counts = [c["attractors"] for r in rows for c in r["counts"]]
    if counts and max(counts) > 40:
        ax.set_yscale("symlog")
    else:  # every count readable on a linear axis
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="distinct attractors",
           title=f"attractors from {study.config.get('count_seeds')} noise seeds (merge {merge.get('rule')} > "
                 f"{merge.get('threshold')})\n({setting})")
    ax.legend(fontsize=7, ncol=2)
    save(fig, "attractors_vs_epoch.png")

    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    ax.plot(ks, [r["train_mse"] for r in rows], "o-", label="train")
    ax.plot(ks, [r["test_mse"] for r in rows], "s--", label="test")
    ax.set(xscale="log", yscale="log", xlabel="bottleneck k", ylabel="reconstruction MSE",
           title=f"reconstruction MSE vs k\n({setting})")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend(fontsize=7)
    save(fig, "mse_vs_k.png")
    return paths
