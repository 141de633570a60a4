"""``probe basins SPEC --images D``: which inputs does each attractor capture?

Every image of ``D`` is encoded and iterated to its attractor; per attractor the output folder
gets a gallery (the decoded attractor, then images of its basin with their classes), and
``basins.md`` lists basin sizes and class mixes.

    probe basins builtin:fmnist-k16 --images fashion-mnist --n-images 2000 --out basins-out
"""
from __future__ import annotations

import argparse

from .train import add_config_flags, config_from_args


def add_parser(subparsers) -> None:
    from ..probes.basins import BasinsConfig

    p = subparsers.add_parser("basins", help="iterate every image to its attractor; galleries of each basin",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="model: builtin:<name>, a local directory, or a Hub id")
    p.add_argument("--images", required=True, help="image set (probe.data spec: fashion-mnist, mnist, cifar10, a folder...)")
    p.add_argument("--resolution", type=int, default=None, help="image size (default: the model's native size, else 256)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--out", default="basins-out", help="output folder")
    p.add_argument("--config", default=None, help="YAML file with BasinsConfig fields (flags override it)")
    add_config_flags(p, BasinsConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import load
    from ..data import load_images
    from ..probes.basins import BasinsConfig, run_basins

    cfg = config_from_args(BasinsConfig, args)
    model = load(args.spec, device=args.device)
    res = args.resolution or model.image_size or model.default_resolution()
    images = load_images(args.images, split=cfg.split, n=cfg.n_images, seed=cfg.seed, resolution=res,
                         channels=model.image_channels)
    result = run_basins(model, images, args.out, cfg, device=args.device)
    print(result.table(top=10))
    print(f"galleries and basins.md in {args.out}")
    return 0
