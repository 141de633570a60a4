"""Which images does latent channel K capture? `probe features` against the seed user's two methods,
on a planted feature with a known answer.

Real CIFAR-10 images (../shared/data/heldout); on a known subset a small patch is planted (an 8x8
solid magenta square near the top-left corner, jittered by up to 2 px; a 5x5 checker was tried
first and no channel carried it: best single-channel AUROC 0.61). A conv autoencoder with a
spatial latent (8 channels x 8 x 8) is trained here on the planted training set (one CPU thread, a
few minutes). As the user did, a random forest classifies the latent feature maps ("planted vs
not", every latent value a feature) and the channel with the most importance is K. Then each method scores the held-out
test images (the same planting, other images), and we report how well each finds the planted ones:

- activation:  rank by the image's own activation of K (``--reduce``: max over positions by default,
  the patch is local; the mean is shown too);
- mute + Spearman (user's method 1): encode each image alone (the others muted), Spearman correlation
  of its K map with the "original top scoring feature map" (the mean K map of the planted training
  images, what the forest learnt from);
- zero others (user's method 2): decode the latent with every channel but K set to 0; the score is
  the correlation of that decoding with the input image (match), or its distance from the decoding
  of the all-zero latent (energy);
- field (probe features): iterate each image to its attractor (FieldConfig from the map's family,
  1e-6 / 3000 steps) and score it by K at its attractor.

Each score is cut two ways: top-n with n = the number planted (R-precision: precision = recall), and
the score's own two-cluster (Otsu) threshold, which needs no labels (precision and recall). AUROC and
average precision need no cut.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/features_planted.py --out benchmarks/results/features_planted
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import probe
from probe.data import load_images
from probe.probes.features import FeaturesConfig, feature_activation, find_feature_images


class SpatialAE(nn.Module):
    """3x32x32 -> 8 x 8 x 8 -> 3x32x32; encode/decode, image_size, image_channels: a user's own model."""

    image_size, image_channels = 32, 3

    def __init__(self, channels: int = 8, width: int = 32):
        super().__init__()
        w = width
        self.enc = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, 2 * w, 3, 2, 1),
                                 nn.LeakyReLU(0.2), nn.Conv2d(2 * w, channels, 3, 1, 1))
        self.dec = nn.Sequential(nn.Conv2d(channels, 2 * w, 3, 1, 1), nn.LeakyReLU(0.2),
                                 nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(0.2),
                                 nn.ConvTranspose2d(w, 3, 4, 2, 1), nn.Sigmoid())

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z)


def plant(images: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 3, 32, 32] -> (copy with the patch on a random ``fraction`` of them, [N] bool planted)."""
    rng = np.random.default_rng(seed)
    n = len(images)
    planted = torch.zeros(n, dtype=torch.bool)
    planted[torch.from_numpy(rng.permutation(n)[: int(round(fraction * n))])] = True
    out = images.clone()
    magenta = torch.tensor([255, 0, 255], dtype=torch.uint8).view(3, 1, 1)
    for i in torch.nonzero(planted).flatten().tolist():
        dy, dx = rng.integers(-2, 3, size=2)
        out[i, :, 4 + dy:12 + dy, 4 + dx:12 + dx] = magenta
    return out, planted


def train(model: SpatialAE, x: torch.Tensor, epochs: int, seed: int, log) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for epoch in range(epochs):
            perm, total = torch.randperm(len(x)), 0.0
            for i in range(0, len(x), 128):
                batch = x[perm[i:i + 128]].float() / 255
                loss = (model.decode(model.encode(batch)) - batch).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(x))
            log(f"epoch {epoch + 1}/{epochs}: train MSE {losses[-1]:.5f}")
    return losses


def pick_channel(z: torch.Tensor, planted: torch.Tensor, seed: int) -> tuple[int, list[float]]:
    """The user's step: a random forest classifies the latent feature maps (every value of every
    channel is a feature); K = the channel whose values hold the most importance."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1, max_features="sqrt")
    rf.fit(z.flatten(1).numpy(), planted.numpy())
    importance = rf.feature_importances_.reshape(z.shape[1], -1).sum(1)
    return int(np.argmax(importance)), [round(float(v), 4) for v in importance]


