"""Any result, including kinds this report has no page for: its table, settings and files."""
from __future__ import annotations

import csv
import io
from collections.abc import Collection
from pathlib import Path

from . import html as H
from .figures import png_uri
from .read import first_line

MAX_CSV_ROWS = 500


def headline(result) -> str:
    """The one line a result names its settings in (``heading()``; ``header()`` in older results)."""
    for name in ("heading", "header"):
        fn = getattr(result, name, None)
        if callable(fn):
            try:
                text = fn()
            except TypeError:  # a method that needs arguments is not the headline
                continue
            if isinstance(text, str):
                return text
    return ""


def rows_table(result) -> str:
    """``result.to_rows()`` (the Result contract's tidy table) as a sortable, filterable table."""
    to_rows = getattr(result, "to_rows", None)
    if not callable(to_rows):
        return ""
    try:
        rows = list(to_rows())  # type: ignore[call-overload]
    except Exception as e:  # a result without a table still has its settings and files
        return H.warn(f"its table could not be built ({first_line(e)})")
    if not rows:
        return ""
    head = list(dict.fromkeys(k for r in rows for k in r))
    body = [[r.get(k, "") if isinstance(r.get(k, ""), (int, float, str, bool)) else H.fmt(r.get(k)) for k in head]
            for r in rows[:MAX_CSV_ROWS]]
    return H.table(head, body, filter=len(rows) > 8, caption=f"Table ({len(rows)} rows)")


def files_html(files: list[Path], skip: Collection[str] = (), title: str = "Files in this folder") -> str:
    """PNGs embedded, markdown rendered, CSVs as tables; ``skip`` names files the page redraws."""
    parts = []
    for p in files:
        if p.name in skip or p.name == "report.html":
            continue
        try:
            if p.suffix.lower() in (".png", ".jpg"):
                mime = "png" if p.suffix.lower() == ".png" else "jpeg"
                uri = png_uri(p.read_bytes()).replace("image/png", f"image/{mime}")
                parts.append(H.img(uri, p.name, caption=p.name))
            elif p.suffix.lower() == ".md":
                parts.append(H.details(p.name, H.markdown(p.read_text(errors="replace"))))
            elif p.suffix.lower() == ".csv":
                parts.append(H.details(p.name, csv_table(p.read_text(errors="replace"))))
        except OSError as e:
            parts.append(H.warn(f"{p.name}: {first_line(e)}"))
    if not parts:
        return ""
    return f"<h3>{H.esc(title)}</h3>" + "\n".join(parts)


def csv_table(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return ""
    body = [[_num(v) for v in r] for r in rows[1:MAX_CSV_ROWS + 1]]
    more = H.note(f"{len(rows) - 1 - MAX_CSV_ROWS} more rows in the file.") if len(rows) - 1 > MAX_CSV_ROWS else ""
    return H.table(rows[0], body, filter=len(body) > 8) + more


def _num(v: str):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def section(found, ctx) -> str:
    parts = []
    if found.error:
        parts.append(H.warn(f"This {found.kind} {found.error}."))
    summary = found.meta.get("summary")
    if isinstance(summary, list) and all(isinstance(s, str) for s in summary):
        parts.append("<ul>" + "".join(f"<li>{H.esc(s)}</li>" for s in summary) + "</ul>")
    if found.result is not None:
        parts.append(rows_table(found.result))
    parts.append(files_html(found.files))
    parts.append(H.settings(found.meta, open=found.result is None))
    return "\n".join(p for p in parts if p)
