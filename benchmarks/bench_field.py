"""f-evaluations per second of the latent map f(z) = E(D(z)): a plain loop against probe's engine.

    python benchmarks/bench_field.py [--device cpu] [--cases taef2-64,taef2-256,tiny-kl-64] [--seconds 30]

For each case, seeds N(0, I) are pushed through f in batches two ways: a plain ``for`` loop
of ``map.f`` (the floor), and ``probe.field.iterate`` with an unreachable tolerance, so every
seed runs the whole budget through the engine's bookkeeping (residuals, cycle checks,
per-step history). One f-evaluation = one latent through decode + encode. Writes
benchmarks/results/bench_field.md and .csv with the command, the machine and its load
average (the CPU is shared: compare rows taken under similar load). TAEF2 cases need
../shared/models/taef2 and are skipped without it.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PROBE_SHARED", REPO.parent / "shared"))
# case -> (resolution, batch): batches sized to keep a 256 px TAEF2 step within memory on a laptop
CASES = {"taef2-64": (64, 32), "taef2-256": (256, 4), "tiny-kl-64": (64, 32)}


def tiny_kl():
    """A small diffusers AutoencoderKL with random weights (the diffusers test recipe)."""
    from diffusers import AutoencoderKL

    from probe.maps.diffusers_ae import DiffusersMap

    torch.manual_seed(0)
    model = AutoencoderKL(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2,
                          up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, layers_per_block=1,
                          norm_num_groups=32, sample_size=64)
    return DiffusersMap(model.eval(), source="tiny random AutoencoderKL [32, 64]")


def build(case: str, device: str):
    import probe

    if case.startswith("taef2"):
        folder = SHARED / "models" / "taef2"
        if not (folder / "taef2_encoder.pth").is_file():
            return None
        return probe.load(folder, device=device)
    return tiny_kl().to(device)


def sync(m):
    if m.device.type == "cuda":
        torch.cuda.synchronize(m.device)


@torch.no_grad()
def plain_loop(m, z, seconds: float) -> tuple[float, int]:
    m.f(z)  # warm-up
    sync(m)
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < seconds:
        z = m.f(z)
        n += 1
    sync(m)
    return len(z) * n / (time.perf_counter() - t0), n


def engine(m, z, seconds: float, per_step: float) -> tuple[float, int]:
    from probe.field import iterate

    steps = max(2, int(seconds / per_step))
    tr = iterate(m, z, tol=1e-300, max_steps=steps, batch_size=len(z))
    return tr.evals_per_second, steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--seconds", type=float, default=30.0, help="time per measurement")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_field"))
    args = p.parse_args(argv)
    load0 = os.getloadavg()
    rows = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; known: {', '.join(CASES)}")
        m = build(case, args.device)
        if m is None:
            print(f"{case}: skipped (no weights)", file=sys.stderr)
            continue
        res, batch = CASES[case]
        shape = m.latent_shape(res)
        z = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).to(m.device, m.dtype)
        plain, reps = plain_loop(m, z, args.seconds)
        eng, steps = engine(m, z, args.seconds, batch / plain)
        rows.append({"case": case, "model": m.name, "resolution": res, "latent": "x".join(map(str, shape)),
                     "batch": batch, "plain_evals_per_s": round(plain, 2), "plain_steps": reps,
                     "engine_evals_per_s": round(eng, 2), "engine_steps": steps,
                     "engine_vs_plain": round(eng / plain, 3)})
        print(rows[-1], file=sys.stderr)
    load1 = os.getloadavg()
    write(Path(args.out), rows, args, load0, load1)
    return 0


def write(out: Path, rows: list[dict], args, load0, load1) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_field.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if rows:
        with open(out.with_suffix(".csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    lines = ["# f-evaluations per second: plain loop vs probe.field.iterate", "",
             f"Command: `{command.strip()}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, device {args.device}  ",
             f"Load average before / after: {', '.join(f'{x:.1f}' for x in load0)} / "
             f"{', '.join(f'{x:.1f}' for x in load1)} (shared CPU: compare rows taken under similar load)  ",
             f"One f-evaluation = one latent decoded and re-encoded; {args.seconds:g} s per measurement.", "",
             "| case | resolution | latent | batch | plain loop f-evals/s | engine f-evals/s | engine / plain |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['resolution']} | {r['latent']} | {r['batch']} | {r['plain_evals_per_s']} | "
                     f"{r['engine_evals_per_s']} | {r['engine_vs_plain']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
