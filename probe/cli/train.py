"""``probe train``: train a conv autoencoder of the paper's family (resumable).

    probe train --dataset fashion-mnist --bottleneck 16 --width 16 --epochs 10 --out runs/fmnist_k16
"""
from __future__ import annotations

import argparse
import dataclasses
import typing

from ..config import build


def add_config_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per dataclass field (default None = keep the config / YAML value)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"{f.metadata.get('help', '')} (default {default})"
        if base is bool:
            parser.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        elif typing.get_origin(base) in (list, tuple) or base in (list, tuple):
            parser.add_argument(flag, dest=f.name, default=None, help=help_text + "; comma separated",
                                type=lambda s: [int(v) for v in s.split(",") if v.strip()])
        else:
            parser.add_argument(flag, dest=f.name, default=None, type=base, help=help_text)


def config_from_args(cls: type, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(cls)}
    return build(cls, getattr(args, "config", None), **{k: v for k, v in vars(args).items() if k in names})


def add_parser(subparsers) -> None:
    from ..train import TrainConfig

    p = subparsers.add_parser("train", help="train a conv autoencoder of the paper's family (resumable)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run folder; an existing run with the same settings is resumed")
    p.add_argument("--config", default=None, help="YAML file with TrainConfig fields (flags override it)")
    add_config_flags(p, TrainConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train import TrainConfig, train

    cfg = config_from_args(TrainConfig, args)
    result = train(cfg, args.out)
    last = result.history[-1] if result.history else {}
    print(f"model saved in {result.folder} (load with probe.load({str(result.folder)!r})); "
          f"train mse {last.get('train_mse', float('nan')):.5f}, test mse {last.get('test_mse') or float('nan'):.5f}")
    return 0
