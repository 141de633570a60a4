"""OMP and lasso: probe.sparse against scikit-learn (and orthogonal-matching-pursuit-gpu if present).

Writes benchmarks/results/sparse_<device>.md (+ .csv) with the command line, versions, CPU
and thread count. Workloads: the paper's (4096 atoms x 4096 features, 205 non-zeros, 500
signals; METHOD.md section 4) and a smaller one (1024 x 1024, 51 non-zeros, 500 signals).

Times are wall-clock and process CPU seconds side by side in one run. On a shared machine
the wall clock also counts other people's processes; with one thread the CPU time does not,
so speed ratios are given on both. scikit-learn's default OMP (no Gram) on the paper's size
costs about 2 CPU-seconds per signal: it is timed on --sklearn-signals of them and scaled
(it codes each signal independently, so the cost is linear in the count; marked "scaled").

    python benchmarks/bench_sparse.py                 # both workloads, CPU, 1 thread
    python benchmarks/bench_sparse.py --quick         # small sizes, a minute
    python benchmarks/bench_sparse.py --device cuda   # when a GPU is lent
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probe.sparse import lasso, omp  # noqa: E402

OMPGPU = "orthogonal-matching-pursuit-gpu"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(fn, device: str):
    """(result, wall seconds, process CPU seconds)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - w, time.process_time() - c


def supports(codes: np.ndarray) -> list[frozenset]:
    return [frozenset(np.flatnonzero(c)) for c in codes]


