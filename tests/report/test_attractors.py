"""The attractor-set page: cards by basin size, basins that open, film strips, the convergence figures."""
from __future__ import annotations

from probe.report import write_report

from report_pages import check_page


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
