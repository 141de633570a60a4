"""``probe ood SPEC --train D --test-in D --test-out D1,D2``: the paper's OOD table for any model.

Data specs are those of ``probe.data.load_images`` (fashion-mnist, mnist, cifar10,
imagenet1k-500, photos, digits, noise:uniform, noise:gaussian, a folder, a .npz, hf:<name>);
``--train`` reads the ``train`` split and the test sets the ``test`` split unless a spec
ends in ``@<split>`` (e.g. ``cifar10@train``). The attractor search from the training latents
checkpoints into ``OUT/attractors`` and resumes.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import flags

__all__ = ["add_parser", "run", "SPLITS"]

SPLITS = ("train", "test", "validation", "val", "all")


def add_parser(sub) -> None:
    from ..probes.ood import OODConfig

    p = sub.add_parser("ood", help="out-of-distribution detection from latent trajectories (paper section 4.2)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_model_flags(p)
    p.add_argument("--train", required=True, help="training images whose attractors and latents fit the detectors")
    p.add_argument("--test-in", required=True, help="in-distribution test images (disjoint from --train)")
    p.add_argument("--test-out", required=True, help="comma-separated OOD sets, e.g. mnist,noise:uniform")
    p.add_argument("--reference", help="folder of a saved attractor set to use as Z*_train (default: search)")
    p.add_argument("--allow-other-model", action="store_true",
                   help="use a --reference set made by another model (the report says whose)")
    flags.add_config_flags(p, OODConfig)
    flags.add_field_flags(p, OODConfig().field, skip=("n_seeds", "seed_dist"))
    flags.add_data_flags(p)
    flags.add_output_flags(p, "ood-out/<model>")
    p.set_defaults(func=run)


def _split(spec: str, default: str) -> tuple[str, str]:
    """``cifar10@train`` -> (``cifar10``, ``train``); a spec without a known suffix keeps ``default``."""
    head, sep, tail = spec.rpartition("@")
    return (head, tail) if sep and head and tail in SPLITS else (spec, default)


def _name(spec: str) -> str:
    """Short column name: a file's stem, else the spec itself."""
    path = Path(spec).expanduser()
    return path.stem if path.exists() else spec


def run(args) -> int:
    from ..data import load_images
    from ..errors import ConfigError
    from ..io import save_text
    from ..probes.common import model_of, resolution_of, resolved_config
    from ..probes.ood import OODConfig, OODReport, run_ood

    cfg = flags.config_from_args(OODConfig, args)
    outs = [s.strip() for s in args.test_out.split(",") if s.strip()]
    if not outs:
        raise ConfigError("--test-out names no data set")
    if _split(args.train, "train") == _split(args.test_in, "test"):
        raise ConfigError(f"--test-in {args.test_in} is the training set itself; use its test split")
    in_name = _name(_split(args.test_in, "test")[0])
    names = [_name(_split(s, "test")[0]) for s in outs]
    if len(set(names)) != len(names) or in_name in names:
        raise ConfigError(f"test set names must differ: in = {in_name}, out = {', '.join(names)}")
    t0 = time.perf_counter()
    m = flags.load_model(args, args.spec, cfg.field)
    res = resolution_of(m, cfg.field.resolution)
    out = flags.resolve_out(args, "ood", args.spec)
    settings = {"command": "ood", "model": model_of(m), "train": args.train, "test_in": args.test_in,
                "test_out": outs, "reference": args.reference, "resize": args.resize,
                "config": resolved_config(cfg, m, cfg.field.replace(resolution=res))}
    say = flags.say(args)

    def images(spec: str, split: str, n: int):
        spec, split = _split(spec, split)
        return load_images(spec, split=split, n=n, seed=cfg.field.seed, resolution=res, channels=m.image_channels,
                           **flags.image_options(args))

    with flags.output_folder(args, out, settings) as folder:
        report = flags.reuse(args, folder, lambda: OODReport.load(out))
        if report is None:
            if say:
                say(f"[ood] model {m.name} on {m.device}, {res} px; loading data")
            train = images(args.train, "train", cfg.n_train)
            test_in = images(args.test_in, "test", cfg.n_test)
            test_out = {n: images(s, "test", cfg.n_test) for n, s in zip(names, outs, strict=True)}
            report = run_ood(m, train, test_in, test_out, cfg, in_name=in_name, log=say, reference=args.reference,
                             out=folder.path, progress=not args.quiet, allow_other_model=args.allow_other_model,
                             overwrite=args.overwrite)
            report.save(folder.path)
            report.to_csv(folder.path / "ood.csv")
            report.plot_histograms(folder.path / "histograms.png")
            save_text(folder.path / "ood.md", f"{report.to_markdown()}\nCommand: `{flags.command_line(args)}` "
                                              f"({time.perf_counter() - t0:.0f} s on {m.device})\n")
            flags.record_command(args, folder.path, report.config, spec=args.spec)
    flags.emit(args, report.to_markdown() + f"\nwrote {out}/ (report, ood.csv, ood.md, histograms.png)",
               {"command": "ood", "out": str(out), "spec": args.spec, "in": report.in_name,
                "out_sets": report.out_names, "metrics": report.metrics(), "reference": report.info["attractors"]})
    flags.write_report(args, out)
    return 0
