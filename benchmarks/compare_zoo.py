"""Does data-free `probe compare` tell models apart? A small zoo of the paper's conv autoencoders (issue 14 item 4).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compare_zoo.py runs/zoo benchmarks/results/compare_zoo.md

Zoo: conv AE width 16, k = 16, training seeds 0, 1, 2 on MNIST and on Fashion-MNIST (4,000 training images,
10 epochs, batch 32, paper optimiser), plus MNIST k = 64 seed 0: 7 models, 21 pairs. Every step runs the CLI
(printed with the results) and is skipped when its output exists. Attractors: `probe run` with 512 N(0, I)
seeds (seed 0), tol 1e-6, <= 3000 steps, merge cosine > 0.99; then `probe compare` without data on each pair.
Data-based reference: linear CKA of the 7 models' encodings of the same 500 held-out images (250 MNIST test
+ 250 Fashion-MNIST test), which works across latent sizes. AUROC = P(a same-data pair is more similar than a
cross-data pair) (ties 1/2), and the same for same-k vs other-k.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

P = ".venv/bin/probe"
ZOO = {f"{d}-k16-s{s}": (d, 16, s) for d in ("mnist", "fmnist") for s in (0, 1, 2)} | {"mnist-k64-s0": ("mnist", 64, 0)}
DATA = {"mnist": "mnist", "fmnist": "fashion-mnist"}
COMMANDS: list[str] = []


def sh(args: list[str], done: bool = False) -> None:
    """Run a CLI step, or only record it when its output already exists (a rerun resumes)."""
    COMMANDS.append(" ".join(args) + ("   # skipped: output exists" if done else ""))
    if not done:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def build(root: Path) -> None:
    for name, (d, k, s) in ZOO.items():
        mdir = root / name
        trained = (mdir / "probe_map.json").is_file() and '"epoch": 10' in (mdir / "train.json").read_text()
        sh([P, "train", "--dataset", DATA[d], "--n-train", "4000", "--n-test", "1000", "--width", "16",
            "--bottleneck", str(k), "--epochs", "10", "--batch-size", "32", "--seed", str(s),
            "--no-keep-checkpoints", "--out", str(mdir), "--quiet"], trained)
        sh([P, "run", str(mdir), "--seeds", "512", "--threads", "1", "--out", str(root / f"run-{name}"), "--quiet"],
           (root / f"run-{name}" / "manifest.json").is_file())
    for a, b in itertools.combinations(ZOO, 2):
        sh([P, "compare", str(root / f"run-{a}"), str(root / f"run-{b}"), "--threads", "1",
            "--out", str(root / f"cmp-{a}--{b}"), "--quiet"], (root / f"cmp-{a}--{b}" / "report" / "meta.json").is_file())


def data_free(root: Path, a: str, b: str) -> dict[str, float]:
    from probe.probes.compare import ComparisonReport

    r = ComparisonReport.load(root / f"cmp-{a}--{b}" / "report")
    st = lambda *k: float(r.stat(k).mean)  # noqa: E731
    return {"pixel correlation (Chamfer)": (st("set", "A->B", "max_cos") + st("set", "B->A", "max_cos")) / 2,
            "-cross-code MSE / orthogonal": -(st("pixel", "A->B", "attractors", "mse") / st("pixel", "A->B", "orthogonal", "mse")
                                              + st("pixel", "B->A", "attractors", "mse") / st("pixel", "B->A", "orthogonal", "mse")) / 2,
            "-nearest-neighbour pixel MSE": -(st("set", "A->B", "nn_mse") + st("set", "B->A", "nn_mse")) / 2,
            "latent Chamfer (same k only)": ((st("latent", "A->B", "max_cos") + st("latent", "B->A", "max_cos")) / 2
                                             if ("latent", "A->B", "max_cos") in r.values else float("nan"))}


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def encodings(root: Path) -> dict[str, np.ndarray]:
    from probe.data import load_images
    from probe.maps.registry import load
    from probe.probes.common import encode_images

    imgs = torch.cat([load_images(s, split="test", n=250, seed=1, resolution=28, channels=1).images
                      for s in ("mnist", "fashion-mnist")])
    return {n: encode_images(load(str(root / n)), imgs, 128).reshape(len(imgs), -1).double().numpy() for n in ZOO}


def auroc(pos: list[float], neg: list[float]) -> float:
    """P(a positive pair scores above a negative one), ties 1/2; pairs without the measure (nan) left out."""
    p, n = np.asarray(pos), np.asarray(neg)
    p, n = p[np.isfinite(p)][:, None], n[np.isfinite(n)][None, :]
    if p.size == 0 or n.size == 0:
        return float("nan")
    return float(((p > n) + 0.5 * (p == n)).mean())


def main(root_s: str, out: str) -> None:
    torch.set_num_threads(1)
    root = Path(root_s)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build(root)
    enc = encodings(root)
    pairs = list(itertools.combinations(ZOO, 2))
    sims = {}
    for a, b in pairs:
        sims[(a, b)] = {**data_free(root, a, b), "linear CKA (data)": linear_cka(enc[a], enc[b])}
    measures = list(next(iter(sims.values())))
    same_data = lambda a, b: ZOO[a][0] == ZOO[b][0]  # noqa: E731
    same_k = lambda a, b: ZOO[a][1] == ZOO[b][1]  # noqa: E731
    tests = {
        "same data > cross data (all 21 pairs: 7 same / 14 cross)": (lambda a, b: same_data(a, b), lambda a, b: True),
        "same data > cross data, k = 16 only (6 / 9)": (lambda a, b: same_data(a, b), lambda a, b: same_k(a, b)),
        "same k > other k, MNIST pairs only (3 / 3)": (lambda a, b: same_k(a, b),
                                                       lambda a, b: ZOO[a][0] == ZOO[b][0] == "mnist"),
        "same k > other k, all pairs (15 / 6)": (lambda a, b: same_k(a, b), lambda a, b: True),
    }
    res = {}
    for t, (is_pos, keep) in tests.items():
        kept = [p for p in pairs if keep(*p)]
        res[t] = {m: auroc([sims[p][m] for p in kept if is_pos(*p)], [sims[p][m] for p in kept if not is_pos(*p)])
                  for m in measures}
    (root / "zoo.json").write_text(json.dumps({"sims": {f"{a}|{b}": v for (a, b), v in sims.items()},
                                               "auroc": res, "commands": COMMANDS}, indent=1))
    from probe.field import AttractorSet

    facts = []
    for n, (d, k, sd) in ZOO.items():
        a = AttractorSet.load(root / f"run-{n}")
        hist = json.loads((root / n / "train.json").read_text())["history"]
        facts.append(f"| {n} | {DATA[d]} | {k} | {sd} | {hist[-1]['test_mse']:.4f} | {int(a.stable.sum())} / {len(a)} | "
                     f"{int(a.converged.sum())}/{len(a.status)} |")
    lines = ["# Data-free model comparison on a small zoo (issue 14, item 4)", "",
             f"Made by `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compare_zoo.py {root_s} {out}` "
             f"({time.perf_counter() - t0:.0f} s this call; CPU, one thread).", "",
             "AUROC with which each similarity ranks the first kind of pair above the second (1 = perfect, "
             "0.5 = chance, < 0.5 = reversed). Data-free measures come from `probe compare` (no images); the "
             "data-based reference is linear CKA of the encodings of 500 held-out images (250 MNIST + 250 "
             "Fashion-MNIST test). Signs: a leading '-' means the error is negated so that higher = more similar.",
             "", "| test | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
    for t, r in res.items():
        lines.append(f"| {t} | " + " | ".join(f"{r[m]:.3f}" for m in measures) + " |")
    lines += ["", "The zoo (attractors: 512 N(0, I) seeds, merge cosine > 0.99):", "",
              "| model | data | k | seed | test MSE | stable / fixed points | converged seeds |", "|---|---|---|---|---|---|---|",
              *facts]
    lines += ["", "Every pair:", "", "| A | B | same data | same k | " + " | ".join(measures) + " |",
              "|---|---|---|---|" + "---|" * len(measures)]
    for (a, b), v in sims.items():
        lines.append(f"| {a} | {b} | {'yes' if same_data(a, b) else 'no'} | {'yes' if same_k(a, b) else 'no'} | "
                     + " | ".join(f"{v[m]:.4g}" for m in measures) + " |")
    lines += ["", "The steps (OMP_NUM_THREADS=1; a step whose output exists is skipped on a rerun and marked so):", "",
              "```"] + COMMANDS + ["```"]
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12 + len(tests)]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
