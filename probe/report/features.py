"""Which inputs a latent feature K captures: the basins whose attractor has the highest K, the
images that flow into each, and the decoded attractor with K zeroed and at its largest value."""
from __future__ import annotations

from . import html as H
from .context import model_facts
from .figures import figure_uri, new_figure, thumb
from .generic import rows_table


def section(found, ctx) -> str:
    r, meta = found.result, found.meta
    parts = []
    summary = r.summary() if callable(getattr(r, "summary", None)) else []
    if summary:
        parts.append(f'<p class="verdict">{H.esc(summary[0])}</p>' + H.markdown("\n".join(summary[1:])))
    parts.append(H.note("Per basin: the images that flow in (highest K first, with their K), then the decoded "
                        "attractor, the same with K set to 0, and with K at its largest value over the images: "
                        "what the feature adds."))
    parts.append(H.guarded("The basins", basins, r))
    parts.append(H.guarded("The figure", lambda: H.img(
        figure_uri(activation_figure(r, model_facts(meta).get("name", "?"))), "activation of K",
        caption="Each image's activation of K against K at the attractor it flows to; the shown basins are "
                "coloured, the others grey.")))
    parts.append(H.details("Every image: rank, activation, attractor (sortable)", rows_table(r)))
    parts.append(H.settings(meta))
    return "\n".join(p for p in parts if p)


def basins(r) -> str:
    rows = []
    for j, a in enumerate(r.top):
        imgs = r.gallery[r.gallery_basin == a]
        acts = r.activation[r.assignment == a].sort(descending=True).values
        cells = [f"<td>{thumb(img, 80, f'basin {a} image')}<br><small>K={float(k):.3g}</small></td>"
                 for img, k in zip(imgs, acts, strict=False)]
        labels = (f"attractor, K={float(r.attractor_activation[a]):.3g}", "K = 0", f"K = {r.k_max:.3g}")
        if len(r.decoded) > j:
            edge = ' style="border-left:3px solid #4a6ee0"'  # the model's pictures begin here
            cells += [f'<td{edge if v == 0 else ""}>{thumb(r.decoded[j, v], 96, labels[v])}<br>'
                      f"<small>{H.esc(labels[v])}</small></td>" for v in range(3)]
        head = (f"basin {a}<br>{int(r.counts[a])} images<br>"
                f"{'stable' if bool(r.stable[a]) else 'not stable'}")
        rows.append(f"<tr><th>{head}</th>{''.join(cells)}</tr>")
    if not rows:
        return H.warn("No image converged to an attractor, so there is no basin to show.")
    return f"<table><caption>feature {r.feature}: top {len(rows)} basins by K at the attractor</caption>" \
           + "".join(rows) + "</table>"


def activation_figure(r, name: str):
    fig = new_figure(7.5, 4.8)
    ax = fig.subplots()
    scores = r.scores() if callable(getattr(r, "scores", None)) else r.end_activation
    shown = set(r.top)
    other = [i for i in range(len(r.activation)) if int(r.assignment[i]) not in shown]
    if other:
        ax.scatter(r.activation[other].numpy(), scores[other].numpy(), s=8, color="0.7", label="other basins")
    for a in r.top:
        m = r.assignment == a
        ax.scatter(r.activation[m].numpy(), scores[m].numpy(), s=12, label=f"basin {a} ({int(m.sum())} images)")
    ax.set_xlabel(f"activation of K = {r.feature} in the encoded image ({r.reduce} over positions)")
    ax.set_ylabel("K at the attractor the image flows to")
    ax.set_title(f"{name}\nfeature {r.feature}: {len(r.activation)} images, {len(r.counts)} attractors", fontsize=9)
    ax.legend(fontsize=7)
    return fig
