"""The page helpers: escaping, numbers that sort as numbers, the probes' markdown, guarded parts."""
from __future__ import annotations

from probe.report import html as H


def test_cells_are_escaped_and_numbers_sort_as_numbers():
    t = H.table(["name", "value"], [["<b>x</b>", 1e-5], ["y", 0.01]])
    assert "&lt;b&gt;x&lt;/b&gt;" in t and 'data-v="1e-05"' in t and 'data-v="0.01"' in t
    assert 'class="sortable"' in t


def test_markdown_tables_lists_and_bold():
    out = H.markdown("## Head\n\n- one `code`\n- **two**\n\n| a | b |\n|---|---|\n| 1 | <x> |\n")
    assert "<h4>Head</h4>" in out and "<li>one <code>code</code></li>" in out and "<b>two</b>" in out
    assert "<th>a</th>" in out and "&lt;x&gt;" in out


def test_settings_flatten_nested_keys():
    out = H.settings({"config": {"tol": 1e-6, "merge": {"rule": "cosine"}}, "seeds": [1, 2]})
    assert "config.tol" in out and "config.merge.rule" in out and "[1, 2]" in out


def test_a_failing_part_becomes_one_warning_line():
    out = H.guarded("The figure", lambda: 1 / 0)
    assert out.startswith('<p class="warn">') and "The figure could not be drawn (ZeroDivisionError" in out
