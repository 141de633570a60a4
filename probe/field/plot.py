"""A grid of decoded attractors, largest basins first, each titled with its basin size."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import torch

__all__ = ["plot_set", "decode"]


def plot_set(result, map, path: Path | None = None, max_points: int = 64):
    """The ``matplotlib.figure.Figure`` of ``result``'s attractors (written to ``path`` as a PNG when given)."""
    from matplotlib.figure import Figure

    n_seeds = len(result.status)
    rule = f"{result.merge['rule']} {'>' if result.merge['rule'] == 'cosine' else '<='} {result.merge['threshold']:g}"
    if len(result):
        k = min(len(result), max_points)
        images = decode(map, result.points[:k])
        titles = [f"#{i} n={int(result.counts[i])}" + ("" if bool(result.stable[i]) else " unstable") for i in range(k)]
        head = f"{len(result)} fixed points, {int(result.stable.sum())} stable, from {n_seeds} seeds (merge {rule})"
    else:  # nothing converged: show where seeds stopped, and say that these are not attractors
        pick = torch.linspace(0, n_seeds - 1, min(n_seeds, max_points)).round().long().unique()
        images = decode(map, result.end_points[pick])
        titles = [f"seed {int(i)}" for i in pick]
        head = f"no attractors ({result.verdict}): end points of {len(pick)} of {n_seeds} seeds after their last step"
    cols = min(8, max(1, len(images)))
    rows = max(1, math.ceil(len(images) / cols))
    head = textwrap.fill(head, width=max(28, 22 * cols))  # a grid of one or two images still shows the whole title
    fig = Figure(figsize=(1.6 * cols, 1.8 * rows + 0.3 + 0.15 * head.count("\n") + 0.2))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles, strict=False):
        img = img.permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                  vmin=0, vmax=1)
        ax.set_title(title, fontsize=7)
    fig.suptitle(head, fontsize=8)
    fig.tight_layout()
    if path is not None:
        from ..io import save_figure

        save_figure(fig, Path(path), dpi=110, what="the attractor grid")
    return fig


@torch.no_grad()
def decode(map, z, batch_size: int = 32):
    parts = [map.decode(z[i:i + batch_size]).float().clamp(0, 1).cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(parts)
