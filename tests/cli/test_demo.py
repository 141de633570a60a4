"""``probe demo`` on the bundled model, shrunk: its files, the degenerate-dictionary note, --json."""
from __future__ import annotations

import json

from probe.cli.main import main


def test_small_demo_writes_its_files_and_codes_the_end_points_when_attractors_are_few(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--seeds", "16", "--max-steps", "60", "--power-iters", "3", "--probe-points", "1",
            "--datasets", "digits", "--n-images", "20", "--coder", "omp", "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    atoms = summary["atoms"]
    assert atoms["n_seeds"] == 16 and atoms["degenerate"] == (atoms["n_atoms"] < 20)
    for name in ("attractors/meta.json", "attractors.png", "dictionary.md", "dictionary.csv", "sparsity_mse.png",
                 "report/meta.json", "manifest.json"):
        assert (out / name).is_file(), name
    if atoms["end_points_coded"]:
        assert "unmerged end points" in (out / "dictionary.md").read_text()
    assert main(argv[:-1] + ["--quiet"]) == 0  # the same command again: the finished result is reused
    assert capsys.readouterr().out == ""
