"""Basins of a set of images: which images each attractor captures, with their class mix."""
from __future__ import annotations

import math
import zlib

from . import html as H
from .figures import decode, figure_uri, new_figure, png_uri, thumb

MAX_CARDS = 64


def section(found, ctx) -> str:
    b, meta = found.result, found.meta
    parts = []
    table = b.table() if callable(getattr(b, "table", None)) else ""
    if table:
        parts.append(H.markdown(table.split("\n\n")[0]))
    m, why = ctx.map_for(meta, found.folder)
    images = decode(m, b.points[:MAX_CARDS]) if m is not None and len(b.points) else None
    if images is None:
        parts.append(H.note(f"No decoded attractors: {why}; the pictures the command wrote are shown."))
        grid = found.folder / "attractors.png"
        if grid.is_file():
            parts.append(H.img(png_uri(grid.read_bytes()), "decoded attractors",
                               caption="decoded attractors with their basin sizes (attractors.png)"))
    galleries = found.folder / "galleries"
    parts.append(H.note("Click an attractor to open its basin: the images that flow into it."))
    cards, panels = [], []
    n = max(1, len(b.assignment))
    for k in range(min(len(b.points), MAX_CARDS)):
        pid = f"basin-{zlib.crc32(str(found.folder).encode())}-{k}"
        mix = b.class_mix(k) if callable(getattr(b, "class_mix", None)) else {}
        top = _mix(dict(list(mix.items())[:3]))
        cap = f"A{k}: {int(b.counts[k])} images ({100 * int(b.counts[k]) / n:.3g}%)" + ("" if bool(b.stable[k]) else ", unstable")
        pic = (thumb(images[k], 128, f"attractor {k}")
               if images is not None else f'<div style="width:112px">A{k}</div>')
        cards.append(f'<figure class="tile card" data-basin="{pid}">{pic}<figcaption>{H.esc(cap)}'
                     f"<br>{H.esc(top)}</figcaption></figure>")
        body = [f"<p><b>Basin A{k}</b>: {int(b.counts[k])} images; class mix: {H.esc(_mix(mix) or 'no labels')}</p>"]
        png = galleries / f"basin_{k:03d}.png"
        if png.is_file():
            body.append(H.img(png_uri(png.read_bytes()), f"basin {k} gallery",
                              caption="the decoded attractor first, then images of its basin (class or index below each)"))
        else:
            body.append(H.note("No gallery was written for this basin (the command writes the largest ones)."))
        panels.append(f'<div class="basin" id="{pid}">{"".join(body)}</div>')
    parts.append('<div class="gallery">' + "".join(cards) + "</div>" + "".join(panels))
    rows = [[k, int(b.counts[k]), "yes" if bool(b.stable[k]) else "no", _mix(b.class_mix(k))]
            for k in range(len(b.points))]
    parts.append(H.table(["attractor", "images", "stable", "class mix"], rows, filter=len(rows) > 8))
    parts.append(H.img(figure_uri(size_figure(b, meta)), "basin sizes",
                       caption="Images per basin, largest first (log scale when sizes span a decade)."))
    parts.append(H.settings(meta))
    return "\n".join(parts)


def _mix(mix: dict) -> str:
    return ", ".join(f"{c}: {n}" for c, n in mix.items())


def size_figure(b, meta: dict):
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(9, 3.6)
    ax = fig.subplots()
    counts = [int(c) for c in b.counts]
    ax.bar(range(len(counts)), counts, color="C0", label=f"{len(counts)} basins")
    if counts and max(counts) >= 10 * max(1, min(counts)):
        ax.set_yscale("log")
    if len(counts) <= 40:
        ax.set_xticks(range(len(counts)), [f"A{k}" for k in range(len(counts))])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("attractor (largest basin first)")
    ax.set_ylabel("images in the basin")
    merge = meta.get("merge", {})
    purity = b.purity() if callable(getattr(b, "purity", None)) else math.nan
    ax.set_title(f"{(meta.get('map') or meta.get('model') or {}).get('name')}: {len(b.assignment)} images of "
                 f"{(meta.get('images') or {}).get('name')}, merge {merge.get('rule')} {merge.get('threshold')}, "
                 f"class purity {purity:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    return fig
