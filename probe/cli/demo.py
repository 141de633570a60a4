"""``probe demo``: the main job on the embedded default model, offline, in about a minute.

Gaussian seeds (no data) -> attractors of the bundled Fashion-MNIST conv autoencoder ->
the attractors as a sparse-coding dictionary for held-out Fashion-MNIST test images and
one more set, against a random orthogonal basis and PCA. Writes everything under --out.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_MODEL = "builtin:fmnist-k16"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the main job on the embedded default model (offline)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model spec (default {DEFAULT_MODEL})")
    p.add_argument("--seeds", type=int, default=512, help="Gaussian seeds iterated to attractors (default 512)")
    p.add_argument("--datasets", default="fashion-mnist,mnist", help="held-out sets (default fashion-mnist,mnist)")
    p.add_argument("--n-images", type=int, default=500, help="test images per set (paper: 500)")
    p.add_argument("--coder", default="both", choices=["omp", "lasso", "both"], help="sparse coder (default both)")
    p.add_argument("--sweep", action="store_true", help="also the sparsity sweep (slower)")
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.set_defaults(func=run)


def run(args) -> int:
    import probe
    from ..field import find_attractors
    from ..probes.dictionary import DictionaryConfig, log_stderr, run_dictionary
    from .dictionary import render

    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    m = probe.load(args.model)
    res = m.image_size or m.default_resolution()
    print(f"model: {m.name} ({m.n_parameters():,} parameters), latent {tuple(m.latent_shape(res))}, "
          f"tol {m.field_defaults['tol']:g}, max_steps {m.field_defaults['max_steps']}", file=sys.stderr)

    aset = find_attractors(m, n_seeds=args.seeds, seed=0, out=out / "attractors")
    aset.plot(m, out / "attractors.png")
    print("\n## Attractors from Gaussian noise (no data)\n")
    for line in aset.summary():
        print(f"- {line}")

    cfg = DictionaryConfig(atoms=args.seeds, n_images=args.n_images, coder=args.coder, sweep=args.sweep)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    report = run_dictionary(m, aset, datasets, cfg, out=out, log=log_stderr)
    report.save(out / "report")
    command = f"probe demo --model {args.model} --seeds {args.seeds} --datasets {args.datasets} " \
              f"--n-images {args.n_images} --coder {args.coder}{' --sweep' if args.sweep else ''} --out {args.out}"
    (out / "dictionary.md").write_text(render(report, command))
    report.to_csv(out / "dictionary.csv")
    report.plot(out / "sparsity_mse.png")
    report.plot_reconstructions(out / "reconstructions.png")
    print("\n## Attractors as a dictionary\n")
    print(report.to_markdown())
    print(f"\ndone in {time.time() - t0:.0f} s. Results and figures: {out.resolve()}")
    print("  attractors/ attractors.png dictionary.md dictionary.csv sparsity_mse.png reconstructions.png report/")
    return 0
