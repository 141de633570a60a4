"""TAEF2 encode+decode time and round-trip PSNR on the real sample photos.

    python benchmarks/taef2_roundtrip.py [--device cpu] [--dtype fp32] [--repeats 5]

Writes benchmarks/results/taef2_roundtrip.md (the command, the machine, one row per
resolution: median seconds per image for encode+decode, and PSNR on china.jpg and on
the mean of the ten bundled photos). Needs ../shared/models/taef2.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PROBE_SHARED", REPO.parent / "shared"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(SHARED / "models" / "taef2"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--resolutions", default="64,256")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "taef2_roundtrip.md"))
    args = p.parse_args(argv)

    import probe
    from probe.images import PHOTOS, psnr, sample_photos

    m = probe.load(args.model, device=args.device, dtype=args.dtype)
    sync = (lambda: torch.cuda.synchronize(m.device)) if m.device.type == "cuda" else (lambda: None)
    rows = []
    for r in (int(s) for s in args.resolutions.split(",")):
        xs = sample_photos(len(PHOTOS), r).to(m.device)
        x = xs[:1]
        with torch.no_grad():
            m.decode(m.encode(x))  # warm-up: kernel selection, allocator
            times = []
            for _ in range(args.repeats):
                sync()
                t0 = time.perf_counter()
                y = m.decode(m.encode(x))
                sync()
                times.append(time.perf_counter() - t0)
            ys = torch.cat([m.decode(m.encode(xi[None])) for xi in xs])
        p_china = float(psnr(y.float().clamp(0, 1), x.float())[0])
        p_all = float(psnr(ys.float().clamp(0, 1), xs.float()).mean())
        rows.append((r, statistics.median(times), min(times), p_china, p_all))
        print(f"{r} px: median {rows[-1][1]:.3f} s, PSNR china {p_china:.2f} dB, mean of {len(xs)} {p_all:.2f} dB")

    env = "".join(f"{k}={os.environ[k]} " for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ)
    lines = [
        "# TAEF2 round trip (encode + decode, batch 1)", "",
        f"Command: `{env}{' '.join([Path(sys.executable).name, *sys.argv])}`  ",
        f"Load average when run: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (shared CPU: compare like with like)  ",
        f"Machine: {platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {m.device}, dtype {str(m.dtype).replace('torch.', '')}  ",
        f"Model: {args.model} ({m.n_parameters():,} parameters)", "",
        "| resolution | latent | median s | min s | PSNR china.jpg (dB) | mean PSNR, 10 photos (dB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r, med, lo, pc, pa in rows:
        lines.append(f"| {r} | {' x '.join(map(str, m.latent_shape(r)))} | {med:.3f} | {lo:.3f} | {pc:.2f} | {pa:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
