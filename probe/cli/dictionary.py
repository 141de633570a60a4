"""``probe dictionary SPEC --datasets a,b``: attractors from noise as a sparse-coding dictionary.

Prints the markdown table and writes, under ``--out``: ``report/`` (the DictionaryReport),
``dictionary.md`` (tables incl. the sweep), ``dictionary.csv``, ``sparsity_mse.png`` and
``reconstructions.png``. Finished datasets (``OUT/datasets/<name>``) and the attractor set
(``OUT/attractors``) are reused on the next run, so Ctrl-C keeps what was done.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("dictionary", help="data-free dictionary probe: attractors vs orthogonal vs PCA atoms",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="model: a folder, builtin:<name>, a Hub id, ...")
    p.add_argument("--datasets", required=True, help="comma-separated image sets (fashion-mnist, cifar10, a folder, an .npz...)")
    p.add_argument("--atoms", type=int, help="Gaussian seeds to iterate (default: the latent dimension, as the paper)")
    p.add_argument("--sparsity", type=float, help="fraction of atoms non-zero (default 0.05)")
    p.add_argument("--sweep", action="store_true", default=None, help="also sweep 100%%, 50%%, ... for the curve")
    p.add_argument("--coder", choices=["omp", "lasso", "both"], help="sparse coder (default omp)")
    p.add_argument("--bases", help="comma-separated subset of attractors,orthogonal,pca")
    p.add_argument("--atoms-from", choices=["auto", "attractors", "end_points"], help="what the atoms are (default auto)")
    p.add_argument("--attractors", help="folder of a saved attractor set (default: compute, save to OUT/attractors)")
    p.add_argument("--n-images", type=int, help="test images per dataset (default 500)")
    p.add_argument("--pca-images", type=int, help="train images for the PCA reference (default 2000)")
    p.add_argument("--resolution", type=int, help="image side in px for resolution-free models")
    p.add_argument("--tol", type=float, help="iteration tolerance (default: the model family's)")
    p.add_argument("--max-steps", type=int, help="iteration cap (default: the model family's)")
    p.add_argument("--batch-size", type=int, help="images per encode/decode batch (default 64)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default cpu)")
    p.add_argument("--dtype", default=None, help="model dtype: fp32, fp16, bf16")
    p.add_argument("--out", default="dictionary-out", help="output folder (default dictionary-out)")
    p.add_argument("--config", help="YAML with DictionaryConfig fields (flags override it)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    import probe
    from ..config import build
    from ..errors import ProbeError
    from ..probes.dictionary import DictionaryConfig, log_stderr, run_dictionary

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not datasets:
        raise ProbeError("--datasets is empty; give e.g. --datasets fashion-mnist,cifar10")
    bases = [b.strip() for b in args.bases.split(",") if b.strip()] if args.bases else None
    cfg = build(DictionaryConfig, args.config, atoms=args.atoms, sparsity=args.sparsity, sweep=args.sweep,
                coder=args.coder, bases=bases, atoms_from=args.atoms_from, n_images=args.n_images,
                pca_images=args.pca_images, resolution=args.resolution, tol=args.tol, max_steps=args.max_steps,
                batch_size=args.batch_size, seed=args.seed)
    m = probe.load(args.spec, device=args.device, dtype=args.dtype)
    out = Path(args.out)
    report = run_dictionary(m, args.attractors, datasets, cfg, out=out, log=None if args.quiet else log_stderr)
    report.save(out / "report")
    command = "probe " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith("probe") else None
    (out / "dictionary.md").write_text(render(report, command))
    report.to_csv(out / "dictionary.csv")
    report.plot(out / "sparsity_mse.png")
    if report.examples:
        report.plot_reconstructions(out / "reconstructions.png")
    print(report.to_markdown())
    print(f"wrote {out}/dictionary.md, dictionary.csv, sparsity_mse.png"
          f"{', reconstructions.png' if report.examples else ''}, report/", file=sys.stderr)
    return 0


def render(report, command: str | None = None) -> str:
    """The full markdown: main tables (MSE, PSNR, latent error) and, with a sweep, the curve's numbers."""
    parts = [f"Command: `{command}`\n"] if command else []
    parts += [report.to_markdown("mse"), report.verdict_markdown(),
              report.to_markdown("psnr", compare=False, header=False),
              report.to_markdown("latent_rel", compare=False, header=False)]
    if len(report.sparsities) > 1:
        parts += [report.sweep_markdown(c) for c in report.coders]
    return "\n".join(parts)
