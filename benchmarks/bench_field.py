"""Wall time of ``probe.field.find_attractors`` (plain solver, stability included) against a ten-line loop.

    python benchmarks/bench_field.py [--device cpu] [--cases fc-vae,fmnist-k16,tiny-kl-64,taef2-64,taef2-256]
                                     [--threads 1] [--repeats 2]

For each case the same seeds go through (a) a plain ``for`` loop of ``map.f`` with
per-sample freezing (a seed leaves the batch once ||f(z) - z||^2 < tol or at max_steps)
and (b) ``find_attractors(map, seeds=..., solver="plain")``: iteration with cycle
detection and history, then merging, the spectral radius of every fixed point and the
diagnosis. Both run side by side in one process, alternating, ``--repeats`` times; the
table keeps each side's fastest run (wall and CPU seconds) and their ratio. Cases:
fc-vae (a 784-400-20 MLP autoencoder trained here for a few seconds on Fashion-MNIST:
the cheap step), fmnist-k16 (the bundled 28 px conv AE, encoded Fashion-MNIST seeds),
tiny-kl-64 (a small random diffusers AutoencoderKL), taef2-64/256 (../shared/models/taef2,
skipped without it). Writes benchmarks/results/bench_field.md and .csv.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PROBE_SHARED", REPO.parent / "shared"))
#: case -> (seeds, batch, tol, max_steps, resolution): budgets sized to keep a case within about a minute here
CASES = {"fc-vae": (256, 256, 1e-6, 3000, None), "fmnist-k16": (64, 64, 1e-6, 3000, None),
         "tiny-kl-64": (16, 16, 1e-5, 20, 64), "taef2-64": (8, 8, 1e-5, 10, 64), "taef2-256": (4, 4, 1e-5, 4, 256)}


def fashion(n: int, split: str = "test") -> torch.Tensor:
    from probe.data.sets import load_images

    return load_images("fashion-mnist", split=split, n=n).images.float() / 255


def fc_vae(epochs: int = 3):
    """An FC autoencoder of the MNIST-VAE size (784-400-20-400-784), trained a few seconds on Fashion-MNIST."""
    from torch import nn

    import probe

    with torch.random.fork_rng():
        torch.manual_seed(0)
        enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 20))
        dec = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
        x = fashion(6000, "train")
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], 1e-3)
        for _ in range(epochs):
            for i in range(0, len(x), 128):
                loss = ((dec(enc(x[i:i + 128])) - x[i:i + 128]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
    return probe.wrap(enc.eval(), dec.eval(), (20,), image_channels=1, image_size=28, name="fc-ae 784-400-20",
                      modules=[enc, dec])


def tiny_kl():
    """A small diffusers AutoencoderKL with random weights (the diffusers test recipe)."""
    from diffusers import AutoencoderKL

    from probe.maps.diffusers_ae import DiffusersMap

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoencoderKL(block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D"] * 2,
                              up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, layers_per_block=1,
                              norm_num_groups=32, sample_size=64)
    return DiffusersMap(model.eval(), source="tiny random AutoencoderKL [32, 64]")


def build(case: str, device: str):
    """(map, seeds) of a case, or None when its weights are not here."""
    import probe

    n, _, _, _, res = CASES[case]
    if case.startswith("taef2"):
        folder = SHARED / "models" / "taef2"
        if not (folder / "taef2_encoder.pth").is_file():
            return None
        m = probe.load(folder, device=device)
    elif case == "tiny-kl-64":
        m = tiny_kl().to(device)
    elif case == "fc-vae":
        m = fc_vae().to(device)
    else:
        m = probe.load("builtin:fmnist-k16", device=device)
    if case in ("fc-vae", "fmnist-k16"):
        with torch.no_grad():
            z0 = m.encode(fashion(n).to(device)).cpu()
    else:
        z0 = torch.randn(n, *m.latent_shape(res), generator=torch.Generator().manual_seed(0))
    return m, z0


def sync(m):
    if m.device.type == "cuda":
        torch.cuda.synchronize(m.device)


@torch.no_grad()
def plain_loop(m, z0, tol, max_steps, batch):
    """The baseline: iterate, freeze each seed when its step is below tol (ten lines)."""
    end, steps = z0.clone(), torch.zeros(len(z0), dtype=torch.long)
    for lo in range(0, len(z0), batch):
        idx = torch.arange(lo, min(lo + batch, len(z0)))
        z = z0[idx].to(m.device, m.dtype)
        for t in range(max_steps):
            fz = m.f(z)
            done = ((fz - z).flatten(1).pow(2).sum(1) < tol) | (t + 1 == max_steps)
            end[idx[done]], steps[idx[done]] = fz[done].cpu(), t + 1
            z, idx = fz[~done], idx[~done]
            if len(z) == 0:
                break
    return end, steps


def timed(fn):
    sync_t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - sync_t0, time.process_time() - c0


def measure(case: str, m, z0, repeats: int) -> dict:
    from probe.field import find_attractors

    n, batch, tol, max_steps, res = CASES[case]
    loops, engines = [], []
    for _ in range(repeats):
        (end, steps), w, c = timed(lambda: plain_loop(m, z0, tol, max_steps, batch))
        sync(m)
        loops.append((w, c))
        r, w, c = timed(lambda: find_attractors(m, seeds=z0, tol=tol, max_steps=max_steps, batch_size=batch,
                                                solver="plain", checkpoint_every=0, resolution=res))
        engines.append((w, c))
    lw, lc = min(loops)
    ew, ec = min(engines)
    agree = float(((r.end_points.float() - end.float()).flatten(1).norm(dim=1)
                   <= 1e-4 * end.float().flatten(1).norm(dim=1).clamp_min(1e-6)).float().mean())
    return {"case": case, "model": m.name, "latent": "x".join(map(str, z0.shape[1:])), "seeds": n, "batch": batch,
            "tol": tol, "max_steps": max_steps, "median_steps": float(steps.float().median()),
            "loop_wall_s": round(lw, 3), "loop_cpu_s": round(lc, 3), "engine_wall_s": round(ew, 3),
            "engine_cpu_s": round(ec, 3), "engine_vs_loop": round(ew / lw, 3),
            "iteration_s": round(r.timing["seconds"], 3), "check_s": round(r.timing["check_seconds"], 3),
            "f_evals": r.timing["f_evals"], "jvps": r.timing["jvps"], "attractors": len(r),
            "stable": int(r.stable.sum()), "verdict": r.verdict, "same_end_points": round(agree, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_field"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    rows = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; known: {', '.join(CASES)}")
        built = build(case, args.device)
        if built is None:
            print(f"{case}: skipped (no weights)", file=sys.stderr)
            continue
        rows.append(measure(case, *built, repeats=args.repeats if not case.startswith("taef2") else 1))
        print(rows[-1], file=sys.stderr)
    write(Path(args.out), rows, args, load0, os.getloadavg())
    return 0


def write(out: Path, rows: list[dict], args, load0, load1) -> None:
    from probe.io import save_csv, save_text

    command = "python benchmarks/bench_field.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if rows:
        save_csv(out.with_suffix(".csv"), rows)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none lent in this session"
    lines = ["# find_attractors (plain, stability included) vs a ten-line loop with per-sample freezing", "",
             f"Command: `{command.strip()}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, torch {torch.__version__}, "
             f"{args.threads} thread(s), device {args.device}; GPU: {gpu}  ",
             f"Load average before / after: {', '.join(f'{x:.1f}' for x in load0)} / "
             f"{', '.join(f'{x:.1f}' for x in load1)}  ",
             f"Each side's fastest of {args.repeats} alternating runs (TAEF2 cases: 1); wall and CPU seconds.", "",
             "| case | latent | seeds | batch | tol / max steps | median steps | loop wall s | loop CPU s | "
             "engine wall s | engine CPU s | engine / loop | of which check s | fixed points (stable) | verdict |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['latent']} | {r['seeds']} | {r['batch']} | {r['tol']:g} / {r['max_steps']} | "
                     f"{r['median_steps']:.0f} | {r['loop_wall_s']} | {r['loop_cpu_s']} | {r['engine_wall_s']} | "
                     f"{r['engine_cpu_s']} | **{r['engine_vs_loop']}** | {r['check_s']} | {r['attractors']} "
                     f"({r['stable']}) | {r['verdict']} |")
    save_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
