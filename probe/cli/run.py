"""``probe run SPEC``: iterate seeds to attractors, check their stability, diagnose the dynamics.

Writes, under ``--out``: the AttractorSet (``tensors.safetensors`` + ``meta.json``, load it
with ``probe.AttractorSet.load(OUT)``), ``manifest.json`` (the command, versions, timings,
files) and ``attractors.png`` (decoded attractors with basin sizes; the end points of some
seeds when nothing converged). Prints the count, the stable fraction, steps median / p95,
throughput and the dynamics verdict. Checkpoints every ``--checkpoint-every`` steps: run
the same command again after a kill and it continues. Works under ``accelerate launch``.
"""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from ..config import help_of

DEFAULT_CHECKPOINT_EVERY = 100


def _h(name: str, extra: str = "") -> str:
    from ..field.config import FieldConfig

    return (help_of(FieldConfig, name) + extra).replace("%", "%%")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="iterate seeds to attractors and diagnose the latent dynamics",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="model: a local folder, builtin:<name>, a Hub id, ...")
    p.add_argument("--seeds", metavar="N", dest="n_seeds", type=int, help=_h("n_seeds", " (default 4096)"))
    p.add_argument("--seed", metavar="S", type=int, help=_h("seed", " (default 0)"))
    p.add_argument("--resolution", metavar="PX", type=int, help=_h("resolution"))
    p.add_argument("--tol", metavar="TOL", type=float, help=_h("tol"))
    p.add_argument("--rtol", metavar="RTOL", type=float, help=_h("rtol"))
    p.add_argument("--max-steps", metavar="N", type=int, help=_h("max_steps"))
    p.add_argument("--max-period", metavar="P", type=int, help=_h("max_period", " (default 8)"))
    p.add_argument("--merge", choices=["cosine", "euclidean"], help=_h("merge"))
    p.add_argument("--merge-threshold", metavar="X", type=float, help=_h("merge_threshold", " (default 0.99)"))
    p.add_argument("--seed-dist", choices=["normal", "data"], help=_h("seed_dist"))
    p.add_argument("--data", metavar="SET", help="image set for --seed-dist data or --from-data (a built-in name, folder, .npz ...)")
    p.add_argument("--data-n", metavar="N", type=int, default=1000, help="images taken from --data (default 1000)")
    p.add_argument("--from-data", action="store_true", help="seeds are the encoded --data images themselves "
                                                            "(attractors from data)")
    p.add_argument("--power-iters", metavar="N", type=int, help=_h("power_iters", " (default 30)"))
    p.add_argument("--probe-points", metavar="N", type=int, help=_h("probe_points", " (default 8)"))
    p.add_argument("--batch-size", metavar="N", type=int, help=_h("batch_size"))
    p.add_argument("--checkpoint-every", metavar="N", type=int, help=_h("checkpoint_every", f" (default {DEFAULT_CHECKPOINT_EVERY})"))
    p.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:1 ... (default cpu; under accelerate: each process's own)")
    p.add_argument("--dtype", metavar="DTYPE", help="model dtype: fp32, fp16, bf16 (default: as loaded)")
    p.add_argument("--out", metavar="DIR", default="probe-run", help="output folder (default probe-run)")
    p.add_argument("--config", metavar="YAML", help="YAML with FieldConfig fields (a 'run:' section or top level); flags override")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def _data_latents(m, args, resolution):
    import torch

    from ..data import load_images
    from ..errors import ProbeError

    if not args.data:
        raise ProbeError("--seed-dist data and --from-data need --data (images to encode)")
    size = m.image_size or resolution or m.default_resolution()
    images = load_images(args.data, n=args.data_n, resolution=size, channels=m.image_channels)
    with torch.no_grad():
        return torch.cat([m.encode(x).float().cpu() for x in images.batches(64, device=m.device, dtype=m.dtype)])


def main(args) -> int:
    import probe

    from ..config import asdict, build
    from ..field import distributed
    from ..field.attractors import search
    from ..field.config import FieldConfig
    from ..io import save_json

    cfg = build(FieldConfig, args.config, n_seeds=args.n_seeds, seed=args.seed, resolution=args.resolution,
                tol=args.tol, rtol=args.rtol, max_steps=args.max_steps, max_period=args.max_period, merge=args.merge,
                merge_threshold=args.merge_threshold, seed_dist=args.seed_dist, power_iters=args.power_iters,
                probe_points=args.probe_points, batch_size=args.batch_size,
                checkpoint_every=args.checkpoint_every or DEFAULT_CHECKPOINT_EVERY)
    rank, size = distributed.world()
    device = args.device or distributed.process_device()
    m = probe.load(args.spec, device=str(device) if device is not None else None, dtype=args.dtype)
    seeds = data = None
    if args.from_data or cfg.seed_dist == "data":
        data = _data_latents(m, args, cfg.resolution)
        if args.from_data:
            seeds = data[: cfg.n_seeds] if args.n_seeds else data
    out = Path(args.out)
    t0 = time.time()
    result = search(m, cfg, seeds=seeds, data_latents=data, out=out, progress=not args.no_progress)
    if rank != 0:
        return 0
    png = result.plot(m, out / "attractors.png")
    manifest = {"command": _command(args),
                "spec": args.spec, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": time.time() - t0,
                "versions": _versions(), "device": str(m.device), "processes": size, "config": asdict(cfg),
                "map": m.describe(), "verdict": result.verdict, "n_fixed_points": len(result),
                "n_stable": int(result.stable.sum()), "status_counts": result.status_counts(), "timing": result.timing,
                "files": {"attractor_set": ["tensors.safetensors", "meta.json"], "grid": png.name}}
    save_json(out / "manifest.json", manifest)
    for line in result.summary():
        print(line)
    print(f"wrote {out}/ (attractor set, manifest.json, {png.name})")
    return 0


def _command(args) -> str:
    """The command line that reproduces this run (the same with every flag spelled out)."""
    parts = ["probe", "run", args.spec]
    for key, value in vars(args).items():
        if key in ("command", "func", "spec") or value is None or value is False:
            continue
        flag = "--seeds" if key == "n_seeds" else "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("latent-probe", "torch", "diffusers", "accelerate"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out
