"""A report in a real browser: headless Chromium renders it offline, the screenshot is not blank,
the page logs no errors, and a click on an attractor opens its basin.

Skips with the reason when Chromium is not installed (Debian: ``apt-get install -y chromium``;
``make test`` installs it where it can).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from report_pages import check_page

from probe.report import write_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; "
                                                          "make test installs it where it can)")
# an error the page script caught, or one Chromium logged from the page's console
CONSOLE_ERROR = re.compile(r"Uncaught|CONSOLE\(\d+\).*(Error|error)")


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("chromium did not finish within 180 s")


def dom(tmp_path, page) -> tuple[str, str]:
    run = chromium(tmp_path, "--dump-dom", page.resolve().as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, run.stderr


def errors_in(html: str, log: str) -> list[str]:
    found = re.findall(r'data-errors="([^"]*)"', html)
    return found + [line for line in log.splitlines() if CONSOLE_ERROR.search(line)]


def test_the_error_check_catches_a_broken_page(tmp_path):
    from probe.report.html import page

    bad = tmp_path / "bad.html"
    bad.write_text(page("broken", "", [("s", "S", "<script>no_such_function()</script>")]))
    html, log = dom(tmp_path, bad)
    assert any("no_such_function" in e for e in errors_in(html, log))


def test_report_renders_in_chromium_without_errors(built, dictionary_folder, ood_folder, compare_folder, toy, tmp_path):
    from PIL import Image, ImageStat

    path = write_report(built["root"], tmp_path / "report.html", model=toy, trajectories=2)
    check_page(path)
    html, log = dom(tmp_path, path)
    assert errors_in(html, log) == []
    assert html.count("<section") == path.read_text().count("<section")  # the whole page was parsed

    shot = tmp_path / "shot.png"
    run = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2600", path.resolve().as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = Image.open(shot).convert("L")
    assert img.size == (1400, 2600)
    stat = ImageStat.Stat(img)
    dark = sum(img.histogram()[:200]) / (img.size[0] * img.size[1])
    assert stat.stddev[0] > 20 and dark > 0.02, f"blank screenshot (std {stat.stddev[0]:.1f}, {dark:.1%} non-white)"
    assert [line for line in run.stderr.splitlines() if CONSOLE_ERROR.search(line)] == []


def test_clicks_open_a_basin_and_sort_a_table(built, toy, tmp_path):
    path = write_report(built["root"] / "attractors", tmp_path / "a.html", model=toy, trajectories=0)
    probe_js = """<script>
    var card = document.querySelectorAll('[data-basin]')[1]; card.click();
    var open = document.querySelectorAll('.basin.on');
    document.documentElement.setAttribute('data-opened', open.length + ':' + open[0].id + ':' + card.getAttribute('data-basin'));
    var t = document.querySelector('table.sortable'), th = t.querySelectorAll('th')[1];
    th.click(); var asc = t.tBodies[0].rows[0].cells[1].textContent;
    th.click(); var desc = t.tBodies[0].rows[0].cells[1].textContent;
    document.documentElement.setAttribute('data-sorted', asc + '<' + desc);
    </script></body>"""
    clicked = tmp_path / "clicked.html"
    clicked.write_text(path.read_text().replace("</body>", probe_js))
    html, log = dom(tmp_path, clicked)
    assert errors_in(html, log) == []
    opened_attr, sorted_attr = re.search(r'data-opened="([^"]*)"', html), re.search(r'data-sorted="([^"]*)"', html)
    assert opened_attr and sorted_attr, "the probe script did not run"
    n, opened, target = opened_attr.group(1).split(":")
    assert n == "1" and opened == target  # exactly the clicked attractor's basin is open
    small, large = sorted_attr.group(1).replace("&lt;", "<").split("<")
    counts = sorted(int(c) for c in built["aset"].counts)
    assert (int(small), int(large)) == (counts[0], counts[-1])  # basin sizes sort as numbers, both ways
