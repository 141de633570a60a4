"""``probe compare A B``: data-free comparison of two models through their attractor sets.

A and B are model specs (a folder, builtin:<name>, a Hub id ...) or folders written by
``probe run`` (an attractor set whose manifest.json records the model it came from). When the
latent spaces are shared (same latent shape and architecture, or --same-space): Chamfer
similarity of the attractor sets and basin agreement on the same Gaussian seeds. Always (unless
--no-pixel in a shared space): each model's decoded attractors coded with the other's dictionary
(OMP, --sparsity), against a random orthogonal basis and the plain autoencoder, and a distance
between the two decoded sets. Writes, under --out (default ``compare-out/<A>_vs_<B>``):
``compare.md`` (the tables and the command), ``compare.png`` (the two models side by side),
``report/`` (the ComparisonReport) and the attractor sets ``attractors_a/`` and ``attractors_b/``
(checkpointed while they are searched, reused by a rerun).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import flags

__all__ = ["add_parser", "run", "resolve"]


def add_parser(subparsers) -> None:
    from ..probes.compare import CompareConfig

    p = subparsers.add_parser("compare", help="data-free model comparison through attractor sets",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_model_flags(p, names=("a", "b"))
    p.add_argument("--attractors-a", help="folder of a saved attractor set of A (default: search)")
    p.add_argument("--attractors-b", help="folder of a saved attractor set of B (default: search)")
    p.add_argument("--allow-other-model", action="store_true",
                   help="use an --attractors-a/-b set made by another model (the report says whose)")
    flags.add_config_flags(p, CompareConfig)
    flags.add_field_flags(p, CompareConfig().field)
    flags.add_output_flags(p, "compare-out/<A>_vs_<B>")
    p.set_defaults(func=run)


def resolve(arg: str, attractors: str | None) -> tuple[str, str | None]:
    """(model spec, attractor-set folder or None) for a positional A / B."""
    from ..errors import ProbeError
    from ..io import load_json

    folder = Path(arg).expanduser()
    meta = folder / "meta.json"
    if not (folder.is_dir() and meta.is_file() and load_json(meta).get("kind") == "AttractorSet"):
        return arg, attractors
    if attractors is not None:
        raise ProbeError(f"{arg} is already an attractor set; give the model spec as A/B with --attractors-a/-b, "
                         f"or the set alone")
    manifest = folder / "manifest.json"
    spec = load_json(manifest).get("spec") if manifest.is_file() else None
    if not spec:
        raise ProbeError(f"{arg} holds an attractor set that does not record its model (no manifest.json with "
                         f"'spec'); give the model as A/B and the folder as --attractors-a/-b")
    return str(spec), str(folder)


def run(args) -> int:
    from ..io import save_text
    from ..probes.common import model_of, resolved_config
    from ..probes.compare import CompareConfig, ComparisonReport, compare

    cfg = flags.config_from_args(CompareConfig, args)
    (spec_a, set_a), (spec_b, set_b) = resolve(args.a, args.attractors_a), resolve(args.b, args.attractors_b)
    map_a = flags.load_model(args, spec_a, cfg.field)
    # the same spec twice is one model: loaded once, iterated once
    map_b = map_a if spec_b == spec_a else flags.load_model(args, spec_b, cfg.field)
    out = flags.resolve_out(args, "compare", spec_a, spec_b)
    settings = {"command": "compare", "models": [model_of(map_a), model_of(map_b)], "attractors": [set_a, set_b],
                "config": resolved_config(cfg, map_a)}
    with flags.output_folder(args, out, settings) as folder:
        report = flags.reuse(args, folder, lambda: ComparisonReport.load(out / "report"))
        if report is None:
            report = compare(map_a, map_b, cfg, attractors_a=set_a, attractors_b=set_b, specs=(spec_a, spec_b),
                             out=folder.path, log=flags.say(args), progress=not args.quiet,
                             allow_other_model=args.allow_other_model, overwrite=args.overwrite)
            report.save(folder.path / "report")
            report.grids(folder.path)
            save_text(folder.path / "compare.md", f"Command: `{flags.command_line(args)}`\n\n{report.to_markdown()}\n")
            flags.record_command(args, folder.path, report.config, specs=[spec_a, spec_b])
    flags.emit(args, report.to_markdown() + f"\nwrote {out}/compare.md, compare.png, report/",
               {"command": "compare", "out": str(out), "specs": [spec_a, spec_b], "shared": report.shared,
                "summary": report.summary(), "scalars": report.scalars})
    flags.write_report(args, out)
    return 0
