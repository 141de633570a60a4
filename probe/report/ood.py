"""OOD detection: the FPR95 / AUROC table, ROC curves per OOD set, score histograms per method."""
from __future__ import annotations

import math

import numpy as np

from . import html as H
from .context import model_facts
from .figures import figure_uri, new_figure
from .generic import headline


def roc(s_in, s_out) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) with OOD as positive and higher score = more OOD, at every threshold (exact)."""
    s_in, s_out = np.sort(np.asarray(s_in, np.float64)), np.sort(np.asarray(s_out, np.float64))
    thr = np.unique(np.concatenate([s_in, s_out]))[::-1]

    def above(s):  # share of s >= each threshold
        return (s.size - np.searchsorted(s, thr, side="left")) / max(1, s.size)
    return np.concatenate([[0.0], above(s_in), [1.0]]), np.concatenate([[0.0], above(s_out), [1.0]])


def section(found, ctx) -> str:
    r, meta = found.result, found.meta
    name = model_facts(meta).get("name", "?")
    m = r.metrics()
    parts = [f'<p class="verdict">{H.esc(headline(r))}</p>']
    notes = r.notes() if callable(getattr(r, "notes", None)) else []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{H.esc(n)}</li>" for n in notes) + "</ul>")
    def pct(c: dict, key: str):
        return 100 * c[key] if key in c else "n/a"  # results saved before AUPR was measured lack it

    rows = [[method, ood, pct(c, "fpr95"), pct(c, "auroc"), pct(c, "auroc_lo"), pct(c, "auroc_hi"),
             pct(c, "aupr_in"), pct(c, "aupr_out"), pct(c, "fpr95_openood"), len(r.scores[method][ood])]
            for method, per in m.items() for ood, c in per.items()]
    parts.append(H.table(["method", "OOD set", "FPR95 (%)", "AUROC (%)", "AUROC 95% lo", "AUROC 95% hi",
                          "AUPR-In (%)", "AUPR-Out (%)", "FPR95 OpenOOD (%)", "n OOD"],
                         rows, filter=len(rows) > 8,
                         caption=f"in-distribution: {r.in_name} (n={len(r.scores[next(iter(r.scores))][r.in_name])}); "
                                 "FPR95 = share of OOD accepted at 95% in-distribution recall (the paper's and the KNN "
                                 "paper's convention; OpenOOD v1.5's column flags ID at 95% OOD recall); FPR95 lower "
                                 "is better, AUROC and AUPR higher are better (AUROC 50 = chance)"))
    parts.append(H.img(figure_uri(roc_figure(r, name)), "ROC curves",
                       caption="ROC per OOD set: each method's score thresholded at every value; OOD is the "
                               "positive class and a higher score means more OOD."))
    parts.append(H.img(figure_uri(histogram_figure(r, name)), "score histograms",
                       caption="Score histograms per method: the in-distribution test set (thick) and each OOD set."))
    if callable(getattr(r, "to_markdown", None)):
        parts.append(H.details("The table as the command printed it", H.markdown(r.to_markdown())))
    parts.append(H.settings(meta))
    return "\n".join(parts)


def roc_figure(r, name: str):
    m = r.metrics()
    sets = list(r.out_names)
    cols = min(3, max(1, len(sets)))
    nrows = math.ceil(len(sets) / cols) if sets else 1
    fig = new_figure(4.8 * cols, 4.4 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    for ax, ood in zip(axes, sets, strict=False):
        for method, per in r.scores.items():
            fpr, tpr = roc(per[r.in_name].double().numpy(), per[ood].double().numpy())
            c = m[method][ood]
            ax.plot(fpr, tpr, label=f"{method}: AUROC {100 * c['auroc']:.1f}, FPR95 {100 * c['fpr95']:.1f}")
        ax.plot([0, 1], [0, 1], color="gray", ls=":", label="chance")
        ax.set_xlabel(f"false positive rate ({r.in_name} flagged as OOD)")
        ax.set_ylabel(f"true positive rate ({ood} flagged as OOD)")
        ax.set_title(f"{name}\n{r.in_name} (in) vs {ood} (out)", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[len(sets):]:
        ax.axis("off")
    return fig


def histogram_figure(r, name: str):
    methods = list(r.scores)
    cols = min(3, max(1, len(methods)))
    nrows = math.ceil(len(methods) / cols)
    fig = new_figure(4.8 * cols, 3.8 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False).flatten()
    for ax, method in zip(axes, methods, strict=False):
        per = r.scores[method]
        names = [r.in_name, *r.out_names]
        allv = np.concatenate([per[n].double().numpy() for n in names])
        allv = allv[np.isfinite(allv)]
        lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
        pad = 0.5 * max(abs(hi), 1e-6) * 1e-3 if hi - lo < 1e-12 else 0.0  # constant scores: one visible bar
        bins = np.linspace(lo - pad, hi + pad, 41)
        for n in names:
            v = per[n].double().numpy()
            ax.hist(v[np.isfinite(v)], bins=bins, histtype="step", density=True,
                    linewidth=2.2 if n == r.in_name else 1.3, label=f"{n} ({'in' if n == r.in_name else 'OOD'}, n={v.size})")
        ax.ticklabel_format(axis="x", useOffset=False, style="sci", scilimits=(-3, 4))
        ax.set_xlabel("score (higher = more OOD)")
        ax.set_ylabel("density (fraction of images per unit score)")
        ax.set_title(f"{method} score", fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes[len(methods):]:
        ax.axis("off")
    info = getattr(r, "info", {}) or {}
    fig.suptitle(f"{name}: OOD scores of {r.in_name} (in) and {', '.join(r.out_names)}; score steps T <= "
                 f"{info.get('score_steps')}, tol {info.get('tol')}, KNN K={(r.config or {}).get('knn_k')}", fontsize=10)
    return fig
