"""The attractor atlas: one static HTML page for any result folder (or a folder of several).

    from probe.report import write_report
    write_report("demo-out")            # -> demo-out/report.html

The page is one file: figures and images are embedded as data: URIs, nothing is fetched when
it is opened, and a little plain JavaScript sorts and filters the tables and opens basins.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path

from ..errors import ProbeError
from . import html as H
from .context import Context, model_facts
from .read import SECTIONS, Found, discover, first_line

__all__ = ["write_report", "render_report"]


def _where(f: Found, root: Path) -> str:
    try:
        rel = f.folder.resolve().relative_to(root.resolve())
        return str(rel) if str(rel) != "." else root.resolve().name
    except ValueError:
        return str(f.folder)


def _body(f: Found, ctx: Context) -> str:
    module = SECTIONS[f.section].module if f.result is not None else "probe.report.generic"
    try:
        return importlib.import_module(module).section(f, ctx)
    except Exception as e:  # one broken section must not cost the whole page
        return (H.warn(f"This section could not be drawn ({type(e).__name__}: {first_line(e)}); "
                       f"the saved settings and files follow.")
                + importlib.import_module("probe.report.generic").section(f, ctx))


def render_report(folder: str | Path, *, model=None, trajectories: int = 4, device: str | None = None) -> str:
    """The page for ``folder`` as a string (see :func:`write_report`)."""
    folder = Path(folder)
    results, problems = discover(folder)
    if not results:
        why = f": {problems[0]}" if problems else " (no meta.json, study.json or memorization.json with a kind)"
        raise ProbeError(f"{folder} holds no probe result{why}")
    ctx = Context(model=model, trajectories=trajectories, device=device)
    sections = []
    for i, f in enumerate(results):
        where = _where(f, folder)
        name = model_facts(f.meta).get("name")
        head = f"{SECTIONS[f.section].heading}: {where}" + (f" ({name})" if isinstance(name, str) else "")
        sections.append((f"r{i}-{f.section}", head, f'<p class="note">folder <code>{H.esc(f.folder)}</code>, '
                                                    f"kind {H.esc(f.kind)}</p>" + _body(f, ctx)))
    if problems:
        sections.append(("problems", "Folders that could not be read",
                         "<ul>" + "".join(f"<li>{H.esc(p)}</li>" for p in problems) + "</ul>"))
    if all(f.folder.resolve() != folder.resolve() for f in results):
        from .generic import files_html

        loose = sorted(p for p in folder.iterdir() if p.is_file())
        extra = files_html(loose, title=f"Files in {folder.resolve().name}/")
        if extra:
            sections.append(("files", "Other files in the folder", H.details("show the files", extra)))
    kinds = ", ".join(sorted({f.kind for f in results}))
    subtitle = (f"{len(results)} result(s) ({kinds}) in {folder.resolve()}; written "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} by probe {_version()}. Self-contained: open it offline.")
    return H.page(f"probe report: {folder.resolve().name}", subtitle, sections)


def write_report(folder: str | Path, out: str | Path | None = None, *, model=None, trajectories: int = 4,
                 device: str | None = None) -> Path:
    """Write one self-contained HTML page for the result(s) in ``folder``; returns its path.

    ``out`` defaults to ``folder/report.html``. ``model`` (a LatentMap or a spec) is used to
    decode latents when the result's own model cannot be loaded from what it recorded;
    ``trajectories`` film strips are drawn per attractor set (0: none).
    """
    from ..files import atomic_write

    text = render_report(folder, model=model, trajectories=trajectories, device=device)
    out = Path(out) if out is not None else Path(folder) / "report.html"
    atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("latent-probe")
    except Exception:  # a source checkout that is not installed
        return "(source)"
