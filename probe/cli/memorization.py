"""``probe memorization``: memorization vs generalization across bottlenecks (paper section 3).

Trains one conv autoencoder per bottleneck k (resumable model by model), then measures each:
memorization coefficient of attractors from noise, training and test images next to the null
level, generalization rank, train / test MSE, attractors per epoch, Chamfer similarity.

    probe memorization --dataset fashion-mnist --bottlenecks 2,4,8,16,32,64,128 --epochs 20

With ``--model SPEC`` it measures one trained model instead (no training).
"""
from __future__ import annotations

import argparse

from . import flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    from ..probes.memorization_study import MemorizationConfig

    p = subparsers.add_parser("memorization", help="memorization coefficient vs bottleneck (trains a sweep, resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="measure this one trained model instead of training a sweep")
    flags.add_model_flags(p, names=())  # how --model loads
    flags.add_config_flags(p, MemorizationConfig)
    flags.add_field_flags(p, MemorizationConfig().field)
    flags.add_output_flags(p, "memorization-out/<dataset> (or <model>)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import asdict
    from ..probes.memorization_study import MemorizationConfig, MemorizationStudy, run_study

    cfg = flags.config_from_args(MemorizationConfig, args)
    if args.model:
        return _one(args, cfg)
    out = flags.resolve_out(args, "memorization", cfg.dataset)
    with flags.output_folder(args, out, {"command": "memorization", "config": asdict(cfg)}) as folder:
        study = flags.reuse(args, folder, lambda: MemorizationStudy.load(out))
        if study is None:
            study = run_study(cfg, folder.path, log=flags.say(args), progress=not args.quiet)
            flags.record_command(args, folder.path, cfg)
    flags.emit(args, study.table() + f"\ntable, plots and models in {out}",
               {"command": "memorization", "out": str(out), "rows": study.to_rows()})
    flags.write_report(args, out)
    return 0


def _one(args, cfg) -> int:
    from ..data import load_images
    from ..probes.common import model_of, resolved_config
    from ..probes.memorization import Memorization, measure

    model = flags.load_model(args, args.model, cfg.field)
    out = flags.resolve_out(args, "memorization", args.model)
    mcfg = cfg.measure_config()
    settings = {"command": "memorization", "model": model_of(model), "dataset": cfg.dataset, "n_train": cfg.n_train,
                "n_test": cfg.n_test, "config": resolved_config(mcfg, model)}
    with flags.output_folder(args, out, settings) as folder:
        result = flags.reuse(args, folder, lambda: Memorization.load(out))
        if result is None:
            size, chans = model.image_size, model.image_channels
            train = load_images(cfg.dataset, split="train", n=cfg.n_train or None, seed=cfg.field.seed,
                                resolution=size, channels=chans)
            test = load_images(cfg.dataset, split="test", n=cfg.n_test, seed=cfg.field.seed, resolution=size,
                               channels=chans)
            keep: dict = {}
            result = measure(model, train, test, mcfg, out=folder.path, progress=not args.quiet, keep=keep,
                             overwrite=args.overwrite)
            for source, aset in keep.items():
                aset.plot(model, folder.path / f"attractors_{source}.png", max_points=32)
            result.save(folder.path)
            flags.record_command(args, folder.path, result.config, spec=args.model, dataset=cfg.dataset)
    lines = [f"null level (test images): {result['null']['mean']:.3f} ± {result['null']['std']:.3f}"]
    for source in ("noise", "train", "test"):
        r = result[source]
        c = r["coefficient"]
        lines.append(f"attractors from {source}: {r['attractors']} ({r['converged']}/{r['seeds']} seeds converged), "
                     f"coefficient {c['mean']:.3f} ± {c['std']:.3f}, generalization rank {r['generalization_rank']}")
    lines.append(f"Chamfer similarity train-noise {result['chamfer']['train_noise']:.3f}, "
                 f"test-noise {result['chamfer']['test_noise']:.3f}")
    lines.append(f"results in {out}")
    flags.emit(args, "\n".join(lines), {"command": "memorization", "out": str(out), "spec": args.model,
                                        "rows": result.to_rows()})
    flags.write_report(args, out)
    return 0
