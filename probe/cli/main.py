"""The ``probe`` command. Each subcommand lives in ``probe/cli/<name>.py`` with
``add_parser(subparsers)`` that sets ``func``; errors a user can cause end in one line."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

from ..errors import ProbeError

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

SUBCOMMANDS = ["info", "run", "dictionary", "memorization", "basins", "ood", "compare", "features", "report",
               "fit_decoder", "demo", "train"]
_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("latent-probe")
    except Exception:  # a source checkout that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probe", description="Probe autoencoders through their latent vector field.")
    parser.add_argument("--version", action="version", version=f"probe {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        mod = f"probe.cli.{name}"
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod).add_parser(sub)
    return parser


def _valued_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings that take one value, in every subcommand."""
    out: set[str] = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.option_strings and isinstance(action, (argparse._StoreAction, argparse._AppendAction)):
                out.update(action.option_strings)
    return out


def _join_negative_numbers(argv: list[str], flags: set[str]) -> list[str]:
    """``--tol -1e-6`` -> ``--tol=-1e-6``: argparse would read a number in e-notation as a flag."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in flags and i + 1 < len(argv) and _NUMBER.match(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _what_exists(out: str | None) -> str:
    """The interrupt message's tail: only folders and files that are really there."""
    if not out:
        return ""
    folder = Path(out)
    staging = folder.parent / f".{folder.name}.staging"  # where an --overwrite run works until it is complete
    if not folder.is_dir() and not staging.is_dir():
        return f"; nothing was written ({folder} does not exist)"
    roots = [p for p in (folder, staging) if p.is_dir()]
    checkpoints = sorted(str(p) for root in roots for p in root.rglob("checkpoint") if p.is_dir())
    # finished: plain files, and folders holding a saved result (a folder with only a checkpoint is not)
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name != "settings.json"
                   and (p.is_file() or (p / "meta.json").is_file())) if folder.is_dir() else []
    parts = []
    if checkpoints:
        parts.append(f"checkpoint in {', '.join(checkpoints[:3])}: run the same command again to resume")
    if files:
        parts.append(f"finished in {folder}: {', '.join(files[:8])}{' ...' if len(files) > 8 else ''}")
    return "; " + "; ".join(parts) if parts else f"; {folder} holds nothing finished yet"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _join_negative_numbers(argv, _valued_flags(parser))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except ProbeError as e:
        lines = str(e).strip().splitlines() or [type(e).__name__]
        print(f"probe {args.command}: error: {lines[0]}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped reading: nothing of ours failed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"probe {args.command}: interrupted{_what_exists(getattr(args, 'out', None))}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
