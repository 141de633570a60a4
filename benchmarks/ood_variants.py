"""OOD reference-set variants on one model (issue 14 item 2; pre-registered in results/ood_variants.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ood_variants.py runs/ood-mnist-k32/model runs/ood-variants

One attractor search from the training latents (the `probe ood` default: tol 1e-6, <= 3000 steps, merge
cosine > 0.99) gives every Z*_train variant: the merged attractors, the unmerged converged end points, and
the end points re-merged at cosine > 0.999 and > 0.9999. The test trajectories are iterated once and scored
against every variant (probe.probes.ood_scores.trajectory_scores(extra_references=...)), so the variants
differ only in Z*_train. Writes OUT/variants.json and OUT/variants.md. Each variant alone is also
`probe ood MODEL --train mnist --test-in mnist --test-out fashion-mnist,noise:uniform --n-train 1000
--n-test 500 [--reference-points end_points | --merge-threshold 0.999]`.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from probe.data import load_images
from probe.maps.registry import load
from probe.probes.common import encode_images
from probe.probes.metrics import aupr_in, aupr_out, auroc, bootstrap_ci, fpr95, fpr95_openood
from probe.probes.ood import OODConfig, OODDetector, reference_points
from probe.probes.ood_scores import knn_distance, nearest_distance, reconstruction_error, trajectory_scores

NOTEBOOK = {  # the replication notebook of issue 14: (AUROC, FPR95), fractions
    ("trajectory", "fashion-mnist"): (0.828, 0.374), ("knn", "fashion-mnist"): (0.821, 0.528),
    ("trajectory", "noise:uniform"): (0.729, 0.807), ("knn", "noise:uniform"): (0.943, 0.517),
}


def main(model: str, out: str, n_train: int = 1000, n_test: int = 500) -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    m = load(model)
    cfg = OODConfig(n_train=n_train, n_test=n_test)
    train = load_images("mnist", split="train", n=n_train, seed=0, resolution=28, channels=1)
    sets = {"mnist": load_images("mnist", split="test", n=n_test, seed=0, resolution=28, channels=1),
            "fashion-mnist": load_images("fashion-mnist", split="test", n=n_test, seed=0, resolution=28, channels=1),
            "noise:uniform": load_images("noise:uniform", split="test", n=n_test, seed=0, resolution=28, channels=1)}
    det = OODDetector.fit(m, train, cfg, out=out_p / "attractors")
    from probe.field import AttractorSet

    found = AttractorSet.load(out_p / "attractors")
    variants = {"merged 0.99 (default)": reference_points(found, "attractors")[0],
                "unmerged end points": reference_points(found, "end_points")[0],
                "merged 0.999": reference_points(found, "attractors", threshold=0.999)[0],
                "merged 0.9999": reference_points(found, "attractors", threshold=0.9999)[0]}
    scores: dict[str, dict[str, torch.Tensor]] = {}
    conv = {}
    for name, images in sets.items():
        z = encode_images(m, images, cfg.image_batch)
        s = trajectory_scores(m, z, variants["merged 0.99 (default)"], tol=det.tol, max_steps=det.score_steps,
                              extra_references={k: v for k, v in variants.items() if k != "merged 0.99 (default)"})
        conv[name] = float(s["converged"].float().mean())
        per = {"knn": knn_distance(det.train_latents, z, cfg.knn_k, cfg.knn_metric).cpu(),
               "mahalanobis": det.mahalanobis.score(z), "reconstruction": reconstruction_error(m, images, 128),
               "first_residual": s["first_residual"]}
        for v, pts in variants.items():
            per[f"trajectory · {v}"] = s["trajectory"] if v == "merged 0.99 (default)" else s[f"trajectory@{v}"]
            per[f"attractor_z0 · {v}"] = nearest_distance(z, pts).cpu()
        for k, v in per.items():
            scores.setdefault(k, {})[name] = v
    rows = {}
    for method, per in scores.items():
        for o in ("fashion-mnist", "noise:uniform"):
            a, b = per["mnist"], per[o]
            lo, hi = bootstrap_ci(a, b, auroc)
            rows[f"{method}|{o}"] = {"fpr95": fpr95(a, b), "auroc": auroc(a, b), "auroc_lo": lo, "auroc_hi": hi,
                                     "aupr_in": aupr_in(a, b), "aupr_out": aupr_out(a, b),
                                     "fpr95_openood": fpr95_openood(a, b)}
    facts = {"n_reference": {k: len(v) for k, v in variants.items()}, "fraction_converged": conv,
             "train_status": found.status_counts(), "tol": det.tol, "max_steps": det.max_steps,
             "seconds": time.perf_counter() - t0, "model": model, "n_train": n_train, "n_test": n_test}
    (out_p / "variants.json").write_text(json.dumps({"facts": facts, "metrics": rows}, indent=1))
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [f"MNIST in (n={n_test}), model `{model}`, Z*_train from {n_train} MNIST training images "
             f"(tol {det.tol:g}, <= {det.max_steps} steps; training trajectories: {found.status_counts()}); "
             f"reference sizes: " + ", ".join(f"{k} {n}" for k, n in facts["n_reference"].items()), "",
             "| method | reference | OOD set | FPR95 (classic) | AUROC [95% CI] | AUPR-In | AUPR-Out | "
             "FPR95 (OpenOOD) | notebook AUROC / FPR95 |", "|---|---|---|---|---|---|---|---|---|"]
    for key, c in rows.items():
        method, o = key.split("|")
        meth, _, ref = method.partition(" · ")
        nb = NOTEBOOK.get((meth, o))
        nbs = f"{pct(nb[0])} / {pct(nb[1])}" if nb else ""
        lines.append(f"| {meth} | {ref or '-'} | {o} | {pct(c['fpr95'])} | {pct(c['auroc'])} [{pct(c['auroc_lo'])}, "
                     f"{pct(c['auroc_hi'])}] | {pct(c['aupr_in'])} | {pct(c['aupr_out'])} | "
                     f"{pct(c['fpr95_openood'])} | {nbs} |")
    (out_p / "variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{facts['seconds']:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
