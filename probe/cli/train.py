"""``probe train``: train a conv autoencoder of the paper's family (resumable).

    probe train --dataset fashion-mnist --bottleneck 16 --width 16 --epochs 10 --out runs/fmnist_k16
"""
from __future__ import annotations

import argparse

from . import flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    from ..train import TrainConfig

    p = subparsers.add_parser("train", help="train a conv autoencoder of the paper's family (resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_config_flags(p, TrainConfig)
    flags.add_output_flags(p, "train-out/<dataset>-k<bottleneck>")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import TrainConfig, train

    cfg = flags.config_from_args(TrainConfig, args)
    if args.out is None:
        args.out = f"train-out/{cfg.dataset}-k{cfg.bottleneck}"
    result = train(cfg, args.out, log=flags.say(args))  # a run folder resumes on its own (train.json)
    flags.record_command(args, result.folder, cfg)
    last = result.history[-1] if result.history else {}
    test = last.get("test_mse")
    flags.emit(args, f"model saved in {result.folder} (load with probe.load({str(result.folder)!r})); "
                     f"train mse {last.get('train_mse', float('nan')):.5f}, "
                     f"test mse {test if test is not None else float('nan'):.5f}",
               {"command": "train", "out": str(result.folder), "epochs": result.epochs_done, "last": last})
    flags.write_report(args, result.folder)
    return 0
