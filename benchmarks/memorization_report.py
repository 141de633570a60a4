"""Write benchmarks/results/<prefix>_<dataset>.md (+ plots) from finished sweep folders.

    python benchmarks/memorization_report.py runs/mem-mnist runs/mem-fmnist
    python benchmarks/memorization_report.py --prefix memorization500 --command "benchmarks/memorization_500.sh" \
        /work/sweep/runs/mem500-mnist-a /work/sweep/runs/mem500-mnist-b

Study folders of one dataset (a sweep split over two processes) are merged into one table, rows
sorted by k. This only reads the folders' study files and models, so it can be rerun at no cost.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import probe
from probe.field import AttractorSet
from probe.probes.memorization_study import MemorizationStudy, plot_study

RESULTS = Path(__file__).resolve().parent / "results"


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


def seed_scale_table(study: MemorizationStudy, folder: Path) -> str:
    """Noise attractors from N(0, I) against noise matched to the encoded training latents (``folder``/kNNN),
    with the median norm of 256 encoded training images beside the N(0, I) norm sqrt(k)."""
    import torch

    from probe.data import load_images
    from probe.probes.memorization import Memorization

    images = load_images(study.config["dataset"], split="train", n=256, seed=0)
    x = torch.as_tensor(images.images).float() / 255
    head = ["k", "data latent norm (median)", "N(0, I) norm", "attractors N(0, I)", "coef N(0, I)",
            "attractors matched noise", "coef matched noise", "converged matched", "attractors from train"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in study.rows:
        path = folder / f"k{int(r['k']):03d}"
        if not (path / "meta.json").is_file():
            continue
        m, other = r["measure"], Memorization.load(path)
        norm = float(probe.load(r["folder"]).encode_batched(x).flatten(1).norm(dim=1).median())
        c0, c1 = m["noise"]["coefficient"], other["noise"]["coefficient"]
        lines.append(f"| {r['k']} | {norm:.1f} | {r['k'] ** 0.5:.1f} | {m['noise']['attractors']} | {c0['mean']:.3f} | "
                     f"{other['noise']['attractors']} | {c1['mean']:.3f} ± {c1['std']:.3f} | "
                     f"{other['noise']['converged']}/{other['noise']['seeds']} | {m['train']['attractors']} |")
    return "\n".join(lines)


def norms_table(study: MemorizationStudy) -> str:
    """Median latent norm of 256 encoded training images at each counted epoch (kept checkpoints), with the
    count of noise attractors then: how far N(0, I) seeds (norm about sqrt(k)) sit inside the data's latents."""
    import torch

    from probe.data import load_images
    from probe.train import TrainRun

    x = torch.as_tensor(load_images(study.config["dataset"], split="train", n=256, seed=0).images).float() / 255
    epochs = sorted({c["epoch"] for r in study.rows for c in r["counts"]})
    lines = ["| k | sqrt(k) | " + " | ".join(f"ep {e}" for e in epochs) + " |", "|" + "---|" * (len(epochs) + 2)]
    for r in study.rows:
        run, cells = TrainRun.load(r["folder"]), []
        counts = {c["epoch"]: c["attractors"] for c in r["counts"]}
        for e in epochs:
            try:
                model = run.checkpoint(e).eval()
            except probe.ProbeError:
                cells.append("")
                continue
            with torch.no_grad():
                cells.append(f"{float(model.encode(x).flatten(1).norm(dim=1).median()):.0f} ({counts.get(e, '-')})")
        lines.append(f"| {r['k']} | {r['k'] ** 0.5:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merged(folders: list[Path]) -> MemorizationStudy:
    """One study from several folders of the same dataset and settings (bottlenecks joined, rows by k)."""
    studies = [MemorizationStudy.load(f) for f in folders]
    # a row's folder was saved relative to where the sweep ran: point it into its study folder
    rows = sorted(({**r, "folder": str(f.resolve() / Path(r["folder"]).name)} for f, s in zip(folders, studies, strict=True)
                   for r in s.rows), key=lambda r: r["k"])
    config = dict(studies[0].config)
    config["bottlenecks"] = [r["k"] for r in rows]
    for s in studies[1:]:
        other = {k: v for k, v in s.config.items() if k != "bottlenecks"}
        mine = {k: v for k, v in config.items() if k != "bottlenecks"}
        if other != mine:
            diff = sorted(k for k in set(other) | set(mine) if other.get(k) != mine.get(k))
            raise SystemExit(f"studies differ in {', '.join(diff)}: not merged")
    return MemorizationStudy(config, rows)


def write(folders: list[Path], prefix: str, command: str, matched: Path | None = None) -> Path:
    study = merged(folders)
    cfg, fcfg = study.config, study.config["field"]
    name = cfg["dataset"]
    tag = name.replace("-", "")
    train, test = cfg["data"]["train"], cfg["data"]["test"]
    stem = f"{prefix}_{tag}"
    work = RESULTS / f".{stem}"
    work.mkdir(parents=True, exist_ok=True)
    figures = [p.name for p in plot_study(study, work)]
    for fig in figures:
        shutil.move(work / fig, RESULTS / f"{stem}_{fig}")
    work.rmdir()
    grids = []
    for r in study.rows:  # drawn again from the saved noise attractors, with this checkout's plotting code
        folder = Path(r["folder"])
        noise = folder / f"search_e{len(r['history']):04d}" / "attractors_noise"
        if (noise / "meta.json").is_file():
            grids.append(f"{stem}_attractors_k{int(r['k']):03d}.png")
            AttractorSet.load(noise).plot(probe.load(folder), RESULTS / grids[-1], max_points=32)
    epochs = sorted({c["epoch"] for r in study.rows for c in r["counts"]})
    text = [f"# Memorization sweep: {name}", "",
            f"Made by `{command}` (study folders {', '.join(f'`{f}`' for f in folders)}), then "
            f"`python benchmarks/memorization_report.py --prefix {prefix} ...`. CPU, one thread per process.", "",
            f"Settings: conv autoencoder d = {cfg['width']}, k in {cfg['bottlenecks']}, {cfg['epochs']} epochs, "
            f"batch {cfg['train_batch']}, Adam lr 5e-4, weight decay 1e-4, StepLR step {cfg['lr_step']} x 0.5, "
            f"augmentation {cfg['augment']}; {train['n']} training images ({train.get('source', '')}), "
            f"{test['n']} test images. Seeds per model: {fcfg['n_seeds']} N(0, I), {cfg['n_data_seeds']} training "
            f"and {cfg['n_data_seeds']} test images; null level over {cfg['n_null']} test images; attractor counts "
            f"from {cfg['count_seeds']} N(0, I) seeds after epochs {', '.join(map(str, epochs))}. Iteration: "
            f"tol {fcfg['tol'] or 1e-6}, max_steps {fcfg['max_steps'] or 3000}, cycles up to period "
            f"{fcfg['max_period']}; merge {fcfg['merge']} > {fcfg['merge_threshold']}; solver {fcfg['solver']}.", "",
            "## Memorization coefficient (noise attractors) vs k", "", study.table(), "",
            "## Attractors from data", "", data_table(study), "",
            "## Distinct attractors from noise seeds during training", "", counts_table(study), "",
            "Median latent norm of 256 encoded training images at each counted epoch (the count of noise "
            "attractors then in brackets); N(0, I) seeds have norm about sqrt(k):", "", norms_table(study), ""]
    if matched is not None and matched.is_dir():
        text += ["## Noise seeds at the latents' scale", "",
                 "N(0, I) seeds lie at norm about sqrt(k); where that is far inside the encoded training latents, "
                 "they probe only the neighbourhood of z = 0 (which many of these models decode as a dark image "
                 "or a blob). The same models measured again with `--seed-dist data` (noise "
                 "matched to the mean and per-dimension spread of the encoded training latents; "
                 f"`benchmarks/memorization_500.sh datanoise`, folder `{matched}`):", "",
                 seed_scale_table(study, matched), ""]
    text += [f"![{f}]({stem}_{f})" for f in figures]
    text += ["", "## Decoded noise attractors per k (largest basins first)", ""]
    text += [f"![{f}]({f})" for f in grids]
    path = RESULTS / f"{stem}.md"
    path.write_text("\n".join(text) + "\n")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", type=Path, default=[Path("runs/mem-mnist"), Path("runs/mem-fmnist")])
    ap.add_argument("--prefix", default="memorization", help="results file stem (memorization_<dataset>.md)")
    ap.add_argument("--matched", action="append", default=[], metavar="DATASET=DIR",
                    help="DIR holds kNNN measurements of DATASET's models with --seed-dist data (a table beside "
                         "the N(0, I) one); repeat per dataset")
    ap.add_argument("--command", default="benchmarks/memorization_sweep.sh", help="the command that made the sweep")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[str, list[Path]] = {}
    for folder in args.folders:
        by_dataset.setdefault(MemorizationStudy.load(folder).config["dataset"], []).append(folder)
    matched = dict(item.split("=", 1) for item in args.matched)
    for dataset, group in by_dataset.items():
        print(write(group, args.prefix, args.command, Path(matched[dataset]) if dataset in matched else None))
