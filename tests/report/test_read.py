"""Finding results in a folder, and what a missing, unknown or damaged one gives: one line."""
from __future__ import annotations

import json
import shutil

import pytest

from probe.errors import ProbeError
from probe.report import write_report
from probe.report.read import discover, read


def test_missing_and_empty_folders_are_one_line(tmp_path):
    with pytest.raises(ProbeError, match="no result folder at") as e:
        write_report(tmp_path / "nowhere")
    assert "\n" not in str(e.value)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ProbeError, match="holds no probe result") as e:
        write_report(tmp_path / "empty")
    assert "\n" not in str(e.value)


def test_damaged_meta_is_one_line(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{not json")
    with pytest.raises(ProbeError, match="not valid JSON") as e:
        write_report(tmp_path / "bad")
    assert "\n" not in str(e.value)


def test_damaged_tensors_still_show_the_saved_settings(built, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(built["root"] / "attractors", broken)
    (broken / "tensors.safetensors").write_bytes(b"garbage")
    found = read(broken)
    assert found.result is None and found.error is not None and "could not be read back" in found.error
    text = write_report(broken, tmp_path / "b.html").read_text()
    assert "could not be read back" in text and "Settings that made this result" in text


def test_unknown_kinds_get_a_generic_page(tmp_path):
    d = tmp_path / "features"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"kind": "FeatureReport", "config": {"feature": 3}, "model": None}))
    (d / "ranking.csv").write_text("image,attractor,activation\n0,1,0.5\n1,0,2.5\n")
    found = read(d)
    assert found.section == "features" and [p.name for p in found.files] == ["ranking.csv"]
    text = write_report(d, tmp_path / "f.html").read_text()
    assert "Feature probe" in text and "config.feature" in text and "<td data-v=\"2.5\">2.5</td>" in text


def test_discover_finds_nested_results_and_reports_damaged_ones(built, tmp_path):
    shutil.copytree(built["root"] / "attractors", tmp_path / "runs" / "a")
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "meta.json").write_text("[]")
    found, problems = discover(tmp_path)
    assert [f.kind for f in found] == ["AttractorSet"]
    assert len(problems) == 1 and "not a JSON object" in problems[0]
    text = write_report(tmp_path, tmp_path / "r.html").read_text()
    assert "Folders that could not be read" in text
