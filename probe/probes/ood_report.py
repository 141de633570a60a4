"""The OOD probe's result: every method's scores on the in-distribution set and each OOD set."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..result import Result
from .ood_scores import METHODS

__all__ = ["OODReport"]


@dataclass
class OODReport(Result):
    """Scores of every method on the in-distribution set and each OOD set, and their metrics.

    ``scores[method][set]`` is a CPU tensor [N]; ``config`` (the OOD config with the resolved
    field), ``model`` (the fingerprint), ``map`` (``map.describe()``) and ``info`` (attractor count
    and merge rule, iteration settings, convergence fractions, the images used) record what made it.
    """

    scores: dict[str, dict[str, Tensor]]
    in_name: str
    out_names: list[str]
    config: dict
    map: dict
    info: dict
    model_: dict | None = None

    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{method: {ood set: {"fpr95", "auroc", "auroc_lo", "auroc_hi", "aupr_in", "aupr_out",
        "fpr95_openood"}}}`` (fractions, not %); ``fpr95`` is the classic convention (OOD accepted
        at 95% in-distribution recall), ``fpr95_openood`` OpenOOD v1.5's (ID flagged at 95% OOD recall)."""
        if getattr(self, "_metrics", None) is not None:  # the bootstrap is the slow part: once per report
            return self._metrics
        from .metrics import aupr_in, aupr_out, auroc, bootstrap_ci, fpr95, fpr95_openood

        out = {}
        for method, per_set in self.scores.items():
            s_in = per_set[self.in_name]
            out[method] = {}
            for name in self.out_names:
                lo, hi = bootstrap_ci(s_in, per_set[name], auroc)
                s_out = per_set[name]
                out[method][name] = {"fpr95": fpr95(s_in, s_out), "auroc": auroc(s_in, s_out),
                                     "auroc_lo": lo, "auroc_hi": hi, "aupr_in": aupr_in(s_in, s_out),
                                     "aupr_out": aupr_out(s_in, s_out), "fpr95_openood": fpr95_openood(s_in, s_out)}
        self._metrics = out
        return out

    # -- reading ----------------------------------------------------------------------
    def heading(self) -> str:
        a, i = self.info["attractors"], self.info
        d = i["data"]
        kind = a.get("reference", "attractors")
        ref = {"attractors": "attractor(s)", "end points": "merged end points (no attractor)"}.get(kind, kind)
        merge = (f"merge {a['merge']} > {a['merge_threshold']}" if kind in ("attractors", "end points")
                 else f"not merged; the search's merge {a['merge']} > {a['merge_threshold']} unused")
        return (f"OOD detection with {self.map.get('name')}: train = {d['train'].get('name')} "
                f"(n={d['train'].get('n')}, {a['n_attractors']} {ref}, {merge}), in = {self.in_name} (n={d[self.in_name].get('n')}), "
                f"tol {i['tol']:g}, attractor steps <= {i['max_steps']}, score steps T <= {i['score_steps']}, "
                f"KNN K={self.config['knn_k']} ({self.config['knn_metric']})")

    def notes(self) -> list[str]:
        """Plain statements of where the trajectory score fails, inverts or could not converge."""
        m, notes, a = self.metrics(), [], self.info["attractors"]
        if a.get("other_model"):
            notes.append(f"{a['other_model']}: Z*_train is that model's, not {self.map.get('name')}'s.")
        if a.get("diagnosis"):
            notes.append(f"attractor search from {a.get('n_seeds')} training latents: {a['diagnosis']}")
        if a.get("reference") == "end points":
            notes.append(f"no training trajectory converged, so there are no attractors: the trajectory score "
                         f"measures distances to the {a['n_attractors']} merged end points z_T of the training "
                         f"trajectories after {self.info['max_steps']} steps instead.")
        groups: dict[tuple, list[str]] = {}  # sets with the same convergence facts share one note
        for name, frac in self.info["fraction_converged"].items():
            if frac < 1:
                counts = ", ".join(f"{k} {v}" for k, v in self.info.get("status", {}).get(name, {}).items()
                                   if k != "converged" and v)
                groups.setdefault((round(frac, 6), counts), []).append(name)
        for (frac, counts), names in groups.items():
            notes.append(f"{', '.join(names)}: {100 * (1 - frac):.1f}% of trajectories did not converge within "
                         f"{self.info['score_steps']} steps" + (f" ({counts} per set)" if counts else "") +
                         f"; their trajectory score is the mean over the states z_0..z_T they reached "
                         f"(T = {self.info['score_steps']} unless stopped early in a cycle) and their "
                         f"step count is where they stopped, not a convergence time.")
        for name in self.out_names:
            t = m["trajectory"][name]["auroc"]
            if t < 0.5:
                notes.append(f"{name}: the trajectory score is INVERTED (AUROC {100 * t:.2f} < 50): the trajectories "
                             f"of these inputs stay closer to the training attractors than those of "
                             f"in-distribution test images.")
            best = max((k for k in m if k != "trajectory"), key=lambda k: m[k][name]["auroc"])
            if m[best][name]["auroc"] > t:
                notes.append(f"{name}: the trajectory score (AUROC {100 * t:.2f}) loses to {best} "
                             f"(AUROC {100 * m[best][name]['auroc']:.2f}).")
        return notes

    def to_markdown(self) -> str:
        """The paper's table: rows = methods, columns = OOD sets, cells = FPR95 / AUROC [CI] / AUPR-In /
        AUPR-Out in % (FPR95 classic; OpenOOD v1.5 defines it the other way round, see the legend)."""
        m = self.metrics()
        best = {n: max(m, key=lambda k: m[k][n]["auroc"]) for n in self.out_names}
        lines = [self.heading(), "", "| method | " + " | ".join(f"{n} FPR95 / AUROC / AUPR-In / AUPR-Out" for n in self.out_names) + " |",
                 "|---|" + "---|" * len(self.out_names)]
        for method in m:
            cells = []
            for n in self.out_names:
                c = m[method][n]
                cell = (f"{100 * c['fpr95']:.2f} / {100 * c['auroc']:.2f} "
                        f"[{100 * c['auroc_lo']:.1f}, {100 * c['auroc_hi']:.1f}]")
                if "aupr_in" in c:  # reports saved before AUPR was added lack it
                    cell += f" / {100 * c['aupr_in']:.2f} / {100 * c['aupr_out']:.2f}"
                cell = f"**{cell}**" if best[n] == method else cell
                cells.append(cell + (" (inverted)" if c["auroc"] < 0.5 else ""))
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", "FPR95 (classic convention, as in the paper and the KNN paper): % of OOD images accepted "
                  "at the threshold keeping 95% of in-distribution images (lower is better); OpenOOD v1.5 "
                  "defines FPR@95 the other way round (% of in-distribution flagged at 95% OOD recall), so its "
                  "numbers are not comparable with this column. AUROC in % with in-distribution as positive "
                  "(higher is better; < 50 = inverted), then its 95% bootstrap interval. AUPR-In / AUPR-Out: "
                  "average precision in % with in-distribution / OOD as the positive class (higher is better). "
                  "Bold: best AUROC per set. Every score is higher = more OOD."]
        lines += [f"- {k}: {v}" for k, v in METHODS.items() if k in m]
        notes = self.notes()
        if notes:
            lines += ["", "Notes:"] + [f"- {n}" for n in notes]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | Path) -> Path:
        """One row per (method, OOD set): fpr95, auroc and its bootstrap 95% interval, sizes."""
        from ..io import save_text

        m, n_in = self.metrics(), len(self.scores["trajectory"][self.in_name])
        rows = ["method,in_set,ood_set,fpr95,auroc,auroc_lo,auroc_hi,aupr_in,aupr_out,fpr95_openood,n_in,n_out"]
        for method, per_set in m.items():
            for n, c in per_set.items():
                extra = ",".join(f"{c[k]:.6f}" if k in c else "" for k in ("aupr_in", "aupr_out", "fpr95_openood"))
                rows.append(f"{method},{self.in_name},{n},{c['fpr95']:.6f},{c['auroc']:.6f},{c['auroc_lo']:.6f},"
                            f"{c['auroc_hi']:.6f},{extra},{n_in},{len(self.scores[method][n])}")
        return save_text(path, "\n".join(rows) + "\n")

    def plot_histograms(self, path: str | Path) -> Path:
        """One panel per method: the score histogram of the in-distribution set and each OOD set."""
        from matplotlib.figure import Figure

        methods = list(self.scores)
        cols = 3
        rows = (len(methods) + cols - 1) // cols
        fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, method in zip(axes.flat, methods, strict=False):
            per_set = self.scores[method]
            allv = torch.cat([per_set[n] for n in [self.in_name, *self.out_names]]).double()
            lo, hi = float(allv.min()), float(allv.max())
            pad = 0.5 * max(hi - lo, 1e-3 * abs(hi), 1e-6) if hi - lo < 1e-9 * max(1.0, abs(hi)) else 0.0
            bins = torch.linspace(lo - pad, hi + pad, 41, dtype=torch.float64).numpy()  # constant scores: one bar
            for n in [self.in_name, *self.out_names]:
                ax.hist(per_set[n].double().numpy(), bins=bins, histtype="step", density=True,
                        linewidth=2 if n == self.in_name else 1.2, label=n + (" (in)" if n == self.in_name else ""))
            ax.set_title(method)
            ax.ticklabel_format(axis="x", useOffset=False, style="plain")
            ax.set_xlabel("score (higher = more OOD)")
        for ax in list(axes.flat)[len(methods):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"OOD scores, {self.map.get('name')}", fontsize=10)
        fig.tight_layout()
        from ..io import save_figure

        return save_figure(fig, path, dpi=90)

    # -- the Result contract -------------------------------------------------------------
    def _pairs(self) -> list[tuple[str, str]]:
        return [(method, name) for method, per_set in self.scores.items() for name in per_set]

    def _tensors(self) -> dict:
        return {f"score{i}": self.scores[m][n].float() for i, (m, n) in enumerate(self._pairs())}

    def _meta(self) -> dict:
        return {"config": self.config, "model": self.model_, "map": self.map, "in_name": self.in_name,
                "out_names": self.out_names, "info": self.info, "metrics": self.metrics(),
                "scores": [list(pair) for pair in self._pairs()]}

    @classmethod
    def _from_saved(cls, tensors: dict, meta: dict) -> OODReport:
        scores: dict[str, dict[str, Tensor]] = {}
        for i, (method, name) in enumerate(meta["scores"]):
            scores.setdefault(method, {})[name] = tensors[f"score{i}"]
        return cls(scores=scores, in_name=meta["in_name"], out_names=meta["out_names"], config=meta["config"],
                   map=meta["map"], info=meta["info"], model_=meta["model"])

    def to_rows(self) -> list[dict]:
        """One row per (method, OOD set): FPR95, AUROC and its bootstrap interval, sizes."""
        m, n_in = self.metrics(), len(self.scores["trajectory"][self.in_name])
        return [{"method": method, "in_set": self.in_name, "ood_set": n, **c, "n_in": n_in,
                 "n_out": len(self.scores[method][n])} for method, per_set in m.items() for n, c in per_set.items()]
