"""``probe demo``: the main job on the embedded default model, offline, in about a minute.

Gaussian seeds -> attractors of the bundled Fashion-MNIST conv autoencoder -> the attractors
as a sparse-coding dictionary for held-out Fashion-MNIST test images and one more set, against
a random orthogonal basis and PCA. The seeds are matched to the latent mean and spread of
encoded training images (only those statistics; ``--seed-dist normal`` gives the paper's
N(0, I), which on this model, whose latents spread about 15, finds about 5 attractors). When
the distinct attractors are fewer than 20 (a 5% code of them is then one atom), the unmerged
end points are coded as atoms too, labelled as such. Writes everything under --out and, when the
report writer is installed, a report of the folder.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from ..config import field
from ..field.config import FieldConfig
from . import flags

__all__ = ["DemoConfig", "add_parser", "run", "DEFAULT_MODEL"]

DEFAULT_MODEL = "builtin:fmnist-k16"


@dataclass(frozen=True)
class DemoConfig:
    """``probe demo``: a dictionary probe sized to run in about a minute on a laptop CPU."""

    section = "demo"

    datasets: list[str] = field(["fashion-mnist", "mnist"], "held-out image sets")
    n_images: int = field(500, "test images per set (paper: 500)")
    coder: str = field("both", "sparse coder: omp, lasso or both")
    sweep: bool = field(False, "also the sparsity sweep (slower)")
    # last: the name shadows probe.config.field inside this class body
    field: FieldConfig = field(FieldConfig(n_seeds=512, seed_dist="data"),
                               "the attractor search: 512 Gaussian seeds matched to the per-dimension mean and spread "
                               "of encoded training images (this model's latents have a spread of about 15, so "
                               "N(0, I) seeds, the paper's, start in a few basins only: --seed-dist normal)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the main job on the embedded default model (offline)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model spec (default {DEFAULT_MODEL})")
    flags.add_config_flags(p, DemoConfig)
    flags.add_field_flags(p, DemoConfig().field)
    flags.add_output_flags(p, "demo-out")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from ..probes.common import model_of, resolved_config
    from ..probes.dictionary import DictionaryConfig, run_dictionary
    from ..probes.dictionary_report import DictionaryReport
    from .dictionary import write_outputs

    t0 = time.time()
    cfg = flags.config_from_args(DemoConfig, args)
    m = flags.load_model(args, args.model, cfg.field)
    out = flags.resolve_out(args, "demo")
    dcfg = DictionaryConfig(n_images=cfg.n_images, coder=cfg.coder, sweep=cfg.sweep, field=cfg.field)
    settings = {"command": "demo", "model": model_of(m), "datasets": cfg.datasets,
                "config": resolved_config(dcfg, m)}
    resolved = cfg.field.resolve(m)
    flags.note(args, f"model: {m.name} ({m.n_parameters():,} parameters), latent {tuple(m.latent_shape())}, "
                     f"{cfg.field.n_seeds} seeds, tol {resolved.tol:g}, max_steps {resolved.max_steps}")
    with flags.output_folder(args, out, settings) as folder:
        report = flags.reuse(args, folder, lambda: DictionaryReport.load(out / "report"))
        if report is None:
            report = run_dictionary(m, None, list(cfg.datasets), dcfg, out=folder.path, log=flags.say(args),
                                    progress=not args.quiet, overwrite=args.overwrite)
            from ..field import AttractorSet

            aset = AttractorSet.load(folder.path / "attractors")
            aset.plot(m, folder.path / "attractors.png")
            write_outputs(report, folder.path, flags.command_line(args))
            flags.record_command(args, folder.path, report.config, spec=args.model)
    a = report.attractors
    atoms = (f"{a['n_seeds']} atoms (the unmerged end points, {a.get('end_point_directions')} distinct directions; "
             f"{a['n_atoms']} {a['atoms_are']})" if a.get("degenerate") else f"{a['n_atoms']} {a['atoms_are']}")
    seeds = ("Gaussian seeds N(0, I), no data" if cfg.field.seed_dist == "normal" else
             "Gaussian seeds matched to the latent mean and spread of encoded training images; no image is a seed")
    text = (f"## Attractors from {seeds}\n\n{a['n_found']} {a['atoms_are']} from {a['n_seeds']} "
            f"seeds ({a['n_fixed_points']} fixed points, dynamics {a['verdict']})\n\n"
            f"## Attractors as a dictionary\n\n{report.to_markdown()}")
    flags.emit(args, text, {"command": "demo", "out": str(out), "atoms": a, "rows": report.summary_rows()})
    report_path = None
    try:
        from ..report import write_report
    except ImportError:
        write_report = None
    if write_report is not None:
        report_path = write_report(out)
    if not args.quiet and not args.json:
        print(f"\ndone in {time.time() - t0:.0f} s; a dictionary of {atoms}. Results and figures: {out.resolve()}")
        print("  attractors/ attractors.png dictionary.md dictionary.csv sparsity_mse.png reconstructions.png report/")
        if report_path is not None:
            print(f"  report: {report_path}")
    elif report_path is not None and not args.quiet:
        print(f"report: {report_path}", file=sys.stderr)
    return 0
