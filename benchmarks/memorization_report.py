"""Write benchmarks/results/memorization_<dataset>.md (+ plots) from finished sweep folders.

    python benchmarks/memorization_report.py runs/mem-mnist runs/mem-fmnist

The sweeps themselves are made by benchmarks/memorization_sweep.sh; this only reads their
study.json and copies their figures, so it can be rerun at no cost.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from probe.probes.memorization_study import MemorizationStudy

RESULTS = Path(__file__).resolve().parent / "results"
COMMANDS = {
    "mnist": "benchmarks/memorization_sweep.sh mnist",
    "fashion-mnist": "benchmarks/memorization_sweep.sh fashion-mnist",
}


def counts_table(study: MemorizationStudy) -> str:
    epochs = sorted({c["epoch"] for r in study.rows for c in r["counts"]})
    lines = ["| k | " + " | ".join(f"ep {e}" for e in epochs) + " |", "|" + "---|" * (len(epochs) + 1)]
    for r in study.rows:
        by = {c["epoch"]: c["attractors"] for c in r["counts"]}
        lines.append(f"| {r['k']} | " + " | ".join(str(by.get(e, "")) for e in epochs) + " |")
    return "\n".join(lines)


def data_table(study: MemorizationStudy) -> str:
    head = ["k", "attractors from train", "coef (train)", "rank (train)", "attractors from test", "rank (test)",
            "Chamfer test-noise", "noise median steps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in study.rows:
        m = r["measure"]
        lines.append(f"| {r['k']} | {m['train']['attractors']} | {m['train']['coefficient']['mean']:.3f} | "
                     f"{m['train']['generalization_rank']} | {m['test']['attractors']} | "
                     f"{m['test']['generalization_rank']} | {m['chamfer']['test_noise']:.3f} | "
                     f"{m['noise']['median_steps']:.0f} |")
    return "\n".join(lines)


def write(folder: Path) -> Path:
    study = MemorizationStudy.load(folder)
    cfg = study.config
    name = cfg["dataset"]
    tag = name.replace("-", "")
    train, test = cfg["data"]["train"], cfg["data"]["test"]
    figures = []
    grids = [f"attractors_k{int(r['k']):03d}.png" for r in study.rows]
    for fig in ("coefficient_vs_k.png", "attractors_vs_epoch.png", "mse_vs_k.png", *grids):
        if (folder / fig).is_file():
            dest = RESULTS / f"memorization_{tag}_{fig}"
            shutil.copyfile(folder / fig, dest)
            figures.append(dest.name)
    text = [f"# Memorization sweep: {name}", "",
            f"Made by `{COMMANDS.get(name, 'probe memorization ...')}` (study folder `{folder}`), then "
            f"`python benchmarks/memorization_report.py {folder}`. CPU, one thread per process.", "",
            f"Settings: conv autoencoder d = {cfg['width']}, k in {cfg['bottlenecks']}, {cfg['epochs']} epochs, "
            f"batch {cfg['batch_size']}, Adam lr 5e-4, weight decay 1e-4, StepLR step {cfg['lr_step']} x0.5, "
            f"augmentation {cfg['augment']}; {train['n']} training images ({', '.join(train['ops']) or 'all'}), "
            f"{test['n']} test images. Seeds per model: {cfg['n_seeds']} N(0, I), {cfg['n_data_seeds']} training "
            f"and {cfg['n_data_seeds']} test images; null level over {cfg['n_null']} test images; attractor counts "
            f"from {cfg['count_seeds']} N(0, I) seeds. Iteration: tol 1e-6, max_steps "
            f"{cfg['max_steps'] or 3000}; merge cosine > {cfg['merge_threshold']}.", "",
            "## Memorization coefficient (noise attractors) vs k", "", study.table(), "",
            "## Attractors from data", "", data_table(study), "",
            "## Distinct attractors from noise seeds during training", "", counts_table(study), ""]
    plots = [f for f in figures if "_attractors_k" not in f]
    text += [f"![{f}]({f})" for f in plots]
    text += ["", "## Decoded noise attractors per k (largest basins first)", ""]
    text += [f"![{f}]({f})" for f in figures if f not in plots]
    path = RESULTS / f"memorization_{tag}.md"
    path.write_text("\n".join(text) + "\n")
    return path


if __name__ == "__main__":
    RESULTS.mkdir(parents=True, exist_ok=True)
    for arg in sys.argv[1:] or ["runs/mem-mnist", "runs/mem-fmnist"]:
        print(write(Path(arg)))
