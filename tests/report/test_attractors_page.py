"""The attractor-set page: cards by basin size, basins that open, film strips, the convergence figures."""
from __future__ import annotations

import torch
from report_pages import check_page

from probe.report import write_report


def test_attractor_page_with_the_model(built, toy, tmp_path):
    aset = built["aset"]
    path = write_report(built["root"] / "attractors", tmp_path / "a.html", model=toy, trajectories=3)
    page = check_page(path)
    text = page.all_text
    assert len(aset) == 8 and int(aset.stable.sum()) == 8  # one attractor per orthant of R^3
    html = path.read_text()
    # one card per fixed point, each opening its own basin panel, largest basin first
    assert html.count('data-basin="') == len(aset) and html.count('class="basin"') == len(aset)
    counts = [int(c) for c in aset.counts]
    assert counts == sorted(counts, reverse=True) and f"#0 n={counts[0]}" in text
    assert "Decoded seeds D(z" in text and "stable" in text
    # film strips re-run the set's own seeds and end where the saved run ended
    assert text.count("end point cosine 1.000000") >= 3
    assert "residual decay" in html and "spectral radius" in text and "Dynamics verdict: contractive" in text
    assert aset.diagnosis.line.split(":")[0] in text
    assert page.tags["img"] >= len(aset) + 2 + 3  # cards, two figures, strips


def test_attractor_page_without_a_loadable_model_says_so(built, tmp_path):
    path = write_report(built["root"] / "attractors", tmp_path / "b.html")
    text = check_page(path).all_text
    assert "No pictures of latents" in text and "does not load (orthant" in text
    assert "No film strips" in text and "Pass --model SPEC" in text
    assert "Dynamics verdict: contractive" in text  # the rest of the page is still drawn


def test_an_expansive_map_shows_where_seeds_went_and_no_attractors(tmp_path):
    import probe
    from probe.field import find_attractors

    w = torch.linalg.qr(torch.randn(16, 3, generator=torch.Generator().manual_seed(0)))[0]
    # f(z) = 1.5 z on a 3-dim latent: every seed runs off; decoded images stay in [0, 1] by a sigmoid
    m = probe.wrap(lambda x: 1.5 * (torch.logit(x.flatten(1).clamp(1e-6, 1 - 1e-6)) @ w),
                   lambda z: torch.sigmoid(z @ w.T).view(-1, 1, 4, 4), (3,), image_channels=1, image_size=4,
                   name="expansive")
    aset = find_attractors(m, n_seeds=16, max_steps=12, power_iters=3, probe_points=2, out=tmp_path / "run")
    assert len(aset) == 0 and aset.verdict != "contractive"
    page = check_page(write_report(tmp_path / "run", tmp_path / "e.html", model=m, trajectories=2))
    text = page.all_text
    assert f"No seed converged, so there are no attractors ({aset.verdict})" in text
    assert "End points after the last step (not attractors)" in text and "(unconverged)" in text
    assert f"Dynamics verdict: {aset.verdict}" in text and aset.diagnosis.line.split(";")[0] in text
