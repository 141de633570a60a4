"""Figures and images as data: URIs.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no backend switch), so a
report written from a notebook leaves the notebook's plotting alone. Images go in at their
own size and are enlarged by the page without smoothing, so pixels stay honest.
"""
from __future__ import annotations

import base64
import io

import torch
from torch import Tensor

from ..maps.base import LatentMap

__all__ = ["new_figure", "figure_uri", "image_uri", "thumb", "decode", "png_uri"]


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def figure_uri(fig, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def image_uri(x: Tensor) -> str:
    """One image [C, H, W] (float in [0, 1] or uint8) -> a PNG data URI."""
    from PIL import Image

    x = x.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    if x.dim() == 2:
        x = x[None]
    if x.shape[0] not in (1, 3):  # more channels than an image has: show the first three
        x = x[:3] if x.shape[0] > 3 else x[:1]
    a = x.permute(1, 2, 0).numpy()
    im = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a, mode="L" if a.shape[-1] == 1 else "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return png_uri(buf.getvalue())


def thumb(x: Tensor, width: int, alt: str) -> str:
    """An <img> shown ``width`` px wide: small images enlarged without smoothing, large ones stored at
    most twice that size (so a page of 256 px images stays a few MB)."""
    import html

    import torch.nn.functional as F

    side = max(int(x.shape[-1]), int(x.shape[-2]))
    if side > 2 * width:
        scale = 2 * width / side
        size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
        xf = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        x = F.interpolate(xf[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    cls = ' class="px"' if side < width else ""
    return f'<img{cls} src="{image_uri(x)}" alt="{html.escape(alt, quote=True)}" style="width:{width}px">'


@torch.no_grad()
def decode(map: LatentMap, z: Tensor, batch_size: int = 32) -> Tensor:
    """Decoded images [N, C, H, W] in [0, 1] on the CPU, a few at a time."""
    if len(z) == 0:
        return torch.zeros(0)
    return map.decode_batched(z, batch_size=batch_size).float().clamp(0, 1).cpu()
