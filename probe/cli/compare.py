"""``probe compare A B``: data-free comparison of two models through their attractor sets.

A and B are model specs (a folder, builtin:<name>, a Hub id ...) or folders written by
``probe run`` (an attractor set whose manifest.json records the model it came from). When the
latent spaces are shared (same latent shape and architecture, or --same-space): Chamfer
similarity of the attractor sets and basin agreement on the same Gaussian seeds. Always (unless
--no-pixel in a shared space): each model's decoded attractors coded with the other's dictionary
(OMP, --sparsity), against a random orthogonal basis and the plain autoencoder, and a distance
between the two decoded sets. Writes, under --out: ``compare.md`` (the tables and the command),
``compare.png`` (the two models side by side), ``report/`` (the ComparisonReport) and the
computed attractor sets ``attractors_a/`` and ``attractors_b/`` (reused by a rerun).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _h(name: str, extra: str = "") -> str:
    from ..config import help_of
    from ..probes.compare import CompareConfig

    return (help_of(CompareConfig, name) + extra).replace("%", "%%")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compare", help="data-free model comparison through attractor sets",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="model spec, or a `probe run` output folder")
    p.add_argument("b", metavar="B", help="model spec, or a `probe run` output folder")
    p.add_argument("--attractors-a", help="folder of a saved attractor set of A (default: compute)")
    p.add_argument("--attractors-b", help="folder of a saved attractor set of B (default: compute)")
    p.add_argument("--seeds", dest="n_seeds", type=int, help=_h("n_seeds", " (default 1024)"))
    p.add_argument("--seed", type=int, help=_h("seed", " (default 0)"))
    p.add_argument("--resolution", type=int, help=_h("resolution"))
    p.add_argument("--tol", type=float, help=_h("tol"))
    p.add_argument("--max-steps", type=int, help=_h("max_steps"))
    p.add_argument("--merge-threshold", type=float, help=_h("merge_threshold"))
    p.add_argument("--sparsity", type=float, help=_h("sparsity", " (default 0.05)"))
    p.add_argument("--atoms-from", choices=["auto", "attractors", "end_points"], help=_h("atoms_from"))
    p.add_argument("--same-space", action=argparse.BooleanOptionalAction, default=None, help=_h("same_space"))
    p.add_argument("--pixel", action=argparse.BooleanOptionalAction, default=None, help=_h("pixel"))
    p.add_argument("--batch-size", type=int, help=_h("batch_size", " (default 64)"))
    p.add_argument("--max-grid", type=int, help=_h("max_grid", " (default 16)"))
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--dtype", help="model dtype: fp32, fp16, bf16 (default: as loaded)")
    p.add_argument("--out", default="compare-out", help="output folder (default compare-out)")
    p.add_argument("--config", help="YAML with CompareConfig fields (a 'compare:' section or top level); flags override")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
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
    import probe

    from ..config import build
    from ..probes.compare import CompareConfig, compare
    from ..probes.dictionary import log_stderr

    cfg = build(CompareConfig, args.config, n_seeds=args.n_seeds, seed=args.seed, resolution=args.resolution,
                tol=args.tol, max_steps=args.max_steps, merge_threshold=args.merge_threshold, sparsity=args.sparsity,
                atoms_from=args.atoms_from, same_space=args.same_space, pixel=args.pixel,
                batch_size=args.batch_size, max_grid=args.max_grid)
    (spec_a, set_a), (spec_b, set_b) = resolve(args.a, args.attractors_a), resolve(args.b, args.attractors_b)
    map_a = probe.load(spec_a, device=args.device, dtype=args.dtype)
    # the same spec twice is one model: loaded once, iterated once
    map_b = map_a if spec_b == spec_a else probe.load(spec_b, device=args.device, dtype=args.dtype)
    out = Path(args.out)
    report = compare(map_a, map_b, cfg, attractors_a=set_a, attractors_b=set_b, specs=(spec_a, spec_b), out=out,
                     log=None if args.quiet else log_stderr)
    report.save(out / "report")
    png = report.grids(out)
    command = "probe " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if sys.argv[0].endswith("probe") else []))
    text = report.to_markdown()
    (out / "compare.md").write_text((f"Command: `{command}`\n\n" if command.strip() != "probe" else "") + text + "\n")
    print(text)
    print(f"wrote {out}/compare.md, {png.name}, report/", file=sys.stderr)
    return 0
