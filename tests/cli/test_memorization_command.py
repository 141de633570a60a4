"""``probe memorization --model SPEC``: one trained model measured, a Memorization result, --json."""
from __future__ import annotations

import json

import torch

from probe.cli.main import main
from probe.probes.memorization import Memorization
from probe.result import load_result


def test_measure_one_model_from_the_command_line(tmp_path, capsys):
    from probe.maps.convae import ConvAE

    with torch.random.fork_rng():
        torch.manual_seed(0)
        ConvAE(image_size=8, width=2, bottleneck=3).save(tmp_path / "ae")
    out = tmp_path / "mem"
    rc = main(["memorization", "--model", str(tmp_path / "ae"), "--dataset", "digits", "--n-train", "100",
               "--n-test", "40", "--seeds", "6", "--n-data-seeds", "4", "--n-null", "20", "--max-steps", "50",
               "--power-iters", "3", "--probe-points", "1", "--out", str(out), "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["source"] for r in rows] == ["noise", "train", "test"] and rows[0]["seeds"] == 6
    result = load_result(out)
    assert isinstance(result, Memorization) and result.config["field"]["max_steps"] == 50
    assert (out / "attractors_noise" / "meta.json").is_file() and (out / "manifest.json").is_file()