def write_markdown(path: Path, facts: dict) -> None:
    lines = ["# Which images does latent channel K capture? A planted feature with a known answer", "",
             "Made by `benchmarks/features_planted.py` (its docstring describes every method):", "",
             f"    {facts['command']}", "",
             f"Device: {facts['device']}. CPU seconds: {facts['cpu_seconds_total']} in all, "
             f"{facts['train_cpu_seconds']} training.", "",
             f"Data: CIFAR-10, {facts['train_images']} training and {facts['test_images']} test images; an 8x8 "
             f"magenta square planted on {facts['fraction']:.0%} of each ({facts['planted_test']} test images). "
             f"Model: conv AE 3x32x32 -> 8x8x8 -> 3x32x32, {facts['epochs']} epochs, test MSE {facts['test_mse']}. "
             f"Random forest on the latent feature maps: K = {facts['channel_K']} (importance per channel "
             f"{facts['rf_importance']}); each channel alone, max over positions, separates the planted training "
             f"images with AUROC {facts['channel_auroc_train_max']}.", "",
             f"Field: {facts['attractors']} attractors ({facts['stable']} stable) from the {facts['test_images']} "
             f"test images, {facts['converged']} converged; tol {facts['field']['tol']}, max_steps "
             f"{facts['field']['max_steps']}, merge {facts['field']['merge']} {facts['field']['merge_threshold']}. "
             f"The basin whose attractor has the highest K ({facts['top_basin']['K_at_attractor']:.3g}) holds "
             f"{facts['top_basin']['images']} images, {facts['top_basin']['planted']} of them planted.", "",
             "| method | AUROC | average precision | R-precision (top n = planted) | Otsu precision | Otsu recall "
             "| flagged | CPU s |", "|---|---|---|---|---|---|---|---|"]
    for name, r in facts["methods"].items():
        lines.append(f"| {name} | {r['auroc']:.3f} | {r['ap']:.3f} | {r['r_precision']:.3f} | "
                     f"{r['otsu_precision']:.3f} | {r['otsu_recall']:.3f} | {r['otsu_flagged']} | {r['cpu_seconds']} |")
    best = max(facts["methods"], key=lambda n: facts["methods"][n]["auroc"])
    field = facts["methods"]["field: K at the attractor (probe features)"]
    shown = facts["top_basins"]
    lines += ["", f"Chance: AUROC 0.5, precision {facts['fraction']:.2f}. Gallery of the top basins: "
              f"`{path.with_suffix('.png').name}`.", "",
              "## Reading", "",
              f"- Best here by AUROC: {best} ({facts['methods'][best]['auroc']:.3f}). The field score reaches "
              f"{field['auroc']:.3f}: on this model it does not find the planted images better than the user's methods.",
              f"- Why: the map hardly merges images ({facts['attractors']} attractors for {facts['converged']} "
              f"converged images; basins of {facts['test_images'] / max(1, facts['attractors']):.2f} images on "
              f"average). A conv AE that reconstructs CIFAR-10 well is close to the identity, each image drifts to "
              f"its own fixed point, and the decoded attractors are the map's artefacts (dots and stripes in the "
              f"gallery), so K at the attractor reflects the artefact, not the input. `probe features` now says so "
              f"in its summary when attractors outnumber half the converged images.",
              f"- The {len(shown)} basins shown (highest K at the attractor) hold {sum(b['images'] for b in shown)} "
              f"images, {sum(b['planted'] for b in shown)} of them planted.",
              "- The user's methods do better than their false positives suggested: both use what the model does at "
              "the patch's positions (Spearman against the planted images' mean K map; the decoder's response to K "
              "alone), while K pooled over all positions (the activation rows) is at chance, or below it for the "
              "mean: the channel carries the patch only where it is, and natural image content elsewhere dominates "
              "the pooled value.", ""]
    path.write_text("\n".join(lines) + "\n")


