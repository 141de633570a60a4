"""The ``probe`` command. Each subcommand lives in ``probe/cli/<name>.py`` with
``add_parser(subparsers)`` that sets ``func``; errors a user can cause end in one line."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from ..errors import ProbeError

SUBCOMMANDS = ["info", "run", "dictionary", "memorization", "basins", "ood", "compare", "fit_decoder", "demo", "train"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe", description="Probe autoencoders through their latent vector field.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        mod = f"probe.cli.{name}"
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ProbeError as e:
        print(f"probe {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        where = f"; finished results and checkpoints are in {out}" if out else ""
        print(f"probe {args.command}: interrupted{where}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
