"""One table over the `probe compare` runs of benchmarks/compare_runs.sh, and whether they order as expected.

    python benchmarks/compare_summary.py runs/compare benchmarks/results/compare_summary.md

Pairs from most to least related: self (a model against itself), seeds (two training seeds of one
conv autoencoder), bottleneck (k = 16 vs 64), taef2 (TAEF2 against a conv autoencoder). Every
similarity should then fall and every error rise along the rows; the last lines say whether it does.
"""
from __future__ import annotations

import sys
from pathlib import Path

from probe.probes.compare import ComparisonReport
from probe.probes.tables import markdown_table

ORDER = ["self", "seeds", "bottleneck", "taef2"]


def sym(r: ComparisonReport, key: str) -> float:
    """The mean of a measure over both directions; ``key`` is "space|{}|measure" with {} the direction."""
    return (stat(r, key.format("A->B")) + stat(r, key.format("B->A"))) / 2


def stat(r: ComparisonReport, key: str) -> float:
    return r.stat(tuple(key.split("|"))).mean


def measures(r: ComparisonReport) -> dict[str, float]:
    m = {"pixel correlation (Chamfer)": sym(r, "set|{}|max_cos"),
         "pixel correlation, shuffled reference": sym(r, "set|{}|ref_max_cos"),
         "cross-code MSE": sym(r, "pixel|{}|attractors|mse"),
         "cross-code MSE / orthogonal MSE": (stat(r, "pixel|A->B|attractors|mse") / stat(r, "pixel|A->B|orthogonal|mse")
                                             + stat(r, "pixel|B->A|attractors|mse") / stat(r, "pixel|B->A|orthogonal|mse")) / 2,
         "nearest-neighbour pixel MSE": sym(r, "set|{}|nn_mse")}
    if ('latent', 'A->B', 'max_cos') in r.values:
        m["latent Chamfer"] = sym(r, "latent|{}|max_cos")
    if ('latent', 'agree') in r.values:
        m["basin agreement"] = stat(r, "latent|agree")
        m["ARI"] = r.scalars["ari"]
    return m


def main(runs: str, out: str) -> None:
    reports = {n: ComparisonReport.load(Path(runs) / f"cmp-{n}" / "report") for n in ORDER
               if (Path(runs) / f"cmp-{n}" / "report" / "meta.json").is_file()}
    rows = {n: measures(r) for n, r in reports.items()}
    cols = ["latent Chamfer", "basin agreement", "ARI", "pixel correlation (Chamfer)",
            "pixel correlation, shuffled reference", "cross-code MSE", "cross-code MSE / orthogonal MSE",
            "nearest-neighbour pixel MSE"]
    table = [[n, f"`{reports[n].models['A']['spec']}` vs `{reports[n].models['B']['spec']}`",
              "yes" if reports[n].shared["shared"] else "no"]
             + [f"{rows[n][c]:.4g}" if c in rows[n] else "-" for c in cols] for n in reports]
    lines = ["# probe compare: the four pairs side by side\n",
             f"Made by `python benchmarks/compare_summary.py {runs} {out}` from the reports of "
             "`benchmarks/compare_runs.sh`; per-pair tables with intervals are in `compare_<pair>.md`. "
             "Symmetric values (mean of A->B and B->A). Cross-code MSE is measured in each source model's own "
             "image convention, so across pairs the ratio to the orthogonal reference is the comparable number.\n",
             markdown_table(["pair", "A vs B", "shared latent"] + cols, table), "",
             "Expected order (most to least related): " + " > ".join(n for n in ORDER if n in reports) + ".\n"]
    for c, higher_is_closer in (("latent Chamfer", True), ("basin agreement", True),
                                ("pixel correlation (Chamfer)", True), ("cross-code MSE / orthogonal MSE", False),
                                ("nearest-neighbour pixel MSE", False)):
        seq = [(n, rows[n][c]) for n in ORDER if n in rows and c in rows[n]]
        vals = [v for _, v in seq]
        ok = all((a >= b) if higher_is_closer else (a <= b) for a, b in zip(vals, vals[1:], strict=False))
        lines.append(f"- {c}: " + ", ".join(f"{n} {v:.4g}" for n, v in seq)
                     + f" -> {'ordered as expected' if ok else 'NOT in the expected order'}")
    Path(out).write_text("\n".join(lines) + "\n")
    print(Path(out).read_text())


if __name__ == "__main__":
    main(*sys.argv[1:3])
