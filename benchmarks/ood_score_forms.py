"""Exploratory (NOT pre-registered): forms of the trajectory score on the ood_variants.md setting.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ood_score_forms.py runs/ood-mnist-k32/model runs/ood-variants

Reuses the training attractors of benchmarks/ood_variants.py (OUT/attractors) and iterates the same test
images once, then scores each trajectory in several ways that a re-implementation could have chosen:
L2 mean over z_0..z_T (ours, METHOD.md), cosine distance (1 - cos) mean, the mean over a fixed budget T (100 or
max_steps) with converged trajectories held at their end point, the end point's distance alone, the mean over the first 10 states only, and the sum
(not mean) over z_0..z_T. Prints AUROC / FPR95 (classic) x100 for Fashion-MNIST and uniform noise out.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from probe.data import load_images
from probe.field import AttractorSet, iterate
from probe.maps.registry import load
from probe.probes.common import encode_images
from probe.probes.metrics import auroc, fpr95


def forms(m, z, pts, tol, max_steps):
    traj = iterate(m, z, tol=tol, max_steps=max_steps, record=True)
    assert traj.path is not None and traj.path_len is not None
    path = traj.path.reshape(len(z), traj.path.shape[1], -1).double()
    n, t = path.shape[:2]
    p = pts.reshape(len(pts), -1).double()
    l2 = torch.cdist(path.reshape(n * t, -1), p).min(1).values.reshape(n, t)
    pn = torch.nn.functional.normalize(p, dim=1)
    cos = (1 - torch.nn.functional.normalize(path.reshape(n * t, -1), dim=1) @ pn.T).min(1).values.reshape(n, t)
    live = torch.arange(t)[None, :] < traj.path_len.reshape(-1, 1)
    mean = lambda d, mask: (d * mask).sum(1) / mask.sum(1)  # noqa: E731
    first10 = live & (torch.arange(t)[None, :] < 10)
    n_live = live.sum(1)
    d_end = l2.gather(1, (n_live - 1).clamp_min(0).reshape(-1, 1)).squeeze(1)

    def padded(budget: int):  # mean over z_0..z_budget, a trajectory that stopped early held at its end point
        keep = live & (torch.arange(t)[None, :] <= budget)
        k = keep.sum(1)
        return ((l2 * keep).sum(1) + (budget + 1 - k).clamp_min(0) * d_end) / (budget + 1)

    return {"L2 mean z_0..z_T (ours)": mean(l2, live), "cosine mean z_0..z_T": mean(cos, live),
            "L2 mean over a fixed T = 100, padded with the end point": padded(100),
            f"L2 mean over a fixed T = {max_steps}, padded with the end point": padded(max_steps),
            "L2 distance of the end point z_T alone": d_end, "L2 mean z_0..z_9": mean(l2, first10),
            "L2 sum z_0..z_T": (l2 * live).sum(1)}


def main(model: str, out: str) -> None:
    torch.set_num_threads(1)
    m = load(model)
    found = AttractorSet.load(Path(out) / "attractors")
    tol, steps = float(found.config["tol"]), int(found.config["max_steps"])
    sets = {s: load_images(s, split="test", n=500, seed=0, resolution=28, channels=1)
            for s in ("mnist", "fashion-mnist", "noise:uniform")}
    sc = {}
    for s, x in sets.items():
        z = encode_images(m, x, 128)
        parts = [forms(m, z[i:i + 100], found.points, tol, steps) for i in range(0, len(z), 100)]
        sc[s] = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    print("| score form | Fashion-MNIST out AUROC / FPR95 | uniform out AUROC / FPR95 |\n|---|---|---|")
    for f in sc["mnist"]:
        cells = [f"{100 * auroc(sc['mnist'][f], sc[o][f]):.1f} / {100 * fpr95(sc['mnist'][f], sc[o][f]):.1f}"
                 for o in ("fashion-mnist", "noise:uniform")]
        print(f"| {f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
