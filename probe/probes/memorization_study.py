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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import asdict, field
from ..errors import ProbeError
from ..io import load_json, save_json
from .memorization import SOURCES, MeasureConfig, count_attractors, measure


@dataclass(frozen=True)
class MemorizationConfig:
    """A sweep over bottlenecks; training follows the paper (Adam 5e-4, wd 1e-4, StepLR)."""

    section = "memorization"

    dataset: str = field("fashion-mnist", "image set (probe.data spec with train and test splits)")
    bottlenecks: list = field([2, 4, 8, 16, 32, 64, 128], "bottleneck sizes k to train and measure")
    epochs: int = field(20, "training epochs per model")
    n_train: int = field(10000, "training images (seeded subset; 0 = the whole split)")
    n_test: int = field(2000, "test images: test MSE, test-image seeds and the null level")
    width: int = field(16, "d: first conv channels (encoder d, 2d, 4d, 8d)")
    batch_size: int = field(128, "training batch size")
    lr_step: int = field(10, "StepLR step in epochs")
    augment: str = field("none", "training augmentation (none, shift, flip, shift+flip)")
    n_seeds: int = field(256, "noise seeds per model")
    n_data_seeds: int = field(256, "train and test images used as seeds (each)")
    n_null: int = field(1000, "test images for the null level")
    count_seeds: int = field(128, "noise seeds for the attractor count after each counted epoch")
    count_every: int = field(0, "count attractors every N epochs (0 = about 8 counts per model)")
    merge_threshold: float = field(0.99, "cosine merge threshold (the paper: 0.99)")
    max_steps: int | None = field(None, "iteration budget (default: the map's, 3000)")
    seed: int = field(0, "seed for data subsets, initialisation and noise seeds")
    device: str = field("cpu", "cpu or cuda[:i]")

    def __post_init__(self):
        ks = list(self.bottlenecks)
        if not ks or any(int(k) < 1 for k in ks):
            raise ValueError(f"bottlenecks must be positive integers, got {ks}")
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")

    def train_config(self, k: int):
        from ..train import TrainConfig

        return TrainConfig(dataset=self.dataset, n_train=self.n_train or None, n_test=self.n_test, width=self.width,
                           bottleneck=int(k), epochs=self.epochs, batch_size=self.batch_size, lr_step=self.lr_step,
                           augment=self.augment, seed=self.seed, device=self.device)

    def measure_config(self) -> MeasureConfig:
        return MeasureConfig(n_seeds=self.n_seeds, n_data_seeds=self.n_data_seeds, n_null=self.n_null,
                             merge_threshold=self.merge_threshold, max_steps=self.max_steps, seed=self.seed)

    def counted_epochs(self) -> list[int]:
        if self.count_every:
            return sorted({*range(self.count_every, self.epochs + 1, self.count_every), self.epochs})
        every = max(1, math.ceil(self.epochs / 8))
        return sorted({1, *range(every, self.epochs + 1, every), self.epochs})


