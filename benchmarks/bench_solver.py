"""Steps and wall time to converge: plain iteration vs safeguarded Anderson, on the same seeds.

    python benchmarks/bench_solver.py                      # GPU: SD-VAE config at 256 px, many seeds
    python benchmarks/bench_solver.py --device cpu --quick # CPU: small sizes, minutes

Maps: a wrapped contraction f(z) = tanh(A z + b) with ||A||_2 = 0.98 (one attractor); the
trained conv autoencoders found under runs/ and builtin: (largest bottleneck first); the
Stable Diffusion VAE config with random weights (may not contract; reported as found).
Plain iteration is the reference. Every solver's end points go through the stability
check (spectral radius of J_f < 1, merged by cosine > 0.99 first), and Anderson's are
compared seed by seed with plain iteration's (cosine > 0.99) and continued by plain
steps to see whether they stay. Section 2 checks bf16 against fp32 on the trained
autoencoders (same attractor count, cosine > 0.999). Writes
benchmarks/results/solver_<device>.md; prints the markdown.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_all import RESULTS, command_line, default_device, device_slug, environment  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


# -- maps ---------------------------------------------------------------------------

def contraction(dim: int, device: str):
    """f(z) = tanh(A z + b), A symmetric with eigenvalues spread over [-0.5, 0.98]: one attractor,
    reached at a rate near 0.98 per step (tanh' <= 1 keeps it a contraction everywhere)."""
    import probe

    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    a = ((q * torch.linspace(-0.5, 0.98, dim)) @ q.T).to(device)
    b = (0.1 * torch.randn(dim, generator=g)).to(device)
    m = probe.wrap(lambda x: torch.tanh(x @ a.T + b), lambda z: z, (dim,), check_inputs=False,
                   name=f"tanh(Az+b), dim {dim}, eigenvalues of A in [-0.5, 0.98]", device=device)
    m.field_defaults = {"tol": 1e-6, "max_steps": 3000}
    return m


def trained_convaes(runs: Path, limit: int) -> list[tuple[str, Path | str]]:
    """Trained conv autoencoders, largest bottleneck (then most epochs) first."""
    from probe.maps.registry import BUILTIN_DIR, builtin_names

    found = []
    folders = [p.parent for p in sorted(runs.rglob("probe_map.json")) if "checkpoints" not in p.parts] \
        if runs.is_dir() else []
    folders += [BUILTIN_DIR / n for n in builtin_names()]
    for folder in folders:
        try:
            meta = json.loads((folder / "probe_map.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("adapter") == "convae":
            k = int(meta.get("config", {}).get("bottleneck", 0))
            spec = f"builtin:{folder.name}" if folder.parent == BUILTIN_DIR else str(folder)
            name = str(folder.relative_to(runs)) if folder.is_relative_to(runs) else folder.name
            found.append((k, int(meta.get("epochs", 0) or 0), name, spec))
    found.sort(key=lambda t: (-t[0], -t[1], t[2]))
    return [(f"{name} (k={k}, {ep} ep)", spec) for k, ep, name, spec in found[:limit]]


def sd_vae(device: str):
    import diffusers

    from probe.maps.diffusers_ae import DiffusersMap

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_step import SD_VAE

    torch.manual_seed(0)
    return DiffusersMap(diffusers.AutoencoderKL(**SD_VAE).eval(), source="SD-VAE config, random init").to(device).eval()


# -- one comparison -----------------------------------------------------------------

def cos(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def compare(m, z0, tol, max_steps, batch, drift_steps: int, power_iters: int) -> list[dict]:
    from probe.field.anderson import check_end_points, solve, solve_stable
    from probe.field.iterate import iterate
    from probe.field.merge import merge_end_points

    rows, plain = [], None
    from probe.field.stability import spectral_radius

    spectral_radius(m, z0[:1], n_iter=2)  # pay imports and first-call costs outside the timings
    runs = [("plain iteration", lambda: iterate(m, z0, tol=tol, max_steps=max_steps, batch_size=batch)),
            ("Anderson(5), naive", lambda: solve(m, z0, tol, max_steps, safeguard=False, calm=0, batch_size=batch)),
            ("Anderson(5), safeguarded", lambda: solve(m, z0, tol, max_steps, batch_size=batch)),
            ("Anderson(5), safeguarded + redo unstable", lambda: solve_stable(m, z0, tol, max_steps, n_iter=power_iters,
                                                                              batch_size=batch))]
    for name, fn in runs:
        t0 = time.perf_counter()
        tr = fn()
        t_solve = time.perf_counter() - t0
        t0 = time.perf_counter()
        rho = tr.spectral_radius if getattr(tr, "spectral_radius", None) is not None else \
            check_end_points(m, tr, n_iter=power_iters)
        t_check = time.perf_counter() - t0 if getattr(tr, "spectral_radius", None) is None else 0.0
        c = tr.converged
        stable = c & (rho < 1)
        k = len(merge_end_points(tr.z[stable])[1]) if bool(stable.any()) else 0
        row = {"solver": name, "seeds": len(z0), "converged": float(c.float().mean()),
               "steps_median": float(tr.steps[c].float().median()) if bool(c.any()) else float("nan"),
               "steps_mean": float(tr.steps[c].float().mean()) if bool(c.any()) else float("nan"),
               "n_evals": int(tr.n_evals), "solve_s": t_solve, "check_s": t_check,
               "rel_step": float((tr.residuals.sqrt() / tr.z.flatten(1).norm(dim=1).clamp_min(1e-30)).nanmedian()),
               "stable": float(stable.sum() / c.sum()) if bool(c.any()) else float("nan"), "attractors": k,
               "refused": int(tr.rejected.sum()) if getattr(tr, "rejected", None) is not None else 0,
               "redone": int(tr.redone.sum()) if getattr(tr, "redone", None) is not None else 0}
        if plain is None:
            plain = tr
            row["agree"] = 1.0
        else:
            both = c & plain.converged
            row["agree"] = float((cos(tr.z[both], plain.z[both]) > 0.99).float().mean()) if bool(both.any()) else float("nan")
        row["stay"] = float("nan")
        if drift_steps and bool(c.any()):
            more = iterate(m, tr.z[c], tol=1e-30, max_steps=drift_steps, max_period=1, batch_size=batch)
            row["stay"] = float((cos(more.z, tr.z[c]) > 0.99).float().mean())
        rows.append(row)
        if plain is tr and not bool(c.any()):  # nothing converged: say how the map behaves there
            from probe.field.stability import spectral_radius

            row["rho_end"] = spectral_radius(m, tr.z[:2], n_iter=10).tolist()
    return rows


def table(title: str, setting: str, rows: list[dict]) -> list[str]:
    base = rows[0]["solve_s"] + rows[0]["check_s"]
    out = [f"#### {title}", "", setting, "",
           "| solver | converged | steps median / mean | f-evals | solve s | check s | x plain (time) | "
           "stable | attractors | agree w/ plain | stay under plain steps | refused | redone | last rel. step |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        total = r["solve_s"] + r["check_s"]
        out.append(f"| {r['solver']} | {100 * r['converged']:.0f}% | {r['steps_median']:.0f} / {r['steps_mean']:.0f} | "
                   f"{r['n_evals']} | {r['solve_s']:.1f} | {r['check_s']:.1f} | {base / total:.2f} | "
                   f"{100 * r['stable']:.0f}% | {r['attractors']} | {100 * r['agree']:.0f}% | "
                   f"{100 * r['stay']:.0f}% | {r['refused']} | {r['redone']} | {r['rel_step']:.2g} |")
    return out + [""]


# -- bf16 vs fp32 ---------------------------------------------------------------------

def bf16_check(m, z0, tol, max_steps, batch) -> list[str]:
    from probe.field.iterate import iterate
    from probe.field.merge import merge_end_points
    from probe.field.speed import fast_map, iterate_low_precision

    def attractors(tr):
        c = tr.converged
        if not bool(c.any()):
            return torch.zeros(0, tr.z.shape[1:].numel())
        return tr.z[c][merge_end_points(tr.z[c])[1]].flatten(1)

    def matched(a, b) -> str:
        if len(a) == 0 or len(b) == 0:
            return "-"
        s = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T
        return f"{float(s.max(1).values.min()):.5f} / {float(s.max(0).values.min()):.5f}"

    out = []
    t0 = time.perf_counter()
    ref = iterate(m, z0, tol=tol, max_steps=max_steps, batch_size=batch)
    runs = [("fp32 (reference)", ref, time.perf_counter() - t0, 0)]
    for name, fn in [("bf16, paper tol", lambda: iterate(fast_map(m, "bf16"), z0, tol=tol, max_steps=max_steps,
                                                         batch_size=batch)),
                     ("bf16 then fp32 polish (plain)", lambda: iterate_low_precision(m, z0, "bf16", tol, max_steps,
                                                                                     batch_size=batch, polish="plain")),
                     ("bf16 then fp32 polish (Anderson)", lambda: iterate_low_precision(m, z0, "bf16", tol, max_steps,
                                                                                        batch_size=batch,
                                                                                        polish="anderson"))]:
        t0 = time.perf_counter()
        tr = fn()
        runs.append((name, tr, time.perf_counter() - t0, getattr(tr, "low_evals", tr.n_evals)))  # all bf16 if no stage 2
    a_ref = attractors(ref)
    for name, tr, sec, low in runs:
        a = attractors(tr)
        both = tr.converged & ref.converged
        c = cos(tr.z[both], ref.z[both])
        per_seed = f"{float(c.min()):.5f}; {100 * float((c > 0.99).float().mean()):.0f}%" if bool(both.any()) else "-"
        same = len(a) == len(a_ref) and matched(a, a_ref) != "-" and min(map(float, matched(a, a_ref).split(" / "))) > 0.999
        out.append(f"| {name} | {tr.status_counts()} | {len(a)} | {matched(a, a_ref)} | {per_seed} | "
                   f"{tr.n_evals} ({100 * low / max(1, tr.n_evals):.0f}% in bf16) | {sec:.1f} | "
                   f"{'yes' if same else 'no'} |")
    return out


def taef2_verdicts(folder: Path, device: str, gpu: bool) -> list[str]:
    """The dynamics verdict of find_attractors on the real TAEF2 weights, fp32 vs bf16 compute."""
    import probe
    from probe.field import find_attractors
    from probe.field.speed import fast_map

    m = probe.load(folder, device=device)
    res, n, steps = (256, 64, 1000) if gpu else (64, 4, 60)
    out = ["#### TAEF2 (real weights): dynamics verdict, fp32 vs bf16", "",
           f"{n} seeds, {res} px, max_steps {steps}, paper tol; a chaotic map: end points differ, the verdict must not", "",
           "| compute | verdict | seeds by status | s |", "|---|---|---|---|"]
    for name, mm in (("fp32", m), ("bf16 (fp32 state)", fast_map(m, "bf16"))):
        t0 = time.perf_counter()
        s = find_attractors(mm, n_seeds=n, resolution=res, max_steps=steps, probe_points=2, power_iters=10,
                            batch_size=n)
        out.append(f"| {name} | {s.diagnosis.line} | {s.status_counts()} | {time.perf_counter() - t0:.0f} |")
    return out + [""]


# -- main -------------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--quick", action="store_true", help="CPU-sized run")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None, help="seeds per map (default 128 quick, 1024 full)")
    p.add_argument("--runs", default=str(REPO / "runs"), help="folder with trained conv autoencoders")
    p.add_argument("--max-convae", type=int, default=2, help="how many trained conv autoencoders (largest first)")
    p.add_argument("--sd-resolution", type=int, default=None, help="SD-VAE config resolution (default 256 GPU, 32 CPU)")
    p.add_argument("--sd-seeds", type=int, default=None, help="SD-VAE seeds (default 4096 GPU, 2 CPU)")
    p.add_argument("--sd-max-steps", type=int, default=None, help="SD-VAE step budget (default the paper's 500 on GPU; 20 on CPU)")
    p.add_argument("--sections", default="contraction,convae,sd-vae,bf16,taef2")
    args = p.parse_args(argv)
    device = args.device or default_device()
    env = environment(device, args.threads)
    gpu = device.startswith("cuda")
    n = args.seeds or (128 if args.quick or not gpu else 1024)
    sections = set(args.sections.split(","))
    power = 20 if args.quick else 30
    from probe.field.seeds import gaussian_seeds

    lines = ["### Fixed-point solvers: plain iteration vs safeguarded Anderson", "", *env,
             f"- command: `{command_line()}`",
             "- same seeds (N(0, I), seed 0) for every solver; `steps` = f-evaluations per converged seed; "
             "`stable` = converged end points whose J_f has spectral radius < 1 (grouped by cosine > 0.99, "
             f"{power} JVPs each); `attractors` = stable groups; `agree` = cosine > 0.99 with plain iteration's "
             "end point of the same seed; `stay` = still within cosine 0.99 after more plain steps; `refused` = "
             "mixed steps the safeguard rejected; `redone` = unstable end points redone by plain iteration", ""]
    maps = []
    if "contraction" in sections:
        maps.append(("wrapped contraction", lambda: contraction(64, device), None, 200))
    if "convae" in sections or "bf16" in sections:
        convaes = trained_convaes(Path(args.runs), args.max_convae)
        if not convaes:
            lines += [f"- no trained conv autoencoder found under {args.runs} or builtin:", ""]
    if "convae" in sections:
        import probe

        for label, spec in convaes:
            maps.append((f"trained conv AE {label}", lambda s=spec: probe.load(s, device=device), None, 200))
    if "sd-vae" in sections:
        res = args.sd_resolution or (256 if gpu else 32)
        maps.append((f"SD-VAE config, random init, {res} px", lambda: sd_vae(device), res, 0 if not gpu else 50))
    for title, build, res, drift in maps:
        m = build()
        shape = tuple(m.latent_shape(res))
        d = m.field_defaults
        tol, max_steps = d["tol"], d["max_steps"]
        seeds = n
        if title.startswith("SD-VAE"):
            seeds = args.sd_seeds or (4096 if gpu else 2)
            max_steps = args.sd_max_steps or (max_steps if gpu else 20)
        z0 = gaussian_seeds(seeds, shape, 0)
        batch = min(seeds, 256) if not gpu else None
        print(f"{title}: {seeds} seeds, latent {shape}", file=sys.stderr, flush=True)
        rows = compare(m, z0, tol, max_steps, batch, drift, power)
        lines += table(title, f"{seeds} seeds, latent {shape}, tol {tol:g}, max_steps {max_steps}, "
                       f"drift check {drift} plain steps", rows)
        if "rho_end" in rows[0]:
            lines += [f"No seed converged. Spectral radius of J_f at plain iteration's last points: "
                      f"{', '.join(f'{v:.2f}' for v in rows[0]['rho_end'])} (> 1: not contracting there).", ""]
    if "bf16" in sections and convaes:
        import probe

        lines += ["#### bf16 vs fp32 on the trained conv autoencoders (issue 8: same count, cosine > 0.999)", "",
                  "| run | seeds by status | attractors (cos > 0.99 merge) | worst match to fp32 (each way) | "
                  "per-seed cosine to fp32: worst; share > 0.99 | f-evals | s | same as fp32 |", "|---|---|---|---|---|---|---|---|"]
        for label, spec in convaes:
            m = probe.load(spec, device=device)
            z0 = gaussian_seeds(n, m.latent_shape(), 0)
            lines += [f"| **{label}** | | | | | | | |"]
            lines += bf16_check(m, z0, m.field_defaults["tol"], m.field_defaults["max_steps"], min(n, 256))
        lines.append("")
    if "taef2" in sections:
        import os

        shared = Path(os.environ.get("PROBE_SHARED", REPO.parent / "shared")) / "models" / "taef2"
        if (shared / "taef2_encoder.pth").is_file():
            lines += taef2_verdicts(shared, device, gpu)
        else:
            lines += [f"- TAEF2 weights not found in {shared}: verdict check skipped", ""]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"solver_{device_slug(device)}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
