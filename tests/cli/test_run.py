"""``probe run``: the attractor set, manifest and grid it writes, what it prints, its one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

from probe.cli.main import main
from probe.field import AttractorSet
from probe.maps.convae import ConvAE, ConvAEConfig

QUICK = ["--power-iters", "4", "--probe-points", "1", "--no-progress"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("convae")
    ConvAE(ConvAEConfig(image_size=16, image_channels=1, width=4, bottleneck=4)).save(folder)
    return folder


def test_run_writes_the_set_manifest_and_grid_and_prints_the_summary(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["run", str(model_dir), "--seeds", "6", "--max-steps", "20", "--out", str(out), *QUICK])
    printed = capsys.readouterr().out
    assert rc == 0
    r = AttractorSet.load(out)
    assert len(r.status) == 6 and r.config["max_steps"] == 20 and r.config["tol"] == 1e-6  # the family's tol
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"].startswith("probe run") and manifest["verdict"] == r.verdict
    assert manifest["n_fixed_points"] == len(r) and manifest["processes"] == 1
    assert (out / "attractors.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "checkpoint").exists()
    for text in ("fixed points:", "stable (attractors):", "steps", "median", "p95", "f-evaluations/s", r.verdict):
        assert text in printed
    assert r.diagnosis.line in printed


def test_yaml_config_fills_fields_and_flags_override(model_dir, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("run:\n  n_seeds: 5\n  merge: euclidean\n  merge_threshold: 0.5\n  max_steps: 10\n")
    out = tmp_path / "out"
    assert main(["run", str(model_dir), "--config", str(cfg), "--max-steps", "12", "--out", str(out), *QUICK]) == 0
    r = AttractorSet.load(out)
    assert r.config["n_seeds"] == 5 and r.merge["rule"] == "euclidean" and r.config["max_steps"] == 12


def test_seeds_from_encoded_data(model_dir, tmp_path):
    out = tmp_path / "out"
    rc = main(["run", str(model_dir), "--from-data", "--data", "digits", "--data-n", "7", "--max-steps", "10",
               "--out", str(out), *QUICK])
    assert rc == 0 and len(AttractorSet.load(out).status) == 7


@pytest.mark.parametrize("argv, message", [
    (["run", "/no/such/model"], "unknown model"),
    (["run", "{model}", "--seed-dist", "data"], "need --data"),
    (["run", "{model}", "--merge-threshold", "2"], "must lie in [-1, 1]"),
])
def test_user_errors_are_one_line(model_dir, tmp_path, capsys, argv, message):
    argv = [a.replace("{model}", str(model_dir)) for a in argv] + ["--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_real_taef2_is_expansive(taef2_dir, tmp_path, capsys):
    out = tmp_path / "taef2"
    rc = main(["run", str(taef2_dir), "--seeds", "4", "--resolution", "64", "--max-steps", "40", "--out", str(out),
               "--power-iters", "10", "--probe-points", "2", "--no-progress"])
    assert rc == 0
    r = AttractorSet.load(out)
    assert r.verdict == "expansive" and len(r) == 0 and r.status_counts()["converged"] == 0
    assert float(r.diagnosis.rho_end.min()) > 1.0
    assert "expansive" in capsys.readouterr().out
