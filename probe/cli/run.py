"""``probe run SPEC``: iterate seeds to attractors, check their stability, diagnose the dynamics.

Writes, under ``--out``: the AttractorSet (``tensors.safetensors`` + ``meta.json``, load it
with ``probe.AttractorSet.load(OUT)``), ``manifest.json`` (the command, versions, timings,
files) and ``attractors.png`` (decoded attractors with basin sizes; the end points of some
seeds when nothing converged). Prints the count, the stable fraction, steps median / p95,
throughput and the dynamics verdict. Checkpoints every ``--checkpoint-every`` steps into
OUT/checkpoint: run the same command again after a kill and it continues. Works under
``accelerate launch``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from ..config import asdict, field
from ..field.config import FieldConfig
from . import flags

__all__ = ["RunConfig", "add_parser", "main"]


@dataclass(frozen=True)
class RunConfig:
    """``probe run``: where the seeds come from, and the attractor search (section ``run`` in YAML)."""

    section = "run"

    data: str | None = field(None, "image set for --seed-dist data or --from-data (a built-in name, folder, .npz ...)")
    data_n: int = field(1000, "images taken from --data")
    from_data: bool = field(False, "the seeds are the encoded --data images themselves (attractors from data)")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(), "the attractor search")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="iterate seeds to attractors and diagnose the latent dynamics",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_model_flags(p)
    flags.add_config_flags(p, RunConfig)
    flags.add_field_flags(p, RunConfig().field)
    flags.add_data_flags(p)
    flags.add_output_flags(p, "run-out/<model>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (kept for old scripts: --quiet)")
    p.set_defaults(func=main)


def _data_latents(m, cfg: RunConfig, args):
    from ..data import load_images
    from ..errors import ConfigError
    from ..probes.common import encode_images

    if not cfg.data:
        raise ConfigError("--seed-dist data and --from-data need --data (images to encode)")
    size = m.image_size or cfg.field.resolution or m.default_resolution()
    images = load_images(cfg.data, n=cfg.data_n, resolution=size, channels=m.image_channels,
                         **flags.image_options(args))
    return encode_images(m, images)


def main(args) -> int:
    from ..field import AttractorSet, distributed, find_attractors
    from ..probes.common import model_of, resolution_of

    cfg = flags.config_from_args(RunConfig, args)
    rank, size = distributed.world()
    device = cfg.field.device or distributed.process_device()
    fcfg = cfg.field.replace(device=str(device) if device is not None else None)
    m = flags.load_model(args, args.spec, fcfg)
    resolution_of(m, fcfg.resolution)  # a fixed-size model refuses another --resolution in one line
    out = flags.resolve_out(args, "run", args.spec)
    resolved = fcfg.resolve(m)
    settings = {"command": "run", "model": model_of(m), "resize": args.resize,
                "config": {**asdict(cfg), "field": asdict(resolved)}}
    quiet = args.quiet or args.no_progress
    with flags.output_folder(args, out, settings) as folder:
        result = flags.reuse(args, folder, lambda: AttractorSet.load(out))
        if result is None:
            seeds = data = None
            if cfg.from_data or fcfg.seed_dist == "data":
                data = _data_latents(m, cfg, args)
                if cfg.from_data:
                    seeds = data[: fcfg.n_seeds] if flags.given(args, "field", "n_seeds") else data
            t0 = time.time()
            result = find_attractors(m, fcfg, seeds=seeds, data_latents=data, out=folder.path, progress=not quiet)
            if rank != 0:
                return 0
            result.plot(m, folder.path / "attractors.png")
            flags.record_command(args, folder.path, {**asdict(cfg), "field": result.config}, spec=args.spec,
                                 wall_seconds=time.time() - t0, device=str(m.device), processes=size,
                                 map=m.describe(), verdict=result.verdict, n_fixed_points=len(result),
                                 n_stable=int(result.stable.sum()), status_counts=result.status_counts(),
                                 timing=result.timing,
                                 files={"attractor_set": ["tensors.safetensors", "meta.json"], "grid": "attractors.png"})
    flags.emit(args, "\n".join(result.summary()) + f"\nwrote {out}/ (attractor set, manifest.json, attractors.png)",
               {"command": "run", "out": str(out), "spec": args.spec, "fixed_points": len(result),
                "stable": int(result.stable.sum()), "verdict": result.verdict, "status": result.status_counts(),
                "merge": result.merge, "config": result.config, "timing": result.timing})
    flags.write_report(args, out)
    return 0
