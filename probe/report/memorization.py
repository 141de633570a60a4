"""Memorization (paper Fig. 2-3): one model's measure, or a study over bottlenecks k."""
from __future__ import annotations

import math

from . import html as H
from .figures import figure_uri, new_figure
from .generic import files_html, rows_table

SOURCES = ("noise", "train", "test")
REDRAWN = {"coefficient_vs_k.png", "mse_vs_k.png", "attractors_vs_epoch.png", "memorization.md"}


def _measure(found) -> dict:
    """The measure dict: a study row's ``measure``, a Memorization result's meta, or memorization.json."""
    r = found.result
    for name in ("facts", "measure", "values", "data"):
        v = getattr(r, name, None)
        if isinstance(v, dict) and "null" in v:
            return v
    return found.meta


def section(found, ctx) -> str:
    rows = getattr(found.result, "rows", None)
    if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "k" in rows[0]:
        return study(found, rows)
    return one_model(found)


def _coef(d: dict) -> str:
    c = d.get("coefficient", {}) if isinstance(d, dict) else {}
    mean, std = c.get("mean", math.nan), c.get("std", math.nan)
    return "n/a" if mean is None or (isinstance(mean, float) and math.isnan(mean)) else f"{mean:.3f} ± {std:.3f}"


def one_model(found) -> str:
    m = _measure(found)
    head = ["seeds from", "seeds", "converged", "fixed points", "attractors (stable)", "median steps",
            "memorization coefficient (mean ± std)", "generalization rank", "verdict"]
    rows = [[s, m[s].get("seeds"), m[s].get("converged"), m[s].get("fixed_points"), m[s].get("attractors"),
             m[s].get("median_steps"), _coef(m[s]), m[s].get("generalization_rank"), m[s].get("verdict")]
            for s in SOURCES if isinstance(m.get(s), dict)]
    null = m.get("null", {}) or {}
    ch = m.get("chamfer", {}) or {}
    parts = [H.table(head, rows, caption="Attractors from noise, training images and test images"),
             H.img(figure_uri(coefficient_figure(m, found.meta)), "memorization coefficient per seed source",
                   caption="Memorization coefficient of the attractors reached from each kind of seed (mean ± std "
                           "over attractors) against the null level of held-out test images."),
             H.note(f"Null level (max cosine of held-out test images to the training set): "
                    f"{H.fmt(null.get('mean'))} ± {H.fmt(null.get('std'))}. Chamfer similarity of decoded "
                    f"attractors: train-noise {H.fmt(ch.get('train_noise'))}, test-noise {H.fmt(ch.get('test_noise'))}. "
                    f"A coefficient well above the null level means the attractors copy training images."),
             files_html(found.files), H.settings(found.meta)]
    return "\n".join(p for p in parts if p)


def coefficient_figure(m: dict, meta: dict):
    from .context import model_facts

    fig = new_figure(6.5, 4.2)
    ax = fig.subplots()
    srcs = [s for s in SOURCES if isinstance(m.get(s), dict)]
    c = [m[s].get("coefficient", {}) for s in srcs]
    ax.bar(range(len(srcs)), [x.get("mean", math.nan) for x in c], yerr=[x.get("std", 0) for x in c], capsize=4,
           color=[f"C{j}" for j in range(len(srcs))], label="attractors (mean ± std)")
    null = (m.get("null") or {}).get("mean")
    if isinstance(null, (int, float)):
        ax.axhline(null, color="k", ls=":", label=f"null: test images ({null:.3f})")
    ax.axhline(0.8, color="r", lw=0.8, ls="--", label="paper: memorizes above 0.8")
    ax.set_xticks(range(len(srcs)), [f"from {s}\n({m[s].get('attractors')} attractors)" for s in srcs])
    ax.set_xlabel("seeds the attractors were reached from")
    ax.set_ylabel("max cosine to the training set")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{model_facts(meta).get('name', '?')}: memorization coefficient", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def study(found, rows: list[dict]) -> str:
    r = found.result
    parts = [H.markdown(r.table())] if callable(getattr(r, "table", None)) else [rows_table(r)]
    parts.append(H.img(figure_uri(study_figure(rows, found.meta.get("config") or {})), "memorization vs bottleneck",
                       caption="Left: memorization coefficient (max cosine of decoded attractors to the training "
                               "set, mean ± std over attractors) against bottleneck k, with the null level of "
                               "held-out test images. Middle: train and test reconstruction MSE. Right (when "
                               "counted): distinct attractors after each counted epoch."))
    parts.append(files_html(found.files, skip=REDRAWN, title="Figures the study wrote"))
    parts.append(H.settings(found.meta))
    return "\n".join(p for p in parts if p)


def study_figure(rows: list[dict], config: dict):
    rows = sorted(rows, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    counted = any(r.get("counts") for r in rows)
    fig = new_figure(18 if counted else 12, 4.4)
    ax, bx, *cx = fig.subplots(1, 3 if counted else 2)
    for source, style in zip(SOURCES, ("o-", "s--", "^:"), strict=True):
        c = [r["measure"][source]["coefficient"] for r in rows]
        ax.errorbar(ks, [x["mean"] for x in c], yerr=[x["std"] for x in c], fmt=style, capsize=3,
                    label=f"attractors from {source}")
    ax.plot(ks, [r["measure"]["null"]["mean"] for r in rows], "k-", alpha=0.5, label="null: test images")
    ax.axhline(0.8, color="r", lw=0.8, ls="--", label="paper: memorizes above 0.8")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("bottleneck k (latent dimensions)")
    ax.set_ylabel("max cosine to the training set")
    ax.set_title(f"memorization coefficient, {config.get('dataset')}, {config.get('epochs')} epochs, "
                 f"{config.get('n_seeds')} noise seeds", fontsize=9)
    ax.legend(fontsize=7)
    bx.plot(ks, [r["train_mse"] for r in rows], "o-", label="train")
    bx.plot(ks, [r["test_mse"] for r in rows], "s--", label="test")
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xticks(ks, [str(k) for k in ks])
    bx.set_xlabel("bottleneck k (latent dimensions)")
    bx.set_ylabel("reconstruction MSE (images in [0, 1])")
    bx.set_title(f"MSE vs k, {config.get('n_train')} training images", fontsize=9)
    bx.legend(fontsize=7)
    for a in (ax, bx):
        a.set_xticks([], minor=True)  # only the k that were trained
    if counted:
        for r in rows:
            if r.get("counts"):
                cx[0].plot([c["epoch"] for c in r["counts"]], [c["attractors"] for c in r["counts"]], "o-",
                           label=f"k={r['k']}")
        cx[0].set_yscale("symlog")
        cx[0].set_xlabel("training epoch")
        cx[0].set_ylabel("distinct attractors (stable)")
        cx[0].set_title(f"attractors from {config.get('count_seeds')} noise seeds during training", fontsize=9)
        cx[0].legend(fontsize=7, ncol=2)
    return fig