def compare(codes: np.ndarray, ref: np.ndarray, d: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(fraction of identical supports, max relative residual difference, max relative
    difference of residual norms): a different support gives a different residual vector,
    the last says whether it fits worse."""
    same = float(np.mean([a == b for a, b in zip(supports(codes), supports(ref), strict=True)]))
    r, r_ref = y - codes @ d.T, y - ref @ d.T
    norm_ref = np.maximum(np.linalg.norm(r_ref, axis=1), 1e-300)
    rel = np.linalg.norm(r - r_ref, axis=1) / norm_ref
    fit = np.abs(np.linalg.norm(r, axis=1) - norm_ref) / norm_ref
    return same, float(rel.max()), float(fit.max())


def kkt(d: np.ndarray, y: np.ndarray, codes: np.ndarray, alpha: np.ndarray) -> float:
    """Largest relative violation of the lasso optimality conditions (fp64): correlations
    must equal alpha * sign on the support and stay within alpha off it."""
    corr = (y - codes @ d.T) @ d / d.shape[0]
    on = codes != 0
    off = np.max(np.where(on, 0, np.abs(corr)) / alpha[:, None]) - 1
    on_err = np.max(np.where(on, np.abs(corr * np.sign(codes) / alpha[:, None] - 1), 0))
    return float(max(off, on_err, 0.0))


def problem(n_features: int, n_atoms: int, n_signals: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((n_features, n_atoms))
    d /= np.linalg.norm(d, axis=0)  # scikit-learn's OMP assumes unit atoms; ours normalises anyway
    return d, rng.standard_normal((n_signals, n_features))


def bench_omp(name, d, y, s, args, rows):
    from sklearn.linear_model import orthogonal_mp

    dev = args.device
    n = len(y)
    ref, w, c = timed(lambda: orthogonal_mp(d, y.T, n_nonzero_coefs=s, precompute=True).T, "cpu")
    base = {"workload": name, "coder": "omp", "signals": n}
    rows.append({**base, "impl": "scikit-learn orthogonal_mp(precompute=True) fp64", "wall_s": w, "cpu_s": c,
                 "same_support": 1.0, "max_rel_resid_diff": 0.0, "max_rel_fit_diff": 0.0, "note": "reference"})
    ref_w, ref_c = w, c
    k = min(n, args.sklearn_signals)
    sub, w, c = timed(lambda: orthogonal_mp(d, y[:k].T, n_nonzero_coefs=s).T, "cpu")
    same, rel, fit = compare(sub, ref[:k], d, y[:k])
    rows.append({**base, "impl": "scikit-learn orthogonal_mp() default fp64", "wall_s": w * n / k,
                 "cpu_s": c * n / k, "same_support": same, "max_rel_resid_diff": rel, "max_rel_fit_diff": fit,
                 "note": f"scaled from {k} signals" if k < n else ""})
    for dtype in (torch.float32, torch.float64):
        dd, yy = torch.tensor(d, dtype=dtype, device=dev), torch.tensor(y, dtype=dtype, device=dev)
        omp(dd, yy[:2], s)  # warm-up: first-call allocations, CUDA context
        codes, w, c = timed(lambda dd=dd, yy=yy: omp(dd, yy, s), dev)
        same, rel, fit = compare(codes.double().cpu().numpy(), ref, d, y)
        rows.append({**base, "impl": f"probe.sparse.omp {str(dtype)[6:]} ({dev})", "wall_s": w, "cpu_s": c,
                     "same_support": same, "max_rel_resid_diff": rel, "max_rel_fit_diff": fit, "note": ""})
    try:
        from orthogonal_matching_pursuit_gpu import run_omp
    except ImportError as e:
        rows.append({**base, "impl": OMPGPU, "note": f"not importable ({e}); see notes"})
        return ref_w, ref_c
    for dtype in (torch.float32, torch.float64):
        dd, yy = torch.tensor(d, dtype=dtype, device=dev), torch.tensor(y, dtype=dtype, device=dev)
        try:
            codes, w, c = timed(lambda dd=dd, yy=yy: run_omp(dd, yy, s, normalize=False, fit_intercept=False, alg="v0"), dev)
        except (RuntimeError, MemoryError) as e:  # its [signals, s, atoms] buffer can exceed memory
            rows.append({**base, "impl": f"{OMPGPU} v0 {str(dtype)[6:]} ({dev})", "note": f"failed: {e}"[:120]})
            continue
        same, rel, fit = compare(codes.double().cpu().numpy(), ref, d, y)
        rows.append({**base, "impl": f"{OMPGPU} v0 {str(dtype)[6:]} ({dev})", "wall_s": w, "cpu_s": c,
                     "same_support": same, "max_rel_resid_diff": rel, "max_rel_fit_diff": fit, "note": ""})
    return ref_w, ref_c


def bench_lasso(name, d, y, s, args, rows):
    """Equal sparsity: ours picks each signal's penalty for s non-zeros; scikit-learn's LARS
    (lars_path_gram, method='lasso', the Gram computed once) walks each path to that penalty."""
    from sklearn.linear_model import lars_path_gram

    dev = args.device
    n = len(y)
    base = {"workload": name, "coder": "lasso", "signals": n}
    results = {}
    for dtype in (torch.float64, torch.float32):
        dd, yy = torch.tensor(d, dtype=dtype, device=dev), torch.tensor(y, dtype=dtype, device=dev)
        lasso(dd, yy[:2], n_nonzero=s)
        (codes, alpha), w, c = timed(lambda dd=dd, yy=yy: lasso(dd, yy, n_nonzero=s, return_alpha=True), dev)
        results[dtype] = (codes.double().cpu().numpy(), alpha.double().cpu().numpy(), w, c)
    _, alpha64, _, _ = results[torch.float64]

    def sklearn_paths():
        gram = d.T @ d
        xy = y @ d
        out = np.zeros((n, d.shape[1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(n):
                _, _, coefs = lars_path_gram(xy[i], gram, n_samples=d.shape[0], alpha_min=float(alpha64[i]),
                                             method="lasso", max_iter=10 * s)
                out[i] = coefs[:, -1]
        return out

    ref, w, c = timed(sklearn_paths, "cpu")
    rows.append({**base, "impl": "scikit-learn lars_path_gram(method='lasso') fp64", "wall_s": w, "cpu_s": c,
                 "same_support": 1.0, "max_rel_resid_diff": 0.0, "max_rel_fit_diff": 0.0,
                 "note": f"reference; penalty per signal = ours; non-zeros {int((ref != 0).sum(1).min())}-"
                         f"{int((ref != 0).sum(1).max())}; optimality violation {kkt(d, y, ref, alpha64):.1e}"})
    for dtype, (codes, alpha, w, c) in results.items():
        same, rel, fit = compare(codes, ref, d, y)
        rows.append({**base, "impl": f"probe.sparse.lasso {str(dtype)[6:]} ({dev})", "wall_s": w, "cpu_s": c,
                     "same_support": same, "max_rel_resid_diff": rel, "max_rel_fit_diff": fit,
                     "note": f"max abs code diff {np.abs(codes - ref).max():.1e}; "
                             f"optimality violation {kkt(d, y, codes, alpha):.1e}"})
    args.notes.extend(referee(name, d, y, results[torch.float64][0], ref, alpha64))


def referee(name, d, y, ours, lars, alpha, most=5):
    """Where our fp64 lasso and lars_path_gram disagree on a support, ask coordinate descent."""
    from sklearn.linear_model import Lasso

    differ = [i for i, (a, b) in enumerate(zip(supports(ours), supports(lars), strict=True)) if a != b]
    if not differ:
        return []
    gaps = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in differ[:most]:
            cd = Lasso(alpha=float(alpha[i]), fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(d, y[i]).coef_
            gaps.append((np.abs(ours[i] - cd).max(), np.abs(lars[i] - cd).max()))
    ours_gap, lars_gap = max(g[0] for g in gaps), min(g[1] for g in gaps)
    return [f"{name}, lasso: {len(differ)} of {len(y)} supports differ from lars_path_gram's; on {len(gaps)} of them "
            f"scikit-learn's coordinate-descent Lasso (tol 1e-14) is within {ours_gap:.1e} of ours and at least "
            f"{lars_gap:.1e} from lars_path_gram's end point (its alpha_min stop), so the reference is off there."]


def write(rows, args, started, out_dir: Path):
    import sklearn

    dev_name = args.device
    if args.device.startswith("cuda"):
        dev_name = f"{args.device} ({torch.cuda.get_device_name(args.device)})"
    stem = "sparse_" + args.device.split(":")[0] + ("_quick" if args.quick else "")
    lines = [
        "# Sparse coders: probe.sparse against scikit-learn",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; finished {dt.datetime.now(dt.timezone.utc):%H:%M}",
        f"- torch {torch.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; threads: torch {torch.get_num_threads()}, "
        f"BLAS {args.threads} (threadpoolctl); device: {dev_name}",
        f"- load average at start / end: {args.load_start} / {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(other users' processes share these cores: compare CPU seconds)",
        "",
        "| workload | coder | implementation | signals | wall s | CPU s | speed-up (wall) | speed-up (CPU) "
        "| identical supports | max rel. residual diff | max rel. residual-norm diff | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    refs = {}
    for r in rows:
        if r.get("note", "").startswith("reference"):
            refs[(r["workload"], r["coder"])] = r
    for r in rows:
        ref = refs.get((r["workload"], r["coder"]))
        has = "wall_s" in r
        sw = f"{ref['wall_s'] / r['wall_s']:.1f}x" if has and ref else ""
        sc = f"{ref['cpu_s'] / r['cpu_s']:.1f}x" if has and ref and r["cpu_s"] > 0 else ""
        lines.append(
            f"| {r['workload']} | {r['coder']} | {r['impl']} | {r['signals']} | "
            + (f"{r['wall_s']:.2f} | {r['cpu_s']:.2f} | {sw} | {sc} | {r['same_support']:.3f} | "
               f"{r['max_rel_resid_diff']:.1e} | {r['max_rel_fit_diff']:.1e} |" if has else "| | | | | | |")
            + f" {r.get('note', '')} |")
    lines += ["", "Speed-ups are against the reference row of the same workload and coder "
              "(scikit-learn's fastest path: OMP with the Gram precomputed; LARS-lasso on the Gram).",
              "Identical supports and residual differences are against that reference, per signal; the "
              "optimality violation is max |correlation| / alpha - 1 off the support and the relative "
              "deviation from alpha on it (0 = an exact lasso solution).",
              "", "## Notes", ""] + [f"- {n}" for n in args.notes]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        keys = ["workload", "coder", "impl", "signals", "wall_s", "cpu_s", "same_support", "max_rel_resid_diff",
                "max_rel_fit_diff", "note"]
        wr = csv.DictWriter(f, keys)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r.get(k, "") for k in keys})
    print("\n".join(lines))
    print(f"\nwrote {out_dir / stem}.md and .csv")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] for probe.sparse (scikit-learn is CPU)")
    p.add_argument("--quick", action="store_true", help="small sizes only (about a minute)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for torch and for numpy's BLAS (same for both sides; default 1)")
    p.add_argument("--sklearn-signals", type=int, default=25,
                   help="signals for scikit-learn's slow default OMP (no Gram); its time is scaled to all")
    p.add_argument("--skip-lasso", action="store_true")
    p.add_argument("--extra-path", default=None,
                   help=f"a folder to import {OMPGPU} from (pip install --no-deps --target DIR)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    if args.extra_path:
        sys.path.insert(0, args.extra_path)
    args.load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    started = dt.datetime.now(dt.timezone.utc)
    args.notes = []
    try:
        import orthogonal_matching_pursuit_gpu as og

        args.notes.append(f"{OMPGPU} {og.__version__}: built from its PyPI sdist (Cython, needs a C compiler) with "
                          "`pip install --no-deps --target DIR`, so it cannot replace the installed torch; "
                          "its `run_omp(..., alg='v0')` keeps a [signals, n_nonzero, atoms] buffer.")
    except ImportError:
        args.notes.append(f"{OMPGPU} was not importable: install it outside the venv with "
                          f"`pip install --no-deps --target DIR {OMPGPU}` and pass --extra-path DIR.")
    args.notes.append("Dictionary: Gaussian, unit-norm columns; signals Gaussian (seed 0). fp32 rows of ours are "
                      "compared with scikit-learn's fp64 result, so their few support differences are rounding.")
    sizes = [("small 256x256, s=13", 256, 256, 13, 100), ("1024x1024, s=51", 1024, 1024, 51, 500)] if args.quick \
        else [("1024x1024, s=51", 1024, 1024, 51, 500), ("paper 4096x4096, s=205", 4096, 4096, 205, 500)]
    rows = []
    for name, f, a, s, n in sizes:
        d, y = problem(f, a, n)
        print(f"== {name}, {n} signals", flush=True)
        bench_omp(name, d, y, s, args, rows)
        if not args.skip_lasso:
            bench_lasso(name, d, y, s, args, rows)
    write(rows, args, started, Path(args.out))


if __name__ == "__main__":
    main()
