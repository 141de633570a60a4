"""``probe dictionary SPEC --datasets a,b``: attractors from noise as a sparse-coding dictionary.

Prints the markdown table and writes, under ``--out``: ``report/`` (the DictionaryReport),
``dictionary.md`` (tables incl. the sweep), ``dictionary.csv``, ``sparsity_mse.png`` and
``reconstructions.png``. The attractor search checkpoints into ``OUT/attractors`` and resumes;
finished datasets (``OUT/datasets/<name>``) are reused on the next run, so Ctrl-C keeps what was done.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import flags

__all__ = ["add_parser", "run", "render", "write_outputs"]


def add_parser(subparsers) -> None:
    from ..probes.dictionary import DictionaryConfig

    p = subparsers.add_parser("dictionary", help="data-free dictionary probe: attractors vs orthogonal vs PCA atoms",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_model_flags(p)
    p.add_argument("--datasets", required=True, help="comma-separated image sets (fashion-mnist, cifar10, a folder, an .npz...)")
    p.add_argument("--attractors", help="folder of a saved attractor set of this model (default: search, into OUT/attractors)")
    p.add_argument("--allow-other-model", action="store_true",
                   help="use an --attractors set made by another model (the report says whose)")
    flags.add_config_flags(p, DictionaryConfig)
    flags.add_field_flags(p, DictionaryConfig().field)
    flags.add_data_flags(p)
    flags.add_output_flags(p, "dictionary-out/<model>")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ConfigError
    from ..probes.common import model_of, resolved_config
    from ..probes.dictionary import DictionaryConfig, run_dictionary
    from ..probes.dictionary_report import DictionaryReport

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not datasets:
        raise ConfigError("--datasets is empty; give e.g. --datasets fashion-mnist,cifar10")
    cfg = flags.config_from_args(DictionaryConfig, args)
    m = flags.load_model(args, args.spec, cfg.field)
    out = flags.resolve_out(args, "dictionary", args.spec)
    settings = {"command": "dictionary", "model": model_of(m), "datasets": datasets, "attractors": args.attractors,
                "resize": args.resize, "config": resolved_config(cfg, m)}
    with flags.output_folder(args, out, settings) as folder:
        report = flags.reuse(args, folder, lambda: DictionaryReport.load(out / "report"))
        if report is None:
            report = run_dictionary(m, args.attractors, datasets, cfg, out=folder.path, log=flags.say(args),
                                    progress=not args.quiet, allow_other_model=args.allow_other_model,
                                    overwrite=args.overwrite, image_options=flags.image_options(args))
            write_outputs(report, folder.path, flags.command_line(args))
            flags.record_command(args, folder.path, report.config, spec=args.spec, datasets=datasets)
    flags.emit(args, report.to_markdown() + f"\nwrote {out}/dictionary.md, dictionary.csv, figures, report/",
               {"command": "dictionary", "out": str(out), "spec": args.spec, "atoms": report.attractors,
                "rows": report.summary_rows()})
    flags.write_report(args, out)
    return 0


def write_outputs(report, out: Path, command: str | None) -> None:
    """report/, dictionary.md, dictionary.csv, sparsity_mse.png and reconstructions.png under ``out``."""
    from ..io import save_text

    report.save(out / "report")
    save_text(out / "dictionary.md", render(report, command))
    report.to_csv(out / "dictionary.csv")
    report.plot(out / "sparsity_mse.png")
    if report.examples:
        report.plot_reconstructions(out / "reconstructions.png")


def render(report, command: str | None = None) -> str:
    """The full markdown: main tables (MSE, PSNR, latent error) and, with a sweep, the curve's numbers."""
    parts = [f"Command: `{command}`\n"] if command else []
    parts += [report.to_markdown("mse"), report.verdict_markdown(),
              report.to_markdown("psnr", compare=False, header=False),
              report.to_markdown("latent_rel", compare=False, header=False)]
    if len(report.sparsities) > 1:
        parts += [report.sweep_markdown(c) for c in report.coders]
    return "\n".join(parts)
