"""``probe info SPEC``: what a model spec loads to, and how well it reconstructs a real photo."""
from __future__ import annotations

import json
import time

from . import flags

__all__ = ["add_parser", "info", "run"]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="load a model and print its latent map facts and round-trip PSNR",
                              description="Load SPEC (local folder, Hub id, builtin:<name>, open_clip:...) and print "
                                          "its class, source, parameters, latent shape, dtype, device and the "
                                          "round-trip PSNR on a real photo (scikit-learn's china.jpg).")
    flags.add_model_flags(p, device_dtype=True)
    p.add_argument("--resolution", type=int, default=256, help="image size in pixels (default 256; "
                   "fixed-size models use their own)")
    p.add_argument("--sample", action="store_true", help="encode with a posterior sample instead of the mean")
    p.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    p.add_argument("--quiet", action="store_true", help="print nothing (the exit status says whether it loads)")
    p.set_defaults(func=run)


def info(spec: str, resolution: int = 256, device: str = "cpu", dtype: str = "fp32", sample: bool = False,
         **options) -> dict:
    """The facts ``probe info`` prints, as a dict."""
    import torch

    from ..errors import ProbeError
    from ..images import luminance, psnr, sample_photo
    from ..maps.registry import load

    if resolution < 1:
        raise ProbeError(f"--resolution must be positive, got {resolution}")
    options = {**options, **({"sample": True} if sample else {})}
    t0 = time.perf_counter()
    m = load(spec, device=device, dtype=dtype, **options)
    load_s = time.perf_counter() - t0
    res = m.image_size or resolution  # fixed-size models run at their native size
    x = sample_photo(res)
    if m.image_channels == 1:
        x = luminance(x)  # grayscale models are judged on the luminance they see
    with torch.no_grad():
        t0 = time.perf_counter()
        z = m.encode(x)
        y = m.decode(z)
        if m.device.type == "cuda":
            torch.cuda.synchronize(m.device)
        roundtrip_s = time.perf_counter() - t0
    facts = m.describe()
    return {
        "spec": str(spec), "name": m.name, "class": facts.get("diffusers_class", type(m).__name__),
        "source": facts.get("source", str(spec)), "parameters": m.n_parameters(),
        "resolution": res, "latent_shape": list(m.latent_shape(res)), "encoded_shape": list(z.shape[1:]),
        "latent_range": [float(z.min()), float(z.max())], "dtype": str(m.dtype).replace("torch.", ""),
        "device": str(m.device), "image_channels": m.image_channels, "sample": sample,
        "psnr_db": float(psnr(y.float().clamp(0, 1), x)[0]), "load_s": round(load_s, 3),
        "roundtrip_s": round(roundtrip_s, 3), "field_defaults": dict(m.field_defaults), "describe": facts,
    }


def run(args) -> int:
    options = {k: v for k, v in {"model_args": flags.model_args(args.model_arg) or None, "image_size": args.image_size,
                                 "channels": args.channels}.items() if v is not None}
    facts = info(args.spec, args.resolution, args.device or "cpu", args.dtype or "fp32", args.sample, **options)
    if args.quiet:
        return 0
    if args.json:
        from ..io import to_jsonable

        print(json.dumps(to_jsonable(facts), indent=2))
        return 0
    shape = " x ".join(str(s) for s in facts["latent_shape"])
    lo, hi = facts["latent_range"]
    rows = [
        ("model", facts["name"]),
        ("class", facts["class"]),
        ("source", facts["source"]),
        ("parameters", f"{facts['parameters']:,}"),
        ("latent shape", f"{shape} at {facts['resolution']} px  (values in [{lo:.3g}, {hi:.3g}])"),
        ("dtype", facts["dtype"]),
        ("device", facts["device"]),
        ("encoder", "posterior sample" if facts["sample"] else "deterministic / posterior mean"),
        ("round-trip PSNR", f"{facts['psnr_db']:.2f} dB on china.jpg at {facts['resolution']} px"
                            + (" (luminance)" if facts["image_channels"] == 1 else "")
                            + f", {facts['roundtrip_s']:.2f} s"),
        ("field defaults", ", ".join(f"{k}={v}" for k, v in facts["field_defaults"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0
