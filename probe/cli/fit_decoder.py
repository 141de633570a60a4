"""``probe fit-decoder``: fit a surrogate decoder to a frozen encoder that has none (CLIP).

    probe fit-decoder open_clip:ViT-B-32/laion2b_s34b_b79k --images cifar10 --resolution 64 \\
        --epochs 20 --out runs/clip_b32
    probe fit-decoder open_clip:ViT-B-32//path/to/open_clip_pytorch_model.bin --images imagenet1k-500 --out DIR
    probe fit-decoder open_clip:ViT-B-32/random --images digits --resolution 32 --epochs 5 --out DIR

The encoder stays frozen and encodes the images once; the decoder learns D(E(x)) = x (MSE,
plus --consistency * ||E(D(z)) - z||^2 / ||z||^2 if given). DIR then loads with probe.load(DIR)
and its field f(z) = E(D(z)) iterates like any autoencoder's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ProbeError
from . import flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    from ..maps.surrogate import FitConfig

    p = subparsers.add_parser("fit-decoder", help="fit a surrogate decoder to a frozen encoder (open_clip:...)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="the encoder: open_clip:<arch>/<tag | checkpoint path | random>")
    p.add_argument("--latent", default="sphere", choices=["sphere", "raw"],
                   help="latent: L2-normalized embedding * sqrt(d) (sphere, default) or the raw embedding")
    p.add_argument("--cache-dir", default=None, help="where open_clip looks for (and downloads) pretrained weights")
    p.add_argument("--model-cfg", default=None,
                   help="open_clip config overrides as JSON or a .json file (custom or tiny architectures)")
    flags.add_config_flags(p, FitConfig)
    flags.add_output_flags(p, "fit-decoder-out/<encoder>")
    p.set_defaults(func=run)


def _json_arg(text: str | None) -> dict | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    try:
        value = json.loads(path.read_text() if path.suffix == ".json" and path.is_file() else text)
    except json.JSONDecodeError as e:
        raise ProbeError(f"--model-cfg is not valid JSON (nor a .json file): {e}") from e
    if not isinstance(value, dict):
        raise ProbeError("--model-cfg must be a JSON object of open_clip config fields")
    return value


def run(args) -> int:
    from ..data import load_images
    from ..maps.clip import OpenClipEncoder, fit_surrogate
    from ..maps.registry import load
    from ..maps.surrogate import FitConfig

    cfg = flags.config_from_args(FitConfig, args)
    out = flags.resolve_out(args, "fit-decoder", args.spec)
    opts = {}
    if str(args.spec).startswith("open_clip:"):
        opts = {"latent": args.latent, "model_cfg": _json_arg(args.model_cfg), "cache_dir": args.cache_dir}
    encoder = load(args.spec, **opts)
    if not isinstance(encoder, OpenClipEncoder):
        raise ProbeError(f"fit-decoder fits a decoder to an encoder without one (open_clip:...); {args.spec} loads "
                         f"to a {type(encoder).__name__}, which has its own decoder")
    images = load_images(cfg.images, split=cfg.split, n=cfg.n_images, seed=cfg.seed)
    flags.note(args, f"fitting a {cfg.resolution} px decoder to {encoder.name} on {len(images)} images of "
                     f"{images.name} ({cfg.epochs} epochs, consistency {cfg.consistency}, {cfg.device})")
    say = flags.say(args)
    model = fit_surrogate(encoder, images, cfg, log=(lambda line: say("  " + line)) if say else None)
    model.save(out)
    flags.record_command(args, out, cfg, spec=args.spec)
    last = model.fit_info["history"][-1]
    val = (f"val PSNR {last['val_psnr']:.2f} dB, field residual ||f(z)-z||^2/||z||^2 {last['val_residual']:.4f}"
           if "val_psnr" in last else f"train mse {last['train_mse']:.5f}")
    flags.emit(args, f"surrogate saved in {out} (load with probe.load({str(out)!r})); {val}",
               {"command": "fit-decoder", "out": str(out), "spec": args.spec, "last": last})
    flags.write_report(args, out)
    return 0
