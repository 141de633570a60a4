"""The page: HTML helpers that every section uses, and the one style sheet and script.

Everything is inline (images are data: URIs), so the file opens offline, from anywhere, with
nothing fetched. The script sorts and filters tables and opens basins; the first script on the
page records any error into ``body[data-errors]`` and shows it, so a broken page says so.
"""
from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["esc", "table", "settings", "img", "gallery", "details", "note", "warn", "markdown", "page", "guarded"]


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 4) -> str:
    """A cell value: floats to ``digits`` significant digits, everything else as text."""
    if isinstance(x, bool) or x is None:
        return "" if x is None else ("yes" if x else "no")
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return f"{x:.{digits}g}" if x == 0 or 1e-3 <= abs(x) < 1e6 else f"{x:.{max(1, digits - 1)}e}"
    if isinstance(x, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in x)
    if isinstance(x, dict):
        return ", ".join(f"{k} {fmt(v, digits)}" for k, v in x.items())
    return str(x)


def table(head: list[str], rows: Iterable[list[Any]], *, caption: str = "", sortable: bool = True,
          filter: bool = False, raw: bool = False, cls: str = "") -> str:
    """A table; ``raw`` cells are HTML already. Sortable tables sort on a header click, and
    keep each cell's number in ``data-v`` so that "1e-05" sorts below "0.01"."""
    rows = list(rows)
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    attrs = f' class="{classes}"' if classes else ""
    out = []
    if filter:
        out.append('<input class="filter" type="search" placeholder="filter rows ..." aria-label="filter rows">')
    out.append(f"<table{attrs}>")
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>")
    for r in rows:
        cells = []
        for v in r:
            num = v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
            dv = f' data-v="{num!r}"' if num is not None and math.isfinite(num) else ""
            cells.append(f"<td{dv}>{v if raw and isinstance(v, str) else esc(fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict) and d:
        return [kv for k, v in d.items() for kv in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, d)]


def settings(d: dict, title: str = "Settings that made this result", open: bool = False) -> str:
    """Every setting, nested keys flattened (``config.tol``), in a filterable table."""
    rows = [[k, v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v)]
            for k, v in _flatten(d)]
    return details(f"{title} ({len(rows)})", table(["setting", "value"], rows, filter=True), open=open, cls="settings")


def img(uri: str, alt: str, *, caption: str = "", width: int | None = None, pixelated: bool = False) -> str:
    style = f' style="width:{width}px"' if width else ""
    cls = ' class="px"' if pixelated else ""
    tag = f'<img src="{uri}" alt="{esc(alt)}"{cls}{style}>'
    return f"<figure>{tag}<figcaption>{esc(caption)}</figcaption></figure>" if caption else f"<figure>{tag}</figure>"


def gallery(items: list[tuple[str, str]], *, cls: str = "") -> str:
    """Tiles of (an <img> tag, e.g. from ``figures.thumb``, caption)."""
    tiles = [f'<figure class="tile">{tag}<figcaption>{esc(c)}</figcaption></figure>' for tag, c in items]
    return f'<div class="gallery {cls}">' + "".join(tiles) + "</div>"


