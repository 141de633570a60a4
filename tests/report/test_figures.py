"""Images on the page: small ones enlarged without smoothing, large ones stored small enough."""
from __future__ import annotations

import base64
import io
import re

import torch
from PIL import Image

from probe.report.figures import figure_uri, new_figure, thumb


def _stored(tag: str) -> tuple[int, int]:
    uri = re.search(r'src="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size


def test_small_images_are_enlarged_pixel_exact_and_large_ones_shrunk():
    small = thumb(torch.rand(1, 28, 28), 128, "a <b>")
    assert 'class="px"' in small and _stored(small) == (28, 28) and "a &lt;b&gt;" in small
    large = thumb(torch.rand(3, 512, 256), 80, "big")
    assert 'class="px"' not in large and _stored(large) == (80, 160) and 'style="width:80px"' in large
    assert _stored(thumb((torch.rand(3, 64, 64) * 255).to(torch.uint8), 96, "u8")) == (64, 64)


def test_figures_are_pngs_without_pyplot():
    fig = new_figure(4, 3)
    ax = fig.subplots()
    ax.plot([0, 1], [1, 0], label="line")
    ax.legend()
    uri = figure_uri(fig, dpi=100)
    assert uri.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size == (400, 300)