@dataclass
class MemorizationStudy:
    """One row per bottleneck: MSEs, attractor counts, memorization coefficients, null level."""

    config: dict
    rows: list[dict]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        save_json(folder / "study.json", {"kind": "MemorizationStudy", "config": self.config, "rows": self.rows})
        (folder / "memorization.md").write_text(self.table() + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "MemorizationStudy":
        meta = load_json(Path(folder) / "study.json")
        if meta.get("kind") != "MemorizationStudy":
            raise ProbeError(f"{folder} does not hold a memorization study")
        return cls(meta["config"], meta["rows"])

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


def run_study(cfg: MemorizationConfig, out: str | Path, log: Callable[[str], None] | None = print) -> MemorizationStudy:
    """Train and measure every bottleneck (resuming whatever ``out`` already holds)."""
    from ..data import load_images
    from ..field import AttractorSet
    from ..train import train

    out = Path(out)
    train_set = load_images(cfg.dataset, split="train", n=cfg.n_train or None, seed=cfg.seed)
    test_set = load_images(cfg.dataset, split="test", n=cfg.n_test, seed=cfg.seed)
    mcfg = cfg.measure_config()
    rows = []
    for k in cfg.bottlenecks:
        folder = out / f"k{int(k):03d}"
        if log:
            log(f"k = {k}: training {cfg.epochs} epochs on {len(train_set)} {cfg.dataset} images -> {folder}")
        run = train(cfg.train_config(k), folder, train_set=train_set, test_set=test_set, log=log)
        model = run.model.eval()
        counts = _counts(run, cfg, mcfg, folder / "counts.json", log)
        mpath = folder / "memorization.json"
        done = load_json(mpath) if mpath.is_file() else None
        if done is None or done.get("config") != asdict(mcfg) or done.get("epochs") != run.epochs_done:
            keep: dict = {}
            done = {**measure(model, train_set, test_set, mcfg, device=cfg.device, keep=keep), "epochs": run.epochs_done}
            for source, aset in keep.items():
                aset.save(folder / f"attractors_{source}")
            save_json(mpath, done)
        if log:
            log(f"k = {k}: coefficient (noise) {done['noise']['coefficient']['mean']:.3f}, null {done['null']['mean']:.3f},"
                f" {done['noise']['attractors']} noise attractors")
        last = run.history[-1]
        rows.append({"k": int(k), "train_mse": last["train_mse"], "test_mse": last["test_mse"],
                     "history": run.history, "counts": counts, "measure": done, "folder": str(folder)})
        if (folder / "attractors_noise").is_dir():
            AttractorSet.load(folder / "attractors_noise").plot(model, out / f"attractors_k{int(k):03d}.png", max_points=32)
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
        row = {"epoch": epoch, **count_attractors(model, mcfg, cfg.count_seeds, device=cfg.device)}
        rows = sorted([*rows, row], key=lambda r: r["epoch"])
        save_json(path, {"key": key, "rows": rows})
        if log:
            log(f"  epoch {epoch}: {row['attractors']} attractors from {row['seeds']} noise seeds "
                f"({row['converged']} converged)")
    return rows


def plot_study(study: MemorizationStudy, folder: Path) -> list[Path]:
    """Coefficient vs k with the null level, attractor count vs epoch, MSE vs k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import _atomic_write

    rows = sorted(study.rows, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    paths = []

    def save(fig, name):
        path = folder / name
        fig.tight_layout()
        _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        plt.close(fig)
        paths.append(path)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for source, style in zip(SOURCES, ("o-", "s--", "^:")):
        mean = [r["measure"][source]["coefficient"]["mean"] for r in rows]
        std = [r["measure"][source]["coefficient"]["std"] for r in rows]
        ax.errorbar(ks, mean, yerr=std, fmt=style, capsize=3, label=f"attractors from {source}")
    null = [r["measure"]["null"]["mean"] for r in rows]
    ax.plot(ks, null, "k-", alpha=0.5, label="null: test images")
    ax.axhline(0.8, color="r", lw=0.8, ls="--", label="paper: memorizes above 0.8")
    ax.set(xscale="log", xlabel="bottleneck k", ylabel="max cosine to training set",
           title=f"memorization coefficient ({study.config.get('dataset')})")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend(fontsize=7)
    save(fig, "coefficient_vs_k.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in rows:
        if r["counts"]:
            ax.plot([c["epoch"] for c in r["counts"]], [c["attractors"] for c in r["counts"]], "o-", label=f"k={r['k']}")
    merge = rows[0]["measure"]["noise"]["merge"] if rows else {}
    ax.set(xlabel="epoch", ylabel="distinct attractors", yscale="symlog",
           title=f"attractors from {study.config.get('count_seeds')} noise seeds (merge {merge.get('rule')} > "
                 f"{merge.get('threshold')})")
    ax.legend(fontsize=7, ncol=2)
    save(fig, "attractors_vs_epoch.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(ks, [r["train_mse"] for r in rows], "o-", label="train")
    ax.plot(ks, [r["test_mse"] for r in rows], "s--", label="test")
    ax.set(xscale="log", yscale="log", xlabel="bottleneck k", ylabel="reconstruction MSE", title="MSE vs k")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend(fontsize=7)
    save(fig, "mse_vs_k.png")
    return paths