def details(summary: str, body: str, *, open: bool = False, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<details{c}{' open' if open else ''}><summary>{esc(summary)}</summary>{body}</details>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def warn(text: str) -> str:
    return f'<p class="warn">{esc(text)}</p>'


def guarded(what: str, fn, *args, **kw) -> str:
    """``fn(*args, **kw)``, or one line saying why ``what`` is missing: one broken part costs only itself."""
    try:
        return fn(*args, **kw)
    except Exception as e:
        line = (str(e).strip() or type(e).__name__).splitlines()[0]
        return warn(f"{what} could not be drawn ({type(e).__name__}: {line})")


def _inline(s: str) -> str:
    s = esc(s)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


def markdown(text: str) -> str:
    """The small markdown the probes write (headings, lists, pipe tables, bold, code) -> HTML."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            head = [c.strip() for c in line.strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([_inline(c.strip()) for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append(table(head, rows, raw=True))
            continue
        if line.startswith("#"):
            level = min(6, len(line) - len(line.lstrip("#")) + 2)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.lstrip().startswith(("- ", "* ")):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith(("- ", "* ")):
                items.append(f"<li>{_inline(lines[i].lstrip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line:
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px 60px;color:#1b1b1b}
h1{font-size:24px;margin:18px 0 4px}h2{font-size:20px;border-bottom:2px solid #ccd;padding-bottom:4px;margin-top:36px}
h3{font-size:17px;margin:22px 0 8px}nav a{margin-right:14px}code{background:#f2f2f5;padding:0 3px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:13.5px}th,td{border:1px solid #d5d5dd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#eef0f6}table.sortable th{cursor:pointer}
table.sortable th:after{content:" \\2195";color:#999}caption{text-align:left;font-weight:600;padding:4px 0}
figure{margin:6px 0 14px}figure img{max-width:100%;height:auto}figcaption{font-size:13px;color:#444}
img.px{image-rendering:pixelated}.gallery{display:flex;flex-wrap:wrap;gap:8px}.gallery figure{margin:0}
.tile{border:1px solid #dde;padding:4px;background:#fafafe;text-align:center}.tile figcaption{font-size:12px}
.card{cursor:pointer}.card:hover,.card.on{outline:3px solid #4a6ee0}.unstable{background:#fff2f0}
.basin{display:none;border:2px solid #4a6ee0;padding:8px 12px;margin:10px 0;background:#f7f9ff}.basin.on{display:block}
.note{color:#333;background:#f4f6ea;border-left:4px solid #9a3;padding:6px 10px}
.warn{background:#fff4e5;border-left:4px solid #e90;padding:6px 10px}
.verdict{font-size:16px;border-left:6px solid #4a6ee0;background:#f1f4fd;padding:8px 12px}
.filter{margin:6px 0;padding:3px 6px;width:260px}.settings summary,.files summary{font-weight:600;cursor:pointer}
.strip{display:flex;gap:4px;align-items:flex-end;flex-wrap:wrap;margin-bottom:10px}
#errors{display:none;background:#c00;color:#fff;padding:8px}
"""

# The first script: any error on the page becomes visible, and testable.
CATCH = """<script>(function(){var errs=[];function rec(m){errs.push(String(m));
document.documentElement.setAttribute('data-errors',errs.join(' | '));}
window.addEventListener('error',function(e){rec(e.message)});
window.addEventListener('unhandledrejection',function(e){rec(e.reason)});
var ce=console.error;console.error=function(){rec(Array.prototype.join.call(arguments,' '));ce.apply(console,arguments)};
})();</script>"""

JS = """<script>(function(){
function val(td){var v=td.getAttribute('data-v');return v!==null?parseFloat(v):td.textContent.trim()}
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){var asc=true;th.addEventListener('click',function(){
  var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
  rows.sort(function(x,y){var a=val(x.cells[i]),c=val(y.cells[i]);
   var r=(typeof a==='number'&&typeof c==='number')?a-c:String(a).localeCompare(String(c),undefined,{numeric:true});
   return asc?r:-r});asc=!asc;rows.forEach(function(r){b.appendChild(r)})})})});
document.querySelectorAll('input.filter').forEach(function(inp){var t=inp.nextElementSibling;
 inp.addEventListener('input',function(){var q=inp.value.toLowerCase();
  Array.prototype.forEach.call(t.tBodies[0].rows,function(r){
   r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none'})})});
document.querySelectorAll('[data-basin]').forEach(function(card){card.addEventListener('click',function(){
 var id=card.getAttribute('data-basin'),panel=document.getElementById(id),was=panel.classList.contains('on');
 var scope=card.closest('section');
 scope.querySelectorAll('.basin.on,.card.on').forEach(function(e){e.classList.remove('on')});
 if(!was){panel.classList.add('on');card.classList.add('on');panel.scrollIntoView({block:'nearest'})}})});
var e=document.documentElement.getAttribute('data-errors');
if(e){var d=document.getElementById('errors');d.textContent='errors on this page: '+e;d.style.display='block'}
})();</script>"""


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole file from (anchor id, heading, body HTML) sections."""
    nav = "".join(f'<a href="#{sid}">{esc(h)}</a>' for sid, h, _ in sections)
    body = "\n".join(f'<section id="{sid}"><h2>{esc(h)}</h2>\n{b}\n</section>' for sid, h, b in sections)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{CATCH}'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f'<div id="errors"></div><h1>{esc(title)}</h1><p>{esc(subtitle)}</p><nav>{nav}</nav>\n{body}\n{JS}'
            "</body></html>\n")
