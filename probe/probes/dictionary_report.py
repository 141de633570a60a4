"""The dictionary probe's result: per-image errors for dataset x basis x coder x sparsity.

Per-image values are kept (not only means) so that intervals, paired comparisons between
bases on the same images, and merges of per-dataset runs are all recomputed exactly.
"""
from __future__ import annotations

import csv
import io as _io
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .. import io
from ..errors import ProbeError
from ..result import Result
from .tables import Stat, markdown_table, mean_ci, paired, verdict

__all__ = ["DictionaryReport", "METRICS", "AE", "skey"]

METRICS = {"mse": "pixel MSE", "psnr": "PSNR (dB)", "latent_rel": "relative latent error ||z - z_hat|| / ||z||"}
AE = "autoencoder"  # D(E(x)): the floor any latent-space code can reach, shown for context


def skey(s: float) -> str:
    """A sparsity as a stable key (0.05 -> '0.05', 0.03125 -> '0.03125')."""
    return f"{float(s):.10g}"


@dataclass
class DictionaryReport(Result):
    """Dictionary-probe results; build with :func:`probe.probes.dictionary.run_dictionary`.

    ``values[(dataset, basis, coder, skey(sparsity), metric)]`` holds one value per image,
    ``values[(dataset, "autoencoder", metric)]`` the plain reconstruction D(E(x));
    ``examples[(dataset, row)]`` uint8 images for the reconstruction grid.
    ``datasets[name]`` records the set's source, size, PCA fit, atoms and non-zeros per basis.
    """

    config: dict
    map: dict
    attractors: dict
    datasets: dict[str, dict] = field(default_factory=dict)
    values: dict[tuple, Tensor] = field(default_factory=dict)
    examples: dict[tuple, Tensor] = field(default_factory=dict)
    model: dict | None = None  #: the model fingerprint

    # -- structure ----------------------------------------------------------
    @property
    def bases(self) -> list[str]:
        return list(self.config["bases"])

    @property
    def coders(self) -> list[str]:
        return ["omp", "lasso"] if self.config["coder"] == "both" else [self.config["coder"]]

    @property
    def sparsities(self) -> list[float]:
        return list(self.config["sparsities"])

    def label(self, basis: str) -> str:
        """How a basis is named in tables: the probe's atoms are 'attractors' or 'end points'."""
        if basis == "end_points":
            a = self.attractors
            return (f"unmerged end points ({a.get('n_seeds')} atoms, {a.get('end_point_directions', '?')} distinct "
                    f"directions)")
        return self.attractors.get("atoms_are", basis) if basis == "attractors" else basis

    def per_image(self, dataset: str, basis: str, coder: str | None = None, sparsity: float | None = None,
                  metric: str = "mse") -> Tensor:
        if basis == AE:
            key: tuple = (dataset, AE, metric)
        else:
            s = self.config["sparsity"] if sparsity is None else sparsity
            key = (dataset, basis, coder or self.coders[0], skey(s), metric)
        if key not in self.values:
            if basis == "end_points":  # lasso is not run on the unmerged end points: n/a, not an error
                return torch.zeros(0)
            raise ProbeError(f"no result for {' / '.join(map(str, key))} in this report")
        return self.values[key]

    def stat(self, dataset: str, basis: str, coder: str | None = None, sparsity: float | None = None,
             metric: str = "mse") -> Stat:
        return mean_ci(self.per_image(dataset, basis, coder, sparsity, metric))

    def compare(self, coder: str | None = None, sparsity: float | None = None, metric: str = "mse",
                basis: str = "attractors", baseline: str = "orthogonal") -> dict[str, dict]:
        """Per dataset: paired 95% interval of ``baseline - basis`` on the same images, and a verdict.

        For MSE and latent error a positive difference means ``basis`` is better; for PSNR the
        sign is flipped so that "better" always reads the same way.
        """
        out = {}
        for d in self.datasets:
            a, b = self.per_image(d, basis, coder, sparsity, metric), self.per_image(d, baseline, coder, sparsity, metric)
            diff = paired(b, a) if metric == "psnr" else paired(a, b)
            out[d] = {"diff": diff,
                      "better": verdict(diff, self.label(basis), self.label(baseline)).replace(" lower", " better")}
        return out

    # -- merge / save / load -------------------------------------------------
    @classmethod
    def merge(cls, reports: list[DictionaryReport]) -> DictionaryReport:
        """One report from per-dataset reports made with the same settings, map and dictionary."""
        if not reports:
            raise ProbeError("no dictionary results to merge")
        first = reports[0]
        out = cls(first.config, first.map, first.attractors, model=first.model)
        for r in reports:
            for what in ("config", "map", "attractors"):
                if _comparable(getattr(r, what)) != _comparable(getattr(first, what)):
                    raise ProbeError(f"cannot merge dictionary results made with different {what}")
            overlap = set(out.datasets) & set(r.datasets)
            if overlap:
                raise ProbeError(f"dataset(s) {', '.join(sorted(overlap))} appear in two results")
            out.datasets.update(r.datasets)
            out.values.update(r.values)
            out.examples.update(r.examples)
        return out

    # -- the Result contract -------------------------------------------------------------
    def _tensors(self) -> dict:
        return {**{f"value{i}": v.float().contiguous() for i, v in enumerate(self.values.values())},
                **{f"example{i}": v.contiguous() for i, v in enumerate(self.examples.values())}}

    def _meta(self) -> dict:
        return {"config": self.config, "model": self.model, "map": self.map, "attractors": self.attractors,
                "datasets": self.datasets, "values": [list(k) for k in self.values],
                "examples": [list(k) for k in self.examples], "summary": self.summary_rows()}

    @classmethod
    def _from_saved(cls, tensors: dict, meta: dict) -> DictionaryReport:
        if "values" in meta:
            values = {tuple(k): tensors[f"value{i}"] for i, k in enumerate(meta["values"])}
            examples = {tuple(k): tensors[f"example{i}"] for i, k in enumerate(meta["examples"])}
        else:  # saved before the Result contract: "v|<dataset>|..." tensor names
            values = {tuple(k[2:].split("|")): v for k, v in tensors.items() if k.startswith("v|")}
            examples = {tuple(k[2:].split("|")): v for k, v in tensors.items() if k.startswith("x|")}
        return cls(meta["config"], meta["map"], meta["attractors"], meta["datasets"], values, examples,
                   meta.get("model"))

    def to_rows(self) -> list[dict]:
        return self.summary_rows()

    # -- tables ---------------------------------------------------------------
    def summary_rows(self) -> list[dict]:
        """One row per dataset x basis x coder x sparsity x metric (plus the autoencoder floor)."""
        rows = []
        for d, info in self.datasets.items():
            for m in METRICS:
                rows.append({"dataset": d, "basis": AE, "coder": "", "sparsity": "", "n_atoms": "", "n_nonzero": "",
                             "metric": m, **self.stat(d, AE, metric=m).as_dict()})
            for c in self.coders:
                for s in self.sparsities:
                    for b in self.bases:
                        for m in METRICS:
                            rows.append({"dataset": d, "basis": b, "coder": c, "sparsity": float(s),
                                         "n_atoms": info["atoms"][b], "n_nonzero": info["n_nonzero"][skey(s)][b],
                                         "metric": m, **self.stat(d, b, c, s, m).as_dict()})
        return rows

    def to_csv(self, path: str | Path | None = None) -> str:
        rows = self.summary_rows()
        buf = _io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["dataset"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
        if path is not None:
            io.save_text(path, text)
        return text

    def heading(self, sparsity: float | None = None) -> str:
        """One line naming every setting a reader needs to interpret the numbers."""
        a, c = self.attractors, self.config
        s = c["sparsity"] if sparsity is None else sparsity
        nz = sorted({v for info in self.datasets.values() for v in info["n_nonzero"][skey(s)].values()})
        seeds = {"normal": "Gaussian seeds N(0, I)", "given": "given seeds"}.get(
            a.get("seed_dist", "normal"), "Gaussian seeds matched to the latent mean and spread of encoded train images")
        found = (f"{a['n_found']} {a['atoms_are']} found from {a['n_seeds']} {seeds}"
                 + (f", a seeded random {a['n_atoms']} of them used" if a["n_atoms"] < a["n_found"] else ""))
        res = sorted({str(info["resolution"]) for info in self.datasets.values()})
        return (f"Dictionary probe, model {self.map.get('name')}: atoms = {a['n_atoms']} {a['atoms_are'].upper()} "
                f"({found}; dynamics {a.get('verdict', '?')}; merge {a.get('merge')} "
                f"{'>' if a.get('merge') == 'cosine' else '<='} {a.get('merge_threshold')}; "
                f"tol {a.get('tol')}; max_steps {a.get('max_steps')}); sparsity {100 * s:.4g}% = "
                f"{'/'.join(map(str, nz))} non-zero{'s' if max(nz, default=0) > 1 else ''} per code, the same for every basis"
                f"{' but the unmerged end points (5% of their own count)' if a.get('end_points_coded') else ''}; "
                f"{c['n_images']} images per set at {'/'.join(res)} px; baselines with the same atom count: "
                f"orthogonal = {a['n_atoms']} random orthonormal directions (QR of a seeded Gaussian), "
                f"PCA = top components of encoded data (fit per set, see 'PCA fit'); values: mean [95% CI]."
                + (f" DEGENERATE: {a['n_atoms']} {a['atoms_are']} are fewer than 20, so a {100 * s:.4g}% code of them "
                   f"is degenerate" + (f"; the column 'unmerged end points' codes with all {a['n_seeds']} end points "
                                      f"as atoms (not merged, not attractors)" if a.get("end_points_coded") else "")
                   + "." if a.get("degenerate") else "")
                + (f" NOTE: {a['other_model']}." if a.get("other_model") else ""))

    def to_markdown(self, metric: str = "mse", sparsity: float | None = None, compare: bool = True,
                    header: bool = True) -> str:
        """Header line, then a table: rows datasets; columns coder x basis; mean [95% CI]."""
        if metric not in METRICS:
            raise ProbeError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        cols = [(c, b) for c in self.coders for b in self.bases]
        pair = compare and {"attractors", "orthogonal"} <= set(self.bases)
        head = ["dataset", "n", f"{AE} D(E(x))"] + [f"{c} · {self.label(b)}" for c, b in cols]
        if pair:
            head += [f"{c}: orthogonal − {self.label('attractors')} (paired)" for c in self.coders]
        rows = []
        for d, info in self.datasets.items():
            row = [d, str(info["n"]), self.stat(d, AE, metric=metric).format()]
            row += [self.stat(d, b, c, sparsity, metric).format() for c, b in cols]
            if pair:
                for c in self.coders:
                    r = self.compare(c, sparsity, metric)[d]
                    row.append(f"{r['diff'].format(3)} → {r['better']}")
            rows.append(row)
        pca = "; ".join(f"{d}: {info['pca_fit']}" for d, info in self.datasets.items())
        top = f"{self.heading(sparsity)}\n\nPCA fit: {pca}.\n\n" if header else ""
        return f"{top}Metric: {METRICS[metric]}.\n\n" + markdown_table(head, rows) + "\n"

    def verdict_markdown(self, sparsity: float | None = None, metric: str = "mse") -> str:
        """In words, per coder: on which sets the atoms beat each baseline (paired 95% CI on the same images)."""
        s = self.config["sparsity"] if sparsity is None else sparsity
        what = f"{self.attractors['atoms_are']} ({self.attractors['n_atoms']} atoms)"
        lines = []
        for baseline in [b for b in self.bases if b not in ("attractors", "end_points")]:
            if "attractors" not in self.bases:
                break
            for c in self.coders:
                res = self.compare(c, s, metric, baseline=baseline)
                groups = {"better": [], "worse": [], "tie": []}
                for d, r in res.items():
                    key = "better" if r["better"] == f"{self.label('attractors')} better" else "tie" if "no clear" in r["better"] else "worse"
                    groups[key].append(f"{d} ({r['diff'].format(3)})")
                lines.append(f"- {c}, {100 * s:.4g}% sparsity, {what} vs {baseline}: "
                             f"lower {metric} on {', '.join(groups['better']) or 'no set'}; "
                             f"higher on {', '.join(groups['worse']) or 'no set'}"
                             + (f"; no clear difference on {', '.join(groups['tie'])}" if groups["tie"] else "") + ".")
        return ("Paired differences (baseline − atoms, same images, mean [95% CI]; positive = the atoms are better):\n\n"
                + "\n".join(lines) + "\n") if lines else ""

    def distinct_sparsities(self, dataset: str) -> list[float]:
        """The sweep's sparsities whose non-zero counts differ: two that round to the same counts code
        alike (the same point twice), so each is shown once, at the largest sparsity that gives it."""
        seen: set[tuple] = set()
        out = []
        for s in self.sparsities:
            counts = tuple(self.datasets[dataset]["n_nonzero"][skey(s)].values())
            if counts not in seen:
                seen.add(counts)
                out.append(s)
        return out

    def sweep_markdown(self, coder: str | None = None, metric: str = "mse") -> str:
        """Rows dataset x non-zeros (coinciding sparsities once); columns bases and the paired comparison."""
        coder = coder or self.coders[0]
        pair = {"attractors", "orthogonal"} <= set(self.bases)
        head = ["dataset", "sparsity", "non-zeros of atoms"] + [self.label(b) for b in self.bases]
        head += [f"orthogonal − {self.label('attractors')} (paired)"] if pair else []
        rows = []
        for d, info in self.datasets.items():
            for s in self.distinct_sparsities(d):
                nz = "/".join(f"{info['n_nonzero'][skey(s)][b]} of {info['atoms'][b]}" for b in self.bases)
                row = [d, f"{100 * s:.4g}%", nz] + [self.stat(d, b, coder, s, metric).format() for b in self.bases]
                if pair:
                    r = self.compare(coder, s, metric)[d]
                    row.append(f"{r['diff'].format(3)} → {r['better']}")
                rows.append(row)
        return (f"Sweep, coder {coder}, {METRICS[metric]}; non-zeros of atoms listed per basis in column order; "
                f"sparsities that give the same non-zeros are one point, shown once.\n\n"
                + markdown_table(head, rows) + "\n")

    # -- figures --------------------------------------------------------------
    def plot(self, path: str | Path | None = None, metric: str = "mse"):
        """Non-zeros per code vs ``metric``, one panel per dataset, one line per coder x basis (each point once)."""
        from matplotlib.figure import Figure

        names = list(self.datasets)
        fig = Figure(figsize=(4.2 * len(names), 3.6))
        axes = fig.subplots(1, len(names), squeeze=False)
        for ax, d in zip(axes[0], names, strict=True):
            sparsities, nz = self.distinct_sparsities(d), self.datasets[d]["n_nonzero"]
            for c in self.coders:
                for b in self.bases:
                    st = [self.stat(d, b, c, s, metric) for s in sparsities]
                    keep = [i for i, t in enumerate(st) if t.n]  # lasso is not run on unmerged end points
                    if not keep:
                        continue
                    ax.errorbar([nz[skey(sparsities[i])][b] for i in keep], [st[i].mean for i in keep],
                                yerr=[st[i].half for i in keep], marker="o", ms=3, capsize=2,
                                ls="-" if c == "omp" else "--", label=f"{c} · {self.label(b)}")
            ax.axhline(self.stat(d, AE, metric=metric).mean, color="gray", ls=":", label=f"{AE} D(E(x))")
            ax.set_xscale("log")
            ax.set_xlabel(f"non-zeros per code (of {self.attractors['n_atoms']} {self.attractors['atoms_are']})")
            ax.set_ylabel(METRICS[metric])
            ax.set_title(d, fontsize=10)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"{self.map.get('name')}: {self.attractors['n_atoms']} {self.attractors['atoms_are']} as atoms",
                     fontsize=10)
        fig.tight_layout()
        return _finish(fig, path)

    def plot_reconstructions(self, path: str | Path | None = None):
        """Originals next to their reconstructions (one block of rows per dataset)."""
        from matplotlib.figure import Figure

        row_names = ["original", AE] + self.bases
        blocks = [(d, r) for d in self.datasets for r in row_names if (d, r) in self.examples]
        if not blocks:
            raise ProbeError("this report holds no example images")
        fig = Figure(figsize=(11, 1.3 * len(blocks)))
        axes = fig.subplots(len(blocks), 1, squeeze=False)
        s = skey(self.config["sparsity"])
        for ax, (d, r) in zip(axes[:, 0], blocks, strict=True):
            imgs = self.examples[(d, r)]  # uint8 [n, C, H, W]
            strip = torch.cat(list(imgs), dim=-1).permute(1, 2, 0).numpy()
            ax.imshow(strip[..., 0] if strip.shape[-1] == 1 else strip, cmap="gray", vmin=0, vmax=255)
            label = r if r in ("original", AE) else f"{self.label(r)}\n{self.coders[0]} {100 * float(s):.3g}%"
            ax.set_ylabel(f"{d}\n{label}", rotation=0, ha="right", va="center", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.subplots_adjust(left=0.16, right=0.99, top=0.995, bottom=0.005, hspace=0.12)  # room for row names
        return _finish(fig, path)


def _comparable(d: dict) -> dict:
    # batch size and device change speed, not results; everything else must match to merge or resume
    return {k: v for k, v in io.to_jsonable(d).items() if k not in ("batch_size", "device")}


def _finish(fig, path):
    if path is None:
        return fig
    return io.save_figure(fig, path)