def spearman_rows(a: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of each row of ``a`` [N, P] with ``ref`` [P] (average ranks for ties)."""
    from scipy.stats import rankdata

    ra = torch.from_numpy(rankdata(a.numpy(), axis=1)).float()
    rr = torch.from_numpy(rankdata(ref.numpy())).float()
    ra, rr = ra - ra.mean(1, keepdim=True), rr - rr.mean()
    return (ra @ rr) / (ra.norm(dim=1) * rr.norm()).clamp_min(1e-12)


def zero_others(m, z: torch.Tensor, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    only = torch.zeros_like(z)
    only[:, k] = z[:, k]
    y = m.decode_batched(only).float()
    base = m.decode_batched(torch.zeros_like(z[:1])).float()
    yc, xc = (y - y.mean((1, 2, 3), keepdim=True)).flatten(1), (x - x.mean((1, 2, 3), keepdim=True)).flatten(1)
    match = (yc * xc).sum(1) / (yc.norm(dim=1) * xc.norm(dim=1)).clamp_min(1e-12)
    return match, (y - base).pow(2).flatten(1).mean(1)


def otsu(scores: np.ndarray) -> float:
    """The cut between two clusters of 1-D scores (maximal between-class variance)."""
    s = np.sort(scores)
    best, cut = -1.0, s[0]
    for i in range(1, len(s)):
        w0, w1 = i / len(s), 1 - i / len(s)
        v = w0 * w1 * (s[:i].mean() - s[i:].mean()) ** 2
        if v > best and s[i] > s[i - 1]:
            best, cut = v, (s[i - 1] + s[i]) / 2
    return float(cut)


def metrics(scores: torch.Tensor, truth: torch.Tensor) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    s, y = scores.double().numpy(), truth.numpy().astype(bool)
    n = int(y.sum())
    top = np.argsort(-s, kind="stable")[:n]
    cut = otsu(s)
    pred = s > cut
    tp = int((pred & y).sum())
    return {"auroc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s)),
            "r_precision": float(y[top].mean()), "otsu_precision": tp / max(1, int(pred.sum())),
            "otsu_recall": tp / n, "otsu_flagged": int(pred.sum())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--fraction", type=float, default=0.2, help="share of images with the planted patch")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None, help="cap the field's steps (default: the family's)")
    ap.add_argument("--reduce", default="max", choices=["max", "mean"], help="activation of a channel over positions")
    ap.add_argument("--out", default="benchmarks/results/features_planted")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    t_all = time.process_time()
    train_set = load_images("cifar10", split="train")
    test_set = load_images("cifar10", split="test", n=args.n_test, seed=args.seed + 1)
    x_train, p_train = plant(train_set.images, args.fraction, args.seed)
    x_test, p_test = plant(test_set.images, args.fraction, args.seed + 1)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        model = SpatialAE()
    t0 = time.process_time()
    losses = train(model, x_train, args.epochs, args.seed, log)
    train_s = time.process_time() - t0
    m = probe.load(model)  # a bare nn.Module with encode / decode, as a user has it
    xt = x_test.float() / 255
    z_train, z_test = m.encode_batched(x_train.float() / 255), m.encode_batched(xt)
    test_mse = float((m.decode_batched(z_test) - xt).pow(2).mean())
    k, importance = pick_channel(z_train, p_train, args.seed)
    from sklearn.metrics import roc_auc_score

    channel_auroc = [round(float(roc_auc_score(p_train.numpy(), z_train[:, c].amax((1, 2)).numpy())), 3)
                     for c in range(z_train.shape[1])]  # how well each channel alone separates, max over positions
    log(f"random forest: top channel K = {k} (importances {importance}; per-channel AUROC {channel_auroc})")
    rows, seconds = {}, {}
    t0 = time.process_time()
    rows[f"activation (own K, {args.reduce})"] = metrics(feature_activation(z_test, k, args.reduce), p_test)
    seconds[f"activation (own K, {args.reduce})"] = time.process_time() - t0
    other = "mean" if args.reduce == "max" else "max"
    rows[f"activation (own K, {other})"] = metrics(feature_activation(z_test, k, other), p_test)
    seconds[f"activation (own K, {other})"] = 0.0
    t0 = time.process_time()
    ref = z_train[p_train, k].mean(0).flatten()
    muted = torch.cat([m.encode_batched(xt[i:i + 1]) for i in range(len(xt))])  # one image at a time
    rows["mute + Spearman (user 1)"] = metrics(spearman_rows(muted[:, k].flatten(1), ref), p_test)
    seconds["mute + Spearman (user 1)"] = time.process_time() - t0
    t0 = time.process_time()
    match, energy = zero_others(m, z_test, xt, k)
    rows["zero others, match to input (user 2)"] = metrics(match, p_test)
    rows["zero others, energy (user 2)"] = metrics(energy, p_test)
    seconds["zero others, match to input (user 2)"] = seconds["zero others, energy (user 2)"] = time.process_time() - t0
    t0 = time.process_time()
    cfg = FeaturesConfig(feature=k, reduce=args.reduce, top_basins=4, gallery=8)
    if args.max_steps:
        cfg = FeaturesConfig(feature=k, reduce=args.reduce, top_basins=4, gallery=8,
                             field=cfg.field.replace(max_steps=args.max_steps))
    report = find_feature_images(m, xt, cfg, progress=False)
    rows["field: K at the attractor (probe features)"] = metrics(report.scores(), p_test)
    seconds["field: K at the attractor (probe features)"] = time.process_time() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report.plot(m, out.with_suffix(".png"))
    top = report.top[0] if report.top else -1
    in_top = report.assignment == top
    facts = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/features_planted.py " + " ".join(argv or sys.argv[1:]),
        "device": f"CPU, 1 thread ({platform.processor() or platform.machine()}), torch {torch.__version__}",
        "cpu_seconds_total": round(time.process_time() - t_all, 1), "train_cpu_seconds": round(train_s, 1),
        "epochs": args.epochs, "train_mse": [round(v, 5) for v in losses], "test_mse": round(test_mse, 5),
        "train_images": len(x_train), "test_images": len(x_test), "planted_test": int(p_test.sum()),
        "fraction": args.fraction, "reduce": args.reduce, "channel_K": k, "rf_importance": importance,
        "channel_auroc_train_max": channel_auroc,
        "field": report.config["field"], "attractors": len(report.counts),
        "converged": int((report.assignment >= 0).sum()), "stable": int(report.stable.sum()),
        "top_basin": {"attractor": top, "images": int(in_top.sum()), "planted": int((in_top & p_test).sum()),
                      "K_at_attractor": float(report.attractor_activation[top]) if top >= 0 else None},
        "top_basins": [{"attractor": a, "images": int((report.assignment == a).sum()),
                        "planted": int(((report.assignment == a) & p_test).sum()),
                        "K_at_attractor": round(float(report.attractor_activation[a]), 4)} for a in report.top],
        "methods": {name: {**{k2: round(v, 4) for k2, v in r.items()}, "cpu_seconds": round(seconds[name], 1)}
                    for name, r in rows.items()},
    }
    out.with_suffix(".json").write_text(json.dumps(facts, indent=2))
    write_markdown(out.with_suffix(".md"), facts)
    print(json.dumps(facts["methods"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
