"""One page per result kind, built from results made on tiny maps: tables, figures, settings."""
from __future__ import annotations

from report_pages import check_page, image_sizes

from probe.report import write_report


def test_dictionary_page(dictionary_folder, toy, tmp_path):
    page = check_page(write_report(dictionary_folder, tmp_path / "d.html", model=toy))
    text = page.all_text
    assert "Dictionary probe, model orthant" in text and "ATTRACTORS" in text
    assert "omp · attractors" in text and "lasso · orthogonal" in text  # the table and the figure legend
    assert "originals and their reconstructions" in text and "autoencoder" in text
    assert "sparsity" in text and "config.n_images" in text  # every setting is listed
    assert page.tags["img"] >= 1 + 4 * 5  # the figure, and 4 examples in 5 rows (original, AE, 3 bases)


def test_ood_page(ood_folder, tmp_path):
    page = check_page(write_report(ood_folder, tmp_path / "o.html"))
    text = page.all_text
    assert "OOD detection with orthant" in text and "uniform" in text
    for method in ("trajectory", "knn", "mahalanobis", "reconstruction", "first_residual", "steps"):
        assert method in text
    assert "FPR95 (%)" in text and "AUROC (%)" in text and "AUPR-In (%)" in text and "AUPR-Out (%)" in text and "ROC per OOD set" in text
    assert page.tags["img"] == 2  # ROC curves and histograms
    assert all(w >= 500 and h >= 400 for w, h in image_sizes(page))  # figures large enough to read


def test_compare_page(compare_folder, tmp_path):
    page = check_page(write_report(compare_folder, tmp_path / "c.html"))
    text = page.all_text
    assert "Model comparison: A vs B" in text and "Chamfer similarity" in text
    assert "A: decoded dictionary" in text and "coded via B's attractors" in text
    assert page.tags["img"] >= 2 * 3 * 3  # two sides, three rows, at least three atoms


def test_basins_page(basins_folder, tmp_path):
    page = check_page(write_report(basins_folder, tmp_path / "b.html"))
    text = page.all_text
    html = (tmp_path / "b.html").read_text()
    assert "class purity" in text and "images did not converge" in text
    assert html.count('data-basin="') == 3 and "basin 0 gallery" in html  # the galleries the command wrote
    assert "Images per basin" in text


def test_memorization_page(memorization_folder, tmp_path):
    page = check_page(write_report(memorization_folder, tmp_path / "m.html"))
    text = page.all_text
    assert "coef (noise)" in text and "null" in text and "memorization coefficient" in text
    assert max(w for w, _ in image_sizes(page)) >= 18 * 100  # three panels: the attractor counts are drawn
    assert page.tags["img"] >= 1
    one = check_page(write_report(memorization_folder / "k002" / "memorization", tmp_path / "one.html")).all_text
    assert "Attractors from noise, training images and test images" in one and "Null level" in one


def test_a_folder_of_results_gets_one_page_with_every_section(built, dictionary_folder, ood_folder, toy):
    (built["root"] / "notes.md").write_text("# Notes\n\n| a | b |\n|---|---|\n| 1 | **2** |\n")
    path = write_report(built["root"], model=toy, trajectories=1)
    assert path == built["root"] / "report.html"
    page = check_page(path)
    kinds = [s.split("-", 1)[-1] for s in page.sections]
    assert kinds[:3] == ["attractors", "dictionary", "ood"]  # attractor sets first
    assert kinds[-1] == "files" and "notes.md" in page.all_text
    assert "<b>2</b>" in path.read_text()  # markdown beside the results is rendered


def test_features_page(features_folder, tmp_path):
    page = check_page(write_report(features_folder, tmp_path / "f.html"))
    text = page.all_text
    assert "feature 0: top 2 basins by K at the attractor" in text and "K = 0" in text
    assert "activation of K" in (tmp_path / "f.html").read_text()
    # per basin up to 4 images and 3 decoded attractors, plus the figure
    assert 2 * 3 + 1 <= page.tags["img"] <= 2 * (4 + 3) + 1
