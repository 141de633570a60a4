"""``probe basins SPEC --images D``: which inputs does each attractor capture?

Every image of ``D`` is encoded and iterated to its attractor (checkpointed into OUT/attractors);
per attractor the output folder gets a gallery (the decoded attractor, then images of its basin
with their classes), and ``basins.md`` lists basin sizes and class mixes.

    probe basins builtin:fmnist-k16 --images fashion-mnist --n-images 2000
"""
from __future__ import annotations

from pathlib import Path

from ..maps.base import LatentMap
from ..probes.basins import Basins, BasinsConfig, run_basins
from ..probes.common import model_of, resolution_of, resolved_config
from . import flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    flags.add_image_probe_parser(subparsers, "basins", BasinsConfig, func=run, description=__doc__,
                                 help="iterate every image to its attractor; galleries of each basin")


def run(args, cfg: BasinsConfig, model: LatentMap, out: Path) -> int:
    res = resolution_of(model, cfg.field.resolution)
    settings = {"command": "basins", "model": model_of(model), "images": args.images, "resize": args.resize,
                "config": resolved_config(cfg, model)}
    with flags.output_folder(args, out, settings) as folder:
        result = flags.reuse(args, folder, lambda: Basins.load(out))
        if result is None:
            images = flags.probe_images(args, cfg, res, model.image_channels)
            result = run_basins(model, images, folder.path, cfg, progress=not args.quiet, overwrite=args.overwrite)
            flags.record_command(args, folder.path, cfg, spec=args.spec)
    flags.emit(args, result.table(top=10) + f"\ngalleries and basins.md in {out}",
               {"command": "basins", "out": str(out), "spec": args.spec, "attractors": len(result.points),
                "images": len(result.assignment), "purity": result.purity(), "basins": result.rows()})
    flags.write_report(args, out)
    return 0
