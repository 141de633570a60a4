"""Plain iteration vs the accelerated solvers on the same seeds: wall, f-evaluations + JVPs, attractors, basins.

    python benchmarks/bench_solver.py [--device cpu] [--threads 1] [--cases fmnist-k16,convae-k128,contraction]

Every solver runs through ``probe.field.find_attractors`` (the stability check and, for the
accelerated solvers, the re-verification of every fixed point included). Plain iteration is
the reference and the definition of a basin. Per solver: wall and CPU seconds, f-evaluations
and JVPs, fixed points found (stable), *attractor agreement* (the same count, and every
plain attractor reached by some converged seed within cosine 0.9999, and vice versa) and
*basin agreement* (share of seeds whose end point is within cosine 0.9999 of plain's).
Each solver runs ``--repeats`` times; the table keeps its fastest wall and CPU seconds.
Cases: fmnist-k16 (the bundled conv AE, 64 encoded Fashion-MNIST test images: median 249
plain steps), convae-k128 (a conv AE with k = 128 trained here for 5 epochs on 10,000
Fashion-MNIST images, ~1 minute of CPU), contraction (tanh(Az + b), rate 0.98, 64 dims).
``anderson relax 1.8`` is an experiment, not a config option: over-relaxed steps
z + 1.8 (f(z) - z) between mixed steps. Writes benchmarks/results/solver_<device>.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import RESULTS, command_line, device_slug, environment  # noqa: E402

SOLVERS = ("plain", "anderson", "anderson relax 1.8", "mixed", "newton")
CASES = ("fmnist-k16", "convae-k128", "contraction")


def fashion(n: int) -> torch.Tensor:
    from probe.data.sets import load_images

    return load_images("fashion-mnist", split="test", n=n).images.float() / 255


def contraction(dim: int, device: str):
    """f(z) = tanh(A z + b), A symmetric with eigenvalues in [-0.5, 0.98]: one attractor, rate ~0.98."""
    import probe

    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    a = ((q * torch.linspace(-0.5, 0.98, dim)) @ q.T).to(device)
    b = (0.1 * torch.randn(dim, generator=g)).to(device)
    lin = torch.nn.Linear(dim, dim).to(device)
    with torch.no_grad():
        lin.weight.copy_(a)
        lin.bias.copy_(b)
    act = torch.nn.Sequential(lin, torch.nn.Tanh())
    m = probe.wrap(act, torch.nn.Identity(), (dim,), check_inputs=False, modules=[act],
                   name=f"tanh(Az+b), dim {dim}, eigenvalues of A in [-0.5, 0.98]", device=device)
    m.field_defaults = {"tol": 1e-6, "max_steps": 3000}
    return m, torch.randn(64, dim, generator=torch.Generator().manual_seed(1))


def build(case: str, device: str, work: Path):
    import probe

    if case == "contraction":
        return contraction(64, device)
    if case == "fmnist-k16":
        m = probe.load("builtin:fmnist-k16", device=device)
    else:
        from probe.train import TrainConfig, train

        cfg = TrainConfig(dataset="fashion-mnist", n_train=10000, n_test=500, width=16, bottleneck=128, epochs=5,
                          keep_checkpoints=False, device=device)
        train(cfg, work / "convae-k128", log=None)
        m = probe.load(str(work / "convae-k128"), device=device)
    with torch.no_grad():
        z0 = m.encode(fashion(64).to(device)).cpu()
    return m, z0


def run(m, z0, solver: str):
    from probe.field import find_attractors
    from probe.field.solvers import anderson

    relax = anderson.RELAX
    if solver == "anderson relax 1.8":
        anderson.RELAX, solver = 1.8, "anderson"
    try:
        kw: dict[str, Any] = {"dtype": "bf16"} if solver == "mixed" else {}
        w, c = time.perf_counter(), time.process_time()
        r = find_attractors(m, seeds=z0, solver=solver, checkpoint_every=0, **kw)
        return r, time.perf_counter() - w, time.process_time() - c
    finally:
        anderson.RELAX = relax


def unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.flatten(1).double(), dim=1)


def agreement(ref, r) -> tuple[bool, float, float]:
    """(same attractors, worst cosine between the two sets' attractors and the other's end points, basin agreement)."""
    basin = float(((unit(ref.end_points) * unit(r.end_points)).sum(1) > 0.9999).double().mean())
    if not len(ref) or not len(r):
        return len(ref) == len(r), float("nan"), basin
    ends_r, ends_ref = unit(r.end_points[r.converged]), unit(ref.end_points[ref.converged])
    worst = min(float((unit(ref.points) @ ends_r.T).max(1).values.min()),
                float((unit(r.points) @ ends_ref.T).max(1).values.min()))
    same = len(ref) == len(r) and worst >= 0.9999 and bool(r.stable.all()) == bool(ref.stable.all())
    return same, worst, basin


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="accepted for run_all; the cases are CPU-sized already")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--repeats", type=int, default=2, help="runs per solver; the fastest wall and CPU times are kept")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    head = environment(args.device, args.threads)
    lines = ["# Solvers: plain iteration vs accelerated, on the same seeds", "", *head,
             f"- command: `{command_line()}`",
             "- GPU: " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
                          "none lent in this session (CPU only); the CPU is shared with other jobs, so CPU "
                          "seconds are given beside wall seconds"), ""]
    with tempfile.TemporaryDirectory() as tmp:
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            m, z0 = build(case, args.device, Path(tmp))
            rows, ref = [], None
            for solver in SOLVERS:  # warm-up (first calls, JVP choice) outside the timings
                run(m, z0[:4], solver)
            for solver in SOLVERS:
                runs = [run(m, z0, solver) for _ in range(args.repeats)]  # the fastest: the CPU is shared
                r, wall, cpu = runs[0][0], min(x[1] for x in runs), min(x[2] for x in runs)
                ref = ref or (r, wall, cpu)
                same, worst, basin = agreement(ref[0], r)
                conv = r.steps[r.converged].float()
                rows.append(f"| {solver} | {wall:.2f} | {cpu:.2f} | {ref[1] / wall:.2f}x / {ref[2] / cpu:.2f}x | "
                            f"{r.timing['f_evals']} + {r.timing['jvps']} | "
                            f"{(ref[0].timing['f_evals'] + ref[0].timing['jvps']) / (r.timing['f_evals'] + r.timing['jvps']):.2f}x | "
                            f"{float(conv.median()) if len(conv) else float('nan'):.0f} | {len(r)} ({int(r.stable.sum())}) | "
                            f"{'yes' if same else 'no'} ({worst:.6f}) | {100 * basin:.1f}% | {r.timing['redone']} |")
                print(f"{case} {solver}: {rows[-1]}", file=sys.stderr)
            assert ref is not None
            plain = ref[0]
            lines += [f"## {case}: {m.name}", "",
                      f"{len(z0)} seeds, latent {'x'.join(map(str, z0.shape[1:]))}, tol {plain.config['tol']:g}, "
                      f"max_steps {plain.config['max_steps']}, batch {len(z0)}; plain: "
                      f"{plain.status_counts()['converged']} of {len(z0)} converged.", "",
                      "| solver | wall s | CPU s | speed-up wall / CPU | f-evals + JVPs | fewer evals | median steps | "
                      "fixed points (stable) | same attractors (worst cosine) | basin agreement | seeds redone by plain |",
                      "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|", *rows, ""]
    lines += ["Reading: `anderson` waits for 20 falling residuals before mixing, so it accelerates only the linear "
              "tail; on fmnist-k16 46% of plain's steps lie in the transient before that tail (saddle passages), "
              "which caps any tail-only method near 2x there. Over-relaxation accelerates the transient too, but "
              "moves some seeds across basin borders and can then miss an attractor with a small basin (and "
              "diverges where J_f has eigenvalues below 1 - 2/1.8, as on the contraction). Wall time follows the "
              "slowest seeds' step count more than the f-evaluations: a batch of a few seeds costs nearly as much "
              "per step as a full one here (fmnist-k16: 409 plain steps for the last seed, 297 with anderson), so "
              "1.5x fewer f-evaluations give only ~1.1x in time. `mixed` computes these small conv AEs in bf16, "
              "which this CPU does not run faster than fp32 (bench_step: diffusers models with channels_last do "
              "gain 2.9-4x in bf16 here); its case is a GPU. The 1/3-of-plain target was not reached on any "
              "trained model here.", ""]
    out = Path(args.out) if args.out else RESULTS / f"solver_{device_slug(args.device)}.md"
    from probe.io import save_text

    save_text(out, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
