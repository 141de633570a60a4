"""Which images does latent channel K capture? `probe features` against the seed user's two methods,
on a planted feature with a known answer.

Real CIFAR-10 images (../shared/data/heldout); on a known subset a small patch is planted (an 8x8
solid magenta square near the top-left corner, jittered by up to 2 px; a 5x5 checker was tried
first and no channel carried it: best single-channel AUROC 0.61). Conv autoencoders with a spatial
latent (8 x 8 x 8, and a narrower 4 x 4 x 4) are trained here on the planted training set (one CPU
thread, about a minute each). As the user did, a random forest classifies the latent feature maps
("planted vs not", every latent value a feature) and the channel with the most importance is K.
Then each method scores the held-out
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
    """3x32x32 -> C x (32 / 2^levels)^2 -> 3x32x32; encode/decode, image_size, image_channels: a user's own model."""

    image_size, image_channels = 32, 3

    def __init__(self, channels: int = 8, width: int = 32, levels: int = 2):
        super().__init__()
        w = width
        deeper = [m for _ in range(levels - 2) for m in (nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.LeakyReLU(0.2))]
        self.enc = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, 2 * w, 3, 2, 1),
                                 nn.LeakyReLU(0.2), *deeper, nn.Conv2d(2 * w, channels, 3, 1, 1))
        up = [m for _ in range(levels - 2) for m in (nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2))]
        self.dec = nn.Sequential(nn.Conv2d(channels, 2 * w, 3, 1, 1), nn.LeakyReLU(0.2), *up,
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


def write_markdown(path: Path, summary: dict) -> None:
    first = summary["runs"][0]
    lines = ["# Which images does latent channel K capture? A planted feature with a known answer", "",
             "Made by `benchmarks/features_planted.py` (its docstring describes every method):", "",
             f"    {summary['command']}", "", f"Device: {summary['device']}.", "",
             f"Data: CIFAR-10, {first['train_images']} training and {first['test_images']} test images; an 8x8 "
             f"magenta square planted on {first['fraction']:.0%} of each ({first['planted_test']} test images). "
             f"Each model is trained for {first['epochs']} epochs on the planted training set; a random forest on its "
             f"latent feature maps picks K. Chance: AUROC 0.5, precision {first['fraction']:.2f}.", ""]
    for r in summary["runs"]:
        field = r["methods"]["field: K at the attractor (probe features)"]
        best = max(r["methods"], key=lambda n: r["methods"][n]["auroc"])
        shown = r["top_basins"]
        lines += [f"## {r['model']}", "",
                  f"Test MSE {r['test_mse']}; CPU seconds {r['cpu_seconds_total']} ({r['train_cpu_seconds']} training). "
                  f"K = {r['channel_K']} (forest importance per channel {r['rf_importance']}; each channel alone, max "
                  f"over positions, AUROC {r['channel_auroc_train_max']} on the training set). Field: "
                  f"{r['attractors']} attractors ({r['stable']} stable), {r['converged']} of {r['test_images']} test "
                  f"images converged (tol {r['field']['tol']}, max_steps {r['field']['max_steps']}, merge "
                  f"{r['field']['merge']} {r['field']['merge_threshold']}). Gallery: `{r['gallery']}`.", "",
                  "| method | AUROC | average precision | R-precision (top n = planted) | Otsu precision | Otsu recall "
                  "| flagged | CPU s |", "|---|---|---|---|---|---|---|---|"]
        for name, m in r["methods"].items():
            lines.append(f"| {name} | {m['auroc']:.3f} | {m['ap']:.3f} | {m['r_precision']:.3f} | "
                         f"{m['otsu_precision']:.3f} | {m['otsu_recall']:.3f} | {m['otsu_flagged']} | {m['cpu_seconds']} |")
        lines += ["", f"- Best by AUROC: {best} ({r['methods'][best]['auroc']:.3f}); the field score: {field['auroc']:.3f}.",
                  f"- The {len(shown)} basins shown (highest K at the attractor) hold "
                  f"{sum(b['images'] for b in shown)} images, {sum(b['planted'] for b in shown)} of them planted "
                  f"({', '.join(str(b['planted']) + '/' + str(b['images']) for b in shown)})."]
        pooled = r["methods"][f"activation (own K, {r['reduce']})"]["auroc"]
        if pooled < 0.6:
            lines.append(f"- K pooled over all positions is near chance (AUROC {pooled:.3f}): the channel carries the "
                         f"patch only where it is, and image content elsewhere dominates the pooled value; the "
                         f"user's methods use the patch's positions (Spearman against the planted images' mean K "
                         f"map; the decoder's response to K alone) and do better.")
        else:
            lines.append(f"- One channel carries the patch: the image's own K, pooled, finds the planted images "
                         f"(AUROC {pooled:.3f}).")
        if r["attractors"] > r["converged"] / 2:
            lines.append(f"- The map hardly merges images ({r['attractors']} attractors for {r['converged']} converged "
                         f"images): it is close to the identity, each image drifts to its own fixed point, and the "
                         f"decoded attractors are the map's artefacts, so K at the attractor says little about the "
                         f"input. `probe features` says so in its summary in this case.")
        else:
            lines.append(f"- Images do merge ({r['attractors']} attractors for {r['converged']} converged images), "
                         f"but the basins of the high-K attractors mix planted and other images, so the basin's K "
                         f"misjudges its members; the decoded attractors at K = 0 and K = max still show what K adds.")
        lines.append("")
    worse = all(r["methods"]["field: K at the attractor (probe features)"]["auroc"]
                < max(m["auroc"] for m in r["methods"].values()) for r in summary["runs"])
    lines += ["## Reading", "",
              "- " + ("In every model here, K at the attractor finds the planted images worse than the best other "
                      "method: as a detector of which inputs carry K, the field does not beat the user's methods or "
                      "the plain ranking by K. What it adds is the picture of what K does where the model settles "
                      "(the decoded attractor at K = 0 and at its maximum), not a better list of images."
                      if worse else "K at the attractor is the best detector in at least one model here."), ""]
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


def run_one(args, channels: int, levels: int, data, log) -> tuple[dict, object, object]:
    """Train one model, pick K, score the test images with every method; (facts, report, map)."""
    x_train, p_train, x_test, p_test = data
    t_all = time.process_time()
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        model = SpatialAE(channels, levels=levels)
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
    top = report.top[0] if report.top else -1
    in_top = report.assignment == top
    facts = {
        "model": f"conv AE 3x32x32 -> {channels}x{32 >> levels}x{32 >> levels} -> 3x32x32",
        "latent": f"{channels}x{levels}", "cpu_seconds_total": round(time.process_time() - t_all, 1),
        "train_cpu_seconds": round(train_s, 1),
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
    return facts, report, m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--fraction", type=float, default=0.2, help="share of images with the planted patch")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="8x2,4x3", help="latent channels x stride-2 levels of each model "
                    "(8x2: 8 x 8 x 8, 4x3: 4 x 4 x 4)")
    ap.add_argument("--max-steps", type=int, default=None, help="cap the field's steps (default: the family's)")
    ap.add_argument("--reduce", default="max", choices=["max", "mean"], help="activation of a channel over positions")
    ap.add_argument("--out", default="benchmarks/results/features_planted")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    train_set = load_images("cifar10", split="train")
    test_set = load_images("cifar10", split="test", n=args.n_test, seed=args.seed + 1)
    data = (*plant(train_set.images, args.fraction, args.seed), *plant(test_set.images, args.fraction, args.seed + 1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for spec in args.models.split(","):
        channels, levels = (int(v) for v in spec.split("x"))
        log(f"model {spec}")
        facts, report, m = run_one(args, channels, levels, data, log)
        facts["gallery"] = out.with_suffix(f".{spec}.png").name
        report.plot(m, out.with_suffix(f".{spec}.png"))
        runs.append(facts)
    summary = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/features_planted.py " + " ".join(argv or sys.argv[1:]),
               "device": f"CPU, 1 thread ({platform.processor() or platform.machine()}), torch {torch.__version__}",
               "runs": runs}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    write_markdown(out.with_suffix(".md"), summary)
    print(json.dumps([r["methods"] for r in runs], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
