"""The dictionary probe (paper section 4.1): tables, the sparsity curve, reconstructions."""
from __future__ import annotations

from . import html as H
from .context import model_facts
from .figures import figure_uri, new_figure, thumb
from .generic import headline, rows_table

AE = "autoencoder"
METRIC_LABELS = {"mse": "pixel MSE (images in [0, 1])", "psnr": "PSNR (dB)",
                 "latent_rel": "relative latent error ||z - ẑ|| / ||z||"}


def _md(report, name: str, *args, **kw) -> str:
    fn = getattr(report, name, None)
    return H.markdown(str(fn(*args, **kw))) if callable(fn) else ""


def section(found, ctx) -> str:
    r, meta = found.result, found.meta
    name = model_facts(meta).get("name", "?")
    figure = lambda: H.img(figure_uri(sparsity_figure(r, name, "mse")), "MSE by basis and sparsity",  # noqa: E731
                           caption="Pixel MSE of the sparse codes (mean with 95% interval over the images) for each "
                                   "coder and basis; the dotted line is the autoencoder's own reconstruction D(E(x)).")
    parts = [f'<p class="verdict">{H.esc(headline(r))}</p>',
             H.guarded("The verdict", _md, r, "verdict_markdown"),
             H.guarded("The figure", figure)]
    for metric in METRIC_LABELS:
        parts.append(H.details(f"Table: {METRIC_LABELS[metric]}", H.guarded(
            f"The {metric} table", _md, r, "to_markdown", metric=metric, header=False), open=metric == "mse"))
    if len(r.sparsities) > 1:
        parts.append(H.details("Sparsity sweep table", H.guarded("The sweep table", _md, r, "sweep_markdown")))
    parts.append("<h3>Reconstructions</h3>" + H.guarded("The reconstructions", reconstructions, r))
    pca = "; ".join(f"{d}: {info.get('pca_fit')}" for d, info in r.datasets.items())
    parts.append(H.note(f"PCA fit: {pca}."))
    parts.append(H.details("All numbers (one row per dataset x basis x coder x sparsity x metric)", rows_table(r)))
    parts.append(H.settings(meta))
    return "\n".join(p for p in parts if p)


def _label(r, basis: str) -> str:
    fn = getattr(r, "label", None)
    return str(fn(basis)) if callable(fn) else basis


def sparsity_figure(r, name: str, metric: str = "mse"):
    """One panel per dataset: the sweep as curves, or one sparsity as bars with 95% intervals."""
    import textwrap

    names = list(r.datasets)
    sweep = len(r.sparsities) > 1
    n_bars = len(r.coders) * len(r.bases)
    width = 5.2 if sweep else max(5.2, 0.62 * n_bars + 1.8)
    fig = new_figure(width * max(1, len(names)), 4.8)
    axes = fig.subplots(1, max(1, len(names)), squeeze=False)[0]
    for ax, d in zip(axes, names, strict=False):
        floor = r.stat(d, AE, metric=metric).mean
        if sweep:
            xs = [100 * s for s in r.sparsities]
            for c in r.coders:
                for b in r.bases:
                    st = [r.stat(d, b, c, s, metric) for s in r.sparsities]
                    ax.errorbar(xs, [t.mean for t in st], yerr=[t.half for t in st], marker="o", ms=4, capsize=3,
                                ls="-" if c == "omp" else "--", label=f"{c} · {_label(r, b)}")
            ax.set_xscale("log")
            ax.set_xlabel("sparsity (% of atoms non-zero, log scale)")
        else:
            s = r.sparsities[0] if r.sparsities else None
            bars = [(c, b, r.stat(d, b, c, s, metric)) for c in r.coders for b in r.bases]
            for j, (c, b, st) in enumerate(bars):
                if st.mean != st.mean:  # not measured for this coder (e.g. lasso on the unmerged end points)
                    ax.text(j, 0, "n/a", ha="center", va="bottom", fontsize=8)
                    continue
                ax.bar(j, st.mean, yerr=st.half, capsize=4, color=f"C{r.bases.index(b)}",
                       hatch="" if c == "omp" else "//", edgecolor="k", linewidth=0.5)
            ticks = [f"{c} · " + textwrap.shorten(_label(r, b), 24, placeholder="…") for c, b, _ in bars]
            ax.set_xticks(range(len(bars)), ticks, rotation=35, ha="right", fontsize=8)
            ax.set_xlabel(f"coder · basis, {100 * float(s):.3g}% of atoms non-zero" if s is not None else "coder · basis")
            top = max([t.mean + t.half for _, _, t in bars if t.mean == t.mean] + [floor])
            ax.set_ylim(0, 1.3 * top)  # room for the legend above the bars
        ax.axhline(floor, color="gray", ls=":", label=f"{AE} D(E(x)) = {floor:.3g}")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(f"{textwrap.shorten(d, 60, placeholder='…')} (n={r.datasets[d].get('n')})", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
    a = r.attractors
    fig.suptitle(f"{name}: {a.get('n_atoms')} {a.get('atoms_are')} as atoms, {r.config.get('n_images')} "
                 f"images per set, coder {r.config.get('coder')}", fontsize=10)
    return fig


def _examples(r, d: str, row: str):
    ex = r.examples
    return ex.get(f"{d}|{row}", ex.get((d, row)))


def reconstructions(r) -> str:
    """Per dataset, a table: rows original / autoencoder / each basis, columns the example images."""
    out = []
    coder = r.coders[0] if r.coders else ""
    s = r.config.get("sparsity")
    for d in r.datasets:
        rows = [(name, _examples(r, d, name)) for name in ["original", AE, *r.bases]]
        rows = [(n, x) for n, x in rows if x is not None]
        if not rows:
            continue
        body = []
        for name, x in rows:
            label = name if name in ("original", AE) else f"{_label(r, name)} ({coder}, {100 * float(s):.3g}%)"
            cells = "".join(f'<td>{thumb(im, 80, name)}</td>'
                            for im in x)
            body.append(f"<tr><th>{H.esc(label)}</th>{cells}</tr>")
        out.append(f"<table><caption>{H.esc(d)}: originals and their reconstructions</caption>{''.join(body)}</table>")
    return "\n".join(out) or H.note("This report holds no example images.")
