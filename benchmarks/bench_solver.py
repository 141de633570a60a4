"""Plain iteration vs the accelerated solvers on the same seeds: wall, f-evaluations + JVPs, attractors, basins.

    python benchmarks/bench_solver.py [--device cpu] [--threads 1] [--repeats 3]
        [--cases fmnist-k16,cifar10-k64,mem500-k512,convae-k128,contraction]

Every solver runs through ``probe.field.find_attractors`` (the stability check and, for the
accelerated solvers, the re-verification of every fixed point included). Plain iteration is
the reference and the definition of a basin. Per solver: wall and CPU seconds, f-evaluations
and JVPs, fixed points found (stable), *attractor agreement* (the same count, and every
plain attractor reached by some converged seed within cosine 0.9999, and vice versa) and
*basin agreement* (share of seeds whose end point is within cosine 0.9999 of plain's).
The solvers run in ``--repeats`` interleaved rounds (plain, anderson, ..., plain, anderson, ...);
the table gives the median wall and CPU seconds over the rounds.
Cases: fmnist-k16 (the bundled conv AE, 64 encoded Fashion-MNIST test images: median 249
plain steps), cifar10-k64 (a conv AE with k = 64 on 32 px CIFAR-10, 64 encoded test images:
median 224 plain steps; trained beforehand by ``probe train --dataset cifar10 --width 16
--bottleneck 64 --epochs 15 --n-train 5000 --n-test 500 --out runs/solver-cifar10-k64``,
skipped when that folder is absent), mem500-k512 (the memorization family at k = 512, 500
epochs on 1,000 MNIST images, from the sweep's folder MEM500 when its training has finished,
else skipped), convae-k128 (a conv AE with k = 128 trained here for 5 epochs on 10,000
Fashion-MNIST images, ~1 minute of CPU), contraction (tanh(Az + b), rate 0.98, 64 dims).
``newton`` is probe/field/solvers/newton.py: plain steps until the step ratio settled, then
safeguarded Newton on forward-difference JVPs (each JVP is one f call at a perturbed point,
counted as a JVP, not as an f-evaluation). ``anderson relax 1.8`` and ``anderson jumps 4`` are
experiments, not config options: over-relaxed steps z + 1.8 (f(z) - z) between mixed steps, and
projective jumps f(z) + 4 (f(z) - z) through the transient where the last two differences have
cosine > 0.999 (anderson.EXTRAPOLATE, with memory 10 and 10 calm steps before mixing).
Writes benchmarks/results/solver_<device>.md.
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

SOLVERS = ("plain", "anderson", "anderson relax 1.8", "anderson jumps 4", "mixed", "newton")
CASES = ("fmnist-k16", "cifar10-k64", "mem500-k512", "convae-k128", "contraction")
CIFAR = Path("runs/solver-cifar10-k64")
MEM500 = Path("/work/sweep/runs")  #: the sweep's mem500-mnist-*/k512 (read only)
#: anderson module settings per experiment (restored after each run)
EXPERIMENTS: dict[str, dict[str, float]] = {"anderson relax 1.8": {"RELAX": 1.8},
                                            "anderson jumps 4": {"EXTRAPOLATE": 4.0, "MEMORY": 10, "CALM": 10}}


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


def finished(folder: Path, epochs: int = 500) -> bool:
    """A trained model whose train.json records ``epochs`` epochs of history."""
    import json

    try:
        return len(json.loads((folder / "train.json").read_text())["history"]) >= epochs
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build(case: str, device: str, work: Path):
    """(map, seeds), or (None, the reason the case is skipped)."""
    import probe

    if case == "contraction":
        return contraction(64, device)
    if case == "fmnist-k16":
        m = probe.load("builtin:fmnist-k16", device=device)
    elif case == "cifar10-k64":
        if not (CIFAR / "train.json").exists():
            return None, f"no model in {CIFAR} (train it with the command in this script's docstring)"
        m = probe.load(str(CIFAR), device=device)
        return m, encoded(m, "cifar10", device)
    elif case == "mem500-k512":
        done = sorted(d for d in MEM500.glob("mem500-mnist-*/k512") if finished(d))
        if not done:
            return None, f"no finished 500-epoch k=512 model under {MEM500}/mem500-mnist-*/k512"
        m = probe.load(str(done[0]), device=device)
        return m, encoded(m, "mnist", device)
    else:
        from probe.train import TrainConfig, train

        cfg = TrainConfig(dataset="fashion-mnist", n_train=10000, n_test=500, width=16, bottleneck=128, epochs=5,
                          keep_checkpoints=False, device=device)
        train(cfg, work / "convae-k128", log=None)
        m = probe.load(str(work / "convae-k128"), device=device)
    return m, encoded(m, "fashion-mnist", device)


def encoded(m, dataset: str, device: str, n: int = 64) -> torch.Tensor:
    from probe.data.sets import load_images

    x = load_images(dataset, split="test", n=n).images.float() / 255
    with torch.no_grad():
        return m.encode(x.to(device)).cpu()


def run(m, z0, solver: str):
    from probe.field import find_attractors
    from probe.field.solvers import anderson

    settings = EXPERIMENTS.get(solver, {})
    saved = {k: getattr(anderson, k) for k in settings}
    if settings:
        solver = "anderson"
        for k, v in settings.items():
            setattr(anderson, k, v)
    try:
        kw: dict[str, Any] = {"dtype": "bf16"} if solver == "mixed" else {}
        w, c = time.perf_counter(), time.process_time()
        r = find_attractors(m, seeds=z0, solver=solver, checkpoint_every=0, **kw)
        return r, time.perf_counter() - w, time.process_time() - c
    finally:
        for k, v in saved.items():
            setattr(anderson, k, v)


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
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds of all solvers; medians are kept")
    p.add_argument("--solvers", default=",".join(SOLVERS))
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
            if m is None:
                print(f"{case}: skipped, {z0}", file=sys.stderr)
                lines += [f"## {case}: skipped", "", f"{z0}.", ""]
                continue
            solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
            rows, ref = [], None
            for solver in solvers:  # warm-up (first calls, JVP choice) outside the timings
                run(m, z0[:4], solver)
            runs: dict[str, list] = {s: [] for s in solvers}
            for _ in range(args.repeats):  # interleaved rounds: load changes on the shared CPU hit every solver
                for solver in solvers:
                    runs[solver].append(run(m, z0, solver))
            for solver in solvers:
                r = runs[solver][0][0]
                wall = float(torch.tensor([x[1] for x in runs[solver]]).median())
                cpu = float(torch.tensor([x[2] for x in runs[solver]]).median())
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
                      f"{plain.status_counts()['converged']} of {len(z0)} converged; wall and CPU seconds: medians "
                      f"of {args.repeats} interleaved rounds.", "",
                      "| solver | wall s | CPU s | speed-up wall / CPU | f-evals + JVPs | fewer evals | median steps | "
                      "fixed points (stable) | same attractors (worst cosine) | basin agreement | seeds redone by plain |",
                      "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|", *rows, ""]
    lines += ["Reading: `anderson` waits for 20 falling residuals before mixing, so it accelerates only the linear "
              "tail; on fmnist-k16 46% of plain's steps lie in the transient before that tail (saddle passages), "
              "which caps any tail-only method near 2x there. Over-relaxation accelerates the transient too, but "
              "moves some seeds across basin borders and can then miss an attractor with a small basin (and "
              "diverges where J_f has eigenvalues below 1 - 2/1.8, as on the contraction). `mixed` computes these "
              "small conv AEs in bf16, which this CPU does not run faster than fp32 (bench_step: diffusers models "
              "with channels_last do gain 2.9-4x in bf16 here); its case is a GPU.", "",
              "`newton` takes plain steps until a seed's step ratio settled (20 falling residuals, the ratio within "
              "0.01 from step to step, or 40 steps of a falling trend for seeds whose ratio oscillates), then "
              "Newton steps: on a latent of <= 32 dimensions the whole Jacobian by forward differences in one "
              "batched f call (16 JVPs on fmnist-k16), then chord steps with it; above 32 (convae-k128, the "
              "contraction) GMRES on an Arnoldi basis built one JVP per engine step. A step is refused when J_f "
              "(or its Ritz values) has an eigenvalue of modulus >= 1, when it reaches beyond 4x the distance "
              "plain iteration is still expected to travel, or when the residual does not halve; every end point "
              "is re-checked by a plain step and by the spectral radius. It reaches plain's attractors with every "
              "seed in its plain basin on all three cases, and on fmnist-k16 the last seed stops at engine step "
              "295 instead of 409 (median 148 instead of 249), but the f-evaluations before the tail stay: "
              "10445 f-evaluations + 1936 JVPs against plain's 15589 (1.26x fewer in all; anderson 1.50x). On "
              "this CPU a step costs about what its f-evaluations cost (0.44 ms for 1 seed, 2.1 ms for 16, 6.8 ms "
              "for 64 on fmnist-k16: nearly proportional above 16 seeds), so CPU time follows the evaluations: "
              "newton 1.2-1.3x, anderson 1.3-1.4x (wall times vary more than CPU times here: the 2 cores are "
              "shared). On the 128- and 64-dimensional cases newton's one-JVP-a-step Arnoldi costs more than it "
              "saves (0.3-0.85x).", "",
              "The 1/3-of-plain target is not reached, and no method that keeps plain steps through the transient "
              "can reach it on fmnist-k16: traced plain iterations show the slowest seeds entering their linear "
              "tail only after 200-270 of their ~400 steps (the two slowest never settle: a complex pair near the "
              "unit circle), and Newton started earlier, even with the exact Jacobian and a line search, mostly "
              "fails or lands on another fixed point (a saddle or another basin) from points where J_f has "
              "spectral radius > 1. With plain steps through the transient, at most ~2x fewer evaluations are "
              "possible there; 1/3 would need an accelerated transient (e.g. extrapolating saddle passages along "
              "J_f), which may move seeds across basin borders.", ""]
    out = Path(args.out) if args.out else RESULTS / f"solver_{device_slug(args.device)}.md"
    from probe.io import save_text

    save_text(out, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
