"""``probe features SPEC --images DIR --feature K``: which inputs does latent feature K capture?

Ranks the images by their activation of K (a latent channel for spatial latents, a coordinate
for vector latents), iterates each to its attractor, and for the basins whose attractor has the
highest K shows the images that flow in, the decoded attractor, and the decoded attractor with K
set to zero and to its largest value. Writes, under ``--out``: ``features.png`` (the labelled
gallery), ``features.csv`` (image -> rank -> activation of K -> attractor -> K at the attractor),
the FeatureReport (``meta.json`` + ``tensors.safetensors``; ``probe.result.load_result(OUT)``) and
``manifest.json``.

    probe features my_models.py:build --images scans/ --feature 7 --image-size 64 --channels 1
"""
from __future__ import annotations

import time
from pathlib import Path

from ..maps.base import LatentMap
from ..probes.common import resolved_config
from ..probes.features import FeatureReport, FeaturesConfig, find_feature_images
from . import flags

__all__ = ["add_parser", "main"]


def add_parser(subparsers) -> None:
    flags.add_image_probe_parser(subparsers, "features", FeaturesConfig, func=main, description=__doc__,
                                 help="which images does latent feature K capture (via their attractors)")


def main(args, cfg: FeaturesConfig, m: LatentMap, out: Path) -> int:
    size = m.image_size or cfg.field.resolution or m.default_resolution()
    images = flags.probe_images(args, cfg, size, m.image_channels if m.image_channels in (1, 3) else None)
    settings = {"command": "features", "spec": args.spec, "images": args.images, "resize": getattr(args, "resize", None),
                "config": resolved_config(cfg, m)}
    with flags.output_folder(args, out, settings) as folder:
        if folder.finished:
            report = FeatureReport.load(out)
            flags.note(args, folder.note)
        else:
            t0 = time.time()
            report = find_feature_images(m, images, cfg, progress=not args.quiet)
            report.save(folder.path)
            report.to_csv(folder.path / "features.csv")
            report.plot(m, folder.path / "features.png")
            flags.record_command(args, folder.path, report.config, spec=args.spec, images=images.describe(),
                                 wall_seconds=time.time() - t0, map=m.describe(),
                                 files={"report": ["meta.json", "tensors.safetensors"], "gallery": "features.png",
                                        "table": "features.csv"})
    flags.emit(args, "\n".join(report.summary()) + f"\nwrote {out}/ (features.png, features.csv, report)",
               {"command": "features", "out": str(out), "spec": args.spec, "feature": report.feature,
                "top": report.top, "attractors": len(report.counts), "images": len(report.activation),
                "config": report.config})
    flags.write_report(args, out)
    return 0
