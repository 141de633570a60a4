"""``probe ood SPEC --train D --test-in D --test-out D1,D2``: the paper's OOD table for any model.

Data specs are those of ``probe.data.load_images`` (fashion-mnist, mnist, cifar10,
imagenet1k-500, photos, digits, noise:uniform, noise:gaussian, a folder, a .npz, hf:<name>);
``--train`` reads the ``train`` split and the test sets the ``test`` split unless a spec
ends in ``@<split>`` (e.g. ``cifar10@train``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

SPLITS = ("train", "test", "validation", "val", "all")


def add_parser(sub) -> None:
    p = sub.add_parser("ood", help="out-of-distribution detection from latent trajectories (paper section 4.2)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="model: builtin:<name>, a local directory, or a Hub id")
    p.add_argument("--train", required=True, help="training images whose attractors and latents fit the detectors")
    p.add_argument("--test-in", required=True, help="in-distribution test images (disjoint from --train)")
    p.add_argument("--test-out", required=True, help="comma-separated OOD sets, e.g. mnist,noise:uniform")
    p.add_argument("--n-train", type=int, help="training images (default 1000)")
    p.add_argument("--n-test", type=int, help="images per test set (default 500)")
    p.add_argument("--resolution", type=int, help="image size in px (default: the model's native size)")
    p.add_argument("--max-steps", type=int, help="step cap of the attractor search (default: the map's paper setting)")
    p.add_argument("--score-steps", type=int, help="step budget T of the trajectory score (default: --max-steps)")
    p.add_argument("--tol", type=float, help="convergence tolerance on ||z_{t+1} - z_t||^2 (default: the map's)")
    p.add_argument("--knn-k", type=int, help="K of the KNN baseline (default 50)")
    p.add_argument("--batch-size", type=int, help="images per batch (default 128)")
    p.add_argument("--seed", type=int, help="seed of the image subsets (default 0)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--dtype", help="model dtype: fp32 (default), fp16, bf16")
    p.add_argument("--config", help="YAML file with OODConfig fields (optionally under an 'ood:' section)")
    p.add_argument("--out", default="ood-out", help="folder for the report, CSV, markdown and histograms")
    p.set_defaults(func=run)


def _split(spec: str, default: str) -> tuple[str, str]:
    """``cifar10@train`` -> (``cifar10``, ``train``); a spec without a known suffix keeps ``default``."""
    head, sep, tail = spec.rpartition("@")
    return (head, tail) if sep and head and tail in SPLITS else (spec, default)


def _name(spec: str) -> str:
    """Short column name: a file's stem, else the spec itself."""
    path = Path(spec).expanduser()
    return path.stem if path.exists() else spec


def _command(args) -> str:
    """The command line that made the result (rebuilt from the flags when called from Python)."""
    import shlex

    if sys.argv[1:2] == ["ood"]:
        return "probe " + shlex.join(sys.argv[1:])
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
             if k not in ("spec", "func", "command") and v is not None]
    return "probe ood " + shlex.join([args.spec, *flags])


def run(args) -> int:
    import probe
    from probe.config import build
    from probe.data import load_images
    from probe.errors import ProbeError
    from probe.probes.ood import OODConfig, run_ood

    cfg = build(OODConfig, args.config, n_train=args.n_train, n_test=args.n_test, resolution=args.resolution,
                max_steps=args.max_steps, score_steps=args.score_steps, tol=args.tol, knn_k=args.knn_k,
                batch_size=args.batch_size, seed=args.seed)
    outs = [s.strip() for s in args.test_out.split(",") if s.strip()]
    if not outs:
        raise ProbeError("--test-out names no data set")
    say = lambda msg: print(f"[ood] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    m = probe.load(args.spec, device=args.device, dtype=args.dtype)
    res = cfg.resolution or m.image_size or m.default_resolution()

    def images(spec: str, split: str, n: int):
        spec, split = _split(spec, split)
        return load_images(spec, split=split, n=n, seed=cfg.seed, resolution=res, channels=m.image_channels)

    if _split(args.train, "train") == _split(args.test_in, "test"):
        raise ProbeError(f"--test-in {args.test_in} is the training set itself; use its test split")
    in_name = _name(_split(args.test_in, "test")[0])
    names = [_name(_split(s, "test")[0]) for s in outs]
    if len(set(names)) != len(names) or in_name in names:
        raise ProbeError(f"test set names must differ: in = {in_name}, out = {', '.join(names)}")
    say(f"model {m.name} on {m.device}, {res} px; loading data")
    train = images(args.train, "train", cfg.n_train)
    test_in = images(args.test_in, "test", cfg.n_test)
    test_out = {n: images(s, "test", cfg.n_test) for n, s in zip(names, outs)}
    report = run_ood(m, train, test_in, test_out, cfg, in_name=in_name, progress=say)
    out = Path(args.out)
    report.save(out)
    report.to_csv(out / "ood.csv")
    report.plot_histograms(out / "histograms.png")
    md = report.to_markdown()
    command = _command(args)
    from probe.io import _atomic_write

    _atomic_write(out / "ood.md", lambda tmp: Path(tmp).write_text(
        f"{md}\nCommand: `{command}` ({time.perf_counter() - t0:.0f} s on {m.device})\n"))
    print(md)
    say(f"wrote {out}/ (report, ood.csv, ood.md, histograms.png) in {time.perf_counter() - t0:.0f} s")
    return 0
