"""The atlas of one attractor set: what the attractors look like, how big their basins are,
how the seeds got there, and how sure the stability verdict is (METHOD.md sections 1-2)."""
from __future__ import annotations

import math

import torch
from matplotlib.ticker import MaxNLocator

from . import html as H
from .context import model_facts
from .figures import decode, figure_uri, new_figure, thumb
from .trajectories import film_strips, seeds_of

MAX_CARDS = 64      # decoded attractors shown as cards (the table lists all)
PER_BASIN = 16      # decoded seeds shown when a basin is opened
SEED_BUDGET = 512   # decoded seeds in all the basin panels together


def _rule(merge: dict) -> str:
    return f"{merge.get('rule')} {'>' if merge.get('rule') == 'cosine' else '<='} {merge.get('threshold')}"


def _name(meta: dict) -> str:
    return str(model_facts(meta).get("name", "unknown model"))


def settings_line(aset) -> str:
    c = aset.config
    return (f"{len(aset.status)} seeds ({c.get('seeds', c.get('seed_dist'))}, seed {c.get('seed')}), "
            f"tol {c.get('tol')}, max_steps {c.get('max_steps')}, merge {_rule(aset.merge)}")


def section(found, ctx) -> str:
    aset, meta = found.result, found.meta
    name = _name(meta)
    parts = [f'<p class="verdict">{H.esc(aset.diagnosis.line)}</p>',
             "<ul>" + "".join(f"<li>{H.esc(s)}</li>" for s in aset.summary() if s != aset.diagnosis.line) + "</ul>"]
    m, why = ctx.map_for(meta, found.folder)
    parts.append(H.note(f"Pictures of latents: {why}." if m is not None else
                        f"No pictures of latents: {why}. Pass --model SPEC to probe report to draw them."))
    images = None
    if m is not None and len(aset):
        images = decode(m, aset.points[:MAX_CARDS])
    parts.append("<h3>Fixed points, largest basin first</h3>")
    parts.append(cards(aset, images, m, found.folder.name))
    parts.append(point_table(aset))
    if ctx.trajectories and m is not None:
        parts.append("<h3>Trajectories: decoded states along the iteration</h3>")
        parts.append(film_strips(aset, m, ctx.trajectories))
    elif ctx.trajectories:
        parts.append("<h3>Trajectories</h3>" + H.warn(f"No film strips: {why}."))
    parts.append("<h3>Convergence and stability</h3>")
    parts.append(H.img(figure_uri(decay_figure(aset, name)), "residual decay and steps per seed",
                       caption="Left: median relative step ||f(z) - z|| / ||z|| of the seeds still running, "
                               "per step (log scale). Right: f-evaluations each seed took, by how it ended."))
    parts.append(H.img(figure_uri(radius_figure(aset, name)), "spectral radius histogram",
                       caption="Spectral radius of J_f (power iteration on Jacobian-vector products): at each "
                               "fixed point, and at sampled seeds and their end points. Below 1: an attractor; "
                               "above 1: a saddle or a repeller."))
    parts.append(evidence(aset))
    parts.append(H.settings({k: v for k, v in meta.items() if k not in ("summary",)}))
    return "\n".join(parts)


