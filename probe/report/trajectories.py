"""Film strips: decoded states along a few trajectories, re-run from the set's own seeds.

Gaussian seeds are drawn in fixed blocks from ``(seed, block)`` (field/seeds.py), so seed ``i``
of a saved set is rebuilt exactly and iterated again with the set's own tol and max_steps,
every ``k``-th state recorded. Each strip ends with a check that the re-run stopped where the
saved run did (cosine of the two end points), so the pictures are of the run on the page.
"""
from __future__ import annotations

import math

import torch

from . import html as H
from .figures import decode, thumb
from .read import first_line

FRAMES = 10  # states per strip, besides the first and the last


def seeds_of(aset, m):
    """(idx -> z0 [len(idx), *shape], or None, and why not)."""
    c = aset.config
    how = c.get("seeds", c.get("seed_dist", "normal"))
    if how == "given" or (how == "data" and getattr(aset, "seed_mean", None) is None):
        return None, (f"the seeds were {how!r} (encoded images, or data-matched noise saved without its statistics), "
                      f"which the saved set does not hold; only Gaussian seeds can be rebuilt")
    if m is None:
        return None, "no model to decode them"
    n = int(c.get("n_seeds", len(aset.status)))
    if n != len(aset.status):
        return None, f"the config says {n} seeds but the set holds {len(aset.status)}"

    def rebuild(idx):
        return torch.cat([aset.seeds(int(i), int(i) + 1) for i in idx])
    return rebuild, ""


def pick_seeds(aset, n: int) -> list[tuple[int, str]]:
    """The first seed of each of the ``n`` largest basins, one seed per other way of ending, and,
    when that leaves room (a map with few or no attractors), seeds spread over the rest."""
    from ..field.iterate import STATUS

    out = []
    for k in range(min(len(aset), n)):
        out.append((int((aset.assignment == k).nonzero().flatten()[0]), f"into attractor #{k}"))
    for code, name in enumerate(STATUS):
        hit = (aset.status == code).nonzero().flatten()
        if name != "converged" and len(hit):
            out.append((int(hit[0]), name))
    taken = {i for i, _ in out}
    for i in torch.linspace(0, len(aset.status) - 1, max(n, 1) + 2).round().long().tolist():
        if len(out) >= n or i in taken:
            continue
        taken.add(i)
        status = STATUS[int(aset.status[i])] if int(aset.status[i]) < len(STATUS) else "?"
        out.append((i, status if status != "converged" else f"into attractor #{int(aset.assignment[i])}"))
    return out[: max(n, 1) + 1]


def film_strips(aset, m, n: int) -> str:
    seeds, why = seeds_of(aset, m)
    if seeds is None:
        return H.warn(f"No film strips: {why}.")
    picks = pick_seeds(aset, n)
    idx = torch.tensor([i for i, _ in picks])
    typical = int(aset.steps[idx].float().median())  # a strip of the typical seed shows about FRAMES states
    every = max(1, math.ceil(typical / FRAMES))
    c = aset.config
    try:
        from ..field import iterate

        traj = iterate(m, seeds(idx), tol=c.get("tol"), max_steps=c.get("max_steps"), rtol=c.get("rtol"),
                       record=True, record_every=every)
    except Exception as e:  # the engine is another owner's: a failure here costs only the strips
        return H.warn(f"No film strips: iterating the seeds again failed ({first_line(e)}).")
    out = [H.note(f"Seeds rebuilt from (seed {c.get('seed')}, index) and iterated again with tol {c.get('tol')} "
                  f"and max_steps {c.get('max_steps')}; about {FRAMES} states of each are decoded, evenly "
                  f"spaced from the seed to its end point.")]
    for row, (i, label) in enumerate(picks):
        states = traj.trajectory(row)
        steps = [min(j * every, int(traj.steps[row])) for j in range(len(states))]
        keep = sorted({round(k * (len(states) - 1) / (FRAMES + 1)) for k in range(FRAMES + 2)})
        states, steps = states[keep], [steps[k] for k in keep]
        images = decode(m, states)
        tiles = [(thumb(x, 84, f"seed {i} t={t}"), f"t={t}") for x, t in zip(images, steps, strict=True)]
        end = aset.end_points[i].flatten().float()
        again = traj.z[row].flatten().float()
        cos = float(torch.nn.functional.cosine_similarity(end, again, dim=0))
        check = (f"re-run: {int(traj.steps[row])} steps (saved run: {int(aset.steps[i])}), end point cosine "
                 f"{cos:.6f} to the saved one")
        if cos < 0.999:
            check += (" (where J_f stretches space, the rounding of another batch size grows along the trajectory: "
                      "the re-run shows the same dynamics, not the same end point)")
        out.append(f"<p><b>seed {i}</b> ({H.esc(label)}); {H.esc(check)}</p>" + H.gallery(tiles, cls="strip"))
    return "\n".join(out)
