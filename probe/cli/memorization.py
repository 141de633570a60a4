"""``probe memorization``: memorization vs generalization across bottlenecks (paper section 3).

Trains one conv autoencoder per bottleneck k (resumable model by model), then measures each:
memorization coefficient of attractors from noise, training and test images next to the null
level, generalization rank, train / test MSE, attractors per epoch, Chamfer similarity.

    probe memorization --dataset fashion-mnist --bottlenecks 2,4,8,16,32,64,128 --epochs 20 --out mem-fmnist

With ``--model SPEC`` it measures one trained model instead (no training).
"""
from __future__ import annotations

import argparse

from .train import add_config_flags, config_from_args


def add_parser(subparsers) -> None:
    from ..probes.memorization_study import MemorizationConfig

    p = subparsers.add_parser("memorization", help="memorization coefficient vs bottleneck (trains a sweep, resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="memorization-out", help="study folder (an interrupted sweep resumes from it)")
    p.add_argument("--model", default=None, help="measure this one trained model instead of training a sweep")
    p.add_argument("--config", default=None, help="YAML file with MemorizationConfig fields (flags override it)")
    add_config_flags(p, MemorizationConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..probes.memorization_study import MemorizationConfig, run_study

    cfg = config_from_args(MemorizationConfig, args)
    if args.model:
        return _one(args, cfg)
    study = run_study(cfg, args.out)
    print(study.table())
    print(f"table, plots and models in {args.out}")
    return 0


def _one(args, cfg) -> int:
    from pathlib import Path

    from .. import load
    from ..data import load_images
    from ..io import save_json
    from ..probes.memorization import measure

    model = load(args.model, device=cfg.device)
    kw = dict(resolution=model.image_size, channels=model.image_channels)
    train = load_images(cfg.dataset, split="train", n=cfg.n_train or None, seed=cfg.seed, **kw)
    test = load_images(cfg.dataset, split="test", n=cfg.n_test, seed=cfg.seed, **kw)
    keep: dict = {}
    out = measure(model, train, test, cfg.measure_config(), device=cfg.device, keep=keep)
    folder = Path(args.out)
    for source, aset in keep.items():
        aset.save(folder / f"attractors_{source}")
        aset.plot(model, folder / f"attractors_{source}.png", max_points=32)
    save_json(folder / "memorization.json", {**out, "model": args.model, "dataset": cfg.dataset})
    print(f"null level (test images): {out['null']['mean']:.3f} ± {out['null']['std']:.3f}")
    for source in ("noise", "train", "test"):
        r = out[source]
        c = r["coefficient"]
        print(f"attractors from {source}: {r['attractors']} ({r['converged']}/{r['seeds']} seeds converged), "
              f"coefficient {c['mean']:.3f} ± {c['std']:.3f}, generalization rank {r['generalization_rank']}")
    print(f"Chamfer similarity train-noise {out['chamfer']['train_noise']:.3f}, test-noise {out['chamfer']['test_noise']:.3f}")
    print(f"results in {folder}")
    return 0