def cards(aset, images, m, sid: str) -> str:
    k = len(aset)
    if k == 0:
        text = (f"No seed converged, so there are no attractors ({aset.verdict}). "
                "The film strips below show where seeds went instead.")
        if images is None and m is not None:
            pick = torch.linspace(0, len(aset.status) - 1, min(16, len(aset.status))).round().long().unique()
            ends = decode(m, aset.end_points[pick])
            tiles = [(thumb(x, 96, f"seed {int(i)} end"), f"seed {int(i)} end") for i, x in zip(pick, ends, strict=True)]
            return H.warn(text) + "<p>End points after the last step (not attractors):</p>" + H.gallery(tiles)
        return H.warn(text)
    n = len(aset.status)
    items, panels = [], []
    seeds, seeds_why = seeds_of(aset, m)
    per = max(4, min(PER_BASIN, SEED_BUDGET // min(k, MAX_CARDS)))  # decoding is the slow part on big models
    for i in range(min(k, MAX_CARDS)):
        rho, stable, count = float(aset.spectral_radius[i]), bool(aset.stable[i]), int(aset.counts[i])
        cap = f"#{i} n={count} ({100 * count / n:.3g}%) ρ={rho:.3g} {'stable' if stable else 'UNSTABLE'}"
        pid = f"basin-{_slug(sid)}-{i}"
        pic = (thumb(images[i], 128, f"attractor {i}")
               if images is not None else f'<div style="width:112px;height:40px">#{i}</div>')
        items.append(f'<figure class="tile card{"" if stable else " unstable"}" data-basin="{pid}" '
                     f'title="click: open basin #{i}">{pic}<figcaption>{H.esc(cap)}</figcaption></figure>')
        panels.append(f'<div class="basin" id="{pid}">{basin_panel(aset, i, m, seeds, seeds_why, per)}</div>')
    more = H.note(f"{k - MAX_CARDS} smaller basins are listed in the table only.") if k > MAX_CARDS else ""
    return (H.note("Click an attractor to open its basin: the seeds that flow into it.")
            + '<div class="gallery">' + "".join(items) + "</div>" + "".join(panels) + more)


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s) or "set"


def basin_panel(aset, i: int, m, seeds, seeds_why: str, per: int = PER_BASIN) -> str:
    members = (aset.assignment == i).nonzero().flatten()
    steps = aset.steps[members].float()
    head = (f"<b>Basin #{i}</b>: {len(members)} seeds; steps median {float(steps.median()):.0f}, "
            f"max {int(steps.max())}; spectral radius {float(aset.spectral_radius[i]):.4g} "
            f"({'stable' if bool(aset.stable[i]) else 'not stable: a saddle, not an attractor'}); "
            f"seed indices: {H.esc(_indices(members))}")
    if seeds is None or m is None:
        return f"<p>{head}</p>" + H.note(f"Seeds not drawn: {seeds_why}.")
    pick = members[:per]
    z0 = seeds(pick)
    tiles = [(thumb(x, 80, f"seed {int(j)}"), f"seed {int(j)}: {int(aset.steps[j])} steps")
             for j, x in zip(pick, decode(m, z0), strict=True)]
    return (f"<p>{head}</p><p>Decoded seeds D(z<sub>0</sub>) of the first {len(pick)} seeds that end here "
            f"(the attractor is what they become):</p>" + H.gallery(tiles))


def _indices(members: torch.Tensor, limit: int = 40) -> str:
    idx = [str(int(j)) for j in members[:limit]]
    return ", ".join(idx) + (f" ... ({len(members) - limit} more)" if len(members) > limit else "")


def point_table(aset) -> str:
    n = len(aset.status)
    rows = []
    for i in range(len(aset)):
        members = aset.assignment == i
        st = aset.steps[members].float()
        rows.append([i, int(aset.counts[i]), round(100 * int(aset.counts[i]) / n, 3),
                     float(aset.spectral_radius[i]), "yes" if bool(aset.stable[i]) else "no",
                     float(st.median()) if len(st) else float("nan")])
    if not rows:
        return ""
    return H.details(f"All {len(aset)} fixed points (sortable)", H.table(
        ["#", "basin size (seeds)", "share of seeds (%)", "spectral radius of J_f", "stable", "median steps"],
        rows, filter=True), open=len(aset) <= 12)


def decay_figure(aset, name: str):
    d = aset.diagnosis
    fig = new_figure(12, 4.2)
    ax, bx = fig.subplots(1, 2)
    curve = d.median_rel_step.float()
    if len(curve):
        steps = torch.arange(len(curve)) * d.curve_every + 1
        ok = torch.isfinite(curve) & (curve > 0)
        ax.plot(steps[ok].numpy(), curve[ok].numpy(), color="C0", label="median over running seeds")
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no curve recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step t (f-evaluations)")
    ax.set_ylabel("median relative step ||f(z) - z|| / ||z||")
    ax.set_title(f"{name}\nresidual decay ({settings_line(aset)})", fontsize=9)
    ax.legend(fontsize=8)
    from ..field.iterate import STATUS

    top = max(1, int(aset.steps.max())) if len(aset.steps) else 1
    bins = torch.linspace(0, top, 41).tolist()
    for code, label in enumerate(STATUS):
        s = aset.steps[aset.status == code]
        if len(s):
            bx.hist(s.numpy(), bins=bins, alpha=0.7, label=f"{label} ({len(s)})")
    bx.yaxis.set_major_locator(MaxNLocator(integer=True))
    bx.set_xlabel("f-evaluations per seed (steps)")
    bx.set_ylabel("seeds")
    bx.set_title(f"steps per seed, max_steps {aset.config.get('max_steps')}", fontsize=9)
    bx.legend(fontsize=8, title="how seeds ended", title_fontsize=8)
    return fig


def radius_figure(aset, name: str):
    d = aset.diagnosis
    fig = new_figure(8, 4.2)
    ax = fig.subplots()
    groups = [("fixed points", aset.spectral_radius), ("sampled seeds z0", d.rho_start), ("their end points", d.rho_end)]
    vals = torch.cat([g.float() for _, g in groups]) if any(len(g) for _, g in groups) else torch.zeros(0)
    vals = vals[torch.isfinite(vals)]
    if len(vals):
        lo, hi = min(float(vals.min()), 0.9), max(float(vals.max()), 1.1)
        bins = torch.linspace(lo, hi, 41).tolist()
        for label, g in groups:
            g = g.float()[torch.isfinite(g.float())]
            if len(g):
                ax.hist(g.numpy(), bins=bins, alpha=0.6, label=f"{label} ({len(g)})")
    ax.axvline(1.0, color="k", ls="--", label="ρ = 1: stability boundary")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("spectral radius ρ of J_f (dimensionless)")
    ax.set_ylabel("count")
    ax.set_title(f"{name}\nspectral radius, {int(aset.stable.sum())} of {len(aset)} fixed points stable "
                 f"({aset.config.get('power_iters')} power iterations)", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def evidence(aset) -> str:
    d = aset.diagnosis
    n = len(aset.status)
    rows = [[k, round(v * n), round(100 * v, 3)] for k, v in d.fractions.items()]
    out = ["<h3>Dynamics verdict: " + H.esc(d.verdict) + "</h3>",
           H.table(["how seeds ended", "seeds", "share (%)"], rows, caption="Outcome of every seed")]
    rs, re_ = d.rho_start.tolist(), d.rho_end.tolist()
    if rs or re_:
        rows = [[j, a, b] for j, (a, b) in enumerate(zip(rs, re_, strict=False))]
        out.append(H.table(["probe point", "ρ at seed z0", "ρ at its end point"], rows,
                           caption="Spectral radius of J_f sampled along trajectories"))
    curve = d.median_rel_step[torch.isfinite(d.median_rel_step)]
    if len(curve) > 1 and float(curve[0]) > 0:
        ratio = float(curve[-1] / curve[0])
        out.append(H.note(f"The median relative step fell by a factor {1 / ratio:.3g} from step 1 to step "
                          f"{(len(curve) - 1) * d.curve_every + 1}." if ratio > 0 and math.isfinite(ratio)
                          else "The median relative step reached zero."))
    return "\n".join(out)
