"""Comparing two models without data: the tables, and each side's dictionary next to its cross-codes."""
from __future__ import annotations

from . import html as H
from .figures import thumb

SIDES = (("A", "B"), ("B", "A"))


def section(found, ctx) -> str:
    r, meta = found.result, found.meta
    parts = [H.markdown(r.to_markdown())] if callable(getattr(r, "to_markdown", None)) else []
    sc = getattr(r, "scalars", {}) or {}
    if sc:
        parts.append(H.details("Scalars", H.table(["name", "value"], [[k, H.fmt(v)] for k, v in sc.items()])))
    parts.append("<h3>Each model's dictionary and its cross-codes</h3>")
    parts.append(grids(r))
    parts.append(H.settings(meta))
    return "\n".join(parts)


def _img(r, key: str):
    return r.images.get(key, r.images.get(tuple(key.split("|"))))


def grids(r) -> str:
    """Per side: row 1 the decoded dictionary, row 2 coded via the other model's attractors,
    row 3 via a random orthogonal basis of the other's latent (the reference); 96 px per image."""
    out = []
    for s, other in SIDES:
        own = _img(r, s)
        if own is None:
            continue
        name = r.models.get(s, {}).get("map", {}).get("name", s) if isinstance(r.models.get(s), dict) else s
        rows = [(f"{s}: decoded dictionary", own),
                (f"{s}'s images coded via {other}'s attractors", _img(r, f"{s}->{other}|attractors")),
                (f"via {other}'s random orthogonal basis (reference)", _img(r, f"{s}->{other}|orthogonal"))]
        body = []
        for label, x in rows:
            if x is None:
                continue
            cells = "".join(f'<td>{thumb(im, 96, f"{label} {j}")}'
                            f"<br><small>#{j}</small></td>" for j, im in enumerate(x))
            body.append(f"<tr><th>{H.esc(label)}</th>{cells}</tr>")
        out.append(f"<table><caption>{H.esc(s)} = {H.esc(name)}</caption>{''.join(body)}</table>")
    return "\n".join(out) or H.note("This comparison holds no images.")
